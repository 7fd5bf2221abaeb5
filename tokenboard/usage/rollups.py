"""Rollups: usage summed per organization, day or hour, user, model and attribution, kept current.

:func:`apply` takes the usage events *newly inserted* in the current transaction (a retried event is never
inserted twice, so it is never applied twice), sums them in Python, then adds the sums to every rollup with
one ``INSERT ... ON CONFLICT DO UPDATE SET col = col + excluded.col`` per table: exact integer sums, on
SQLite and PostgreSQL alike, and safe under concurrent writers (the upsert locks the row it adds to).

Distinct users per day (and per day and model) are counted once: the upsert of a user's first row of a day
returns that row with exactly the requests just added, which is how the rollup knows the user is new that
day; concurrent writers serialise on the row, so two of them cannot both see it as new.

:func:`rebuild` deletes an organization's rollups and applies its raw events again, in the same code path.
All days and hours are UTC. The design is recorded in docs/decisions/0003-usage-rollups.md.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Table, delete, func, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.models import (
    UsageConversation,
    UsageDay,
    UsageDayModel,
    UsageDayUser,
    UsageDayUserModel,
    UsageDimensionDay,
    UsageDimensionUserDay,
    UsageEvent,
    UsageHour,
    UsageHourUser,
    UsageLatencyBucket,
)
from tokenboard.models.usage_rollup_columns import FULL_METRICS, NO_USER, SLIM_METRICS
from tokenboard.usage import bulk

# The attribution dimensions and the event column each one reads. Events without a value are not counted.
DIMENSIONS: dict[str, str] = {
    "team": "team_id",
    "workspace": "workspace_id",
    "feature": "feature",
    "tool": "tool",
    "integration": "integration",
}


def _latency_bounds() -> tuple[int, ...]:
    """Upper bounds (ms, inclusive) of the latency buckets: R10 series (steps of ~25%), 1 ms to 10^7."""
    steps = (1.0, 1.25, 1.6, 2.0, 2.5, 3.2, 4.0, 5.0, 6.3, 8.0)
    bounds = sorted({round(step * 10**decade) for decade in range(7) for step in steps} | {10**7})
    return (0, *bounds)


# Fixed forever: rollups store bucket numbers. Changing the bounds needs `tokenboard rollups rebuild`.
LATENCY_BOUNDS = _latency_bounds()
OVERFLOW_BUCKET = len(LATENCY_BOUNDS)


def latency_bucket(latency_ms: int) -> int:
    """The bucket of a latency: the first bound at or above it (``OVERFLOW_BUCKET`` past the last)."""
    return bisect.bisect_left(LATENCY_BOUNDS, max(0, latency_ms))


def bucket_upper_ms(bucket: int) -> int | None:
    """What a percentile falling in ``bucket`` reads as: its upper bound (``None`` for the overflow)."""
    return LATENCY_BOUNDS[bucket] if bucket < OVERFLOW_BUCKET else None


def percentile_from_buckets(counts: Mapping[int, int], fraction: float) -> int | None:
    """Nearest-rank percentile over a histogram: the upper bound of the bucket holding that rank."""
    total = sum(counts.values())
    if total == 0:
        return None
    rank = max(1, -(-int(total * fraction * 1_000_000) // 1_000_000))  # ceil without float drift
    seen = 0
    for bucket in sorted(counts):
        seen += counts[bucket]
        if seen >= rank:
            return bucket_upper_ms(bucket) if bucket < OVERFLOW_BUCKET else LATENCY_BOUNDS[-1]
    return LATENCY_BOUNDS[-1]


def utc_day(at: datetime) -> date:
    return at.astimezone(UTC).date()


def utc_hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _full(event: Mapping[str, Any]) -> list[int]:
    return [
        1,
        1 if event["status_code"] >= 400 else 0,
        1 if event["cancelled"] else 0,
        1 if event["stream"] else 0,
        event["input_tokens"],
        event["cached_input_tokens"],
        event["cache_write_5m_tokens"] + event["cache_write_1h_tokens"],
        event["output_tokens"],
        event["reasoning_tokens"],
        event["cost_nanousd"],
        event["latency_ms"],
    ]


def total_input(event: Mapping[str, Any]) -> int:
    return int(
        event["input_tokens"]
        + event["cached_input_tokens"]
        + event["cache_write_5m_tokens"]
        + event["cache_write_1h_tokens"]
    )


def total_output(event: Mapping[str, Any]) -> int:
    return int(event["output_tokens"] + event["reasoning_tokens"])


def _add(target: list[int], values: Sequence[int]) -> None:
    for i, value in enumerate(values):
        target[i] += value


@dataclass
class _Conversation:
    user_id: uuid.UUID
    first_at: datetime
    last_at: datetime
    slim: list[int]


@dataclass
class Aggregates:
    """One batch of events summed per rollup key, in memory."""

    days: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)
    day_users: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)
    day_models: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)
    day_user_models: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)
    providers: dict[str, str] = field(default_factory=dict)
    hours: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)
    hour_users: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)
    dimensions: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)
    dimension_users: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)
    latency: dict[tuple[Any, ...], int] = field(default_factory=dict)
    conversations: dict[tuple[Any, ...], _Conversation] = field(default_factory=dict)

    @classmethod
    def of(cls, events: Iterable[Mapping[str, Any]]) -> Aggregates:
        agg = cls()
        for event in events:
            agg.add(event)
        return agg

    def add(self, event: Mapping[str, Any]) -> None:
        org = event["organization_id"]
        at: datetime = event["created_at"]
        day, hour = utc_day(at), utc_hour(at)
        user = event.get("user_id") or NO_USER
        model = event["model_id"]
        self.providers.setdefault(model, event["provider_id"])
        full = _full(event)
        slim = [1, total_input(event), total_output(event), event["cost_nanousd"]]
        for table, key in (
            (self.days, (org, day)),
            (self.day_users, (org, day, user)),
            (self.day_models, (org, day, model)),
            (self.day_user_models, (org, day, user, model)),
        ):
            if key in table:
                _add(table[key], full)
            else:
                table[key] = list(full)
        for table, key in ((self.hours, (org, hour)), (self.hour_users, (org, hour, user))):
            _accumulate(table, key, slim)
        for dimension, column in DIMENSIONS.items():
            value = event.get(column)
            if value is None or value == "":
                continue
            value = str(value)
            _accumulate(self.dimensions, (org, dimension, day, value), slim)
            _accumulate(self.dimension_users, (org, dimension, user, day, value), slim)
        latency_key = (org, day, model, latency_bucket(event["latency_ms"]))
        self.latency[latency_key] = self.latency.get(latency_key, 0) + 1
        conversation_id = event.get("conversation_id")
        if conversation_id:
            found = self.conversations.get((org, conversation_id))
            if found is None:
                self.conversations[(org, conversation_id)] = _Conversation(user, at, at, list(slim))
            else:
                if at < found.first_at:
                    found.first_at, found.user_id = at, user
                found.last_at = max(found.last_at, at)
                _add(found.slim, slim)


def _accumulate(table: dict[tuple[Any, ...], list[int]], key: tuple[Any, ...], values: list[int]) -> None:
    if key in table:
        _add(table[key], values)
    else:
        table[key] = list(values)


# --- Writing ------------------------------------------------------------------------------------------


async def _upsert(
    session: AsyncSession,
    model: Any,
    keys: Sequence[str],
    rows: list[dict[str, Any]],
    add: Sequence[str],
    *,
    returning: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """Insert ``rows``, or add their ``add`` columns to the rows already there (keys unique in ``rows``)."""
    if not rows:
        return []
    table: Table = model.__table__
    columns = list(rows[0])
    records = [tuple(row[c] for c in columns) for row in rows]
    return await bulk.merge(
        session, table, columns, records, keys=keys, update=bulk.add_columns(table, add), returning=returning
    )


def _rows(
    names: Sequence[str], table: dict[tuple[Any, ...], list[int]], metrics: Sequence[str]
) -> list[dict[str, Any]]:
    return [
        dict(zip(names, key, strict=True)) | dict(zip(metrics, v, strict=True)) for key, v in table.items()
    ]


async def _new_keys(
    session: AsyncSession,
    model: Any,
    names: Sequence[str],
    table: dict[tuple[Any, ...], list[int]],
    extra: Any,
) -> list[tuple[Any, ...]]:
    """Upsert a per-user table; return the keys whose row this batch created (the user is new there)."""
    rows = _rows(names, table, FULL_METRICS)
    for row in rows:
        row.update(extra(row))
    returned = await _upsert(session, model, names, rows, FULL_METRICS, returning=(*names, "requests"))
    # A row's requests after the upsert equal the requests just added only when it did not exist before:
    # every event adds one request, so an existing row always holds at least one already.
    return [tuple(r[:-1]) for r in returned if r[-1] == table[tuple(r[:-1])][0]]


async def apply(session: AsyncSession, events: Sequence[Mapping[str, Any]]) -> None:
    """Add newly inserted usage events to every rollup. Call once per event, in the event's transaction."""
    if not events:
        return
    agg = Aggregates.of(events)
    providers = agg.providers
    new_user_days = await _new_keys(
        session, UsageDayUser, ("organization_id", "day", "user_id"), agg.day_users, lambda _: {}
    )
    new_user_models = await _new_keys(
        session,
        UsageDayUserModel,
        ("organization_id", "day", "user_id", "model_id"),
        agg.day_user_models,
        lambda row: {"provider_id": providers[row["model_id"]]},
    )
    # Requests without a user are not a user: they never count towards the distinct users.
    day_users: dict[tuple[Any, ...], int] = {}
    for org, day, user in new_user_days:
        if user != NO_USER:
            day_users[(org, day)] = day_users.get((org, day), 0) + 1
    model_users: dict[tuple[Any, ...], int] = {}
    for org, day, user, model in new_user_models:
        if user != NO_USER:
            model_users[(org, day, model)] = model_users.get((org, day, model), 0) + 1

    day_rows = _rows(("organization_id", "day"), agg.days, FULL_METRICS)
    for row in day_rows:
        row["users"] = day_users.get((row["organization_id"], row["day"]), 0)
    await _upsert(session, UsageDay, ("organization_id", "day"), day_rows, (*FULL_METRICS, "users"))
    model_rows = _rows(("organization_id", "day", "model_id"), agg.day_models, FULL_METRICS)
    for row in model_rows:
        row["provider_id"] = providers[row["model_id"]]
        row["users"] = model_users.get((row["organization_id"], row["day"], row["model_id"]), 0)
    await _upsert(
        session, UsageDayModel, ("organization_id", "day", "model_id"), model_rows, (*FULL_METRICS, "users")
    )
    await _write_slim(session, agg)
    await _write_conversations(session, agg)


