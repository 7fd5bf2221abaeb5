"""The one ingestion pipeline: insert usage events idempotently, then add the new ones to the rollups.

Everything that records usage calls :func:`record_events` inside its transaction: the gateway's metering
writer, the ingest API, ``tokenboard import`` and the demo. An event is idempotent on its
(organization, request id): a retried one is neither inserted nor applied to the rollups again.

Rows are handed to the driver directly (binary ``COPY`` into a staging table on PostgreSQL, multi-row
``INSERT ... ON CONFLICT DO NOTHING RETURNING`` on SQLite), then the new ones are summed into the rollups
by :func:`tokenboard.usage.rollups.insert_and_apply`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import String, Table
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


_COLUMN_SET = frozenset(COLUMNS)
_as_record = itemgetter(*COLUMNS)
_required = itemgetter(*REQUIRED)
_ID, _CREATED, _ATTACHMENTS = (COLUMNS.index(c) for c in ("id", "created_at", "attachments"))
_ORG, _REQUEST = (COLUMNS.index(c) for c in ("organization_id", "request_id"))
# Text columns: the driver is reached directly, so NUL characters are refused here (see kit/db.py).
_TEXT = tuple(i for i, c in enumerate(EVENTS.c) if isinstance(c.type, String))


def complete(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row with every column of ``usage_events``: defaults filled in, unknown keys refused."""
    unknown = row.keys() - _COLUMN_SET
    if unknown:
        raise ValueError(f"not columns of usage_events: {sorted(unknown)}")
    full = {**DEFAULTS, **row}
    if None in _required(full):
        raise ValueError(f"usage event without {[name for name in REQUIRED if full.get(name) is None]}")
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
    records: list[tuple[Any, ...]] = []
    seen: set[tuple[Any, Any]] = set()
    for row in rows:
        record = _as_record(complete(row))
        key = (record[_ORG], record[_REQUEST])
        if key not in seen:
            seen.add(key)
            records.append(record)
    _refuse_nul(records)
    staged = records
    if any(r[_ATTACHMENTS] is not None for r in records):
        staged = [_encode_attachments(r, json_as_text=bulk.is_postgres(session)) for r in records]
    new = await rollups.insert_and_apply(session, staged)
    return [dict(zip(COLUMNS, records[i], strict=True)) for i in new]


def _refuse_nul(records: list[tuple[Any, ...]]) -> None:
    for i in _TEXT:
        if NUL in "".join([v for r in records if isinstance(v := r[i], str)]):
            raise BadRequest("Text cannot contain NUL (U+0000) characters.")


def _encode_attachments(record: tuple[Any, ...], *, json_as_text: bool) -> tuple[Any, ...]:
    value = record[_ATTACHMENTS]
    if value is None:
        return record
    encoded = json.dumps(value)
    if "\\u0000" in encoded:
        raise BadRequest("Text cannot contain NUL (U+0000) characters.")
    if not json_as_text:
        return record  # SQLite: the column's own bind processor encodes it
    return (*record[:_ATTACHMENTS], encoded, *record[_ATTACHMENTS + 1 :])
