from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base, utcnow, uuid7


class CreditPurchase(Base):
    """A purchase of credits. ``pending`` grants nothing; the payment that makes it ``paid`` grants it once.

    ``provider`` and ``provider_reference`` (a checkout session, an offline note) say where it is paid.
    """

    __tablename__ = "credit_purchases"
    __table_args__ = (Index("ix_credit_purchases_org_created", "organization_id", "created_at"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    amount_nanousd: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    origin: Mapped[str] = mapped_column(String(20), default="manual")
    provider: Mapped[str] = mapped_column(String(40))
    provider_reference: Mapped[str | None] = mapped_column(String(200), default=None)
    checkout_url: Mapped[str | None] = mapped_column(String(2000), default=None)
    refunded_nanousd: Mapped[int] = mapped_column(BigInteger, default=0)
    invoice_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    created_by_label: Mapped[str] = mapped_column(String(320), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(default=None)
