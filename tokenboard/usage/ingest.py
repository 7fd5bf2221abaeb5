"""The one ingestion pipeline: insert usage events idempotently, then add the new ones to the rollups.

Everything that records usage calls :func:`record_events` inside its transaction: the gateway's metering
writer, the ingest API, ``tokenboard import`` and the demo. An event is idempotent on its
(organization, request id): a retried one is neither inserted nor applied to the rollups again.

Rows are staged and merged by :mod:`tokenboard.usage.bulk` (``COPY`` on PostgreSQL, the driver's
``executemany`` on SQLite, then one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.kit.db import utcnow, uuid7
from tokenboard.kit.errors import BadRequest
from tokenboard.models import UsageEvent
from tokenboard.usage import bulk, rollups

EVENTS: Table = UsageEvent.__table__  # type: ignore[assignment]
COLUMNS: tuple[str, ...] = tuple(c.name for c in EVENTS.c)
NUL = "\x00"
REQUIRED = ("organization_id", "request_id", "provider_id", "model_id")

# Every column a caller may leave out, with the value it gets ("id" and "created_at" are made per row).
DEFAULTS: dict[str, Any] = {
    "source": "gateway",
    "route": "external",
    "user_id": None,
    "api_key_id": None,
    "workspace_id": None,
    "team_id": None,
    "stream": False,
    "status_code": 200,
    "error_type": None,
    "input_tokens": 0,
    "cached_input_tokens": 0,
    "cache_write_5m_tokens": 0,
    "cache_write_1h_tokens": 0,
    "output_tokens": 0,
    "reasoning_tokens": 0,
    "cost_nanousd": 0,
    "usage_estimated": False,
    "cancelled": False,
    "latency_ms": 0,
    "time_to_first_token_ms": None,
    "gateway_overhead_ms": 0.0,
    "feature": None,
    "tool": None,
    "integration": None,
    "conversation_id": None,
    "message_id": None,
    "attachments": None,
}


def complete(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row with every column of ``usage_events``: defaults filled in, unknown keys refused."""
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise ValueError(f"not columns of usage_events: {sorted(unknown)}")
    missing = [name for name in REQUIRED if row.get(name) is None]
    if missing:
        raise ValueError(f"usage event without {missing}")
    full = DEFAULTS | dict(row)
    if full.get("id") is None:
        full["id"] = uuid7()
    created: datetime | None = full.get("created_at")
    if created is None:
        full["created_at"] = utcnow()
    elif created.tzinfo is None:
        raise ValueError("usage event created_at must be timezone-aware")
    return full


async def record_events(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Insert usage events, skipping those already recorded, and apply the new ones to the rollups.

    ``rows`` are ``usage_events`` columns (see :data:`DEFAULTS` for what may be left out). Returns the rows
    actually inserted now, complete, in the order given; an event whose (organization_id, request_id) is
    already stored, or repeated within ``rows``, is left out. Flushes, never commits: the caller's
    transaction makes the events and their rollups durable together.
    """
    if not rows:
        return []
    unique: dict[tuple[uuid.UUID, str], dict[str, Any]] = {}
    for row in rows:
        full = complete(row)
        unique.setdefault((full["organization_id"], full["request_id"]), full)
    batch = list(unique.values())
    inserted = await _insert(session, batch)
    new = [row for key, row in unique.items() if key in inserted]
    await rollups.apply(session, new)
    return new


async def _insert(session: AsyncSession, batch: list[dict[str, Any]]) -> set[tuple[uuid.UUID, str]]:
    postgres = bulk.is_postgres(session)
    records = [_record(row, json_as_text=postgres) for row in batch]
    returned = await bulk.merge(
        session,
        EVENTS,
        COLUMNS,
        records,
        keys=("organization_id", "request_id"),
        returning=("organization_id", "request_id"),
    )
    return {(org, request_id) for org, request_id in returned}


def _record(row: dict[str, Any], *, json_as_text: bool) -> tuple[Any, ...]:
    """A row as the driver takes it. The driver is reached directly, so NUL characters are refused here."""
    values = []
    for name in COLUMNS:
        value = row[name]
        if isinstance(value, str) and NUL in value:
            raise BadRequest("Text cannot contain NUL (U+0000) characters.")
        if name == "attachments" and value is not None:
            encoded = json.dumps(value)
            if "\\u0000" in encoded:
                raise BadRequest("Text cannot contain NUL (U+0000) characters.")
            value = encoded if json_as_text else value
        values.append(value)
    return tuple(values)
