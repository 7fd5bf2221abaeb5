"""Usage analytics benchmark: ingestion through the pipeline into fresh SQLite and PostgreSQL databases.

For each engine: create a fresh database (a SQLite file in a temporary directory; a PostgreSQL database on
``--pg-dsn``, dropped after), migrate it, sync the catalog, create one organization with ``--users``
members, then ingest ``--events`` synthetic events (a year of realistic usage over ``--models`` models,
``tokenboard.usage.synthetic``) through ``tokenboard.usage.ingest.record_events`` in batches of ``--batch``,
one committed transaction per batch. Events/s counts only the time in ``record_events`` and the commit (the
generator is excluded; with ``--stream`` the batches are spooled to a temporary file first, about 170 bytes
per event, and read back while they are written, so memory stays bounded) and is checked: every event
stored once, the rollups summing to the events.

Phases run per engine in order (``PHASES``): seed, ingest (``--writers`` concurrent writers, one by
default), small batches (1 and 100 events, what a gateway flush costs), the ingest API
(``--api-events`` more, posted as JSON to ``tokenboard serve --workers 2`` on loopback), the usage page's
reads (``repository.py``) per period, org-wide and for the heaviest user, the same page as GROUP BY over
raw events, and the JSON twin (``GET /api/v1/organizations/{org}/usage``) in-process with a personal access
token.

    .venv/bin/python bench/analytics/run.py                  # 1M events on both engines, writes the docs
    .venv/bin/python bench/analytics/run.py --events 100000 --no-docs
    .venv/bin/python bench/analytics/run.py --events 10000000 --backends sqlite   # the 10M bars (long)
    .venv/bin/python bench/analytics/run.py --events 10000000 --backends postgresql --writers 3 --stream
    .venv/bin/python bench/analytics/run.py --events 100000000 --backends postgresql --writers 3 --stream \
        --no-naive   # the 100M page bar (hours)
    .venv/bin/python bench/analytics/run.py --smoke          # a few thousand events, never writes the docs

To time the reads again without ingesting again: ``--keep DIR`` keeps the databases (the SQLite file in DIR,
the PostgreSQL database left in place) and prints their URLs; ``--db URL`` then reuses one (migrated to head
first, so new rollups are filled by their migration) and runs only the page phases (the naive GROUP BY page
too, unless ``--no-naive``: minutes at 10M events):

    .venv/bin/python bench/analytics/run.py --backends sqlite --keep /tmp/tb --no-docs
    .venv/bin/python bench/analytics/run.py --db sqlite+aiosqlite:////tmp/tb/tokenboard_bench_x.db --no-docs
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.util
import math
import os
import pickle
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from httpx import ASGITransport, AsyncClient, Limits  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker  # noqa: E402

from tokenboard.accounts.service import PAT_PREFIX  # noqa: E402
from tokenboard.app import create_app  # noqa: E402
from tokenboard.catalog.service import CatalogCache, catalog  # noqa: E402
from tokenboard.config import Environment, Settings  # noqa: E402
from tokenboard.kit.db import create_engine, create_sessionmaker  # noqa: E402
from tokenboard.kit.jsonenc import compact_dumps  # noqa: E402
from tokenboard.kit.runtime import tune_gc  # noqa: E402
from tokenboard.kit.security import hash_token, new_token  # noqa: E402
from tokenboard.migrations import upgrade  # noqa: E402
from tokenboard.models import (  # noqa: E402
    Membership,
    Organization,
    PersonalAccessToken,
    UsageDay,
    UsageEvent,
    User,
)
from tokenboard.usage import repository  # noqa: E402
from tokenboard.usage.ingest import record_events  # noqa: E402
from tokenboard.usage.reports import MODEL_ROWS_PER_PAGE as MODEL_PAGE  # noqa: E402
from tokenboard.usage.rollups import DIMENSIONS  # noqa: E402
from tokenboard.usage.schemas import MAX_BATCH  # noqa: E402
from tokenboard.usage.synthetic import Person, UsageGenerator  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Usage analytics"
QUALITY_BARS = {"sqlite": 20_000, "postgresql": 50_000}  # events/s, QUALITY.md "usage ingestion"
PAGE_BAR_MS = 50  # p95 of the usage page's server time at 10M events, QUALITY.md "dashboard queries"
END = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


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


async def create_database(backend: str, tmp: Path, pg_dsn: str, keep: Path | None = None) -> Database:
    name = f"tokenboard_bench_{uuid.uuid4().hex[:10]}"
    if backend == "sqlite":
        tmp = keep or tmp
        return Database(backend, f"sqlite+aiosqlite:///{tmp / (name + '.db')}", name)
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = pg_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return Database(backend, f"{base}/{name}", name, admin_dsn=None if keep else pg_dsn)


# --- Phases -----------------------------------------------------------------------------------------------


@dataclass
class Context:
    backend: str
    sessionmaker: async_sessionmaker[AsyncSession]
    args: argparse.Namespace
    url: str
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
        session.add_all(
            Membership(organization_id=org.id, user_id=u.id, role="owner" if i == 0 else "member")
            for i, u in enumerate(users)
        )
        await session.commit()
        ctx.organization_id = org.id
        ctx.people = [Person(u.id) for u in users] + [Person(None)]


def _generator(ctx: Context, cache: CatalogCache) -> UsageGenerator:
    return UsageGenerator(
        ctx.organization_id,
        ctx.people,
        cache,
        events=ctx.args.events,
        end=END,
        seed=11,
        source="bench",
        models=ctx.args.models,
    )


async def ingest(ctx: Context) -> None:
    """``--writers`` tasks, each with its own connection, commit one batch each at a time.

    With one writer, events/s counts only the time in ``record_events`` and the commit (the generator runs
    between batches, never during one). With several, the batches are in flight together (as several
    gateway instances would write them): every batch is generated first, held in memory (about 1.5 GB per
    million events), and events/s is the events over the wall time of the writers alone.
    """
    cache = CatalogCache()
    async with ctx.sessionmaker() as session:
        await cache.load(session)
    generator = _generator(ctx, cache)
    writers = ctx.args.writers
    busy = 0.0
    inserted = 0

    async def write(batch: list[dict[str, Any]]) -> None:
        nonlocal busy, inserted
        t0 = time.perf_counter()
        async with ctx.sessionmaker() as session:
            # Not `inserted += len(await ...)`: that reads `inserted` before the await, and the other
            # writers' counts in between would be lost.
            recorded = len(await record_events(session, batch))
            await session.commit()
        inserted += recorded
        busy += time.perf_counter() - t0

    started = time.perf_counter()
    if ctx.args.stream:
        measured = await _streamed(generator, ctx.args.batch, writers, write, ctx.backend, lambda: inserted)
    elif writers == 1:
        tune_gc()  # as `tokenboard serve`, `import` and `demo` run (TOKENBOARD_GC_TUNING)
        next_report = started + 10
        for batch in generator.batches(size=ctx.args.batch):
            await write(batch)
            if time.perf_counter() > next_report:
                log(f"  {ctx.backend}: {inserted:,} events written")
                next_report = time.perf_counter() + 10
        measured = busy
    else:
        pending = list(generator.batches(size=ctx.args.batch))
        log(f"  {ctx.backend}: {sum(map(len, pending)):,} events generated; {writers} writers start")
        tune_gc()  # freezes the generated batches too: the collector never walks them
        pending.reverse()

        async def writer() -> None:
            while pending:
                await write(pending.pop())

        t0 = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(writers)))
        measured = time.perf_counter() - t0
    wall = time.perf_counter() - started
    if ctx.backend == "postgresql":
        t0 = time.perf_counter()
        await _autovacuum(ctx.url)
        log(f"  {ctx.backend}: vacuumed and analyzed in {time.perf_counter() - t0:.1f} s")
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
        "pipeline_s": measured,
        "wall_s": wall,
        "events_per_s": inserted / measured if measured else 0.0,
    }
    log(
        f"  {ctx.backend}: {inserted:,} events in {measured:.1f} s "
        f"({inserted / measured:,.0f} events/s; {wall:.1f} s wall with the generator)"
    )


async def _streamed(
    generator: UsageGenerator,
    size: int,
    writers: int,
    write: Callable[[list[dict[str, Any]]], Awaitable[None]],
    backend: str,
    written: Callable[[], int],
) -> float:
    """``--stream``: the batches are generated first into a spool file (pickled, one after another), then a
    thread reads them back into a short queue while the writers drain it, so memory stays a few batches
    whatever ``--events`` (100M events would not fit in memory as batches). Returns the writers' wall time:
    generating is not counted (about 11 us of Python per event, as at 1M where the batches are generated
    beforehand), reading a batch back is (about 4 us per event, in this process)."""
    tune_gc()
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue(maxsize=2 * writers)
    stop = threading.Event()
    with tempfile.TemporaryFile(prefix="tokenboard-bench-batches-") as spool:
        t0 = time.perf_counter()
        generated = await asyncio.to_thread(_spool, generator, size, spool)
        log(
            f"  {backend}: {generated:,} events generated in {time.perf_counter() - t0:.1f} s "
            f"({spool.tell() / 2**20:,.0f} MiB spooled); {writers} writers start"
        )
        spool.seek(0)

        def produce() -> None:
            try:
                while not stop.is_set():  # set when a writer failed
                    try:
                        batch = pickle.load(spool)
                    except EOFError:
                        return
                    asyncio.run_coroutine_threadsafe(queue.put(batch), loop).result()
            finally:
                for _ in range(writers):
                    asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()

        async def writer() -> None:
            while (batch := await queue.get()) is not None:
                await write(batch)

        async def progress() -> None:
            while True:
                await asyncio.sleep(30)
                rate = written() / (time.perf_counter() - t0)
                log(f"  {backend}: {written():,} events written ({rate:,.0f} events/s so far)")

        t0 = time.perf_counter()
        reporter = asyncio.create_task(progress())
        producer = asyncio.ensure_future(asyncio.to_thread(produce))
        try:
            await asyncio.gather(*(writer() for _ in range(writers)))
        finally:
            reporter.cancel()
            stop.set()
            while not producer.done():  # unblock the producer's last puts when the writers stopped early
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                await asyncio.sleep(0.01)
        took = time.perf_counter() - t0
        await producer  # its own error, if any
    return took


def _spool(generator: UsageGenerator, size: int, spool: IO[bytes]) -> int:
    count = 0
    for batch in generator.batches(size=size):
        pickle.dump(batch, spool, protocol=pickle.HIGHEST_PROTOCOL)
        count += len(batch)
    return count


async def _autovacuum(url: str) -> None:
    """What autovacuum does during and after a load, which this machine's server (autovacuum off) would not:
    the rollups are upserted batch after batch, so without a vacuum their dead row versions outnumber the
    live ones (10 to 1 at 100M events) and every read wades through them; without statistics the planner
    reads them with plans made for empty tables. The event table is only inserted into: analyzed."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        tables = await conn.fetch(
            "SELECT relname FROM pg_stat_user_tables "
            "WHERE relname LIKE 'usage\\_%' AND relname <> 'usage_events' ORDER BY relname"
        )
        await conn.execute("VACUUM (ANALYZE) " + ", ".join(f'"{r["relname"]}"' for r in tables))
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def small_batches(ctx: Context) -> None:
    """What one gateway flush costs: ``record_events`` and the commit of 1 and of 100 new events."""
    cache = CatalogCache()
    async with ctx.sessionmaker() as session:
        await cache.load(session)
    result = {}
    reps = 20 if ctx.args.smoke else 100
    for size in (1, 100):
        generator = UsageGenerator(
            ctx.organization_id,
            ctx.people,
            cache,
            events=size * reps,
            end=END,
            seed=5,
            source=f"small{size}",
            models=ctx.args.models,
        )
        times = []
        for batch in generator.batches(size=size):
            t0 = time.perf_counter()
            async with ctx.sessionmaker() as session:
                await record_events(session, batch)
                await session.commit()
            times.append(time.perf_counter() - t0)
        result[size] = (_pct(times, 0.5) * 1000, _pct(times, 0.95) * 1000)
        log(f"  {ctx.backend}: batch of {size}: p50 {result[size][0]:.2f} ms, p95 {result[size][1]:.2f} ms")
    ctx.figures["small"] = result


