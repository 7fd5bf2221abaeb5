"""Stripe webhooks: ``POST /api/v1/billing/stripe/webhook``.

The endpoint has no session and no CSRF token: it authenticates by the ``Stripe-Signature`` header,
verified with the official SDK (``stripe.WebhookSignature.verify_header``) on the raw body, with
``TOKENBOARD_STRIPE_WEBHOOK_TOLERANCE_SECONDS``. A bad or missing signature, or a stale timestamp, is a
400 and nothing is read from the body.

Each event's effect is applied at most once, keyed on what it is about rather than on the delivery, so
replays, concurrent duplicates and different events about the same payment all converge:

- a payment (Checkout ``completed`` with ``payment_status=paid``, ``async_payment_succeeded``,
  ``payment_intent.succeeded``) goes through ``apply_payment`` with the PaymentIntent id as its event id
  (the ``billing_payments`` row is unique on it): whichever event comes first grants, the others find it;
- ``charge.refunded`` claws back the difference between the cumulative ``amount_refunded`` and what was
  already refunded, as a ledger entry whose external id names that cumulative amount
  (``refund:stripe:<charge>:<amount_refunded>``): a replay posts nothing, an older partial refund
  arriving after a larger one finds nothing left to claw back;
- a dispute claws back once (``dispute:stripe:<dispute>``) and, when won, restores once
  (``dispute-won:stripe:<dispute>``); a ``closed`` event arriving before ``created`` posts both.

An event about a payment Tokenboard has not applied yet (a refund delivered before the purchase's
completion) is answered 409 so that Stripe delivers it again later, by which time the payment is known.
Events for objects that are not Tokenboard's (no ``tokenboard_*`` metadata) and event types not listed
here are acknowledged with 200 and change nothing. The Stripe event id is in the audit log of every change.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import stripe
from fastapi import Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.audit.service import Actor, audit
from tokenboard.billing import repository
from tokenboard.billing.credits import credits
from tokenboard.billing.payments import apply_payment, record_payment_failure
from tokenboard.billing.providers import provider_for
from tokenboard.billing.providers.stripe import StripeProvider, to_cents
from tokenboard.config import PaymentProviderKind, Settings
from tokenboard.kit.context import ClientInfo
from tokenboard.kit.db import utcnow
from tokenboard.kit.deps import DB, AppSettings
from tokenboard.kit.errors import BadRequest, Conflict, NotFound
from tokenboard.kit.routing import make_router
from tokenboard.ledger.service import EntryKind, ledger
from tokenboard.models import BillingPayment, BillingProfile, CreditPurchase

log = logging.getLogger("tokenboard.billing.stripe")

WEBHOOK_PATH = "/api/v1/billing/stripe/webhook"
PROVIDER = "stripe"

router = make_router(prefix="/api/v1/billing/stripe", tags=["billing (Stripe webhooks)"])

EVENTS = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "invoice.paid",
    "invoice.payment_failed",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
)


class NotYetKnown(Conflict):
    """The payment an event refers to is not applied yet: Stripe retries non-2xx deliveries later."""


@router.post("/webhook", summary="Stripe webhook (authenticated by the Stripe-Signature header)")
async def stripe_webhook(request: Request, db: DB, settings: AppSettings) -> dict[str, object]:
    payload = await request.body()
    event = verify_event(payload, request.headers.get("stripe-signature"), settings)
    actor = Actor(user_id=None, label="Stripe", client=ClientInfo.from_request(request))
    outcome = await handle_event(db, event, settings=settings, actor=actor)
    log.info("stripe event %s (%s): %s", event["id"], event["type"], outcome)
    return {"received": True, "id": event["id"], "type": event["type"], "outcome": outcome}


def verify_event(payload: bytes, header: str | None, settings: Settings) -> dict[str, Any]:
    """The event, once its signature matched the raw body within the tolerance; else 400."""
    secret = settings.stripe_webhook_secret
    if settings.payment_provider != PaymentProviderKind.stripe or secret is None:
        raise NotFound("Stripe webhooks are not enabled on this installation.")
    if not header:
        raise BadRequest("Missing Stripe-Signature header.")
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(
            text, header, secret.get_secret_value(), settings.stripe_webhook_tolerance_seconds
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        # The SDK's message is not echoed: it may quote the header and the payload.
        raise BadRequest(
            "The Stripe-Signature header does not match the body, or its timestamp is outside the tolerance."
        ) from None
    try:
        event = json.loads(text)
    except ValueError:
        raise BadRequest("The event is not JSON.") from None
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("id"), str)
        or not isinstance(event.get("type"), str)
        or not isinstance(event.get("data"), dict)
        or not isinstance(event["data"].get("object"), dict)
    ):
        raise BadRequest("The event has no id, type or data.object.")
    return event


async def handle_event(
    session: AsyncSession, event: dict[str, Any], *, settings: Settings, actor: Actor
) -> str:
    """Apply one verified event (at most once, see the module doc); returns what happened, for the log."""
    kind: str = event["type"]
    obj: dict[str, Any] = event["data"]["object"]
    ctx = _Context(session, settings, actor, event["id"])
    if kind.startswith("checkout.session."):
        return await ctx.checkout_session(kind, obj)
    if kind in ("payment_intent.succeeded", "payment_intent.payment_failed"):
        return await ctx.payment_intent(kind, obj)
    if kind in ("invoice.paid", "invoice.payment_failed"):
        return await ctx.stripe_invoice(kind, obj)
    if kind == "charge.refunded":
        return await ctx.charge_refunded(obj)
    if kind in ("charge.dispute.created", "charge.dispute.closed"):
        return await ctx.dispute(kind, obj)
    return "ignored"


def _uuid(value: object) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _cents(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadRequest("The event carries an amount that is not a whole number of cents.")
    return value


@dataclass
class _Context:
    session: AsyncSession
    settings: Settings
    actor: Actor
    event_id: str

    # ------------------------------------------------------------------ payments

    async def checkout_session(self, kind: str, obj: dict[str, Any]) -> str:
        if kind not in (
            "checkout.session.completed",
            "checkout.session.async_payment_succeeded",
            "checkout.session.async_payment_failed",
        ):
            return "ignored"
        metadata = _metadata(obj)
        org_id = _uuid(metadata.get("tokenboard_organization_id"))
        purchase_id = _uuid(metadata.get("tokenboard_purchase_id") or obj.get("client_reference_id"))
        if org_id is None or purchase_id is None:
            return "ignored: not a Tokenboard checkout"
        purchase = await repository.get_purchase(self.session, org_id, purchase_id)
        if purchase is None or purchase.invoice_id is None:
            return "ignored: unknown purchase"
        if purchase.provider != PROVIDER or purchase.provider_reference != obj.get("id"):
            log.warning("stripe checkout %s does not match purchase %s", obj.get("id"), purchase.id)
            return "ignored: the session is not this purchase's"
        intent = obj.get("payment_intent")
        intent_id = intent.get("id") if isinstance(intent, dict) else intent
        if kind == "checkout.session.async_payment_failed":
            return await self._purchase_failed(purchase)
        if obj.get("payment_status") != "paid":
            # A delayed method (bank debit, transfer): nothing is granted until async_payment_succeeded.
            await self._remember_customer(org_id, obj.get("customer"))
            return "awaiting payment"
        outcome = await self._apply(
            org_id,
            purchase.invoice_id,
            event_id=intent_id if isinstance(intent_id, str) else str(obj["id"]),
            reference=intent_id if isinstance(intent_id, str) else None,
            cents=_cents(obj.get("amount_total")),
        )
        if outcome == "applied":
            await self._remember_customer(org_id, obj.get("customer"))
        return outcome

    async def payment_intent(self, kind: str, obj: dict[str, Any]) -> str:
        target = await self._target(_metadata(obj))
        if target is None:
            return "ignored: not a Tokenboard payment"
        org_id, invoice_id, purchase = target
        if kind == "payment_intent.succeeded":
            return await self._apply(
                org_id,
                invoice_id,
                event_id=str(obj["id"]),
                reference=str(obj["id"]),
                cents=_cents(obj.get("amount_received", obj.get("amount"))),
            )
        error = obj.get("last_payment_error")
        reason = (
            (error.get("decline_code") or error.get("code") or "declined")
            if isinstance(error, dict)
            else "declined"
        )
        if purchase is not None:
            # A Checkout buyer may try another card on the same page: only off-session top-ups end here.
            return await self._purchase_failed(purchase) if purchase.origin == "auto_topup" else "ignored"
        return await self._failed(org_id, invoice_id, str(reason))

    async def stripe_invoice(self, kind: str, obj: dict[str, Any]) -> str:
        """A Stripe invoice sent for a Tokenboard invoice (e.g. from the Dashboard, paid by transfer)."""
        target = await self._target(_metadata(obj))
        if target is None:
            return "ignored: not a Tokenboard invoice"
        org_id, invoice_id, _ = target
        if kind == "invoice.paid":
            return await self._apply(
                org_id,
                invoice_id,
                event_id=str(obj["id"]),
                reference=str(obj["id"]),
                cents=_cents(obj.get("amount_paid")),
            )
        return await self._failed(org_id, invoice_id, "Stripe could not collect the invoice")

    async def _target(
        self, metadata: dict[str, Any]
    ) -> tuple[uuid.UUID, uuid.UUID, CreditPurchase | None] | None:
        org_id = _uuid(metadata.get("tokenboard_organization_id"))
        if org_id is None:
            return None
        purchase = None
        if (purchase_id := _uuid(metadata.get("tokenboard_purchase_id"))) is not None:
            purchase = await repository.get_purchase(self.session, org_id, purchase_id)
        invoice_id = _uuid(metadata.get("tokenboard_invoice_id")) or (
            purchase.invoice_id if purchase else None
        )
        if invoice_id is None or await repository.get_invoice(self.session, org_id, invoice_id) is None:
            return None
        return org_id, invoice_id, purchase

    async def _apply(
        self, org_id: uuid.UUID, invoice_id: uuid.UUID, *, event_id: str, reference: str | None, cents: int
    ) -> str:
        invoice = await repository.get_invoice(self.session, org_id, invoice_id)
        if invoice is None:
            return "ignored: unknown invoice"
        if cents != to_cents(invoice.total_nanousd):
            log.error("stripe event %s paid %d cents for invoice %s", self.event_id, cents, invoice.number)
            raise Conflict("The amount paid on Stripe does not match the invoice total.")
        result = await apply_payment(
            self.session,
            org_id,
            provider=PROVIDER,
            event_id=event_id,
            invoice_id=invoice_id,
            provider_reference=reference,
            actor=self.actor,
        )
        if not result.applied:
            return "already applied" if result.payment.status == "succeeded" else "duplicate payment kept"
        self._audit(org_id, "billing.stripe_event", "invoice", invoice_id, {"payment": event_id})
        await credits.watch_balance(self.session, org_id, self.settings, actor=self.actor)
        return "applied"

    async def _failed(self, org_id: uuid.UUID, invoice_id: uuid.UUID, reason: str) -> str:
        invoice = await repository.get_invoice(self.session, org_id, invoice_id)
        if invoice is None or invoice.purpose != "subscription":
            return "ignored"
        await record_payment_failure(
            self.session,
            org_id,
            invoice_id=invoice_id,
            reason=reason[:200],
            settings=self.settings,
            actor=self.actor,
        )
        return "payment failure recorded"

    async def _purchase_failed(self, purchase: CreditPurchase) -> str:
        """pending -> failed, once; its invoice is voided. A paid purchase is never touched."""
        now = utcnow()
        if purchase.status != "pending":
            return f"ignored: purchase is {purchase.status}"
        purchase.status = "failed"
        if purchase.invoice_id is not None:
            await repository.set_invoice_status(
                self.session,
                purchase.organization_id,
                purchase.invoice_id,
                from_=("open",),
                to="void",
                at=now,
            )
        self._audit(purchase.organization_id, "billing.purchase_failed", "credit_purchase", purchase.id, {})
        await self.session.flush()
        return "purchase failed"

    async def _remember_customer(self, org_id: uuid.UUID, customer: object) -> None:
        """The organization's Stripe customer and its saved card, for later charges and the billing page."""
        if not isinstance(customer, str) or not customer:
            return
        profile = await repository.get_profile(self.session, org_id)
        if profile is None:
            try:
                async with self.session.begin_nested():
                    profile = BillingProfile(organization_id=org_id)
                    self.session.add(profile)
                    await self.session.flush()
            except IntegrityError:
                profile = await repository.get_profile(self.session, org_id)
                if profile is None:
                    raise
        if profile.provider_customer_id is None:
            profile.provider_customer_id = customer
        provider = provider_for(self.settings)
        if isinstance(provider, StripeProvider) and profile.provider_customer_id == customer:
            try:
                card = await provider.saved_card(customer)
            except stripe.StripeError as exc:
                log.warning("could not read the card of Stripe customer %s: %s", customer, type(exc).__name__)
                card = None
            if card is not None:
                brand, last4, exp_month, exp_year = card
                profile.payment_method_provider = PROVIDER
                profile.payment_method_brand = brand[:40]
                profile.payment_method_last4 = last4[:4]
                profile.payment_method_exp_month = exp_month
                profile.payment_method_exp_year = exp_year
        profile.updated_at = utcnow()
        await self.session.flush()

    # ------------------------------------------------------------------ refunds and disputes

    async def _payment_for_intent(self, intent_id: object) -> BillingPayment:
        """The applied payment behind a charge; 409 (Stripe retries) if ours but not applied yet."""
        if not isinstance(intent_id, str) or not intent_id:
            raise _Ignore("no payment intent")
        stmt = select(BillingPayment).where(
            BillingPayment.provider == PROVIDER,
            BillingPayment.provider_reference == intent_id,
            BillingPayment.status == "succeeded",
        )
        payment = (await self.session.execute(stmt.limit(1))).scalar_one_or_none()
        if payment is not None:
            return payment
        provider = provider_for(self.settings)
        if isinstance(provider, StripeProvider) and await provider.intent_is_ours(intent_id):
            raise NotYetKnown(
                "The payment this event refers to has not been applied yet; deliver it again later."
            )
        raise _Ignore("not a Tokenboard payment")

    async def charge_refunded(self, obj: dict[str, Any]) -> str:
        try:
            payment = await self._payment_for_intent(obj.get("payment_intent"))
        except _Ignore as why:
            return f"ignored: {why}"
        if payment.purchase_id is None:
            return "ignored: not a credit purchase"
        org_id = payment.organization_id
        purchase = await repository.get_purchase(self.session, org_id, payment.purchase_id)
        if purchase is None:
            return "ignored: unknown purchase"
        charged, refunded = _cents(obj.get("amount")), _cents(obj.get("amount_refunded"))
        target = _credits_share(purchase.amount_nanousd, refunded, charged)
        new = target - purchase.refunded_nanousd
        if new <= 0:
            return "nothing new refunded"
        clawed = await credits.refund(
            self.session,
            org_id,
            purchase.id,
            amount_nanousd=new,
            reason=f"Refunded on Stripe (charge {obj.get('id')}, event {self.event_id})",
            settings=self.settings,
            actor=self.actor,
            refund_event_id=f"{obj.get('id')}:{refunded}",
        )
        return f"clawed back {clawed}" if clawed else "already clawed back"

    async def dispute(self, kind: str, obj: dict[str, Any]) -> str:
        status = str(obj.get("status", ""))
        if status.startswith("warning_"):
            return "ignored: an inquiry moves no money"
        try:
            payment = await self._payment_for_intent(obj.get("payment_intent"))
        except _Ignore as why:
            return f"ignored: {why}"
        if payment.purchase_id is None:
            return "ignored: not a credit purchase"
        org_id = payment.organization_id
        purchase = await repository.get_purchase(self.session, org_id, payment.purchase_id)
        if purchase is None:
            return "ignored: unknown purchase"
        dispute_id = str(obj["id"])
        amount = _credits_share(
            purchase.amount_nanousd, _cents(obj.get("amount")), to_cents(payment.amount_nanousd)
        )
        if amount <= 0:
            return "ignored: nothing disputed"
        # The claw-back exists whatever the order of delivery: a closed event may come before created.
        taken = await ledger.post(
            self.session,
            org_id,
            kind=EntryKind.refund,
            amount_nanousd=-amount,
            external_id=f"dispute:{PROVIDER}:{dispute_id}",
            memo=f"Payment disputed on Stripe ({obj.get('reason') or 'no reason given'})",
            actor_label=self.actor.label,
        )
        outcome = "clawed back" if taken.applied else "already clawed back"
        if kind == "charge.dispute.closed" and status == "won":
            restored = await ledger.post(
                self.session,
                org_id,
                kind=EntryKind.adjustment,
                amount_nanousd=amount,
                external_id=f"dispute-won:{PROVIDER}:{dispute_id}",
                memo="Dispute won on Stripe: credits restored",
                actor_label=self.actor.label,
            )
            outcome += ", restored" if restored.applied else ", already restored"
        if taken.applied or "restored" in outcome:
            self._audit(
                org_id,
                "billing.dispute",
                "credit_purchase",
                purchase.id,
                {"dispute": dispute_id, "status": status, "amount_nanousd": amount},
            )
        await self.session.flush()
        await credits.watch_balance(self.session, org_id, self.settings, actor=self.actor)
        return outcome

    def _audit(
        self, org_id: uuid.UUID, action: str, target_type: str, target_id: uuid.UUID, after: dict[str, object]
    ) -> None:
        audit.record(
            self.session,
            organization_id=org_id,
            actor=self.actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            after={"stripe_event": self.event_id, **after},
        )


class _Ignore(Exception):
    pass


def _credits_share(purchase_nanousd: int, cents: int, charged_cents: int) -> int:
    """The credits behind ``cents`` of a charge of ``charged_cents`` (tax included): all of them at 100%."""
    if charged_cents <= 0 or cents >= charged_cents:
        return purchase_nanousd if cents >= charged_cents > 0 else 0
    return purchase_nanousd * cents // charged_cents
