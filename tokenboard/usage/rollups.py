"""Rollups: usage summed per organization, day or hour, user, model and attribution, kept current.

:func:`insert_and_apply` inserts a batch of usage events and adds *only those inserted now* to every rollup
(a retried event is never inserted twice, so it is never applied twice); :func:`apply` adds events already
stored (the rebuild). Each rollup gets one ``INSERT ... ON CONFLICT DO UPDATE SET col = col + excluded.col``:
exact integer sums, safe under concurrent writers (the upsert locks the row it adds to; every writer takes
the tables in the same order and their rows in key order, so two writers cannot deadlock).

- **PostgreSQL** sums on the server: the batch is copied (binary ``COPY``) straight into ``usage_events``
  under a savepoint (when a request id is already stored, the savepoint is undone and the batch goes through
  a temporary table and ``ON CONFLICT DO NOTHING``), the new events are read back into a temporary table,
  and one multi-statement script sums them once per finest grain and merges every rollup from those sums,
  in one round trip. Python never touches the events one by one after the copy.
- **SQLite** sums in Python, over the rows already in SQLite's storage format (text days and hours, hex
  UUIDs), at the finest grain only (day x user x model, hour x user, dimension x user), then derives the
  coarser tables from those sums; each table is then one ``executemany`` upsert on the driver.

Distinct users per day (and per day and model) are counted once: the upsert of a user's first row of a day
returns that row with exactly the requests just added, which is how the rollup knows the user is new that
day; concurrent writers serialise on the row, so two of them cannot both see it as new.

:func:`rebuild` deletes an organization's rollups and applies its raw events again, in the same code path.
All days and hours are UTC. The design is recorded in docs/decisions/0003-usage-rollups.md.
"""

from __future__ import annotations

import bisect
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from operator import add, itemgetter
from typing import Any, NamedTuple

import asyncpg
from sqlalchemy import Table, delete, func, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.kit import bulk, writer_gate
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
    UsageMonthDimension,
    UsageMonthDimensionUser,
    UsageMonthHourCell,
    UsageMonthLatencyBucket,
    UsageMonthModel,
    UsageMonthUser,
    UsageMonthUserHourCell,
    UsageMonthUserModel,
)
from tokenboard.models.usage_rollup_columns import FULL_METRICS, NO_USER, SLIM_METRICS

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


def bucket_reading(bucket: int | None) -> int | None:
    """What a percentile found in ``bucket`` reads as: the bucket's upper bound in ms (the last bound for
    the overflow bucket); ``None`` for no bucket (a model without requests)."""
    if bucket is None:
        return None
    return LATENCY_BOUNDS[min(bucket, OVERFLOW_BUCKET - 1)]


def utc_day(at: datetime) -> date:
    return at.astimezone(UTC).date()


def utc_hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def total_input(event: Mapping[str, Any]) -> int:
    return int(
        event["input_tokens"]
        + event["cached_input_tokens"]
        + event["cache_write_5m_tokens"]
        + event["cache_write_1h_tokens"]
    )


def total_output(event: Mapping[str, Any]) -> int:
    return int(event["output_tokens"] + event["reasoning_tokens"])


EVENTS: Table = UsageEvent.__table__  # type: ignore[assignment]
EVENT_COLUMNS: tuple[str, ...] = tuple(c.name for c in EVENTS.c)
EVENT_KEY = ("organization_id", "request_id")
_as_record = itemgetter(*EVENT_COLUMNS)


def _positions(*names: str) -> tuple[int, ...]:
    return tuple(EVENT_COLUMNS.index(name) for name in names)


async def insert_and_apply(session: AsyncSession, records: list[tuple[Any, ...]]) -> list[int]:
    """Insert usage events, skipping those already stored, and add the new ones to every rollup.

    ``records`` are complete ``usage_events`` rows as tuples in :data:`EVENT_COLUMNS` order (Python values,
    ``attachments`` already JSON text), unique on (organization_id, request_id). Returns the positions of
    the records inserted now, in order.
    """
    if not records:
        return []
    if bulk.is_postgres(session):
        return await _pg_insert_and_apply(session, records)
    return await _sqlite_insert_and_apply(session, records)


async def apply(session: AsyncSession, events: Sequence[Mapping[str, Any]]) -> None:
    """Add usage events already stored (complete rows, as read back) to every rollup: the rebuild's path."""
    if not events:
        return
    records = [_as_record(event) for event in events]
    if bulk.is_postgres(session):
        at = EVENT_COLUMNS.index("attachments")
        records = [r if r[at] is None else (*r[:at], json.dumps(r[at]), *r[at + 1 :]) for r in records]
        await _pg_apply(session, records)
    else:
        _, driver = await bulk.driver(session)
        stored = bulk.to_storage(records, _sqlite_converters(session))
        await _sqlite_write(driver, _Plan(_sqlite_sums(records, stored)))


# --- PostgreSQL: sums on the server ------------------------------------------------------------------------

