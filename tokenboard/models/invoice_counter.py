from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base


class InvoiceCounter(Base):
    """The last invoice number used by an issuer in a year. Installation-wide, not per organization.

    Finalization increments it with one UPDATE in the invoice's own transaction: concurrent finalizations
    wait on the row, and a rolled-back one gives its number back, so numbers have no gaps.
    """

    __tablename__ = "invoice_counters"

    issuer: Mapped[str] = mapped_column(String(40), primary_key=True)
    year: Mapped[int] = mapped_column(primary_key=True)
    last_number: Mapped[int] = mapped_column(default=0)
