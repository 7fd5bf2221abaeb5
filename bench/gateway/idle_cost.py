"""What idling costs on this machine: the same small piece of Python timed after sleeps of rising length.

The gateway's added latency at low load is measured with the process idle between requests (50 ms upstream)
or between a stream's chunks (10 ms apart). This script shows how much slower any code runs right after
such a pause, with no gateway involved: the same job (a dict of 50 strings, a few microseconds warm) timed
after sleeping 0, 1, 2, 5, 10 and 50 ms, in one process, alternating. On a machine whose caches another
tenant uses while this one sleeps, the job's time grows with the pause; the gateway's work after a pause
grows the same way.

    .venv/bin/python bench/gateway/idle_cost.py [--smoke]

Prints one line per pause: the job's median and p90 in microseconds, and the ratio to no pause.
Figures in decision 0002.
"""

from __future__ import annotations

import argparse
import statistics
import time

PAUSES_MS = (0, 1, 2, 5, 10, 50)


def job() -> dict[int, str]:
    values = {}
    for i in range(50):
        values[i] = str(i)
    return values


def measure(rounds: int) -> dict[int, list[float]]:
    """Microseconds of ``job`` after each pause; the pauses take turns so drift hits them all alike."""
    times: dict[int, list[float]] = {pause: [] for pause in PAUSES_MS}
    for _ in range(rounds):
        for pause in PAUSES_MS:
            if pause:
                time.sleep(pause / 1000)
            started = time.perf_counter()
            job()
            times[pause].append((time.perf_counter() - started) * 1e6)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="five rounds (checks the script runs)")
    args = parser.parse_args()
    for _ in range(20):
        job()  # warm
    times = measure(5 if args.smoke else 150)
    base = statistics.median(times[0])
    for pause, values in times.items():
        p50 = statistics.median(values)
        p90 = sorted(values)[int(len(values) * 0.9) - 1] if len(values) >= 10 else max(values)
        print(f"after {pause:>2} ms idle  job p50 {p50:7.1f} us  p90 {p90:7.1f} us  x{p50 / base:5.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
