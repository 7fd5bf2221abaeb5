"""SQLite's usage writers queue at the writer gate, not in SQLite's busy handler (kit/writer_gate.py).

Two engines on one SQLite file stand for two server processes: each has its own gate descriptor, and
``flock`` locks held through different descriptors exclude each other as they would across processes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tests.conftest import TEST_SECRET
from tests.support.databases import create_database
from tests.support.factories import Factory
from tokenboard.app import create_app
from tokenboard.config import Environment, Settings
from tokenboard.kit import bulk, writer_gate
from tokenboard.kit.db import create_engine, create_sessionmaker
from tokenboard.models import Organization, UsageDay, UsageEvent
from tokenboard.usage import rollups
from tokenboard.usage.ingest import record_events

WAIT = 0.3  # how long a blocked writer is watched before its blocker lets go


@pytest.fixture
async def sqlite_org(tmp_path: Path) -> AsyncIterator[tuple[str, uuid.UUID]]:
    url, _ = await asyncio.to_thread(create_database, "sqlite", tmp_path, "gate")  # migrations run their loop
    app = create_app(
        Settings(
            env=Environment.testing,
            database_url=url,
            secret_key=TEST_SECRET,
            journal_dir=tmp_path / "journal",
            gc_tuning=False,
        )
    )
    factory = Factory(app)
    org = await factory.org(await factory.user())
    await app.state.engine.dispose()
    yield url, org.id


@pytest.fixture
async def engines(sqlite_org: tuple[str, uuid.UUID]) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    first, second = create_engine(sqlite_org[0]), create_engine(sqlite_org[0])
    yield first, second
    await first.dispose()
    await second.dispose()


def events(org_id: uuid.UUID, label: str, n: int = 50) -> list[dict[str, Any]]:
    at = datetime(2026, 3, 2, 9, tzinfo=UTC)
    return [
        {
            "organization_id": org_id,
            "request_id": f"{label}-{i}",
            "created_at": at,
            "provider_id": "openai",
            "model_id": "openai/gpt-4o",
            "input_tokens": 10,
            "output_tokens": 5,
            "cost_nanousd": 1_000,
        }
        for i in range(n)
    ]


async def in_sqlite_transaction(session: AsyncSession) -> bool:
    _, driver = await bulk.driver(session)
    return bool(driver.in_transaction)


async def stored(engine: AsyncEngine, org_id: uuid.UUID) -> tuple[int, int]:
    async with create_sessionmaker(engine)() as session:
        events_ = await session.scalar(
            select(func.count()).select_from(UsageEvent).where(UsageEvent.organization_id == org_id)
        )
        requests = await session.scalar(
            select(func.sum(UsageDay.requests)).where(UsageDay.organization_id == org_id)
        )
        return int(events_ or 0), int(requests or 0)


@pytest.mark.parametrize("same_process", [False, True])
async def test_a_second_writer_waits_at_the_gate_then_writes_once_the_first_commits(
    sqlite_org: tuple[str, uuid.UUID], engines: tuple[AsyncEngine, AsyncEngine], same_process: bool
) -> None:
    _, org_id = sqlite_org
    first, second = engines
    if same_process:  # one engine: its sessions queue on the in-process lock
        second = first
    async with create_sessionmaker(first)() as one, create_sessionmaker(second)() as two:
        await record_events(one, events(org_id, "a"))
        waiter = asyncio.create_task(record_events(two, events(org_id, "b")))
        await asyncio.sleep(WAIT)
        assert not waiter.done()
        # It waits before its first write: SQLite's lock (and its busy handler's sleeps) not yet asked for.
        assert not await in_sqlite_transaction(two)
        await one.commit()
        committed = time.perf_counter()
        recorded = await asyncio.wait_for(waiter, 10)
        assert time.perf_counter() - committed < 5
        assert len(recorded) == 50
        await two.commit()
    assert await stored(first, org_id) == (100, 100)


@pytest.mark.parametrize("end", ["rollback", "close"])
async def test_the_gate_opens_when_the_transaction_ends_without_a_commit(
    sqlite_org: tuple[str, uuid.UUID], engines: tuple[AsyncEngine, AsyncEngine], end: str
) -> None:
    _, org_id = sqlite_org
    first, second = engines
    one = create_sessionmaker(first)()
    await record_events(one, events(org_id, "a"))
    async with create_sessionmaker(second)() as two:
        waiter = asyncio.create_task(record_events(two, events(org_id, "b")))
        await asyncio.sleep(WAIT)
        assert not waiter.done()
        await (one.rollback() if end == "rollback" else one.close())
        await asyncio.wait_for(waiter, 10)
        await two.commit()
    await one.close()
    assert await stored(first, org_id) == (50, 50)


async def test_a_writer_already_holding_sqlites_lock_does_not_wait_at_the_gate(
    sqlite_org: tuple[str, uuid.UUID], engines: tuple[AsyncEngine, AsyncEngine]
) -> None:
    """Otherwise: it would wait at the gate for a holder that waits in SQLite's busy handler for it."""
    _, org_id = sqlite_org
    first, second = engines
    async with create_sessionmaker(first)() as one, create_sessionmaker(second)() as two:
        await two.execute(update(Organization).where(Organization.id == org_id).values(name="Renamed"))
        assert await in_sqlite_transaction(two)  # two now holds SQLite's write lock
        blocked = asyncio.create_task(record_events(one, events(org_id, "a")))  # takes the gate, then waits
        await asyncio.sleep(WAIT)
        assert not blocked.done()
        await asyncio.wait_for(record_events(two, events(org_id, "b")), 10)
        await two.commit()
        await asyncio.wait_for(blocked, 10)
        await one.commit()
    assert await stored(first, org_id) == (100, 100)


