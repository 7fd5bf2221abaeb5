from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base, utcnow, uuid7


class Invoice(Base):
    """An invoice: ``draft`` until finalized, then numbered without gaps per issuer and ``open``, ``paid``,
    ``void`` or ``uncollectible``. Amounts are frozen at finalization, with the tax details of the moment.
    """

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("issuer", "number"),
        Index("ix_invoices_org_created", "organization_id", "created_at"),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    issuer: Mapped[str] = mapped_column(String(40))
    number: Mapped[str | None] = mapped_column(String(40), default=None)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    purpose: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    subtotal_nanousd: Mapped[int] = mapped_column(BigInteger, default=0)
    tax_rate_bps: Mapped[int] = mapped_column(default=0)
    tax_nanousd: Mapped[int] = mapped_column(BigInteger, default=0)
    total_nanousd: Mapped[int] = mapped_column(BigInteger, default=0)
    bill_to_name: Mapped[str] = mapped_column(String(200), default="")
    bill_to_email: Mapped[str] = mapped_column(String(320), default="")
    bill_to_address: Mapped[str] = mapped_column(String(500), default="")
    tax_country: Mapped[str] = mapped_column(String(2), default="")
    tax_id: Mapped[str] = mapped_column(String(64), default="")
    period_start: Mapped[datetime | None] = mapped_column(default=None)
    period_end: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finalized_at: Mapped[datetime | None] = mapped_column(default=None)
    due_at: Mapped[datetime | None] = mapped_column(default=None)
    paid_at: Mapped[datetime | None] = mapped_column(default=None)
    voided_at: Mapped[datetime | None] = mapped_column(default=None)
