"""Soak: one server under mixed gateway and dashboard load for a long while, and its memory over time.

The bar (QUALITY.md, *soak*): 30 minutes of mixed gateway + dashboard load, memory growth <= 1 MiB/min, no
error. The same processes as ``run.py`` (the OpenAI-compatible ``upstream.py``, a fresh SQLite database
seeded with the demo organization, a real ``python -m tokenboard serve``), and from this process, all at
once and on fixed schedules:

- chat completions through the gateway, plain and streamed, and the model list;
- the usage page (HTML) and its JSON twin, alternately, as the organization's owner with a personal
  access token; the conversations list;
- batches of usage posted to the ingest API;
- one live-updates subscriber (server-sent events), reconnecting whenever the server ends its stream.

Every ``--sample`` seconds the server's resident memory (``VmRSS``) is read from ``/proc``. Growth is the
least-squares slope of those readings after the warm-up (the first fifth of the run), in MiB per minute.
Any answer other than 2xx, and any failed connection, is an error.

    .venv/bin/python bench/gateway/soak.py                     # 30 minutes; rewrites its docs section
    .venv/bin/python bench/gateway/soak.py --minutes 5 --no-docs
    .venv/bin/python bench/gateway/soak.py --smoke             # about 20 s, never writes the docs

The exit status is 0 when the run completed without an error; a missed memory bar is reported as FAIL in
the figures. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import (  # noqa: E402
    MODEL,
    ROOT,
    Client,
    Environment,
    cpu_seconds,
    free_port,
    log,
    machine,
    run_async,
    servers,
    write_docs,
)

SECTION = "## Soak"
BAR_GROWTH_MIB_PER_MIN = 1.0
WARM_UP_SHARE = 0.2  # the first fifth of the run is left out of the growth
INGEST_BATCH = 100


@dataclass(frozen=True)
class Schedule:
    """How often each kind of request starts (seconds between two), whatever the answers."""

    chat: float = 1 / 20
    stream: float = 1 / 2
    models: float = 5.0
    page: float = 2.0  # the HTML page and the JSON twin, alternately
    conversations: float = 10.0
    ingest: float = 5.0  # a batch of INGEST_BATCH events
    live_lifetime: float = 30.0  # seconds before the server ends a live stream (the subscriber reconnects)


@dataclass
class Sample:
    at: float  # seconds since the load started
    rss_kib: int
    cpu_s: float
    database_bytes: int
    answered: int


@dataclass
class Soak:
    env: Environment
    token: str
    seconds: float
    sample_every: float
    schedule: Schedule = field(default_factory=Schedule)
    answered: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[Sample] = field(default_factory=list)
    live_events: int = 0
    live_streams: int = 0

    def __post_init__(self) -> None:
        self.gateway = Client(self.env.gateway_port, "gateway")
        self.dashboard = Client(self.env.gateway_port, "dashboard")
        org = self.env.org_id
        key = {"Authorization": f"Bearer {self.env.api_key}"}
        chat = {"model": MODEL, "messages": [{"role": "user", "content": "Soak test."}], "max_tokens": 32}
        self.requests = {
            "chat": self.gateway.build("/v1/chat/completions", chat, key),
            "stream": self.gateway.build("/v1/chat/completions", {**chat, "stream": True}, key),
            "models": self._get("/v1/models", self.env.api_key),
            "page html": self._get(f"/organizations/{org}/usage?period=month", self.token),
            "page json": self._get(f"/api/v1/organizations/{org}/usage?period=month", self.token),
            "conversations": self._get(f"/api/v1/organizations/{org}/usage/conversations", self.token),
        }
        self.batches = 0

    def _get(self, path: str, token: str) -> bytes:
        head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.env.gateway_port}\r\n"
        return (head + f"Authorization: Bearer {token}\r\n\r\n").encode()

    async def _send(self, kind: str, client: Client, raw: bytes) -> None:
        result = await client.send(raw)
        if result.error is not None or not 200 <= result.status < 300:
            self.errors[f"{kind}: {result.error or result.status}"] += 1
        else:
            self.answered[kind] += 1

    def _ingest_body(self) -> bytes:
        self.batches += 1
        now = dt.datetime.now(dt.UTC).isoformat()
        events = [
            {
                "id": f"soak-{self.batches}-{i}",
                "timestamp": now,
                "model": MODEL,
                "input_tokens": 500 + i,
                "output_tokens": 100,
                "feature": "soak",
                "conversation_id": f"soak-{self.batches}-{i // 5}",
            }
            for i in range(INGEST_BATCH)
        ]
        path = f"/api/v1/organizations/{self.env.org_id}/usage/events"
        return self.dashboard.build(path, {"events": events}, {"Authorization": f"Bearer {self.token}"})

    async def _every(
        self, interval: float, until: float, start: Callable[[int], Coroutine[Any, Any, None]]
    ) -> None:
        """Start ``start(n)`` every ``interval`` seconds until ``until`` (open loop: never waits for one)."""
        tasks: set[asyncio.Task[None]] = set()
        n = 0
        due = time.monotonic()
        while due < until:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            task = asyncio.create_task(start(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
            due += interval
        if tasks:
            await asyncio.gather(*tasks)

    async def _live(self, until: float) -> None:
        """One subscriber to the organization's live updates, for as long as the load lasts."""
        lifetime = self.schedule.live_lifetime
        path = f"/api/v1/organizations/{self.env.org_id}/usage/live?lifetime={lifetime:g}"
        while time.monotonic() < until:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.env.gateway_port)
            except OSError as exc:
                self.errors[f"live: {type(exc).__name__}"] += 1
                await asyncio.sleep(1)
                continue
            due = time.monotonic() + lifetime + 10  # when the server must have ended it, at the latest
            try:
                async with asyncio.timeout(max(0.0, min(due, until) - time.monotonic())):
                    writer.write(self._get(path, self.token))
                    status = int((await reader.readline()).split(b" ", 2)[1])
                    if status != 200:
                        self.errors[f"live: {status}"] += 1
                        await asyncio.sleep(1)
                        continue
                    self.live_streams += 1
                    while line := await reader.readline():
                        if line.startswith(b"event: usage"):
                            self.live_events += 1
                self.answered["live stream"] += 1
            except TimeoutError:
                if due <= until:  # the server did not end its stream when it said it would
                    self.errors["live: stream outlived its lifetime"] += 1
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
                self.errors[f"live: {type(exc).__name__}"] += 1
            finally:
                writer.close()

    def _sample(self, began: float) -> None:
        pid = self.env.gateway.pid  # type: ignore[union-attr]
        status = Path(f"/proc/{pid}/status").read_text()
        rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        files = [self.env.db_path, Path(f"{self.env.db_path}-wal")]
        size = sum(f.stat().st_size for f in files if f.exists())
        self.samples.append(
            Sample(time.monotonic() - began, rss, cpu_seconds(pid), size, sum(self.answered.values()))
        )

    async def _sampler(self, began: float, until: float) -> None:
        while True:
            self._sample(began)
            if time.monotonic() >= until:
                return
            await asyncio.sleep(min(self.sample_every, max(0.0, until - time.monotonic())))

    async def run(self) -> None:
        s = self.schedule
        began = time.monotonic()
        until = began + self.seconds

        def sender(kind: str, client: Client) -> Callable[[int], Coroutine[Any, Any, None]]:
            return lambda _n: self._send(kind, client, self.requests[kind])

        def page(n: int) -> Coroutine[Any, Any, None]:
            kind = "page html" if n % 2 == 0 else "page json"
            return self._send(kind, self.dashboard, self.requests[kind])

        def ingest(_n: int) -> Coroutine[Any, Any, None]:
            return self._send("ingest", self.dashboard, self._ingest_body())

        await asyncio.gather(
            self._sampler(began, until),
            self._every(s.chat, until, sender("chat", self.gateway)),
            self._every(s.stream, until, sender("stream", self.gateway)),
            self._every(s.models, until, sender("models", self.gateway)),
            self._every(s.page, until, page),
            self._every(s.conversations, until, sender("conversations", self.dashboard)),
            self._every(s.ingest, until, ingest),
            self._live(until),
        )
        self._sample(began)  # after the last answers
        self.gateway.close()
        self.dashboard.close()


