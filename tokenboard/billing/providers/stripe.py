"""The Stripe provider, through the official SDK (``stripe.StripeClient``, async calls over httpx).

- Credit purchases go through **Checkout Sessions** (``mode=payment``): the metadata of the session and
  of its PaymentIntent carry the organization, the purchase and the invoice; ``client_reference_id`` is
  the purchase. The card is saved for later (``setup_future_usage=off_session``) on the organization's
  Stripe customer.
- Charges on the saved method (subscription periods, prorations, automatic top-ups) are **PaymentIntents**
  confirmed off-session, one per Tokenboard invoice, with the same metadata.
- Refunds are **Refunds** on the payment's PaymentIntent.

Every POST carries an idempotency key derived from what it is for (``checkout:<purchase>``,
``invoice:<id>``...), so a retry (the SDK's own, or ours after a crash) never pays twice. Nothing here
moves balances: outcomes are applied by :mod:`tokenboard.billing.webhooks` and
:func:`tokenboard.billing.payments.apply_payment`, idempotent on the PaymentIntent id.

The secret key is read from ``TOKENBOARD_STRIPE_SECRET_KEY`` (a ``SecretStr``) only when a client is built
and is never logged; errors are reported by their Stripe type and code, never with the request.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import stripe

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
from tokenboard.config import Settings

log = logging.getLogger("tokenboard.billing.stripe")

NANOUSD_PER_CENT = 10_000_000
CURRENCY = "usd"
NETWORK_RETRIES = 2
TIMEOUT_SECONDS = 30.0


class StripeNotConfigured(RuntimeError):
    pass


def to_cents(nanousd: int) -> int:
    """Nano-USD to the cents Stripe charges, rounded half to even (once)."""
    cents, rest = divmod(nanousd, NANOUSD_PER_CENT)
    half = NANOUSD_PER_CENT // 2
    if rest > half or (rest == half and cents % 2):
        cents += 1
    return cents


def from_cents(cents: int) -> int:
    return cents * NANOUSD_PER_CENT


def payment_metadata(
    organization_id: uuid.UUID, *, purchase_id: uuid.UUID | None, invoice_id: uuid.UUID | None
) -> dict[str, str]:
    """What every Stripe object we create carries, so its webhooks find their way back."""
    metadata = {"tokenboard_organization_id": str(organization_id)}
    if purchase_id is not None:
        metadata["tokenboard_purchase_id"] = str(purchase_id)
    if invoice_id is not None:
        metadata["tokenboard_invoice_id"] = str(invoice_id)
    return metadata


def describe_error(exc: stripe.StripeError) -> str:
    """A message safe to show and log: Stripe's type, code and message, never the request or the key."""
    error = exc.error
    code = (getattr(error, "decline_code", None) or getattr(error, "code", None)) if error else None
    message = exc.user_message or (getattr(error, "message", None) if error else None) or type(exc).__name__
    return f"{message} ({code})" if code else str(message)


class _HTTPXClient(stripe.HTTPXClient):
    """The SDK's httpx client, sending the form body as ``content=`` (the SDK passes bytes as ``data=``,
    which httpx deprecates and will refuse)."""

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Any, post_data: Any
    ) -> tuple[Any, dict[str, Any]]:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        data = kwargs.pop("data", None)
        if data:
            kwargs["content"] = data
        return args, kwargs


