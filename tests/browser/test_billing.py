"""Billing in headless Chromium against a real ``tokenboard serve`` with the demo (offline provider).

The owner buys credits and records the payment (the demo's offline flow), adds a seat after reading the
proration preview, and downloads an invoice PDF whose text is checked. Screenshots in test-artifacts/.
"""

from __future__ import annotations

import io
import re
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from pypdf import PdfReader

from tests.browser.test_flows import log_in, org_id_from
from tests.support.live_server import LiveServer

pytestmark = pytest.mark.browser


def dollars(text: str) -> Decimal:
    return Decimal(re.sub(r"[^0-9.\-]", "", text))


def test_buy_credits_add_a_seat_and_download_an_invoice(
    server: LiveServer, new_context: object, artifacts_dir: Path
) -> None:
    page: Page = new_context(viewport={"width": 1280, "height": 900}).new_page()  # type: ignore[operator]
    log_in(page, server, "owner@demo.tokenboard.dev")
    org_id = org_id_from(page)
    expect(page.locator('[data-card="plan"]')).to_be_visible()  # the overview's billing card

    # -- buy a $100 bundle: pending until the payment is recorded, then available
    page.click("#sidebar a:has-text('Billing')")
    expect(page.locator("h1")).to_have_text("Billing")
    before = dollars(page.locator('[data-value="available"]').inner_text())
    page.check("#buy-credits input[name=amount_usd][value='100']")
    with page.expect_navigation():
        page.click("#buy-credits button[type=submit]")
    expect(page.locator(".flash.notice")).to_contain_text("awaiting payment")
    assert dollars(page.locator('[data-value="available"]').inner_text()) == before  # pending grants nothing
    row = page.locator("#pending-purchases tbody tr").first
    expect(row).to_contain_text("$100.00")
    row.locator("input[name=reference]").fill("BANK-TRANSFER-42")
    with page.expect_navigation():
        row.locator("button:has-text('Record payment')").click()
    expect(page.locator(".flash.notice")).to_contain_text("Payment recorded")
    after = dollars(page.locator('[data-value="available"]').inner_text())
    assert after - before >= Decimal("99.99"), (before, after)  # demo traffic may spend a little meanwhile
    expect(page.locator("#purchase-history")).to_contain_text("paid")
    page.screenshot(path=str(artifacts_dir / f"billing-credits-{server.backend}.png"), full_page=True)

    # -- add a seat: the preview explains the prorated charge before anything changes
    page.click("#sidebar a:has-text('Subscription')")
    expect(page.locator("h1")).to_have_text("Subscription")
    seats = int(re.match(r"\d+", page.locator('[data-value="seats"]').inner_text()).group(0))  # type: ignore[union-attr]
    page.fill("#seat-preview-form input[name=seats]", str(seats + 1))
    with page.expect_navigation():
        page.click("#seat-preview-form button[type=submit]")
    preview = page.locator("#seat-preview")
    expect(preview).to_contain_text("Adding 1 seat now")
    expect(preview).to_contain_text("Charged today")
    expect(page.locator('[data-value="seats"]')).to_contain_text(str(seats))
    page.screenshot(path=str(artifacts_dir / f"billing-seat-preview-{server.backend}.png"), full_page=True)
    with page.expect_navigation():
        preview.locator(f"button:has-text('Confirm {seats + 1} seats')").click()
    expect(page.locator(".flash.notice")).to_contain_text(f"Seats set to {seats + 1}")
    expect(page.locator('[data-value="seats"]')).to_contain_text(str(seats + 1))
    expect(page.locator("#seat-history")).to_contain_text("Adding 1 seat now")

    # -- download the seat invoice's PDF and read it
    page.goto(f"{server.url}/organizations/{org_id}/invoices")
    first = page.locator("#invoices tbody tr").first
    expect(first).to_contain_text("subscription")
    number = first.locator("td").first.inner_text()
    assert re.fullmatch(r"TB-\d{4}-\d{6}", number), number
    with page.expect_download() as info:
        first.locator("a:has-text('Download')").click()
    download = info.value
    data = Path(download.path()).read_bytes()
    assert data.startswith(b"%PDF")
    (artifacts_dir / f"invoice-{server.backend}.pdf").write_bytes(data)
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
    assert f"Invoice {number}" in text and "seat(s) added" in text and "Total (USD)" in text, text
    page.screenshot(path=str(artifacts_dir / f"billing-invoices-{server.backend}.png"), full_page=True)
