from __future__ import annotations

import asyncio

from sqlalchemy import select

from tests.support.factories import Factory
from tokenboard.members.roles import Role
from tokenboard.models import AuditEvent, Membership


async def test_member_list_shows_name_email_role_team_joined_activity(factory: Factory) -> None:
    setup = await factory.org_with_roles("List Co")
    async with await factory.client_for(setup.users[Role.member]) as member:
        rows = (await member.get(f"/api/v1/organizations/{setup.id}/members")).json()
    assert len(rows) == 4
    assert {r["role"] for r in rows} == {r.value for r in Role}
    assert set(rows[0]) >= {"name", "email", "role", "team_name", "joined_at", "last_active_at"}
    own = next(r for r in rows if r["email"] == setup.users[Role.member].email)
    assert own["last_active_at"] is not None  # the request itself counts as activity


async def test_change_role_is_audited_with_before_and_after(factory: Factory) -> None:
    setup = await factory.org_with_roles("Role Co")
    target = setup.memberships[Role.member]
    async with await factory.client_for(setup.users[Role.admin]) as admin:
        r = await admin.patch(f"/api/v1/organizations/{setup.id}/members/{target.id}", json={"role": "admin"})
        assert r.status_code == 200 and r.json()["role"] == "admin"
        up = await admin.patch(
            f"/api/v1/organizations/{setup.id}/members/{target.id}", json={"role": "owner"}
        )
        assert up.status_code == 403
        owner_id = setup.memberships[Role.owner].id
        demote_owner = await admin.patch(
            f"/api/v1/organizations/{setup.id}/members/{owner_id}", json={"role": "member"}
        )
        assert demote_owner.status_code == 403
    event = await factory.run(
        lambda s: s.scalar(
            select(AuditEvent).where(
                AuditEvent.organization_id == setup.id, AuditEvent.action == "member.role_changed"
            )
        )
    )
    assert event.before == {"role": "member"} and event.after == {"role": "admin"}
    assert event.actor_label == setup.users[Role.admin].email
    assert event.ip_address == "127.0.0.1"


async def test_members_cannot_raise_their_own_role(factory: Factory) -> None:
    setup = await factory.org_with_roles("Role Co")
    for role in (Role.member, Role.billing_manager):
        own = setup.memberships[role]
        async with await factory.client_for(setup.users[role]) as client:
            r = await client.patch(
                f"/api/v1/organizations/{setup.id}/members/{own.id}", json={"role": "owner"}
            )
            assert r.status_code == 403


async def test_the_last_owner_cannot_leave_or_be_demoted(factory: Factory) -> None:
    setup = await factory.org_with_roles("Owner Co")
    owner = setup.memberships[Role.owner]
    async with await factory.client_for(setup.users[Role.owner]) as client:
        demote = await client.patch(
            f"/api/v1/organizations/{setup.id}/members/{owner.id}", json={"role": "admin"}
        )
        assert demote.status_code == 409 and "last owner" in demote.json()["error"]["message"]
        leave = await client.delete(f"/api/v1/organizations/{setup.id}/members/{owner.id}")
        assert leave.status_code == 409


async def test_concurrent_demotions_always_leave_one_owner(factory: Factory) -> None:
    setup = await factory.org_with_roles("Race Co")
    second = setup.memberships[Role.admin]
    async with await factory.client_for(setup.users[Role.owner]) as client:
        r = await client.patch(
            f"/api/v1/organizations/{setup.id}/members/{second.id}", json={"role": "owner"}
        )
        assert r.status_code == 200
    owners = [setup.users[Role.owner], setup.users[Role.admin]]
    memberships = [setup.memberships[Role.owner], setup.memberships[Role.admin]]
    for _ in range(3):
        clients = [await factory.client_for(u) for u in owners]
        # Each owner demotes themselves at the same moment: one must win, one must be refused.
        results = await asyncio.gather(
            *(
                c.patch(f"/api/v1/organizations/{setup.id}/members/{m.id}", json={"role": "admin"})
                for c, m in zip(clients, memberships, strict=True)
            )
        )
        for c in clients:
            await c.aclose()
        codes = sorted(r.status_code for r in results)
        owners_left = await factory.run(
            lambda s: s.scalars(
                select(Membership).where(Membership.organization_id == setup.id, Membership.role == "owner")
            )
        )
        owners_left = list(owners_left)
        assert len(owners_left) == 1, codes
        assert codes == [200, 409], codes
        # Restore two owners for the next round.
        remaining = owners_left[0]
        other = next(m for m in memberships if m.id != remaining.id)
        restorer = owners[[m.id for m in memberships].index(remaining.id)]
        async with await factory.client_for(restorer) as c:
            ok = await c.patch(f"/api/v1/organizations/{setup.id}/members/{other.id}", json={"role": "owner"})
            assert ok.status_code == 200


async def test_removing_a_member_ends_their_sessions_at_once(factory: Factory) -> None:
    setup = await factory.org_with_roles("Remove Co")
    target = setup.memberships[Role.member]
    removed = await factory.client_for(setup.users[Role.member])
    async with removed, await factory.client_for(setup.users[Role.admin]) as admin:
        assert (await removed.get(f"/api/v1/organizations/{setup.id}/overview")).status_code == 200
        r = await admin.delete(f"/api/v1/organizations/{setup.id}/members/{target.id}")
        assert r.status_code == 204
        assert (await removed.get(f"/api/v1/organizations/{setup.id}/overview")).status_code == 401
        owner_id = setup.memberships[Role.owner].id
        assert (await admin.delete(f"/api/v1/organizations/{setup.id}/members/{owner_id}")).status_code == 403


async def test_a_member_can_leave_but_not_remove_others(factory: Factory) -> None:
    setup = await factory.org_with_roles("Leave Co")
    async with await factory.client_for(setup.users[Role.member]) as member:
        other = setup.memberships[Role.billing_manager].id
        assert (await member.delete(f"/api/v1/organizations/{setup.id}/members/{other}")).status_code == 403
        own = setup.memberships[Role.member].id
        assert (await member.delete(f"/api/v1/organizations/{setup.id}/members/{own}")).status_code == 204


async def test_team_assignment(factory: Factory) -> None:
    setup = await factory.org_with_roles("Team Co")
    target = setup.memberships[Role.member]
    async with await factory.client_for(setup.users[Role.admin]) as admin:
        r = await admin.patch(
            f"/api/v1/organizations/{setup.id}/members/{target.id}", json={"team_id": str(setup.team.id)}
        )
        assert r.status_code == 200 and r.json()["team_name"] == "Platform"
        teams = (await admin.get(f"/api/v1/organizations/{setup.id}/teams")).json()
        assert teams[0]["member_count"] == 1
        assert (
            await admin.delete(f"/api/v1/organizations/{setup.id}/teams/{setup.team.id}")
        ).status_code == 204
        member = (await admin.get(f"/api/v1/organizations/{setup.id}/members/{target.id}")).json()
        assert member["team_id"] is None
