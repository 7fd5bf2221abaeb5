"""SQLite's writers queue at a gate instead of in SQLite's busy handler.

SQLite lets one connection write at a time. A connection that finds the database locked retries in its busy
handler, which sleeps 1, 2, 5, 10 ... up to 100 ms between tries: a writer that waits for a batch of 5,000
usage events (about 200 ms of writing) wakes up to 100 ms after the batch committed, and with several server
processes (``tokenboard serve --workers 2``) those sleeps took more time than the second process gave
(docs/decisions/0003-usage-rollups.md, *SQLite's writers queue at a gate*).

The usage pipeline, the large writer, first takes this gate: an ``asyncio.Lock`` within the process, then an
exclusive ``flock`` on a file beside the database (``<database>.writers``) across processes, polled every
2 ms. It is released when the session's transaction ends (committed, rolled back or closed), so a waiting
writer starts within a couple of milliseconds of the commit.

The gate is advisory: SQLite's own lock still decides who writes, and a writer that never takes the gate
(a small ORM transaction) waits in the busy handler as before. A connection that already holds SQLite's
write lock does not wait at the gate (that could deadlock with a gate holder waiting for SQLite's lock),
and a writer that waited longer than SQLite's busy timeout goes on without it.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

POLL_SECONDS = 0.002
_HELD = "tokenboard.writer_gate"


class WriterGate:
    """One SQLite database's gate: in-process lock, then a cross-process ``flock`` on ``path``."""

    def __init__(self, path: Path, *, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._fd: int | None = None
        self._pid = 0
        # One lock per event loop: an asyncio.Lock belongs to the loop it was first contended on.
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def _file(self) -> int:
        # Opened per process: a descriptor inherited through fork shares its lock with the parent.
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd

    async def acquire(self) -> asyncio.Lock | None:
        """Wait for the gate; None when the wait outlasted ``timeout`` (go on without it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        try:
            await asyncio.wait_for(lock.acquire(), self.timeout)
        except TimeoutError:
            return None
        try:
            fd = self._file()
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return lock
                except BlockingIOError:
                    if loop.time() >= deadline:
                        lock.release()
                        return None
                await asyncio.sleep(POLL_SECONDS)
        except BaseException:
            lock.release()
            raise

    def release(self, lock: asyncio.Lock) -> None:
        """Give the gate back (``lock``: what :meth:`acquire` returned)."""
        if self._fd is not None and self._pid == os.getpid():
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        lock.release()


_GATES: weakref.WeakKeyDictionary[Engine, WriterGate] = weakref.WeakKeyDictionary()


def install(engine: AsyncEngine, *, timeout: float) -> None:
    """Give a file-backed SQLite engine its gate (``create_engine`` does)."""
    database = engine.sync_engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database[:5] == "file:":
        return
    _GATES[engine.sync_engine] = WriterGate(Path(database + ".writers"), timeout=timeout)


async def enter(session: AsyncSession, driver: Any) -> None:
    """Before the session's first bulk write: wait for the database's gate (SQLite; elsewhere nothing).

    ``driver`` is the session's aiosqlite connection. The gate is held until the transaction ends.
    """
    bind = session.get_bind()
    gate = _GATES.get(bind) if isinstance(bind, Engine) else None
    if gate is None or _HELD in session.info or driver.in_transaction:
        return
    lock = await gate.acquire()
    if lock is not None:
        session.info[_HELD] = (gate, lock)


@event.listens_for(Session, "after_transaction_end")
def _leave(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None and _HELD in session.info:
        gate, lock = session.info.pop(_HELD)
        gate.release(lock)
