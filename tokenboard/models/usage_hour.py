from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base
from tokenboard.models.usage_rollup_columns import CLUSTERED, OrgKey, SlimMetrics


class UsageHour(OrgKey, SlimMetrics, Base):
    """Rollup: one organization's usage in one UTC hour (the weekly pattern reads it)."""

    __tablename__ = "usage_hours"
    __table_args__ = CLUSTERED

    hour: Mapped[datetime] = mapped_column(primary_key=True)