def _pct(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(len(ordered) * fraction) - 1))]


# --- Page timings -----------------------------------------------------------------------------------------

PERIODS = ("week", "month", "year", "all")


def _range(period: str) -> tuple[dt.date | None, dt.date | None]:
    last = (END - dt.timedelta(days=1)).date()
    days = {"week": 7, "month": 30, "year": 365}.get(period)
    return (None, None) if days is None else (last - dt.timedelta(days=days - 1), last)


def _page_reads(
    org: uuid.UUID, start: dt.date | None, end: dt.date | None, user: uuid.UUID | None
) -> list[tuple[str, Callable[[AsyncSession], Awaitable[Any]]]]:
    """What the usage report reads (reports.py via repository.py), plus the day drill-downs and the
    conversations list; the drill-downs use the range's last day."""
    day = end or (END - dt.timedelta(days=1)).date()
    reads: list[tuple[str, Callable[[AsyncSession], Awaitable[Any]]]] = [
        ("day_series", lambda s: repository.day_series(s, org, user_id=user)),
        ("active_users", lambda s: repository.active_users(s, org, day, user_id=user)),
        ("by_day_users", lambda s: repository.by_day_users(s, org, day, user_id=user)),
        (  # the first page of the By Model & Day table's rows, and whether another follows
            "by_model_day (page)",
            lambda s: repository.by_model_day(s, org, start, end, user_id=user, limit=MODEL_PAGE + 1),
        ),
        (
            "by_model_day_users",
            lambda s: repository.by_model_day_users(s, org, day, TOP_MODEL, user_id=user),
        ),
        ("hourly_pattern", lambda s: repository.hourly_pattern(s, org, start, end, user_id=user)),
        ("model_popularity", lambda s: repository.model_popularity(s, org, start, end, user_id=user)),
        ("dimension_names", lambda s: repository.dimension_names(s, org)),
        ("dimensions", lambda s: repository.dimension_breakdowns(s, org, start, end, user_id=user)),
    ]
    if user is None:
        reads.append(("top_users", lambda s: repository.top_users(s, org, start, end, top=10)))
    reads.append(("conversations", lambda s: repository.conversations(s, org, user_id=user)))
    return reads


