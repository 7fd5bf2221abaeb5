from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base, utcnow


class BillingProfile(Base):
    """An organization's billing details: who is invoiced, its tax, balance alerts and payment method.

    ``low_balance_notified`` is set when the low-balance email went out and cleared once the balance is
    back at or above the threshold, so the email is sent once per crossing.
    """

    __tablename__ = "billing_profiles"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    legal_name: Mapped[str] = mapped_column(String(200), default="")
    billing_email: Mapped[str] = mapped_column(String(320), default="")
    address: Mapped[str] = mapped_column(String(500), default="")
    country: Mapped[str] = mapped_column(String(2), default="")
    tax_id: Mapped[str] = mapped_column(String(64), default="")
    tax_rate_bps: Mapped[int] = mapped_column(default=0)
    low_balance_threshold_nanousd: Mapped[int | None] = mapped_column(BigInteger, default=None)
    low_balance_notified: Mapped[bool] = mapped_column(default=False)
    auto_topup_below_nanousd: Mapped[int | None] = mapped_column(BigInteger, default=None)
    auto_topup_amount_nanousd: Mapped[int | None] = mapped_column(BigInteger, default=None)
    provider_customer_id: Mapped[str | None] = mapped_column(String(200), default=None)
    payment_method_provider: Mapped[str | None] = mapped_column(String(40), default=None)
    payment_method_brand: Mapped[str | None] = mapped_column(String(40), default=None)
    payment_method_last4: Mapped[str | None] = mapped_column(String(4), default=None)
    payment_method_exp_month: Mapped[int | None] = mapped_column(default=None)
    payment_method_exp_year: Mapped[int | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
