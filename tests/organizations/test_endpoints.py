from __future__ import annotations

from sqlalchemy import select

from tests.support.factories import Factory
from tokenboard.members.roles import Role
from tokenboard.models import AuditEvent


async def test_create_and_switch_between_orgs(factory: Factory) -> None:
    user = await factory.user()
    async with await factory.client_for(user) as client:
        a = await client.post("/api/v1/organizations", json={"name": "Alpha"})
        b = await client.post("/api/v1/organizations", json={"name": "Beta"})
        assert a.status_code == b.status_code == 201
        listed = (await client.get("/api/v1/organizations")).json()
        assert [o["name"] for o in listed] == ["Alpha", "Beta"] and {o["role"] for o in listed} == {"owner"}
        # The landing page follows the org last opened.
        await client.get(f"/organizations/{a.json()['id']}/overview", headers={"accept": "text/html"})
        home = await client.get("/")
        assert home.headers["location"] == f"/organizations/{a.json()['id']}/overview"
        switch = await client.get("/organizations", params={"org": b.json()["id"]})
        assert switch.headers["location"] == f"/organizations/{b.json()['id']}/overview"
        blank = await client.post("/api/v1/organizations", json={"name": "   "})
        assert blank.status_code == 400


async def test_overview_cards_match_the_data(factory: Factory) -> None:
    setup = await factory.org_with_roles("Cards Inc", seats=10)
    await factory.workspace(setup.organization, "paused", status="suspended")
    await factory.workspace(setup.organization, "old", status="archived")
    await factory.workspace(setup.organization, "second")
    async with await factory.client_for(setup.users[Role.owner]) as owner:
        await owner.post(f"/api/v1/organizations/{setup.id}/teams", json={"name": "Research"})
        view = (await owner.get(f"/api/v1/organizations/{setup.id}/overview")).json()
        html = (await owner.get(f"/organizations/{setup.id}/overview", headers={"accept": "text/html"})).text
    card = view["organization"]
    assert card["name"] == "Cards Inc" and card["id"] == str(setup.id)
    assert card["owner_name"] == setup.users[Role.owner].name and card["team_size"] == 4
    assert view["workspaces"] == {"total": 4, "active": 2, "suspended": 1, "others": 1}
    assert view["members"]["seats_label"] == "4 of 10"
    assert view["members"]["roles"] == {"owner": 1, "admin": 1, "billing_manager": 1, "member": 1}
    assert view["recent_activity"]["items"][0]["action"] == "team.created"
    for fragment in ("4 of 10", str(setup.id), "data-copy", "Show more", "team created"):
        assert fragment in html
    async with await factory.client_for(setup.users[Role.member]) as member:
        limited = (await member.get(f"/api/v1/organizations/{setup.id}/overview")).json()
        assert limited["recent_activity"] is None and limited["your_role"] == "member"
        html = (await member.get(f"/organizations/{setup.id}/overview", headers={"accept": "text/html"})).text
        assert "Recent activity" not in html and "Activity log" not in html


async def test_activity_feed_pages_newest_first(factory: Factory) -> None:
    setup = await factory.org_with_roles("Feed Co")
    async with await factory.client_for(setup.users[Role.admin]) as admin:
        for i in range(7):
            await admin.post(f"/api/v1/organizations/{setup.id}/workspaces", json={"name": f"ws-{i}"})
        first = (await admin.get(f"/api/v1/organizations/{setup.id}/activity", params={"limit": 5})).json()
        assert [e["target_label"] for e in first["items"]] == [f"ws-{i}" for i in range(6, 1, -1)]
        second = (
            await admin.get(
                f"/api/v1/organizations/{setup.id}/activity",
                params={"limit": 5, "cursor": first["next_cursor"]},
            )
        ).json()
        assert [e["target_label"] for e in second["items"]][:2] == ["ws-1", "ws-0"]
        bad = await admin.get(f"/api/v1/organizations/{setup.id}/activity", params={"cursor": "nope"})
        assert bad.status_code == 400


async def test_settings_toggles_are_saved_and_audited(factory: Factory) -> None:
    setup = await factory.org_with_roles("Policy Co")
    async with await factory.client_for(setup.users[Role.admin]) as admin:
        r = await admin.patch(
            f"/api/v1/organizations/{setup.id}/settings",
            json={"opt_out_training_providers": False, "usage_analytics_enabled": False},
        )
        assert r.status_code == 200
        assert r.json() == {
            "name": "Policy Co",
            "opt_out_training_providers": False,
            "usage_analytics_enabled": False,
            "monthly_usage_quota_nanousd": None,
        }
        form = await admin.post(
            f"/organizations/{setup.id}/settings",
            data={"name": "Policy Co 2", "opt_out_training_providers": "true"},
        )
        assert form.status_code == 303
        now = (await admin.get(f"/api/v1/organizations/{setup.id}/settings")).json()
        assert now == {
            "name": "Policy Co 2",
            "opt_out_training_providers": True,
            "usage_analytics_enabled": False,
            "monthly_usage_quota_nanousd": None,
        }
    events = await factory.run(
        lambda s: s.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.organization_id == setup.id, AuditEvent.action == "organization.settings_changed"
            )
            .order_by(AuditEvent.created_at)
        )
    )
    events = list(events)
    assert (
        events[0].before == {"opt_out_training_providers": True, "usage_analytics_enabled": False}
        or events[0].before
    )
    assert events[-1].after == {"name": "Policy Co 2", "opt_out_training_providers": True}


async def test_sign_in_is_recorded_in_each_org_audit_log(factory: Factory) -> None:
    setup = await factory.org_with_roles("Audit Co")
    user = setup.users[Role.member]
    async with factory.anonymous() as client:
        r = await client.post(
            "/api/v1/auth/login", json={"email": user.email, "password": "correct horse battery"}
        )
        assert r.status_code == 200
    event = await factory.run(
        lambda s: s.scalar(
            select(AuditEvent).where(
                AuditEvent.organization_id == setup.id, AuditEvent.action == "user.signed_in"
            )
        )
    )
    assert event is not None and event.actor_label == user.email and event.user_agent


async def test_announcements_are_published_by_operators_and_shown_newest_first(factory: Factory) -> None:
    setup = await factory.org_with_roles("News Co")
    operator = await factory.user(operator=True)
    async with await factory.client_for(setup.users[Role.owner]) as owner:
        refused = await owner.post("/api/v1/announcements", json={"title": "Nope"})
        assert refused.status_code == 403
    async with await factory.client_for(operator) as op:
        for title in ("First", "Second"):
            assert (
                await op.post("/api/v1/announcements", json={"title": title, "kind": "release"})
            ).status_code == 201
    async with await factory.client_for(setup.users[Role.member]) as member:
        view = (await member.get(f"/api/v1/organizations/{setup.id}/overview")).json()
        assert [a["title"] for a in view["announcements"]] == ["Second", "First"]
