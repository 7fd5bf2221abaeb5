"""Walk the app's router so suites cover every route, including routes added later."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from tests.support.factories import OrgSetup
from tokenboard.members.roles import Role

PARAM = re.compile(r"{(\w+)(?::\w+)?}")  # {name} or {name:path}


@dataclass(frozen=True)
class RouteCase:
    method: str
    path: str
    is_api: bool

    @property
    def params(self) -> list[str]:
        return PARAM.findall(self.path)

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


def api_routes(routes: list[Any]) -> list[APIRoute]:
    """Every APIRoute, looking inside included routers (FastAPI keeps them as lazy wrappers)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            prefix = getattr(route.include_context, "prefix", "") or ""
            assert not prefix, "routers are included without an extra prefix"
            found.extend(api_routes(route.original_router.routes))
    return found


def all_routes(app: FastAPI) -> list[RouteCase]:
    cases = []
    for route in api_routes(app.routes):
        for method in sorted(route.methods):
            if method == "HEAD":
                continue
            cases.append(RouteCase(method, route.path, route.path.startswith("/api/")))
    return cases


def ids_of(
    setup: OrgSetup, token_id: uuid.UUID | None = None, target_member: uuid.UUID | None = None
) -> dict[str, str]:
    """Values for every path parameter, taken from one organization."""
    values = {
        "org_id": str(setup.id),
        "member_id": str(target_member or setup.memberships[Role.member].id),
        "team_id": str(setup.team.id),
        "workspace_id": str(setup.workspace.id),
        "invitation_id": str(setup.invitation.id),
        "key_id": str(setup.api_key.id),
        "action": "suspend",
        "provider": "openai",
        "model": "gpt-4o",
        "provider_id": "openai",
        "day": "2026-01-05",
        "conversation_id": "conv-1",
        "purchase_id": "00000000-0000-7000-8000-00000000b111",
        "invoice_id": "00000000-0000-7000-8000-00000000b222",
    }
    if token_id is not None:
        values["token_id"] = str(token_id)
    return values


def fill(path: str, values: dict[str, str]) -> str:
    return PARAM.sub(lambda m: values[m.group(1)], path)


# A valid body for every route that takes one, so refusals are never just validation errors.
API_BODIES: dict[str, dict[str, object]] = {
    "POST /api/v1/organizations": {"name": "New org"},
    "PATCH /api/v1/organizations/{org_id}/settings": {"name": "Renamed", "usage_analytics_enabled": False},
    "PUT /api/v1/organizations/{org_id}/seats": {"seat_limit": 30},
    "PATCH /api/v1/organizations/{org_id}/members/{member_id}": {"role": "billing_manager"},
    "POST /api/v1/organizations/{org_id}/invitations": {
        "email": "fresh-invitee@example.com",
        "role": "member",
    },
    "POST /api/v1/organizations/{org_id}/teams": {"name": "New team"},
    "PATCH /api/v1/organizations/{org_id}/teams/{team_id}": {"name": "Renamed team"},
    "POST /api/v1/organizations/{org_id}/workspaces": {"name": "new-workspace"},
    "PATCH /api/v1/organizations/{org_id}/workspaces/{workspace_id}": {"name": "renamed-workspace"},
    "POST /api/v1/announcements": {"title": "Hello", "kind": "notice"},
    "POST /api/v1/auth/signup": {
        "email": "someone-new@example.com",
        "name": "N",
        "password": "a long password",
    },
    "POST /api/v1/auth/login": {"email": "nobody@example.com", "password": "whatever pw"},
    "PATCH /api/v1/me": {"name": "Me"},
    "POST /api/v1/me/password": {"current_password": "x", "new_password": "another long one"},
    "POST /api/v1/me/tokens": {"name": "t"},
    "POST /api/v1/invitations/accept": {"token": "tbi_nope"},
    "POST /api/v1/admin/catalog/models": {"id": "local/llama-test", "prices": {"input": "1", "output": "2"}},
    "POST /api/v1/admin/catalog/sync": {},
    "PATCH /api/v1/admin/catalog/models/{provider}/{model:path}": {"enabled": False},
    "POST /api/v1/admin/catalog/models/{provider}/{model:path}/prices": {"input": "2.00", "output": "8.00"},
    "POST /api/v1/organizations/{org_id}/api-keys": {"workspace_id": "<workspace_id>", "name": "k"},
    "PUT /api/v1/organizations/{org_id}/model-access/providers/{provider_id}": {"enabled": False},
    "PUT /api/v1/organizations/{org_id}/model-access/models/{model:path}": {"enabled": False},
    "PUT /api/v1/organizations/{org_id}/model-access/default-model": {"model_id": "openai/gpt-4o"},
    "POST /api/v1/organizations/{org_id}/usage/events": {
        "events": [
            {"id": "evt-1", "timestamp": "2026-01-01T00:00:00Z", "model": "openai/gpt-4o", "cost_nanousd": 1}
        ]
    },
    "PATCH /api/v1/organizations/{org_id}/billing/profile": {"country": "DE", "tax_rate_bps": 1900},
    "POST /api/v1/organizations/{org_id}/billing/purchases": {"amount_usd": "50"},
    "POST /api/v1/organizations/{org_id}/billing/purchases/{purchase_id}/payments": {"reference": "r-1"},
    "PUT /api/v1/organizations/{org_id}/billing/subscription/seats": {"seats": 25},
    "PUT /api/v1/organizations/{org_id}/billing/subscription/frequency": {"frequency": "annual"},
    "PUT /api/v1/organizations/{org_id}/billing/subscription/renewal": {"auto_renew": False},
    "POST /api/v1/organizations/{org_id}/billing/subscription/cancel": {"confirm": True},
    "POST /api/v1/admin/organizations/{org_id}/billing/payments": {
        "invoice_id": "<invoice_id>",
        "reference": "r",
    },
    "POST /api/v1/admin/organizations/{org_id}/billing/payment-failures": {
        "invoice_id": "<invoice_id>",
        "reason": "declined",
    },
    "POST /api/v1/admin/organizations/{org_id}/billing/refunds": {
        "purchase_id": "<purchase_id>",
        "amount_usd": "1",
        "reason": "r",
    },
    "POST /api/v1/admin/organizations/{org_id}/billing/adjustments": {"amount_usd": "1", "reason": "r"},
    "POST /api/v1/admin/organizations/{org_id}/billing/promotions": {
        "amount_usd": "1",
        "expires_at": "2099-01-01T00:00:00Z",
        "reason": "r",
    },
}

