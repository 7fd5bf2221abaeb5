"""Credits: purchases through the payment provider, refunds, adjustments, promotions and balance alerts.

Promotions and spend (FIFO): usage spends promotional credits before paid ones, the earliest granted
promotion first, and a promotion absorbs only spend made while it was valid (from its grant until its
expiry). When a promotion expires, its unspent part is taken back by one ``expiry`` ledger entry (never
more than the balance left, so an expiry cannot push the balance below zero). Refunds, adjustments and
earlier expiries are not spend.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.audit.service import Actor, audit
from tokenboard.billing import repository
from tokenboard.billing.invoices import LineSpec, invoices
from tokenboard.billing.notify import email_billing_contacts
from tokenboard.billing.payments import apply_payment
from tokenboard.billing.providers import provider_for
from tokenboard.billing.providers.base import ChargeRequest, ChargeStatus, CheckoutRequest, RefundRequest
from tokenboard.config import Settings
from tokenboard.kit.context import SYSTEM_CLIENT
from tokenboard.kit.db import utcnow
from tokenboard.kit.errors import BadRequest, Conflict, NotFound
from tokenboard.kit.money import format_usd, to_nanousd
from tokenboard.ledger.service import EntryKind, ledger
from tokenboard.models import CreditPromotion, CreditPurchase, Organization

MAX_ADJUSTMENT_NANOUSD = 10**15  # one million USD: anything larger is a typing error


@dataclass(frozen=True, slots=True)
class StartedPurchase:
    purchase: CreditPurchase
    checkout_url: str | None
    instructions: str


def purchase_limits(settings: Settings) -> tuple[int, int]:
    return to_nanousd(settings.credit_purchase_min_usd), to_nanousd(settings.credit_purchase_max_usd)


def validate_purchase_amount(settings: Settings, amount_nanousd: int) -> None:
    low, high = purchase_limits(settings)
    if amount_nanousd < low or amount_nanousd > high:
        raise BadRequest(
            f"Buy between {format_usd(low)} and {format_usd(high)} of credits at a time "
            f"({format_usd(amount_nanousd)} was asked)."
        )
    if amount_nanousd % 10_000_000:
        raise BadRequest("Amounts are in whole cents, such as 25 or 12.50.")


class CreditService:
    async def start_purchase(
        self,
        session: AsyncSession,
        org: Organization,
        *,
        amount_nanousd: int,
        settings: Settings,
        actor: Actor,
        origin: str = "manual",
        now: datetime | None = None,
    ) -> StartedPurchase:
        """A pending purchase with its open invoice; the provider says where to pay. Grants nothing."""
        now = now or utcnow()
        validate_purchase_amount(settings, amount_nanousd)
        provider = provider_for(settings)
        invoice = await invoices.create(
            session,
            org.id,
            purpose="credits",
            issuer=settings.invoice_issuer,
            lines=[LineSpec("credit", f"Prepaid credits ({format_usd(amount_nanousd)})", amount_nanousd)],
        )
        profile = await repository.get_profile(session, org.id)
        await invoices.finalize(
            session,
            invoice,
            profile=profile,
            org_name=org.name,
            now=now,
            due_in=timedelta(days=settings.billing_grace_days),
        )
        purchase = CreditPurchase(
            organization_id=org.id,
            amount_nanousd=amount_nanousd,
            status="pending",
            origin=origin,
            provider=provider.name,
            invoice_id=invoice.id,
            created_by_label=actor.label,
            created_at=now,
        )
        session.add(purchase)
        await session.flush()
        checkout = await provider.start_checkout(
            CheckoutRequest(
                organization_id=org.id,
                purchase_id=purchase.id,
                amount_nanousd=invoice.total_nanousd,
                description=f"Tokenboard credits, invoice {invoice.number}",
                customer_email=profile.billing_email if profile else "",
                success_url=f"{settings.base_url}/organizations/{org.id}/billing?purchase={purchase.id}",
                cancel_url=f"{settings.base_url}/organizations/{org.id}/billing",
                customer_id=profile.provider_customer_id if profile else None,
            )
        )
        purchase.provider_reference = checkout.provider_reference
        purchase.checkout_url = checkout.url
        audit.record(
            session,
            organization_id=org.id,
            actor=actor,
            action="billing.purchase_started",
            target_type="credit_purchase",
            target_id=purchase.id,
            target_label=invoice.number,
            after={"amount_nanousd": amount_nanousd, "provider": provider.name, "origin": origin},
        )
        await session.flush()
        return StartedPurchase(purchase, checkout.url, checkout.instructions)

    async def record_offline_payment(
        self,
        session: AsyncSession,
        org_id: uuid.UUID,
        purchase_id: uuid.UUID,
        *,
        reference: str,
        actor: Actor,
        now: datetime | None = None,
    ) -> bool:
        """An operator (or, in a demo, the owner) records that a pending purchase was paid offline.

        The receipt ``reference`` is the payment's event id: recording it twice grants once.
        """
        purchase = await repository.get_purchase(session, org_id, purchase_id)
        if purchase is None or purchase.invoice_id is None:
            raise NotFound("No such purchase.")
        if purchase.provider != "offline":
            raise Conflict(f"This purchase is paid through {purchase.provider}, not recorded by hand.")
        reference = reference.strip() or f"manual-{purchase.id}"
        result = await apply_payment(
            session,
            org_id,
            provider="offline",
            event_id=reference,
            invoice_id=purchase.invoice_id,
            provider_reference=reference,
            actor=actor,
            now=now,
        )
        return result.applied

    async def refund(
        self,
        session: AsyncSession,
        org_id: uuid.UUID,
        purchase_id: uuid.UUID,
        *,
        amount_nanousd: int,
        reason: str,
        settings: Settings,
        actor: Actor,
        refund_event_id: str | None = None,
    ) -> int:
        """Refund part or all of a paid purchase and claw back exactly that many credits.

        ``refund_event_id`` (a provider's refund id from a webhook) makes a replay change nothing.
        Returns the amount clawed back now (0 for a replay). The balance may go below zero when the credits
        were already spent: that is the exact claw-back.
        """
        if not reason.strip():
            raise BadRequest("Give a reason for the refund.")
        if amount_nanousd <= 0:
            raise BadRequest("A refund must be a positive amount.")
        purchase = await repository.get_purchase(session, org_id, purchase_id)
        if purchase is None:
            raise NotFound("No such purchase.")
        if purchase.status not in ("paid", "partially_refunded"):
            raise Conflict("Only a paid purchase can be refunded.")
        if purchase.refunded_nanousd + amount_nanousd > purchase.amount_nanousd:
            raise Conflict(
                f"At most {format_usd(purchase.amount_nanousd - purchase.refunded_nanousd)} of this purchase "
                "can still be refunded."
            )
        if refund_event_id is None:
            payment = await repository.payment_for_purchase(session, org_id, purchase.id)
            result = await provider_for(settings).refund(
                RefundRequest(
                    organization_id=org_id,
                    payment_reference=payment.provider_reference if payment else None,
                    amount_nanousd=amount_nanousd,
                    reason=reason,
                    idempotency_key=f"refund:{purchase.id}:{purchase.refunded_nanousd}:{amount_nanousd}",
                )
            )
            refund_event_id = result.refund_id
        posted = await ledger.post(
            session,
            org_id,
            kind=EntryKind.refund,
            amount_nanousd=-amount_nanousd,
            external_id=f"refund:{purchase.provider}:{refund_event_id}",
            memo=f"Refund: {reason.strip()}",
            actor_label=actor.label,
        )
        if not posted.applied:
            return 0
        refunded_before = purchase.refunded_nanousd
        if not await repository.add_refunded(
            session, org_id, purchase.id, amount_nanousd, refunded_before=refunded_before
        ):
            raise Conflict(
                "A refund of this purchase was recorded meanwhile (perhaps this one, confirmed by the "
                "payment provider). Check the purchase history before refunding again."
            )
        purchase = await repository.get_purchase(session, org_id, purchase.id)
        assert purchase is not None
        purchase.status = (
            "refunded" if purchase.refunded_nanousd >= purchase.amount_nanousd else "partially_refunded"
        )
        audit.record(
            session,
            organization_id=org_id,
            actor=actor,
            action="billing.refunded",
            target_type="credit_purchase",
            target_id=purchase.id,
            after={"amount_nanousd": amount_nanousd, "reason": reason.strip()[:300]},
        )
        await session.flush()
        await self.watch_balance(session, org_id, settings)
        return amount_nanousd

    async def adjust(
        self,
        session: AsyncSession,
        org_id: uuid.UUID,
        *,
        amount_nanousd: int,
        reason: str,
        settings: Settings,
        actor: Actor,
    ) -> None:
        """An operator's correction, up or down, with the reason in the ledger memo and the audit log."""
        if not reason.strip():
            raise BadRequest("Give a reason for the adjustment.")
        if amount_nanousd == 0 or abs(amount_nanousd) > MAX_ADJUSTMENT_NANOUSD:
            raise BadRequest("An adjustment must be a non-zero amount of at most $1,000,000.")
        if await repository.get_org(session, org_id) is None:
            raise NotFound("No such organization.")
        await ledger.post(
            session,
            org_id,
            kind=EntryKind.adjustment,
            amount_nanousd=amount_nanousd,
            external_id=f"adjustment:{uuid.uuid4().hex}",
            memo=f"Adjustment: {reason.strip()}",
            actor_label=actor.label,
        )
        audit.record(
            session,
            organization_id=org_id,
            actor=actor,
            action="billing.adjusted",
            target_type="credits",
            after={"amount_nanousd": amount_nanousd, "reason": reason.strip()[:300]},
        )
        await self.watch_balance(session, org_id, settings)

    async def grant_promotion(
        self,
        session: AsyncSession,
        org_id: uuid.UUID,
        *,
        amount_nanousd: int,
        expires_at: datetime,
        reason: str,
        actor: Actor,
        now: datetime | None = None,
    ) -> CreditPromotion:
        now = now or utcnow()
        if amount_nanousd <= 0 or amount_nanousd > MAX_ADJUSTMENT_NANOUSD:
            raise BadRequest("A promotion must be a positive amount of at most $1,000,000.")
        if expires_at <= now:
            raise BadRequest("A promotion must expire in the future.")
        if await repository.get_org(session, org_id) is None:
            raise NotFound("No such organization.")
        promotion = CreditPromotion(
            organization_id=org_id,
            amount_nanousd=amount_nanousd,
            granted_at=now,
            expires_at=expires_at,
            reason=reason.strip()[:500],
            actor_label=actor.label,
        )
        session.add(promotion)
        await session.flush()
        await ledger.post(
            session,
            org_id,
            kind=EntryKind.promotion,
            amount_nanousd=amount_nanousd,
            external_id=f"promotion:{promotion.id}",
            memo=f"Promotion until {expires_at:%Y-%m-%d}: {reason.strip()}"[:500],
            actor_label=actor.label,
        )
        audit.record(
            session,
            organization_id=org_id,
            actor=actor,
            action="billing.promotion_granted",
            target_type="credit_promotion",
            target_id=promotion.id,
            after={"amount_nanousd": amount_nanousd, "expires_at": expires_at.isoformat()},
        )
        return promotion

    async def promotion_usage(
        self, session: AsyncSession, org_id: uuid.UUID, now: datetime
    ) -> dict[uuid.UUID, int]:
        """How much of each promotion usage has spent up to ``now`` (the FIFO rule in the module doc)."""
        promotions = await repository.list_promotions(session, org_id)
        if not promotions:
            return {}
        bounds = sorted(
            {p.granted_at for p in promotions}
            | {p.expires_at for p in promotions if p.expires_at < now}
            | {now}
        )
        used = {p.id: 0 for p in promotions}
        for start, end in pairwise(bounds):
            if start >= now:
                break
            spend = await repository.spend_between(session, org_id, start, end)
            for p in promotions:
                if spend <= 0:
                    break
                if p.granted_at <= start and end <= p.expires_at:
                    take = min(p.amount_nanousd - used[p.id], spend)
                    used[p.id] += take
                    spend -= take
        return used

    async def expire_promotions(
        self, session: AsyncSession, org_id: uuid.UUID, *, settings: Settings, now: datetime | None = None
    ) -> int:
        """Post the unspent part of every promotion past its expiry as its own ``expiry`` entry (once)."""
        now = now or utcnow()
        promotions = [
            p
            for p in await repository.list_promotions(session, org_id)
            if p.expired_at is None and p.expires_at <= now
        ]
        if not promotions:
            return 0
        used = await self.promotion_usage(session, org_id, now)
        expired = 0
        for p in promotions:
            balance = (await ledger.balance(session, org_id)).balance_nanousd
            amount = min(p.amount_nanousd - used[p.id], max(balance, 0))
            if not await repository.mark_promotion_expired(session, org_id, p.id, amount, now):
                continue
            if amount > 0:
                await ledger.post(
                    session,
                    org_id,
                    kind=EntryKind.expiry,
                    amount_nanousd=-amount,
                    external_id=f"expiry:{p.id}",
                    memo=f"Promotion of {format_usd(p.amount_nanousd)} expired unspent",
                    actor_label="system",
                )
                expired += amount
        await session.flush()
        await self.watch_balance(session, org_id, settings)
        return expired

    async def watch_balance(
        self, session: AsyncSession, org_id: uuid.UUID, settings: Settings, *, actor: Actor | None = None
    ) -> None:
        """Low-balance email once per crossing of the threshold; an automatic top-up below its level.

        Call after anything lowers or raises the balance (the billing job runs it for every organization
        that set a threshold or a top-up).
        """
        profile = await repository.get_profile(session, org_id)
        if profile is None:
            return
        available = (await ledger.balance(session, org_id)).available_nanousd
        threshold = profile.low_balance_threshold_nanousd
        if threshold is not None:
            if available < threshold:
                if await repository.set_low_balance_notified(session, org_id, notified=True):
                    await email_billing_contacts(
                        session,
                        org_id,
                        settings,
                        subject=f"Low credit balance: {format_usd(available)} left",
                        body=(
                            f"Your organization's available credits ({format_usd(available)}) fell below "
                            f"{format_usd(threshold)}. Requests are refused once credits run out. "
                            "Add credits:"
                            f"\n{settings.base_url}/organizations/{org_id}/billing"
                        ),
                    )
            else:
                await repository.set_low_balance_notified(session, org_id, notified=False)
        below, amount = profile.auto_topup_below_nanousd, profile.auto_topup_amount_nanousd
        if below is None or amount is None or available >= below:
            return
        if await repository.pending_auto_topup(session, org_id):
            return  # one top-up at a time: the pending one is waiting for its payment
        org = await repository.get_org(session, org_id)
        assert org is not None
        who = actor or Actor.system(SYSTEM_CLIENT)
        started = await self.start_purchase(
            session, org, amount_nanousd=amount, settings=settings, actor=who, origin="auto_topup"
        )
        purchase = started.purchase
        assert purchase.invoice_id is not None
        invoice = await repository.get_invoice(session, org_id, purchase.invoice_id)
        assert invoice is not None
        charged = await provider_for(settings).charge(
            ChargeRequest(
                organization_id=org_id,
                amount_nanousd=invoice.total_nanousd,
                description=f"Automatic top-up, invoice {invoice.number}",
                idempotency_key=f"invoice:{invoice.id}",
                invoice_id=invoice.id,
                purchase_id=purchase.id,
                customer_id=profile.provider_customer_id,
            )
        )
        if charged.status == ChargeStatus.succeeded and charged.event_id:
            await apply_payment(
                session,
                org_id,
                provider=purchase.provider,
                event_id=charged.event_id,
                invoice_id=invoice.id,
                provider_reference=charged.provider_reference,
                actor=who,
            )


credits = CreditService()
