from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base
from tokenboard.models.usage_rollup_columns import CLUSTERED, FullMetrics, OrgKey


class UsageDayModel(OrgKey, FullMetrics, Base):
    """Rollup: one model's usage on one UTC day, with how many distinct users used it that day."""

    __tablename__ = "usage_day_models"
    __table_args__ = CLUSTERED

    day: Mapped[date] = mapped_column(primary_key=True)
    model_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(80))
    users: Mapped[int] = mapped_column(BigInteger, default=0)
