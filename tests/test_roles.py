"""The role x route table: what each role may do, written out here independently of the code.

Every org route must appear below; allowed roles never get 403, the others always do.
"""

from __future__ import annotations

import pytest

from tests.support.factories import Factory
from tests.support.routes import all_routes, body_for, ids_of, url_for
from tokenboard.members.roles import ROLE_PERMISSIONS, Permission, Role, can_grant

ALL = {"owner", "admin", "billing_manager", "member"}
ADMINS = {"owner", "admin"}
BILLING_SEATS = {"owner", "billing_manager"}

EXPECTED: dict[str, set[str]] = {
    "GET /api/v1/organizations/{org_id}": ALL,
    "GET /api/v1/organizations/{org_id}/overview": ALL,
    "GET /api/v1/organizations/{org_id}/settings": ALL,
    "PATCH /api/v1/organizations/{org_id}/settings": ADMINS,
    "PUT /api/v1/organizations/{org_id}/seats": BILLING_SEATS,
    "GET /api/v1/organizations/{org_id}/activity": ADMINS,
    "GET /api/v1/organizations/{org_id}/members": ALL,
    "GET /api/v1/organizations/{org_id}/members/{member_id}": ALL,
    "PATCH /api/v1/organizations/{org_id}/members/{member_id}": ADMINS,
    "DELETE /api/v1/organizations/{org_id}/members/{member_id}": ADMINS,
    "GET /api/v1/organizations/{org_id}/invitations": ADMINS,
    "POST /api/v1/organizations/{org_id}/invitations": ADMINS,
    "POST /api/v1/organizations/{org_id}/invitations/{invitation_id}/resend": ADMINS,
    "DELETE /api/v1/organizations/{org_id}/invitations/{invitation_id}": ADMINS,
    "GET /api/v1/organizations/{org_id}/teams": ALL,
    "POST /api/v1/organizations/{org_id}/teams": ADMINS,
    "GET /api/v1/organizations/{org_id}/teams/{team_id}": ALL,
    "PATCH /api/v1/organizations/{org_id}/teams/{team_id}": ADMINS,
    "DELETE /api/v1/organizations/{org_id}/teams/{team_id}": ADMINS,
    "GET /api/v1/organizations/{org_id}/workspaces": ALL,
    "POST /api/v1/organizations/{org_id}/workspaces": ADMINS,
    "GET /api/v1/organizations/{org_id}/workspaces/{workspace_id}": ALL,
    "PATCH /api/v1/organizations/{org_id}/workspaces/{workspace_id}": ADMINS,
    "POST /api/v1/organizations/{org_id}/workspaces/{workspace_id}/{action}": ADMINS,
    "GET /api/v1/organizations/{org_id}/api-keys": ALL,
    "POST /api/v1/organizations/{org_id}/api-keys": ALL,
    "DELETE /api/v1/organizations/{org_id}/api-keys/{key_id}": ADMINS | {"member"},
    "GET /organizations/{org_id}/keys": ALL,
    "POST /organizations/{org_id}/keys": ALL,
    "POST /organizations/{org_id}/keys/{key_id}/revoke": ADMINS | {"member"},
    "GET /api/v1/organizations/{org_id}/credits": {"owner", "admin", "billing_manager"},
    "GET /organizations/{org_id}": ALL,
    "GET /organizations/{org_id}/overview": ALL,
    "GET /organizations/{org_id}/settings": ADMINS,
    "POST /organizations/{org_id}/settings": ADMINS,
    "POST /organizations/{org_id}/seats": BILLING_SEATS,
    "GET /organizations/{org_id}/activity": ADMINS,
    "GET /organizations/{org_id}/members": ALL,
    "POST /organizations/{org_id}/invitations": ADMINS,
    "POST /organizations/{org_id}/invitations/{invitation_id}/resend": ADMINS,
    "POST /organizations/{org_id}/invitations/{invitation_id}/revoke": ADMINS,
    "POST /organizations/{org_id}/members/{member_id}/role": ADMINS,
    "POST /organizations/{org_id}/members/{member_id}/team": ADMINS,
    "POST /organizations/{org_id}/members/{member_id}/remove": ADMINS,
    "GET /organizations/{org_id}/teams": ALL,
    "POST /organizations/{org_id}/teams": ADMINS,
    "GET /organizations/{org_id}/teams/{team_id}": ALL,
    "POST /organizations/{org_id}/teams/{team_id}": ADMINS,
    "POST /organizations/{org_id}/teams/{team_id}/delete": ADMINS,
    "GET /organizations/{org_id}/workspaces": ALL,
    "POST /organizations/{org_id}/workspaces": ADMINS,
    "GET /organizations/{org_id}/workspaces/{workspace_id}": ALL,
    "POST /organizations/{org_id}/workspaces/{workspace_id}": ADMINS,
    "POST /organizations/{org_id}/workspaces/{workspace_id}/{action}": ADMINS,
    "GET /api/v1/organizations/{org_id}/model-access": ALL,
    "PUT /api/v1/organizations/{org_id}/model-access/providers/{provider_id}": ADMINS,
    "PUT /api/v1/organizations/{org_id}/model-access/models/{model:path}": ADMINS,
    "PUT /api/v1/organizations/{org_id}/model-access/default-model": ADMINS,
    "GET /organizations/{org_id}/models": ALL,
    "POST /organizations/{org_id}/model-access/providers/{provider_id}": ADMINS,
    "POST /organizations/{org_id}/model-access/models/{model:path}": ADMINS,
    "POST /organizations/{org_id}/model-access/default-model": ADMINS,
    "GET /api/v1/organizations/{org_id}/usage/live": ALL,
    "POST /api/v1/organizations/{org_id}/usage/events": ADMINS,
    # Everyone reads usage; members see only their own (tests/usage/test_reports.py).
    "GET /api/v1/organizations/{org_id}/usage": ALL,
    "GET /api/v1/organizations/{org_id}/usage/days/{day}/users": ALL,
    "GET /api/v1/organizations/{org_id}/usage/conversations": ALL,
    "GET /api/v1/organizations/{org_id}/usage/conversations/{conversation_id:path}": ALL,
    "GET /organizations/{org_id}/usage": ALL,
    "GET /organizations/{org_id}/usage/conversations": ALL,
    "GET /organizations/{org_id}/usage/conversations/{conversation_id:path}": ALL,
    # Billing: admins read it; owners and billing managers change it (seats through seats.manage).
    "GET /api/v1/organizations/{org_id}/billing": {"owner", "admin", "billing_manager"},
    "PATCH /api/v1/organizations/{org_id}/billing/profile": BILLING_SEATS,
    "POST /api/v1/organizations/{org_id}/billing/purchases": BILLING_SEATS,
    "POST /api/v1/organizations/{org_id}/billing/purchases/{purchase_id}/payments": BILLING_SEATS,
    "GET /api/v1/organizations/{org_id}/billing/subscription": {"owner", "admin", "billing_manager"},
    "GET /api/v1/organizations/{org_id}/billing/subscription/preview": {"owner", "admin", "billing_manager"},
    "PUT /api/v1/organizations/{org_id}/billing/subscription/seats": BILLING_SEATS,
    "PUT /api/v1/organizations/{org_id}/billing/subscription/frequency": BILLING_SEATS,
    "PUT /api/v1/organizations/{org_id}/billing/subscription/renewal": BILLING_SEATS,
    "POST /api/v1/organizations/{org_id}/billing/subscription/cancel": BILLING_SEATS,
    "POST /api/v1/organizations/{org_id}/billing/subscription/resume": BILLING_SEATS,
    "GET /api/v1/organizations/{org_id}/billing/invoices": {"owner", "admin", "billing_manager"},
    "GET /api/v1/organizations/{org_id}/billing/invoices/{invoice_id}": {"owner", "admin", "billing_manager"},
    "GET /api/v1/organizations/{org_id}/billing/invoices/{invoice_id}/pdf": {
        "owner",
        "admin",
        "billing_manager",
    },
    "GET /organizations/{org_id}/billing": {"owner", "admin", "billing_manager"},
    "POST /organizations/{org_id}/billing/purchases": BILLING_SEATS,
    "POST /organizations/{org_id}/billing/purchases/{purchase_id}/payments": BILLING_SEATS,
    "POST /organizations/{org_id}/billing/profile": BILLING_SEATS,
    "GET /organizations/{org_id}/subscription": {"owner", "admin", "billing_manager"},
    "POST /organizations/{org_id}/subscription/seats": BILLING_SEATS,
    "POST /organizations/{org_id}/subscription/frequency": BILLING_SEATS,
    "POST /organizations/{org_id}/subscription/renewal": BILLING_SEATS,
    "POST /organizations/{org_id}/subscription/cancel": BILLING_SEATS,
    "POST /organizations/{org_id}/subscription/resume": BILLING_SEATS,
    "GET /organizations/{org_id}/invoices": {"owner", "admin", "billing_manager"},
    # Operators only (no organization role may): recording money, refunds, adjustments, promotions.
    "POST /api/v1/admin/organizations/{org_id}/billing/payments": set(),
    "POST /api/v1/admin/organizations/{org_id}/billing/payment-failures": set(),
    "POST /api/v1/admin/organizations/{org_id}/billing/refunds": set(),
    "POST /api/v1/admin/organizations/{org_id}/billing/adjustments": set(),
    "POST /api/v1/admin/organizations/{org_id}/billing/promotions": set(),
}

