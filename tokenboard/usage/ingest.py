"""The one ingestion pipeline: insert usage events idempotently, then add the new ones to the rollups.

Everything that records usage calls :func:`record_events` inside its transaction: the gateway's metering
writer, the ingest API, ``tokenboard import`` and the demo. An event is idempotent on its
(organization, request id): a retried one is neither inserted nor applied to the rollups again.

Rows are completed a column at a time, each with a fresh id, and handed to the driver directly (binary
``COPY`` into a staging table on PostgreSQL, ``executemany`` of ``INSERT ... ON CONFLICT DO NOTHING`` on
SQLite); the row count tells when every event was new, and otherwise the stored ids tell which were. The new
ones are summed into the rollups by :func:`tokenboard.usage.rollups.insert_and_apply`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, overload

from sqlalchemy import String, Table
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.kit import bulk
from tokenboard.kit.db import utcnow, uuid7_many
from tokenboard.kit.errors import BadRequest
from tokenboard.models import UsageEvent
from tokenboard.usage import rollups

EVENTS: Table = UsageEvent.__table__  # type: ignore[assignment]
COLUMNS: tuple[str, ...] = tuple(c.name for c in EVENTS.c)
NUL = "\x00"
REQUIRED = ("organization_id", "request_id", "provider_id", "model_id")

# Every column a caller may leave out, with the value it gets ("created_at" is made per row where missing;
# "id" is always made here and may not be given).
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
    "web_searches": 0,
    "input_audio_tokens": 0,
    "output_audio_tokens": 0,
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
_MADE_OR_REQUIRED = frozenset((*REQUIRED, "created_at"))
_ID, _CREATED, _ATTACHMENTS = (COLUMNS.index(c) for c in ("id", "created_at", "attachments"))
_ORG, _REQUEST = (COLUMNS.index(c) for c in ("organization_id", "request_id"))
# Text columns: the driver is reached directly, so NUL characters are refused here (see kit/db.py).
_TEXT = tuple(i for i, c in enumerate(EVENTS.c) if isinstance(c.type, String))


@dataclass(frozen=True, slots=True)
class EventColumns:
    """Events given a column at a time: a ``usage_events`` column's name -> one value per event.

    What a caller that already holds its events by field (the ingest API's validated batch) passes to
    :func:`record_events`, instead of a dict per event that would only be taken apart again here.
    """

    values: Mapping[str, Sequence[Any]]
    count: int

    def __len__(self) -> int:
        return self.count


def complete(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row with every column of ``usage_events``: defaults filled in, unknown keys refused."""
    return dict(zip(COLUMNS, _complete_all([row])[0], strict=True))


def _complete_all(rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """Rows as complete records in :data:`COLUMNS` order, built a column at a time (the pipeline's hot loop).

    Defaults fill what a row leaves out; every row gets a fresh ``id``, and ``created_at`` where missing;
    unknown keys (``id`` among them), missing required values and naive timestamps are refused.
    """
    given: set[str] = set().union(*(row.keys() for row in rows))
    present = [name for name in COLUMNS if name in given]
    columns: dict[str, Sequence[Any]]
    if len(present) > 1 and all(len(row) == len(present) for row in rows):
        # Every row names the same columns (the usual case): one C-level pick per row, then transposed.
        columns = dict(zip(present, zip(*map(itemgetter(*present), rows), strict=True), strict=True))
    else:
        columns = {name: [row.get(name, DEFAULTS.get(name)) for row in rows] for name in given}
    return _complete_columns(EventColumns(columns, len(rows)))


def _complete_columns(given: EventColumns) -> list[tuple[Any, ...]]:
    """:func:`_complete_all` for events given a column at a time: the same checks, defaults and ids."""
    unknown = given.values.keys() - _COLUMN_SET
    if unknown:
        raise ValueError(f"not columns of usage_events: {sorted(unknown)}")
    if "id" in given.values:
        # Fresh ids per call are how the pipeline tells the events it inserted from those already stored.
        raise ValueError("usage event ids are made by the pipeline; identify an event by its request_id")
    for name in REQUIRED:
        if name not in given.values:
            raise ValueError(f"usage event without {name}")
    count = given.count
    columns: list[Sequence[Any]] = []
    for name in COLUMNS:
        values = given.values.get(name)
        if values is None:
            columns.append([DEFAULTS.get(name)] * count)
            continue
        if len(values) != count:
            raise ValueError(f"column {name} has {len(values)} values for {count} events")
        if name in _MADE_OR_REQUIRED and any(v is None for v in values):
            if name in REQUIRED:
                raise ValueError(f"usage event without {name}")
            if name == "created_at":
                now = utcnow()
                values = [now if v is None else v for v in values]
        columns.append(values)
    columns[_ID] = uuid7_many(count)
    if "created_at" not in given.values:
        columns[_CREATED] = [utcnow()] * count
    if any(at.tzinfo is None for at in columns[_CREATED]):
        raise ValueError("usage event created_at must be timezone-aware")
    _refuse_nul(columns)
    return list(zip(*columns, strict=True))


async def record_events(session: AsyncSession, rows: Sequence[Mapping[str, Any]] | EventColumns) -> Recorded:
    """Insert usage events, skipping those already recorded, and apply the new ones to the rollups.

    ``rows`` are ``usage_events`` columns (see :data:`DEFAULTS` for what may be left out), a dict per event or
    an :class:`EventColumns`. Returns the rows actually inserted now, complete, in the order given; an event
    whose (organization_id, request_id) is already stored, or repeated within ``rows``, is left out. Flushes,
    never commits: the caller's transaction makes the events and their rollups durable together.
    """
    if not len(rows):
        return Recorded([], [])
    records = _complete_columns(rows) if isinstance(rows, EventColumns) else _complete_all(rows)
    if len({r[_REQUEST] for r in records}) < len(records):  # a repeated request id: keep its first row
        seen: set[tuple[Any, Any]] = set()
        unique = []
        for record in records:
            key = (record[_ORG], record[_REQUEST])
            if key not in seen:
                seen.add(key)
                unique.append(record)
        records = unique
    staged = records
    if any(r[_ATTACHMENTS] is not None for r in records):
        staged = [_encode_attachments(r, json_as_text=bulk.is_postgres(session)) for r in records]
    new = await rollups.insert_and_apply(session, staged)
    return Recorded(records, new)


class Recorded(Sequence[dict[str, Any]]):
    """The events inserted now, as complete rows; each row is made into a dict only when it is read."""

    __slots__ = ("_positions", "_records")

    def __init__(self, records: list[tuple[Any, ...]], positions: list[int]) -> None:
        self._records, self._positions = records, positions

    def __len__(self) -> int:
        return len(self._positions)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [dict(zip(COLUMNS, self._records[i], strict=True)) for i in self._positions[index]]
        return dict(zip(COLUMNS, self._records[self._positions[index]], strict=True))

    def total(self, column: str) -> int:
        """The sum of one integer column over the rows inserted now, without making them into dicts."""
        at = COLUMNS.index(column)
        records = self._records
        return sum(int(records[i][at] or 0) for i in self._positions)

    def __eq__(self, other: object) -> bool:
        return list(self) == other if isinstance(other, list) else NotImplemented

    __hash__ = None  # type: ignore[assignment]


def _refuse_nul(columns: list[Sequence[Any]]) -> None:
    for i in _TEXT:
        values = columns[i]
        try:
            joined = "".join(filter(None, values))  # text columns hold str or None: one C-level scan
        except TypeError:
            joined = "".join(v for v in values if isinstance(v, str))
        if NUL in joined:
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
