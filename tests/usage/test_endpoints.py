"""The ingest API: validation, idempotency, pricing from the catalog, attribution checks, roles."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support.factories import Factory, OrgSetup
from tokenboard.catalog.pricing import TokenUsage, compute_cost
from tokenboard.catalog.service import catalog
from tokenboard.members.roles import Role
from tokenboard.models import AuditEvent, CreditEntry, UsageEvent
from tokenboard.usage import repository
from tokenboard.usage.schemas import MAX_BATCH
from tokenboard.usage.service import usage

MODEL = "openai/gpt-4o"
WHEN = "2026-01-05T10:00:00Z"


@pytest.fixture
async def setup(factory: Factory, app: Any) -> OrgSetup:
    await factory.run(lambda s: catalog.sync(s, provider_ids=["openai", "anthropic"]))
    await factory.run(lambda s: catalog.add_model(s, "local/unpriced-test"))
    app.state.catalog_cache.invalidate()
    return await factory.org_with_roles("Ingest Co")


def event(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"evt-{i}",
        "timestamp": WHEN,
        "model": MODEL,
        "input_tokens": 1000,
        "output_tokens": 500,
    } | extra


async def post(
    factory: Factory, setup: OrgSetup, events: list[dict[str, Any]], role: Role = Role.admin
) -> Any:
    async with await factory.client_for(setup.users[role]) as client:
        return await client.post(f"/api/v1/organizations/{setup.id}/usage/events", json={"events": events})


async def test_events_are_priced_from_the_catalog_and_idempotent(
    factory: Factory, setup: OrgSetup, db: AsyncSession
) -> None:
    member = setup.users[Role.member]
    batch = [
        event(1, user_email=member.email.upper(), feature="chat", conversation_id="c1"),
        event(2, user_id=str(member.id), cached_input_tokens=200, reasoning_tokens=50, conversation_id="c1"),
        event(3, cost_nanousd=123, workspace_id=str(setup.workspace.id), team_id=str(setup.team.id)),
        event(4, cost_usd="0.000000456"),
    ]
    r = await post(factory, setup, batch)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 4, "duplicates": 0}
    again = await post(factory, setup, [*batch, event(5, cost_nanousd=1)])
    assert again.json() == {"accepted": 1, "duplicates": 4}

    prices = await factory.run(lambda s: catalog.prices_at(s, MODEL, datetime(2026, 1, 5, 10, tzinfo=UTC)))
    assert prices is not None
    expected_1 = compute_cost(prices, TokenUsage(input_tokens=1000, output_tokens=500)).total_nanousd
    expected_2 = compute_cost(
        prices, TokenUsage(input_tokens=1000, cached_input_tokens=200, output_tokens=500, reasoning_tokens=50)
    ).total_nanousd
    rows = {
        e.request_id: e
        for e in await db.scalars(select(UsageEvent).where(UsageEvent.organization_id == setup.id))
    }
    assert len(rows) == 5
    assert rows["evt-1"].cost_nanousd == expected_1 > 0
    assert rows["evt-2"].cost_nanousd == expected_2
    assert rows["evt-3"].cost_nanousd == 123
    assert rows["evt-4"].cost_nanousd == 456
    assert rows["evt-1"].user_id == member.id and rows["evt-1"].source == "api"
    assert rows["evt-3"].workspace_id == setup.workspace.id and rows["evt-3"].provider_id == "openai"
    total = expected_1 + expected_2 + 123 + 456 + 1
    summary = await repository.summary(db, setup.id, None, None)
    assert (summary.requests, summary.cost_nanousd) == (5, total)
    assert Decimal(total) > 0
    # Paid elsewhere: never a credit entry.
    assert (
        await db.scalar(
            select(func.count()).select_from(CreditEntry).where(CreditEntry.external_id.like("evt-%"))
        )
        == 0
    )
    audits = await db.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.organization_id == setup.id, AuditEvent.action == "usage.ingested")
    )
    assert audits == 2


async def test_web_searches_are_priced_per_search_from_the_catalog(
    factory: Factory, setup: OrgSetup, db: AsyncSession
) -> None:
    model = "anthropic/claude-sonnet-4-5"
    r = await post(factory, setup, [event(1, model=model, web_searches=4), event(2, model=model)])
    assert r.status_code == 200, r.text
    at = datetime(2026, 1, 5, 10, tzinfo=UTC)
    prices = await factory.run(lambda s: catalog.prices_at(s, model, at))
    assert prices is not None and prices.per_web_search == Decimal("0.01")
    rows = {
        e.request_id: e
        for e in await db.scalars(select(UsageEvent).where(UsageEvent.organization_id == setup.id))
    }
    tokens = TokenUsage(input_tokens=1000, output_tokens=500)
    assert (rows["evt-2"].web_searches, rows["evt-2"].cost_nanousd) == (
        0,
        compute_cost(prices, tokens).total_nanousd,
    )
    assert rows["evt-1"].web_searches == 4
    assert rows["evt-1"].cost_nanousd == rows["evt-2"].cost_nanousd + 4 * 10_000_000


async def test_audio_tokens_are_priced_as_audio_from_the_catalog(
    factory: Factory, setup: OrgSetup, db: AsyncSession
) -> None:
    audio = {"model": "openai/gpt-audio", "input_audio_tokens": 400, "output_audio_tokens": 60}
    r = await post(factory, setup, [event(1, **audio), event(2, model="openai/gpt-audio")])
    assert r.status_code == 200, r.text
    rows = {
        e.request_id: e
        for e in await db.scalars(select(UsageEvent).where(UsageEvent.organization_id == setup.id))
    }
    assert (rows["evt-1"].input_audio_tokens, rows["evt-1"].output_audio_tokens) == (400, 60)
    # gpt-audio: audio at $32 and $64 per million instead of text's $2.50 and $10
    extra = 400 * (32_000 - 2_500) + 60 * (64_000 - 10_000)
    assert rows["evt-1"].cost_nanousd == rows["evt-2"].cost_nanousd + extra


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ({"model": "openai/no-such-model"}, "not in the catalog"),
        ({"model": "local/unpriced-test"}, "no price"),
        ({"user_email": "stranger@example.com"}, "not a member"),
        ({"cost_nanousd": 1, "cost_usd": "1"}, "not both"),
        ({"cost_usd": "-1"}, "between 0 and 1000000"),
        ({"timestamp": "2999-01-01T00:00:00Z"}, "future"),
        ({"input_audio_tokens": 1001}, "input_audio_tokens (1001) exceeds input_tokens (1000)"),
        (
            {"output_audio_tokens": 501, "cost_nanousd": 5},
            "output_audio_tokens (501) exceeds output_tokens (500)",
        ),
    ],
)
async def test_an_invalid_event_refuses_the_batch_naming_it(
    factory: Factory, setup: OrgSetup, db: AsyncSession, bad: dict[str, Any], words: str
) -> None:
    r = await post(factory, setup, [event(1), event(2, **bad)])
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["details"][0]["index"] == 1 and words in error["details"][0]["message"]
    assert "event 1" in error["message"]
    count = await db.scalar(
        select(func.count()).select_from(UsageEvent).where(UsageEvent.organization_id == setup.id)
    )
    assert count == 0


async def test_schema_limits(factory: Factory, setup: OrgSetup) -> None:
    assert (await post(factory, setup, [])).status_code == 422
    assert (await post(factory, setup, [event(1, input_tokens=-1)])).status_code == 422
    assert (await post(factory, setup, [event(1, web_searches=-1)])).status_code == 422
    assert (await post(factory, setup, [event(1, web_searches=1_000_001)])).status_code == 422
    assert (await post(factory, setup, [event(1, surprise=True)])).status_code == 422
    assert (await post(factory, setup, [event(1, id="x" * 65)])).status_code == 422
    nul = await post(factory, setup, [event(1, feature="a\x00b", cost_nanousd=1)])
    assert nul.status_code in (400, 422) and nul.status_code < 500


@pytest.mark.parametrize(
    ("field", "value"),
    [
        # Token counts (and every other integer) are JSON integers: never booleans, strings or floats.
        ("input_tokens", True),
        ("output_tokens", "12"),
        ("reasoning_tokens", 12.0),
        ("web_searches", "3"),
        ("cost_nanousd", "5"),
        ("latency_ms", False),
        ("status_code", "500"),
        # Booleans are JSON booleans.
        ("stream", "true"),
        ("cancelled", 1),
        # cost_usd is a plain decimal string: no exponent, no number, no NaN.
        ("cost_usd", "1e2"),
        ("cost_usd", "2.5E-3"),
        ("cost_usd", 0.25),
        ("cost_usd", True),
        ("cost_usd", "NaN"),
        ("cost_usd", "abc"),
        # The timestamp is ISO 8601 text, never seconds since 1970 as a number or as digits.
        ("timestamp", 1767605400),
        ("timestamp", "1767605400"),
        ("timestamp", "20260105"),
        ("timestamp", True),
    ],
)
async def test_values_of_the_wrong_json_type_are_refused_naming_the_field(
    factory: Factory, setup: OrgSetup, db: AsyncSession, field: str, value: Any
) -> None:
    r = await post(factory, setup, [event(1), event(2, **{field: value})])
    assert r.status_code == 422, (field, value, r.text)
    error = r.json()["error"]
    assert error["type"] == "validation_error" and error["status"] == 422
    assert [d["field"] for d in error["details"]] == [f"body.events.1.{field}"], error
    count = await db.scalar(
        select(func.count()).select_from(UsageEvent).where(UsageEvent.organization_id == setup.id)
    )
    assert count == 0


async def test_documented_values_are_taken(factory: Factory, setup: OrgSetup, db: AsyncSession) -> None:
    batch = [
        event(1, timestamp="2026-01-05T11:00:00.250+01:00", cost_usd="0.5", stream=True, cancelled=False),
        event(2, timestamp="2026-01-05T10:00:00", cost_usd=".25", status_code=503, latency_ms=1200),
        event(3, timestamp="2026-01-05 10:00:00Z", cost_usd="3", error_type="", reasoning_tokens=0),
        event(4, timestamp="2026-01-05", cost_nanousd=7),
    ]
    r = await post(factory, setup, batch)
    assert r.status_code == 200, r.text
    rows = {
        e.request_id: e
        for e in await db.scalars(select(UsageEvent).where(UsageEvent.organization_id == setup.id))
    }
    costs = {request_id: row.cost_nanousd for request_id, row in rows.items()}
    assert costs == {"evt-1": 500_000_000, "evt-2": 250_000_000, "evt-3": 3_000_000_000, "evt-4": 7}
    assert rows["evt-1"].created_at == datetime(2026, 1, 5, 10, 0, 0, 250_000, tzinfo=UTC)
    assert rows["evt-2"].created_at == rows["evt-3"].created_at == datetime(2026, 1, 5, 10, tzinfo=UTC)
    assert rows["evt-4"].created_at == datetime(2026, 1, 5, tzinfo=UTC)
    assert rows["evt-1"].stream and rows["evt-2"].status_code == 503 and rows["evt-2"].latency_ms == 1200


async def test_another_orgs_member_workspace_and_team_are_refused(factory: Factory, setup: OrgSetup) -> None:
    other = await factory.org_with_roles("Other Co")
    for bad in (
        {"user_id": str(other.users[Role.member].id)},
        {"user_email": other.users[Role.owner].email},
        {"workspace_id": str(other.workspace.id)},
        {"team_id": str(other.team.id)},
    ):
        r = await post(factory, setup, [event(1, **bad)])
        assert r.status_code == 422, (bad, r.text)
        assert str(other.id) not in r.text


async def test_only_owners_and_admins_ingest(factory: Factory, setup: OrgSetup) -> None:
    for role in (Role.member, Role.billing_manager):
        assert (await post(factory, setup, [event(1)], role=role)).status_code == 403
    assert (await post(factory, setup, [event(1)], role=Role.owner)).status_code == 200


async def test_a_personal_access_token_can_ingest(factory: Factory, setup: OrgSetup) -> None:
    token = await factory.personal_token(setup.users[Role.admin])
    async with factory.anonymous(csrf=False) as api:
        api.headers["Authorization"] = f"Bearer {token}"
        r = await api.post(f"/api/v1/organizations/{setup.id}/usage/events", json={"events": [event(9)]})
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 1, "duplicates": 0}


async def test_events_for_an_organization_that_does_not_exist_are_refused_and_not_stored(
    factory: Factory, setup: OrgSetup, db: AsyncSession
) -> None:
    # usage_events has no foreign key to organizations (migration 0014): the route must refuse it itself.
    nowhere = uuid.uuid4()
    async with await factory.client_for(setup.users[Role.owner]) as client:
        r = await client.post(f"/api/v1/organizations/{nowhere}/usage/events", json={"events": [event(1)]})
    assert r.status_code == 404, r.text
    stored = await db.scalar(
        select(func.count()).select_from(UsageEvent).where(UsageEvent.organization_id == nowhere)
    )
    assert stored == 0


async def test_a_full_batch_fits_the_ingest_routes_larger_body_limit_and_is_parsed_once(
    factory: Factory, setup: OrgSetup, db: AsyncSession, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = app.state.settings
    full = [
        event(i, cost_nanousd=i, feature="analysis", tool="web_search", conversation_id=f"conv-{i // 5}")
        for i in range(MAX_BATCH)
    ]
    body = json.dumps({"events": full}).encode()
    assert settings.max_body_bytes < len(body) <= settings.max_ingest_body_bytes
    path = f"/api/v1/organizations/{setup.id}/usage/events"
    json_body = {"Content-Type": "application/json"}
    decoded: list[Any] = []
    loads = json.loads
    monkeypatch.setattr(json, "loads", lambda text, *a, **k: decoded.append(text) or loads(text, *a, **k))
    async with await factory.client_for(setup.users[Role.admin]) as client:
        r = await client.post(path, content=body, headers=json_body)
        assert r.status_code == 200, r.text[:500]
        # Parsed and validated by pydantic in one pass (kit/routing.py), never by json.loads first.
        assert body not in decoded
        assert r.json() == {"accepted": MAX_BATCH, "duplicates": 0}
        # Past the ingest limit: refused before it is read, in the one error shape.
        pad = b" " * (settings.max_ingest_body_bytes - len(body) + 1)
        too_big = await client.post(path, content=body + pad, headers=json_body)
        assert too_big.status_code == 413 and too_big.json()["error"]["type"] == "payload_too_large"
        # Only that route: the same size elsewhere in the organization's API is refused.
        teams = f"/api/v1/organizations/{setup.id}/teams"
        elsewhere = await client.post(teams, content=body, headers=json_body)
        assert elsewhere.status_code == 413
    stored = await db.scalar(
        select(func.sum(UsageEvent.cost_nanousd)).where(UsageEvent.organization_id == setup.id)
    )
    assert stored == sum(range(MAX_BATCH))


async def test_on_sqlite_a_process_takes_one_ingest_batch_at_a_time(
    factory: Factory, setup: OrgSetup, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite writes one batch at a time anyway: a second batch of the same process is not even parsed
    while the first is being written (its Python work would only slow the writer down). PostgreSQL takes
    batches side by side."""
    writing, release = asyncio.Event(), asyncio.Event()
    record = usage.record

    async def held_record(*args: Any, **kwargs: Any) -> Any:
        writing.set()
        await release.wait()
        return await record(*args, **kwargs)

    parsed: list[Any] = []
    validate_json = TypeAdapter.validate_json

    def seen(self: TypeAdapter[Any], data: Any, *args: Any, **kwargs: Any) -> Any:
        parsed.append(data)
        return validate_json(self, data, *args, **kwargs)

    path = f"/api/v1/organizations/{setup.id}/usage/events"
    async with await factory.client_for(setup.users[Role.admin]) as client:
        # A first batch, so that the session's last use is recorded now and not by the requests below.
        assert (await client.post(path, json={"events": [event(0)]})).status_code == 200
        monkeypatch.setattr(usage, "record", held_record)
        monkeypatch.setattr(TypeAdapter, "validate_json", seen)
        first = asyncio.create_task(client.post(path, json={"events": [event(1)]}))
        await asyncio.wait_for(writing.wait(), 10)
        valid = json.dumps({"events": [event(2)]}).encode()
        invalid = {"events": [event(3, model="")]}  # refused by validation
        second = asyncio.create_task(
            client.post(path, content=valid, headers={"content-type": "application/json"})
        )
        third = asyncio.create_task(client.post(path, json=invalid))
        done, _ = await asyncio.wait({second, third}, timeout=0.5)
        if backend == "sqlite":
            assert not done and valid not in parsed  # both wait for the first batch's commit, unread
        else:
            assert done == {third} and third.result().status_code == 422 and valid in parsed
        release.set()
        assert (await asyncio.wait_for(first, 10)).status_code == 200
        assert (await asyncio.wait_for(second, 10)).json() == {"accepted": 1, "duplicates": 0}
        assert (await asyncio.wait_for(third, 10)).status_code == 422