TOP_MODEL = "anthropic/claude-sonnet-4-5"


async def pages(ctx: Context) -> None:
    """Each read of the usage page, org-wide and for the heaviest user, per period; the page is their sum."""
    reps = 2 if ctx.args.smoke else ctx.args.reps
    org = ctx.organization_id
    async with ctx.sessionmaker() as session:
        top, _ = await repository.top_users(session, org, None, None, top=1)
    user = top[0].user_id
    ctx.figures["page_user"] = str(user)
    per_read: dict[tuple[str, str], list[float]] = {}
    per_page: dict[tuple[str, str], list[float]] = {}
    for scope, who in (("org", None), ("user", user)):
        for period in PERIODS:
            start, end = _range(period)
            reads = _page_reads(org, start, end, who)
            for rep in range(reps + 1):
                total = 0.0
                async with ctx.sessionmaker() as session:
                    for name, read in reads:
                        t0 = time.perf_counter()
                        await read(session)
                        took = time.perf_counter() - t0
                        total += took
                        if rep:  # the first pass warms the caches and the statement cache
                            per_read.setdefault((scope, name), []).append(took)
                if rep:
                    per_page.setdefault((scope, period), []).append(total)
    ctx.figures["reads"] = {k: (_pct(v, 0.5) * 1000, _pct(v, 0.95) * 1000) for k, v in per_read.items()}
    ctx.figures["pages"] = {k: (_pct(v, 0.5) * 1000, _pct(v, 0.95) * 1000) for k, v in per_page.items()}
    for (scope, period), (p50, p95) in ctx.figures["pages"].items():
        log(f"  {ctx.backend}: page {scope} {period}: p50 {p50:.1f} ms, p95 {p95:.1f} ms")


