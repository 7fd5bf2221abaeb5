from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base
from tokenboard.models.usage_rollup_columns import CLUSTERED, OrgKey


class UsageLatencyBucket(OrgKey, Base):
    """Rollup: a latency histogram per model and day, in fixed log-spaced buckets (see usage/rollups.py).

    Percentiles over any range are read from the summed buckets, never from raw events. Keyed by the day's
    month first (migration 0018): the days of a range inside one month are read in (model, bucket) order, the
    order they are summed in.
    """

    __tablename__ = "usage_latency_buckets"
    __table_args__ = CLUSTERED

    month: Mapped[date] = mapped_column(primary_key=True)  # the first day of the day's month
    model_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    bucket: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
