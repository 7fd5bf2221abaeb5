from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base, uuid7


class InvoiceLine(Base):
    """One line of an invoice: seats, a proration, a credit purchase or one model's usage."""

    __tablename__ = "invoice_lines"
    __table_args__ = (Index("ix_invoice_lines_org_invoice", "organization_id", "invoice_id"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    invoice_id: Mapped[uuid.UUID] = mapped_column()
    position: Mapped[int] = mapped_column(default=0)
    kind: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(String(1000))
    quantity: Mapped[int] = mapped_column(BigInteger, default=1)
    unit_amount_nanousd: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_nanousd: Mapped[int] = mapped_column(BigInteger)
    model_id: Mapped[str | None] = mapped_column(String(200), default=None)
