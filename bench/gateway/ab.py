"""Two versions of the gateway side by side: is a change to its latency real, or the host's drift?

On this machine two runs of ``run.py`` a few minutes apart differ by more than most changes to the gateway
(decision 0002, *Seventeenth session*: 0.6 ms between quick runs of the same code), and so do two runs of
any probe taken one after the other. Here both versions serve at once, from one upstream
(``upstream.py``), each a ``tokenboard serve`` worker with its own SQLite file; requests go one at a time,
direct, to the base and to the working tree, in each of the six orders in turn (so neither version always
follows the other, or the upstream alone). Each round prints both versions' added p50 for the three
low-load cases of ``run.py``; the last lines give the median over the rounds and of the per-round
differences.

    .venv/bin/python bench/gateway/ab.py [--base REV] [--rounds N] [--smoke]

The base is ``git archive REV tokenboard`` (default ``HEAD``); the working tree is what is checked out, with
uncommitted changes. Both must share the database schema (no migration between them): the databases are
made with the working tree's migrations. Loopback only.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import uvloop

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from run import MODEL, UPSTREAM_KEY, Client, Environment, free_port, seed, start_gateway, stop, wait_ready  # noqa: E402

# (label, upstream delay ms, stream, requests per target per round)
CASES = (
    ("0 ms upstream", 0, False, 120),
    ("50 ms upstream", 50, False, 60),
    ("stream 20 x 10 ms", 0, True, 30),
)
VERSIONS = ("base", "tree")


def export_base(rev: str, into: Path) -> None:
    """The ``tokenboard`` package as committed at ``rev``, under ``into``; refused if the schema differs."""
    changed = subprocess.run(
        ["git", "diff", "--quiet", rev, "--", "tokenboard/migrations"], cwd=ROOT, check=False
    ).returncode
    if changed:
        raise SystemExit(f"{rev} and the working tree have different migrations: compare them with run.py")
    archive = subprocess.run(["git", "archive", rev, "tokenboard"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    # What `python -m tokenboard` imports with the base first on its path, from a directory of its own.
    found = subprocess.run(
        [sys.executable, "-c", "import tokenboard; print(tokenboard.__file__)"],
        cwd=into,
        env={**os.environ, "PYTHONPATH": str(into)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(found).is_relative_to(into):
        raise SystemExit(f"the base's server would import {found}, not the exported {rev}")


async def _round(targets: list[tuple[str, Client, bytes]], count: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name, _, _ in targets}
    orders = list(itertools.permutations(targets))
    for i in range(count):
        for name, client, raw in orders[i % len(orders)]:
            result = await client.send(raw)
            if result.status != 200:
                raise RuntimeError(f"{name}: {result.error or result.status}")
            times[name].append(result.ms)
    direct = statistics.median(times["direct"])
    return {name: statistics.median(times[name]) - direct for name in VERSIONS}


async def measure(envs: dict[str, Environment], rounds: int, smoke: bool) -> None:
    upstream_port = envs["base"].upstream_port
    direct = Client(upstream_port, "direct")
    clients = {name: Client(env.gateway_port, name) for name, env in envs.items()}
    results: dict[str, list[dict[str, float]]] = {label: [] for label, *_ in CASES}
    for round_number in range(1, rounds + 1):
        for label, delay_ms, stream, count in CASES:
            mode = {"delay_ms": delay_ms, "chunks": 20, "interval_ms": 10}
            await direct.send(direct.build("/_bench/mode", mode, {}))
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": "Say hello to the benchmark, briefly."}],
                "max_tokens": 64,
                "stream": stream,
            }
            direct_body = {**body, "model": MODEL.split("/", 1)[1]}
            targets = [
                (
                    "direct",
                    direct,
                    direct.build(
                        "/v1/chat/completions", direct_body, {"Authorization": f"Bearer {UPSTREAM_KEY}"}
                    ),
                )
            ]
            for name, client in clients.items():
                auth = {"Authorization": f"Bearer {envs[name].api_key}"}
                targets.append((name, client, client.build("/v1/chat/completions", body, auth)))
            await _round(targets, 2 if smoke else 6)  # warm-up
            added = await _round(targets, 3 if smoke else count)
            results[label].append(added)
            print(
                f"round {round_number}  {label:<18} added p50  base {added['base']:.3f} ms"
                f"  tree {added['tree']:.3f} ms  (tree - base {added['tree'] - added['base']:+.3f})",
                flush=True,
            )
    for label, rows in results.items():
        base = statistics.median(r["base"] for r in rows)
        tree = statistics.median(r["tree"] for r in rows)
        diff = statistics.median(r["tree"] - r["base"] for r in rows)
        print(
            f"over {len(rows)} rounds  {label:<18} added p50  base {base:.3f} ms  tree {tree:.3f} ms"
            f"  median difference {diff:+.3f} ms"
        )
    for client in (direct, *clients.values()):
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="the commit to compare the working tree with")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the three cases (default 5)")
    parser.add_argument("--smoke", action="store_true", help="one round of a few requests (checks it runs)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tokenboard-bench-ab-"))
    upstream_port = free_port()
    envs: dict[str, Environment] = {}
    try:
        base_code = tmp / "base-code"
        base_code.mkdir()
        export_base(args.base, base_code)
        for name in VERSIONS:
            (tmp / name).mkdir()
            envs[name] = Environment(tmp / name, tmp / name / "bench.db", upstream_port, free_port())
        upstream_log = (tmp / "upstream.log").open("wb")
        upstream = subprocess.Popen(
            [sys.executable, str(HERE / "upstream.py"), "--port", str(upstream_port)],
            stdout=upstream_log,
            stderr=subprocess.STDOUT,
        )
        envs["base"].upstream = upstream
        for name, env in envs.items():
            seed(env)
            # The base's package first on the path of its server; the tree's is the installed one.
            os.environ.pop("PYTHONPATH", None)
            if name == "base":
                os.environ["PYTHONPATH"] = str(base_code)
            start_gateway(env)
        os.environ.pop("PYTHONPATH", None)
        wait_ready(upstream_port, upstream, "upstream")
        for name, env in envs.items():
            assert env.gateway is not None
            wait_ready(env.gateway_port, env.gateway, f"{name} gateway")
        uvloop.run(measure(envs, 1 if args.smoke else args.rounds, args.smoke))
    finally:
        for env in envs.values():
            stop(env.gateway)
        if envs:
            stop(envs["base"].upstream)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
