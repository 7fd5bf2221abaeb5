from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base
from tokenboard.models.usage_rollup_columns import CLUSTERED, OrgKey, SlimMetrics


class UsageDimensionUserDay(OrgKey, SlimMetrics, Base):
    """Rollup: one user's usage per value of one attribution dimension ("only my usage")."""

    __tablename__ = "usage_dimension_user_days"
    __table_args__ = CLUSTERED

    dimension: Mapped[str] = mapped_column(String(20), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    value: Mapped[str] = mapped_column(String(200), primary_key=True)
