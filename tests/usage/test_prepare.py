"""A batch of ingested events is checked and made into rows a column at a time when every event is valid.

The rows must be exactly what each event says (checked against a row made here, field by field, from the
event alone), and any invalid event must send the batch down the event-by-event checks, so that every error
still names its event while the valid events' rows are still made.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.catalog.pricing import TokenUsage, cost_nanousd
from tokenboard.catalog.service import CatalogCache, catalog
from tokenboard.kit.money import to_nanousd
from tokenboard.members.roles import Role
from tokenboard.usage.ingest import COLUMNS, EventColumns, _complete_all, _complete_columns
from tokenboard.usage.schemas import UsageEventCreate
from tokenboard.usage.service import Directory, UsageService

from ..support.factories import Factory

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
_ID, _CREATED = COLUMNS.index("id"), COLUMNS.index("created_at")


async def _setup(
    factory: Factory, db: AsyncSession
) -> tuple[uuid.UUID, CatalogCache, Directory, dict[str, Any]]:
    await factory.run(lambda s: catalog.sync(s, provider_ids=["openai", "anthropic"]))
    cache = CatalogCache()
    await cache.load(db)
    owner = await factory.user(email="owner@example.com")
    org = await factory.org(owner)
    member = await factory.user(email="member@example.com")
    await factory.add_member(org, member, Role.member)
    team, workspace = await factory.team(org), await factory.workspace(org)
    directory = await Directory.load(db, org.id)
    known = {"owner": owner.id, "member": member.id, "team": team.id, "workspace": workspace.id}
    return org.id, cache, directory, known


def _events(known: dict[str, Any]) -> list[UsageEventCreate]:
    """Valid events using every way an event may be given: ids or emails, costs given or priced, naive
    and offset timestamps, attribution, workspaces and teams."""
    paris = timezone(timedelta(hours=1))
    events: list[dict[str, Any]] = [
        {"id": "a", "timestamp": NOW - timedelta(days=3), "model": "openai/gpt-4o-mini", "input_tokens": 10},
        {
            "id": "b",
            "timestamp": datetime(2026, 5, 30, 9, 30),  # naive: UTC
            "model": "anthropic/claude-sonnet-4-5",
            "user_id": known["member"],
            "input_tokens": 1200,
            "cached_input_tokens": 300,
            "cache_write_5m_tokens": 40,
            "cache_write_1h_tokens": 20,
            "output_tokens": 77,
            "web_searches": 2,
            "input_audio_tokens": 200,
            "output_audio_tokens": 7,
            "stream": True,
            "latency_ms": 812,
            "feature": "chat",
            "tool": "editor",
            "integration": "slack",
            "conversation_id": "conv-1",
            "message_id": "msg-1",
        },
        {
            "id": "c",
            "timestamp": datetime(2026, 5, 31, 23, 30, tzinfo=paris),
            "model": "openai/gpt-4o",
            "user_email": " Owner@Example.com ",
            "cost_usd": "0.0125",
            "workspace_id": known["workspace"],
            "team_id": known["team"],
            "status_code": 500,
            "error_type": "upstream_500",
        },
        {
            "id": "d",
            "timestamp": NOW,
            "model": "openai/gpt-4o-mini",
            "user_id": known["owner"],
            "user_email": "owner@example.com",
            "cost_nanousd": 123_456,
            "reasoning_tokens": 5,
            "cancelled": True,
        },
    ]
    return [UsageEventCreate.model_validate(e) for e in events]


def _without_ids(records: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [record[:_ID] + record[_ID + 1 :] for record in records]


def _expected(
    org_id: uuid.UUID, event: UsageEventCreate, cache: CatalogCache, directory: Directory
) -> dict[str, Any]:
    """The row a valid event must become, field by field, from the event alone."""
    at = event.timestamp if event.timestamp.tzinfo else event.timestamp.replace(tzinfo=UTC)
    at = at.astimezone(UTC)
    entry = cache.get(event.model)
    assert entry is not None
    user = event.user_id
    if event.user_email is not None:
        user = directory.emails[event.user_email.strip().lower()]
    if event.cost_nanousd is not None:
        cost = event.cost_nanousd
    elif event.cost_usd is not None:
        cost = to_nanousd(Decimal(event.cost_usd))
    else:
        prices = entry.price_at(at)
        assert prices is not None
        tokens = TokenUsage(
            input_tokens=event.input_tokens,
            cached_input_tokens=event.cached_input_tokens,
            cache_write_5m_tokens=event.cache_write_5m_tokens,
            cache_write_1h_tokens=event.cache_write_1h_tokens,
            output_tokens=event.output_tokens,
            reasoning_tokens=event.reasoning_tokens,
            web_searches=event.web_searches,
            input_audio_tokens=event.input_audio_tokens,
            output_audio_tokens=event.output_audio_tokens,
        )
        cost = cost_nanousd(prices, tokens)
    as_given = (
        "stream", "status_code", "error_type", "input_tokens", "cached_input_tokens", "cache_write_5m_tokens",
        "cache_write_1h_tokens", "output_tokens", "reasoning_tokens", "web_searches", "cancelled",
        "latency_ms", "feature", "tool", "integration", "conversation_id", "message_id", "input_audio_tokens",
        "output_audio_tokens",
    )  # fmt: skip
    return {
        "organization_id": org_id,
        "request_id": event.id,
        "created_at": at,
        "source": "api",
        "route": "external",
        "user_id": user,
        "workspace_id": event.workspace_id,
        "team_id": event.team_id,
        "provider_id": entry.provider_id,
        "model_id": entry.model_id,
        "cost_nanousd": cost,
        **{name: getattr(event, name) for name in as_given},
    }


async def test_a_valid_batch_is_made_a_column_at_a_time_into_the_same_rows(
    factory: Factory, db: AsyncSession
) -> None:
    org_id, cache, directory, known = await _setup(factory, db)
    service = UsageService()
    for events in (_events(known), _events(known)[:1], _events(known)[1:3]):
        columns, errors = service.prepare(
            org_id, events, catalog=cache, directory=directory, source="api", now=NOW
        )
        assert errors == [] and isinstance(columns, EventColumns) and len(columns) == len(events)
        expected = [_expected(org_id, e, cache, directory) for e in events]
        made = _complete_columns(columns)
        assert _without_ids(made) == _without_ids(_complete_all(expected))
        assert len({record[_ID] for record in made}) == len(events)
        # in UTC, not only the same instant (aware datetimes compare equal across offsets)
        assert all(record[_CREATED].utcoffset() == timedelta(0) for record in made)
    # The trickier fields, spelled out, to be sure the expectation itself did something.
    rows = dict(zip(COLUMNS, made[1], strict=True))
    assert rows["user_id"] == known["owner"] and rows["workspace_id"] == known["workspace"]
    assert rows["cost_nanousd"] == 12_500_000 and rows["created_at"] == datetime(
        2026, 5, 31, 22, 30, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"timestamp": NOW + timedelta(days=2)}, "is in the future"),
        ({"timestamp": datetime(1, 1, 1, tzinfo=UTC)}, "more than ten years old"),
        ({"timestamp": NOW - timedelta(days=3660)}, "more than ten years old"),
        ({"model": "openai/no-such-model"}, "is not in the catalog"),
        ({"user_id": uuid.uuid4()}, "is not a member of this organization"),
        ({"user_email": "stranger@example.com"}, "is not a member of this organization"),
        ({"user_email": "member@example.com", "owner": True}, "name different members"),
        ({"workspace_id": uuid.uuid4()}, "is not in this organization"),
        ({"team_id": uuid.uuid4()}, "is not in this organization"),
        ({"cost_usd": "1.5", "cost_nanousd": 7}, "not both"),
        ({"cost_usd": "lots"}, "is not a decimal amount"),
    ],
)
async def test_an_invalid_event_sends_the_batch_one_by_one_and_is_named(
    factory: Factory, db: AsyncSession, change: dict[str, Any], message: str
) -> None:
    org_id, cache, directory, known = await _setup(factory, db)
    events = _events(known)
    fields = {k: v for k, v in change.items() if k != "owner"}
    if change.get("owner"):
        fields["user_id"] = known["owner"]
    events[0] = events[0].model_copy(update=fields)
    rows, errors = UsageService().prepare(
        org_id, events, catalog=cache, directory=directory, source="api", now=NOW
    )
    assert [e.index for e in errors] == [0] and message in errors[0].message
    expected = [_expected(org_id, e, cache, directory) for e in events[1:]]
    assert _without_ids(_complete_columns(rows)) == _without_ids(_complete_all(expected))
    assert list(rows.values["request_id"]) == ["b", "c", "d"]


async def test_a_batch_of_invalid_events_only_makes_no_rows(factory: Factory, db: AsyncSession) -> None:
    org_id, cache, directory, known = await _setup(factory, db)
    events = [e.model_copy(update={"model": "openai/no-such-model"}) for e in _events(known)]
    rows, errors = UsageService().prepare(
        org_id, events, catalog=cache, directory=directory, source="api", now=NOW
    )
    assert [e.index for e in errors] == [0, 1, 2, 3] and len(rows) == 0