_NIL = f"'{NO_USER}'::uuid"
_BOUNDS = "'{" + ",".join(str(b) for b in LATENCY_BOUNDS) + "}'::int[]"
_PG_PREPARE = """
CREATE TEMP TABLE IF NOT EXISTS tb_usage_in (n integer, LIKE usage_events) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS tb_usage_new (
    n integer, organization_id uuid, day date, hour timestamptz, user_id uuid, model_id text,
    provider_id text, errors integer, cancelled integer, streamed integer, input_tokens bigint,
    cached_input_tokens bigint, cache_write_tokens bigint, output_tokens bigint, reasoning_tokens bigint,
    cost_nanousd bigint, latency_ms integer, bucket integer, team text, workspace text, feature text,
    tool text, integration text, conversation_id text, created_at timestamptz
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS tb_usage_dims (
    organization_id uuid, dimension text, user_id uuid, day date, value text, requests bigint,
    total_input_tokens bigint, total_output_tokens bigint, cost_nanousd bigint
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS tb_usage_providers (model_id text, provider_id text) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS tb_usage_dum (
    organization_id uuid, day date, user_id uuid, model_id text, requests bigint, errors bigint,
    cancelled bigint, streamed bigint, input_tokens bigint, cached_input_tokens bigint,
    cache_write_tokens bigint, output_tokens bigint, reasoning_tokens bigint, cost_nanousd bigint,
    latency_ms_sum bigint
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS tb_usage_hu (
    organization_id uuid, hour timestamptz, user_id uuid, requests bigint, total_input_tokens bigint,
    total_output_tokens bigint, cost_nanousd bigint
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS tb_usage_latency (
    organization_id uuid, day date, model_id text, bucket integer, requests bigint
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS tb_usage_user_days (organization_id uuid, day date) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS tb_usage_user_models (organization_id uuid, day date, model_id text)
    ON COMMIT DELETE ROWS;
DELETE FROM tb_usage_in; DELETE FROM tb_usage_new; DELETE FROM tb_usage_providers; DELETE FROM tb_usage_dum;
DELETE FROM tb_usage_hu; DELETE FROM tb_usage_latency; DELETE FROM tb_usage_dims;
DELETE FROM tb_usage_user_days; DELETE FROM tb_usage_user_models;
"""
# One new event as the rollups see it: UTC day and hour, "no user" as the nil UUID, its latency bucket
# (bisect_left over the bounds: the number of bounds below the latency), dimension values as text.
_PG_DERIVED = f"""
    i.n, i.organization_id, (i.created_at AT TIME ZONE 'UTC')::date,
    date_trunc('hour', i.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', coalesce(i.user_id, {_NIL}),
    i.model_id, i.provider_id, (i.status_code >= 400)::int, i.cancelled::int, i.stream::int,
    i.input_tokens, i.cached_input_tokens, i.cache_write_5m_tokens + i.cache_write_1h_tokens,
    i.output_tokens, i.reasoning_tokens, i.cost_nanousd, i.latency_ms,
    width_bucket(greatest(i.latency_ms, 0) - 1, {_BOUNDS}), i.team_id::text, i.workspace_id::text,
    i.feature, i.tool, i.integration, i.conversation_id, i.created_at"""
_COLS = ", ".join(EVENT_COLUMNS)
_PG_INSERT = f"""
INSERT INTO usage_events ({_COLS}) SELECT {_COLS} FROM tb_usage_in ORDER BY n
ON CONFLICT (organization_id, request_id) DO NOTHING
"""
# Only when some were already stored: drop those from the staged rows, and say which they were. Every
# staged row has a fresh id (made by the pipeline), so a row was inserted now if and only if the row stored
# under its request id carries that id.
_PG_DROP_OLD = """
DELETE FROM tb_usage_in i WHERE NOT EXISTS (
    SELECT 1 FROM usage_events e
    WHERE e.organization_id = i.organization_id AND e.request_id = i.request_id AND e.id = i.id
) RETURNING n
"""
_PG_STAGE_ALL = f"INSERT INTO tb_usage_new SELECT {_PG_DERIVED} FROM tb_usage_in i;"
# After the COPY straight into usage_events: the batch's events read back by primary key, numbered in order.
_PG_STAGE_COPIED = f"""
INSERT INTO tb_usage_new SELECT {_PG_DERIVED} FROM (
    SELECT k.n, e.* FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS k(organization_id, request_id, n)
    JOIN usage_events e ON e.organization_id = k.organization_id AND e.request_id = k.request_id
) i
"""
_FULL = ", ".join(f"sum({c}) AS {c}" for c in ("errors", "cancelled", "streamed", *FULL_METRICS[4:10]))
_FULL = f"count(*) AS requests, {_FULL}, sum(latency_ms) AS latency_ms_sum"
_SLIM = (
    "count(*) AS requests, "
    "sum(input_tokens + cached_input_tokens + cache_write_tokens) AS total_input_tokens, "
    "sum(output_tokens + reasoning_tokens) AS total_output_tokens, sum(cost_nanousd) AS cost_nanousd"
)
_DIMENSIONS = ", ".join(
    f"('{d}', {'team' if d == 'team' else 'workspace' if d == 'workspace' else d})" for d in DIMENSIONS
)


_MONTH = "date_trunc('month', day)::date"


