from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base, IdMixin, TimestampMixin


class Organization(IdMixin, TimestampMixin, Base):
    """The tenant. ``lock_version`` is bumped to serialise changes that must see every membership."""

    __tablename__ = "organizations"

    name: Mapped[str] = mapped_column(String(200))
    seat_limit: Mapped[int] = mapped_column(default=10)
    plan: Mapped[str] = mapped_column(String(40), default="teams")
    opt_out_training_providers: Mapped[bool] = mapped_column(default=True)
    usage_analytics_enabled: Mapped[bool] = mapped_column(default=True)
    lock_version: Mapped[int] = mapped_column(default=0)
    # A catalog model id. No foreign key: the catalog is installation-wide and the model access service
    # checks the id; keeping the column plain lets it be added without rebuilding the table on SQLite.
    default_model_id: Mapped[str | None] = mapped_column(String(200), default=None)
    # The usage included each calendar month (UTC), in nano-USD: the usage page's quota view compares the
    # month's spend with it. ``None``: no quota set.
    monthly_usage_quota_nanousd: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # The tokens included each calendar month (UTC), input + output as the usage page counts them (cached
    # reads and cache writes in the input, reasoning in the output). Beside the USD quota, not instead of
    # it: either, both or neither may be set. ``None``: no token quota.
    monthly_usage_quota_tokens: Mapped[int | None] = mapped_column(BigInteger, default=None)