async def test_a_writer_goes_on_without_the_gate_after_the_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "db.writers"
    holder, other = writer_gate.WriterGate(path, timeout=0.2), writer_gate.WriterGate(path, timeout=0.2)
    held = await holder.acquire()
    assert held is not None
    started = time.perf_counter()
    assert await other.acquire() is None
    assert time.perf_counter() - started >= 0.2
    holder.release(held)
    again = await other.acquire()
    assert again is not None
    other.release(again)


def test_only_file_backed_sqlite_engines_get_a_gate(tmp_path: Path) -> None:
    file_backed = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    in_memory = create_engine("sqlite+aiosqlite:///:memory:")
    postgres = create_engine("postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    gates = writer_gate._GATES
    assert gates[file_backed.sync_engine].path == tmp_path / "x.db.writers"
    assert in_memory.sync_engine not in gates
    assert postgres.sync_engine not in gates


async def test_a_batch_is_summed_into_its_rollup_rows_before_the_gate(
    sqlite_org: tuple[str, uuid.UUID],
    engines: tuple[AsyncEngine, AsyncEngine],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Work done while holding the gate makes every other writer wait: the rollups' Python comes first, and
    inside the gate only the statements run (the day and day x model rows wait for their user counts)."""
    _, org_id = sqlite_org
    order: list[str] = []
    plan, enter = rollups._Plan.__init__, writer_gate.enter

    def planned(self: Any, sums: Any) -> None:
        order.append("rows")
        plan(self, sums)

    async def entered(session: AsyncSession, driver: Any) -> None:
        order.append("gate")
        await enter(session, driver)

    monkeypatch.setattr(rollups._Plan, "__init__", planned)
    monkeypatch.setattr(writer_gate, "enter", entered)
    async with create_sessionmaker(engines[0])() as session:
        assert len(await record_events(session, events(org_id, "a"))) == 50
        await session.commit()
    assert order == ["rows", "gate"]
    assert await stored(engines[0], org_id) == (50, 50)
