"""Read-only queries of one request side by side, each on a connection of its own.

A page such as the usage report makes a dozen independent reads. One after the other on the request's
session, the process waits for the database while it could be turning the previous answer into rows, and
the database waits for the process. Side by side, the waits overlap (and a database server with more than
one core runs several of them at once).

Only reads go through here. Each runs outside any transaction (autocommit): each of its statements sees what
was committed when it started, never the request's own unflushed or uncommitted changes, and costs one round
trip, with no ``BEGIN`` and ``ROLLBACK`` around it. The request's unit of work is untouched (decision 0004).

The extra connections come from the engine's pool, and a process lends at most :data:`EXTRA_CONNECTIONS`
of them at a time, whatever the number of requests. When none is free a read waits for nobody: it runs
on the request's own session, in turn, as it would without a fan-out. So a request never waits for a
connection another request holds while holding its own, and the pool cannot run dry because of this.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

T = TypeVar("T")

# A quarter of the PostgreSQL pool (10 + 20 overflow, kit/db.py) and SQLite's: several pages at once still
# leave most connections to the requests themselves.
EXTRA_CONNECTIONS = 8
# Set on a lent connection before its read's first statement: SQLAlchemy then begins no transaction on it.
_AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


class _Slots:
    """How many extra connections the process may still lend (one event loop: a counter is enough)."""

    def __init__(self, free: int) -> None:
        self.free = free


_SLOTS: WeakKeyDictionary[Engine, _Slots] = WeakKeyDictionary()


def _slots(engine: AsyncEngine) -> _Slots:
    slots = _SLOTS.get(engine.sync_engine)
    if slots is None:
        slots = _SLOTS[engine.sync_engine] = _Slots(EXTRA_CONNECTIONS)
    return slots


class ReadFanout:
    """``await fanout.run(read)`` runs ``read(session)`` on a session of its own when a connection is free,
    else on the request's session (one read at a time there). Start many with ``asyncio.gather``."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        bind = session.bind
        # Not on SQLite: its connections each run on a thread of their own (aiosqlite), and reads on several
        # of them at once fight over the GIL, which the driver takes back for every row (a member's year of
        # usage at 10M events: 84 ms serially, 145 ms side by side).
        self._slots: _Slots | None = None
        if isinstance(bind, AsyncEngine) and bind.dialect.name != "sqlite":
            self._slots = _slots(bind)
        self._own = asyncio.Lock()

    async def run(self, read: Callable[[AsyncSession], Awaitable[T]]) -> T:
        slots = self._slots
        if slots is not None and slots.free > 0:
            slots.free -= 1
            try:
                async with AsyncSession(bind=self._session.bind) as session:
                    await session.connection(execution_options=_AUTOCOMMIT)
                    return await read(session)
            finally:
                slots.free += 1
        async with self._own:  # an AsyncSession runs one statement at a time
            return await read(self._session)
