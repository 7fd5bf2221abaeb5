from __future__ import annotations

from datetime import date

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base
from tokenboard.models.usage_rollup_columns import CLUSTERED, OrgKey, SlimMetrics


class UsageDimensionDay(OrgKey, SlimMetrics, Base):
    """Rollup: usage per value of one attribution dimension (team, workspace, feature, tool, integration).

    Events without a value for a dimension are not counted under it.
    """

    __tablename__ = "usage_dimension_days"
    __table_args__ = CLUSTERED

    dimension: Mapped[str] = mapped_column(String(20), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    value: Mapped[str] = mapped_column(String(200), primary_key=True)
