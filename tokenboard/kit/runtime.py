"""Process-wide tuning: the garbage collector, set once a process has loaded what it keeps for good.

CPython's cycle collector runs a full pass over every tracked object after enough allocations. A Tokenboard
process holds a large, long-lived heap (SQLAlchemy's mappings, the catalog, templates) and allocates many
short-lived tuples and dicts per request and per usage batch, so those full passes cost about a fifth of
the ingestion pipeline's time (measured: docs/benchmarks.md, *Usage analytics*). Reference counting frees
almost all of that garbage anyway; the collector is only needed for cycles, which stay rare here.

- ``gc.freeze()`` moves everything alive at startup to a permanent generation the collector never scans;
- the older generations are collected ten times less often than by default (every 100 collections of the
  generation below instead of every 10); the youngest keeps its default threshold, so cyclic garbage made
  by a request is still found young.
"""

from __future__ import annotations

import gc

GENERATION_THRESHOLDS = (700, 100, 100)


def tune_gc() -> None:
    """Freeze what is alive now and space out the older generations' collections.

    For processes that run one app or one job (``tokenboard serve``, ``import``, ``demo``, the benchmarks):
    the test suite builds many apps in one process and leaves the collector as it is
    (``TOKENBOARD_GC_TUNING=false``), since frozen objects are never collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GENERATION_THRESHOLDS)