def _naive_sql(backend: str) -> dict[str, str]:
    """The same page as GROUP BY over the raw events (what the rollups replace)."""
    if backend == "postgresql":
        day, hour = (
            "(created_at AT TIME ZONE 'UTC')::date",
            "date_trunc('hour', created_at AT TIME ZONE 'UTC')",
        )
        month = "date_trunc('month', created_at AT TIME ZONE 'UTC')"
        year = "date_trunc('year', created_at AT TIME ZONE 'UTC')"
    else:
        day, hour = "substr(created_at, 1, 10)", "substr(created_at, 1, 13)"
        month, year = "substr(created_at, 1, 7)", "substr(created_at, 1, 4)"
    usage = (
        "count(*), sum(cost_nanousd), sum(input_tokens + cached_input_tokens + cache_write_5m_tokens "
        "+ cache_write_1h_tokens), sum(output_tokens + reasoning_tokens)"
    )
    where = "organization_id = :org AND created_at >= :start AND created_at < :stop"
    queries = {
        "summary": f"SELECT {usage}, sum(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END) "
        "FROM usage_events "
        f"WHERE {where}",
        "by_day": f"SELECT {day}, {usage}, count(DISTINCT user_id) FROM usage_events "
        f"WHERE {where} GROUP BY 1",
        "by_model_day": f"SELECT {day}, model_id, {usage}, count(DISTINCT user_id) FROM usage_events "
        f"WHERE {where} GROUP BY 1, 2",
        "hourly_pattern": f"SELECT {hour}, {usage} FROM usage_events WHERE {where} GROUP BY 1",
        "by_month": f"SELECT {month}, {usage} FROM usage_events WHERE {where} GROUP BY 1",
        "by_year": f"SELECT {year}, {usage} FROM usage_events WHERE {where} GROUP BY 1",
        "model_popularity": f"SELECT model_id, {usage}, sum(latency_ms) FROM usage_events WHERE {where} "
        "GROUP BY 1",
        "top_users": f"SELECT user_id, {usage} FROM usage_events WHERE {where} GROUP BY 1",
        "conversations": f"SELECT conversation_id, user_id, min(created_at), max(created_at), {usage} "
        "FROM usage_events WHERE organization_id = :org AND conversation_id IS NOT NULL "
        "GROUP BY 1, 2 ORDER BY 4 DESC LIMIT 50",  # one user's conversation, as the rollup keeps it
    }
    for dimension, column in DIMENSIONS.items():
        queries[f"dimension:{dimension}"] = (
            f"SELECT {column}, {usage} FROM usage_events WHERE {where} AND {column} IS NOT NULL GROUP BY 1"
        )
    return queries


async def naive(ctx: Context) -> None:
    """The org-wide page computed with GROUP BY over raw events, per period (fewer repetitions: slow)."""
    reps = 1 if ctx.args.smoke else max(1, ctx.args.reps // 5)
    queries = _naive_sql(ctx.backend)
    result = {}
    for period in PERIODS:
        start, end = _range(period)
        lo = (
            dt.datetime.combine(start, dt.time(), dt.UTC) if start else dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        )
        hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC) if end else END
        params: dict[str, Any] = {"org": ctx.organization_id, "start": lo, "stop": hi}
        if ctx.backend == "sqlite":  # stored text: compare like with like
            params = {
                "org": ctx.organization_id.hex,
                "start": lo.strftime("%Y-%m-%d %H:%M:%S.%f"),
                "stop": hi.strftime("%Y-%m-%d %H:%M:%S.%f"),
            }
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            async with ctx.sessionmaker() as session:
                for sql in queries.values():
                    (await session.execute(text(sql), params)).all()
            times.append(time.perf_counter() - t0)
        result[period] = (_pct(times, 0.5) * 1000, _pct(times, 0.95) * 1000)
        log(f"  {ctx.backend}: naive page {period}: p50 {result[period][0]:.0f} ms")
    ctx.figures["naive"] = result


