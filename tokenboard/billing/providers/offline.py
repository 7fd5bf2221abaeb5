"""The offline provider: nothing is charged online. Purchases and invoices stay pending (they grant
nothing) until an operator, or in a demo the organization's owner, records the payment; refunds are paid
back outside Tokenboard and recorded here.
"""

from __future__ import annotations

import uuid

from tokenboard.billing.providers.base import (
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    Checkout,
    CheckoutRequest,
    PaymentMethod,
    RefundRequest,
    RefundResult,
)


class OfflineProvider:
    name = "offline"

    async def start_checkout(self, request: CheckoutRequest) -> Checkout:
        return Checkout(
            provider_reference=f"offline-{request.purchase_id}",
            url=None,
            status=ChargeStatus.pending,
            instructions="Pay by bank transfer; the credits are added once the payment is recorded.",
        )

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        return ChargeResult(
            status=ChargeStatus.pending,
            event_id=None,
            provider_reference=f"offline-{request.idempotency_key}",
            message="Awaiting a manual payment.",
        )

    async def refund(self, request: RefundRequest) -> RefundResult:
        return RefundResult(refund_id=uuid.uuid4().hex, status=ChargeStatus.succeeded)

    def payment_method(
        self, brand: str | None, last4: str | None, exp_month: int | None, exp_year: int | None
    ) -> PaymentMethod:
        return PaymentMethod(
            brand=brand or "Manual payment (bank transfer or invoice)",
            last4=last4,
            exp_month=exp_month,
            exp_year=exp_year,
        )