async def _write_slim(session: AsyncSession, agg: Aggregates) -> None:
    for model, names, table in (
        (UsageHour, ("organization_id", "hour"), agg.hours),
        (UsageHourUser, ("organization_id", "hour", "user_id"), agg.hour_users),
        (UsageDimensionDay, ("organization_id", "dimension", "day", "value"), agg.dimensions),
        (
            UsageDimensionUserDay,
            ("organization_id", "dimension", "user_id", "day", "value"),
            agg.dimension_users,
        ),
    ):
        await _upsert(session, model, names, _rows(names, table, SLIM_METRICS), SLIM_METRICS)
    latency_rows = [
        {"organization_id": org, "day": day, "model_id": model, "bucket": bucket, "requests": count}
        for (org, day, model, bucket), count in agg.latency.items()
    ]
    await _upsert(
        session,
        UsageLatencyBucket,
        ("organization_id", "day", "model_id", "bucket"),
        latency_rows,
        ("requests",),
    )


async def _write_conversations(session: AsyncSession, agg: Aggregates) -> None:
    if not agg.conversations:
        return
    table: Table = UsageConversation.__table__  # type: ignore[assignment]
    least, greatest = ("least", "greatest") if bulk.is_postgres(session) else ("min", "max")
    name = table.name
    update = bulk.add_columns(table, SLIM_METRICS) | {
        # The conversation belongs to the user of its earliest event.
        "user_id": (
            f"CASE WHEN excluded.first_at < {name}.first_at THEN excluded.user_id ELSE {name}.user_id END"
        ),
        "first_at": f"{least}({name}.first_at, excluded.first_at)",
        "last_at": f"{greatest}({name}.last_at, excluded.last_at)",
    }
    columns = ["organization_id", "conversation_id", "user_id", "first_at", "last_at", *SLIM_METRICS]
    records = [
        (org, conversation_id, c.user_id, c.first_at, c.last_at, *c.slim)
        for (org, conversation_id), c in agg.conversations.items()
    ]
    await bulk.merge(
        session, table, columns, records, keys=("organization_id", "conversation_id"), update=update
    )


