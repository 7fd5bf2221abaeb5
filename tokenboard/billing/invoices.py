"""Invoices: drafted with their lines, finalized with tax and a gapless number, then paid or voided.

Tax: computed once per invoice on the subtotal, ``round_half_even(subtotal * rate_bps / 10_000)`` to the
nano-USD, with the rate (basis points), country and tax id of the organization's billing profile at
finalization (later profile changes never alter an issued invoice).

Numbers: ``<issuer>-<year>-<000001>``, allocated at finalization from a counter row per issuer and year
incremented in the same transaction (see :func:`repository.next_invoice_number`). Drafts have no number;
void and uncollectible invoices keep theirs, so the sequence never has a hole.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.billing import repository
from tokenboard.kit.errors import Conflict, NotFound
from tokenboard.models import BillingProfile, Invoice, InvoiceLine

STATUSES = ("draft", "open", "paid", "void", "uncollectible")


def tax_for(subtotal_nanousd: int, rate_bps: int) -> int:
    """``subtotal * rate_bps / 10_000`` rounded half-even to the nano-USD, in integers only."""
    quotient, remainder = divmod(subtotal_nanousd * rate_bps, 10_000)
    twice = 2 * remainder
    if twice > 10_000 or (twice == 10_000 and quotient % 2 == 1):
        quotient += 1
    return quotient


@dataclass(frozen=True, slots=True)
class LineSpec:
    kind: str  # seats, proration, credit, usage, credit_note
    description: str
    amount_nanousd: int
    quantity: int = 1
    unit_amount_nanousd: int | None = None
    model_id: str | None = None


@dataclass(frozen=True, slots=True)
class InvoiceView:
    invoice: Invoice
    lines: list[InvoiceLine]


class InvoiceService:
    async def create(
        self,
        session: AsyncSession,
        org_id: uuid.UUID,
        *,
        purpose: str,
        lines: list[LineSpec],
        issuer: str,
        period: tuple[datetime, datetime] | None = None,
    ) -> Invoice:
        """A draft invoice with its lines (amounts frozen from here on)."""
        invoice = Invoice(
            organization_id=org_id,
            issuer=issuer,
            purpose=purpose,
            status="draft",
            period_start=period[0] if period else None,
            period_end=period[1] if period else None,
            subtotal_nanousd=sum(line.amount_nanousd for line in lines),
        )
        session.add(invoice)
        await session.flush()
        for position, spec in enumerate(lines):
            session.add(
                InvoiceLine(
                    organization_id=org_id,
                    invoice_id=invoice.id,
                    position=position,
                    kind=spec.kind,
                    description=spec.description[:1000],
                    quantity=spec.quantity,
                    unit_amount_nanousd=(
                        spec.unit_amount_nanousd
                        if spec.unit_amount_nanousd is not None
                        else spec.amount_nanousd
                    ),
                    amount_nanousd=spec.amount_nanousd,
                    model_id=spec.model_id,
                )
            )
        await session.flush()
        return invoice

    async def finalize(
        self,
        session: AsyncSession,
        invoice: Invoice,
        *,
        profile: BillingProfile | None,
        org_name: str,
        now: datetime,
        due_in: timedelta,
    ) -> Invoice:
        """Freeze tax and billing details, take the next number, and open the invoice for payment."""
        if invoice.status != "draft":
            raise Conflict(f"Invoice {invoice.number} is already {invoice.status}.")
        rate = profile.tax_rate_bps if profile else 0
        invoice.tax_rate_bps = rate
        invoice.tax_nanousd = tax_for(invoice.subtotal_nanousd, rate)
        invoice.total_nanousd = invoice.subtotal_nanousd + invoice.tax_nanousd
        invoice.bill_to_name = (profile.legal_name if profile and profile.legal_name else org_name)[:200]
        if profile is not None:
            invoice.bill_to_email = profile.billing_email
            invoice.bill_to_address = profile.address
            invoice.tax_country = profile.country
            invoice.tax_id = profile.tax_id
        number = await repository.next_invoice_number(session, invoice.issuer, now.year)
        invoice.number = f"{invoice.issuer}-{now.year}-{number:06d}"
        invoice.finalized_at = now
        invoice.due_at = now + due_in
        invoice.status = "open"
        await session.flush()
        if invoice.total_nanousd <= 0:  # nothing to pay (a change at the period's last second)
            await repository.set_invoice_status(
                session, invoice.organization_id, invoice.id, from_=("open",), to="paid", at=now
            )
            await session.refresh(invoice)
        return invoice

    async def get(self, session: AsyncSession, org_id: uuid.UUID, invoice_id: uuid.UUID) -> InvoiceView:
        invoice = await repository.get_invoice(session, org_id, invoice_id)
        if invoice is None:
            raise NotFound("No such invoice.")
        return InvoiceView(invoice, await repository.invoice_lines(session, org_id, invoice_id))

    async def list(self, session: AsyncSession, org_id: uuid.UUID, limit: int = 100) -> list[Invoice]:
        return await repository.list_invoices(session, org_id, limit)

    async def set_status(
        self, session: AsyncSession, org_id: uuid.UUID, invoice_id: uuid.UUID, status: str, now: datetime
    ) -> Invoice:
        """An operator voids an open invoice or writes it off as uncollectible."""
        if status not in ("void", "uncollectible"):
            raise Conflict("An invoice can only be voided or marked uncollectible by hand.")
        if not await repository.set_invoice_status(
            session, org_id, invoice_id, from_=("open",), to=status, at=now
        ):
            raise Conflict("Only an open invoice can be voided or marked uncollectible.")
        invoice = await repository.get_invoice(session, org_id, invoice_id)
        assert invoice is not None
        return invoice


invoices = InvoiceService()
