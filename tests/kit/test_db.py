from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tests.support.databases import create_database, drop_database
from tokenboard.kit.db import HashedUUID, uuid7
from tokenboard.migrations import downgrade, upgrade


def test_uuid7_sorts_by_creation_time() -> None:
    ids = []
    for _ in range(5):
        ids.append(uuid7())
        time.sleep(0.002)
    assert ids == sorted(ids)
    assert all(i.version == 7 for i in ids)


def test_a_hashed_uuid_is_the_plain_uuid_of_the_same_value() -> None:
    """Equal, hashing alike, the same text (kept for the journal) and pickled back to a plain UUID."""
    import pickle
    import uuid

    plain = uuid.uuid4()
    hashed = HashedUUID(plain)
    assert hashed == plain and hash(hashed) == hash(plain) and {plain: 1}[hashed] == 1
    assert str(hashed) == str(plain) and f"{hashed}" == f"{plain}" and hashed.hex == plain.hex
    assert repr(hashed).endswith(f"('{plain}')")
    again = pickle.loads(pickle.dumps(hashed))
    assert again == plain and str(again) == str(plain)


async def test_timestamps_come_back_timezone_aware(factory: object) -> None:
    user = await factory.user()  # type: ignore[attr-defined]
    from tokenboard.accounts import repository

    loaded = await factory.run(lambda s: repository.get_user(s, user.id))  # type: ignore[attr-defined]
    assert loaded.created_at.tzinfo is not None
    assert abs(loaded.created_at - datetime.now(UTC)) < timedelta(minutes=1)


async def test_naive_datetimes_are_refused(factory: object) -> None:
    from tokenboard.kit.db import UTCDateTime

    with pytest.raises(ValueError):
        UTCDateTime().process_bind_param(datetime(2026, 1, 1), None)  # type: ignore[arg-type]
    shifted = UTCDateTime().process_bind_param(
        datetime(2026, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))), _Dialect()
    )
    assert shifted == datetime(2026, 1, 1, 0, tzinfo=UTC)


class _Dialect:
    name = "postgresql"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_go_down_and_up_again(backend: str, tmp_path: object) -> None:
    url, name = create_database(backend, tmp_path, "migrate")  # type: ignore[arg-type]
    try:
        downgrade(url, "base")
        upgrade(url)
    finally:
        drop_database(backend, name)