FORM_BODIES: dict[str, dict[str, str]] = {
    "POST /organizations/{org_id}/billing/purchases": {"amount_usd": "50"},
    "POST /organizations/{org_id}/billing/purchases/{purchase_id}/payments": {"reference": "r-1"},
    "POST /organizations/{org_id}/billing/profile": {"country": "DE", "tax_rate_percent": "19"},
    "POST /organizations/{org_id}/subscription/seats": {"seats": "25"},
    "POST /organizations/{org_id}/subscription/frequency": {"frequency": "annual"},
    "POST /organizations/{org_id}/subscription/renewal": {"auto_renew": "true"},
    "POST /organizations/{org_id}/subscription/cancel": {"confirm": "true"},
    "POST /organizations/{org_id}/settings": {"name": "Renamed"},
    "POST /organizations/{org_id}/seats": {"seat_limit": "30"},
    "POST /organizations/{org_id}/invitations": {"email": "fresh-invitee@example.com", "role": "member"},
    "POST /organizations/{org_id}/members/{member_id}/role": {"role": "billing_manager"},
    "POST /organizations/{org_id}/members/{member_id}/team": {"team_id": ""},
    "POST /organizations/{org_id}/teams": {"name": "New team"},
    "POST /organizations/{org_id}/teams/{team_id}": {"name": "Renamed team"},
    "POST /organizations/{org_id}/workspaces": {"name": "new-workspace"},
    "POST /organizations/{org_id}/workspaces/{workspace_id}": {"name": "renamed-workspace"},
    "POST /organizations": {"name": "New org"},
    "POST /login": {"email": "nobody@example.com", "password": "whatever"},
    "POST /signup": {"email": "someone-new@example.com", "name": "N", "password": "a long password"},
    "POST /account/profile": {"name": "Me", "email": "me-renamed@example.com"},
    "POST /account/password": {"current_password": "x", "new_password": "another long one"},
    "POST /account/tokens": {"name": "t"},
    "POST /invitations/accept": {"token": "tbi_nope"},
    "POST /organizations/{org_id}/keys": {"name": "k", "workspace_id": "<workspace_id>"},
    "POST /organizations/{org_id}/model-access/providers/{provider_id}": {"enabled": "false"},
    "POST /organizations/{org_id}/model-access/models/{model:path}": {"enabled": "false"},
    "POST /organizations/{org_id}/model-access/default-model": {"model_id": "openai/gpt-4o"},
}


# Query strings some routes need here: an event stream never ends by itself, and httpx's ASGI transport
# waits for the whole response, so the suites ask it to end at once.
QUERIES: dict[str, str] = {
    "GET /api/v1/organizations/{org_id}/usage/live": "?lifetime=0",
    "GET /api/v1/organizations/{org_id}/billing/subscription/preview": "?seats=21",
}


def url_for(key: str, values: dict[str, str]) -> str:
    """The route's path filled with ``values``, plus the query string the suites send it."""
    return fill(key.split(" ", 1)[1], values) + QUERIES.get(key, "")


def body_for(key: str, values: dict[str, str], *, form: bool) -> dict[str, object] | None:
    """The route's valid body with ``<name>`` placeholders replaced by ids of the org under test."""
    template = (FORM_BODIES if form else API_BODIES).get(key)
    if template is None:
        return None
    return {
        k: values[v[1:-1]] if isinstance(v, str) and v.startswith("<") and v.endswith(">") else v
        for k, v in template.items()
    }
