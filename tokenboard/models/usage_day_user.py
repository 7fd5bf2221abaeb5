from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import Index
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base
from tokenboard.models.usage_rollup_columns import CLUSTERED, FullMetrics, OrgKey


class UsageDayUser(OrgKey, FullMetrics, Base):
    """Rollup: one user's usage on one UTC day (``NO_USER`` for requests without a user)."""

    __tablename__ = "usage_day_users"
    __table_args__ = (
        Index("ix_usage_day_users_org_user_day", "organization_id", "user_id", "day"),
        CLUSTERED,
    )

    day: Mapped[date] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
