"""Billing pages: what each role sees, the seat preview before confirming, the overview's billing cards."""

from __future__ import annotations

import re

from tests.support.factories import Factory
from tokenboard.members.roles import Role

HTML = {"accept": "text/html"}


async def test_overview_cards_only_for_billing_roles(factory: Factory) -> None:
    setup = await factory.org_with_roles("Cards Co")
    for role, shown in (
        (Role.owner, True),
        (Role.billing_manager, True),
        (Role.admin, True),
        (Role.member, False),
    ):
        async with await factory.client_for(setup.users[role]) as client:
            page = await client.get(f"/organizations/{setup.id}/overview", headers=HTML)
            assert page.status_code == 200
            assert ('data-card="plan"' in page.text) is shown, role
            assert ("Add credits" in page.text) is (role in (Role.owner, Role.billing_manager)), role
            assert ('href="/organizations/' + str(setup.id) + '/billing"' in page.text) is shown, role


async def test_buy_credits_record_payment_and_preview_seats_through_the_pages(factory: Factory) -> None:
    setup = await factory.org_with_roles("Pages Co", seats=10)
    base = f"/organizations/{setup.id}"
    async with await factory.client_for(setup.users[Role.owner]) as client:
        bad = await client.post(f"{base}/billing/purchases", data={"custom_usd": "3"})
        assert bad.status_code == 303 and "error=" in bad.headers["location"]
        bought = await client.post(f"{base}/billing/purchases", data={"amount_usd": "50"})
        assert bought.status_code == 303 and "awaiting+payment" in bought.headers["location"]
        page = await client.get(f"{base}/billing", headers=HTML)
        purchase = re.search(r'data-purchase="([0-9a-f-]{36})"', page.text)
        assert purchase and "$0.00" in page.text
        paid = await client.post(
            f"{base}/billing/purchases/{purchase.group(1)}/payments", data={"reference": "t1"}
        )
        assert paid.status_code == 303 and "Payment+recorded" in paid.headers["location"]
        page = await client.get(f"{base}/billing", headers=HTML)
        assert 'data-value="available">$50.00' in page.text
        preview = await client.get(f"{base}/subscription?seats=12", headers=HTML)
        assert 'id="seat-preview"' in preview.text and "Adding 2 seats now" in preview.text
        assert "Confirm 12 seats" in preview.text
        assert 'data-value="seats">10' in preview.text  # nothing changed by the preview
        confirmed = await client.post(f"{base}/subscription/seats", data={"seats": "12"})
        assert confirmed.status_code == 303 and "Seats+set+to+12" in confirmed.headers["location"]
        page = await client.get(f"{base}/subscription", headers=HTML)
        assert 'data-value="seats">12' in page.text and "seat-history" in page.text
        invoices = await client.get(f"{base}/invoices", headers=HTML)
        assert invoices.text.count("data-invoice=") == 2
        profile = await client.post(f"{base}/billing/profile", data={"tax_rate_percent": "19.123"})
        assert "error=" in profile.headers["location"]
    async with await factory.client_for(setup.users[Role.admin]) as admin:
        page = await admin.get(f"{base}/billing", headers=HTML)
        assert page.status_code == 200 and "Buy credits" not in page.text
