"""Monthly rollups: the daily rollups summed per calendar month (UTC), for long ranges.

A range is read as its full months from these tables plus its partial edge days from the daily ones: exact
integer sums either way (see tokenboard/usage/repository.py). ``month`` is the first day of the month.
Distinct users are not kept here: they cannot be summed across days, and the pages count them per day.
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import BigInteger, PrimaryKeyConstraint, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base
from tokenboard.models.usage_rollup_columns import CLUSTERED, FullMetrics, OrgKey, SlimMetrics


class UsageMonthUser(OrgKey, SlimMetrics, Base):
    """Rollup: one user's usage in one UTC month (``NO_USER`` for requests without a user)."""

    __tablename__ = "usage_month_users"
    __table_args__ = CLUSTERED

    month: Mapped[date] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)


class UsageMonthModel(OrgKey, FullMetrics, Base):
    """Rollup: one model's usage in one UTC month."""

    __tablename__ = "usage_month_models"
    __table_args__ = CLUSTERED

    month: Mapped[date] = mapped_column(primary_key=True)
    model_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(80))


class UsageMonthDimension(OrgKey, SlimMetrics, Base):
    """Rollup: usage per value of one attribution dimension in one UTC month."""

    __tablename__ = "usage_month_dimensions"
    __table_args__ = CLUSTERED

    dimension: Mapped[str] = mapped_column(String(20), primary_key=True)
    month: Mapped[date] = mapped_column(primary_key=True)
    value: Mapped[str] = mapped_column(String(200), primary_key=True)


class UsageMonthLatencyBucket(OrgKey, Base):
    """Rollup: a model's latency histogram in one UTC month (the buckets of usage_latency_buckets), keyed by
    model and bucket before the month (migration 0018): any range of months is read in the order it is
    summed in."""

    __tablename__ = "usage_month_latency_buckets"
    __table_args__ = CLUSTERED

    model_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    bucket: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[date] = mapped_column(primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)


class UsageMonthHourCell(OrgKey, SlimMetrics, Base):
    """Rollup: one cell of the weekly pattern (UTC weekday x hour of day) in one UTC month, org-wide.

    The weekly pattern of a long range reads 168 cells per month instead of every hour of the range.
    """

    __tablename__ = "usage_month_hour_cells"
    __table_args__ = CLUSTERED

    month: Mapped[date] = mapped_column(primary_key=True)
    weekday: Mapped[int] = mapped_column(SmallInteger, primary_key=True)  # 0 = Monday
    hour: Mapped[int] = mapped_column(SmallInteger, primary_key=True)  # 0-23


# One user's months (a member's own usage page over a year or more), keyed by the user first so a user's rows
# are neighbours. The org-wide tables above stay free of users, so their size does not grow with members.


class UsageMonthUserModel(OrgKey, FullMetrics, Base):
    """Rollup: one user's usage of one model in one UTC month."""

    __tablename__ = "usage_month_user_models"
    __table_args__ = (PrimaryKeyConstraint("organization_id", "user_id", "month", "model_id"), CLUSTERED)

    month: Mapped[date] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    model_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(80))


class UsageMonthUserHourCell(OrgKey, SlimMetrics, Base):
    """Rollup: one cell of one user's weekly pattern (UTC weekday x hour of day) in one UTC month."""

    __tablename__ = "usage_month_user_hour_cells"
    __table_args__ = (
        PrimaryKeyConstraint("organization_id", "user_id", "month", "weekday", "hour"),
        CLUSTERED,
    )

    month: Mapped[date] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    weekday: Mapped[int] = mapped_column(SmallInteger, primary_key=True)  # 0 = Monday
    hour: Mapped[int] = mapped_column(SmallInteger, primary_key=True)  # 0-23


class UsageMonthDimensionUser(OrgKey, SlimMetrics, Base):
    """Rollup: one user's usage per value of one attribution dimension in one UTC month."""

    __tablename__ = "usage_month_dimension_users"
    __table_args__ = CLUSTERED

    dimension: Mapped[str] = mapped_column(String(20), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    month: Mapped[date] = mapped_column(primary_key=True)
    value: Mapped[str] = mapped_column(String(200), primary_key=True)
