"""SQL for the credit ledger. The conditional UPDATEs here are what keep money correct under concurrency."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.kit import bulk
from tokenboard.kit.db import utcnow
from tokenboard.kit.tenancy import scoped
from tokenboard.models import CreditAccount, CreditEntry, CreditReservation


async def ensure_account(session: AsyncSession, org_id: uuid.UUID) -> None:
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(CreditAccount).values(
        organization_id=org_id, balance_nanousd=0, reserved_nanousd=0, updated_at=utcnow()
    )
    await session.execute(stmt.on_conflict_do_nothing(index_elements=["organization_id"]))


async def get_account(session: AsyncSession, org_id: uuid.UUID) -> CreditAccount | None:
    stmt = (
        select(CreditAccount)
        .where(CreditAccount.organization_id == org_id)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def add_to_balance(session: AsyncSession, org_id: uuid.UUID, amount: int) -> None:
    await session.execute(
        update(CreditAccount)
        .where(CreditAccount.organization_id == org_id)
        .values(balance_nanousd=CreditAccount.balance_nanousd + amount, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


async def add_to_balance_within(session: AsyncSession, org_id: uuid.UUID, amount: int, limit: int) -> bool:
    """Add ``amount`` to the balance only if it stays within -``limit``..``limit``; False (nothing changed)
    otherwise. One conditional UPDATE, so concurrent entries cannot pass the bound together.

    The bound is computed here (within 64 bits, as ``|amount| <= limit``) and compared with the stored
    balance as it is: the database never adds two large numbers, which overflows PostgreSQL's BIGINT and
    turns SQLite's integer into a float.
    """
    if abs(amount) > limit:
        return False
    balance = CreditAccount.balance_nanousd
    within = balance <= limit - amount if amount >= 0 else balance >= -limit - amount
    result = await session.execute(
        update(CreditAccount)
        .where(CreditAccount.organization_id == org_id, within)
        .values(balance_nanousd=balance + amount, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def try_hold(session: AsyncSession, org_id: uuid.UUID, amount: int) -> bool:
    """Hold ``amount`` only if that much is available. Atomic: one conditional UPDATE on the account row."""
    result = await session.execute(
        update(CreditAccount)
        .where(
            CreditAccount.organization_id == org_id,
            CreditAccount.balance_nanousd - CreditAccount.reserved_nanousd >= amount,
        )
        .values(reserved_nanousd=CreditAccount.reserved_nanousd + amount, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def unhold(session: AsyncSession, org_id: uuid.UUID, amount: int) -> None:
    await session.execute(
        update(CreditAccount)
        .where(CreditAccount.organization_id == org_id)
        .values(reserved_nanousd=CreditAccount.reserved_nanousd - amount, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


async def mark_reservation(
    session: AsyncSession, org_id: uuid.UUID, request_id: str, *, to_state: str, settled: int | None = None
) -> int | None:
    """Move a held reservation to ``to_state`` exactly once; returns its held amount, or None if not held."""
    result = await session.execute(
        update(CreditReservation)
        .where(
            CreditReservation.organization_id == org_id,
            CreditReservation.request_id == request_id,
            CreditReservation.state == "held",
        )
        .values(state=to_state, settled_nanousd=settled)
        .returning(CreditReservation.amount_nanousd)
        .execution_options(synchronize_session=False)
    )
    row = result.first()
    return int(row[0]) if row else None


async def expired_holds(session: AsyncSession, now: datetime, limit: int) -> list[CreditReservation]:
    stmt = (
        select(CreditReservation)
        .where(CreditReservation.state == "held", CreditReservation.expires_at < now)
        .order_by(CreditReservation.expires_at)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def find_entry(session: AsyncSession, org_id: uuid.UUID, external_id: str) -> CreditEntry | None:
    stmt = scoped(select(CreditEntry), CreditEntry, org_id).where(CreditEntry.external_id == external_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def sum_entries(session: AsyncSession, org_id: uuid.UUID) -> int:
    stmt = scoped(select(func.coalesce(func.sum(CreditEntry.amount_nanousd), 0)), CreditEntry, org_id)
    return int(await session.scalar(stmt) or 0)


async def sum_held(session: AsyncSession, org_id: uuid.UUID) -> int:
    stmt = scoped(
        select(func.coalesce(func.sum(CreditReservation.amount_nanousd), 0)), CreditReservation, org_id
    ).where(CreditReservation.state == "held")
    return int(await session.scalar(stmt) or 0)


async def list_entries(session: AsyncSession, org_id: uuid.UUID, limit: int) -> list[CreditEntry]:
    stmt = (
        scoped(select(CreditEntry), CreditEntry, org_id)
        .order_by(CreditEntry.created_at.desc(), CreditEntry.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def mark_many(
    session: AsyncSession, keys: list[tuple[uuid.UUID, str]], *, to_state: str
) -> list[tuple[uuid.UUID, int]]:
    """Move each still-held reservation among ``keys`` to ``to_state``; returns (org, held amount) of each."""
    if not keys:
        return []
    result = await session.execute(
        update(CreditReservation)
        .where(
            tuple_(CreditReservation.organization_id, CreditReservation.request_id).in_(keys),
            CreditReservation.state == "held",
        )
        .values(state=to_state)
        .returning(CreditReservation.organization_id, CreditReservation.amount_nanousd)
        .execution_options(synchronize_session=False)
    )
    return [(org, int(amount)) for org, amount in result]


ENTRIES: Table = CreditEntry.__table__  # type: ignore[assignment]
ENTRY_COLUMNS = (
    "organization_id",
    "id",
    "kind",
    "amount_nanousd",
    "external_id",
    "memo",
    "actor_label",
    "created_at",
)


async def insert_entries_once(
    session: AsyncSession, rows: list[dict[str, object]]
) -> list[tuple[uuid.UUID, int]]:
    """Insert the entries whose (org, external id) is not in the ledger yet; returns the ones inserted.

    Each row carries every column of :data:`ENTRY_COLUMNS`, with a fresh id. A core insert, not the ORM's:
    for a batch of gateway requests the ORM's per-row bookkeeping cost more than the database did.
    """
    if not rows:
        return []
    if bulk.is_postgres(session):
        stmt = (
            pg_insert(ENTRIES)
            .on_conflict_do_nothing(index_elements=["organization_id", "external_id"])
            .returning(ENTRIES.c.organization_id, ENTRIES.c.amount_nanousd)
        )
        return [(org, int(amount)) for org, amount in await session.execute(stmt, rows)]
    # SQLite: one executemany; its row count tells when every entry was new (the usual case).
    records: list[tuple[Any, ...]] = [tuple(row[c] for c in ENTRY_COLUMNS) for row in rows]
    converters = bulk.sqlite_converters(ENTRIES, ENTRY_COLUMNS, session)
    _, driver = await bulk.driver(session)
    inserted = await bulk.sqlite_insert_new(
        driver,
        ENTRIES.name,
        ENTRY_COLUMNS,
        bulk.to_storage(records, converters),
        keys=("organization_id", "external_id"),
    )
    chosen = range(len(rows)) if inserted is None else sorted(inserted)
    org, amount = ENTRY_COLUMNS.index("organization_id"), ENTRY_COLUMNS.index("amount_nanousd")
    return [(records[i][org], int(records[i][amount])) for i in chosen]


async def add_reservation(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    request_id: str,
    amount: int,
    created_at: datetime,
    expires_at: datetime,
) -> None:
    # A core INSERT: this runs for every gateway request, where the ORM's unit of work is pure overhead.
    await session.execute(
        insert(CreditReservation).values(
            organization_id=org_id,
            request_id=request_id,
            amount_nanousd=amount,
            state="held",
            created_at=created_at,
            expires_at=expires_at,
        )
    )


async def lease_amount(session: AsyncSession, org_id: uuid.UUID, lease_id: str) -> int | None:
    """What a still-held lease holds, locking its row on PostgreSQL; None when it is gone or released."""
    stmt = select(CreditReservation.amount_nanousd).where(
        CreditReservation.organization_id == org_id,
        CreditReservation.request_id == lease_id,
        CreditReservation.state == "held",
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    value = await session.scalar(stmt)
    return int(value) if value is not None else None


async def open_lease(
    session: AsyncSession, org_id: uuid.UUID, lease_id: str, *, created_at: datetime, expires_at: datetime
) -> None:
    await session.execute(
        insert(CreditReservation).values(
            organization_id=org_id,
            request_id=lease_id,
            amount_nanousd=0,
            state="held",
            created_at=created_at,
            expires_at=expires_at,
        )
    )


async def resize_lease(
    session: AsyncSession, org_id: uuid.UUID, lease_id: str, delta: int, *, expires_at: datetime | None = None
) -> bool:
    """Add ``delta`` (negative to shrink) to a held lease; False when the lease is no longer held."""
    values: dict[str, object] = {"amount_nanousd": CreditReservation.amount_nanousd + delta}
    if expires_at is not None:
        values["expires_at"] = expires_at
    result = await session.execute(
        update(CreditReservation)
        .where(
            CreditReservation.organization_id == org_id,
            CreditReservation.request_id == lease_id,
            CreditReservation.state == "held",
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def prolong_leases(
    session: AsyncSession, keys: list[tuple[uuid.UUID, str]], expires_at: datetime
) -> set[tuple[uuid.UUID, str]]:
    """Push back the expiry of the still-held leases among ``keys``; returns the ones still held."""
    if not keys:
        return set()
    result = await session.execute(
        update(CreditReservation)
        .where(
            tuple_(CreditReservation.organization_id, CreditReservation.request_id).in_(keys),
            CreditReservation.state == "held",
        )
        .values(expires_at=expires_at)
        .returning(CreditReservation.organization_id, CreditReservation.request_id)
        .execution_options(synchronize_session=False)
    )
    return {(org, rid) for org, rid in result}


async def lease_exists(session: AsyncSession, org_id: uuid.UUID, lease_id: str) -> bool:
    stmt = select(CreditReservation.state).where(
        CreditReservation.organization_id == org_id, CreditReservation.request_id == lease_id
    )
    return (await session.scalar(stmt)) is not None


async def held_leases(session: AsyncSession, prefix: str) -> list[tuple[uuid.UUID, str]]:
    stmt = select(CreditReservation.organization_id, CreditReservation.request_id).where(
        CreditReservation.request_id.startswith(prefix, autoescape=True), CreditReservation.state == "held"
    )
    return [(org, rid) for org, rid in await session.execute(stmt)]
