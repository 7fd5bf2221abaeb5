from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base, utcnow, uuid7


class SubscriptionChange(Base):
    """One change to a subscription (seats, cycle, renewal, cancellation, status): the seat history."""

    __tablename__ = "subscription_changes"
    __table_args__ = (Index("ix_subscription_changes_org_created", "organization_id", "created_at"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    kind: Mapped[str] = mapped_column(String(40))
    seats_before: Mapped[int | None] = mapped_column(default=None)
    seats_after: Mapped[int | None] = mapped_column(default=None)
    description: Mapped[str] = mapped_column(String(1000), default="")
    amount_nanousd: Mapped[int] = mapped_column(BigInteger, default=0)
    effective_at: Mapped[datetime] = mapped_column(default=utcnow)
    invoice_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    actor_label: Mapped[str] = mapped_column(String(320), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
