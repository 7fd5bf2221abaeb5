from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import PrimaryKeyConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base
from tokenboard.models.usage_rollup_columns import CLUSTERED, OrgKey, SlimMetrics


class UsageHourUser(OrgKey, SlimMetrics, Base):
    """Rollup: one user's usage in one UTC hour."""

    __tablename__ = "usage_hour_users"
    # Only ever read for one user (their weekly pattern): their hours are neighbours, and no other index.
    __table_args__ = (PrimaryKeyConstraint("organization_id", "user_id", "hour"), CLUSTERED)

    hour: Mapped[datetime] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
