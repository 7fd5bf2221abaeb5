from __future__ import annotations

from sqlalchemy import select

from tests.support.factories import Factory
from tokenboard.members.roles import Role
from tokenboard.models import AuditEvent


async def test_workspace_lifecycle(factory: Factory) -> None:
    setup = await factory.org_with_roles("Ws Co")
    base = f"/api/v1/organizations/{setup.id}/workspaces"
    async with await factory.client_for(setup.users[Role.admin]) as admin:
        created = await admin.post(base, json={"name": "billing-api", "description": "Invoices"})
        assert created.status_code == 201 and created.json()["status"] == "active"
        ws = created.json()["id"]
        assert (await admin.post(base, json={"name": "Billing-API"})).status_code == 409
        renamed = await admin.patch(f"{base}/{ws}", json={"name": "billing-service"})
        assert renamed.json()["name"] == "billing-service"
        assert (await admin.post(f"{base}/{ws}/resume")).status_code == 409
        assert (await admin.post(f"{base}/{ws}/suspend")).json()["status"] == "suspended"
        assert (await admin.post(f"{base}/{ws}/resume")).json()["status"] == "active"
        assert (await admin.post(f"{base}/{ws}/archive")).json()["status"] == "archived"
        assert (await admin.post(f"{base}/{ws}/resume")).status_code == 409
        assert (await admin.post(f"{base}/{ws}/explode")).status_code == 422
        suspended = (await admin.get(base, params={"status": "archived"})).json()
        assert [w["name"] for w in suspended] == ["billing-service"]
    actions = await factory.run(
        lambda s: s.scalars(
            select(AuditEvent.action).where(
                AuditEvent.organization_id == setup.id, AuditEvent.target_type == "workspace"
            )
        )
    )
    assert {
        "workspace.created",
        "workspace.renamed",
        "workspace.suspended",
        "workspace.resumed",
        "workspace.archived",
    } <= set(actions)


async def test_workspace_and_team_pages_render(factory: Factory) -> None:
    setup = await factory.org_with_roles("Pages Co")
    async with await factory.client_for(setup.users[Role.member]) as member:
        html = {"accept": "text/html"}
        for path in (
            "workspaces",
            f"workspaces/{setup.workspace.id}",
            "teams",
            f"teams/{setup.team.id}",
            "members",
        ):
            page = await member.get(f"/organizations/{setup.id}/{path}", headers=html)
            assert page.status_code == 200, path
            assert "Create workspace" not in page.text and "Create team" not in page.text
    async with await factory.client_for(setup.users[Role.admin]) as admin:
        page = await admin.get(f"/organizations/{setup.id}/workspaces", headers={"accept": "text/html"})
        assert "Create workspace" in page.text
        r = await admin.post(f"/organizations/{setup.id}/workspaces/{setup.workspace.id}/suspend")
        assert r.status_code == 303
        detail = await admin.get(
            f"/organizations/{setup.id}/workspaces/{setup.workspace.id}", headers={"accept": "text/html"}
        )
        assert "Resume" in detail.text


async def test_team_crud(factory: Factory) -> None:
    setup = await factory.org_with_roles("Teams Co")
    base = f"/api/v1/organizations/{setup.id}/teams"
    async with await factory.client_for(setup.users[Role.owner]) as owner:
        t = await owner.post(base, json={"name": "Finance", "description": "Cost center 42"})
        assert t.status_code == 201
        assert (await owner.post(base, json={"name": "finance"})).status_code == 409
        upd = await owner.patch(f"{base}/{t.json()['id']}", json={"description": "CC 43"})
        assert upd.json()["description"] == "CC 43"
        assert (await owner.delete(f"{base}/{t.json()['id']}")).status_code == 204
        assert (await owner.get(f"{base}/{t.json()['id']}")).status_code == 404


async def test_concurrent_creates_with_one_name_give_one_workspace_and_a_conflict(factory: Factory) -> None:
    import asyncio

    setup = await factory.org_with_roles("Race Co")
    clients = [await factory.client_for(setup.users[Role.admin]) for _ in range(4)]
    try:
        results = await asyncio.gather(
            *(
                c.post(f"/api/v1/organizations/{setup.id}/workspaces", json={"name": "same-name"})
                for c in clients
            )
        )
    finally:
        for c in clients:
            await c.aclose()
    codes = sorted(r.status_code for r in results)
    assert codes == [201, 409, 409, 409], codes
    assert all(r.json()["error"]["type"] == "conflict" for r in results if r.status_code == 409)
