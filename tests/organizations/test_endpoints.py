from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from tests.support.databases import BACKENDS, create_database, drop_database
from tests.support.factories import Factory
from tokenboard.kit.db import create_engine, create_sessionmaker
from tokenboard.members.roles import Role
from tokenboard.migrations import downgrade, upgrade
from tokenboard.models import AuditEvent, Membership, Organization, User


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
            "monthly_usage_quota_tokens": None,
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
            "monthly_usage_quota_tokens": None,
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


async def test_the_token_quota_is_set_by_form_and_api_validated_and_audited(factory: Factory) -> None:
    setup = await factory.org_with_roles("Quota Co")
    api = f"/api/v1/organizations/{setup.id}/settings"
    form = f"/organizations/{setup.id}/settings"

    def fields(tokens: str, **extra: str) -> dict[str, str]:
        return {
            "name": "Quota Co",
            "monthly_usage_quota_tokens": tokens,
            "has_token_quota_field": "true",
        } | extra

    async with await factory.client_for(setup.users[Role.admin]) as admin:
        r = await admin.patch(api, json={"monthly_usage_quota_tokens": 100_000})
        assert r.status_code == 200, r.text
        assert r.json()["monthly_usage_quota_tokens"] == 100_000
        assert r.json()["monthly_usage_quota_nanousd"] is None  # beside the USD quota, not instead of it
        # Both quotas at once; a PATCH without the field leaves the token quota as it is.
        r = await admin.patch(api, json={"monthly_usage_quota_nanousd": 7 * 10**9})
        assert (r.json()["monthly_usage_quota_tokens"], r.json()["monthly_usage_quota_nanousd"]) == (
            100_000,
            7 * 10**9,
        )
        for bad in (0, -5, 10**15 + 1, 1.5, "100000", True):
            refused = await admin.patch(api, json={"monthly_usage_quota_tokens": bad})
            assert refused.status_code == 422, (bad, refused.text)
            assert refused.json()["error"]["details"][0]["field"] == "body.monthly_usage_quota_tokens"
        assert (await admin.get(api)).json()["monthly_usage_quota_tokens"] == 100_000
        assert (await admin.patch(api, json={"monthly_usage_quota_tokens": 10**15})).status_code == 200

        # The settings page shows it and its form sets it: thousands separators allowed, empty removes it.
        page = await admin.get(form, headers={"accept": "text/html"})
        assert 'name="monthly_usage_quota_tokens" value="1000000000000000"' in page.text
        saved = await admin.post(form, data=fields("2,500,000"))
        assert saved.status_code == 303 and "error=" not in saved.headers["location"]
        assert (await admin.get(api)).json()["monthly_usage_quota_tokens"] == 2_500_000
        # A form without the token field (a page from before it) keeps it, and the USD quota stays too.
        await admin.post(form, data={"name": "Quota Co"})
        now = (await admin.get(api)).json()
        assert (now["monthly_usage_quota_tokens"], now["monthly_usage_quota_nanousd"]) == (
            2_500_000,
            7 * 10**9,
        )
        for bad, words in (
            ("lots", "whole number of tokens"),
            ("1.5", "whole number of tokens"),
            ("-3", "whole number of tokens"),
            ("1e6", "whole number of tokens"),
            ("0", "from 1 to 1,000,000,000,000,000"),
            ("1000000000000001", "from 1 to 1,000,000,000,000,000"),
        ):
            refused = await admin.post(form, data=fields(bad))
            assert refused.status_code == 303
            assert refused.headers["location"].startswith(form + "?error=")
            shown = await admin.get(refused.headers["location"], headers={"accept": "text/html"})
            assert words in shown.text, bad
        assert (await admin.get(api)).json()["monthly_usage_quota_tokens"] == 2_500_000
        await admin.post(form, data=fields(""))
        assert (await admin.get(api)).json()["monthly_usage_quota_tokens"] is None

    # Only the roles that may change the settings (org.manage in the role table) may set it.
    for role in (Role.billing_manager, Role.member):
        async with await factory.client_for(setup.users[role]) as client:
            assert (await client.patch(api, json={"monthly_usage_quota_tokens": 5})).status_code == 403
            assert (await client.post(form, data=fields("5"))).status_code == 403
    async with await factory.client_for(setup.users[Role.owner]) as owner:
        assert (await owner.get(api)).json()["monthly_usage_quota_tokens"] is None
        assert (await owner.patch(api, json={"monthly_usage_quota_tokens": 42})).status_code == 200

    changes = await factory.run(
        lambda s: s.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.organization_id == setup.id, AuditEvent.action == "organization.settings_changed"
            )
            .order_by(AuditEvent.created_at, AuditEvent.id)
        )
    )
    key = "monthly_usage_quota_tokens"
    token_changes = [(e.before[key], e.after[key]) for e in changes if e.after is not None and key in e.after]
    assert token_changes == [
        (None, 100_000),
        (100_000, 10**15),
        (10**15, 2_500_000),
        (2_500_000, None),
        (None, 42),
    ]


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


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migration_0021_adds_the_token_quota_and_drops_it_keeping_everything_else(
    backend: str, tmp_path: Path
) -> None:
    """At head an organization (and its member) with both quotas; down to 0020: the column is gone, the
    organization, its USD quota and its membership stay (no table copy cascading through the foreign
    keys); up again: the column is back, empty (no quota), and the setting can be stored."""
    url, name = await asyncio.to_thread(create_database, backend, tmp_path, "token_quota")
    org_id, user_id = uuid.uuid4(), uuid.uuid4()

    async def read() -> tuple[list[str], list[tuple[object, ...]], int]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                columns = await conn.run_sync(
                    lambda c: [col["name"] for col in inspect(c).get_columns("organizations")]
                )
                quota_tokens = (
                    ", monthly_usage_quota_tokens" if "monthly_usage_quota_tokens" in columns else ""
                )
                orgs = (
                    await conn.execute(
                        text(f"SELECT name, monthly_usage_quota_nanousd{quota_tokens} FROM organizations")
                    )
                ).all()
                members = (await conn.execute(text("SELECT count(*) FROM memberships"))).scalar_one()
        finally:
            await engine.dispose()
        return columns, [tuple(r) for r in orgs], members

    try:
        engine = create_engine(url)
        async with create_sessionmaker(engine)() as session:
            session.add(
                Organization(
                    id=org_id,
                    name="Quota Co",
                    seat_limit=5,
                    monthly_usage_quota_nanousd=5 * 10**9,
                    monthly_usage_quota_tokens=100_000,
                )
            )
            session.add(User(id=user_id, email="quota@example.com", name="Quota", password_hash="x"))
            await session.flush()
            session.add(Membership(organization_id=org_id, user_id=user_id, role=Role.owner.value))
            await session.commit()
        await engine.dispose()
        columns, orgs, members = await read()
        assert "monthly_usage_quota_tokens" in columns
        assert (orgs, members) == ([("Quota Co", 5 * 10**9, 100_000)], 1)

        await asyncio.to_thread(downgrade, url, "0020")
        columns, orgs, members = await read()
        assert "monthly_usage_quota_tokens" not in columns and "monthly_usage_quota_nanousd" in columns
        assert (orgs, members) == ([("Quota Co", 5 * 10**9)], 1)

        await asyncio.to_thread(upgrade, url)
        columns, orgs, members = await read()
        assert "monthly_usage_quota_tokens" in columns
        assert (orgs, members) == ([("Quota Co", 5 * 10**9, None)], 1)
        engine = create_engine(url)
        async with create_sessionmaker(engine)() as session:
            org = await session.get(Organization, org_id)
            assert org is not None and org.monthly_usage_quota_tokens is None
            org.monthly_usage_quota_tokens = 10**15  # the largest the setting takes fits the column
            await session.commit()
        await engine.dispose()
        assert (await read())[1] == [("Quota Co", 5 * 10**9, 10**15)]
    finally:
        await asyncio.to_thread(drop_database, backend, name)