def _adds(table: str, columns: Sequence[str]) -> str:
    return ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in columns)


def _pg_rollups() -> str:
    full, slim = ", ".join(FULL_METRICS), ", ".join(SLIM_METRICS)
    a_full = ", ".join(f"a.{c}" for c in FULL_METRICS)
    sum_full = ", ".join(f"sum({c}) AS {c}" for c in FULL_METRICS)
    sum_slim = ", ".join(f"sum({c}) AS {c}" for c in SLIM_METRICS)
    # Slim sums from full ones (the per-user and per-model rows of the batch).
    full_to_slim = (
        "sum(requests), sum(input_tokens + cached_input_tokens + cache_write_tokens), "
        "sum(output_tokens + reasoning_tokens), sum(cost_nanousd)"
    )
    # The events of a user and day share few attributions: summed per combination first, then split.
    combos = (
        "SELECT organization_id, user_id, day, team, workspace, feature, tool, integration, "
        f"{_SLIM} FROM tb_usage_new GROUP BY 1, 2, 3, 4, 5, 6, 7, 8"
    )
    dims = f"({combos}) e CROSS JOIN LATERAL (VALUES {_DIMENSIONS}) AS d(dimension, value)"
    utc = "(hour AT TIME ZONE 'UTC')"
    conv = "usage_conversations"
    # The events are summed once per finest grain (day x user x model, hour x user, dimension x user x day,
    # latency bucket per day and model, conversation x user); every coarser rollup sums those few rows again.
    return f"""
INSERT INTO tb_usage_providers
SELECT DISTINCT ON (model_id) model_id, provider_id FROM tb_usage_new ORDER BY model_id, n;
INSERT INTO tb_usage_dum SELECT organization_id, day, user_id, model_id, {_FULL} FROM tb_usage_new
    GROUP BY 1, 2, 3, 4;
INSERT INTO tb_usage_hu SELECT organization_id, hour, user_id, {_SLIM} FROM tb_usage_new GROUP BY 1, 2, 3;
INSERT INTO tb_usage_latency SELECT organization_id, day, model_id, bucket, count(*) FROM tb_usage_new
    GROUP BY 1, 2, 3, 4;

WITH agg AS (SELECT organization_id, day, user_id, {sum_full} FROM tb_usage_dum GROUP BY 1, 2, 3),
up AS (
    INSERT INTO usage_day_users (organization_id, day, user_id, {full}) SELECT * FROM agg ORDER BY 1, 2, 3
    ON CONFLICT (organization_id, day, user_id) DO UPDATE SET {_adds("usage_day_users", FULL_METRICS)}
    RETURNING organization_id, day, user_id, requests
)
INSERT INTO tb_usage_user_days SELECT up.organization_id, up.day FROM up JOIN agg a
    ON (a.organization_id, a.day, a.user_id) = (up.organization_id, up.day, up.user_id)
    WHERE up.requests = a.requests AND up.user_id <> {_NIL};

WITH up AS (
    INSERT INTO usage_day_user_models (organization_id, day, user_id, model_id, provider_id, {full})
    SELECT a.organization_id, a.day, a.user_id, a.model_id, p.provider_id, {a_full}
    FROM tb_usage_dum a JOIN tb_usage_providers p USING (model_id) ORDER BY 1, 2, 3, 4
    ON CONFLICT (organization_id, day, user_id, model_id)
    DO UPDATE SET {_adds("usage_day_user_models", FULL_METRICS)}
    RETURNING organization_id, day, user_id, model_id, requests
)
INSERT INTO tb_usage_user_models SELECT up.organization_id, up.day, up.model_id FROM up JOIN tb_usage_dum a
    ON (a.organization_id, a.day, a.user_id, a.model_id)
     = (up.organization_id, up.day, up.user_id, up.model_id)
    WHERE up.requests = a.requests AND up.user_id <> {_NIL};

INSERT INTO usage_days (organization_id, day, users, {full})
SELECT a.organization_id, a.day, coalesce(u.users, 0), {a_full}
FROM (SELECT organization_id, day, {sum_full} FROM tb_usage_dum GROUP BY 1, 2) a
LEFT JOIN (SELECT organization_id, day, count(*) AS users FROM tb_usage_user_days GROUP BY 1, 2) u
    USING (organization_id, day)
ORDER BY 1, 2
ON CONFLICT (organization_id, day) DO UPDATE SET {_adds("usage_days", (*FULL_METRICS, "users"))};

INSERT INTO usage_day_models (organization_id, day, model_id, provider_id, users, {full})
SELECT a.organization_id, a.day, a.model_id, p.provider_id, coalesce(u.users, 0), {a_full}
FROM (SELECT organization_id, day, model_id, {sum_full} FROM tb_usage_dum GROUP BY 1, 2, 3) a
JOIN tb_usage_providers p USING (model_id)
LEFT JOIN (
    SELECT organization_id, day, model_id, count(*) AS users FROM tb_usage_user_models GROUP BY 1, 2, 3
) u USING (organization_id, day, model_id)
ORDER BY 1, 2, 3
ON CONFLICT (organization_id, day, model_id)
DO UPDATE SET {_adds("usage_day_models", (*FULL_METRICS, "users"))};

INSERT INTO usage_hours (organization_id, hour, {slim})
SELECT organization_id, hour, {sum_slim} FROM tb_usage_hu GROUP BY 1, 2 ORDER BY 1, 2
ON CONFLICT (organization_id, hour) DO UPDATE SET {_adds("usage_hours", SLIM_METRICS)};

INSERT INTO usage_hour_users (organization_id, hour, user_id, {slim})
SELECT * FROM tb_usage_hu ORDER BY 1, 2, 3
ON CONFLICT (organization_id, hour, user_id) DO UPDATE SET {_adds("usage_hour_users", SLIM_METRICS)};

INSERT INTO tb_usage_dims
SELECT organization_id, d.dimension, user_id, day, d.value, {sum_slim} FROM {dims}
WHERE d.value <> '' GROUP BY 1, 2, 3, 4, 5;

INSERT INTO usage_dimension_days (organization_id, dimension, day, value, {slim})
SELECT organization_id, dimension, day, value, {sum_slim} FROM tb_usage_dims
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
ON CONFLICT (organization_id, dimension, day, value)
DO UPDATE SET {_adds("usage_dimension_days", SLIM_METRICS)};

INSERT INTO usage_dimension_user_days (organization_id, dimension, user_id, day, value, {slim})
SELECT organization_id, dimension, user_id, day, value, {slim} FROM tb_usage_dims ORDER BY 1, 2, 3, 4, 5
ON CONFLICT (organization_id, dimension, user_id, day, value)
DO UPDATE SET {_adds("usage_dimension_user_days", SLIM_METRICS)};

INSERT INTO usage_latency_buckets (organization_id, month, model_id, bucket, day, requests)
SELECT organization_id, {_MONTH}, model_id, bucket, day, requests FROM tb_usage_latency ORDER BY 1, 2, 3, 4, 5
ON CONFLICT (organization_id, month, model_id, bucket, day)
DO UPDATE SET requests = usage_latency_buckets.requests + excluded.requests;

INSERT INTO usage_month_users (organization_id, month, user_id, {slim})
SELECT organization_id, {_MONTH}, user_id, {full_to_slim} FROM tb_usage_dum GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
ON CONFLICT (organization_id, month, user_id) DO UPDATE SET {_adds("usage_month_users", SLIM_METRICS)};

INSERT INTO usage_month_models (organization_id, month, model_id, provider_id, {full})
SELECT a.organization_id, a.month, a.model_id, p.provider_id, {a_full}
FROM (SELECT organization_id, {_MONTH} AS month, model_id, {sum_full} FROM tb_usage_dum GROUP BY 1, 2, 3) a
JOIN tb_usage_providers p USING (model_id)
ORDER BY 1, 2, 3
ON CONFLICT (organization_id, month, model_id) DO UPDATE SET {_adds("usage_month_models", FULL_METRICS)};

INSERT INTO usage_month_dimensions (organization_id, dimension, month, value, {slim})
SELECT organization_id, dimension, {_MONTH}, value, {sum_slim} FROM tb_usage_dims
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
ON CONFLICT (organization_id, dimension, month, value)
DO UPDATE SET {_adds("usage_month_dimensions", SLIM_METRICS)};

INSERT INTO usage_month_latency_buckets (organization_id, model_id, bucket, month, requests)
SELECT organization_id, model_id, bucket, {_MONTH}, sum(requests) FROM tb_usage_latency
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
ON CONFLICT (organization_id, model_id, bucket, month)
DO UPDATE SET requests = usage_month_latency_buckets.requests + excluded.requests;

INSERT INTO usage_month_hour_cells (organization_id, month, weekday, hour, {slim})
SELECT organization_id, date_trunc('month', {utc})::date, (extract(isodow FROM {utc}) - 1)::int,
    extract(hour FROM {utc})::int, {sum_slim}
FROM tb_usage_hu GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
ON CONFLICT (organization_id, month, weekday, hour)
DO UPDATE SET {_adds("usage_month_hour_cells", SLIM_METRICS)};

INSERT INTO usage_month_user_models (organization_id, user_id, month, model_id, provider_id, {full})
SELECT a.organization_id, a.user_id, a.month, a.model_id, p.provider_id, {a_full}
FROM (
    SELECT organization_id, user_id, {_MONTH} AS month, model_id, {sum_full} FROM tb_usage_dum
    GROUP BY 1, 2, 3, 4
) a
JOIN tb_usage_providers p USING (model_id)
ORDER BY 1, 2, 3, 4
ON CONFLICT (organization_id, user_id, month, model_id)
DO UPDATE SET {_adds("usage_month_user_models", FULL_METRICS)};

INSERT INTO usage_month_user_hour_cells (organization_id, user_id, month, weekday, hour, {slim})
SELECT organization_id, user_id, date_trunc('month', {utc})::date, (extract(isodow FROM {utc}) - 1)::int,
    extract(hour FROM {utc})::int, {sum_slim}
FROM tb_usage_hu GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
ON CONFLICT (organization_id, user_id, month, weekday, hour)
DO UPDATE SET {_adds("usage_month_user_hour_cells", SLIM_METRICS)};

INSERT INTO usage_month_dimension_users (organization_id, dimension, user_id, month, value, {slim})
SELECT organization_id, dimension, user_id, {_MONTH}, value, {sum_slim} FROM tb_usage_dims
GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
ON CONFLICT (organization_id, dimension, user_id, month, value)
DO UPDATE SET {_adds("usage_month_dimension_users", SLIM_METRICS)};

INSERT INTO {conv} (organization_id, conversation_id, user_id, first_at, last_at, {slim})
SELECT organization_id, conversation_id, user_id, min(created_at), max(created_at), {_SLIM}
FROM tb_usage_new WHERE conversation_id <> '' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
ON CONFLICT (organization_id, conversation_id, user_id) DO UPDATE SET {_adds(conv, SLIM_METRICS)},
    first_at = least({conv}.first_at, excluded.first_at),
    last_at = greatest({conv}.last_at, excluded.last_at);
"""


