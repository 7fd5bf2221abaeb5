from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import Index, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base
from tokenboard.models.usage_rollup_columns import CLUSTERED, FullMetrics, OrgKey


class UsageDayUserModel(OrgKey, FullMetrics, Base):
    """Rollup, the finest daily grain: one user's usage of one model on one UTC day."""

    __tablename__ = "usage_day_user_models"
    __table_args__ = (
        # One user's days are neighbours (their usage page); one day's users are found by the index.
        PrimaryKeyConstraint("organization_id", "user_id", "day", "model_id"),
        Index("ix_usage_day_user_models_org_day_model", "organization_id", "day", "model_id"),
        CLUSTERED,
    )

    day: Mapped[date] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    model_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(80))
