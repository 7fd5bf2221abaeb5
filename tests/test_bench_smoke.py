"""The benchmarks still run: ``bench/gateway/run.py --smoke`` end to end (a handful of requests), the relay
floor and the analytics benchmark.

It starts its own upstream and ``tokenboard serve`` on loopback with a temporary SQLite database, so it
needs none of the suite's database fixtures and runs once, whatever the backends.
"""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _smoke(script: str, *args: str, timeout: float = 120) -> str:
    """``bench/<script> --smoke`` with ``args``: its output, once it exited cleanly."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--smoke", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout


def test_gateway_benchmark_smoke() -> None:
    out = _smoke("gateway/run.py")
    assert "## Gateway overhead" in out
    assert "every request metered" in out


def test_relay_floor_smoke() -> None:
    """``bench/gateway/relay_floor.py --smoke``: the three cases measured direct and through the relay."""
    lines = [line for line in _smoke("gateway/relay_floor.py").splitlines() if "added p50" in line]
    assert [line.split("  ")[0].strip() for line in lines] == [
        "0 ms upstream",
        "50 ms upstream",
        "stream 20 x 10 ms",
    ]
    for line in lines:
        direct = float(line.split("direct p50 ")[1].split(" ms")[0])
        relayed = float(line.split("relay p50 ")[1].split(" ms")[0])
        assert direct > 0 and relayed > 0


def test_side_by_side_smoke() -> None:
    """``bench/gateway/ab.py --smoke``: the committed gateway and the working tree served at once, one round
    of the three cases, each with both versions' added p50."""
    out = _smoke("gateway/ab.py", timeout=180)
    rounds = [line for line in out.splitlines() if line.startswith("round 1 ")]
    assert [line.split("  ")[1].strip() for line in rounds] == [
        "0 ms upstream",
        "50 ms upstream",
        "stream 20 x 10 ms",
    ]
    for line in rounds:
        base = float(line.split("base ")[1].split(" ms")[0])
        tree = float(line.split("tree ")[1].split(" ms")[0])
        assert -10 < base < 50 and -10 < tree < 50  # added times of a few requests: noisy, but finite
    assert sum(line.startswith("over 1 rounds") for line in out.splitlines()) == 3


def test_idle_cost_smoke() -> None:
    """``bench/gateway/idle_cost.py --smoke``: one line per pause, with positive times."""
    lines = _smoke("gateway/idle_cost.py").splitlines()
    assert [int(line.split()[1]) for line in lines] == [0, 1, 2, 5, 10, 50]
    assert all(float(line.split("p50")[1].split()[0]) > 0 for line in lines)


def test_bench_upstream_keeps_its_stream_timetable_when_sends_are_slow() -> None:
    """The bench upstream's deltas are due at fixed times from the first: a slow ``send`` (a reader on a busy
    core) must not push every later delta back, or the upstream itself would run slower for one path than
    for the other and its delay would count as the gateway's."""
    path = ROOT / "bench" / "gateway" / "upstream.py"
    spec = importlib.util.spec_from_file_location("bench_upstream", path)
    assert spec is not None and spec.loader is not None
    upstream = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(upstream)
    chunks, interval_ms, send_ms = 10, 20, 6
    upstream.mode.update({"delay_ms": 0, "chunks": chunks, "interval_ms": interval_ms})
    sent: list[float] = []

    async def slow_send(message: dict[str, Any]) -> None:
        sent.append(time.perf_counter())
        # The send holds the loop, as a write to a reader on a busy core does.
        time.sleep(send_ms / 1000)  # noqa: ASYNC251

    async def stream() -> None:
        await upstream._chat({"model": "m", "stream": True, "messages": []}, slow_send)

    asyncio.run(stream())
    # head, the role delta, ``chunks`` deltas, the tail
    assert len(sent) == chunks + 3
    span_ms = (sent[-2] - sent[1]) * 1000
    # On time: chunks x interval (200 ms), plus one send. Pushed back by each send it would be 260 ms or more.
    assert chunks * interval_ms <= span_ms + 1 < chunks * interval_ms + 3 * send_ms, span_ms


def _analytics(*args: str) -> str:
    """``bench/analytics/run.py --smoke`` with ``args``."""
    return _smoke("analytics/run.py", *args, timeout=300)


def test_analytics_benchmark_smoke() -> None:
    """``bench/analytics/run.py --smoke``: a few thousand events into fresh SQLite and PostgreSQL,
    then through the ingest API."""
    out = _analytics()
    assert "## Usage analytics" in out
    assert "| sqlite | 3,000 | 3,000 | 3,000 | 0 |" in out
    assert "| postgresql | 3,000 | 3,000 | 3,000 | 0 |" in out
    # The ingest API phase: every posted event accepted once, a replayed request accepting none.
    assert "| sqlite | 2,000 | 2,000 | 0 | 0 |" in out
    assert "| postgresql | 2,000 | 2,000 | 0 | 0 |" in out


def test_analytics_benchmark_streamed_smoke() -> None:
    """``--stream``: batches spooled to a file feed two writers via a short queue; each event stored once."""
    out = _analytics("--stream", "--writers", "2")
    assert "reading the file back included" in out and "40 models" in out
    assert "| sqlite | 3,000 | 3,000 | 3,000 | 0 |" in out
    assert "| postgresql | 3,000 | 3,000 | 3,000 | 0 |" in out


def test_soak_smoke() -> None:
    """``bench/gateway/soak.py --smoke``: about 20 s of the mixed load, every kind answered, no error."""
    out = _smoke("gateway/soak.py")
    assert "## Soak" in out
    answered = out.split("Answered in ")[1].split(";")[0]
    for kind in ("chat", "stream", "models", "page html", "page json", "conversations", "ingest"):
        assert f"{kind} " in answered, answered
    assert "Errors: none." in out
    assert "| no error | 0 | pass |" in out