async def test_sqlite_connections_are_tuned_for_one_writer_and_many_readers(tmp_path: object) -> None:
    """Every SQLite connection: write-ahead log, foreign keys, no fsync per commit, a busy timeout, the large
    page cache and the less frequent checkpoints."""
    from sqlalchemy import text

    from tokenboard.kit.db import SQLITE_CACHE_KIB, SQLITE_WAL_AUTOCHECKPOINT_PAGES, create_engine

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/pragmas.db")
    try:
        async with engine.connect() as conn:
            found = {
                name: (await conn.execute(text(f"PRAGMA {name}"))).scalar()
                for name in (
                    "journal_mode",
                    "foreign_keys",
                    "synchronous",
                    "busy_timeout",
                    "cache_size",
                    "wal_autocheckpoint",
                )
            }
    finally:
        await engine.dispose()
    assert found == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "synchronous": 1,  # NORMAL
        "busy_timeout": 30000,
        "cache_size": -SQLITE_CACHE_KIB,
        "wal_autocheckpoint": SQLITE_WAL_AUTOCHECKPOINT_PAGES,
    }


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_the_migrations_build_the_schema_the_models_describe(backend: str, tmp_path: object) -> None:
    import asyncio

    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import tokenboard.models  # noqa: F401  (every table on the metadata)
    from tokenboard.kit.db import Base, create_engine

    url, name = await asyncio.to_thread(create_database, backend, tmp_path, "schema")  # type: ignore[arg-type]
    try:
        await asyncio.to_thread(upgrade, url)
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                differences = await conn.run_sync(
                    lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
                )
        finally:
            await engine.dispose()
        assert differences == []
    finally:
        await asyncio.to_thread(drop_database, backend, name)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_migration_0011_fills_the_weekly_cells_from_the_hours_already_rolled_up(
    backend: str, tmp_path: object
) -> None:
    import asyncio
    import uuid

    from sqlalchemy import select

    from tokenboard.kit.db import create_engine, create_sessionmaker
    from tokenboard.models import Organization, UsageHour, UsageMonthHourCell

    url, name = await asyncio.to_thread(create_database, backend, tmp_path, "cells")  # type: ignore[arg-type]
    try:
        # The organization is made at head, where the ORM's columns are (later migrations added some), and
        # kept by the downgrade; the hours are written at 0010, before the weekly cells existed.
        await asyncio.to_thread(upgrade, url)
        engine = create_engine(url)
        org_id = uuid.uuid4()
        async with create_sessionmaker(engine)() as session:
            session.add(Organization(id=org_id, name="Cells", seat_limit=5))
            await session.commit()
        await engine.dispose()
        await asyncio.to_thread(downgrade, url, "0010")
        engine = create_engine(url)
        hours = [  # (UTC hour, requests): two Mondays 09:00 in March, a Sunday 23:00, a Monday in April
            (datetime(2026, 3, 2, 9, tzinfo=UTC), 2),
            (datetime(2026, 3, 9, 9, tzinfo=UTC), 3),
            (datetime(2026, 3, 8, 23, tzinfo=UTC), 5),
            (datetime(2026, 4, 6, 9, tzinfo=UTC), 7),
        ]
        async with create_sessionmaker(engine)() as session:
            session.add_all(
                UsageHour(
                    organization_id=org_id,
                    hour=at,
                    requests=n,
                    total_input_tokens=10 * n,
                    total_output_tokens=n,
                    cost_nanousd=1000 * n,
                )
                for at, n in hours
            )
            await session.commit()
        await engine.dispose()
        await asyncio.to_thread(upgrade, url)
        engine = create_engine(url)
        async with create_sessionmaker(engine)() as session:
            cells = (await session.scalars(select(UsageMonthHourCell))).all()
            found = {(c.month.isoformat(), c.weekday, c.hour): (c.requests, c.cost_nanousd) for c in cells}
        await engine.dispose()
        assert found == {
            ("2026-03-01", 0, 9): (5, 5000),
            ("2026-03-01", 6, 23): (5, 5000),
            ("2026-04-01", 0, 9): (7, 7000),
        }
    finally:
        await asyncio.to_thread(drop_database, backend, name)


