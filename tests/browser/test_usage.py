"""The usage page in headless Chromium against a real ``tokenboard serve`` with the demo's year of usage.

Period switch, the "only my usage" toggle, expanding a row, the tokens tooltip, charts drawn, the monthly
token quota set in the settings and shown, a live update arriving while the page is open, usage written
while no live stream was open caught up when it (re)opens, and no page wider than the screen; on a desktop
and on a phone (screenshots in test-artifacts/).
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Request, Route, expect
from sqlalchemy import select

from tests.browser.test_flows import log_in, org_id_from
from tests.support.databases import run_sync
from tests.support.live_server import LiveServer
from tokenboard.demo import DEMO_ORG
from tokenboard.kit.db import create_engine, create_sessionmaker
from tokenboard.models import Organization, User
from tokenboard.usage.ingest import record_events

pytestmark = pytest.mark.browser

OWNER = "owner@demo.tokenboard.dev"
LIVE_STREAM = re.compile(r"/usage/live(\?.*)?$")
STREAM_SECONDS = 2  # the server ends each stream after this (its default is 300 s); the browser reconnects


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


def set_token_quota(page: Page, server: LiveServer, org_id: str, value: str) -> None:
    """The owner types a monthly token quota on the settings page ("" for none) and saves."""
    page.goto(f"{server.url}/organizations/{org_id}/settings")
    page.fill("input[name=monthly_usage_quota_tokens]", value)
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    expect(page.locator(".flash.notice")).to_have_text("Settings saved.")


def test_token_quota_set_in_the_settings_shows_on_the_usage_page(
    server: LiveServer, new_context: object, artifacts_dir: Path
) -> None:
    """The quota view: "N / M tokens (P%)", its bar, over 100% in the warning colour; on a phone."""
    page = new_context(viewport={"width": 390, "height": 844}, is_mobile=True).new_page()  # type: ignore[operator]
    log_in(page, server, OWNER)
    org_id = org_id_from(page)
    api = f"{server.url}/api/v1/organizations/{org_id}/usage"
    tokens = page.request.get(api).json()["month"]["tokens"]
    assert tokens > 1, "the demo has usage this month"
    quota = page.locator("[data-value=quota-tokens]")
    try:
        for limit, over in ((tokens * 2 + 10, False), (tokens // 2, True)):
            set_token_quota(page, server, org_id, f"{limit:,}")
            page.goto(f"{server.url}/organizations/{org_id}/usage")
            month = page.request.get(api).json()["month"]
            assert month["quota_tokens"] == limit and (month["quota_tokens_used"] > 1) is over
            expect(quota).to_have_text(
                f"{month['tokens']:,} / {limit:,} tokens ({month['tokens'] / limit * 100:.0f}%)"
            )
            expect(quota).to_have_css("color", "rgb(201, 42, 42)" if over else "rgb(29, 36, 51)")
            expect(page.locator("[data-meter=quota-tokens]")).to_be_visible()
            expect(page.locator("[data-value=quota-tokens-projection]")).to_contain_text(
                f"projected {month['projection_tokens']:,} tokens"
            )
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"the page is {overflow}px wider than the phone"
        # The whole page: the month card is swapped in place by the live refresh the page makes on opening.
        page.screenshot(path=str(artifacts_dir / f"token-quota-{server.backend}.png"), full_page=True)
    finally:
        set_token_quota(page, server, org_id, "")
    page.goto(f"{server.url}/organizations/{org_id}/usage")
    expect(quota).to_have_count(0)
    expect(page.locator("[data-value=quota]")).to_contain_text("none set")


def ingest(page: Page, server: LiveServer, org_id: str, token: str, event_id: str) -> None:
    """One usage event through the ingest API, as the signed-in user (the server announces it at once)."""
    event = {
        "id": event_id,
        "timestamp": datetime.now(UTC).isoformat(),
        "model": "openai/gpt-4o",
        "cost_nanousd": 123_456_789,
        "user_email": OWNER,
    }
    response = page.request.post(
        f"{server.url}/api/v1/organizations/{org_id}/usage/events",
        data={"events": [event]},
        headers={"X-CSRF-Token": token},
    )
    assert response.status == 200, response.text()
    assert response.json()["accepted"] == 1


def test_usage_written_while_no_stream_is_open_shows_once_it_reopens(
    server: LiveServer, new_context: object
) -> None:
    """The server ends each live stream after a while and the browser reconnects ~2 s later; usage written
    in that gap (or between the page's rendering and its stream opening) is announced to nobody. The page
    catches up when its stream (re)opens: once, in place, without a reload."""
    page = new_context(viewport={"width": 1280, "height": 900}).new_page()  # type: ignore[operator]
    log_in(page, server, OWNER)
    org_id = org_id_from(page)
    token = page.get_attribute("meta[name=csrf-token]", "content") or ""
    report = page.request.get(f"{server.url}/api/v1/organizations/{org_id}/usage?period=month")
    requests_before = report.json()["summary"]["requests"]

    # Every (re)connection of the page's stream goes through here: the server is asked to end it after
    # STREAM_SECONDS (its real ``lifetime`` parameter), and an armed write lands while no stream is open.
    connections: list[str] = []
    armed: list[str] = []
    written_at: list[int] = []

    def connect(route: Route) -> None:
        connections.append(route.request.url)
        if armed:
            ingest(page, server, org_id, token, armed.pop())
            written_at.append(len(connections))
            time.sleep(0.6)  # past the hub's coalescing delay (0.25 s): nobody is subscribed to hear it
        url = route.request.url
        route.continue_(url=f"{url}{'&' if '?' in url else '?'}lifetime={STREAM_SECONDS}")

    refreshes: list[str] = []

    def on_request(request: Request) -> None:
        if request.headers.get("x-live-refresh") == "1" and "/usage?" in request.url:
            refreshes.append(request.url)

    page.on("request", on_request)
    page.route(LIVE_STREAM, connect)

    # 1. Written after the page was rendered, before its stream opened.
    armed.append(f"browser-gap-{uuid.uuid4().hex[:8]}")
    page.goto(f"{server.url}/organizations/{org_id}/usage?period=month")
    page.evaluate("window.__same_page = true")
    requests_card = page.locator("[data-value=requests]")
    expect(requests_card).to_have_text(f"{requests_before + 1:,}", timeout=10_000)
    assert written_at == [1], "the first write was not made while the page's stream was opening"

    # 2. Written while the browser reconnects after the server ended the stream.
    armed.append(f"browser-reconnect-{uuid.uuid4().hex[:8]}")
    expect(requests_card).to_have_text(f"{requests_before + 2:,}", timeout=4 * STREAM_SECONDS * 1000 + 5_000)
    assert len(written_at) == 2 and written_at[1] >= 2, f"not written on a reconnection: {written_at}"
    assert page.evaluate("window.__same_page === true"), "the page reloaded instead of updating in place"
    # One catch-up per (re)connection at most (no usage event reached the page): never two in a row.
    page.wait_for_timeout(500)
    assert 1 <= len(refreshes) <= len(connections), (refreshes, connections)
    page.unroute(LIVE_STREAM)


@pytest.fixture(scope="module")
def file_conversation(server: LiveServer) -> str:
    """A conversation of the demo owner's that sent a file with a long name (the demo's have no files)."""
    conversation_id = f"conv-file-{uuid.uuid4().hex[:8]}"

    async def seed() -> None:
        engine = create_engine(server.database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                org = (
                    await session.execute(select(Organization).where(Organization.name == DEMO_ORG))
                ).scalar_one()
                owner = (await session.execute(select(User).where(User.email == OWNER))).scalar_one()
                attachment = {
                    "type": "file",
                    "bytes": 1_234_567,
                    "estimated_tokens": 12_000,
                    "name": "Quarterly_Financial_Report_2025_final_version_for_the_board.pdf",
                }
                row: dict[str, Any] = {
                    "organization_id": org.id,
                    "request_id": f"{conversation_id}-1",
                    "created_at": datetime.now(UTC) - timedelta(hours=1),
                    "user_id": owner.id,
                    "model_id": "openai/gpt-4o",
                    "provider_id": "openai",
                    "input_tokens": 20_000,
                    "cached_input_tokens": 2_000,
                    "output_tokens": 300,
                    "cost_nanousd": 55_000_000,
                    "latency_ms": 900,
                    "conversation_id": conversation_id,
                    "message_id": f"{conversation_id}-m1",
                    "attachments": [attachment],
                }
                await record_events(session, [row])
                await session.commit()
        finally:
            await engine.dispose()

    run_sync(seed())
    return conversation_id


WIDE_ELEMENTS = """(width) => Array.from(document.querySelectorAll('main *'))
    .filter(e => e.getBoundingClientRect().right > width + 1).slice(0, 8)
    .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"""


@pytest.mark.parametrize("width", [375, 775, 1280])
def test_no_page_scrolls_sideways(
    server: LiveServer, new_context: object, artifacts_dir: Path, file_conversation: str, width: int
) -> None:
    """Wide tables scroll inside their card (or wrap), the page itself never scrolls sideways."""
    page = new_context(viewport={"width": width, "height": 800}).new_page()  # type: ignore[operator]
    log_in(page, server, OWNER)
    org_id = org_id_from(page)
    base = f"{server.url}/organizations/{org_id}"
    pages = {
        "usage-month": f"{base}/usage?period=month",
        "usage-year": f"{base}/usage?period=year",
        "conversations": f"{base}/usage/conversations",
        "conversation-file": f"{base}/usage/conversations/{file_conversation}",
    }
    for name, url in pages.items():
        page.goto(url)
        if name == "usage-month":
            expect(page.locator("[data-breakdown] table").first).to_be_visible()
        if name == "conversation-file":
            expect(page.locator("table.files")).to_contain_text("Quarterly_Financial_Report")
            page.locator("details.cost-calculation summary").first.click()
            expect(page.locator("table.cost-lines").first).to_be_visible()
        page.screenshot(
            path=str(artifacts_dir / f"width-{width}-{name}-{server.backend}.png"), full_page=True
        )
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        inner_width = page.evaluate("window.innerWidth")
        assert scroll_width <= inner_width, (
            f"{name} is {scroll_width}px wide at {inner_width}px: {page.evaluate(WIDE_ELEMENTS, inner_width)}"
        )
