"""Rollups equal an independent computation over the raw events, on both engines, for every read.

The oracle below is plain Python over the event rows as stored (read back from ``usage_events``); it shares
no code with the rollups except the latency bucket bounds, which are part of the specification.
"""

from __future__ import annotations

import asyncio
import math
import random
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support.factories import Factory
from tokenboard.models import Organization, UsageEvent, User
from tokenboard.models.usage_rollup_columns import NO_USER
from tokenboard.usage import repository
from tokenboard.usage.ingest import record_events
from tokenboard.usage.rollups import LATENCY_BOUNDS, ROLLUP_MODELS, rebuild

START = datetime(2025, 12, 20, tzinfo=UTC)
MODELS = [
    ("openai/gpt-4o", "openai"),
    ("anthropic/claude-sonnet-4", "anthropic"),
    ("google/gemini-2.5", "google"),
]
FEATURES = ["chat", "agents", "search", None]
TOOLS = ["web_search", "code", None, None]
INTEGRATIONS = ["slack", "gmail", None]


def make_events(org_id: uuid.UUID, users: list[uuid.UUID | None], n: int, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    events = []
    for i in range(n):
        model, provider = rnd.choice(MODELS)
        at = START + timedelta(days=rnd.randrange(45), hours=rnd.randrange(24), seconds=rnd.randrange(3600))
        status = rnd.choice([200] * 9 + [500])
        events.append(
            {
                "organization_id": org_id,
                "request_id": f"req-{seed}-{i}",
                "created_at": at,
                "user_id": rnd.choice(users),
                "model_id": model,
                "provider_id": provider,
                "status_code": status,
                "stream": rnd.random() < 0.4,
                "cancelled": rnd.random() < 0.05,
                "input_tokens": rnd.randrange(5000),
                "cached_input_tokens": rnd.randrange(500),
                "cache_write_5m_tokens": rnd.randrange(100),
                "cache_write_1h_tokens": rnd.randrange(50),
                "output_tokens": rnd.randrange(2000),
                "reasoning_tokens": rnd.randrange(300),
                "cost_nanousd": rnd.randrange(10**8),
                "latency_ms": int(rnd.lognormvariate(6, 1.2)),
                "feature": rnd.choice(FEATURES),
                "tool": rnd.choice(TOOLS),
                "integration": rnd.choice(INTEGRATIONS),
                "team_id": rnd.choice([None, uuid.UUID(int=7)]),
                "conversation_id": rnd.choice([None, f"conv-{rnd.randrange(40)}"]),
                "message_id": f"m{i}",
            }
        )
    return events


# --- The oracle ------------------------------------------------------------------------------------------


def t_in(e: dict[str, Any]) -> int:
    return int(
        e["input_tokens"] + e["cached_input_tokens"] + e["cache_write_5m_tokens"] + e["cache_write_1h_tokens"]
    )


def t_out(e: dict[str, Any]) -> int:
    return int(e["output_tokens"] + e["reasoning_tokens"])


def usage_of(events: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "requests": len(events),
        "cost_nanousd": sum(e["cost_nanousd"] for e in events),
        "input_tokens": sum(t_in(e) for e in events),
        "output_tokens": sum(t_out(e) for e in events),
    }


def usage_fields(row: Any) -> dict[str, int]:
    return {
        "requests": row.requests,
        "cost_nanousd": row.cost_nanousd,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
    }


def group(
    events: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any]
) -> dict[Any, list[dict[str, Any]]]:
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        groups[key(e)].append(e)
    return groups


def day_of(e: dict[str, Any]) -> date:
    return e["created_at"].astimezone(UTC).date()


def in_range(events: list[dict[str, Any]], start: date | None, end: date | None) -> list[dict[str, Any]]:
    return [e for e in events if (start is None or day_of(e) >= start) and (end is None or day_of(e) <= end)]


def distinct_users(events: list[dict[str, Any]]) -> int:
    return len({e["user_id"] for e in events if e["user_id"] is not None})


def nearest_rank(values: list[int], fraction: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * fraction)) - 1]


def bucket_bound(latency: int) -> int:
    """The smallest bound at or above a latency (the bounds are the specification)."""
    return next(b for b in LATENCY_BOUNDS if b >= latency)


# --- Setup ----------------------------------------------------------------------------------------------