async def _personal_token(ctx: Context, user_id: uuid.UUID) -> str:
    token = new_token(PAT_PREFIX)
    async with ctx.sessionmaker() as session:
        session.add(
            PersonalAccessToken(
                user_id=user_id, name="bench", token_hash=hash_token(token), token_hint="bench"
            )
        )
        await session.commit()
    return token


@contextlib.asynccontextmanager
async def _app_client(ctx: Context, user_id: uuid.UUID | None = None) -> AsyncIterator[AsyncClient]:
    """The application in-process (httpx's ASGI transport), as the organization's owner (or ``user_id``)
    with a personal access token."""
    settings = Settings(
        env=Environment.testing,
        database_url=ctx.url,
        secret_key="bench-secret-key-not-for-production",
        base_url="http://testserver",
        journal_dir=(journal := Path(tempfile.mkdtemp(prefix="tokenboard-bench-journal-"))),
    )
    app = create_app(settings)
    tune_gc()  # what the server's startup does (httpx's ASGI transport runs no lifespan)
    token = await _personal_token(ctx, user_id or ctx.people[0].user_id)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="http://testserver", headers=headers) as client:
            yield client
    finally:
        await app.state.engine.dispose()
        shutil.rmtree(journal, ignore_errors=True)


def _gateway_bench() -> Any:
    """``bench/gateway/run.py`` as a module: its helpers start and stop ``tokenboard serve``."""
    spec = importlib.util.spec_from_file_location("gateway_bench", ROOT / "bench" / "gateway" / "run.py")
    assert spec is not None and spec.loader is not None
    module = sys.modules.get(spec.name)
    if module is None:
        module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


@contextlib.asynccontextmanager
async def _served_client(ctx: Context, workers: int) -> AsyncIterator[AsyncClient]:
    """``tokenboard serve --workers N`` on the database, over loopback HTTP, with the owner's personal access
    token. Every request opens its own connection, so the workers share the requests as they share many
    clients' (a kept-alive connection stays with the worker that accepted it)."""
    gateway = _gateway_bench()
    token = await _personal_token(ctx, ctx.people[0].user_id)
    port = gateway.free_port()
    journal = Path(tempfile.mkdtemp(prefix="tokenboard-bench-journal-"))
    env = gateway.clean_env() | {
        "TOKENBOARD_ENV": "development",
        "TOKENBOARD_DATABASE_URL": ctx.url,
        "TOKENBOARD_SECRET_KEY": "bench-" + uuid.uuid4().hex,
        "TOKENBOARD_JOURNAL_DIR": str(journal),
    }
    command = [str(Path(sys.executable).with_name("tokenboard")), "serve", "--no-migrate"]
    server = await asyncio.to_thread(
        subprocess.Popen,
        [*command, "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        await asyncio.to_thread(gateway.wait_ready, port, server, "server")
        async with AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {token}"},
            limits=Limits(max_keepalive_connections=0),
            timeout=300,
        ) as client:
            yield client
    finally:
        gateway.stop(server)
        shutil.rmtree(journal, ignore_errors=True)


# The ingest API's fields, from the generator's event rows.
_API_FIELDS = (
    "model_id", "input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "cost_nanousd",
    "latency_ms", "stream", "status_code", "error_type", "cancelled", "feature", "tool", "integration",
    "conversation_id", "message_id",
)  # fmt: skip


def _api_event(row: dict[str, Any]) -> dict[str, Any]:
    event = {name: row[name] for name in _API_FIELDS if row.get(name) is not None}
    event["model"] = event.pop("model_id")
    event["id"] = row["request_id"]
    event["timestamp"] = row["created_at"].isoformat()
    if row.get("user_id") is not None:
        event["user_id"] = str(row["user_id"])
    return event


async def ingest_api(ctx: Context) -> None:
    """``POST /api/v1/organizations/{org}/usage/events``: ``--api-events`` new events in batches of
    ``--api-batch`` (at most the API's 5,000, within the route's default 4 MiB body), from ``--api-clients``
    clients each with one request in flight, to ``tokenboard serve --workers N`` over loopback HTTP
    (``--api-workers``; 0: in-process through httpx's ASGI transport). The bodies are encoded before the clock
    starts; events/s counts the requests' wall time alone (the server's HTTP and JSON parsing, validation,
    attribution checks, the pipeline and the commit)."""
    cache = CatalogCache()
    async with ctx.sessionmaker() as session:
        await cache.load(session)
    total = ctx.args.api_events
    generator = UsageGenerator(
        ctx.organization_id,
        ctx.people,
        cache,
        events=total,
        end=END,
        seed=17,
        source="api",
        models=ctx.args.models,
    )
    bodies = [
        compact_dumps({"events": [_api_event(row) for row in batch]}).encode()
        for batch in generator.batches(size=min(ctx.args.api_batch, MAX_BATCH))
    ]
    path = f"/api/v1/organizations/{ctx.organization_id}/usage/events"
    counts = {"accepted": 0, "duplicates": 0}
    pending = list(reversed(bodies))
    workers = ctx.args.api_workers
    async with _served_client(ctx, workers) if workers else _app_client(ctx) as client:

        async def post(body: bytes) -> dict[str, int]:
            response = await client.post(path, content=body, headers={"content-type": "application/json"})
            if response.status_code != 200:
                raise RuntimeError(f"ingest API: {response.status_code} {response.text[:300]}")
            result: dict[str, int] = response.json()
            return result

        async def sender() -> None:
            while pending:
                result = await post(pending.pop())
                for name in counts:
                    counts[name] += result[name]

        t0 = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(ctx.args.api_clients)))
        took = time.perf_counter() - t0
        replay = await post(bodies[0])
    accepted, duplicates = counts["accepted"], counts["duplicates"]
    ctx.figures["api"] = {
        "events": total,
        "accepted": accepted,
        "duplicates": duplicates,
        "replayed_accepted": replay["accepted"],
        "clients": ctx.args.api_clients,
        "seconds": took,
        "events_per_s": accepted / took if took else 0.0,
    }
    log(f"  {ctx.backend}: ingest API: {accepted:,} events in {took:.1f} s ({accepted / took:,.0f} events/s)")


