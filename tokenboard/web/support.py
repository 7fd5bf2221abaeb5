"""Helpers shared by the pages: redirects with a notice, the layout context, form errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlparse

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.accounts.auth import Principal
from tokenboard.kit.errors import TokenboardError
from tokenboard.kit.templating import render
from tokenboard.members.roles import Permission
from tokenboard.organizations.auth import OrgContext, require_org
from tokenboard.organizations.service import organizations


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str
    path: str
    icon: str


# The sidebar: every entry names the permission that shows it. Later issues add their pages here.
NAV: list[tuple[str, str, str, str, Permission]] = [
    ("overview", "Dashboard", "overview", "◧", Permission.org_view),
    ("usage", "Usage", "usage", "◔", Permission.org_view),
    ("members", "Members", "members", "☺", Permission.members_view),
    ("teams", "Teams", "teams", "⚑", Permission.teams_view),
    ("workspaces", "Workspaces", "workspaces", "▤", Permission.workspaces_view),
    ("keys", "API keys", "keys", "¤", Permission.keys_use),
    ("models", "Model access", "models", "◇", Permission.models_view),
    ("billing", "Billing", "billing", "$", Permission.billing_view),
    ("subscription", "Subscription", "subscription", "▣", Permission.billing_view),
    ("activity", "Activity log", "activity", "☰", Permission.audit_view),
    ("settings", "Settings", "settings", "⚙", Permission.org_manage),
]


def nav_for(ctx: OrgContext) -> list[NavItem]:
    base = f"/organizations/{ctx.organization_id}"
    return [
        NavItem(key, label, f"{base}/{path}", icon) for key, label, path, icon, perm in NAV if ctx.can(perm)
    ]


def safe_next(target: str | None, default: str = "/") -> str:
    """Only same-site paths: an open redirect after login would hand sessions to phishing pages."""
    if not target:
        return default
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target


def redirect(path: str, *, notice: str | None = None, error: str | None = None) -> RedirectResponse:
    params = {k: v for k, v in (("notice", notice), ("error", error)) if v}
    sep = "&" if "?" in path else "?"
    return RedirectResponse(path + (sep + urlencode(params) if params else ""), status_code=303)


async def page(
    request: Request,
    template: str,
    db: AsyncSession,
    principal: Principal | None,
    *,
    ctx: OrgContext | None = None,
    active: str = "",
    title: str = "",
    status_code: int = 200,
    **context: Any,
) -> Any:
    orgs = await organizations.list_for_user(db, principal.user) if principal else []
    base = {
        "user": principal.user if principal else None,
        "ctx": ctx,
        "org": ctx.organization if ctx else None,
        "nav": nav_for(ctx) if ctx else [],
        "active": active,
        "title": title,
        "orgs": orgs,
        "notice": request.query_params.get("notice", "")[:300],
        "error": request.query_params.get("error", "")[:300],
        "Permission": Permission,
    }
    return render(request, template, base | context, status_code)


async def form_action(
    db: AsyncSession,
    action: Callable[[], Awaitable[Any]],
    *,
    success: str,
    failure: str,
    notice: str | None = None,
) -> RedirectResponse:
    """Run a form's change; on a refusal undo it and go back with the message instead of an error page."""
    try:
        await action()
    except TokenboardError as exc:
        if exc.status_code in (403, 404):  # refusals of the role table render as error pages
            raise
        await db.rollback()
        return redirect(failure, error=exc.message)
    return redirect(success, notice=notice)


def org_page(permission: Permission) -> Any:
    """The page's dependency: the caller's context in the org of the path, holding ``permission``."""
    return Depends(require_org(permission))
