"""Usage analytics benchmark: ingestion through the pipeline into fresh SQLite and PostgreSQL databases.

For each engine: create a fresh database (a SQLite file in a temporary directory; a PostgreSQL database on
``--pg-dsn``, dropped after), migrate it, sync the catalog, create one organization with ``--users``
members, then ingest ``--events`` synthetic events (a year of realistic usage, ``tokenboard.usage.synthetic``)
through ``tokenboard.usage.ingest.record_events`` in batches of ``--batch``, one committed transaction per
batch. Events/s counts only the time in ``record_events`` and the commit (the generator is excluded) and is
checked: every event stored once, the rollups summing to the events.

Phases run per engine in order (``PHASES``); page timings (the usage page and its JSON twin, and the same
page computed naively over raw events) are meant to be added as further phases reading the same database.

    .venv/bin/python bench/analytics/run.py                  # 1M events on both engines, writes the docs
    .venv/bin/python bench/analytics/run.py --events 100000 --no-docs
    .venv/bin/python bench/analytics/run.py --smoke          # a few thousand events, never writes the docs
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker  # noqa: E402

from tokenboard.catalog.service import CatalogCache, catalog  # noqa: E402
from tokenboard.kit.db import create_engine, create_sessionmaker  # noqa: E402
from tokenboard.migrations import upgrade  # noqa: E402
from tokenboard.models import Membership, Organization, UsageDay, UsageEvent, User  # noqa: E402
from tokenboard.usage.ingest import record_events  # noqa: E402
from tokenboard.usage.synthetic import Person, UsageGenerator  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Usage analytics"
QUALITY_BARS = {"sqlite": 20_000, "postgresql": 50_000}  # events/s, QUALITY.md "usage ingestion"


def log(message: str) -> None:
    print(message, flush=True)


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.M)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": model.group(1).strip() if model else platform.processor() or "unknown",
        "ram": f"{int(mem.group(1)) / 1024 / 1024:.1f} GiB" if mem else "unknown",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "commit": commit or "unknown",
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


# --- Databases --------------------------------------------------------------------------------------------


@dataclass
class Database:
    backend: str
    url: str
    name: str
    admin_dsn: str | None = None

    async def drop(self) -> None:
        if self.admin_dsn is not None:
            conn = await asyncpg.connect(self.admin_dsn)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            finally:
                await conn.close()


async def create_database(backend: str, tmp: Path, pg_dsn: str) -> Database:
    name = f"tokenboard_bench_{uuid.uuid4().hex[:10]}"
    if backend == "sqlite":
        return Database(backend, f"sqlite+aiosqlite:///{tmp / (name + '.db')}", name)
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = pg_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return Database(backend, f"{base}/{name}", name, admin_dsn=pg_dsn)


# --- Phases -----------------------------------------------------------------------------------------------


@dataclass
class Context:
    backend: str
    sessionmaker: async_sessionmaker[AsyncSession]
    args: argparse.Namespace
    organization_id: uuid.UUID = field(default_factory=uuid.uuid4)
    people: list[Person] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


async def seed(ctx: Context) -> None:
    """An organization with ``--users`` members (plus requests without a user) and a synced catalog."""
    async with ctx.sessionmaker() as session:
        await catalog.sync(session)
        org = Organization(name="Bench Co", seat_limit=ctx.args.users + 10)
        session.add(org)
        await session.flush()
        users = [
            User(email=f"user{i}@bench.example", name=f"User {i}", password_hash="-")
            for i in range(ctx.args.users)
        ]
        session.add_all(users)
        await session.flush()
        session.add_all(Membership(organization_id=org.id, user_id=u.id, role="member") for u in users)
        await session.commit()
        ctx.organization_id = org.id
        ctx.people = [Person(u.id) for u in users] + [Person(None)]


async def ingest(ctx: Context) -> None:
    cache = CatalogCache()
    async with ctx.sessionmaker() as session:
        await cache.load(session)
    generator = UsageGenerator(
        ctx.organization_id,
        ctx.people,
        cache,
        events=ctx.args.events,
        end=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        seed=11,
        source="bench",
    )
    busy = 0.0
    inserted = 0
    started = time.perf_counter()
    next_report = started + 10
    for batch in generator.batches(size=ctx.args.batch):
        t0 = time.perf_counter()
        async with ctx.sessionmaker() as session:
            inserted += len(await record_events(session, batch))
            await session.commit()
        busy += time.perf_counter() - t0
        if time.perf_counter() > next_report:
            log(f"  {ctx.backend}: {inserted:,} events, {inserted / busy:,.0f}/s in the pipeline")
            next_report = time.perf_counter() + 10
    wall = time.perf_counter() - started
    async with ctx.sessionmaker() as session:
        stored = await session.scalar(select(func.count()).select_from(UsageEvent))
        rolled = await session.scalar(select(func.sum(UsageDay.requests)))
        # A retried batch changes nothing.
        replay = next(iter(generator.batches(size=ctx.args.batch)))
        again = len(await record_events(session, replay))
        await session.rollback()
    ctx.figures["ingest"] = {
        "events": inserted,
        "stored": int(stored or 0),
        "rolled_up": int(rolled or 0),
        "replayed_inserted": again,
        "pipeline_s": busy,
        "wall_s": wall,
        "events_per_s": inserted / busy if busy else 0.0,
    }
    log(
        f"  {ctx.backend}: {inserted:,} events in {busy:.1f} s of pipeline time "
        f"({inserted / busy:,.0f} events/s; {wall:.1f} s wall with the generator)"
    )


PHASES: list[tuple[str, Callable[[Context], Awaitable[None]]]] = [("seed", seed), ("ingest", ingest)]


async def run_backend(backend: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    database = await create_database(backend, tmp, args.pg_dsn)
    try:
        await asyncio.to_thread(upgrade, database.url)
        engine = create_engine(database.url)
        try:
            ctx = Context(backend, create_sessionmaker(engine), args)
            for name, phase in PHASES:
                log(f"{backend}: {name}")
                await phase(ctx)
            return ctx.figures
        finally:
            await engine.dispose()
    finally:
        await database.drop()


# --- Report -----------------------------------------------------------------------------------------------


def report(
    results: dict[str, dict[str, Any]], args: argparse.Namespace, info: dict[str, str], took: float
) -> str:
    now = dt.datetime.now(dt.UTC)
    command = "python bench/analytics/run.py" + (
        f" --events {args.events}" if args.events != 1_000_000 else ""
    )
    out = [
        SECTION,
        "",
        f"Measured {now:%Y-%m-%d %H:%M} UTC with `{command}` ({took:.0f} s).",
        "",
        f"Machine: {info['nproc']} cores ({info['cpu']}), {info['ram']} RAM, {info['os']}, Python "
        f"{info['python']}; commit `{info['commit']}`; load average before the run {info['load']}. The "
        "database server, when there is one, shares the machine.",
        "",
        "### Ingestion",
        "",
        f"{args.events:,} synthetic events (a year, {args.users} users, the demo's model mix) through "
        f"`record_events` in batches of {args.batch:,}, one committed transaction per batch, into a fresh "
        "database; every rollup is updated in the same transaction. Events/s counts the pipeline and the "
        "commit, not the generator.",
        "",
        "| engine | events | stored | rolled up | replayed batch inserted | pipeline s | events/s | bar "
        "| verdict |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for backend, figures in results.items():
        f = figures["ingest"]
        bar = QUALITY_BARS[backend]
        ok = f["events_per_s"] >= bar and _complete(f)
        verdict = "**pass**" if ok else "**FAIL**"
        out.append(
            f"| {backend} | {f['events']:,} | {f['stored']:,} | {f['rolled_up']:,} "
            f"| {f['replayed_inserted']} | {f['pipeline_s']:.1f} | {f['events_per_s']:,.0f} "
            f"| >= {bar:,} | {verdict} |"
        )
    out += [
        "",
        "Page timings (the usage page and its JSON twin against the naive GROUP BY over raw events) are to "
        "be added to this script as further phases.",
        "",
    ]
    return "\n".join(out)


def _complete(f: dict[str, Any]) -> bool:
    """Every event stored once and rolled up once; a replayed batch inserted nothing."""
    return bool(f["stored"] == f["events"] == f["rolled_up"] and not f["replayed_inserted"])


def write_docs(section: str) -> None:
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip() + "\n\n" + section
    DOCS.write_text(text.rstrip() + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--pg-dsn",
        default=os.environ.get("TOKENBOARD_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--no-docs", action="store_true", help="print the figures, leave docs/benchmarks.md")
    parser.add_argument("--smoke", action="store_true", help="a few thousand events; never writes the docs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.events, args.users, args.batch, args.no_docs = 3_000, 20, 1_000, True
    info = machine()
    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="tokenboard-bench-") as tmp:
        for backend in args.backends.split(","):
            results[backend] = asyncio.run(run_backend(backend, args, Path(tmp)))
    section = report(results, args, info, time.perf_counter() - started)
    log("")
    log(section)
    if not args.no_docs:
        write_docs(section)
        log(f"written to {DOCS.relative_to(ROOT)}")
    return 0 if all(_complete(r["ingest"]) for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
