"""Reads side by side (kit/fanout.py): on PostgreSQL on connections of their own while the process has some
to lend, on the request's session otherwise (and always on SQLite), never holding a connection after they
end."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from tests.support.factories import Factory
from tokenboard.kit.fanout import EXTRA_CONNECTIONS, ReadFanout, _slots
from tokenboard.models import Team


async def _connection(session: AsyncSession) -> Any:
    return (await session.connection()).sync_connection.connection.dbapi_connection  # type: ignore[union-attr]


async def test_reads_run_side_by_side_on_connections_of_their_own(db: AsyncSession, backend: str) -> None:
    if backend == "sqlite":  # aiosqlite's threads would fight over the GIL: the reads take turns instead
        await test_with_no_connection_to_lend_reads_take_turns_on_the_request_session(db, lend=False)
        return
    fanout = ReadFanout(db)
    together = asyncio.Barrier(3)  # only reads running at once pass it

    async def read(session: AsyncSession) -> tuple[AsyncSession, Any, int]:
        found = await session.scalar(select(func.count()).select_from(Team))
        await asyncio.wait_for(together.wait(), timeout=10)
        return session, await _connection(session), int(found or 0)

    own = await _connection(db)
    done = await asyncio.gather(*(fanout.run(read) for _ in range(3)))
    sessions, connections = {id(d[0]) for d in done}, {id(d[1]) for d in done}
    assert len(sessions) == 3 and id(db) not in sessions
    assert len(connections) == 3 and id(own) not in connections
    assert _slots(db.bind).free == EXTRA_CONNECTIONS  # every connection given back


async def test_with_no_connection_to_lend_reads_take_turns_on_the_request_session(
    db: AsyncSession, lend: bool = True
) -> None:
    running = most = 0

    async def read(session: AsyncSession) -> AsyncSession:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await session.scalar(select(func.count()).select_from(Team))
        await asyncio.sleep(0.01)
        running -= 1
        return session

    slots = _slots(db.bind)
    if lend:
        slots.free = 0  # every connection lent (to other requests)
    try:
        fanout = ReadFanout(db)
        used = await asyncio.gather(*(fanout.run(read) for _ in range(4)))
    finally:
        slots.free = EXTRA_CONNECTIONS
    assert all(s is db for s in used)
    assert most == 1  # an AsyncSession runs one statement at a time


async def test_a_failed_read_gives_its_connection_back(db: AsyncSession) -> None:
    async def fails(session: AsyncSession) -> None:
        await session.scalar(select(func.count()).select_from(Team))
        raise RuntimeError("the read failed")

    with pytest.raises(RuntimeError, match="the read failed"):
        await ReadFanout(db).run(fails)
    assert _slots(db.bind).free == EXTRA_CONNECTIONS


async def test_reads_see_what_is_committed_not_the_request_s_own_changes(
    factory: Factory, db: AsyncSession, backend: str
) -> None:
    setup = await factory.org_with_roles("Fanout Co")

    async def teams(session: AsyncSession) -> int:
        return int(await session.scalar(select(func.count()).select_from(Team)) or 0)

    before = await teams(db)
    db.add(Team(organization_id=setup.id, name="Not yet committed"))
    await db.flush()
    assert await teams(db) == before + 1
    # On SQLite the read runs on the request's own session, and so sees its change.
    assert await ReadFanout(db).run(teams) == (before + 1 if backend == "sqlite" else before)
    await db.commit()
    assert await ReadFanout(db).run(teams) == before + 1


_STARTED = text("SELECT transaction_timestamp()")


async def _alone(session: AsyncSession) -> bool:
    """Whether the session's statements run outside a transaction block: each then has a transaction (and
    a start time) of its own, where inside one block they all share the block's."""
    first = await session.scalar(_STARTED)
    await session.execute(text("SELECT pg_sleep(0.01)"))
    return bool(first != await session.scalar(_STARTED))


async def test_a_lent_read_begins_no_transaction_and_its_connection_comes_back_as_it_was(
    db: AsyncSession, backend: str
) -> None:
    if backend == "sqlite":  # no connection is lent on SQLite: the read runs in the request's transaction
        await test_with_no_connection_to_lend_reads_take_turns_on_the_request_session(db, lend=False)
        return
    # One connection in the pool: the one lent to the read is the one the next session gets.
    url = db.bind.url.render_as_string(hide_password=False)
    engine = create_async_engine(url, pool_size=1, max_overflow=0)
    try:
        async with AsyncSession(engine) as request:
            assert await ReadFanout(request).run(_alone) is True  # no BEGIN, no ROLLBACK: one round trip each
        async with AsyncSession(engine) as later:
            assert await _alone(later) is False  # the next user of that connection is in a transaction again
    finally:
        await engine.dispose()
