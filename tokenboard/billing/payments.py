"""Applying payments: the one function every provider's outcome goes through.

:func:`apply_payment` is idempotent on ``(provider, event_id)``: a webhook delivered twice, concurrently
or after an operator already recorded the payment changes nothing the second time. A credit purchase is
granted by a ledger entry whose external id is ``payment:<provider>:<event_id>``, once; a second, different
payment for an invoice already paid is kept as ``duplicate`` (to be refunded), never granted again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.audit.service import Actor, audit
from tokenboard.billing import repository
from tokenboard.billing.notify import email_billing_contacts
from tokenboard.billing.status import invalidate_after_commit
from tokenboard.config import Settings
from tokenboard.kit.db import utcnow
from tokenboard.kit.errors import BadRequest, NotFound
from tokenboard.kit.money import format_usd
from tokenboard.ledger.service import EntryKind, ledger
from tokenboard.models import BillingPayment, Subscription, SubscriptionChange


@dataclass(frozen=True, slots=True)
class AppliedPayment:
    payment: BillingPayment
    applied: bool  # False: this event was seen before (or paid an invoice already paid)


def ledger_external_id(provider: str, event_id: str) -> str:
    return f"payment:{provider}:{event_id}"


async def apply_payment(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    provider: str,
    event_id: str,
    invoice_id: uuid.UUID,
    amount_nanousd: int | None = None,
    provider_reference: str | None = None,
    actor: Actor,
    now: datetime | None = None,
) -> AppliedPayment:
    """Record that ``invoice_id`` was paid, at most once per ``(provider, event_id)``.

    A credit purchase's invoice grants its credits; a subscription invoice ends a grace period or a
    suspension once no other subscription invoice is overdue. ``amount_nanousd`` (default: the invoice
    total) must equal the invoice total: partial payments are refused.
    """
    now = now or utcnow()
    if not event_id or len(event_id) > 200:
        raise BadRequest("A payment needs an event id of at most 200 characters.")
    if (seen := await repository.find_payment(session, org_id, provider, event_id)) is not None:
        return AppliedPayment(seen, applied=False)
    invoice = await repository.get_invoice(session, org_id, invoice_id)
    if invoice is None:
        raise NotFound("No such invoice.")
    amount = invoice.total_nanousd if amount_nanousd is None else amount_nanousd
    if amount != invoice.total_nanousd:
        raise BadRequest(
            f"The payment ({format_usd(amount)}) must equal the invoice total "
            f"({format_usd(invoice.total_nanousd)}); partial payments are not supported."
        )
    purchase = None
    if invoice.purpose == "credits":
        purchase = await repository.purchase_for_invoice(session, org_id, invoice.id)
    payment = BillingPayment(
        organization_id=org_id,
        provider=provider,
        event_id=event_id,
        provider_reference=provider_reference,
        status="succeeded",
        purpose=invoice.purpose,
        amount_nanousd=amount,
        purchase_id=purchase.id if purchase else None,
        invoice_id=invoice.id,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        memo=f"Invoice {invoice.number}",
        actor_label=actor.label,
        created_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(payment)
            await session.flush()
    except IntegrityError:
        # The same event is being applied concurrently and committed first: it applies once.
        seen = await repository.find_payment(session, org_id, provider, event_id)
        if seen is None:
            raise
        return AppliedPayment(seen, applied=False)
    if not await repository.set_invoice_status(
        session, org_id, invoice.id, from_=("open", "uncollectible"), to="paid", at=now
    ):
        payment.status = "duplicate"  # money received for an invoice already paid: refund it, never grant
        await session.flush()
        return AppliedPayment(payment, applied=False)
    if purchase is not None and await repository.mark_purchase_paid(session, org_id, purchase.id, now):
        await ledger.post(
            session,
            org_id,
            kind=EntryKind.purchase,
            amount_nanousd=purchase.amount_nanousd,
            external_id=ledger_external_id(provider, event_id),
            memo=f"Credit purchase, invoice {invoice.number}",
            actor_label=actor.label,
        )
    if invoice.purpose == "subscription":
        await _settle_dunning(session, org_id, actor, now)
    audit.record(
        session,
        organization_id=org_id,
        actor=actor,
        action="billing.payment_applied",
        target_type="invoice",
        target_id=invoice.id,
        target_label=invoice.number,
        after={"provider": provider, "event_id": event_id, "amount_nanousd": amount},
    )
    await session.flush()
    return AppliedPayment(payment, applied=True)


async def _settle_dunning(session: AsyncSession, org_id: uuid.UUID, actor: Actor, now: datetime) -> None:
    sub = await repository.get_subscription(session, org_id, lock=True)
    if sub is None or sub.status not in ("past_due", "suspended"):
        return
    overdue = [
        i
        for i in await repository.list_invoices(session, org_id, 1000)
        if i.status == "open" and i.purpose == "subscription" and i.due_at is not None and i.due_at <= now
    ]
    if overdue:
        return
    before = sub.status
    sub.status, sub.grace_until, sub.past_due_since, sub.updated_at = "active", None, None, now
    _change(
        session,
        sub,
        "reactivated",
        f"Payment received: the subscription is active again (was {before}).",
        actor,
        now,
    )
    invalidate_after_commit(session, org_id)


def _change(
    session: AsyncSession,
    sub: Subscription,
    kind: str,
    description: str,
    actor: Actor,
    now: datetime,
    *,
    amount: int = 0,
) -> None:
    session.add(
        SubscriptionChange(
            organization_id=sub.organization_id,
            kind=kind,
            seats_before=sub.seats,
            seats_after=sub.seats,
            description=description,
            amount_nanousd=amount,
            effective_at=now,
            actor_label=actor.label,
            created_at=now,
        )
    )


async def record_payment_failure(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    invoice_id: uuid.UUID,
    reason: str,
    settings: Settings,
    actor: Actor,
    now: datetime | None = None,
) -> Subscription | None:
    """A charge for a subscription invoice failed: open the grace period (once), tell the billing contacts."""
    now = now or utcnow()
    invoice = await repository.get_invoice(session, org_id, invoice_id)
    if invoice is None:
        raise NotFound("No such invoice.")
    sub = await repository.get_subscription(session, org_id, lock=True)
    if invoice.status != "open" or sub is None or sub.status not in ("active", "past_due"):
        return sub
    if sub.status == "active":
        sub.status = "past_due"
        sub.past_due_since = now
        sub.grace_until = now + timedelta(days=settings.billing_grace_days)
        sub.updated_at = now
        _change(
            session,
            sub,
            "payment_failed",
            f"Payment of invoice {invoice.number} failed ({reason}); gateway access continues until "
            f"{sub.grace_until:%Y-%m-%d %H:%M} UTC.",
            actor,
            now,
            amount=invoice.total_nanousd,
        )
        audit.record(
            session,
            organization_id=org_id,
            actor=actor,
            action="billing.payment_failed",
            target_type="invoice",
            target_id=invoice.id,
            target_label=invoice.number,
            after={"reason": reason[:300], "grace_until": sub.grace_until.isoformat()},
        )
        await email_billing_contacts(
            session,
            org_id,
            settings,
            subject=f"Payment failed for invoice {invoice.number}",
            body=(
                f"We could not collect {format_usd(invoice.total_nanousd)} for invoice {invoice.number} "
                f"({reason}). Gateway access continues until {sub.grace_until:%Y-%m-%d %H:%M} UTC; pay the "
                "invoice before then to avoid suspension:\n"
                f"{settings.base_url}/organizations/{org_id}/billing"
            ),
        )
        invalidate_after_commit(session, org_id)
    await session.flush()
    return sub
