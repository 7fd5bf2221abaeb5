"""Invoices: gapless numbers under concurrency (both engines), tax rounding, and the PDF's text."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta

from pypdf import PdfReader
from sqlalchemy.ext.asyncio import AsyncSession

from tests.billing.conftest import ACTOR, USD, billing_org
from tests.support.factories import Factory
from tokenboard.billing import repository
from tokenboard.billing.invoices import LineSpec, invoices, tax_for
from tokenboard.billing.pdf import render_invoice
from tokenboard.billing.service import billing
from tokenboard.config import Settings
from tokenboard.kit.db import utcnow
from tokenboard.models import Organization


def test_tax_is_rounded_half_even_once_on_the_subtotal() -> None:
    assert tax_for(100 * USD, 1900) == 19 * USD
    assert tax_for(1, 5000) == 0  # 0.5 -> 0
    assert tax_for(3, 5000) == 2  # 1.5 -> 2
    assert tax_for(9_321_428_571, 2000) == 1_864_285_714  # 1,864,285,714.2 -> ...714
    assert tax_for(29 * USD, 0) == 0


async def _finalize_one(app: object, org: Organization, *, rollback: bool = False) -> str | None:
    async with app.state.sessionmaker() as session:  # type: ignore[attr-defined]
        invoice = await invoices.create(
            session, org.id, purpose="credits", issuer="TST", lines=[LineSpec("credit", "Credits", 10 * USD)]
        )
        await invoices.finalize(
            session, invoice, profile=None, org_name=org.name, now=utcnow(), due_in=timedelta(days=7)
        )
        number = invoice.number
        if rollback:
            await session.rollback()
            return None
        await session.commit()
        return number


async def test_numbers_have_no_gaps_or_duplicates_under_concurrency(app: object, factory: Factory) -> None:
    org_a, _ = await billing_org(factory, "Numbers A")
    org_b, _ = await billing_org(factory, "Numbers B")
    year = utcnow().year
    results = await asyncio.gather(
        *[_finalize_one(app, org_a if i % 2 else org_b, rollback=(i % 5 == 0)) for i in range(20)]
    )
    numbers = sorted(n for n in results if n is not None)
    assert len(numbers) == 16
    assert numbers == [f"TST-{year}-{i:06d}" for i in range(1, 17)]  # the rolled-back ones left no hole
    again = await _finalize_one(app, org_a)
    assert again == f"TST-{year}-000017"


async def test_invoice_pdf_shows_lines_tax_and_totals(factory: Factory, settings: Settings) -> None:
    org, _ = await billing_org(factory, "Pdf Gmbh")
    await factory.run(
        lambda s: billing.update_profile(
            s,
            org.id,
            actor=ACTOR,
            settings=settings,
            legal_name="Pdf GmbH",
            country="de",
            tax_id="DE123456789",
            tax_rate_bps=1900,
            address="Hauptstraße 1, Berlin",
        )
    )

    async def make(s: AsyncSession) -> object:
        invoice = await invoices.create(
            s,
            org.id,
            purpose="subscription",
            issuer=settings.invoice_issuer,
            lines=[
                LineSpec(
                    "seats", "12 seats, Teams monthly", 348 * USD, quantity=12, unit_amount_nanousd=29 * USD
                ),
                LineSpec(
                    "usage",
                    "Usage of openai/gpt-4o, 1,234 requests",
                    12_345_678_901,
                    model_id="openai/gpt-4o",
                ),
            ],
        )
        await invoices.finalize(
            s,
            invoice,
            profile=await repository.get_profile(s, org.id),
            org_name=org.name,
            now=utcnow(),
            due_in=timedelta(days=7),
        )
        return await invoices.get(s, org.id, invoice.id)

    view = await factory.run(make)
    invoice = view.invoice  # type: ignore[attr-defined]
    subtotal = 348 * USD + 12_345_678_901
    assert invoice.subtotal_nanousd == subtotal
    assert invoice.tax_nanousd == tax_for(subtotal, 1900) == 68_465_678_991
    assert invoice.total_nanousd == 428_811_357_892
    pdf = render_invoice(view, issuer_name="Tokenboard Test", issuer_address="1 Test Way")  # type: ignore[arg-type]
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    for expected in (
        f"Invoice {invoice.number}",
        "Tokenboard Test",
        "Pdf GmbH",
        "Hauptstraße 1, Berlin",
        "DE123456789",
        "12 seats, Teams monthly",
        "$348.00",
        "$29.00",
        "Usage of openai/gpt-4o",
        "$12.35",
        "Subtotal",
        "$360.35",
        "Tax (19%)",
        "$68.47",
        "Total (USD)",
        "$428.81",
        "DUE",
    ):
        assert expected in text, (expected, text)
