from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base
from tokenboard.models.usage_rollup_columns import OrgKey, SlimMetrics


class UsageHourUser(OrgKey, SlimMetrics, Base):
    """Rollup: one user's usage in one UTC hour."""

    __tablename__ = "usage_hour_users"
    __table_args__ = (Index("ix_usage_hour_users_org_user_hour", "organization_id", "user_id", "hour"),)

    hour: Mapped[datetime] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
