"""What billing needs from a payment provider. Stripe and the offline provider implement it.

A provider never changes balances or statuses itself: it starts payments and reports their outcome.
Money moves only through :func:`tokenboard.billing.payments.apply_payment` (idempotent on the provider's
event id), whether the outcome comes back at once (a synchronous charge) or later (a webhook, an operator).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class ChargeStatus(StrEnum):
    succeeded = "succeeded"  # paid now: apply it with the returned event id
    pending = "pending"  # paid later (asynchronous method, bank transfer, an operator): grants nothing yet
    failed = "failed"  # declined: opens the grace period


@dataclass(frozen=True, slots=True)
class CheckoutRequest:
    organization_id: uuid.UUID
    purchase_id: uuid.UUID
    amount_nanousd: int
    description: str
    customer_email: str
    success_url: str
    cancel_url: str
    customer_id: str | None = None  # the provider's customer for this org, once it has one


@dataclass(frozen=True, slots=True)
class Checkout:
    """Where the buyer pays: a URL to send them to (Stripe Checkout), or nothing to do online (offline)."""

    provider_reference: str | None
    url: str | None
    status: ChargeStatus
    instructions: str = ""


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    """A charge on the organization's saved payment method: a subscription period, a proration, a top-up."""

    organization_id: uuid.UUID
    amount_nanousd: int
    description: str
    idempotency_key: str  # the same key never charges twice (e.g. "invoice:<id>")
    invoice_id: uuid.UUID | None = None
    purchase_id: uuid.UUID | None = None
    customer_id: str | None = None


@dataclass(frozen=True, slots=True)
class ChargeResult:
    status: ChargeStatus
    event_id: str | None  # the id to pass to apply_payment when ``status`` is succeeded
    provider_reference: str | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class RefundRequest:
    organization_id: uuid.UUID
    payment_reference: str | None
    amount_nanousd: int
    reason: str
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class RefundResult:
    refund_id: str  # becomes the ledger's external id: refund:<provider>:<refund_id>
    status: ChargeStatus


@dataclass(frozen=True, slots=True)
class PaymentMethod:
    brand: str
    last4: str | None
    exp_month: int | None
    exp_year: int | None

    @property
    def label(self) -> str:
        if self.last4 is None:
            return self.brand
        expiry = f", expires {self.exp_month:02d}/{self.exp_year}" if self.exp_month and self.exp_year else ""
        return f"{self.brand} ending in {self.last4}{expiry}"


class PaymentProvider(Protocol):
    """The interface a payment provider implements. ``name`` goes into every payment and ledger id."""

    name: str

    async def start_checkout(self, request: CheckoutRequest) -> Checkout:
        """Begin paying for a credit purchase. Nothing is granted until the payment is applied."""
        ...

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        """Charge the saved payment method (a period, a proration, an automatic top-up)."""
        ...

    async def refund(self, request: RefundRequest) -> RefundResult:
        """Return money for a payment; the caller claws back exactly the refunded credits."""
        ...

    def payment_method(
        self, brand: str | None, last4: str | None, exp_month: int | None, exp_year: int | None
    ) -> PaymentMethod:
        """The primary payment method to show, from what the billing profile holds."""
        ...
