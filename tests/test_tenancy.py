"""Tenancy, generated from the router: every route, as every role of another org, with the victim's ids.

Each route that takes an id must answer 404 and leak nothing. A route the suite has no case for fails the
suite, so a new route cannot slip in untested.
"""

from __future__ import annotations

from sqlalchemy import func, select

from tests.support.factories import Factory, OrgSetup
from tests.support.routes import RouteCase, all_routes, body_for, ids_of, url_for
from tokenboard.members.roles import Role
from tokenboard.models import AuditEvent, Membership

# Routes that take no tenant id, and why they cannot reach another org's data.
NOT_TENANT_SCOPED: dict[str, str] = {
    "GET /": "redirects to one of the caller's own orgs",
    "GET /login": "public page",
    "POST /login": "public form",
    "GET /signup": "public page",
    "POST /signup": "public form",
    "POST /logout": "ends the caller's own session",
    "GET /account": "the caller's own account",
    "POST /account/profile": "the caller's own account",
    "POST /account/password": "the caller's own account",
    "POST /account/tokens": "the caller's own tokens",
    "GET /organizations": "lists only the caller's orgs (checked below)",
    "POST /organizations": "creates a new org owned by the caller",
    "GET /invitations/accept": "addressed by secret token; misuse covered in tests/members",
    "POST /invitations/accept": "addressed by secret token; misuse covered in tests/members",
    "POST /api/v1/auth/signup": "public",
    "POST /api/v1/auth/login": "public",
    "POST /api/v1/auth/logout": "ends the caller's own session",
    "GET /api/v1/me": "the caller's own account",
    "PATCH /api/v1/me": "the caller's own account",
    "POST /api/v1/me/password": "the caller's own account",
    "GET /api/v1/me/tokens": "the caller's own tokens",
    "POST /api/v1/me/tokens": "the caller's own tokens",
    "GET /api/v1/me/events": "the caller's own events",
    "GET /api/v1/organizations": "lists only the caller's orgs (checked below)",
    "POST /api/v1/organizations": "creates a new org owned by the caller",
    "GET /api/v1/invitations/preview": "addressed by secret token; misuse covered in tests/members",
    "POST /api/v1/invitations/accept": "addressed by secret token; misuse covered in tests/members",
    "GET /api/v1/announcements": "installation-wide news, no tenant data",
    "POST /api/v1/announcements": "operators only, installation-wide",
    "DELETE /api/v1/announcements/{announcement_id}": "operators only, installation-wide",
    "GET /healthz": "no data",
    "POST /v1/chat/completions": "gateway: the API key alone decides the org (tests/gateway)",
    "POST /v1/messages": "gateway: the API key alone decides the org (tests/gateway)",
    "POST /v1/embeddings": "gateway: the API key alone decides the org (tests/gateway)",
    "POST /v1/messages/count_tokens": "gateway: the API key alone decides the org (tests/gateway)",
    "GET /v1/models": "gateway: lists what the API key may use (tests/gateway)",
    "GET /v1/models/{model_id:path}": "gateway: one model the API key may use, else 404 (tests/gateway)",
    "GET /api/v1/catalog/models": "installation-wide model catalog, no tenant data",
    "GET /api/v1/admin/catalog/models": "installation-wide catalog, operators only",
    "POST /api/v1/admin/catalog/models": "installation-wide catalog, operators only",
    "POST /api/v1/admin/catalog/sync": "installation-wide catalog, operators only",
    "PATCH /api/v1/admin/catalog/models/{provider}/{model:path}": "installation-wide catalog, operators only",
    "GET /api/v1/admin/catalog/models/{provider}/{model:path}/prices": "installation-wide, operators only",
    "POST /api/v1/admin/catalog/models/{provider}/{model:path}/prices": "installation-wide, operators only",
    "POST /api/v1/billing/stripe/webhook": "Stripe, by signature; the metadata names the org (tests/billing)",
    "POST /api/v1/admin/organizations/{org_id}/billing/payments": "operators only, installation-wide",
    "POST /api/v1/admin/organizations/{org_id}/billing/payment-failures": "operators only, installation-wide",
    "POST /api/v1/admin/organizations/{org_id}/billing/refunds": "operators only, installation-wide",
    "POST /api/v1/admin/organizations/{org_id}/billing/adjustments": "operators only, installation-wide",
    "POST /api/v1/admin/organizations/{org_id}/billing/promotions": "operators only, installation-wide",
}

# Ids that belong to a user rather than an org: another user's token is a 404 too.
USER_SCOPED = {"POST /account/tokens/{token_id}/revoke", "DELETE /api/v1/me/tokens/{token_id}"}


async def _request(client: object, case: RouteCase, path: str, values: dict[str, str]) -> object:
    body = body_for(case.key, values, form=not case.is_api)
    if case.is_api:
        return await client.request(case.method, path, json=body)  # type: ignore[attr-defined]
    return await client.request(case.method, path, data=body)  # type: ignore[attr-defined]


async def _counts(factory: Factory, victim: OrgSetup) -> tuple[int, int]:
    async def work(s: object) -> tuple[int, int]:
        members = await s.scalar(
            select(func.count()).select_from(Membership).where(Membership.organization_id == victim.id)
        )  # type: ignore[attr-defined]
        events = await s.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.organization_id == victim.id)
        )  # type: ignore[attr-defined]
        return int(members), int(events)

    return await factory.run(work)