# Each table is taken in this order and its rows in key order by every writer. A conversation is one user's
# events with its id (the events of no user have their own row), never another user's.
_PG_ROLLUPS = _pg_rollups()


async def _pg_stage(driver: Any, records: list[tuple[Any, ...]]) -> None:
    await driver.execute(_PG_PREPARE)
    await driver.copy_records_to_table(
        "tb_usage_in", records=[(n, *r) for n, r in enumerate(records)], columns=["n", *EVENT_COLUMNS]
    )


async def _pg_insert_and_apply(session: AsyncSession, records: list[tuple[Any, ...]]) -> list[int]:
    _, driver = await bulk.driver(session)
    # The usual case, every event new: binary COPY straight into the event table, under a savepoint. A
    # request id already stored fails the whole COPY on the unique key (a concurrent writer's uncommitted
    # one is waited for first); the savepoint then undoes it and the staged path below skips the old ones.
    await driver.execute(_PG_PREPARE + "SAVEPOINT tb_usage_copy;")
    try:
        await driver.copy_records_to_table(EVENTS.name, records=records, columns=EVENT_COLUMNS)
    except asyncpg.UniqueViolationError:
        await driver.execute("ROLLBACK TO SAVEPOINT tb_usage_copy; RELEASE SAVEPOINT tb_usage_copy;")
        return await _pg_insert_staged(driver, records)
    org, request = EVENT_COLUMNS.index("organization_id"), EVENT_COLUMNS.index("request_id")
    await driver.execute(_PG_STAGE_COPIED, [r[org] for r in records], [r[request] for r in records])
    await driver.execute("RELEASE SAVEPOINT tb_usage_copy;" + _PG_ROLLUPS)
    return list(range(len(records)))


