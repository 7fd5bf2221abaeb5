"""Columns shared by the usage rollup tables (not a table itself).

Every rollup row is an exact integer sum over the usage events of its key. Token columns follow the event
table: ``input_tokens`` excludes cached reads and cache writes, ``output_tokens`` excludes reasoning; the
``total_*`` columns of the slim rollups count every input (or output) token.
"""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, ForeignKey
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

# "No user" inside a rollup key: NULL cannot take part in a primary key or an ON CONFLICT target.
NO_USER = uuid.UUID(int=0)

# Every rollup table's rows are stored in its key's order on SQLite (``WITHOUT ROWID``): a range of the key is
# read from neighbouring pages, and an upsert writes one B-tree instead of a table and its key's index
# (decision 0003, "2026-12-03: rollups clustered by their key on SQLite"). PostgreSQL ignores it.
CLUSTERED = {"sqlite_with_rowid": False}


class OrgKey:
    @declared_attr
    def organization_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(
            ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True, sort_order=-10
        )


class FullMetrics:
    """Everything the daily tables sum: requests and their outcome, tokens by kind, cost and latency."""

    requests: Mapped[int] = mapped_column(BigInteger, default=0, sort_order=10)
    errors: Mapped[int] = mapped_column(BigInteger, default=0, sort_order=10)
    cancelled: Mapped[int] = mapped_column(BigInteger, default=0, sort_order=10)
    streamed: Mapped[int] = mapped_column(BigInteger, default=0, sort_order=10)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0, sort_order=10)
    cached_input_tokens: Mapped[int] = mapped_column(BigInteger, default=0, sort_order=10)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger, default=0, sort_order=10)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0, sort_order=10)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger, default=0, sort_order=10)
    cost_nanousd: Mapped[int] = mapped_column(BigInteger, default=0, sort_order=10)
    latency_ms_sum: Mapped[int] = mapped_column(BigInteger, default=0, sort_order=10)


class SlimMetrics:
    """What the hourly, dimension and conversation tables sum."""

    requests: Mapped[int] = mapped_column(BigInteger, default=0, sort_order=10)
    total_input_tokens: Mapped[int] = mapped_column(BigInteger, default=0, sort_order=10)
    total_output_tokens: Mapped[int] = mapped_column(BigInteger, default=0, sort_order=10)
    cost_nanousd: Mapped[int] = mapped_column(BigInteger, default=0, sort_order=10)


FULL_METRICS = (
    "requests",
    "errors",
    "cancelled",
    "streamed",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_nanousd",
    "latency_ms_sum",
)
SLIM_METRICS = ("requests", "total_input_tokens", "total_output_tokens", "cost_nanousd")
