"""Subscriptions and seats: the plan, the cycle, seat changes with proration, renewals and dunning.

An organization's subscription starts the first time billing looks at it: its first period (from then)
is not charged, like a trial; every later period is invoiced in advance at its start. Seats added take
effect at once (charged pro rata, see :mod:`tokenboard.billing.proration`) and raise how many members may
join; removals, and moves to a shorter cycle, wait for the next period. A failed payment opens a grace
period of ``TOKENBOARD_BILLING_GRACE_DAYS``; an offline (pending) charge is due within the same number of
days, after which the grace period opens. When the grace period ends the subscription is suspended and
the gateway refuses the organization's requests until the invoice is paid.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.audit.service import Actor, audit
from tokenboard.billing import repository
from tokenboard.billing.invoices import LineSpec, invoices
from tokenboard.billing.notify import email_billing_contacts
from tokenboard.billing.payments import apply_payment, record_payment_failure
from tokenboard.billing.plans import Frequency, PlanConfig
from tokenboard.billing.proration import (
    Cycle,
    Preview,
    period_end,
    preview_frequency,
    preview_seats,
    whole_second,
)
from tokenboard.billing.providers import provider_for
from tokenboard.billing.providers.base import ChargeRequest, ChargeStatus
from tokenboard.billing.status import invalidate_after_commit
from tokenboard.config import Settings
from tokenboard.kit.db import utcnow
from tokenboard.kit.errors import BadRequest, Conflict
from tokenboard.kit.money import format_usd
from tokenboard.models import Invoice, Organization, Subscription, SubscriptionChange

MAX_SEATS = 100_000


def _record_previewed_change(
    session: AsyncSession,
    org: Organization,
    kind: str,
    *,
    seats: tuple[int, int],
    preview: Preview,
    invoice: Invoice | None,
    actor: Actor,
    now: datetime,
    audit_before: dict[str, Any],
    audit_after: dict[str, Any],
) -> None:
    """A change the owner saw previewed: its line in the seat history and its audit event."""
    session.add(
        SubscriptionChange(
            organization_id=org.id,
            kind=kind,
            seats_before=seats[0],
            seats_after=seats[1],
            description=preview.explanation[:1000],
            amount_nanousd=preview.charge_now_nanousd,
            effective_at=preview.effective_at,
            invoice_id=invoice.id if invoice else None,
            actor_label=actor.label,
            created_at=now,
        )
    )
    audit.record(
        session,
        organization_id=org.id,
        actor=actor,
        action=f"billing.{kind}",
        target_type="subscription",
        target_id=org.id,
        target_label=org.name,
        before=audit_before,
        after=audit_after,
    )


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    subscription: Subscription
    plan_id: str
    plan: PlanConfig
    price_per_seat_nanousd: int
    next_charge_at: datetime | None
    next_charge_nanousd: int
    next_seats: int
    next_frequency: Frequency
    members: int
    history: list[SubscriptionChange]


def plan_of(settings: Settings, plan_id: str) -> PlanConfig:
    plan = settings.billing_plans.get(plan_id)
    if plan is None:
        raise Conflict(f"The plan {plan_id!r} is no longer offered; ask the operator.")
    return plan


def cycle_of(sub: Subscription, settings: Settings) -> Cycle:
    frequency = Frequency(sub.frequency)
    return Cycle(
        start=sub.current_period_start,
        end=sub.current_period_end,
        frequency=frequency,
        seats=sub.seats,
        price_per_seat_nanousd=plan_of(settings, sub.plan).price_per_seat(frequency),
    )


class SubscriptionService:
    async def ensure(
        self, session: AsyncSession, org: Organization, settings: Settings, now: datetime | None = None
    ) -> Subscription:
        """The organization's subscription, started now (first period free) if it has none yet."""
        sub = await repository.get_subscription(session, org.id)
        if sub is not None:
            return sub
        start = whole_second(now or utcnow())
        plan_id = org.plan if org.plan in settings.billing_plans else settings.billing_default_plan
        sub = Subscription(
            organization_id=org.id,
            plan=plan_id,
            frequency=Frequency.monthly.value,
            seats=org.seat_limit,
            status="active",
            anchor_day=start.day,
            current_period_start=start,
            current_period_end=period_end(start, Frequency.monthly),
            created_at=start,
            updated_at=start,
        )
        session.add(sub)
        session.add(
            SubscriptionChange(
                organization_id=org.id,
                kind="started",
                seats_before=None,
                seats_after=sub.seats,
                description=f"{plan_of(settings, plan_id).name} plan started with {sub.seats} seats "
                "(first period included).",
                effective_at=start,
                actor_label="system",
                created_at=start,
            )
        )
        await session.flush()
        return sub

    async def view(
        self, session: AsyncSession, org: Organization, settings: Settings, now: datetime | None = None
    ) -> SubscriptionView:
        sub = await self.ensure(session, org, settings, now)
        plan = plan_of(settings, sub.plan)
        next_frequency = Frequency(sub.pending_frequency or sub.frequency)
        next_seats = sub.pending_seats if sub.pending_seats is not None else sub.seats
        renews = sub.status != "canceled" and sub.auto_renew and not sub.cancel_at_period_end
        return SubscriptionView(
            subscription=sub,
            plan_id=sub.plan,
            plan=plan,
            price_per_seat_nanousd=plan.price_per_seat(Frequency(sub.frequency)),
            next_charge_at=sub.current_period_end if renews else None,
            next_charge_nanousd=next_seats * plan.price_per_seat(next_frequency) if renews else 0,
            next_seats=next_seats,
            next_frequency=next_frequency,
            members=await repository.member_count(session, org.id),
            history=await repository.list_changes(session, org.id, 50),
        )

    def _check_open(self, sub: Subscription) -> None:
        if sub.status == "canceled":
            raise Conflict("The subscription has ended; restart it first.")

    async def preview_seats(
        self,
        session: AsyncSession,
        org: Organization,
        seats: int,
        settings: Settings,
        now: datetime | None = None,
    ) -> Preview:
        sub = await self.ensure(session, org, settings, now)
        self._check_open(sub)
        await self._check_seats(session, org.id, seats)
        return preview_seats(cycle_of(sub, settings), seats, whole_second(now or utcnow()))

    async def _check_seats(self, session: AsyncSession, org_id: uuid.UUID, seats: int) -> None:
        if not 1 <= seats <= MAX_SEATS:
            raise BadRequest(f"Seats must be between 1 and {MAX_SEATS:,}.")
        used = await repository.member_count(session, org_id)
        if seats < used:
            raise Conflict(f"{used} members use seats; remove members before going below {used} seats.")

    async def change_seats(
        self,
        session: AsyncSession,
        org: Organization,
        seats: int,
        *,
        settings: Settings,
        actor: Actor,
        now: datetime | None = None,
    ) -> tuple[Preview, Invoice | None]:
        """Apply a seat change as previewed: additions now (invoiced pro rata), removals next period."""
        now = whole_second(now or utcnow())
        await repository.lock_org(session, org.id)
        sub = await self.ensure(session, org, settings, now)
        self._check_open(sub)
        await self._check_seats(session, org.id, seats)
        preview = preview_seats(cycle_of(sub, settings), seats, now)
        before = sub.seats
        invoice = None
        if seats > sub.seats:
            sub.seats, sub.pending_seats = seats, None
            org.seat_limit = seats
            kind = "seats_added"
            if preview.charge_now_nanousd > 0:
                invoice = await self._invoice_and_charge(
                    session,
                    org,
                    sub,
                    settings,
                    actor,
                    now,
                    lines=[
                        LineSpec(
                            "proration",
                            f"{seats - before} seat(s) added {now:%Y-%m-%d}, prorated to "
                            f"{sub.current_period_end:%Y-%m-%d}: {preview.seconds_left:,} of "
                            f"{preview.period_seconds:,} seconds",
                            preview.charge_now_nanousd,
                            quantity=seats - before,
                            unit_amount_nanousd=cycle_of(sub, settings).price_per_seat_nanousd,
                        )
                    ],
                    period=(now, sub.current_period_end),
                )
        elif seats < sub.seats:
            sub.pending_seats = seats
            kind = "seats_removal_scheduled"
        else:
            sub.pending_seats = None
            kind = "seats_unchanged"
        sub.updated_at = now
        _record_previewed_change(
            session,
            org,
            kind,
            seats=(before, seats),
            preview=preview,
            invoice=invoice,
            actor=actor,
            now=now,
            audit_before={"seats": before},
            audit_after={"seats": seats, "charge_nanousd": preview.charge_now_nanousd},
        )
        await session.flush()
        return preview, invoice

    async def preview_frequency(
        self,
        session: AsyncSession,
        org: Organization,
        frequency: Frequency,
        settings: Settings,
        now: datetime | None = None,
    ) -> Preview:
        sub = await self.ensure(session, org, settings, now)
        self._check_open(sub)
        plan = plan_of(settings, sub.plan)
        if frequency not in plan.frequencies():
            raise BadRequest(f"The {plan.name} plan is not offered with {frequency.value} billing.")
        return preview_frequency(
            cycle_of(sub, settings),
            frequency,
            plan.price_per_seat(frequency),
            whole_second(now or utcnow()),
            anchor_day=sub.anchor_day,
        )

    async def change_frequency(
        self,
        session: AsyncSession,
        org: Organization,
        frequency: Frequency,
        *,
        settings: Settings,
        actor: Actor,
        now: datetime | None = None,
    ) -> tuple[Preview, Invoice | None]:
        now = whole_second(now or utcnow())
        await repository.lock_org(session, org.id)
        preview = await self.preview_frequency(session, org, frequency, settings, now)
        sub = await self.ensure(session, org, settings, now)
        before = sub.frequency
        invoice = None
        if frequency == Frequency(sub.frequency):
            sub.pending_frequency = None
        elif frequency.months > Frequency(sub.frequency).months:
            old = cycle_of(sub, settings)
            sub.frequency, sub.pending_frequency = frequency.value, None
            sub.current_period_start, sub.current_period_end = now, preview.next_charge_at
            sub.anchor_day = now.day
            credit = preview.next_charge_nanousd - preview.charge_now_nanousd
            invoice = await self._invoice_and_charge(
                session,
                org,
                sub,
                settings,
                actor,
                now,
                lines=[
                    LineSpec(
                        "seats",
                        f"{sub.seats} seats, {frequency.value} ({now:%Y-%m-%d} to "
                        f"{sub.current_period_end:%Y-%m-%d})",
                        preview.next_charge_nanousd,
                        quantity=sub.seats,
                        unit_amount_nanousd=plan_of(settings, sub.plan).price_per_seat(frequency),
                    ),
                    LineSpec(
                        "credit_note",
                        f"Unused time of the {old.frequency.value} period ending {old.end:%Y-%m-%d}",
                        -credit,
                    ),
                ],
                period=(now, sub.current_period_end),
            )
        else:
            sub.pending_frequency = frequency.value
        sub.updated_at = now
        _record_previewed_change(
            session,
            org,
            "frequency_changed",
            seats=(sub.seats, sub.seats),
            preview=preview,
            invoice=invoice,
            actor=actor,
            now=now,
            audit_before={"frequency": before},
            audit_after={"frequency": frequency.value},
        )
        await session.flush()
        return preview, invoice

    async def set_renewal(
        self, session: AsyncSession, org: Organization, *, auto_renew: bool, settings: Settings, actor: Actor
    ) -> Subscription:
        sub = await self.ensure(session, org, settings)
        self._check_open(sub)
        if sub.auto_renew != auto_renew:
            sub.auto_renew = auto_renew
            sub.updated_at = utcnow()
            self._log(
                session,
                sub,
                "renewal_changed",
                "Automatic renewal on."
                if auto_renew
                else f"Automatic renewal off: the subscription ends on {sub.current_period_end:%Y-%m-%d}.",
                actor,
            )
            audit.record(
                session,
                organization_id=org.id,
                actor=actor,
                action="billing.renewal_changed",
                target_type="subscription",
                target_id=org.id,
                after={"auto_renew": auto_renew},
            )
        await session.flush()
        return sub

    async def cancel(
        self, session: AsyncSession, org: Organization, *, confirm: bool, settings: Settings, actor: Actor
    ) -> Subscription:
        """Cancel at the end of the current period (access and seats stay until then)."""
        if not confirm:
            raise BadRequest("Confirm the cancellation: it takes effect at the end of the current period.")
        sub = await self.ensure(session, org, settings)
        self._check_open(sub)
        if not sub.cancel_at_period_end:
            sub.cancel_at_period_end, sub.canceled_at, sub.updated_at = True, utcnow(), utcnow()
            self._log(
                session,
                sub,
                "cancel_scheduled",
                f"Canceled: the subscription ends on {sub.current_period_end:%Y-%m-%d %H:%M} UTC.",
                actor,
            )
            audit.record(
                session,
                organization_id=org.id,
                actor=actor,
                action="billing.subscription_canceled",
                target_type="subscription",
                target_id=org.id,
                after={"ends_at": sub.current_period_end.isoformat()},
            )
        await session.flush()
        return sub

    async def resume(
        self,
        session: AsyncSession,
        org: Organization,
        *,
        settings: Settings,
        actor: Actor,
        now: datetime | None = None,
    ) -> Subscription:
        """Undo a scheduled cancellation, or restart an ended subscription with a new, charged period."""
        now = whole_second(now or utcnow())
        sub = await self.ensure(session, org, settings, now)
        if sub.status == "canceled":
            sub.status, sub.cancel_at_period_end, sub.canceled_at, sub.auto_renew = (
                "active",
                False,
                None,
                True,
            )
            sub.current_period_start, sub.anchor_day = now, now.day
            sub.current_period_end = period_end(now, Frequency(sub.frequency))
            price = cycle_of(sub, settings).price_per_seat_nanousd
            await self._invoice_and_charge(
                session,
                org,
                sub,
                settings,
                actor,
                now,
                lines=[
                    LineSpec(
                        "seats",
                        f"{sub.seats} seats, {sub.frequency} ({now:%Y-%m-%d} to "
                        f"{sub.current_period_end:%Y-%m-%d})",
                        sub.seats * price,
                        quantity=sub.seats,
                        unit_amount_nanousd=price,
                    )
                ],
                period=(now, sub.current_period_end),
            )
            self._log(session, sub, "restarted", "Subscription restarted.", actor)
            invalidate_after_commit(session, org.id)
        elif sub.cancel_at_period_end:
            sub.cancel_at_period_end, sub.canceled_at = False, None
            self._log(
                session, sub, "cancel_withdrawn", "Cancellation withdrawn: the subscription renews.", actor
            )
        sub.updated_at = now
        audit.record(
            session,
            organization_id=org.id,
            actor=actor,
            action="billing.subscription_resumed",
            target_type="subscription",
            target_id=org.id,
        )
        await session.flush()
        return sub

    def _log(self, session: AsyncSession, sub: Subscription, kind: str, text: str, actor: Actor) -> None:
        session.add(
            SubscriptionChange(
                organization_id=sub.organization_id,
                kind=kind,
                seats_before=sub.seats,
                seats_after=sub.seats,
                description=text,
                effective_at=utcnow(),
                actor_label=actor.label,
            )
        )

    async def _invoice_and_charge(
        self,
        session: AsyncSession,
        org: Organization,
        sub: Subscription,
        settings: Settings,
        actor: Actor,
        now: datetime,
        *,
        lines: list[LineSpec],
        period: tuple[datetime, datetime],
    ) -> Invoice:
        """Invoice the lines and charge the saved method; offline, the invoice stays open until paid."""
        invoice = await invoices.create(
            session,
            org.id,
            purpose="subscription",
            lines=lines,
            issuer=settings.invoice_issuer,
            period=period,
        )
        await invoices.finalize(
            session,
            invoice,
            profile=await repository.get_profile(session, org.id),
            org_name=org.name,
            now=now,
            due_in=timedelta(days=settings.billing_grace_days),
        )
        if invoice.status != "open":
            return invoice
        provider = provider_for(settings)
        profile = await repository.get_profile(session, org.id)
        result = await provider.charge(
            ChargeRequest(
                organization_id=org.id,
                amount_nanousd=invoice.total_nanousd,
                description=f"Tokenboard {plan_of(settings, sub.plan).name}, invoice {invoice.number}",
                idempotency_key=f"invoice:{invoice.id}",
                invoice_id=invoice.id,
                customer_id=profile.provider_customer_id if profile else None,
            )
        )
        if result.status == ChargeStatus.succeeded and result.event_id:
            await apply_payment(
                session,
                org.id,
                provider=provider.name,
                event_id=result.event_id,
                invoice_id=invoice.id,
                provider_reference=result.provider_reference,
                actor=actor,
                now=now,
            )
        elif result.status == ChargeStatus.failed:
            await record_payment_failure(
                session,
                org.id,
                invoice_id=invoice.id,
                reason=result.message or "declined",
                settings=settings,
                actor=actor,
                now=now,
            )
        return invoice

    # ------------------------------------------------------------------ the billing job

    async def renew(
        self, session: AsyncSession, org_id: uuid.UUID, *, settings: Settings, actor: Actor, now: datetime
    ) -> int:
        """Roll every period that ended by ``now`` into the next one (invoiced), or end the subscription."""
        await repository.lock_org(session, org_id)
        org = await repository.get_org(session, org_id)
        sub = await repository.get_subscription(session, org_id, lock=True)
        if org is None or sub is None:
            return 0
        renewed = 0
        while sub.status != "canceled" and sub.current_period_end <= now:
            if sub.cancel_at_period_end or not sub.auto_renew:
                sub.status = "canceled"
                self._log(
                    session,
                    sub,
                    "ended",
                    f"The subscription ended on {sub.current_period_end:%Y-%m-%d}.",
                    actor,
                )
                invalidate_after_commit(session, org_id)
                break
            previous = (sub.current_period_start, sub.current_period_end)
            before = sub.seats
            if sub.pending_seats is not None:
                sub.seats = max(sub.pending_seats, await repository.member_count(session, org_id))
                org.seat_limit = sub.seats
                sub.pending_seats = None
            if sub.pending_frequency is not None:
                sub.frequency, sub.pending_frequency = sub.pending_frequency, None
            start = sub.current_period_end
            sub.current_period_start = start
            sub.current_period_end = period_end(start, Frequency(sub.frequency), sub.anchor_day)
            sub.updated_at = now
            plan = plan_of(settings, sub.plan)
            price = plan.price_per_seat(Frequency(sub.frequency))
            lines = [
                LineSpec(
                    "seats",
                    f"{sub.seats} seats, {plan.name} {sub.frequency} ({start:%Y-%m-%d} to "
                    f"{sub.current_period_end:%Y-%m-%d})",
                    sub.seats * price,
                    quantity=sub.seats,
                    unit_amount_nanousd=price,
                )
            ]
            if plan.usage_in_arrears:
                # The gateway already charged this usage to the organization's credits, request by request:
                # the invoice itemizes it per model for the accounts department, at no second charge.
                for model_id, requests, cost in await repository.usage_by_model(
                    session, org_id, previous[0].date(), previous[1].date()
                ):
                    lines.append(
                        LineSpec(
                            "usage",
                            f"Usage of {model_id}, {requests:,} requests "
                            f"({previous[0]:%Y-%m-%d} to {previous[1]:%Y-%m-%d}): "
                            f"{format_usd(cost)}, paid from credits",
                            0,
                            quantity=requests,
                            model_id=model_id,
                        )
                    )
            invoice = await self._invoice_and_charge(
                session, org, sub, settings, actor, now, lines=lines, period=(start, sub.current_period_end)
            )
            session.add(
                SubscriptionChange(
                    organization_id=org_id,
                    kind="renewed",
                    seats_before=before,
                    seats_after=sub.seats,
                    description=f"Renewed for {start:%Y-%m-%d} to {sub.current_period_end:%Y-%m-%d}: "
                    f"{sub.seats} seats, {format_usd(invoice.total_nanousd)} (invoice {invoice.number}).",
                    amount_nanousd=invoice.total_nanousd,
                    effective_at=start,
                    invoice_id=invoice.id,
                    actor_label=actor.label,
                    created_at=now,
                )
            )
            renewed += 1
        await session.flush()
        return renewed

    async def dun(self, session: AsyncSession, *, settings: Settings, actor: Actor, now: datetime) -> int:
        """Overdue invoices open the grace period; grace periods that ended suspend. Returns changes."""
        changed = 0
        for invoice in await repository.open_invoices_due(session, now):
            sub = await repository.get_subscription(session, invoice.organization_id)
            if sub is not None and sub.status == "active":
                await record_payment_failure(
                    session,
                    invoice.organization_id,
                    invoice_id=invoice.id,
                    reason="not paid by its due date",
                    settings=settings,
                    actor=actor,
                    now=now,
                )
                changed += 1
        for org_id in await repository.subscriptions_in_status(session, "past_due"):
            sub = await repository.get_subscription(session, org_id, lock=True)
            if sub is None or sub.grace_until is None or sub.grace_until > now:
                continue
            sub.status, sub.updated_at = "suspended", now
            self._log(
                session,
                sub,
                "suspended",
                "Grace period over: gateway access suspended until the open invoice is paid.",
                actor,
            )
            audit.record(
                session,
                organization_id=org_id,
                actor=actor,
                action="billing.suspended",
                target_type="subscription",
                target_id=org_id,
            )
            await email_billing_contacts(
                session,
                org_id,
                settings,
                subject="Gateway access suspended for non-payment",
                body="The grace period after a failed payment ended, so the gateway now refuses your "
                "organization's requests. Pay the open invoice to restore access at once:\n"
                f"{settings.base_url}/organizations/{org_id}/billing",
            )
            invalidate_after_commit(session, org_id)
            changed += 1
        await session.flush()
        return changed


subscriptions = SubscriptionService()
