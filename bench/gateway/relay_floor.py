"""The floor under the gateway's added latency on this machine: a process that only copies bytes.

The same three low-load cases as ``run.py`` (0 ms upstream, 50 ms upstream, a stream of 20 chunks 10 ms
apart), sent one at a time, alternately direct to ``upstream.py`` and through a relay: a process of its own
(uvloop, as ``tokenboard serve``) that copies each connection's bytes both ways and does nothing else. What
the relay adds is what any gateway in its own process adds here before doing any work of its own.

    .venv/bin/python bench/gateway/relay_floor.py [--smoke]

Loopback only; prints one line per case. Figures in decision 0002 (*Eighth session*).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

import uvloop

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import Client, free_port  # noqa: E402

# (label, upstream delay ms, stream, pairs)
CASES = (
    ("0 ms upstream", 0, False, 400),
    ("50 ms upstream", 50, False, 200),
    ("stream 20 x 10 ms", 0, True, 40),
)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def _relay(upstream_port: int, port: int) -> None:
    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(connection, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


async def _timed(client: Client, raw: bytes) -> float:
    """Milliseconds to the response's last byte (``run.py``'s client); an error ends the run."""
    result = await client.send(raw)
    if result.status != 200:
        raise RuntimeError(f"{result.target}: {result.error or result.status}")
    return result.ms


async def _measure(upstream_port: int, relay_port: int, smoke: bool) -> None:
    direct, relayed = Client(upstream_port, "direct"), Client(relay_port, "relay")
    for label, delay_ms, stream, pairs in CASES:
        count = 3 if smoke else pairs
        mode = {"delay_ms": delay_ms, "chunks": 20, "interval_ms": 10}
        await _timed(direct, direct.build("/_bench/mode", mode, {}))
        body = {"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
        raw = direct.build("/v1/chat/completions", body, {})
        for _ in range(1 if smoke else 5):  # warm-up
            await _timed(direct, raw)
            await _timed(relayed, raw)
        times: dict[Client, list[float]] = {direct: [], relayed: []}
        for i in range(count):
            for client in (direct, relayed)[:: 1 if i % 2 else -1]:
                times[client].append(await _timed(client, raw))
        d, r = statistics.median(times[direct]), statistics.median(times[relayed])
        print(
            f"{label:<20} pairs {count:>5}  direct p50 {d:.2f} ms  relay p50 {r:.2f} ms"
            f"  added p50 {r - d:.2f} ms"
        )
    direct.close()
    relayed.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--serve-relay", nargs=2, type=int, metavar=("UPSTREAM_PORT", "PORT"), help=argparse.SUPPRESS
    )
    parser.add_argument("--smoke", action="store_true", help="three pairs per case (checks the script runs)")
    args = parser.parse_args()
    if args.serve_relay:
        uvloop.run(_relay(*args.serve_relay))
        return 0
    upstream_port, relay_port = free_port(), free_port()
    upstream = subprocess.Popen([sys.executable, str(HERE / "upstream.py"), "--port", str(upstream_port)])
    relay = subprocess.Popen([sys.executable, __file__, "--serve-relay", str(upstream_port), str(relay_port)])
    try:
        time.sleep(1.5)
        uvloop.run(_measure(upstream_port, relay_port, args.smoke))
    finally:
        upstream.terminate()
        relay.terminate()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