async def _pg_insert_staged(driver: Any, records: list[tuple[Any, ...]]) -> list[int]:
    """Some events may be stored already: stage the batch, insert what is new, apply only that."""
    await _pg_stage(driver, records)
    inserted = int((await driver.execute(_PG_INSERT)).rsplit(" ", 1)[1])
    if inserted == 0:
        return []
    new = list(range(len(records)))
    if inserted < len(records):
        old = {row[0] for row in await driver.fetch(_PG_DROP_OLD)}
        new = [n for n in new if n not in old]
    await driver.execute(_PG_STAGE_ALL + _PG_ROLLUPS)
    return new


async def _pg_apply(session: AsyncSession, records: list[tuple[Any, ...]]) -> None:
    _, driver = await bulk.driver(session)
    await _pg_stage(driver, records)
    await driver.execute(_PG_STAGE_ALL + _PG_ROLLUPS)


# --- SQLite: sums in Python --------------------------------------------------------------------------------

NO_USER_HEX = NO_USER.hex
(_ORG, _REQUEST, _AT, _USER, _MODEL, _PROVIDER, _STATUS, _CANCELLED, _STREAM) = _positions(
    "organization_id",
    "request_id",
    "created_at",
    "user_id",
    "model_id",
    "provider_id",
    "status_code",
    "cancelled",
    "stream",
)
(_IN, _CACHED, _CW5, _CW1H, _OUT, _REASONING, _COST, _LATENCY, _CONVERSATION) = _positions(
    "input_tokens",
    "cached_input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_nanousd",
    "latency_ms",
    "conversation_id",
)
_DIMENSION_POSITIONS = tuple((d, EVENT_COLUMNS.index(c)) for d, c in DIMENSIONS.items())


def _sqlite_converters(session: AsyncSession) -> list[bulk.Processor]:
    return bulk.sqlite_converters(EVENTS, EVENT_COLUMNS, session)


def _hour(at: str) -> str:
    """The hour of a stored timestamp (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC), stored the same way."""
    return at[:13] + ":00:00.000000"


class _Sums:
    """One batch summed at the finest grains, keys and values in SQLite's storage format."""

    __slots__ = ("conversations", "day_user_models", "dimension_users", "hour_users", "latency", "providers")

    def __init__(self) -> None:
        self.day_user_models: dict[tuple[Any, ...], list[int]] = {}
        self.providers: dict[str, str] = {}
        self.hour_users: dict[tuple[Any, ...], list[int]] = {}
        self.dimension_users: dict[tuple[Any, ...], list[int]] = {}
        self.latency: dict[tuple[Any, ...], int] = {}
        self.conversations: dict[tuple[Any, ...], list[Any]] = {}


