from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.support.factories import Factory
from tokenboard.members.roles import Role
from tokenboard.models import AuditEvent, Invitation


async def _invite(client: object, org_id: object, email: str, role: str = "member") -> object:
    return await client.post(
        f"/api/v1/organizations/{org_id}/invitations", json={"email": email, "role": role}
    )  # type: ignore[attr-defined]


async def test_invite_and_accept_by_signing_up(app: object, factory: Factory) -> None:
    setup = await factory.org_with_roles("Invite Co")
    async with await factory.client_for(setup.users[Role.admin]) as admin:
        sent = await _invite(admin, setup.id, "New.Person@Example.com", "billing_manager")
        assert sent.status_code == 201, sent.text
        link = sent.json()["link"]
        assert sent.json()["email"] == "new.person@example.com"
    token = link.split("token=")[1]
    # The email went out after the commit (written to the log without SMTP) and carries the same link.
    assert any(link in m.body and m.to == "new.person@example.com" for m in app.state.mailer.sent)  # type: ignore[attr-defined]
    stored = await factory.run(
        lambda s: s.scalar(select(Invitation).where(Invitation.email == "new.person@example.com"))
    )
    assert token not in stored.token_hash
    async with factory.anonymous() as browser:
        preview = await browser.get("/api/v1/invitations/preview", params={"token": token})
        assert preview.json()["organization_name"] == "Invite Co"
        signup = await browser.post(
            "/signup",
            data={
                "email": "new.person@example.com",
                "name": "New Person",
                "password": "a long password",
                "invitation": token,
            },
        )
        assert signup.status_code == 303
        assert signup.headers["location"].startswith(f"/organizations/{setup.id}/overview")
        me = (await browser.get("/api/v1/me")).json()
        assert me["organizations"] == [{"id": str(setup.id), "name": "Invite Co", "role": "billing_manager"}]
    actions = await factory.run(
        lambda s: s.scalars(select(AuditEvent.action).where(AuditEvent.organization_id == setup.id))
    )
    assert {"invitation.created", "invitation.accepted", "member.joined"} <= set(actions)


async def test_reused_expired_revoked_wrong_email_and_unknown_tokens_are_refused(factory: Factory) -> None:
    setup = await factory.org_with_roles("Invite Co")
    invited = await factory.user(email="invited@example.com")
    stranger = await factory.user(email="stranger@example.com")
    _, expired = await factory.invitation(
        setup.organization, "invited@example.com", expires_in=timedelta(seconds=-1)
    )
    async with await factory.client_for(stranger) as wrong:
        _, for_invited = await factory.invitation(setup.organization, "invited@example.com")
        r = await wrong.post("/api/v1/invitations/accept", json={"token": for_invited})
        assert r.status_code == 403 and "different email" in r.json()["error"]["message"]
        assert (
            await wrong.post("/api/v1/invitations/accept", json={"token": "tbi_unknown"})
        ).status_code == 404
    async with await factory.client_for(invited) as client:
        r = await client.post("/api/v1/invitations/accept", json={"token": expired})
        assert r.status_code == 410 and "expired" in r.json()["error"]["message"]
        ok = await client.post("/api/v1/invitations/accept", json={"token": for_invited})
        assert ok.status_code == 200, ok.text
        again = await client.post("/api/v1/invitations/accept", json={"token": for_invited})
        assert again.status_code == 410 and "already used" in again.json()["error"]["message"]
    revoked_user = await factory.user(email="revoked@example.com")
    async with await factory.client_for(setup.users[Role.owner]) as owner:
        sent = await _invite(owner, setup.id, "revoked@example.com")
        token = sent.json()["link"].split("token=")[1]
        assert (
            await owner.delete(f"/api/v1/organizations/{setup.id}/invitations/{sent.json()['id']}")
        ).status_code == 204
        assert (
            await owner.delete(f"/api/v1/organizations/{setup.id}/invitations/{sent.json()['id']}")
        ).status_code == 410
    async with await factory.client_for(revoked_user) as client:
        r = await client.post("/api/v1/invitations/accept", json={"token": token})
        assert r.status_code == 410 and "revoked" in r.json()["error"]["message"]