async def json_twin(ctx: Context) -> None:
    """The usage page as HTML (``GET /organizations/{org}/usage``) and its JSON twin (``GET
    /api/v1/organizations/{org}/usage``), in-process (httpx ASGITransport) with a personal access token, as
    the owner (org-wide) and as the heaviest user, a member (their own usage), per period ending on the
    data's last day, alternately."""
    reps = 2 if ctx.args.smoke else ctx.args.reps
    targets = {
        "json": f"/api/v1/organizations/{ctx.organization_id}/usage",
        "html": f"/organizations/{ctx.organization_id}/usage",
    }
    results: dict[str, dict[tuple[str, str], tuple[float, float]]] = {kind: {} for kind in targets}
    heaviest = uuid.UUID(ctx.figures["page_user"])  # the pages phase found them
    for scope, user, mine in (("org", None, "false"), ("user", heaviest, "true")):
        async with _app_client(ctx, user) as client:
            for period in PERIODS:
                # The period ending on the data's last day (a custom range of the same length), as the
                # reads above: "the past week" ending today could hold no event of a kept database.
                start, end = _range(period)
                params = {"period": "all", "mine": mine}
                if start is not None and end is not None:
                    params |= {"period": "custom", "start": start.isoformat(), "end": end.isoformat()}
                for kind, path in targets.items():
                    times = []
                    for rep in range(reps + 1):
                        t0 = time.perf_counter()
                        response = await client.get(path, params=params)
                        took = time.perf_counter() - t0
                        if response.status_code != 200:
                            raise RuntimeError(f"usage {kind}: {response.status_code} {response.text[:300]}")
                        if kind == "json" and (response.json()["top_users"] is None) != (scope == "user"):
                            raise RuntimeError(f"usage {scope}: the page shows the wrong scope")
                        if rep:
                            times.append(took)
                    figures = (_pct(times, 0.5) * 1000, _pct(times, 0.95) * 1000)
                    results[kind][(scope, period)] = figures
                    log(f"  {ctx.backend}: {kind} {scope} {period}: p50 {figures[0]:.1f} ms")
    ctx.figures["json"], ctx.figures["html"] = results["json"], results["html"]


async def load(ctx: Context) -> None:
    """A database kept by an earlier run (``--db``): its organization and members, nothing ingested."""
    async with ctx.sessionmaker() as session:
        org = await session.scalar(select(Organization).where(Organization.name == "Bench Co"))
        if org is None:
            raise RuntimeError("--db: no bench organization in that database")
        ctx.organization_id = org.id
        # The owner first, as seed() made them: the HTML page and JSON twin are timed as people[0].
        ids = await session.scalars(
            select(Membership.user_id)
            .where(Membership.organization_id == org.id)
            .order_by((Membership.role == "owner").desc(), Membership.user_id)
        )
        ctx.people = [Person(i) for i in ids] + [Person(None)]
        ctx.figures["events"] = int(await session.scalar(select(func.count()).select_from(UsageEvent)) or 0)


READ_PHASES: list[tuple[str, Callable[[Context], Awaitable[None]]]] = [
    ("load", load),
    ("pages", pages),
    ("JSON twin", json_twin),
]