def test_request_ids_are_128_random_bits_in_hex_and_differ_after_a_fork() -> None:
    import os

    from tokenboard.kit.db import request_id

    ids = {request_id() for _ in range(20_000)}
    assert len(ids) == 20_000 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child's generator is seeded anew, so it does not repeat the parent's next ids
        os.write(write, request_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    assert child != request_id() and child not in ids


async def _key_columns(conn: Any, backend: str, table: str) -> list[str]:
    """The primary key's columns, in their order."""
    if backend == "sqlite":
        rows = (await conn.exec_driver_sql(f"PRAGMA table_info({table})")).all()
        return [r[1] for r in sorted((r for r in rows if r[5]), key=lambda r: r[5])]
    rows = await conn.exec_driver_sql(
        "SELECT a.attname FROM pg_index i "
        "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        f"WHERE i.indrelid = '{table}'::regclass AND i.indisprimary ORDER BY k.n"
    )
    return [r[0] for r in rows]


async def _check_sqlite_plans(url: str, org_id: object) -> None:
    """One user's days and one day's users are each found through the index made for them, not by walking
    every row of the organization through the clustered key's prefix (the fixed statistics of 0016)."""
    from tokenboard.kit.db import create_engine

    engine = create_engine(url)
    plans = {
        "SELECT day, requests FROM usage_day_users WHERE organization_id = ? AND user_id = ? ORDER BY day": (
            "ix_usage_day_users_org_user_day (organization_id=? AND user_id=?)"
        ),
        "SELECT user_id, requests FROM usage_day_user_models "
        "WHERE organization_id = ? AND day = ? AND model_id = ?": (
            "ix_usage_day_user_models_org_day_model (organization_id=? AND day=? AND model_id=?)"
        ),
        "SELECT model_id, sum(requests) FROM usage_day_user_models "
        "WHERE organization_id = ? AND user_id = ? AND day >= ? GROUP BY model_id": (
            "PRIMARY KEY (organization_id=? AND user_id=? AND day>?)"
        ),
    }
    try:
        async with engine.connect() as conn:
            for sql, used in plans.items():
                params = (org_id.hex, "0" * 32, "2026-01-01")[: sql.count("?")]  # type: ignore[attr-defined]
                plan = " ".join(r[3] for r in await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params))
                assert used in plan, (sql, plan)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_migrations_0016_to_0018_keep_every_rollup_row_and_fill_the_monthly_user_tables(
    backend: str, tmp_path: object
) -> None:
    """Usage recorded at head; down to 0015 (rowid tables, the old keys, no monthly user tables, latency
    days without their month) and up again: every row of every rollup is the same, the monthly user tables
    refilled from the daily ones exactly as the pipeline had summed them, each latency day given its month."""
    import asyncio
    import importlib
    import uuid

    from sqlalchemy import select

    from tests.usage.test_rollups import make_events
    from tokenboard.kit.db import create_engine, create_sessionmaker
    from tokenboard.models import Organization, UsageLatencyBucket
    from tokenboard.usage.ingest import record_events
    from tokenboard.usage.rollups import ROLLUP_MODELS

    latency_days, latency_months = "usage_latency_buckets", "usage_month_latency_buckets"
    tables = importlib.import_module("tokenboard.migrations.versions.0016_rollups_clustered_by_key").TABLES
    monthly_users = {"usage_month_user_models", "usage_month_user_hour_cells", "usage_month_dimension_users"}
    url, name = await asyncio.to_thread(create_database, backend, tmp_path, "clustered")  # type: ignore[arg-type]
    org_id, users = uuid.uuid4(), [uuid.uuid4(), uuid.uuid4(), None]

    async def rows_and_layout(at_head: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        engine = create_engine(url)
        rows: dict[str, Any] = {}
        try:
            async with create_sessionmaker(engine)() as session:
                for model in ROLLUP_MODELS:
                    table = model.__tablename__
                    if at_head or table not in monthly_users:
                        # a latency day's month (0018) is compared on its own: it is the day's month
                        columns = [c for c in model.__table__.c if (table, c.name) != (latency_days, "month")]
                        found = (await session.execute(select(*columns))).all()
                        rows[table] = sorted((tuple(r) for r in found), key=repr)
                if at_head:
                    latency = select(UsageLatencyBucket.day, UsageLatencyBucket.month)
                    found = (await session.execute(latency)).all()
                    assert found and all(month == day.replace(day=1) for day, month in found)
            async with engine.connect() as conn:
                layout: dict[str, Any] = {t: await _key_columns(conn, backend, t) for t in tables}
                if backend == "sqlite":
                    query = "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
                    found = await conn.exec_driver_sql(query)
                    clustered = {n for n, sql in found if sql.rstrip().endswith("WITHOUT ROWID")}
                    layout["clustered"] = sorted(clustered & (set(tables) | monthly_users))
        finally:
            await engine.dispose()
        return rows, layout

    try:
        await asyncio.to_thread(upgrade, url)
        engine = create_engine(url)
        async with create_sessionmaker(engine)() as session:
            session.add(Organization(id=org_id, name="Clustered", seat_limit=5))
            await session.flush()
            assert len(await record_events(session, make_events(org_id, users, 300, seed=16))) == 300
            await session.commit()
        await engine.dispose()
        head, new = await rows_and_layout(at_head=True)
        assert sum(len(v) for v in head.values()) > 1000
        assert all(head[t] for t in monthly_users)

        await asyncio.to_thread(downgrade, url, "0015")
        old_rows, old = await rows_and_layout(at_head=False)
        # 0019's downgrade recomputes the conversations under their old key, one row per conversation id
        # (tests/usage/test_conversations.py checks it); 0019's upgrade makes them again as at head (below).
        remade = monthly_users | {"usage_conversations"}
        assert {t: v for t, v in old_rows.items() if t not in remade} == {
            t: v for t, v in head.items() if t not in remade
        }
        assert old["usage_day_user_models"] == ["organization_id", "day", "user_id", "model_id"]
        assert old["usage_hour_users"] == ["organization_id", "hour", "user_id"]
        assert new["usage_day_user_models"] == ["organization_id", "user_id", "day", "model_id"]
        assert new["usage_hour_users"] == ["organization_id", "user_id", "hour"]
        assert old[latency_days] == ["organization_id", "day", "model_id", "bucket"]
        assert old[latency_months] == ["organization_id", "month", "model_id", "bucket"]
        assert new[latency_days] == ["organization_id", "month", "model_id", "bucket", "day"]
        assert new[latency_months] == ["organization_id", "model_id", "bucket", "month"]
        for table in tables:
            if table not in ("usage_day_user_models", "usage_hour_users", latency_days, latency_months):
                assert new[table] == old[table], table
        if backend == "sqlite":
            assert old["clustered"] == []
            assert new["clustered"] == sorted(set(tables) | monthly_users)

        await asyncio.to_thread(upgrade, url)
        again, layout = await rows_and_layout(at_head=True)
        assert again == head and layout == new  # 0017's fill equals what the pipeline summed
        if backend == "sqlite":
            await _check_sqlite_plans(url, org_id)
    finally:
        await asyncio.to_thread(drop_database, backend, name)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_migrating_down_and_up_keeps_the_rows_that_reference_a_rebuilt_table(
    backend: str, tmp_path: object
) -> None:
    """An organization with members, a team and a workspace at head; down to 0007 (0008's downgrade rebuilds
    ``organizations`` on SQLite) and up again: every row of every table that exists at both ends is still
    there. With SQLite's foreign keys enforced during the rebuild, its DROP cascaded to the memberships."""
    import asyncio
    from types import SimpleNamespace

    from sqlalchemy import inspect as sa_inspect

    from tests.support.factories import Factory
    from tokenboard.kit.db import create_engine, create_sessionmaker

    url, name = await asyncio.to_thread(create_database, backend, tmp_path, "cascade")  # type: ignore[arg-type]

    async def row_counts() -> dict[str, int]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                tables = await conn.run_sync(lambda sync: sa_inspect(sync).get_table_names())
                counts = {}
                for table in tables:
                    if table != "alembic_version":
                        counts[table] = (
                            await conn.exec_driver_sql(f'SELECT count(*) FROM "{table}"')
                        ).scalar_one()
                return counts
        finally:
            await engine.dispose()

    try:
        await asyncio.to_thread(upgrade, url)
        engine = create_engine(url)
        try:
            factory = Factory(
                SimpleNamespace(state=SimpleNamespace(sessionmaker=create_sessionmaker(engine)))
            )  # type: ignore[arg-type]
            setup = await factory.org_with_roles("Kept")
            await factory.team(setup.organization, "Research")
            await factory.workspace(setup.organization, "kept-tools")
        finally:
            await engine.dispose()
        at_head = await row_counts()
        assert at_head["memberships"] >= 4 and at_head["teams"] >= 1 and at_head["workspaces"] >= 1
        await asyncio.to_thread(downgrade, url, "0007")
        at_0007 = await row_counts()
        assert {t: n for t, n in at_head.items() if t in at_0007} == at_0007
        await asyncio.to_thread(upgrade, url)
        assert await row_counts() == at_head
    finally:
        await asyncio.to_thread(drop_database, backend, name)