async def test_resend_replaces_the_link(factory: Factory) -> None:
    setup = await factory.org_with_roles("Invite Co")
    user = await factory.user(email="resend@example.com")
    async with await factory.client_for(setup.users[Role.owner]) as owner:
        sent = await _invite(owner, setup.id, "resend@example.com")
        old = sent.json()["link"].split("token=")[1]
        again = await owner.post(f"/api/v1/organizations/{setup.id}/invitations/{sent.json()['id']}/resend")
        assert again.status_code == 200 and again.json()["send_count"] == 2
        new = again.json()["link"].split("token=")[1]
        dup = await _invite(owner, setup.id, "resend@example.com")
        assert dup.status_code == 409
    async with await factory.client_for(user) as client:
        assert (await client.post("/api/v1/invitations/accept", json={"token": old})).status_code == 404
        assert (await client.post("/api/v1/invitations/accept", json={"token": new})).status_code == 200


async def test_another_orgs_invitation_ids_are_not_found(factory: Factory) -> None:
    mine = await factory.org_with_roles("Mine")
    theirs = await factory.org_with_roles("Theirs")
    async with await factory.client_for(mine.users[Role.owner]) as owner:
        base = f"/api/v1/organizations/{mine.id}/invitations/{theirs.invitation.id}"
        assert (await owner.delete(base)).status_code == 404
        assert (await owner.post(base + "/resend")).status_code == 404
    async with await factory.client_for(theirs.users[Role.owner]) as other_owner:
        listed = await other_owner.get(f"/api/v1/organizations/{theirs.id}/invitations")
        assert [i["id"] for i in listed.json()] == [str(theirs.invitation.id)]


async def test_an_admin_cannot_invite_above_its_own_role(factory: Factory) -> None:
    setup = await factory.org_with_roles("Invite Co")
    async with await factory.client_for(setup.users[Role.admin]) as admin:
        r = await _invite(admin, setup.id, "boss@example.com", "owner")
        assert r.status_code == 403
        assert (await _invite(admin, setup.id, "peer@example.com", "admin")).status_code == 201
    async with await factory.client_for(setup.users[Role.owner]) as owner:
        assert (await _invite(owner, setup.id, "boss@example.com", "owner")).status_code == 201


async def test_seats_limit_who_can_join(factory: Factory) -> None:
    owner = await factory.user()
    org = await factory.org(owner, name="Tiny", seats=2)
    joiner = await factory.user(email="joiner@example.com")
    late = await factory.user(email="late@example.com")
    async with await factory.client_for(owner) as client:
        a = await _invite(client, org.id, "joiner@example.com")
        b = await _invite(client, org.id, "late@example.com")
        assert a.status_code == b.status_code == 201
    async with await factory.client_for(joiner) as client:
        assert (
            await client.post(
                "/api/v1/invitations/accept", json={"token": a.json()["link"].split("token=")[1]}
            )
        ).status_code == 200
    async with await factory.client_for(late) as client:
        full = await client.post(
            "/api/v1/invitations/accept", json={"token": b.json()["link"].split("token=")[1]}
        )
        assert full.status_code == 409
        assert "All 2 seats of Tiny are in use (2 of 2)" in full.json()["error"]["message"]
    async with await factory.client_for(owner) as client:
        refused = await _invite(client, org.id, "third@example.com")
        assert refused.status_code == 409 and "seats" in refused.json()["error"]["message"]
        below = await client.put(f"/api/v1/organizations/{org.id}/seats", json={"seat_limit": 1})
        assert below.status_code == 409
        more = await client.put(f"/api/v1/organizations/{org.id}/seats", json={"seat_limit": 3})
        assert more.status_code == 200
        overview = (await client.get(f"/api/v1/organizations/{org.id}/overview")).json()
        assert overview["members"]["seats_label"] == "2 of 3"