class StripeProvider:
    name = "stripe"

    def __init__(self, settings: Settings) -> None:
        if settings.stripe_secret_key is None or not settings.stripe_secret_key.get_secret_value():
            raise StripeNotConfigured(
                "TOKENBOARD_PAYMENT_PROVIDER=stripe needs TOKENBOARD_STRIPE_SECRET_KEY (and, for webhooks, "
                "TOKENBOARD_STRIPE_WEBHOOK_SECRET)."
            )
        self._secret_key = settings.stripe_secret_key
        self._api_base = settings.stripe_api_base.rstrip("/")

    @asynccontextmanager
    async def client(self) -> AsyncIterator[stripe.StripeClient]:
        """A client for one operation: its httpx pool belongs to the running loop and is closed after."""
        http_client = _HTTPXClient(timeout=TIMEOUT_SECONDS)
        try:
            yield stripe.StripeClient(
                self._secret_key.get_secret_value(),
                base_addresses={"api": self._api_base},
                http_client=http_client,
                max_network_retries=NETWORK_RETRIES,
            )
        finally:
            await http_client.close_async()  # type: ignore[no-untyped-call]

    # ------------------------------------------------------------------ the PaymentProvider protocol

    async def start_checkout(self, request: CheckoutRequest) -> Checkout:
        metadata = payment_metadata(request.organization_id, purchase_id=request.purchase_id, invoice_id=None)
        customer = request.customer_id  # reuse the org's Stripe customer once it has one
        params: dict[str, Any] = {
            "mode": "payment",
            "client_reference_id": str(request.purchase_id),
            "metadata": metadata,
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": CURRENCY,
                        "unit_amount": to_cents(request.amount_nanousd),
                        "product_data": {"name": request.description[:250]},
                    },
                }
            ],
            "payment_intent_data": {
                "metadata": metadata,
                "description": request.description[:500],
                "setup_future_usage": "off_session",
            },
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
        }
        if customer:
            params["customer"] = customer
        else:
            params["customer_creation"] = "always"
            if request.customer_email:
                params["customer_email"] = request.customer_email
        async with self.client() as client:
            session = await client.v1.checkout.sessions.create_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": f"checkout:{request.purchase_id}"},
            )
        return Checkout(
            provider_reference=session.id,
            url=session.url,
            status=ChargeStatus.pending,
            instructions="Pay on Stripe's checkout page; the credits are added once Stripe confirms it.",
        )

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        if not request.customer_id:
            return ChargeResult(
                status=ChargeStatus.failed,
                event_id=None,
                message="no saved payment method: buy credits once with a card to save one",
            )
        amount = to_cents(request.amount_nanousd)
        metadata = payment_metadata(
            request.organization_id, purchase_id=request.purchase_id, invoice_id=request.invoice_id
        )
        try:
            async with self.client() as client:
                methods = await client.v1.customers.payment_methods.list_async(
                    request.customer_id, {"limit": 1}
                )
                if not methods.data:
                    return ChargeResult(
                        status=ChargeStatus.failed, event_id=None, message="no saved payment method"
                    )
                intent = await client.v1.payment_intents.create_async(
                    {
                        "amount": amount,
                        "currency": CURRENCY,
                        "customer": request.customer_id,
                        "payment_method": methods.data[0].id,
                        "off_session": True,
                        "confirm": True,
                        "description": request.description[:500],
                        "metadata": metadata,
                    },
                    {"idempotency_key": f"charge:{request.idempotency_key}"},
                )
        except stripe.CardError as exc:
            log.info("stripe charge declined: %s", describe_error(exc))
            intent_id = getattr(getattr(exc.error, "payment_intent", None), "id", None)
            return ChargeResult(
                status=ChargeStatus.failed,
                event_id=None,
                provider_reference=intent_id,
                message=describe_error(exc),
            )
        if intent.status == "succeeded":
            # The payment's event id is its PaymentIntent: the webhook for it applies nothing more.
            return ChargeResult(
                status=ChargeStatus.succeeded, event_id=intent.id, provider_reference=intent.id
            )
        if intent.status in ("processing", "requires_action", "requires_confirmation"):
            return ChargeResult(
                status=ChargeStatus.pending,
                event_id=None,
                provider_reference=intent.id,
                message="Stripe is processing the payment.",
            )
        return ChargeResult(
            status=ChargeStatus.failed,
            event_id=None,
            provider_reference=intent.id,
            message=f"payment {intent.status.replace('_', ' ')}",
        )

    async def refund(self, request: RefundRequest) -> RefundResult:
        if not request.payment_reference:
            raise ValueError("a Stripe refund needs the payment's PaymentIntent")
        async with self.client() as client:
            refund = await client.v1.refunds.create_async(
                {
                    "payment_intent": request.payment_reference,
                    "amount": to_cents(request.amount_nanousd),
                    "metadata": {
                        "tokenboard_organization_id": str(request.organization_id),
                        "reason": request.reason[:500],
                    },
                },
                {"idempotency_key": request.idempotency_key},
            )
        status = {"succeeded": ChargeStatus.succeeded, "failed": ChargeStatus.failed}.get(
            refund.status or "", ChargeStatus.pending
        )
        return RefundResult(refund_id=refund.id, status=status)

    def payment_method(
        self, brand: str | None, last4: str | None, exp_month: int | None, exp_year: int | None
    ) -> PaymentMethod:
        if brand is None:
            return PaymentMethod(brand="No card saved yet", last4=None, exp_month=None, exp_year=None)
        return PaymentMethod(
            brand=CARD_BRANDS.get(brand, brand.title()), last4=last4, exp_month=exp_month, exp_year=exp_year
        )

    # ------------------------------------------------------------------ reads for the webhooks

    async def intent_is_ours(self, intent_id: str) -> bool:
        """Whether a PaymentIntent was created by Tokenboard (its metadata names an organization)."""
        async with self.client() as client:
            try:
                intent = await client.v1.payment_intents.retrieve_async(intent_id)
            except stripe.InvalidRequestError:
                return False
        return "tokenboard_organization_id" in (intent.metadata or {})

    async def saved_card(self, customer_id: str) -> tuple[str, str, int, int] | None:
        """The customer's most recent card: (brand, last4, exp_month, exp_year), or None."""
        async with self.client() as client:
            methods = await client.v1.customers.payment_methods.list_async(
                customer_id, {"type": "card", "limit": 1}
            )
        for method in methods.data:
            card = method.card
            if card is not None:
                return card.brand, card.last4, card.exp_month, card.exp_year
        return None


CARD_BRANDS = {
    "visa": "Visa",
    "mastercard": "Mastercard",
    "amex": "American Express",
    "discover": "Discover",
    "diners": "Diners Club",
    "jcb": "JCB",
    "unionpay": "UnionPay",
    "cartes_bancaires": "Cartes Bancaires",
    "eftpos_au": "eftpos",
    "interac": "Interac",
    "link": "Link",
}
