from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base, utcnow, uuid7


class CreditPromotion(Base):
    """Promotional credits granted with an expiry. ``expired_nanousd`` is set once, by the expiry sweep."""

    __tablename__ = "credit_promotions"
    __table_args__ = (Index("ix_credit_promotions_expires", "expired_at", "expires_at"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    amount_nanousd: Mapped[int] = mapped_column(BigInteger)
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    expired_at: Mapped[datetime | None] = mapped_column(default=None)
    expired_nanousd: Mapped[int | None] = mapped_column(BigInteger, default=None)
    reason: Mapped[str] = mapped_column(String(500), default="")
    actor_label: Mapped[str] = mapped_column(String(320), default="system")
