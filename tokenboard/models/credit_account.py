from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base, utcnow


class CreditAccount(Base):
    """An org's running totals, kept in step with the ledger in the same transaction as each entry.

    ``balance_nanousd`` always equals the sum of the org's entries; ``reserved_nanousd`` the sum of its held
    reservations. The conditional UPDATE on this one row is what makes reservations atomic.
    """

    __tablename__ = "credit_accounts"
    __table_args__ = (CheckConstraint("reserved_nanousd >= 0", name="reserved_not_negative"),)

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    balance_nanousd: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_nanousd: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
