"""``tokenboard billing ...``: what an operator reaches for (payments, refunds, adjustments, promotions, the
billing job). Mounted on the main command by :mod:`tokenboard.cli`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.config import get_settings

if TYPE_CHECKING:
    from tokenboard.audit.service import Actor
    from tokenboard.billing.service import BillingOverview
    from tokenboard.models import Invoice

T = TypeVar("T")
billing_app = typer.Typer(
    help="Billing: record payments, refunds, adjustments, promotions; run renewals and dunning.",
    no_args_is_help=True,
)
console = Console()


def _actor() -> Actor:
    from tokenboard.audit.service import Actor
    from tokenboard.kit.context import SYSTEM_CLIENT

    return Actor(user_id=None, label="cli", client=SYSTEM_CLIENT)


OrgOption = Annotated[str, typer.Option("--org", help="Organization id.")]


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]Error:[/red] {message}", highlight=False)
    return typer.Exit(code=1)


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise _fail(f"{value!r} is not a {what} id.") from exc


def _usd(value: str) -> int:
    from tokenboard.billing.endpoints import usd
    from tokenboard.kit.errors import BadRequest

    try:
        return usd(value)
    except BadRequest as exc:
        raise _fail(f"{value!r} is not an amount in USD, such as 25 or 12.50.") from exc


def _run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from tokenboard.kit.errors import TokenboardError
    from tokenboard.kit.uow import run_in_unit_of_work

    try:
        return asyncio.run(run_in_unit_of_work(get_settings(), work))
    except TokenboardError as exc:
        raise _fail(exc.message) from exc


@billing_app.command("show")
def show(org: OrgOption) -> None:
    """Balance, subscription, purchases awaiting payment and open invoices of an organization."""
    from tokenboard.billing import repository
    from tokenboard.billing.service import billing
    from tokenboard.kit.errors import NotFound
    from tokenboard.kit.money import format_usd

    org_id = _uuid(org, "organization")

    async def work(s: AsyncSession) -> tuple[BillingOverview, list[Invoice]]:
        organization = await repository.get_org(s, org_id)
        if organization is None:
            raise NotFound(f"No organization {org_id}.")
        return await billing.overview(s, organization, get_settings()), await repository.list_invoices(
            s, org_id, 50
        )

    view, invoices = _run(work)
    sub = view.subscription.subscription
    console.print(
        f"balance {format_usd(view.balance.balance_nanousd)}, "
        f"available {format_usd(view.balance.available_nanousd)}; "
        f"{view.subscription.plan.name} {sub.frequency}, {sub.seats} seats, {sub.status} ({view.status}), "
        f"period {sub.current_period_start:%Y-%m-%d} to {sub.current_period_end:%Y-%m-%d}",
        highlight=False,
    )
    table = Table(title="Purchases and invoices awaiting payment")
    for column in ("kind", "id", "invoice", "amount", "created"):
        table.add_column(column)
    for p in view.purchases:
        if p.status == "pending":
            table.add_row(
                "purchase",
                str(p.id),
                str(p.invoice_id),
                format_usd(p.amount_nanousd),
                f"{p.created_at:%Y-%m-%d}",
            )
    for i in invoices:
        if i.status == "open":
            table.add_row(
                f"invoice {i.number}", "", str(i.id), format_usd(i.total_nanousd), f"{i.created_at:%Y-%m-%d}"
            )
    console.print(table)


@billing_app.command("record-payment")
def record_payment(
    org: OrgOption,
    reference: Annotated[str, typer.Option(help="The payment's reference (bank transfer id); applied once.")],
    purchase: Annotated[str | None, typer.Option(help="Credit purchase id that was paid.")] = None,
    invoice: Annotated[str | None, typer.Option(help="Invoice id that was paid.")] = None,
    amount: Annotated[
        str | None, typer.Option(help="Amount received in USD (default: the invoice total).")
    ] = None,
) -> None:
    """Record a payment received outside Tokenboard: grants a purchase's credits or settles an invoice."""
    from tokenboard.billing import repository
    from tokenboard.billing.payments import apply_payment
    from tokenboard.kit.errors import NotFound

    org_id = _uuid(org, "organization")
    if (purchase is None) == (invoice is None):
        raise _fail("Give --purchase or --invoice.")
    nanousd = _usd(amount) if amount else None

    async def work(s: AsyncSession) -> bool:
        invoice_id = _uuid(invoice, "invoice") if invoice else None
        if purchase is not None:
            found = await repository.get_purchase(s, org_id, _uuid(purchase, "purchase"))
            if found is None or found.invoice_id is None:
                raise NotFound("No such purchase in that organization.")
            invoice_id = found.invoice_id
        assert invoice_id is not None
        result = await apply_payment(
            s,
            org_id,
            provider="offline",
            event_id=reference,
            invoice_id=invoice_id,
            amount_nanousd=nanousd,
            provider_reference=reference,
            actor=_actor(),
        )
        return result.applied

    applied = _run(work)
    console.print(
        "[green]Payment applied[/green]" if applied else "[yellow]Already recorded: nothing changed[/yellow]"
    )


@billing_app.command("payment-failed")
def payment_failed(
    org: OrgOption,
    invoice: Annotated[str, typer.Option(help="Subscription invoice id whose payment failed.")],
    reason: Annotated[str, typer.Option(help="Why (shown to the billing contacts).")] = "payment failed",
) -> None:
    """Record a failed subscription payment: opens the grace period, then suspension."""
    from tokenboard.billing.payments import record_payment_failure

    org_id, invoice_id = _uuid(org, "organization"), _uuid(invoice, "invoice")
    sub = _run(
        lambda s: record_payment_failure(
            s, org_id, invoice_id=invoice_id, reason=reason, settings=get_settings(), actor=_actor()
        )
    )
    console.print(
        f"Subscription is {sub.status if sub else 'absent'}"
        + (f"; grace until {sub.grace_until:%Y-%m-%d %H:%M} UTC" if sub and sub.grace_until else "")
    )