# --- Rebuild ------------------------------------------------------------------------------------------

ROLLUP_MODELS = (
    UsageDay,
    UsageDayUser,
    UsageDayModel,
    UsageDayUserModel,
    UsageHour,
    UsageHourUser,
    UsageDimensionDay,
    UsageDimensionUserDay,
    UsageLatencyBucket,
    UsageConversation,
)
REBUILD_CHUNK = 5_000


async def count_events(session: AsyncSession, org_id: uuid.UUID | None = None) -> int:
    stmt = select(func.count()).select_from(UsageEvent)
    if org_id is not None:
        stmt = stmt.where(UsageEvent.organization_id == org_id)
    return int(await session.scalar(stmt) or 0)


async def rebuild(
    session: AsyncSession,
    org_id: uuid.UUID | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    chunk: int = REBUILD_CHUNK,
) -> int:
    """Delete the rollups (of one organization, or all) and recompute them from the raw usage events.

    The events are read in key order and applied through :func:`apply`, the path ingestion takes, so the
    result equals what incremental application produced. New events wait until the rebuild commits (on
    PostgreSQL the event table is locked against writes; SQLite has one writer anyway). Returns how many
    events were applied; ``progress`` is called with the size of each chunk.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("LOCK TABLE usage_events IN SHARE MODE"))
    for model in ROLLUP_MODELS:
        deletion = delete(model)
        if org_id is not None:
            deletion = deletion.where(model.organization_id == org_id)
        await session.execute(deletion.execution_options(synchronize_session=False))
    columns = list(UsageEvent.__table__.c)
    key = tuple_(UsageEvent.organization_id, UsageEvent.id)
    last: tuple[Any, Any] | None = None
    applied = 0
    while True:
        stmt = select(*columns).order_by(UsageEvent.organization_id, UsageEvent.id).limit(chunk)
        if org_id is not None:
            stmt = stmt.where(UsageEvent.organization_id == org_id)
        if last is not None:
            stmt = stmt.where(key > tuple_(*last))
        events = [dict(row) for row in (await session.execute(stmt)).mappings()]
        if not events:
            return applied
        await apply(session, events)
        applied += len(events)
        last = (events[-1]["organization_id"], events[-1]["id"])
        if progress is not None:
            progress(len(events))
