from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base
from tokenboard.models.usage_rollup_columns import CLUSTERED, FullMetrics, OrgKey


class UsageDay(OrgKey, FullMetrics, Base):
    """Rollup: one organization's usage on one UTC day, with how many distinct users made requests."""

    __tablename__ = "usage_days"
    __table_args__ = CLUSTERED

    day: Mapped[date] = mapped_column(primary_key=True)
    users: Mapped[int] = mapped_column(BigInteger, default=0)
