from __future__ import annotations

import re

from sqlalchemy import select

from tests.support.factories import Factory
from tokenboard.members.roles import Role
from tokenboard.models import ApiKey, AuditEvent


async def test_create_list_revoke(factory: Factory) -> None:
    setup = await factory.org_with_roles("Keys Co")
    base = f"/api/v1/organizations/{setup.id}/api-keys"
    async with await factory.client_for(setup.users[Role.member]) as member:
        created = await member.post(
            base,
            json={
                "workspace_id": str(setup.workspace.id),
                "name": "laptop",
                "allowed_models": ["openai/gpt-4o", "anthropic/claude-sonnet-4", "openai/gpt-4o"],
                "spend_limit_nanousd": 5_000_000_000,
            },
        )
        assert created.status_code == 201, created.text
        body = created.json()
        secret = body["key"]
        assert secret.startswith("tb_") and len(secret) > 40
        assert body["allowed_models"] == ["anthropic/claude-sonnet-4", "openai/gpt-4o"]
        assert body["spend_limit"] == {"nanousd": 5_000_000_000, "usd": "5.00"}
        listed = (await member.get(base)).json()
        assert {k["name"] for k in listed} == {"laptop", setup.api_key.name}
        assert all("key" not in k for k in listed)
        assert (await member.delete(f"{base}/{body['id']}")).status_code == 204
        again = (await member.get(base)).json()
        assert next(k for k in again if k["id"] == body["id"])["revoked_at"] is not None
    stored = await factory.run(lambda s: s.scalars(select(ApiKey)))
    assert all(secret not in (k.key_hash, k.key_hint) for k in stored)
    events = await factory.run(
        lambda s: s.scalars(select(AuditEvent).where(AuditEvent.target_type == "api_key"))
    )
    events = list(events)
    assert {e.action for e in events} == {"api_key.created", "api_key.revoked"}
    assert all(secret not in str(e.after) and secret not in str(e.before) for e in events)


async def test_members_see_only_their_own_keys_admins_see_all(factory: Factory) -> None:
    setup = await factory.org_with_roles("Keys Co")
    base = f"/api/v1/organizations/{setup.id}/api-keys"
    async with await factory.client_for(setup.users[Role.billing_manager]) as other:
        assert (await other.get(base)).json() == []
        assert (await other.delete(f"{base}/{setup.api_key.id}")).status_code == 404
    async with await factory.client_for(setup.users[Role.admin]) as admin:
        listed = (await admin.get(base)).json()
        assert [k["user_email"] for k in listed] == [setup.users[Role.member].email]
        assert (await admin.delete(f"{base}/{setup.api_key.id}")).status_code == 204


async def test_keys_only_in_active_workspaces_of_the_org(factory: Factory) -> None:
    setup = await factory.org_with_roles("Keys Co")
    other = await factory.org_with_roles("Other Co")
    paused = await factory.workspace(setup.organization, "paused", status="suspended")
    base = f"/api/v1/organizations/{setup.id}/api-keys"
    async with await factory.client_for(setup.users[Role.member]) as member:
        r = await member.post(base, json={"workspace_id": str(paused.id), "name": "x"})
        assert r.status_code == 409 and "suspended" in r.json()["error"]["message"]
        foreign = await member.post(base, json={"workspace_id": str(other.workspace.id), "name": "x"})
        assert foreign.status_code == 404
        form = await member.post(
            f"/organizations/{setup.id}/keys", data={"workspace_id": str(other.workspace.id), "name": "x"}
        )
        assert form.status_code == 404 and other.workspace.name not in form.text
        bad = await member.post(
            base, json={"workspace_id": str(setup.workspace.id), "name": "x", "allowed_models": ["gpt-4o"]}
        )
        assert bad.status_code == 400 and "provider/model" in bad.json()["error"]["message"]


async def test_keys_page_shows_the_secret_once(factory: Factory) -> None:
    setup = await factory.org_with_roles("Keys Co")
    async with await factory.client_for(setup.users[Role.member]) as member:
        html = {"accept": "text/html"}
        page = await member.get(f"/organizations/{setup.id}/keys", headers=html)
        assert page.status_code == 200 and "New key" in page.text
        created = await member.post(
            f"/organizations/{setup.id}/keys",
            data={
                "name": "from page",
                "workspace_id": str(setup.workspace.id),
                "allowed_models": "openai/gpt-4o",
            },
            headers=html,
        )
        assert created.status_code == 201
        secret = re.search(r'<code id="new-key">(tb_[^<]+)</code>', created.text)
        assert secret
        assert f'api_key="{secret.group(1)}"' in created.text  # the quick start uses the new key
        later = await member.get(f"/organizations/{setup.id}/keys", headers=html)
        assert secret.group(1) not in later.text and "from page" in later.text
        assert 'base_url="http://testserver/v1"' in later.text
        assert 'model="simulated/fast"' in later.text  # the demo's provider, when the gateway has it
    from tokenboard.catalog.service import catalog

    await factory.run(catalog.sync)
    async with await factory.client_for(setup.users[Role.admin]) as admin:
        default = f"/api/v1/organizations/{setup.id}/model-access/default-model"
        assert (await admin.put(default, json={"model_id": "simulated/echo"})).status_code == 200
        page = await admin.get(f"/organizations/{setup.id}/keys", headers={"accept": "text/html"})
        assert 'model="simulated/echo"' in page.text and '"model": "simulated/echo"' in page.text