# Another member's key is hidden, not forbidden: members see only their own keys, so it is a 404.
DENIED_AS_NOT_FOUND = {
    "DELETE /api/v1/organizations/{org_id}/api-keys/{key_id}",
    "POST /organizations/{org_id}/keys/{key_id}/revoke",
}

# Least privileged first, so a denial is checked before an allowed call changes anything.
ORDER = [Role.member, Role.billing_manager, Role.admin, Role.owner]


def test_every_org_route_is_in_the_table(app: object) -> None:
    org_routes = {r.key for r in all_routes(app) if "{org_id}" in r.path}  # type: ignore[arg-type]
    assert org_routes == set(EXPECTED), (
        f"missing from the table: {org_routes - set(EXPECTED)}; stale: {set(EXPECTED) - org_routes}"
    )


@pytest.mark.parametrize("route_key", sorted(EXPECTED))
async def test_role_table(route_key: str, factory: Factory) -> None:
    method, path = route_key.split(" ", 1)
    setup = await factory.org_with_roles("Roles Inc")
    target_user = await factory.user(name="Target")
    target = await factory.add_member(setup.organization, target_user, Role.member)
    values = ids_of(setup, target_member=target.id)
    url = url_for(route_key, values)
    for role in ORDER:
        async with await factory.client_for(setup.users[role]) as client:
            if path.startswith("/api/"):
                response = await client.request(method, url, json=body_for(route_key, values, form=False))
            else:
                response = await client.request(method, url, data=body_for(route_key, values, form=True))
        if role.value in EXPECTED[route_key]:
            assert response.status_code != 403, (role, route_key, response.text[:300])
            assert response.status_code < 500
        else:
            denied = 404 if route_key in DENIED_AS_NOT_FOUND else 403
            assert response.status_code == denied, (
                role,
                route_key,
                response.status_code,
                response.text[:300],
            )


def test_role_table_invariants() -> None:
    assert ROLE_PERMISSIONS[Role.owner] == frozenset(Permission)
    for role in Role:
        assert ROLE_PERMISSIONS[role] <= ROLE_PERMISSIONS[Role.owner]
    assert not can_grant("admin", "owner")
    assert can_grant("admin", "admin") and can_grant("owner", "owner")
    assert not can_grant("member", "admin") and not can_grant("billing_manager", "admin")
