"""Conversations: the list from the rollup, a conversation's messages from its raw events, cost lines that
add up to each stored cost, file impact, and who may see which conversation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support.factories import Factory, OrgSetup
from tokenboard.catalog.pricing import TokenUsage, compute_cost
from tokenboard.catalog.service import catalog
from tokenboard.members.roles import Role
from tokenboard.models import UsageEvent
from tokenboard.usage import repository
from tokenboard.usage.ingest import record_events

MODEL = "openai/gpt-4o"
REPORT = {"type": "file", "bytes": 48_000, "estimated_tokens": 12_000, "name": "Annual_Report.pdf"}


@pytest.fixture
async def convo(factory: Factory, app: Any) -> tuple[OrgSetup, OrgSetup, list[dict[str, Any]]]:
    await factory.run(lambda s: catalog.sync(s, provider_ids=["openai"]))
    app.state.catalog_cache.invalidate()
    setup = await factory.org_with_roles("Chat Co")
    other = await factory.org_with_roles("Elsewhere Co")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    prices = await factory.run(lambda s: catalog.prices_at(s, MODEL, start))
    assert prices is not None
    member, admin = setup.users[Role.member].id, setup.users[Role.admin].id

    def event(org: OrgSetup, n: int, conversation: str, user: Any, **extra: Any) -> dict[str, Any]:
        tokens = {
            "input_tokens": 15_000 * n + 7,
            "cached_input_tokens": 300 * n,
            "cache_write_5m_tokens": 11,
            "output_tokens": 250 * n + 3,
            "reasoning_tokens": 40,
        }
        cost = compute_cost(prices, TokenUsage(**tokens)).total_nanousd
        return {
            "organization_id": org.id,
            "request_id": f"{conversation}-{n}",
            "created_at": start + timedelta(minutes=7 * n),
            "user_id": user,
            "model_id": MODEL,
            "provider_id": "openai",
            "cost_nanousd": cost,
            "latency_ms": 900 + n,
            "time_to_first_token_ms": 200 + n,
            "conversation_id": conversation,
            "message_id": f"msg-{n}",
            **tokens,
        } | extra

    events = [
        event(setup, 1, "conv-a", member, attachments=[REPORT]),
        event(
            setup,
            2,
            "conv-a",
            member,
            attachments=[REPORT, {"type": "image_url", "bytes": 4000, "estimated_tokens": 1000}],
        ),
        event(setup, 3, "conv-a", member),
        event(setup, 4, "conv-b", admin),
        event(other, 5, "conv-a", other.users[Role.member].id),
    ]
    events[2]["cost_nanousd"] += 777  # a cost reported by the provider, not the catalog's
    await factory.run(lambda s: record_events(s, events))
    assert await factory.run(lambda s: record_events(s, events)) == []  # retried: nothing counted twice
    return setup, other, events


def summed(events: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "requests": len(events),
        "cost": sum(e["cost_nanousd"] for e in events),
        "input": sum(
            e["input_tokens"] + e["cached_input_tokens"] + e.get("cache_write_5m_tokens", 0) for e in events
        ),
        "output": sum(e["output_tokens"] + e["reasoning_tokens"] for e in events),
    }


def as_summed(item: dict[str, Any]) -> dict[str, int]:
    return {
        "requests": item["requests"],
        "cost": item["cost"]["nanousd"],
        "input": item["input_tokens"],
        "output": item["output_tokens"],
    }


async def test_the_list_and_who_sees_it(
    factory: Factory, convo: tuple[OrgSetup, OrgSetup, list[dict[str, Any]]]
) -> None:
    setup, _, events = convo
    url = f"/api/v1/organizations/{setup.id}/usage/conversations"
    async with await factory.client_for(setup.users[Role.owner]) as client:
        body = (await client.get(url)).json()
        mine = (await client.get(url, params={"mine": "true"})).json()
    assert [c["conversation_id"] for c in body["items"]] == ["conv-b", "conv-a"]
    assert mine["items"] == []
    for item in body["items"]:
        own = [e for e in events[:4] if e["conversation_id"] == item["conversation_id"]]
        assert as_summed(item) == summed(own)
        assert item["tokens"] == item["input_tokens"] + item["output_tokens"]
        first, last = min(e["created_at"] for e in own), max(e["created_at"] for e in own)
        assert item["duration_seconds"] == (last - first).total_seconds()
    async with await factory.client_for(setup.users[Role.member]) as client:
        body = (await client.get(url, params={"mine": "false"})).json()
        page = await client.get(
            f"/organizations/{setup.id}/usage/conversations", headers={"accept": "text/html"}
        )
        hidden = await client.get(f"{url}/conv-b")
        hidden_page = await client.get(f"/organizations/{setup.id}/usage/conversations/conv-b")
    assert [c["conversation_id"] for c in body["items"]] == ["conv-a"]
    assert "conv-b" not in page.text and "conv-a" in page.text
    assert setup.users[Role.admin].email not in page.text
    assert hidden.status_code == 404 and hidden_page.status_code == 404


async def test_messages_cost_lines_add_up(
    factory: Factory, convo: tuple[OrgSetup, OrgSetup, list[dict[str, Any]]]
) -> None:
    setup, other, events = convo
    async with await factory.client_for(setup.users[Role.member]) as client:
        r = await client.get(f"/api/v1/organizations/{setup.id}/usage/conversations/conv-a")
        page = await client.get(
            f"/organizations/{setup.id}/usage/conversations/conv-a", headers={"accept": "text/html"}
        )
    assert r.status_code == 200, r.text
    detail = r.json()
    own = events[:3]
    assert as_summed(detail["conversation"]) == summed(own)
    assert [m["request_id"] for m in detail["messages"]] == [e["request_id"] for e in own]
    for message, event in zip(detail["messages"], own, strict=True):
        assert message["cost"]["nanousd"] == event["cost_nanousd"]
        assert sum(line["amount"]["nanousd"] for line in message["cost_lines"]) == event["cost_nanousd"]
        exact = sum(Decimal(line["amount_usd"]) for line in message["cost_lines"])
        assert exact * 10**9 == event["cost_nanousd"] or message["cost_lines"][-1]["kind"] == "rounding"
        kinds = {line["kind"]: line for line in message["cost_lines"]}
        assert kinds["input"]["quantity"] == event["input_tokens"]
        assert kinds["cached_input_read"]["quantity"] == event["cached_input_tokens"]
        assert kinds["output"]["quantity"] == event["output_tokens"]
        for line in message["cost_lines"]:
            if line["unit_price_usd"] is not None:
                assert Decimal(line["unit_price_usd"]) * line["quantity"] == Decimal(line["amount_usd"])
        assert message["latency_ms"] == event["latency_ms"]
        assert message["time_to_first_token_ms"] == event["time_to_first_token_ms"]
        assert message["input_tokens"] == summed([event])["input"]
        assert message["output_tokens"] == summed([event])["output"]
        assert message["priced_from_catalog"] is True
    difference = [
        line for line in detail["messages"][2]["cost_lines"] if line["kind"] == "recorded_difference"
    ]
    assert [line["amount"]["nanousd"] for line in difference] == [777]

    # File impact: the report was sent in two messages.
    files = {f["name"]: f for f in detail["files"]}
    report = files["Annual_Report.pdf"]
    assert (report["size_bytes"], report["estimated_tokens"], report["reuse_count"]) == (48_000, 12_000, 2)
    first = detail["messages"][0]["attachments"][0]
    input_price = Decimal(
        next(line for line in detail["messages"][0]["cost_lines"] if line["kind"] == "input")[
            "unit_price_usd"
        ]
    )
    assert first["cost"]["nanousd"] == int(input_price * 12_000 * 10**9)
    assert first["reuse_count"] == 2
    assert first["cost_share"] == pytest.approx(first["cost"]["nanousd"] / events[0]["cost_nanousd"])
    assert report["cost"]["nanousd"] == 2 * first["cost"]["nanousd"]

    assert page.status_code == 200
    assert "Annual_Report.pdf" in page.text and "Cost calculation" in page.text
    assert "Recorded cost differs" in page.text

    # The other organization's conversation with the same id stays there.
    async with await factory.client_for(other.users[Role.owner]) as client:
        theirs = (await client.get(f"/api/v1/organizations/{other.id}/usage/conversations/conv-a")).json()
        cross = await client.get(f"/api/v1/organizations/{setup.id}/usage/conversations/conv-a")
    assert [m["request_id"] for m in theirs["messages"]] == ["conv-a-5"]
    assert cross.status_code == 404 and "Annual_Report" not in cross.text


async def test_unknown_conversation_is_404(factory: Factory, convo: tuple[OrgSetup, OrgSetup, Any]) -> None:
    setup, _, _ = convo
    async with await factory.client_for(setup.users[Role.owner]) as client:
        r = await client.get(f"/api/v1/organizations/{setup.id}/usage/conversations/nope")
    assert r.status_code == 404


async def test_the_drill_down_reads_the_partial_conversation_index(
    factory: Factory, db: AsyncSession, backend: str
) -> None:
    """Events of no conversation stay out of the index (migration 0015); the drill-down still uses it."""
    setup = await factory.org_with_roles("Index Co")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    events = [
        {
            "organization_id": setup.id,
            "request_id": f"ix-{n}",
            "created_at": start + timedelta(seconds=n),
            "model_id": MODEL,
            "provider_id": "openai",
            "route": "chat",
            "conversation_id": "c-1" if n % 10 == 0 else None,
        }
        for n in range(200)
    ]
    await factory.run(lambda s: record_events(s, events))
    found = await repository.conversation_events(db, setup.id, "c-1")
    assert [e.request_id for e in found] == [f"ix-{n}" for n in range(0, 200, 10)]

    query = (
        select(UsageEvent)
        .where(UsageEvent.organization_id == setup.id, UsageEvent.conversation_id == "c-1")
        .order_by(UsageEvent.created_at)
    )
    compiled = query.compile(dialect=db.bind.dialect, compile_kwargs={"literal_binds": True})
    if backend == "postgresql":
        definition = await db.scalar(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_usage_events_org_conversation'")
        )
        await db.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(await db.scalars(text(f"EXPLAIN {compiled}")))
    else:
        definition = await db.scalar(
            text("SELECT sql FROM sqlite_master WHERE name = 'ix_usage_events_org_conversation'")
        )
        plan = "\n".join(row[-1] for row in await db.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
    assert "conversation_id IS NOT NULL" in str(definition), definition
    assert "ix_usage_events_org_conversation" in plan, plan
