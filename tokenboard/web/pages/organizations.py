"""Organizations: list, overview, settings, seats and the activity log (JSON twins under /api/v1)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Form, Query, Request

from tokenboard.accounts.auth import CurrentPrincipal
from tokenboard.audit.service import Actor, audit
from tokenboard.billing.service import billing
from tokenboard.billing.subscriptions import subscriptions
from tokenboard.kit.deps import DB, AppSettings, Client
from tokenboard.kit.errors import TokenboardError
from tokenboard.kit.money import parse_usd, usd_string
from tokenboard.kit.routing import make_router
from tokenboard.members.roles import Permission
from tokenboard.organizations.auth import OrgContext
from tokenboard.organizations.service import UNSET, Unset, organizations
from tokenboard.web.support import form_action, org_page, page, redirect

router = make_router()


@router.get("/organizations")
async def organizations_page(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    org: Annotated[str | None, Query(max_length=64)] = None,
) -> Any:
    if org:  # the org switcher without JavaScript
        try:
            return redirect(f"/organizations/{uuid.UUID(org)}/overview")
        except ValueError:
            pass
    return await page(request, "organizations.html", db, principal, title="Your organizations")


@router.post("/organizations")
async def organizations_create(
    db: DB,
    principal: CurrentPrincipal,
    client: Client,
    settings: AppSettings,
    name: Annotated[str, Form(max_length=200)],
) -> Any:
    try:
        org = await organizations.create(
            db,
            name=name,
            owner=principal.user,
            actor=Actor.of(principal.user, client),
            seat_limit=settings.default_seats,
        )
    except TokenboardError as exc:
        await db.rollback()
        return redirect("/organizations", error=exc.message)
    return redirect(f"/organizations/{org.id}/overview", notice=f"{org.name} is ready.")


@router.get("/organizations/{org_id}")
async def organization_root(ctx: Annotated[OrgContext, org_page(Permission.org_view)]) -> Any:
    return redirect(f"/organizations/{ctx.organization_id}/overview")


@router.get("/organizations/{org_id}/overview")
async def overview_page(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    settings: AppSettings,
    ctx: Annotated[OrgContext, org_page(Permission.org_view)],
) -> Any:
    view = await organizations.overview(db, ctx)
    # The billing cards (overview_billing.html), only for roles with billing access.
    billing_card = (
        await billing.overview(db, ctx.organization, settings) if ctx.can(Permission.billing_view) else None
    )
    return await page(
        request,
        "overview.html",
        db,
        principal,
        ctx=ctx,
        active="overview",
        title="Dashboard",
        view=view,
        billing_card=billing_card,
    )


@router.get("/organizations/{org_id}/settings")
async def settings_page(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    ctx: Annotated[OrgContext, org_page(Permission.org_manage)],
) -> Any:
    quota = ctx.organization.monthly_usage_quota_nanousd
    quota_tokens = ctx.organization.monthly_usage_quota_tokens
    return await page(
        request,
        "settings.html",
        db,
        principal,
        ctx=ctx,
        active="settings",
        title="Settings",
        quota_usd=usd_string(quota) if quota is not None else "",
        quota_tokens=str(quota_tokens) if quota_tokens is not None else "",
    )


def parse_token_count(text: str) -> int | None:
    """A token count as typed: digits, thousands separated or not ("100,000", "100 000"); empty is None.

    Raises ``ValueError`` for anything else (a decimal, a sign, an exponent, a unit).
    """
    digits = text.strip()
    for separator in (",", "_", " ", "\u00a0", "\u202f"):  # the separators people type or paste
        digits = digits.replace(separator, "")
    if not digits:
        return None
    if not digits.isascii() or not digits.isdigit():
        raise ValueError(text)
    return int(digits)


@router.post("/organizations/{org_id}/settings")
async def settings_submit(
    db: DB,
    ctx: Annotated[OrgContext, org_page(Permission.org_manage)],
    name: Annotated[str, Form(max_length=200)],
    opt_out_training_providers: Annotated[bool, Form()] = False,
    usage_analytics_enabled: Annotated[bool, Form()] = False,
    monthly_usage_quota_usd: Annotated[str, Form(max_length=40)] = "",
    has_quota_field: Annotated[bool, Form()] = False,
    monthly_usage_quota_tokens: Annotated[str, Form(max_length=40)] = "",
    has_token_quota_field: Annotated[bool, Form()] = False,
) -> Any:
    here = f"/organizations/{ctx.organization_id}/settings"
    # The form marks that it carries the quota field (an empty field arrives as absent): empty is no quota.
    quota: int | Unset | None = UNSET
    if has_quota_field:
        try:
            quota = parse_usd(monthly_usage_quota_usd) if monthly_usage_quota_usd.strip() else None
        except ValueError:
            return redirect(here, error="The monthly usage quota must be an amount in USD, such as 500.00.")
    # Its own marker: a form from before the token quota (a page left open) keeps the token quota as it is.
    quota_tokens: int | Unset | None = UNSET
    if has_token_quota_field:
        try:
            quota_tokens = parse_token_count(monthly_usage_quota_tokens)
        except ValueError:
            return redirect(
                here, error="The monthly token quota must be a whole number of tokens, such as 100,000."
            )
    return await form_action(
        db,
        lambda: organizations.update_settings(
            db,
            ctx,
            name=name,
            opt_out_training_providers=opt_out_training_providers,
            usage_analytics_enabled=usage_analytics_enabled,
            monthly_usage_quota_nanousd=quota,
            monthly_usage_quota_tokens=quota_tokens,
        ),
        success=here,
        failure=here,
        notice="Settings saved.",
    )


@router.post("/organizations/{org_id}/seats")
async def seats_submit(
    db: DB,
    ctx: Annotated[OrgContext, org_page(Permission.seats_manage)],
    settings: AppSettings,
    seat_limit: Annotated[int, Form(ge=1, le=100_000)],
) -> Any:
    """Seats belong to the subscription: additions are invoiced pro rata, removals wait for the next period.
    The subscription page shows the cost first; this form (members page) applies the same change."""
    here = f"/organizations/{ctx.organization_id}/members"

    async def change() -> Any:
        preview, _ = await subscriptions.change_seats(
            db, ctx.organization, seat_limit, settings=settings, actor=ctx.actor
        )
        return preview

    return await form_action(
        db,
        change,
        success=here,
        failure=here,
        notice=f"Seats changed to {seat_limit}; see the Subscription page for the charge and its date.",
    )


@router.get("/organizations/{org_id}/activity")
async def activity_page(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    ctx: Annotated[OrgContext, org_page(Permission.audit_view)],
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Any:
    events, next_cursor = await audit.list(db, ctx.organization_id, limit=30, cursor=cursor)
    return await page(
        request,
        "activity.html",
        db,
        principal,
        ctx=ctx,
        active="activity",
        title="Activity log",
        events=events,
        next_cursor=next_cursor,
    )
