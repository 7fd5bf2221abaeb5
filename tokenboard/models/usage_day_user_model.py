from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base
from tokenboard.models.usage_rollup_columns import FullMetrics, OrgKey


class UsageDayUserModel(OrgKey, FullMetrics, Base):
    """Rollup, the finest daily grain: one user's usage of one model on one UTC day."""

    __tablename__ = "usage_day_user_models"
    __table_args__ = (Index("ix_usage_day_user_models_org_user_day", "organization_id", "user_id", "day"),)

    day: Mapped[date] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    model_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(80))