async def test_every_route_refuses_another_orgs_ids(app: object, factory: Factory) -> None:
    victim = await factory.org_with_roles("Victim Corp")
    attacker = await factory.org_with_roles("Attacker Ltd")
    victim_token = await factory.personal_token(victim.users[Role.owner])
    from tokenboard.accounts import repository

    token_record = await factory.run(lambda s: repository.list_tokens(s, victim.users[Role.owner].id))
    values = ids_of(victim, token_id=token_record[0].id)
    leaks = [victim.organization.name, str(victim.id), victim.users[Role.owner].email, victim.workspace.name]
    before = await _counts(factory, victim)

    routes = all_routes(app)  # type: ignore[arg-type]
    uncovered = [r.key for r in routes if not r.params and r.key not in NOT_TENANT_SCOPED]
    assert not uncovered, f"routes with no tenancy case: {uncovered}"
    scoped = [r for r in routes if r.params and r.key not in NOT_TENANT_SCOPED]
    checked = 0
    for role in Role:
        async with await factory.client_for(attacker.users[role]) as client:
            for case in scoped:
                response = await _request(client, case, url_for(case.key, values), values)
                assert response.status_code == 404, (
                    role,
                    case.key,
                    response.status_code,
                    response.text[:300],
                )
                assert not any(leak in response.text for leak in leaks), (role, case.key)
                checked += 1
    assert await _counts(factory, victim) == before, "a refused request changed the victim's data"
    # The victim's token still works: nothing was revoked by the attacker.
    async with factory.anonymous(csrf=False) as api:
        api.headers["Authorization"] = f"Bearer {victim_token}"
        assert (await api.get("/api/v1/me")).status_code == 200
    print(
        f"\ntenancy: {len(scoped)} id-taking routes x {len(Role)} roles = {checked} cases; "
        f"{len(routes)} routes in the router, {len(NOT_TENANT_SCOPED)} without tenant ids"
    )
    assert len(scoped) >= 30


async def test_listing_routes_show_only_the_callers_orgs(factory: Factory) -> None:
    victim = await factory.org_with_roles("Victim Corp")
    attacker = await factory.org_with_roles("Attacker Ltd")
    async with await factory.client_for(attacker.users[Role.owner]) as client:
        orgs = (await client.get("/api/v1/organizations")).json()
        assert [o["id"] for o in orgs] == [str(attacker.id)]
        page = await client.get("/organizations", headers={"accept": "text/html"})
        assert victim.organization.name not in page.text
        me = (await client.get("/api/v1/me")).json()
        assert str(victim.id) not in str(me)


async def test_ids_from_another_org_in_the_body_are_refused(factory: Factory) -> None:
    victim = await factory.org_with_roles("Victim Corp")
    attacker = await factory.org_with_roles("Attacker Ltd")
    target = attacker.memberships[Role.member].id
    async with await factory.client_for(attacker.users[Role.owner]) as client:
        api = await client.patch(
            f"/api/v1/organizations/{attacker.id}/members/{target}", json={"team_id": str(victim.team.id)}
        )
        assert api.status_code == 404
        form = await client.post(
            f"/organizations/{attacker.id}/members/{target}/team", data={"team_id": str(victim.team.id)}
        )
        assert form.status_code == 404
        member = (await client.get(f"/api/v1/organizations/{attacker.id}/members/{target}")).json()
        assert member["team_id"] is None


def test_every_body_id_field_has_a_cross_org_case(app: object) -> None:
    """Request bodies that carry ids: each must be listed with the test that sends another org's id."""
    from tests.support.routes import api_routes

    covered = {
        ("PATCH /api/v1/organizations/{org_id}/members/{member_id}", "team_id"),
        ("POST /organizations/{org_id}/members/{member_id}/team", "team_id"),
        # tests/api_keys/test_endpoints.py::test_keys_only_in_active_workspaces_of_the_org
        ("POST /api/v1/organizations/{org_id}/api-keys", "workspace_id"),
        ("POST /organizations/{org_id}/keys", "workspace_id"),
        # A catalog model id: installation-wide, no tenant data to reach. The default must be a model the
        # org allows: tests/model_access/test_service.py::test_default_model_must_be_allowed_and_priced
        ("PUT /api/v1/organizations/{org_id}/model-access/default-model", "model_id"),
        ("POST /organizations/{org_id}/model-access/default-model", "model_id"),
        # A tax number, not a row id.
        ("PATCH /api/v1/organizations/{org_id}/billing/profile", "tax_id"),
        ("POST /organizations/{org_id}/billing/profile", "tax_id"),
        # Operators' ids are looked up inside the org of the path: another org's invoice or purchase is a
        # 404 (tests/billing/test_endpoints.py::test_operator_routes_refuse_another_orgs_ids).
        ("POST /api/v1/admin/organizations/{org_id}/billing/payments", "invoice_id"),
        ("POST /api/v1/admin/organizations/{org_id}/billing/payments", "purchase_id"),
        ("POST /api/v1/admin/organizations/{org_id}/billing/payment-failures", "invoice_id"),
        ("POST /api/v1/admin/organizations/{org_id}/billing/refunds", "purchase_id"),
    }
    found = set()
    for route in api_routes(app.routes):  # type: ignore[attr-defined]
        if route.body_field is not None:
            model = route.body_field.field_info.annotation
            for name in getattr(model, "model_fields", {}):
                if name.endswith("_id"):
                    for method in route.methods:
                        found.add((f"{method} {route.path}", name))
    assert found <= covered, f"body id fields without a cross-org case: {found - covered}"
    assert found, "expected at least the member team_id field"
