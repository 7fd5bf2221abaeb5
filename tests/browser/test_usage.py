"""The usage page in headless Chromium against a real ``tokenboard serve`` with the demo's year of usage.

Period switch, the "only my usage" toggle, expanding a row, the tokens tooltip, charts drawn, and a live
update arriving while the page is open; on a desktop and on a phone (screenshots in test-artifacts/).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_flows import log_in, org_id_from
from tests.support.live_server import LiveServer

pytestmark = pytest.mark.browser


def open_usage(page: Page, server: LiveServer, email: str) -> str:
    log_in(page, server, email)
    org_id = org_id_from(page)
    page.click("#sidebar a:has-text('Usage')")
    expect(page).to_have_url(re.compile(rf"/organizations/{org_id}/usage$"))
    expect(page.locator("h1")).to_have_text("Usage")
    return org_id


def test_usage_page_periods_toggle_rows_tooltip_charts_and_live(
    server: LiveServer, new_context: object, artifacts_dir: Path
) -> None:
    page = new_context(viewport={"width": 1280, "height": 900}).new_page()  # type: ignore[operator]
    org_id = open_usage(page, server, "owner@demo.tokenboard.dev")

    # Charts are drawn: the daily trend and the weekly pattern have marks.
    expect(page.locator("[data-chart=trend] svg .mark").first).to_be_attached()
    assert page.locator("[data-chart=trend] svg .mark").count() >= 20
    assert page.locator("[data-chart=heatmap] svg rect.mark").count() == 7 * 24

    # Hovering the tokens card shows input and output.
    tip = page.locator("[data-card=tokens] .tooltip")
    expect(tip).to_be_hidden()
    page.locator("[data-card=tokens] .has-tip").hover()
    expect(tip).to_be_visible()
    expect(tip).to_have_text(re.compile(r"^Input [\d,]+ · Output [\d,]+$"))
    assert "Input" in (page.locator("[data-card=tokens] .has-tip").get_attribute("title") or "")

    # Period switch.
    month_spend = page.locator("[data-value=spend]").inner_text()
    page.click("a[data-period=week]")
    expect(page).to_have_url(re.compile(r"period=week"))
    expect(page.locator("[data-value=period]")).to_have_text("Past week")
    expect(page.locator("a[data-period=week]")).to_have_attribute("aria-current", "true")
    week_spend = page.locator("[data-value=spend]").inner_text()
    assert week_spend != month_spend

    # The toggle: only my usage, then everyone again.
    page.check("[data-mine-toggle]")
    expect(page).to_have_url(re.compile(r"mine=true"))
    expect(page.locator(".period-label")).to_contain_text("your usage only")
    expect(page.locator("[data-chart=top-users]")).to_have_count(0)
    page.uncheck("[data-mine-toggle]")
    expect(page).not_to_have_url(re.compile(r"mine=true"))
    expect(page.locator("[data-chart=top-users] svg .mark").first).to_be_attached()

    # Expanding a By Day row loads its per-user lines.
    row = page.locator("#usage-by-day details").first
    row_id = row.get_attribute("id")
    row.locator("summary").click()
    lines = row.locator(".lines-table tbody tr")
    expect(lines.first).to_be_visible()
    expect(lines.first).to_contain_text("@demo.tokenboard.dev")
    page.screenshot(path=str(artifacts_dir / f"usage-{server.backend}.png"), full_page=True)

    # A live update: new usage through the ingest API changes the card without a reload.
    page.evaluate("window.__same_page = true")
    before = page.locator("[data-value=spend]").inner_text()
    token = page.get_attribute("meta[name=csrf-token]", "content")
    event = {
        "id": f"browser-live-{uuid.uuid4().hex[:8]}",
        "timestamp": datetime.now(UTC).isoformat(),
        "model": "openai/gpt-4o",
        "cost_nanousd": 987_654_321_000,
        "user_email": "owner@demo.tokenboard.dev",
    }
    response = page.request.post(
        f"{server.url}/api/v1/organizations/{org_id}/usage/events",
        data={"events": [event]},
        headers={"X-CSRF-Token": token or ""},
    )
    assert response.status == 200, response.text()
    expect(page.locator("[data-value=spend]")).not_to_have_text(before, timeout=10_000)
    assert page.evaluate("window.__same_page === true"), "the page reloaded instead of updating in place"
    opened = page.locator(f"#{row_id}")  # the row opened before stays open after the refresh
    expect(opened).to_have_attribute("open", "")
    expect(opened.locator(".lines-table tbody tr").first).to_be_visible()


def test_usage_page_on_a_phone_as_a_member(
    server: LiveServer, new_context: object, artifacts_dir: Path
) -> None:
    context = new_context(  # type: ignore[operator]
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    log_in(page, server, "dev@demo.tokenboard.dev")
    org_id = org_id_from(page)
    page.goto(f"{server.url}/organizations/{org_id}/usage?period=year")
    expect(page.locator("[data-mine-toggle]")).to_be_checked()
    expect(page.locator("[data-mine-toggle]")).to_be_disabled()
    expect(page.locator(".period-label")).to_contain_text("your usage only")
    expect(page.locator("[data-chart=trend] svg .mark").first).to_be_attached()
    row = page.locator("#usage-by-day details").first
    row.locator("summary").tap()
    expect(row.locator(".lines-table tbody tr")).to_have_count(1)
    expect(row.locator(".lines-table")).to_contain_text("dev@demo.tokenboard.dev")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    wide = page.evaluate(
        "Array.from(document.querySelectorAll('main *'))"
        ".filter(e => e.getBoundingClientRect().right > 391).slice(0, 8)"
        ".map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"
    )
    assert overflow <= 0, f"page is {overflow}px wider than the 390px viewport: {wide}"
    page.screenshot(path=str(artifacts_dir / f"usage-phone-{server.backend}.png"), full_page=True)
