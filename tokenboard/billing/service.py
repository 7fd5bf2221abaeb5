"""Billing: the facade the pages, the API and the CLI call.

The rules live in :mod:`credits` (purchases, refunds, adjustments, promotions, balance alerts),
:mod:`subscriptions` (plan, seats, cycle, renewals, dunning), :mod:`invoices` and :mod:`payments`
(:func:`~tokenboard.billing.payments.apply_payment`, the one idempotent way a payment lands).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.audit.service import Actor, audit
from tokenboard.billing import repository
from tokenboard.billing.credits import credits, purchase_limits
from tokenboard.billing.providers import provider_for
from tokenboard.billing.providers.base import PaymentMethod
from tokenboard.billing.status import billing_status
from tokenboard.billing.subscriptions import SubscriptionView, subscriptions
from tokenboard.config import Settings
from tokenboard.kit.db import utcnow
from tokenboard.kit.errors import BadRequest
from tokenboard.ledger.service import Balance, ledger
from tokenboard.models import BillingPayment, BillingProfile, CreditPurchase, Invoice, Organization

HISTORY_KINDS = ("refund", "adjustment", "promotion", "expiry", "grant")
MAX_TAX_BPS = 10_000


@dataclass(frozen=True, slots=True)
class HistoryItem:
    at: datetime
    kind: str  # purchase, subscription, refund, adjustment, promotion, expiry, grant
    description: str
    amount_nanousd: int
    status: str


@dataclass(frozen=True, slots=True)
class BillingOverview:
    balance: Balance
    profile: BillingProfile
    payment_method: PaymentMethod
    provider: str
    status: str  # active, grace, suspended, canceled
    subscription: SubscriptionView
    purchases: list[CreditPurchase]
    payments: list[BillingPayment]
    cycles: list[Invoice]  # subscription invoices: payment status per billing cycle
    history: list[HistoryItem]
    bundles_nanousd: list[int]
    min_purchase_nanousd: int
    max_purchase_nanousd: int


@dataclass(frozen=True, slots=True)
class RunReport:
    renewed: int
    dunning_changes: int
    expired_nanousd: int
    watched: int


class BillingService:
    async def profile(self, session: AsyncSession, org_id: uuid.UUID) -> BillingProfile:
        profile = await repository.get_profile(session, org_id)
        if profile is None:
            profile = BillingProfile(organization_id=org_id)
            session.add(profile)
            await session.flush()
        return profile

    async def overview(
        self, session: AsyncSession, org: Organization, settings: Settings, now: datetime | None = None
    ) -> BillingOverview:
        sub = await subscriptions.view(session, org, settings, now)
        profile = await self.profile(session, org.id)
        provider = provider_for(settings)
        purchases = await repository.list_purchases(session, org.id, 50)
        low, high = purchase_limits(settings)
        return BillingOverview(
            balance=await ledger.balance(session, org.id),
            profile=profile,
            payment_method=provider.payment_method(
                profile.payment_method_brand,
                profile.payment_method_last4,
                profile.payment_method_exp_month,
                profile.payment_method_exp_year,
            ),
            provider=provider.name,
            status=await billing_status(session, org.id, now),
            subscription=sub,
            purchases=purchases,
            payments=await repository.list_payments(session, org.id, 50),
            cycles=[
                i for i in await repository.list_invoices(session, org.id, 100) if i.purpose == "subscription"
            ],
            history=await self._history(session, org.id, purchases, sub),
            bundles_nanousd=[usd * 1_000_000_000 for usd in settings.credit_bundles_usd],
            min_purchase_nanousd=low,
            max_purchase_nanousd=high,
        )

    async def _history(
        self, session: AsyncSession, org_id: uuid.UUID, purchases: list[CreditPurchase], sub: SubscriptionView
    ) -> list[HistoryItem]:
        items = [
            HistoryItem(
                p.created_at,
                "purchase",
                f"Credit purchase ({p.origin.replace('_', ' ')})",
                p.amount_nanousd,
                p.status,
            )
            for p in purchases
        ]
        items += [
            HistoryItem(
                c.created_at, "subscription", c.description, c.amount_nanousd, c.kind.replace("_", " ")
            )
            for c in sub.history
        ]
        items += [
            HistoryItem(e.created_at, e.kind, e.memo or e.kind, e.amount_nanousd, "applied")
            for e in await repository.ledger_entries_of_kinds(session, org_id, HISTORY_KINDS, 50)
        ]
        return sorted(items, key=lambda item: item.at, reverse=True)[:100]

    async def update_profile(
        self,
        session: AsyncSession,
        org_id: uuid.UUID,
        *,
        actor: Actor,
        legal_name: str | None = None,
        billing_email: str | None = None,
        address: str | None = None,
        country: str | None = None,
        tax_id: str | None = None,
        tax_rate_bps: int | None = None,
        low_balance_threshold_nanousd: int | None = None,
        auto_topup_below_nanousd: int | None = None,
        auto_topup_amount_nanousd: int | None = None,
        clear: frozenset[str] = frozenset(),
        settings: Settings,
    ) -> BillingProfile:
        """Change the billing details; fields named in ``clear`` are switched off (alerts, top-up)."""
        profile = await self.profile(session, org_id)
        fields = (
            "legal_name",
            "billing_email",
            "address",
            "country",
            "tax_id",
            "tax_rate_bps",
            "low_balance_threshold_nanousd",
            "auto_topup_below_nanousd",
            "auto_topup_amount_nanousd",
        )
        before = {f: getattr(profile, f) for f in fields}
        if country is not None and country and (len(country) != 2 or not country.isalpha()):
            raise BadRequest("The country is a two-letter code, such as DE or US.")
        if tax_rate_bps is not None and not 0 <= tax_rate_bps <= MAX_TAX_BPS:
            raise BadRequest("The tax rate is in basis points, between 0 and 10000 (100%).")
        if any(v is not None and v < 0 for v in (low_balance_threshold_nanousd, auto_topup_below_nanousd)):
            raise BadRequest("A balance level cannot be negative.")
        if auto_topup_amount_nanousd is not None:
            from tokenboard.billing.credits import validate_purchase_amount

            validate_purchase_amount(settings, auto_topup_amount_nanousd)
        updates: dict[str, str | int | None] = {
            "legal_name": legal_name,
            "billing_email": billing_email,
            "address": address,
            "country": country.upper() if country is not None else None,
            "tax_id": tax_id,
            "tax_rate_bps": tax_rate_bps,
            "low_balance_threshold_nanousd": low_balance_threshold_nanousd,
            "auto_topup_below_nanousd": auto_topup_below_nanousd,
            "auto_topup_amount_nanousd": auto_topup_amount_nanousd,
        }
        for name, value in updates.items():
            if value is not None:
                setattr(profile, name, value.strip() if isinstance(value, str) else value)
        for name in clear & {
            "low_balance_threshold_nanousd",
            "auto_topup_below_nanousd",
            "auto_topup_amount_nanousd",
        }:
            setattr(profile, name, None)
        if (profile.auto_topup_below_nanousd is None) != (profile.auto_topup_amount_nanousd is None):
            raise BadRequest("An automatic top-up needs both a level and an amount.")
        after = {f: getattr(profile, f) for f in fields}
        if after != before:
            profile.updated_at = utcnow()
            changed = [f for f in fields if after[f] != before[f]]
            audit.record(
                session,
                organization_id=org_id,
                actor=actor,
                action="billing.profile_changed",
                target_type="billing_profile",
                target_id=org_id,
                before={f: before[f] for f in changed},
                after={f: after[f] for f in changed},
            )
        await session.flush()
        await credits.watch_balance(session, org_id, settings, actor=actor)
        return profile

    async def run(
        self, session: AsyncSession, *, settings: Settings, actor: Actor, now: datetime | None = None
    ) -> RunReport:
        """The billing job (cron: ``tokenboard billing run``): renewals, dunning, promotion expiry, alerts."""
        now = now or utcnow()
        renewed = 0
        for org_id in await repository.subscriptions_to_renew(session, now):
            renewed += await subscriptions.renew(session, org_id, settings=settings, actor=actor, now=now)
        dunning = await subscriptions.dun(session, settings=settings, actor=actor, now=now)
        expired = 0
        for org_id in await repository.orgs_with_promotions_due(session, now):
            expired += await credits.expire_promotions(session, org_id, settings=settings, now=now)
        watched = await repository.profiles_watching_balance(session)
        for org_id in watched:
            await credits.watch_balance(session, org_id, settings, actor=actor)
        return RunReport(renewed, dunning, expired, len(watched))


billing = BillingService()
