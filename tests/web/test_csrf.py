"""CSRF: every state-changing route refuses a cookie-authenticated request without a valid token."""

from __future__ import annotations

import re

from tests.support.factories import Factory
from tests.support.routes import all_routes, body_for, fill, ids_of
from tokenboard.kit.csrf import SIGNED_WEBHOOK_PATHS
from tokenboard.members.roles import Role

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


async def test_every_unsafe_route_needs_a_csrf_token(app: object, factory: Factory) -> None:
    setup = await factory.org_with_roles("Csrf Co")
    values = ids_of(setup) | {
        "token_id": "00000000-0000-7000-8000-000000000000",
        "announcement_id": "00000000-0000-7000-8000-000000000000",
    }
    # The gateway (/v1/...) authenticates by API key only and never reads cookies: nothing to forge there;
    # signed webhooks (SIGNED_WEBHOOK_PATHS) authenticate by their signature over the body.
    unsafe = [
        r
        for r in all_routes(app)  # type: ignore[arg-type]
        if r.method in UNSAFE and not r.path.startswith("/v1/") and r.path not in SIGNED_WEBHOOK_PATHS
    ]
    assert len(unsafe) >= 35
    for forged in (None, "not-the-token"):
        async with await factory.client_for(setup.users[Role.owner], csrf=False) as client:
            for case in unsafe:
                url = fill(case.path, values)
                headers = {"X-CSRF-Token": forged} if forged else {}
                if case.is_api:
                    r = await client.request(
                        case.method, url, json=body_for(case.key, values, form=False), headers=headers
                    )
                else:
                    form = dict(body_for(case.key, values, form=True) or {})
                    if forged:
                        form["csrf_token"] = forged
                    r = await client.request(case.method, url, data=form or None)
                assert r.status_code == 403, (case.key, r.status_code, r.text[:200])
                assert "csrf_failed" in r.text or "did not come from this site" in r.text, case.key
    print(f"\ncsrf: {len(unsafe)} state-changing routes refused without a valid token")


async def test_forms_carry_a_working_token(factory: Factory) -> None:
    setup = await factory.org_with_roles("Csrf Co")
    async with await factory.client_for(setup.users[Role.owner], csrf=False) as client:
        page = await client.get(f"/organizations/{setup.id}/teams", headers={"accept": "text/html"})
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        created = await client.post(
            f"/organizations/{setup.id}/teams", data={"name": "Via form", "csrf_token": token.group(1)}
        )
        assert created.status_code == 303
        listed = await client.get(f"/api/v1/organizations/{setup.id}/teams")
        assert "Via form" in listed.text


async def test_login_form_needs_a_token_too(factory: Factory) -> None:
    user = await factory.user()
    async with factory.anonymous(csrf=False) as client:
        r = await client.post("/login", data={"email": user.email, "password": "correct horse battery"})
        assert r.status_code == 403


async def test_the_csrf_secret_rotates_at_login(factory: Factory) -> None:
    user = await factory.user()
    async with factory.anonymous() as client:
        before = client.cookies.get("tb_csrf")
        r = await client.post(
            "/api/v1/auth/login", json={"email": user.email, "password": "correct horse battery"}
        )
        assert r.status_code == 200
        cookies = [c for c in client.cookies.jar if c.name == "tb_csrf"]
        assert any(c.value != before for c in cookies)
