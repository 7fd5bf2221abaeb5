"""SQL for billing. Conditional UPDATEs are what make each payment, refund and number happen once."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.kit.db import utcnow
from tokenboard.kit.tenancy import scoped
from tokenboard.models import (
    BillingPayment,
    BillingProfile,
    CreditEntry,
    CreditPromotion,
    CreditPurchase,
    Invoice,
    InvoiceCounter,
    InvoiceLine,
    Membership,
    Organization,
    Subscription,
    SubscriptionChange,
    UsageDayModel,
    User,
)


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def _for_update(session: AsyncSession, stmt: Any) -> Any:
    return stmt.with_for_update() if session.get_bind().dialect.name == "postgresql" else stmt


# ------------------------------------------------------------------ subscriptions and profiles


async def get_subscription(
    session: AsyncSession, org_id: uuid.UUID, *, lock: bool = False
) -> Subscription | None:
    stmt = select(Subscription).where(Subscription.organization_id == org_id)
    stmt = stmt.execution_options(populate_existing=True)
    return (await session.execute(_for_update(session, stmt) if lock else stmt)).scalar_one_or_none()


async def get_profile(session: AsyncSession, org_id: uuid.UUID) -> BillingProfile | None:
    return await session.get(BillingProfile, org_id)


async def get_org(session: AsyncSession, org_id: uuid.UUID) -> Organization | None:
    return await session.get(Organization, org_id)


async def lock_org(session: AsyncSession, org_id: uuid.UUID) -> None:
    """Serialise billing changes of one organization (PostgreSQL row lock, SQLite write lock)."""
    await session.execute(
        update(Organization)
        .where(Organization.id == org_id)
        .values(lock_version=Organization.lock_version + 1)
        .execution_options(synchronize_session=False)
    )


async def member_count(session: AsyncSession, org_id: uuid.UUID) -> int:
    stmt = scoped(select(func.count()).select_from(Membership), Membership, org_id)
    return int(await session.scalar(stmt) or 0)


async def billing_recipients(session: AsyncSession, org_id: uuid.UUID) -> list[str]:
    """Emails of the owners and billing managers: who hears about balances and payments."""
    stmt = (
        scoped(select(User.email).select_from(Membership), Membership, org_id)
        .join(User, User.id == Membership.user_id)
        .where(Membership.role.in_(("owner", "billing_manager")))
        .order_by(User.email)
    )
    return list((await session.execute(stmt)).scalars())


async def subscriptions_to_renew(session: AsyncSession, now: datetime) -> list[uuid.UUID]:
    stmt = select(Subscription.organization_id).where(
        Subscription.current_period_end <= now, Subscription.status != "canceled"
    )
    return list((await session.execute(stmt)).scalars())


async def subscriptions_in_status(session: AsyncSession, status: str) -> list[uuid.UUID]:
    stmt = select(Subscription.organization_id).where(Subscription.status == status)
    return list((await session.execute(stmt)).scalars())


async def list_changes(session: AsyncSession, org_id: uuid.UUID, limit: int) -> list[SubscriptionChange]:
    stmt = (
        scoped(select(SubscriptionChange), SubscriptionChange, org_id)
        .order_by(SubscriptionChange.created_at.desc(), SubscriptionChange.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def profiles_watching_balance(session: AsyncSession) -> list[uuid.UUID]:
    stmt = select(BillingProfile.organization_id).where(
        (BillingProfile.low_balance_threshold_nanousd.is_not(None))
        | (BillingProfile.auto_topup_below_nanousd.is_not(None))
    )
    return list((await session.execute(stmt)).scalars())


async def set_low_balance_notified(session: AsyncSession, org_id: uuid.UUID, *, notified: bool) -> bool:
    """Flip the flag only if it is not set that way yet: the caller that flips it sends the one email."""
    result = await session.execute(
        update(BillingProfile)
        .where(BillingProfile.organization_id == org_id, BillingProfile.low_balance_notified.is_not(notified))
        .values(low_balance_notified=notified, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


# ------------------------------------------------------------------ purchases and payments


async def get_purchase(
    session: AsyncSession, org_id: uuid.UUID, purchase_id: uuid.UUID
) -> CreditPurchase | None:
    stmt = scoped(select(CreditPurchase), CreditPurchase, org_id).where(CreditPurchase.id == purchase_id)
    return (await session.execute(stmt.execution_options(populate_existing=True))).scalar_one_or_none()


async def purchase_for_invoice(
    session: AsyncSession, org_id: uuid.UUID, invoice_id: uuid.UUID
) -> CreditPurchase | None:
    stmt = scoped(select(CreditPurchase), CreditPurchase, org_id).where(
        CreditPurchase.invoice_id == invoice_id
    )
    return (await session.execute(stmt.limit(1))).scalar_one_or_none()


async def list_purchases(session: AsyncSession, org_id: uuid.UUID, limit: int) -> list[CreditPurchase]:
    stmt = (
        scoped(select(CreditPurchase), CreditPurchase, org_id)
        .order_by(CreditPurchase.created_at.desc(), CreditPurchase.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def pending_auto_topup(session: AsyncSession, org_id: uuid.UUID) -> bool:
    stmt = scoped(select(func.count()).select_from(CreditPurchase), CreditPurchase, org_id).where(
        CreditPurchase.origin == "auto_topup", CreditPurchase.status == "pending"
    )
    return bool(await session.scalar(stmt))


async def mark_purchase_paid(
    session: AsyncSession, org_id: uuid.UUID, purchase_id: uuid.UUID, paid_at: datetime
) -> bool:
    """pending -> paid, once: of two payments for the same purchase only one gets True."""
    result = await session.execute(
        update(CreditPurchase)
        .where(
            CreditPurchase.organization_id == org_id,
            CreditPurchase.id == purchase_id,
            CreditPurchase.status == "pending",
        )
        .values(status="paid", paid_at=paid_at)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def add_refunded(
    session: AsyncSession, org_id: uuid.UUID, purchase_id: uuid.UUID, amount: int, *, refunded_before: int
) -> bool:
    """Count ``amount`` as refunded, only if nothing else was refunded since the caller read
    ``refunded_before`` (compare and set) and the total stays within what was paid.

    An operator's refund and the provider's webhook confirming it may run at the same time: whichever
    commits second finds the total changed and is rolled back, so the credits are clawed back once.
    """
    result = await session.execute(
        update(CreditPurchase)
        .where(
            CreditPurchase.organization_id == org_id,
            CreditPurchase.id == purchase_id,
            CreditPurchase.status.in_(("paid", "partially_refunded")),
            CreditPurchase.refunded_nanousd == refunded_before,
            CreditPurchase.refunded_nanousd + amount <= CreditPurchase.amount_nanousd,
        )
        .values(refunded_nanousd=CreditPurchase.refunded_nanousd + amount)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def find_payment(
    session: AsyncSession, org_id: uuid.UUID, provider: str, event_id: str
) -> BillingPayment | None:
    stmt = scoped(select(BillingPayment), BillingPayment, org_id).where(
        BillingPayment.provider == provider, BillingPayment.event_id == event_id
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def payment_for_purchase(
    session: AsyncSession, org_id: uuid.UUID, purchase_id: uuid.UUID
) -> BillingPayment | None:
    stmt = scoped(select(BillingPayment), BillingPayment, org_id).where(
        BillingPayment.purchase_id == purchase_id, BillingPayment.status == "succeeded"
    )
    return (await session.execute(stmt.limit(1))).scalar_one_or_none()


async def list_payments(session: AsyncSession, org_id: uuid.UUID, limit: int) -> list[BillingPayment]:
    stmt = (
        scoped(select(BillingPayment), BillingPayment, org_id)
        .order_by(BillingPayment.created_at.desc(), BillingPayment.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def ledger_entries_of_kinds(
    session: AsyncSession, org_id: uuid.UUID, kinds: tuple[str, ...], limit: int
) -> list[CreditEntry]:
    stmt = (
        scoped(select(CreditEntry), CreditEntry, org_id)
        .where(CreditEntry.kind.in_(kinds))
        .order_by(CreditEntry.created_at.desc(), CreditEntry.id.desc())
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


# ------------------------------------------------------------------ promotions


async def list_promotions(session: AsyncSession, org_id: uuid.UUID) -> list[CreditPromotion]:
    stmt = scoped(select(CreditPromotion), CreditPromotion, org_id).order_by(
        CreditPromotion.granted_at, CreditPromotion.id
    )
    return list((await session.execute(stmt.execution_options(populate_existing=True))).scalars())


async def orgs_with_promotions_due(session: AsyncSession, now: datetime) -> list[uuid.UUID]:
    stmt = (
        select(CreditPromotion.organization_id)
        .where(CreditPromotion.expired_at.is_(None), CreditPromotion.expires_at <= now)
        .distinct()
    )
    return list((await session.execute(stmt)).scalars())


async def spend_between(session: AsyncSession, org_id: uuid.UUID, start: datetime, end: datetime) -> int:
    """Credits consumed by usage in ``[start, end)`` (a positive number)."""
    stmt = scoped(select(func.coalesce(func.sum(CreditEntry.amount_nanousd), 0)), CreditEntry, org_id).where(
        CreditEntry.kind == "consumption", CreditEntry.created_at >= start, CreditEntry.created_at < end
    )
    return -int(await session.scalar(stmt) or 0)


async def mark_promotion_expired(
    session: AsyncSession, org_id: uuid.UUID, promotion_id: uuid.UUID, amount: int, at: datetime
) -> bool:
    result = await session.execute(
        update(CreditPromotion)
        .where(
            CreditPromotion.organization_id == org_id,
            CreditPromotion.id == promotion_id,
            CreditPromotion.expired_at.is_(None),
        )
        .values(expired_at=at, expired_nanousd=amount)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


# ------------------------------------------------------------------ invoices


async def get_invoice(session: AsyncSession, org_id: uuid.UUID, invoice_id: uuid.UUID) -> Invoice | None:
    stmt = scoped(select(Invoice), Invoice, org_id).where(Invoice.id == invoice_id)
    return (await session.execute(stmt.execution_options(populate_existing=True))).scalar_one_or_none()


async def list_invoices(session: AsyncSession, org_id: uuid.UUID, limit: int) -> list[Invoice]:
    stmt = (
        scoped(select(Invoice), Invoice, org_id)
        .order_by(Invoice.created_at.desc(), Invoice.id.desc())
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(stmt)).scalars())


async def invoice_lines(session: AsyncSession, org_id: uuid.UUID, invoice_id: uuid.UUID) -> list[InvoiceLine]:
    stmt = (
        scoped(select(InvoiceLine), InvoiceLine, org_id)
        .where(InvoiceLine.invoice_id == invoice_id)
        .order_by(InvoiceLine.position, InvoiceLine.id)
    )
    return list((await session.execute(stmt)).scalars())


async def open_invoices_due(session: AsyncSession, now: datetime) -> list[Invoice]:
    stmt = select(Invoice).where(
        Invoice.status == "open", Invoice.purpose == "subscription", Invoice.due_at <= now
    )
    return list((await session.execute(stmt)).scalars())


async def set_invoice_status(
    session: AsyncSession,
    org_id: uuid.UUID,
    invoice_id: uuid.UUID,
    *,
    from_: tuple[str, ...],
    to: str,
    at: datetime,
) -> bool:
    """Move an invoice between statuses once; False when it was not in one of ``from_``."""
    values: dict[str, Any] = {"status": to}
    if to == "paid":
        values["paid_at"] = at
    elif to in ("void", "uncollectible"):
        values["voided_at"] = at
    result = await session.execute(
        update(Invoice)
        .where(Invoice.organization_id == org_id, Invoice.id == invoice_id, Invoice.status.in_(from_))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def next_invoice_number(session: AsyncSession, issuer: str, year: int) -> int:
    """The next number of ``issuer`` in ``year``: one UPDATE ... RETURNING on the counter row.

    The UPDATE holds the row until the transaction ends (PostgreSQL row lock; SQLite's write lock), so
    concurrent finalizations take turns and a rolled-back one frees its number: no gaps, no duplicates.
    """
    await session.execute(
        _insert(session)(InvoiceCounter)
        .values(issuer=issuer, year=year, last_number=0)
        .on_conflict_do_nothing(index_elements=["issuer", "year"])
    )
    result = await session.execute(
        update(InvoiceCounter)
        .where(InvoiceCounter.issuer == issuer, InvoiceCounter.year == year)
        .values(last_number=InvoiceCounter.last_number + 1)
        .returning(InvoiceCounter.last_number)
        .execution_options(synchronize_session=False)
    )
    return int(result.scalar_one())


async def usage_by_model(
    session: AsyncSession, org_id: uuid.UUID, start: date, end: date
) -> list[tuple[str, int, int]]:
    """(model, requests, cost) of the days in ``[start, end)``, from the daily rollup, costliest first."""
    cost = func.sum(UsageDayModel.cost_nanousd)
    stmt = (
        scoped(select(UsageDayModel.model_id, func.sum(UsageDayModel.requests), cost), UsageDayModel, org_id)
        .where(UsageDayModel.day >= start, UsageDayModel.day < end)
        .group_by(UsageDayModel.model_id)
        .order_by(cost.desc(), UsageDayModel.model_id)
    )
    return [(m, int(r or 0), int(c or 0)) for m, r, c in await session.execute(stmt)]
