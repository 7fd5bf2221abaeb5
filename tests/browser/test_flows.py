"""End-to-end flows in headless Chromium against a real ``tokenboard serve`` (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support.live_server import LiveServer

pytestmark = pytest.mark.browser

DEMO_PASSWORD = "tokenboard-demo"
PASSWORD = "correct-horse-battery"


def unique_email(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}@example.com"


def log_in(page: Page, server: LiveServer, email: str, password: str = DEMO_PASSWORD) -> None:
    page.goto(f"{server.url}/login")
    page.fill("form[action='/login'] input[name=email]", email)
    page.fill("form[action='/login'] input[name=password]", password)
    with page.expect_navigation():
        page.click("form[action='/login'] button[type=submit]")


def at(server: LiveServer, path: str) -> re.Pattern[str]:
    """Matches ``path`` on the server, with or without a query string (flash notices travel in it)."""
    return re.compile(re.escape(server.url + path) + r"(\?.*)?$")


def org_id_from(page: Page) -> str:
    match = re.search(r"/organizations/([0-9a-f-]{36})/", page.url)
    assert match, f"not on an organization page: {page.url}"
    return match.group(1)


def invitation_link(server: LiveServer, email: str) -> str:
    """The accept link of the last invitation email to ``email`` (no SMTP: mail goes to the server log)."""
    log = server.log()
    start = log.rfind(f"email to {email}")
    assert start >= 0, f"no invitation email to {email} in the server log:\n{log[-3000:]}"
    match = re.search(r"http://127\.0\.0\.1:\d+/invitations/accept\?token=tbi_[A-Za-z0-9_\-]+", log[start:])
    assert match, f"no accept link after the email to {email}:\n{log[start : start + 2000]}"
    return match.group(0)


def test_signup_create_org_invite_accept_and_change_role(
    server: LiveServer, new_context: object, artifacts_dir: Path
) -> None:
    owner_email = unique_email("owner")
    invitee_email = unique_email("invitee")
    org_name = f"Browser Org {uuid.uuid4().hex[:6]}"

    # -- context 1: sign up, create an organization, invite a member
    owner = new_context().new_page()  # type: ignore[operator]
    owner.goto(f"{server.url}/signup")
    owner.fill("form[action='/signup'] input[name=name]", "Nora Newcomb")
    owner.fill("form[action='/signup'] input[name=email]", owner_email)
    owner.fill("form[action='/signup'] input[name=password]", PASSWORD)
    with owner.expect_navigation():
        owner.click("form[action='/signup'] button[type=submit]")
    expect(owner).to_have_url(re.compile(r"/organizations\?welcome=1$"))
    expect(owner.locator("h1")).to_have_text("Your organizations")

    owner.fill("form[action='/organizations'] input[name=name]", org_name)
    with owner.expect_navigation():
        owner.click("form[action='/organizations'] button[type=submit]")
    expect(owner).to_have_url(re.compile(r"/organizations/[0-9a-f-]{36}/overview"))
    org_id = org_id_from(owner)
    expect(owner.locator(".flash.notice")).to_have_text(f"{org_name} is ready.")
    expect(owner.locator("h1")).to_have_text("Dashboard")
    expect(owner.locator("[data-card=members] [data-value=seats]")).to_have_text("1 of 10")

    owner.click("#sidebar a:has-text('Members')")
    expect(owner).to_have_url(at(server, f"/organizations/{org_id}/members"))
    invite = owner.locator(f"form[action='/organizations/{org_id}/invitations']")
    invite.locator("input[name=email]").fill(invitee_email)
    invite.locator("select[name=role]").select_option("member")
    with owner.expect_navigation():
        invite.locator("button[type=submit]").click()
    expect(owner.locator(".flash.notice")).to_have_text(f"Invitation sent to {invitee_email}.")
    expect(owner.locator(f"tr[data-invitation='{invitee_email}'] td[data-label=Role]")).to_have_text("member")

    link = invitation_link(server, invitee_email)
    assert link.startswith(f"{server.url}/invitations/accept?token=tbi_")

    # -- context 2: a stranger opens the link and signs up to accept
    invitee = new_context().new_page()  # type: ignore[operator]
    invitee.goto(link)
    expect(invitee.locator("h1")).to_have_text("Invitation")
    expect(invitee.locator("section.card")).to_contain_text(
        f"invited {invitee_email} to join {org_name} as member"
    )
    with invitee.expect_navigation():
        invitee.click("a:has-text('Sign up to accept')")
    expect(invitee).to_have_url(re.compile(r"/signup\?invitation=tbi_"))
    expect(invitee.locator("text=You are signing up to accept an invitation.")).to_be_visible()
    expect(invitee.locator("form[action='/signup'] input[name=email]")).to_have_value(invitee_email)
    invitee.fill("form[action='/signup'] input[name=name]", "Ivan Invitee")
    invitee.fill("form[action='/signup'] input[name=password]", PASSWORD)
    with invitee.expect_navigation():
        invitee.click("form[action='/signup'] button[type=submit]")
    expect(invitee).to_have_url(at(server, f"/organizations/{org_id}/overview"))
    expect(invitee.locator(".sidebar-org")).to_contain_text(org_name)
    expect(invitee.locator(".sidebar-org .role-badge")).to_have_text(re.compile(r"^member$", re.I))
    expect(invitee.locator("[data-card=members] [data-value=seats]")).to_have_text("2 of 10")

    # -- back in context 1: promote the new member to admin
    owner.goto(f"{server.url}/organizations/{org_id}/members")
    expect(owner.locator(f"tr[data-invitation='{invitee_email}']")).to_have_count(0)
    row = owner.locator(f"tr[data-member='{invitee_email}']")
    expect(row.locator("select[name=role]")).to_have_value("member")
    row.locator("select[name=role]").select_option("admin")
    with owner.expect_navigation():
        row.locator("form[action$='/role'] button[type=submit]").click()
    expect(owner).to_have_url(at(server, f"/organizations/{org_id}/members"))
    expect(owner.locator(".flash.notice")).to_have_text("Role changed.")
    expect(owner.locator(f"tr[data-member='{invitee_email}'] select[name=role]")).to_have_value("admin")
    expect(owner.locator("[data-value=seats]")).to_have_text("2 of 10")

    # -- the overview cards
    owner.click("#sidebar a:has-text('Dashboard')")
    expect(owner).to_have_url(at(server, f"/organizations/{org_id}/overview"))
    org_card = owner.locator("[data-card=organization]")
    expect(org_card).to_contain_text(org_name)
    expect(org_card).to_contain_text("Nora Newcomb")
    expect(org_card.locator("#org-id")).to_have_text(org_id)
    expect(org_card.get_by_role("button", name="Copy organization ID")).to_have_text("Copy")
    expect(org_card.locator("[data-value=team-size]")).to_have_text("2")
    members_card = owner.locator("[data-card=members]")
    expect(members_card.locator("[data-value=seats]")).to_have_text("2 of 10")
    expect(members_card.locator("[data-role=owner]")).to_have_text("1")
    expect(members_card.locator("[data-role=admin]")).to_have_text("1")
    expect(owner.locator("[data-card=workspaces]")).to_be_visible()
    expect(owner.locator("[data-card=workspaces] [data-value=workspaces-total]")).to_have_text("0")
    activity = owner.locator("[data-card=activity] ul.activity")
    expect(activity).to_contain_text("member role changed")
    expect(activity).to_contain_text("member joined")
    expect(activity).to_contain_text("invitation created")
    owner.screenshot(path=str(artifacts_dir / f"overview-{server.backend}.png"), full_page=True)


def test_demo_overview_on_a_phone(server: LiveServer, new_context: object, artifacts_dir: Path) -> None:
    context = new_context(  # type: ignore[operator]
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    log_in(page, server, "owner@demo.tokenboard.dev")
    expect(page).to_have_url(re.compile(r"/organizations/[0-9a-f-]{36}/overview$"))
    expect(page.locator("[data-card=organization]")).to_contain_text("Acme AI Lab")
    for card in ("organization", "workspaces", "members", "activity"):
        expect(page.locator(f"[data-card={card}]")).to_be_visible()
    # Nothing may overflow the phone's width sideways.
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"page is {overflow}px wider than the 390px viewport"
    page.screenshot(path=str(artifacts_dir / f"overview-phone-{server.backend}.png"))


WIDER_THAN_VIEWPORT = """(width) => Array.from(document.querySelectorAll('body *'))
    .filter(e => e.getBoundingClientRect().right > width + 1).slice(0, 6)
    .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"""


@pytest.mark.parametrize("width", [375, 775, 1100])
def test_no_sidebar_page_scrolls_sideways(server: LiveServer, new_context: object, width: int) -> None:
    """Every page of the sidebar, as the demo owner: wide tables scroll in their box, the page never sideways.

    775 px is just above the phone layout (the sidebar shows and the content is narrowest); 1100 px is where
    the members table, wider than its card, once let its visually hidden "Actions" label widen the page.
    """
    page = new_context(viewport={"width": width, "height": 800}).new_page()  # type: ignore[operator]
    log_in(page, server, "owner@demo.tokenboard.dev")
    links = page.locator("#sidebar nav a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert len(links) >= 8, links
    too_wide = {}
    for href in links:
        page.goto(server.url + href)
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        if scroll_width > width:
            too_wide[href] = (scroll_width, page.evaluate(WIDER_THAN_VIEWPORT, width))
    assert not too_wide, f"pages wider than {width}px: {too_wide}"


def test_member_role_cannot_see_or_open_admin_pages(server: LiveServer, new_context: object) -> None:
    page = new_context().new_page()  # type: ignore[operator]
    log_in(page, server, "dev@demo.tokenboard.dev")
    expect(page).to_have_url(re.compile(r"/organizations/[0-9a-f-]{36}/overview$"))
    org_id = org_id_from(page)
    sidebar = page.locator("#sidebar nav")
    expect(sidebar.get_by_role("link", name="Members")).to_be_visible()
    expect(sidebar.get_by_role("link", name="Activity log")).to_have_count(0)
    expect(sidebar.get_by_role("link", name="Settings")).to_have_count(0)
    expect(page.locator("[data-card=activity]")).to_have_count(0)

    response = page.goto(f"{server.url}/organizations/{org_id}/settings")
    assert response is not None
    assert response.status == 403
    expect(page.locator("h1")).to_have_text("Not allowed")
    expect(page.locator(".error-page")).to_contain_text("Error 403")