def create_token(env: Environment) -> str:
    """A personal access token of the organization's owner (the dashboard's reads and the ingest API)."""
    from sqlalchemy import select

    from tokenboard.accounts.service import PAT_PREFIX
    from tokenboard.config import Settings
    from tokenboard.kit.security import hash_token, new_token
    from tokenboard.kit.uow import run_in_unit_of_work
    from tokenboard.models import Membership, PersonalAccessToken

    token = new_token(PAT_PREFIX)
    settings = Settings(database_url=env.database_url, _env_file=None)

    async def work(session: Any) -> None:
        owner = await session.scalar(
            select(Membership.user_id).where(
                Membership.organization_id == uuid.UUID(env.org_id), Membership.role == "owner"
            )
        )
        session.add(
            PersonalAccessToken(user_id=owner, name="soak", token_hash=hash_token(token), token_hint="soak")
        )

    asyncio.run(run_in_unit_of_work(settings, work))
    return token


def growth_mib_per_minute(samples: list[Sample]) -> float:
    """Least-squares slope of the resident memory over time."""
    if len(samples) < 2:
        return 0.0
    xs = [s.at / 60 for s in samples]
    ys = [s.rss_kib / 1024 for s in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / spread if spread else 0.0


def report(soak: Soak, info: dict[str, Any]) -> tuple[str, bool]:
    samples = soak.samples
    measured = [s for s in samples if s.at >= WARM_UP_SHARE * soak.seconds]
    growth = growth_mib_per_minute(measured)
    served = sum(soak.answered.values())
    errors = sum(soak.errors.values())
    grows_ok, errors_ok = growth <= BAR_GROWTH_MIB_PER_MIN, errors == 0
    host = info["machine"]
    first, last = samples[0], samples[-1]
    lines = [
        SECTION,
        "",
        f"Recorded {info['date']} by `{info['command']}` at `{host['commit']}` on {host['nproc']} cores "
        f"({host['cpu']}), {host['ram']} RAM, {host['os']}, Python {host['python']} (load average before the "
        f"run: {host['load']}). One `tokenboard serve` process on SQLite with the fake upstream "
        "(`bench/gateway/soak.py`); the load, started on fixed schedules whatever the answers: "
        f"{1 / soak.schedule.chat:g} chat completions/s and {1 / soak.schedule.stream:g} streams/s through "
        f"the gateway, the model list every {soak.schedule.models:g} s, the usage page (HTML and JSON twin "
        f"alternately) every {soak.schedule.page:g} s and the conversations list every "
        f"{soak.schedule.conversations:g} s as the owner, {INGEST_BATCH} events posted to the ingest API "
        f"every {soak.schedule.ingest:g} s, and one live-updates subscriber reconnecting every "
        f"{soak.schedule.live_lifetime:g} s. Memory is the server's resident set (`VmRSS`).",
        "",
        "| minute | resident MiB | server CPU s | database MiB | answers |",
        "| --- | --- | --- | --- | --- |",
    ]
    shown, next_minute = [], 0.0
    for s in samples:
        if s.at >= next_minute or s is last:
            shown.append(s)
            next_minute = s.at + max(60.0, soak.seconds / 30)
    for s in shown:
        lines.append(
            f"| {s.at / 60:.1f} | {s.rss_kib / 1024:.1f} | {s.cpu_s:.1f} | {s.database_bytes / 2**20:.1f} | "
            f"{s.answered:,} |"
        )
    kinds = ", ".join(f"{kind} {count:,}" for kind, count in sorted(soak.answered.items()))
    failed = ", ".join(f"{what} ({count})" for what, count in sorted(soak.errors.items())) or "none"
    lines += [
        "",
        f"Answered in {soak.seconds / 60:.1f} minutes: {served:,} ({kinds}); live events heard: "
        f"{soak.live_events:,} over {soak.live_streams} streams. Errors: {failed}.",
        "",
        "| bar | measured | verdict |",
        "| --- | --- | --- |",
        f"| memory growth <= {BAR_GROWTH_MIB_PER_MIN:g} MiB/min | {growth:+.3f} MiB/min after the first "
        f"{WARM_UP_SHARE * soak.seconds / 60:.1f} minutes ({len(measured)} readings; resident "
        f"{first.rss_kib / 1024:.1f} MiB at the start, {last.rss_kib / 1024:.1f} at the end, peak "
        f"{max(s.rss_kib for s in samples) / 1024:.1f}) | {'pass' if grows_ok else '**FAIL**'} |",
        f"| no error | {errors} | {'pass' if errors_ok else '**FAIL**'} |",
    ]
    return "\n".join(lines) + "\n", errors_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between memory readings")
    parser.add_argument("--smoke", action="store_true", help="about 20 s; never writes the docs")
    parser.add_argument("--no-docs", action="store_true", help="print the figures only")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.minutes, args.sample, args.no_docs = 20 / 60, 2.0, True
    command = " ".join(["python", "bench/gateway/soak.py", *(argv if argv is not None else sys.argv[1:])])
    host = machine()
    tmp = Path(tempfile.mkdtemp(prefix="tokenboard-soak-"))
    env = Environment(tmp=tmp, db_path=tmp / "soak.db", upstream_port=free_port(), gateway_port=free_port())
    status = 1
    log(f"soak: {args.minutes:g} minutes; temporary files in {tmp}")
    with servers(env, keep=args.keep):
        token = create_token(env)
        soak = Soak(env, token, seconds=args.minutes * 60, sample_every=args.sample)
        run_async(soak.run())
        info = {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": command,
            "machine": host,
        }
        section, clean = report(soak, info)
        log("")
        log(section)
        if not args.no_docs:
            write_docs(section, SECTION)
            log(f"wrote {(ROOT / 'docs' / 'benchmarks.md').relative_to(ROOT)}")
        if not soak.answered:
            log("ERROR: nothing was answered")
        elif not clean:
            log("ERROR: some requests failed (see Errors above)")
        else:
            status = 0
    return status


if __name__ == "__main__":
    sys.exit(main())