async def setup_org(factory: Factory) -> tuple[Organization, list[User]]:
    owner = await factory.user()
    org = await factory.org(owner)
    others = [await factory.user() for _ in range(3)]
    return org, [owner, *others]


async def stored_events(db: AsyncSession, org_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = (
        await db.execute(select(*UsageEvent.__table__.c).where(UsageEvent.organization_id == org_id))
    ).mappings()
    return [dict(r) for r in rows]


async def ingest(factory: Factory, events: list[dict[str, Any]], batch: int) -> int:
    inserted = 0
    for i in range(0, len(events), batch):
        chunk = events[i : i + batch]
        inserted += len(await factory.run(lambda s, chunk=chunk: record_events(s, chunk)))  # type: ignore[misc]
    return inserted


async def snapshot(db: AsyncSession) -> dict[str, list[tuple[Any, ...]]]:
    result = {}
    for model in ROLLUP_MODELS:
        rows = (await db.execute(select(*model.__table__.c))).all()
        result[model.__tablename__] = sorted((tuple(r) for r in rows), key=repr)
    return result


# --- Tests ----------------------------------------------------------------------------------------------


async def check_reads(
    db: AsyncSession, org: Organization, users: list[User], raw: list[dict[str, Any]]
) -> None:
    org_id = org.id
    emails = {u.id: u.email for u in users}
    ranges = [
        (None, None),
        (date(2026, 1, 1), date(2026, 1, 15)),
        (date(2025, 12, 25), None),
        (date(2025, 12, 22), date(2026, 2, 1)),  # a full month between two edges
        (date(2025, 12, 20), date(2026, 1, 12)),  # days of two months, no full month
        (date(2025, 12, 10), date(2026, 1, 25)),  # edges covering most of their months
        (date(2026, 1, 2), date(2026, 1, 30)),  # one month less its first and last days
    ]
    me = users[1].id
    for start, end in ranges:
        for user in (None, me):
            events = [e for e in in_range(raw, start, end) if user is None or e["user_id"] == user]

            summary = await repository.summary(db, org_id, start, end, user_id=user, as_of=date(2026, 1, 10))
            assert usage_fields(summary) == usage_of(events)
            assert summary.errors == sum(1 for e in events if e["status_code"] >= 400)
            week = [
                e
                for e in raw
                if date(2026, 1, 4) <= day_of(e) <= date(2026, 1, 10)
                and (user is None or e["user_id"] == user)
            ]
            assert summary.active_users_7d == distinct_users(week)
            if events:
                exact = Decimal(summary.cost_nanousd) / Decimal(summary.requests)
                assert summary.avg_cost_per_request_nanousd == int(
                    exact.quantize(Decimal(1), ROUND_HALF_EVEN)
                )

            days = await repository.by_day(db, org_id, start, end, user_id=user)
            expected_days = group(events, day_of)
            assert [d.day for d in days] == sorted(expected_days, reverse=True)
            for row in days:
                assert usage_fields(row) == usage_of(expected_days[row.day])
                assert row.users == distinct_users(expected_days[row.day])
                lines = await repository.by_day_users(db, org_id, row.day, user_id=user)
                per_user = group(expected_days[row.day], lambda e: e["user_id"])
                assert {line.user_id for line in lines} == set(per_user)
                for line in lines:
                    assert usage_fields(line) == usage_of(per_user[line.user_id])
                    assert line.email == emails.get(line.user_id)  # type: ignore[arg-type]
                assert [line.cost_nanousd for line in lines] == sorted(
                    (line.cost_nanousd for line in lines), reverse=True
                )

            model_days = await repository.by_model_day(db, org_id, start, end, user_id=user)
            expected_md = group(events, lambda e: (day_of(e), e["model_id"]))
            assert {(r.day, r.model_id) for r in model_days} == set(expected_md)
            for md in model_days:
                group_events = expected_md[(md.day, md.model_id)]
                assert usage_fields(md) == usage_of(group_events)
                assert md.users == distinct_users(group_events)
                assert md.provider_id == group_events[0]["provider_id"]
                lines = await repository.by_model_day_users(db, org_id, md.day, md.model_id, user_id=user)
                per_user = group(group_events, lambda e: e["user_id"])
                assert {line.user_id: usage_fields(line) for line in lines} == {
                    k: usage_of(v) for k, v in per_user.items()
                }

            cells = await repository.hourly_pattern(db, org_id, start, end, user_id=user)
            assert len(cells) == 7 * 24
            expected_cells = group(events, lambda e: (e["created_at"].weekday(), e["created_at"].hour))
            for cell in cells:
                assert usage_fields(cell) == usage_of(expected_cells.get((cell.weekday, cell.hour), []))

            months = await repository.by_month(db, org_id, start, end, user_id=user)
            expected_months = group(events, lambda e: day_of(e).replace(day=1))
            assert [m.start for m in months] == sorted(expected_months)
            for month in months:
                assert usage_fields(month) == usage_of(expected_months[month.start])
            years = await repository.by_year(db, org_id, start, end, user_id=user)
            expected_years = group(events, lambda e: date(day_of(e).year, 1, 1))
            assert {y.start: usage_fields(y) for y in years} == {
                k: usage_of(v) for k, v in expected_years.items()
            }

            popularity = await repository.model_popularity(db, org_id, start, end, user_id=user)
            per_model = group(events, lambda e: e["model_id"])
            org_per_model = group(in_range(raw, start, end), lambda e: e["model_id"])
            total_cost = sum(e["cost_nanousd"] for e in events)
            assert {m.model_id for m in popularity} == set(per_model)
            for stats in popularity:
                model_events = per_model[stats.model_id]
                assert usage_fields(stats) == usage_of(model_events)
                errors = sum(1 for e in model_events if e["status_code"] >= 400)
                assert stats.errors == errors and stats.error_rate == errors / len(model_events)
                # a period of only free requests (errors) has no cost to share: 0, as the page shows it
                assert stats.cost_share == (stats.cost_nanousd / total_cost if total_cost else 0.0)
                latencies = [e["latency_ms"] for e in org_per_model[stats.model_id]]
                assert stats.latency_p50_ms == bucket_bound(nearest_rank(latencies, 0.50))
                assert stats.latency_p95_ms == bucket_bound(nearest_rank(latencies, 0.95))
                true_p95 = nearest_rank(latencies, 0.95)
                assert true_p95 <= stats.latency_p95_ms <= max(1, true_p95) * 1.3  # ~25% buckets

            providers = await repository.provider_mix(db, org_id, start, end, user_id=user)
            per_provider = group(events, lambda e: e["provider_id"])
            assert {p.provider_id: usage_fields(p) for p in providers} == {
                k: usage_of(v) for k, v in per_provider.items()
            }

            for dimension, column in [
                ("feature", "feature"),
                ("tool", "tool"),
                ("integration", "integration"),
                ("team", "team_id"),
                ("workspace", "workspace_id"),
            ]:
                rows = await repository.dimension_breakdown(db, org_id, dimension, start, end, user_id=user)
                expected = group([e for e in events if e[column] is not None], lambda e, c=column: str(e[c]))  # type: ignore[misc]
                assert {r.value: usage_fields(r) for r in rows} == {
                    k: usage_of(v) for k, v in expected.items()
                }

        totals, _ = await repository.top_users(db, org_id, start, end, top=1_000)  # everyone
        per_user = group(in_range(raw, start, end), lambda e: e["user_id"])
        assert {t.user_id: usage_fields(t) for t in totals} == {k: usage_of(v) for k, v in per_user.items()}
        expected_order = sorted(
            per_user,
            key=lambda k: (
                -usage_of(per_user[k])["cost_nanousd"],
                -usage_of(per_user[k])["requests"],
                emails.get(k, "") if k is not None else "",  # type: ignore[arg-type]
            ),
        )
        assert [t.user_id for t in totals] == expected_order
        for n in (1, 2, 3, 10):
            lines, member_costs = await repository.top_users(db, org_id, start, end, top=n)
            assert lines == totals[:n]
            assert member_costs == sorted(
                (usage_of(v)["cost_nanousd"] for k, v in per_user.items() if k is not None), reverse=True
            )

    await check_conversations(db, org_id, emails, raw, me)


async def check_conversations(
    db: AsyncSession,
    org_id: uuid.UUID,
    emails: dict[uuid.UUID, str],
    raw: list[dict[str, Any]],
    me: uuid.UUID,
) -> None:
    """A conversation is one user's events with its id (the events of no user have their own): the lists
    (everyone's, one user's), each id's rows and each row's events."""
    convs = group([e for e in raw if e["conversation_id"]], lambda e: (e["conversation_id"], e["user_id"]))
    expected_convs = {
        key: (
            min(e["created_at"] for e in conv_events),
            max(e["created_at"] for e in conv_events),
            usage_of(conv_events),
        )
        for key, conv_events in convs.items()
    }
    for user in (None, me):
        listed = await repository.conversations(db, org_id, user_id=user, limit=1000)
        assert {(c.conversation_id, c.user_id): (c.first_at, c.last_at, usage_fields(c)) for c in listed} == {
            k: v for k, v in expected_convs.items() if user is None or k[1] == user
        }
        assert [(c.last_at, c.conversation_id) for c in listed] == sorted(
            ((c.last_at, c.conversation_id) for c in listed), key=lambda k: (-k[0].timestamp(), k[1])
        )
        for c in listed:
            assert c.duration == c.last_at - c.first_at
            assert c.email == emails.get(c.user_id)  # type: ignore[arg-type]
    # Each conversation id's rows, and each row's events: only that user's.
    for conv_id in {k[0] for k in convs}:
        rows = await repository.conversation_rows(db, org_id, conv_id)
        assert {c.user_id: usage_fields(c) for c in rows} == {
            k[1]: v[2] for k, v in expected_convs.items() if k[0] == conv_id
        }
        for c in rows:
            key = c.user_id or NO_USER
            assert [
                r.user_id for r in await repository.conversation_rows(db, org_id, conv_id, user_id=key)
            ] == [c.user_id]
            found = await repository.conversation_events(db, org_id, conv_id, user_id=key, limit=10_000)
            assert sorted(e.request_id for e in found) == sorted(
                e["request_id"] for e in convs[(conv_id, c.user_id)]
            )


async def test_rollups_equal_an_independent_computation(factory: Factory, db: AsyncSession) -> None:
    org, users = await setup_org(factory)
    other_org, _ = await setup_org(factory)
    people: list[uuid.UUID | None] = [u.id for u in users] + [None]
    events = make_events(org.id, people, 700, seed=1)
    # Another organization's usage lands in the same batches and must never show up.
    noise = make_events(other_org.id, [None], 150, seed=2)
    mixed = events + noise
    random.Random(3).shuffle(mixed)
    assert await ingest(factory, mixed, batch=173) == len(mixed)
    raw = await stored_events(db, org.id)
    assert len(raw) == len(events)
    await check_reads(db, org, users, raw)


async def test_retried_events_never_double_count(factory: Factory, db: AsyncSession) -> None:
    org, users = await setup_org(factory)
    events = make_events(org.id, [u.id for u in users], 300, seed=4)
    assert await ingest(factory, events[:200], batch=64) == 200
    before = await snapshot(db)
    # Every event again, in other batches, and duplicates within one batch: only the 100 new ones land.
    again = events[150:] + events[:150] + events[250:260]
    assert await ingest(factory, again, batch=97) == 100
    assert await ingest(factory, events, batch=1000) == 0
    after = await snapshot(db)
    assert after != before
    raw = await stored_events(db, org.id)
    assert len(raw) == 300
    await check_reads(db, org, users, raw)


async def test_the_inserted_rows_and_their_total_leave_out_events_stored_before(factory: Factory) -> None:
    org, users = await setup_org(factory)
    events = make_events(org.id, [u.id for u in users], 40, seed=6)
    await factory.run(lambda s: record_events(s, events[:25]))
    # 15 new, 10 stored before, one repeated within the batch.
    batch = [*events[15:], events[30]]
    inserted = await factory.run(lambda s: record_events(s, batch))
    assert [row["request_id"] for row in inserted] == [e["request_id"] for e in events[25:]]
    assert inserted.total("cost_nanousd") == sum(e["cost_nanousd"] for e in events[25:]) > 0
    assert inserted.total("output_tokens") == sum(e["output_tokens"] for e in events[25:])


async def test_concurrent_writers_of_overlapping_batches_count_each_event_once(
    factory: Factory, db: AsyncSession
) -> None:
    org, users = await setup_org(factory)
    events = make_events(org.id, [u.id for u in users] + [None], 300, seed=12)
    # Each writer's batch overlaps the others' (PostgreSQL: a COPY that meets a request id another writer
    # holds uncommitted waits for it, fails on the key, and falls back to skipping the stored ones).
    slices = (events[0:200], events[100:300], events[50:250], events[0:300])
    counts = await asyncio.gather(
        *(factory.run(lambda s, chunk=chunk: record_events(s, chunk)) for chunk in slices)  # type: ignore[misc]
    )
    assert sum(len(c) for c in counts) == 300
    raw = await stored_events(db, org.id)
    assert len(raw) == 300
    await check_reads(db, org, users, raw)


def shared_conversations(org_id: uuid.UUID, users: list[uuid.UUID | None], seed: int) -> list[dict[str, Any]]:
    """Conversation ids sent by several users (and by no user), some of their events at the same instant,
    spread over the batches."""
    base = make_events(org_id, users, 1, seed=seed)[0]
    at = START + timedelta(days=3, hours=5)
    return [
        {
            **base,
            "request_id": f"shared-{seed}-{c}-{i}",
            "conversation_id": f"shared-{c}",
            "user_id": users[(c + i) % len(users)],
            "created_at": at + timedelta(seconds=(i // len(users)) * (c + 1)),
            "cost_nanousd": 1_000 * c + i,
        }
        for c in range(3)
        for i in range(3 * len(users))
    ]


async def test_rebuild_equals_incremental(factory: Factory, db: AsyncSession) -> None:
    org, users = await setup_org(factory)
    other, _ = await setup_org(factory)
    people: list[uuid.UUID | None] = [u.id for u in users] + [None]
    events = make_events(org.id, people, 400, seed=5) + shared_conversations(org.id, people, seed=5)
    random.Random(5).shuffle(events)
    await ingest(factory, events, batch=50)
    await ingest(factory, make_events(other.id, [None], 120, seed=6), batch=50)
    incremental = await snapshot(db)
    # Conversation ids are shared by users: one row per user of an id, the events of no user in their own.
    conversations = incremental["usage_conversations"]
    per_id = group(
        [dict(zip(("org", "conversation", "user"), r[:3], strict=True)) for r in conversations],
        lambda r: (r["org"], r["conversation"]),
    )
    assert all(len(rows) == len(people) for key, rows in per_id.items() if key[1].startswith("shared-"))
    assert sum(len(rows) > 1 for rows in per_id.values()) > 10
    assert any(r[2] == NO_USER for r in conversations)
    raw = await stored_events(db, org.id)
    await check_conversations(db, org.id, {u.id: u.email for u in users}, raw, users[1].id)
    applied = await factory.run(lambda s: rebuild(s, org.id, chunk=37))
    assert applied == len(events)
    db.expire_all()
    assert await snapshot(db) == incremental
    seen: list[int] = []
    assert await factory.run(lambda s: rebuild(s, progress=seen.append, chunk=100)) == len(events) + 120
    assert sum(seen) == len(events) + 120
    db.expire_all()
    assert await snapshot(db) == incremental


async def test_users_without_an_account_are_not_counted_as_users(factory: Factory, db: AsyncSession) -> None:
    org, users = await setup_org(factory)
    events = make_events(org.id, [None, users[0].id], 60, seed=8)
    await ingest(factory, events, batch=25)
    raw = await stored_events(db, org.id)
    for row in await repository.by_day(db, org.id, None, None):
        assert row.users == distinct_users([e for e in raw if day_of(e) == row.day])
    anonymous_day = day_of(next(e for e in raw if e["user_id"] is None))
    lines = await repository.by_day_users(db, org.id, anonymous_day)
    assert any(line.user_id is None and line.email is None for line in lines)


async def test_top_users_break_cost_ties_as_the_full_ordering_does(
    factory: Factory, db: AsyncSession
) -> None:
    org, users = await setup_org(factory)
    base = make_events(org.id, [users[0].id], 1, seed=9)[0]
    events = [  # every user costs the same: the top one is decided by requests, then email
        {**base, "request_id": f"tie-{i}-{j}", "user_id": u.id, "cost_nanousd": 6_000 // (i + 1)}
        for i, u in enumerate(users)
        for j in range(i + 1)
    ]
    await ingest(factory, events, batch=100)
    everyone, _ = await repository.top_users(db, org.id, None, None, top=len(users) + 1)
    assert len({line.cost_nanousd for line in everyone}) == 1
    assert [line.user_id for line in everyone] == [u.id for u in reversed(users)]  # most requests first
    for n in range(1, len(users) + 1):
        lines, _ = await repository.top_users(db, org.id, None, None, top=n)
        assert lines == everyone[:n]
