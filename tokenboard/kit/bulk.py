"""Bulk writes (the usage pipeline, the ledger's batch settlement), on the session's own driver connection and
in its transaction.

Building a multi-row ``INSERT`` through SQLAlchemy costs far more Python time per row than the database
spends on it, so the pipeline hands rows to the driver directly:

- **PostgreSQL**: rows go into session-local temporary tables with binary ``COPY``; the merges then run as
  one multi-statement script (one round trip), see :mod:`tokenboard.usage.rollups`.
- **SQLite**: rows go straight to the real tables, as the driver's ``executemany`` of an
  ``INSERT ... ON CONFLICT`` (one call per table), or as multi-row ``INSERT ... RETURNING`` statements when
  the caller needs to know what was inserted. Values must already be in SQLite's storage format (see
  :func:`sqlite_converters`): they are stored exactly as the ORM would store them.

Either way the writes are part of the caller's unit of work and commit or roll back with it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from itertools import chain
from operator import attrgetter
from typing import Any

from sqlalchemy import Boolean, Table, Uuid, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from tokenboard.kit.db import UTCDateTime

Processor = Callable[[Any], Any] | None
# SQLite's default limit on bound parameters per statement (SQLITE_MAX_VARIABLE_NUMBER since 3.32).
SQLITE_MAX_PARAMETERS = 32_766
_HEX = attrgetter("hex")


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def driver(session: AsyncSession) -> tuple[AsyncConnection, Any]:
    """The session's connection, in a transaction, and its driver connection (asyncpg or aiosqlite)."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    if session.get_bind().dialect.name == "postgresql" and not driver.is_in_transaction():
        # SQLAlchemy begins the driver's transaction lazily, with its first statement: make it begin now,
        # or the driver calls below would run in autocommit.
        await connection.execute(text("SELECT 1"))
    return connection, driver


def _utc_text(value: datetime) -> str:
    """A ``UTCDateTime`` as SQLite stores it (SQLAlchemy's format: microseconds always written)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTCDateTime column")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def sqlite_converters(table: Table, columns: Sequence[str], session: AsyncSession) -> list[Processor]:
    """Per column, what turns a Python value into SQLite's storage format (``None``: the driver takes it).

    The columns' own SQLAlchemy bind processors, except where a C-level equivalent stores the very same
    value (tested against the processors): UUIDs as hex, UTC timestamps as text, booleans as the driver's
    integers.
    """
    dialect = session.get_bind().dialect
    converters: list[Processor] = []
    for name in columns:
        kind = table.c[name].type
        if isinstance(kind, Uuid) and kind.as_uuid:
            converters.append(_HEX)
        elif isinstance(kind, UTCDateTime):
            converters.append(_utc_text)
        elif isinstance(kind, Boolean):
            converters.append(None)
        else:
            converters.append(kind._cached_bind_processor(dialect))
    return converters


def to_storage(records: list[tuple[Any, ...]], converters: Sequence[Processor]) -> list[tuple[Any, ...]]:
    """Convert records column by column (``None`` stays ``None``): far cheaper than value by value."""
    if not records or all(p is None for p in converters):
        return records
    columns: list[Any] = list(zip(*records, strict=True))
    for i, process in enumerate(converters):
        if process is not None:
            columns[i] = [None if v is None else process(v) for v in columns[i]]
    return list(zip(*columns, strict=True))


async def sqlite_upsert(
    driver: Any,
    table: str,
    columns: Sequence[str],
    records: list[tuple[Any, ...]],
    *,
    keys: Sequence[str],
    update: dict[str, str] | None = None,
    returning: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """``INSERT`` records into ``table``; on a key conflict apply ``update`` (or skip the record).

    ``update`` maps a column to its SQL over the stored row (``<table>.<column>``) and the incoming one
    (``excluded.<column>``). With ``returning``, multi-row statements return those columns (in storage
    format) of every row inserted or updated; without, one ``executemany`` does it all.
    """
    if not records:
        return []
    action = "DO UPDATE SET " + ", ".join(f"{c} = {e}" for c, e in update.items()) if update else "DO NOTHING"
    head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    tail = f" ON CONFLICT ({', '.join(keys)}) {action}"
    row = "(" + ", ".join("?" for _ in columns) + ")"
    if not returning:
        await driver.executemany(head + row + tail, records)
        return []
    tail += " RETURNING " + ", ".join(returning)
    per_statement = SQLITE_MAX_PARAMETERS // len(columns)
    found: list[tuple[Any, ...]] = []
    for start in range(0, len(records), per_statement):
        chunk = records[start : start + per_statement]
        sql = head + ", ".join([row] * len(chunk)) + tail
        found.extend(tuple(r) for r in await driver.execute_fetchall(sql, list(chain.from_iterable(chunk))))
    return found


async def sqlite_insert_new(
    driver: Any, table: str, columns: Sequence[str], records: list[tuple[Any, ...]], *, keys: Sequence[str]
) -> set[int] | None:
    """Insert records, skipping those whose ``keys`` are already stored; say which positions were inserted.

    ``keys`` are ``("organization_id", <name>)``, a unique key of the table. ``None`` means all of them were
    inserted (the usual case, told by the row count alone). Otherwise: every record carries a fresh ``id``,
    so a record was inserted now if and only if the row stored under its key carries that id, which one
    probe of the key per record tells.
    """
    if not records:
        return set()
    head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    cursor = await driver.executemany(f"{head} ON CONFLICT ({', '.join(keys)}) DO NOTHING", records)
    if cursor.rowcount == len(records):
        return None
    scope, name = keys
    org, key, ident = columns.index(scope), columns.index(name), columns.index("id")
    keys_by_org: dict[Any, list[Any]] = {}
    for r in records:
        keys_by_org.setdefault(r[org], []).append(r[key])
    stored: set[tuple[Any, Any, Any]] = set()
    per_statement = SQLITE_MAX_PARAMETERS - 1
    for org_value, values in keys_by_org.items():
        for start in range(0, len(values), per_statement):
            chunk = values[start : start + per_statement]
            marks = ", ".join("?" for _ in chunk)
            sql = f"SELECT {name}, id FROM {table} WHERE {scope} = ? AND {name} IN ({marks})"
            rows = await driver.execute_fetchall(sql, [org_value, *chunk])
            stored.update((org_value, row[0], row[1]) for row in rows)
    return {i for i, r in enumerate(records) if (r[org], r[key], r[ident]) in stored}


def add_columns(table: str, columns: Sequence[str]) -> dict[str, str]:
    """``update`` for :func:`sqlite_upsert` that adds the incoming values to the stored ones."""
    return {c: f"{table}.{c} + excluded.{c}" for c in columns}