def _sqlite_sums(events: list[tuple[Any, ...]], stored: list[tuple[Any, ...]]) -> _Sums:
    """Sum new events (Python values, and the same rows in storage format) per finest rollup key."""
    sums = _Sums()
    dum, providers, hu, dimu = sums.day_user_models, sums.providers, sums.hour_users, sums.dimension_users
    latency_counts, conversations = sums.latency, sums.conversations
    bounds, bisect_left = LATENCY_BOUNDS, bisect.bisect_left
    for event, r in zip(events, stored, strict=True):
        org, at, model = r[_ORG], r[_AT], r[_MODEL]
        user = r[_USER] or NO_USER_HEX
        day = at[:10]
        if model not in providers:
            providers[model] = r[_PROVIDER]
        error = 1 if r[_STATUS] >= 400 else 0
        cancelled = 1 if r[_CANCELLED] else 0
        streamed = 1 if r[_STREAM] else 0
        inp, cached, cache_write = r[_IN], r[_CACHED], r[_CW5] + r[_CW1H]
        out, reasoning, cost, latency = r[_OUT], r[_REASONING], r[_COST], r[_LATENCY]
        key: tuple[Any, ...] = (org, day, user, model)
        a = dum.get(key)
        if a is None:
            dum[key] = [
                1,
                error,
                cancelled,
                streamed,
                inp,
                cached,
                cache_write,
                out,
                reasoning,
                cost,
                latency,
            ]
        else:
            a[0] += 1
            a[1] += error
            a[2] += cancelled
            a[3] += streamed
            a[4] += inp
            a[5] += cached
            a[6] += cache_write
            a[7] += out
            a[8] += reasoning
            a[9] += cost
            a[10] += latency
        total_in, total_out = inp + cached + cache_write, out + reasoning
        key = (org, at[:13], user)
        a = hu.get(key)
        if a is None:
            hu[key] = [1, total_in, total_out, cost]
        else:
            a[0] += 1
            a[1] += total_in
            a[2] += total_out
            a[3] += cost
        for dimension, position in _DIMENSION_POSITIONS:
            value = event[position]
            if value is None or value == "":
                continue
            key = (org, dimension, user, day, str(value))
            a = dimu.get(key)
            if a is None:
                dimu[key] = [1, total_in, total_out, cost]
            else:
                a[0] += 1
                a[1] += total_in
                a[2] += total_out
                a[3] += cost
        key = (org, day, model, bisect_left(bounds, latency if latency > 0 else 0))
        latency_counts[key] = latency_counts.get(key, 0) + 1
        conversation_id = r[_CONVERSATION]
        if conversation_id:  # one row per user of the conversation id: nobody's events mixed with another's
            key = (org, conversation_id, user)
            c = conversations.get(key)
            if c is None:
                conversations[key] = [at, at, 1, total_in, total_out, cost]
            else:
                if at < c[0]:  # stored timestamps compare like the instants: fixed width, UTC
                    c[0] = at
                if at > c[1]:
                    c[1] = at
                c[2] += 1
                c[3] += total_in
                c[4] += total_out
                c[5] += cost
    return sums


def _coarser(
    table: dict[tuple[Any, ...], list[int]], keep: Callable[[tuple[Any, ...]], tuple[Any, ...]]
) -> dict[tuple[Any, ...], list[int]]:
    out: dict[tuple[Any, ...], list[int]] = {}
    for key, values in table.items():
        k = keep(key)
        found = out.get(k)
        out[k] = values.copy() if found is None else list(map(add, found, values))
    return out


def _add_into(table: dict[tuple[Any, ...], list[int]], key: tuple[Any, ...], values: list[int]) -> None:
    found = table.get(key)
    table[key] = values.copy() if found is None else list(map(add, found, values))


async def _sqlite_insert_and_apply(session: AsyncSession, records: list[tuple[Any, ...]]) -> list[int]:
    _, driver = await bulk.driver(session)
    stored = bulk.to_storage(records, _sqlite_converters(session))
    # Summed and made into rollup rows before the writes, as if every event were new (the usual case): the
    # database's one writer slot is held from the first write to the commit, so work done before it does
    # not make others wait.
    plan = _Plan(_sqlite_sums(records, stored))
    await writer_gate.enter(session, driver)
    inserted = await bulk.sqlite_insert_new(driver, EVENTS.name, EVENT_COLUMNS, stored, keys=EVENT_KEY)
    new = list(range(len(stored))) if inserted is None else sorted(inserted)
    if new:
        if len(new) < len(records):
            records, stored = [records[i] for i in new], [stored[i] for i in new]
            plan = _Plan(_sqlite_sums(records, stored))
        await _sqlite_write(driver, plan)
    return new


class _Upsert(NamedTuple):
    """One rollup's rows, added to what is stored under their keys."""

    table: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    keys: tuple[str, ...]
    update: dict[str, str]