PHASES: list[tuple[str, Callable[[Context], Awaitable[None]]]] = [
    ("seed", seed),
    ("ingest", ingest),
    ("small batches", small_batches),
    ("ingest API", ingest_api),
    ("pages", pages),
    ("naive page", naive),
    ("JSON twin", json_twin),
]


async def run_backend(backend: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    if args.db:
        database = Database(backend, args.db, "")
        phases = READ_PHASES if args.no_naive else [*READ_PHASES[:2], ("naive page", naive), *READ_PHASES[2:]]
    else:
        database = await create_database(backend, tmp, args.pg_dsn, args.keep)
        phases = PHASES
    try:
        t0 = time.perf_counter()
        await asyncio.to_thread(upgrade, database.url)
        log(f"{backend}: migrated in {time.perf_counter() - t0:.1f} s ({database.url})")
        engine = create_engine(database.url)
        try:
            ctx = Context(backend, create_sessionmaker(engine), args, database.url)
            for name, phase in phases:
                if name == "naive page" and args.no_naive:
                    continue
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
    command = (
        "python bench/analytics/run.py"
        + "".join(
            f" --{name} {value}"
            for name, value, default in (
                ("events", args.events, 1_000_000),
                ("writers", args.writers, 1),
                ("models", args.models, 40),
                ("backends", args.backends, "sqlite,postgresql"),
            )
            if value != default
        )
        + (" --stream" if args.stream else "")
    )
    if args.stream:
        writers = (
            f"{args.writers} writer(s) on their own connections, fed through a short queue from a file the "
            "batches were generated into first (`--stream`, bounded memory): events/s counts the writers' "
            "wall time, reading the file back included"
        )
    elif args.writers == 1:
        writers = "one writer: events/s counts the time in `record_events` and the commit, not the generator"
    else:
        writers = (
            f"{args.writers} writers on their own connections, batches in flight together as several "
            "instances would write them, generated beforehand: events/s counts the writers' wall time"
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
        f"{args.events:,} synthetic events (a year, {args.users} users, {args.models} models) through "
        f"`record_events` in batches of {args.batch:,}, one committed transaction per batch, into a fresh "
        f"database; every rollup is updated in the same transaction; {writers}.",
        "",
        "| engine | events | stored | rolled up | replayed batch inserted | pipeline s | events/s | bar "
        "| verdict |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for backend, figures in results.items():
        if "ingest" not in figures:
            out.append(f"| {backend} | {figures.get('events', 0):,} (kept database) |" + " - |" * 7)
            continue
        f = figures["ingest"]
        out.append(
            f"| {backend} | {f['events']:,} | {f['stored']:,} | {f['rolled_up']:,} "
            f"| {f['replayed_inserted']} | {f['pipeline_s']:.1f} | {_against_bar(backend, f, _complete(f))} |"
        )
    out += [
        "",
        "Small batches (what one gateway flush costs): `record_events` and the commit of new events, into "
        "the database above, ms.",
        "",
        "| engine | 1 event p50 | 1 event p95 | 100 events p50 | 100 events p95 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for backend, figures in results.items():
        if "small" not in figures:
            continue
        small = figures["small"]
        one, hundred = small[1], small[100]
        out.append(f"| {backend} | {one[0]:.2f} | {one[1]:.2f} | {hundred[0]:.2f} | {hundred[1]:.2f} |")
    api = {backend: figures["api"] for backend, figures in results.items() if "api" in figures}
    if api:  # not with --db (a kept database: the page phases only)
        out += [
            "",
            f"The ingest API (`POST /api/v1/organizations/{{org}}/usage/events`): {args.api_events:,} more "
            f"events in batches of {min(args.api_batch, MAX_BATCH):,}, "
            + (
                f"to `tokenboard serve --workers {args.api_workers}` over loopback HTTP (a new connection "
                "per request, so the workers share them)"
                if args.api_workers
                else "in-process through httpx's ASGI transport"
            )
            + f" with a personal access token, {args.api_clients} client(s) each with one request in flight, "
            "the bodies encoded beforehand: events/s counts the requests' wall time (HTTP and JSON parsing, "
            "validation, attribution checks, the pipeline and the commit).",
            "",
            "| engine | events | accepted | duplicates | replayed batch accepted | s | events/s | bar "
            "| verdict |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
    for backend, a in api.items():
        complete = a["accepted"] == a["events"] and not a["duplicates"] and not a["replayed_accepted"]
        out.append(
            f"| {backend} | {a['events']:,} | {a['accepted']:,} | {a['duplicates']} "
            f"| {a['replayed_accepted']} | {a['seconds']:.1f} | {_against_bar(backend, a, complete)} |"
        )
    out += [
        "",
        "### Usage page",
        "",
        "Server time of the reads the usage page makes (`tokenboard/usage/repository.py`), after the "
        f"ingestion above, {args.reps} timed repetitions after one warm-up, for the periods ending on the "
        "data's last day (week, month = 30 days, year = 365 days, all), org-wide and for the heaviest user "
        "(only my usage): *reads* is their sum, plus the two day drill-downs and the conversations list, "
        "timed one by one; the naive page computes the same figures with GROUP BY over the raw events "
        "(org-wide). *HTML page* (`GET /organizations/{org}/usage`, rendered) and *JSON twin* (`GET "
        "/api/v1/organizations/{org}/usage`) are whole requests in-process through httpx's ASGI transport "
        "with a personal access token (org-wide: the owner; user: the heaviest user, a member, who sees only "
        "their own usage), for the same periods as the reads (week, month and year as custom ranges). "
        f"Bar: p95 <= {PAGE_BAR_MS} ms at 10M events, for the page and its JSON twin.",
        "",
        "| engine | scope | period | reads p50 ms | reads p95 ms | HTML page p50 | HTML page p95 "
        "| JSON twin p50 | JSON twin p95 | naive page ms | naive / reads |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for backend, figures in results.items():
        for (scope, period), (p50, p95) in figures["pages"].items():
            twin = figures.get("json", {}).get((scope, period))
            twin_cells = f"{twin[0]:.1f} | {twin[1]:.1f}" if twin else "- | -"
            html = figures.get("html", {}).get((scope, period))
            twin_cells = (f"{html[0]:.1f} | {html[1]:.1f}" if html else "- | -") + " | " + twin_cells
            naive_ms = figures.get("naive", {}).get(period, (0.0, 0.0))[0] if scope == "org" else None
            naive_cells = f"{naive_ms:,.0f} | {naive_ms / p50:,.0f}x" if naive_ms else "- | -"
            out.append(
                f"| {backend} | {scope} | {period} | {p50:.1f} | {p95:.1f} | {twin_cells} | {naive_cells} |"
            )
    out += ["", "Per read, p50 / p95 ms over every period and repetition:", ""]
    names = list(dict.fromkeys(name for f in results.values() for _, name in f["reads"]))
    header = "| read | " + " | ".join(f"{b} org | {b} user" for b in results) + " |"
    out += [header, "| --- |" + " --- | --- |" * len(results)]
    for name in names:
        cells = []
        for figures in results.values():
            for scope in ("org", "user"):
                v = figures["reads"].get((scope, name))
                cells.append(f"{v[0]:.1f} / {v[1]:.1f}" if v else "-")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out.append("")
    return "\n".join(out)


def _against_bar(backend: str, figures: dict[str, Any], complete: bool) -> str:
    """The events/s, bar and verdict cells of an ingestion row: a pass needs the rate and every event once."""
    bar = QUALITY_BARS[backend]
    verdict = "**pass**" if figures["events_per_s"] >= bar and complete else "**FAIL**"
    return f"{figures['events_per_s']:,.0f} | >= {bar:,} | {verdict}"


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
    parser.add_argument("--models", type=int, default=40, help="distinct models (QUALITY.md's data: 40)")
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--writers", type=int, default=1, help="concurrent writers, each its own connection")
    parser.add_argument(
        "--stream",
        action="store_true",
        help="spool the generated batches to a file, read them back while writing (bounded memory, for "
        "10M+ events); events/s then includes reading them back",
    )
    parser.add_argument(
        "--api-events", type=int, default=100_000, help="events posted to the ingest API after the ingestion"
    )
    parser.add_argument(
        "--api-clients",
        type=int,
        default=3,
        help="ingest API requests in flight at once (more than the workers, so that each stays busy)",
    )
    parser.add_argument(
        "--api-workers",
        type=int,
        default=2,
        help="`tokenboard serve --workers N` over loopback HTTP for the ingest API; 0: in-process instead",
    )
    parser.add_argument(
        "--api-batch", type=int, default=5_000, help="events per ingest API request (at most 5,000, in 4 MiB)"
    )
    parser.add_argument("--reps", type=int, default=20, help="timed repetitions of each page")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--pg-dsn",
        default=os.environ.get("TOKENBOARD_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--no-docs", action="store_true", help="print the figures, leave docs/benchmarks.md")
    parser.add_argument("--smoke", action="store_true", help="a few thousand events; never writes the docs")
    parser.add_argument("--no-naive", action="store_true", help="skip the GROUP BY page (slow at 10M)")
    parser.add_argument("--keep", type=Path, help="keep the databases (SQLite files in this directory)")
    parser.add_argument("--db", help="reuse a database kept with --keep: only the page phases (no docs)")
    args = parser.parse_args(argv)
    if args.db:
        args.backends = "postgresql" if args.db.startswith("postgresql") else "sqlite"
        args.no_docs = True
    if args.smoke:
        args.events, args.users, args.batch, args.no_docs, args.reps = 3_000, 20, 1_000, True, 2
        args.api_events, args.api_batch = 2_000, 500
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
    return 0 if all(_complete(r["ingest"]) for r in results.values() if "ingest" in r) else 1


if __name__ == "__main__":
    sys.exit(main())
