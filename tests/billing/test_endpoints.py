"""The billing API: the offline purchase flow, previews, operators' money routes and their org scoping."""

from __future__ import annotations

from tests.support.factories import Factory
from tokenboard.ledger.service import MAX_BALANCE_NANOUSD, EntryKind, ledger
from tokenboard.members.roles import Role


async def test_offline_purchase_flow_through_the_api(factory: Factory) -> None:
    setup = await factory.org_with_roles("Api Billing")
    base = f"/api/v1/organizations/{setup.id}/billing"
    async with await factory.client_for(setup.users[Role.billing_manager]) as client:
        # The subscription starts (its history line dated to the whole second) on the first billing read:
        # read first, so the purchase below is the newest history line whatever the clock's sub-second.
        assert (await client.get(base)).status_code == 200
        bad = await client.post(f"{base}/purchases", json={"amount_usd": "2"})
        assert bad.status_code == 400 and "between $5.00 and $10,000.00" in bad.json()["error"]["message"]
        assert (await client.post(f"{base}/purchases", json={"amount_usd": "ten"})).status_code == 400
        started = await client.post(f"{base}/purchases", json={"amount_usd": "100"})
        assert started.status_code == 201, started.text
        purchase = started.json()["purchase"]
        assert purchase["status"] == "pending" and purchase["provider"] == "offline"
        overview = (await client.get(base)).json()
        assert overview["balance"]["nanousd"] == 0
        assert [b["usd"] for b in overview["bundles"]] == ["10.00", "50.00", "100.00", "500.00"]
        paid = await client.post(f"{base}/purchases/{purchase['id']}/payments", json={"reference": "wire-9"})
        assert paid.json() == {"applied": True}
        again = await client.post(f"{base}/purchases/{purchase['id']}/payments", json={"reference": "wire-9"})
        assert again.json() == {"applied": False}
        overview = (await client.get(base)).json()
        assert overview["balance"]["usd"] == "100.00"
        assert overview["history"][0]["kind"] == "purchase" and overview["history"][0]["status"] == "paid"
        invoices = (await client.get(f"{base}/invoices")).json()
        assert invoices[0]["status"] == "paid" and invoices[0]["number"].startswith("TB-")
        pdf = await client.get(invoices[0]["pdf_url"])
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    async with await factory.client_for(setup.users[Role.admin]) as admin:
        assert (await admin.get(base)).status_code == 200  # admins read billing
        assert (await admin.post(f"{base}/purchases", json={"amount_usd": "10"})).status_code == 403


async def test_seat_preview_explains_before_anything_changes(factory: Factory) -> None:
    setup = await factory.org_with_roles("Preview Co", seats=10)
    base = f"/api/v1/organizations/{setup.id}/billing/subscription"
    async with await factory.client_for(setup.users[Role.owner]) as client:
        preview = (await client.get(f"{base}/preview?seats=12")).json()
        assert preview["seats_before"] == 10 and preview["seats_after"] == 12
        assert preview["charge_now"]["nanousd"] > 0 and "Adding 2 seats now" in preview["explanation"]
        assert (await client.get(base)).json()["seats"] == 10  # a preview changes nothing
        low = await client.get(f"{base}/preview?seats=2")
        assert low.status_code == 409 and "members use seats" in low.text
        changed = (await client.put(f"{base}/seats", json={"seats": 12})).json()
        assert changed["subscription"]["seats"] == 12 and changed["invoice_id"]
        org = (await client.get(f"/api/v1/organizations/{setup.id}")).json()
        assert org["seat_limit"] == 12


async def test_operator_routes_refuse_another_orgs_ids(factory: Factory) -> None:
    victim = await factory.org_with_roles("Victim Billing")
    other = await factory.org_with_roles("Other Billing")
    operator = await factory.user(operator=True)
    async with await factory.client_for(victim.users[Role.owner]) as owner:
        started = (
            await owner.post(
                f"/api/v1/organizations/{victim.id}/billing/purchases", json={"amount_usd": "10"}
            )
        ).json()["purchase"]
    admin = f"/api/v1/admin/organizations/{other.id}/billing"
    async with await factory.client_for(operator) as client:
        for path, body in (
            ("payments", {"purchase_id": started["id"], "reference": "x"}),
            ("payments", {"invoice_id": started["invoice_id"], "reference": "x"}),
            ("payment-failures", {"invoice_id": started["invoice_id"], "reason": "x"}),
            ("refunds", {"purchase_id": started["id"], "amount_usd": "1", "reason": "x"}),
        ):
            response = await client.post(f"{admin}/{path}", json=body)
            assert response.status_code == 404, (path, response.text)
        own = f"/api/v1/admin/organizations/{victim.id}/billing"
        paid = await client.post(
            f"{own}/payments", json={"purchase_id": started["id"], "reference": "bank-1"}
        )
        assert paid.json()["applied"] is True
        refund = await client.post(
            f"{own}/refunds", json={"purchase_id": started["id"], "amount_usd": "4", "reason": "goodwill"}
        )
        assert refund.status_code == 200, refund.text
        adjust = await client.post(f"{own}/adjustments", json={"amount_usd": "-1.50", "reason": "correction"})
        assert adjust.status_code == 200
        promo = await client.post(
            f"{own}/promotions",
            json={"amount_usd": "5", "expires_at": "2099-01-01T00:00:00Z", "reason": "launch"},
        )
        assert promo.status_code == 200
    async with await factory.client_for(victim.users[Role.owner]) as owner:
        billing = (await owner.get(f"/api/v1/organizations/{victim.id}/billing")).json()
        assert billing["balance"]["usd"] == "9.50"  # 10 - 4 - 1.50 + 5
        kinds = {h["kind"] for h in billing["history"]}
        assert {"purchase", "refund", "adjustment", "promotion"} <= kinds


async def test_operator_adjustments_and_promotions_stop_at_the_balance_bound(factory: Factory) -> None:
    setup = await factory.org_with_roles("Bound Billing")
    operator = await factory.user(operator=True)
    near = MAX_BALANCE_NANOUSD - 500_000 * 10**9  # $500,000 short of the most a balance may hold
    await factory.run(lambda s: ledger.post(s, setup.id, kind=EntryKind.grant, amount_nanousd=near))
    own = f"/api/v1/admin/organizations/{setup.id}/billing"
    async with await factory.client_for(operator) as client:
        adjust = await client.post(f"{own}/adjustments", json={"amount_usd": "1000000", "reason": "typo"})
        assert adjust.status_code == 409, adjust.text
        error = adjust.json()["error"]
        assert error["type"] == "balance_limit" and error["status"] == 409
        assert "The balance would be $9,000,500,000.00, more than the $9,000,000,000.00" in error["message"]
        promo = await client.post(
            f"{own}/promotions",
            json={"amount_usd": "1000000", "expires_at": "2099-01-01T00:00:00Z", "reason": "launch"},
        )
        assert promo.status_code == 409 and "nothing was granted" in promo.json()["error"]["message"]
        fits = await client.post(f"{own}/adjustments", json={"amount_usd": "500000", "reason": "up to it"})
        assert fits.status_code == 200, fits.text
    async with await factory.client_for(setup.users[Role.owner]) as owner:
        billing = (await owner.get(f"/api/v1/organizations/{setup.id}/billing")).json()
    assert billing["balance"]["nanousd"] == MAX_BALANCE_NANOUSD
    assert [h["kind"] for h in billing["history"]].count("promotion") == 0