class _Plan:
    """Every rollup row of a batch, made from its sums before the writes (before the writer gate on the
    pipeline's path). Only the distinct-user counts of the day and day x model rows wait for the writes: they
    depend on which per-user rows the batch creates."""

    __slots__ = ("day_models", "day_users", "days", "dum", "providers", "rest")

    def __init__(self, sums: _Sums) -> None:
        full, slim = FULL_METRICS, SLIM_METRICS
        dum = self.dum = sums.day_user_models
        providers = self.providers = sums.providers
        day_users = self.day_users = _coarser(dum, itemgetter(0, 1, 2))
        self.days = _coarser(day_users, itemgetter(0, 1))
        day_models = self.day_models = _coarser(dum, itemgetter(0, 1, 3))
        hours = _coarser(sums.hour_users, itemgetter(0, 1))
        dimension_days = _coarser(sums.dimension_users, itemgetter(0, 1, 3, 4))
        rest: list[_Upsert] = []

        def add(
            table: str,
            keys: tuple[str, ...],
            rows: list[tuple[Any, ...]],
            metrics: Sequence[str],
            extra: tuple[str, ...] = (),
        ) -> None:
            """Rows of ``keys``, then ``extra`` (kept as first written), then ``metrics`` (added up)."""
            rest.append(
                _Upsert(table, (*keys, *extra, *metrics), rows, keys, bulk.add_columns(table, metrics))
            )

        add(
            "usage_hours",
            ("organization_id", "hour"),
            [(k[0], _hour(k[1]), *v) for k, v in hours.items()],
            slim,
        )
        add(
            "usage_hour_users",
            ("organization_id", "hour", "user_id"),
            [(k[0], _hour(k[1]), k[2], *v) for k, v in sums.hour_users.items()],
            slim,
        )
        add(
            "usage_dimension_days",
            ("organization_id", "dimension", "day", "value"),
            [(*k, *v) for k, v in dimension_days.items()],
            slim,
        )
        add(
            "usage_dimension_user_days",
            ("organization_id", "dimension", "user_id", "day", "value"),
            [(*k, *v) for k, v in sums.dimension_users.items()],
            slim,
        )
        add(
            "usage_latency_buckets",
            ("organization_id", "month", "model_id", "bucket", "day"),
            [
                (org, day[:8] + "01", model, bucket, day, n)
                for (org, day, model, bucket), n in sums.latency.items()
            ],
            ("requests",),
        )
        # The monthly tables: the day keys' sums again, per month ("YYYY-MM-01", as SQLite stores the date).
        month_users: dict[tuple[Any, ...], list[int]] = {}
        for (org, day, user), v in day_users.items():
            _add_into(month_users, (org, day[:8] + "01", user), [v[0], v[4] + v[5] + v[6], v[7] + v[8], v[9]])
        month_models: dict[tuple[Any, ...], list[int]] = {}
        for (org, day, model), v in day_models.items():
            _add_into(month_models, (org, day[:8] + "01", model), v)
        month_dimensions: dict[tuple[Any, ...], list[int]] = {}
        for (org, dimension, day, value), v in dimension_days.items():
            _add_into(month_dimensions, (org, dimension, day[:8] + "01", value), v)
        month_latency: dict[tuple[Any, ...], int] = {}
        for (org, day, model, bucket), count in sums.latency.items():
            key = (org, model, bucket, day[:8] + "01")
            month_latency[key] = month_latency.get(key, 0) + count
        add(
            "usage_month_users",
            ("organization_id", "month", "user_id"),
            [(*k, *v) for k, v in month_users.items()],
            slim,
        )
        add(
            "usage_month_dimensions",
            ("organization_id", "dimension", "month", "value"),
            [(*k, *v) for k, v in month_dimensions.items()],
            slim,
        )
        add(
            "usage_month_models",
            ("organization_id", "month", "model_id"),
            [(*k, providers[k[2]], *v) for k, v in month_models.items()],
            full,
            extra=("provider_id",),
        )
        add(
            "usage_month_latency_buckets",
            ("organization_id", "model_id", "bucket", "month"),
            [(*k, count) for k, count in month_latency.items()],
            ("requests",),
        )
        # The weekly pattern per month: the hours' sums again, per (month, UTC weekday, hour of day).
        cells: dict[tuple[Any, ...], list[int]] = {}
        for (org, hour), v in hours.items():  # hour: "YYYY-MM-DD HH"
            weekday = date.fromisoformat(hour[:10]).weekday()
            _add_into(cells, (org, hour[:8] + "01", weekday, int(hour[11:13])), v)
        add(
            "usage_month_hour_cells",
            ("organization_id", "month", "weekday", "hour"),
            [(*k, *v) for k, v in cells.items()],
            slim,
        )
        # One user's months: their day x model rows, hours and dimension days again, per month.
        month_user_models: dict[tuple[Any, ...], list[int]] = {}
        for (org, day, user, model), v in dum.items():
            _add_into(month_user_models, (org, user, day[:8] + "01", model), v)
        add(
            "usage_month_user_models",
            ("organization_id", "user_id", "month", "model_id"),
            [(*k, providers[k[3]], *v) for k, v in month_user_models.items()],
            full,
            extra=("provider_id",),
        )
        user_cells: dict[tuple[Any, ...], list[int]] = {}
        for (org, hour, user), v in sums.hour_users.items():  # hour: "YYYY-MM-DD HH"
            weekday = date.fromisoformat(hour[:10]).weekday()
            _add_into(user_cells, (org, user, hour[:8] + "01", weekday, int(hour[11:13])), v)
        month_dimension_users: dict[tuple[Any, ...], list[int]] = {}
        for (org, dimension, user, day, value), v in sums.dimension_users.items():
            _add_into(month_dimension_users, (org, dimension, user, day[:8] + "01", value), v)
        add(
            "usage_month_user_hour_cells",
            ("organization_id", "user_id", "month", "weekday", "hour"),
            [(*k, *v) for k, v in user_cells.items()],
            slim,
        )
        add(
            "usage_month_dimension_users",
            ("organization_id", "dimension", "user_id", "month", "value"),
            [(*k, *v) for k, v in month_dimension_users.items()],
            slim,
        )
        name = "usage_conversations"
        keys = ("organization_id", "conversation_id", "user_id")  # one user's conversation
        update = bulk.add_columns(name, slim) | {
            "first_at": f"min({name}.first_at, excluded.first_at)",
            "last_at": f"max({name}.last_at, excluded.last_at)",
        }
        conversations = [(*k, *c) for k, c in sums.conversations.items()]
        rest.append(_Upsert(name, (*keys, "first_at", "last_at", *slim), conversations, keys, update))
        self.rest = rest