@billing_app.command("refund")
def refund(
    org: OrgOption,
    purchase: Annotated[str, typer.Option(help="Paid credit purchase id.")],
    amount: Annotated[str, typer.Option(help="Amount refunded in USD; exactly this is clawed back.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the ledger and the audit log).")],
) -> None:
    """Refund part or all of a credit purchase and claw back exactly that many credits."""
    from tokenboard.billing.credits import credits
    from tokenboard.kit.money import format_usd

    org_id, purchase_id, nanousd = _uuid(org, "organization"), _uuid(purchase, "purchase"), _usd(amount)
    done = _run(
        lambda s: credits.refund(
            s,
            org_id,
            purchase_id,
            amount_nanousd=nanousd,
            reason=reason,
            settings=get_settings(),
            actor=_actor(),
        )
    )
    console.print(f"[green]Refunded {format_usd(done)}[/green]")


@billing_app.command("adjust")
def adjust(
    org: OrgOption,
    amount: Annotated[str, typer.Option(help="USD; negative removes credits, e.g. -12.50.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the ledger and the audit log).")],
) -> None:
    """Correct an organization's credits up or down, with a reason."""
    from tokenboard.billing.credits import credits
    from tokenboard.kit.money import format_usd

    org_id, nanousd = _uuid(org, "organization"), _usd(amount)
    _run(
        lambda s: credits.adjust(
            s, org_id, amount_nanousd=nanousd, reason=reason, settings=get_settings(), actor=_actor()
        )
    )
    console.print(f"[green]Adjusted by {format_usd(nanousd)}[/green]")


@billing_app.command("promote")
def promote(
    org: OrgOption,
    amount: Annotated[str, typer.Option(help="Promotional credits in USD.")],
    expires: Annotated[str, typer.Option(help="Expiry day, YYYY-MM-DD (UTC, end of day).")],
    reason: Annotated[str, typer.Option(help="Why (a launch offer, a goodwill gesture).")] = "promotion",
) -> None:
    """Grant promotional credits that expire; the unspent part is taken back at expiry."""
    from tokenboard.billing.credits import credits
    from tokenboard.kit.money import format_usd

    org_id, nanousd = _uuid(org, "organization"), _usd(amount)
    try:
        day = datetime.strptime(expires, "%Y-%m-%d").replace(hour=23, minute=59, second=59, tzinfo=UTC)
    except ValueError as exc:
        raise _fail(f"{expires!r} is not a day such as 2026-12-31.") from exc
    _run(
        lambda s: credits.grant_promotion(
            s, org_id, amount_nanousd=nanousd, expires_at=day, reason=reason, actor=_actor()
        )
    )
    console.print(f"[green]Granted {format_usd(nanousd)}[/green] until {day:%Y-%m-%d %H:%M} UTC")


@billing_app.command("expire-promotions")
def expire_promotions(
    org: Annotated[str | None, typer.Option("--org", help="Organization id (default: every one).")] = None,
) -> None:
    """Post the unspent part of every expired promotion as its own ledger entry (safe to run again)."""
    from tokenboard.billing import repository
    from tokenboard.billing.credits import credits
    from tokenboard.kit.db import utcnow
    from tokenboard.kit.money import format_usd

    only = _uuid(org, "organization") if org else None

    async def work(s: AsyncSession) -> int:
        ids = [only] if only else await repository.orgs_with_promotions_due(s, utcnow())
        return sum([await credits.expire_promotions(s, org_id, settings=get_settings()) for org_id in ids])

    console.print(f"Expired {format_usd(_run(work))} of unspent promotional credits")


@billing_app.command("run")
def run(
    now: Annotated[
        str | None, typer.Option(help="Pretend it is this moment (ISO 8601, UTC), for tests.")
    ] = None,
) -> None:
    """The billing job (run it from cron every few minutes): renewals, dunning, expiry, balance alerts."""
    from tokenboard.billing.service import billing
    from tokenboard.kit.money import format_usd

    moment = None
    if now is not None:
        try:
            moment = datetime.fromisoformat(now)
        except ValueError as exc:
            raise _fail(f"{now!r} is not an ISO 8601 moment.") from exc
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    report = _run(lambda s: billing.run(s, settings=get_settings(), actor=_actor(), now=moment))
    console.print(
        f"{report.renewed} periods renewed, {report.dunning_changes} dunning changes, "
        f"{format_usd(report.expired_nanousd)} of promotions expired, {report.watched} balances watched"
    )


@billing_app.command("invoice-status")
def invoice_status(
    org: OrgOption,
    invoice: Annotated[str, typer.Option(help="Open invoice id.")],
    status: Annotated[str, typer.Option(help="void or uncollectible.")],
) -> None:
    """Void an open invoice or write it off as uncollectible (its number stays used)."""
    from tokenboard.billing.invoices import invoices
    from tokenboard.kit.db import utcnow

    org_id, invoice_id = _uuid(org, "organization"), _uuid(invoice, "invoice")
    done = _run(lambda s: invoices.set_status(s, org_id, invoice_id, status, utcnow()))
    console.print(f"Invoice {done.number} is {done.status}")
