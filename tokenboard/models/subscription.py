from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base, utcnow


class Subscription(Base):
    """An organization's plan, seats and billing cycle.

    ``seats`` are the seats billed in the current period; ``pending_seats`` and ``pending_frequency`` take
    effect at ``current_period_end``. ``status``: active, past_due (a payment failed; gateway access goes
    on until ``grace_until``), suspended (gateway refused) or canceled.
    """

    __tablename__ = "subscriptions"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    plan: Mapped[str] = mapped_column(String(40))
    frequency: Mapped[str] = mapped_column(String(10), default="monthly")
    seats: Mapped[int]
    pending_seats: Mapped[int | None] = mapped_column(default=None)
    pending_frequency: Mapped[str | None] = mapped_column(String(10), default=None)
    status: Mapped[str] = mapped_column(String(12), default="active")
    auto_renew: Mapped[bool] = mapped_column(default=True)
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False)
    canceled_at: Mapped[datetime | None] = mapped_column(default=None)
    anchor_day: Mapped[int]
    current_period_start: Mapped[datetime]
    current_period_end: Mapped[datetime]
    past_due_since: Mapped[datetime | None] = mapped_column(default=None)
    grace_until: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