async def _sqlite_write(driver: Any, plan: _Plan) -> None:
    """Upsert every rollup, in the same table order as PostgreSQL (SQLite has one writer anyway)."""
    dum, day_users, providers, full = plan.dum, plan.day_users, plan.providers, FULL_METRICS
    # A row whose requests after the upsert equal those just added did not exist before (see the top).
    returned = await bulk.sqlite_upsert(
        driver,
        "usage_day_users",
        ("organization_id", "day", "user_id", *full),
        [(*k, *v) for k, v in day_users.items()],
        keys=("organization_id", "day", "user_id"),
        update=bulk.add_columns("usage_day_users", full),
        returning=("organization_id", "day", "user_id", "requests"),
    )
    new_days: dict[tuple[Any, ...], int] = {}
    for org, day, user, requests in returned:
        if user != NO_USER_HEX and requests == day_users[(org, day, user)][0]:
            new_days[(org, day)] = new_days.get((org, day), 0) + 1
    returned = await bulk.sqlite_upsert(
        driver,
        "usage_day_user_models",
        ("organization_id", "day", "user_id", "model_id", "provider_id", *full),
        [(*k, providers[k[3]], *v) for k, v in dum.items()],
        keys=("organization_id", "day", "user_id", "model_id"),
        update=bulk.add_columns("usage_day_user_models", full),
        returning=("organization_id", "day", "user_id", "model_id", "requests"),
    )
    new_models: dict[tuple[Any, ...], int] = {}
    for org, day, user, model, requests in returned:
        if user != NO_USER_HEX and requests == dum[(org, day, user, model)][0]:
            new_models[(org, day, model)] = new_models.get((org, day, model), 0) + 1
    await bulk.sqlite_upsert(
        driver,
        "usage_days",
        ("organization_id", "day", "users", *full),
        [(*k, new_days.get(k, 0), *v) for k, v in plan.days.items()],
        keys=("organization_id", "day"),
        update=bulk.add_columns("usage_days", (*full, "users")),
    )
    await bulk.sqlite_upsert(
        driver,
        "usage_day_models",
        ("organization_id", "day", "model_id", "provider_id", "users", *full),
        [(*k, providers[k[2]], new_models.get(k, 0), *v) for k, v in plan.day_models.items()],
        keys=("organization_id", "day", "model_id"),
        update=bulk.add_columns("usage_day_models", (*full, "users")),
    )
    for upsert in plan.rest:
        await bulk.sqlite_upsert(
            driver, upsert.table, upsert.columns, upsert.rows, keys=upsert.keys, update=upsert.update
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
    UsageMonthUser,
    UsageMonthModel,
    UsageMonthDimension,
    UsageMonthLatencyBucket,
    UsageMonthHourCell,
    UsageMonthUserModel,
    UsageMonthUserHourCell,
    UsageMonthDimensionUser,
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
    key = tuple_(UsageEvent.organization_id, UsageEvent.request_id)
    last: tuple[Any, Any] | None = None
    applied = 0
    while True:
        stmt = select(*columns).order_by(UsageEvent.organization_id, UsageEvent.request_id).limit(chunk)
        if org_id is not None:
            stmt = stmt.where(UsageEvent.organization_id == org_id)
        if last is not None:
            stmt = stmt.where(key > tuple_(*last))
        events = [dict(row) for row in (await session.execute(stmt)).mappings()]
        if not events:
            return applied
        await apply(session, events)
        applied += len(events)
        last = (events[-1]["organization_id"], events[-1]["request_id"])
        if progress is not None:
            progress(len(events))
