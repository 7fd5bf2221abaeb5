"""Bulk writes for the usage pipeline: stage rows in a temporary table, then merge them with one statement.

Building a multi-row ``INSERT`` through SQLAlchemy costs far more Python time per row than the database
spends on it, so the pipeline hands rows to the driver directly: PostgreSQL receives them with ``COPY``,
SQLite with the driver's ``executemany`` (values converted by the columns' own SQLAlchemy processors, so
they are stored exactly as the ORM would store them). One ``INSERT ... SELECT ... ON CONFLICT ...`` then
moves them into the real table, inside the caller's transaction, and may return what it touched.

Both drivers are reached through the session's own connection: the staging and the merge are part of the
unit of work and commit or roll back with it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncSession

Processor = Callable[[Any], Any] | None


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _staging(table: Table) -> str:
    return f"staging_{table.name}"


async def _stage(
    session: AsyncSession, table: Table, columns: Sequence[str], records: list[tuple[Any, ...]]
) -> None:
    connection = await session.connection()
    staging = _staging(table)
    postgres = is_postgres(session)
    # Run through SQLAlchemy first: that begins the transaction on the driver connection.
    if postgres:
        await connection.execute(
            text(
                f"CREATE TEMP TABLE IF NOT EXISTS {staging} "
                f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
        )
        await connection.execute(text(f"TRUNCATE {staging}"))
    else:
        await connection.execute(
            text(f"CREATE TEMP TABLE IF NOT EXISTS {staging} AS SELECT * FROM main.{table.name} WHERE 0")
        )
        await connection.execute(text(f"DELETE FROM temp.{staging}"))
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    if postgres:
        await driver.copy_records_to_table(staging, records=records, columns=list(columns))
    else:
        dialect = session.get_bind().dialect
        processors: list[Processor] = [
            table.c[name].type._cached_bind_processor(dialect)  # the ORM's own conversion
            for name in columns
        ]
        converted = [
            tuple(v if p is None or v is None else p(v) for p, v in zip(processors, record, strict=True))
            for record in records
        ]
        placeholders = ", ".join("?" for _ in columns)
        await driver.executemany(
            f"INSERT INTO temp.{staging} ({', '.join(columns)}) VALUES ({placeholders})", converted
        )


async def merge(
    session: AsyncSession,
    table: Table,
    columns: Sequence[str],
    records: list[tuple[Any, ...]],
    *,
    keys: Sequence[str],
    update: dict[str, str] | None = None,
    returning: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """Insert ``records`` (tuples in ``columns`` order) into ``table``; on a key conflict apply ``update``.

    ``update`` maps a column to its SQL expression over the existing row (``<table>.<column>``) and the
    incoming one (``excluded.<column>``); without it a conflicting record is skipped. Returns the
    ``returning`` columns of every row inserted or updated, converted to Python values.
    """
    if not records:
        return []
    await _stage(session, table, columns, records)
    names = ", ".join(columns)
    action = "DO UPDATE SET " + ", ".join(f"{c} = {e}" for c, e in update.items()) if update else "DO NOTHING"
    sql = (
        f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {_staging(table)} WHERE true "
        f"ON CONFLICT ({', '.join(keys)}) {action}"
    )
    if not returning:
        await session.execute(text(sql))
        return []
    stmt = text(sql + " RETURNING " + ", ".join(returning)).columns(*(table.c[c] for c in returning))
    return [tuple(row) for row in await session.execute(stmt)]


def add_columns(table: Table, columns: Sequence[str]) -> dict[str, str]:
    """``update`` for :func:`merge` that adds the incoming values to the stored ones."""
    return {c: f"{table.name}.{c} + excluded.{c}" for c in columns}
