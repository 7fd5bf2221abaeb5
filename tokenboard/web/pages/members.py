"""Members and invitations. Each page calls the same service as its JSON twin under /api/v1."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Form, Query, Request

from tokenboard.accounts.auth import CurrentPrincipal, OptionalPrincipal
from tokenboard.audit.service import Actor
from tokenboard.kit.deps import DB, AppMailer, AppSettings, Client
from tokenboard.kit.errors import NotAuthenticated, TokenboardError
from tokenboard.kit.routing import make_router
from tokenboard.members.roles import ROLE_PERMISSIONS, Permission, Role, can_grant
from tokenboard.members.service import invitations, members
from tokenboard.organizations.auth import OrgContext
from tokenboard.teams.service import teams
from tokenboard.web.support import form_action, org_page, page, redirect

router = make_router()


@router.get("/organizations/{org_id}/members")
async def members_page(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    ctx: Annotated[OrgContext, org_page(Permission.members_view)],
) -> Any:
    rows = await members.list(db, ctx)
    pending = await invitations.list_pending(db, ctx) if ctx.can(Permission.invitations_manage) else []
    grantable = [r for r in Role if can_grant(ctx.role.value, r.value)]
    return await page(
        request,
        "members.html",
        db,
        principal,
        ctx=ctx,
        active="members",
        title="Members",
        rows=rows,
        pending=pending,
        grantable=grantable,
        roles=list(Role),
        team_rows=await teams.list(db, ctx),
        role_permissions=ROLE_PERMISSIONS,
        new_link=None,
    )


@router.post("/organizations/{org_id}/invitations")
async def invite_submit(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    settings: AppSettings,
    mailer: AppMailer,
    ctx: Annotated[OrgContext, org_page(Permission.invitations_manage)],
    email: Annotated[str, Form(max_length=320)],
    role: Annotated[str, Form(max_length=32)],
) -> Any:
    here = f"/organizations/{ctx.organization_id}/members"
    try:
        await invitations.create(db, ctx, email=email, role=role, settings=settings, mailer=mailer)
    except TokenboardError as exc:
        await db.rollback()
        return redirect(here, error=exc.message)
    return redirect(here, notice=f"Invitation sent to {email.strip().lower()}.")


@router.post("/organizations/{org_id}/invitations/{invitation_id}/resend")
async def invite_resend(
    invitation_id: uuid.UUID,
    db: DB,
    settings: AppSettings,
    mailer: AppMailer,
    ctx: Annotated[OrgContext, org_page(Permission.invitations_manage)],
) -> Any:
    here = f"/organizations/{ctx.organization_id}/members"
    return await form_action(
        db,
        lambda: invitations.resend(db, ctx, invitation_id, settings=settings, mailer=mailer),
        success=here,
        failure=here,
        notice="Invitation sent again with a new link.",
    )


@router.post("/organizations/{org_id}/invitations/{invitation_id}/revoke")
async def invite_revoke(
    invitation_id: uuid.UUID, db: DB, ctx: Annotated[OrgContext, org_page(Permission.invitations_manage)]
) -> Any:
    here = f"/organizations/{ctx.organization_id}/members"
    return await form_action(
        db,
        lambda: invitations.revoke(db, ctx, invitation_id),
        success=here,
        failure=here,
        notice="Invitation revoked.",
    )


@router.post("/organizations/{org_id}/members/{member_id}/role")
async def member_role_submit(
    member_id: uuid.UUID,
    db: DB,
    ctx: Annotated[OrgContext, org_page(Permission.members_manage)],
    role: Annotated[str, Form(max_length=32)],
) -> Any:
    here = f"/organizations/{ctx.organization_id}/members"
    return await form_action(
        db,
        lambda: members.change_role(db, ctx, member_id, role),
        success=here,
        failure=here,
        notice="Role changed.",
    )


@router.post("/organizations/{org_id}/members/{member_id}/team")
async def member_team_submit(
    member_id: uuid.UUID,
    db: DB,
    ctx: Annotated[OrgContext, org_page(Permission.members_manage)],
    team_id: Annotated[str, Form(max_length=64)] = "",
) -> Any:
    here = f"/organizations/{ctx.organization_id}/members"
    try:
        team = uuid.UUID(team_id) if team_id else None
    except ValueError:
        return redirect(here, error="Choose a team from the list.")
    return await form_action(
        db,
        lambda: members.set_team(db, ctx, member_id, team),
        success=here,
        failure=here,
        notice="Team changed.",
    )


@router.post("/organizations/{org_id}/members/{member_id}/remove")
async def member_remove_submit(
    member_id: uuid.UUID, db: DB, ctx: Annotated[OrgContext, org_page(Permission.org_view)]
) -> Any:
    here = f"/organizations/{ctx.organization_id}/members"
    leaving = False
    try:
        membership, _ = await members.get(db, ctx, member_id)
        leaving = membership.user_id == ctx.user.id
        await members.remove(db, ctx, member_id)
    except TokenboardError as exc:
        if exc.status_code in (403, 404):
            raise
        await db.rollback()
        return redirect(here, error=exc.message)
    if leaving:
        return redirect("/login", notice=f"You left {ctx.organization.name}.")
    return redirect(here, notice="Member removed.")


@router.get("/invitations/accept")
async def invitation_page(
    request: Request, db: DB, principal: OptionalPrincipal, token: Annotated[str, Query(max_length=200)] = ""
) -> Any:
    preview = None
    problem = None
    try:
        preview = await invitations.preview(db, token)
        invitations.check_usable(preview.invitation)
    except TokenboardError as exc:
        problem = exc.message
    return await page(
        request,
        "invitation.html",
        db,
        principal,
        title="Invitation",
        preview=preview,
        problem=problem,
        token=token,
    )


@router.post("/invitations/accept")
async def invitation_accept(
    db: DB, principal: OptionalPrincipal, client: Client, token: Annotated[str, Form(max_length=200)]
) -> Any:
    if principal is None:
        raise NotAuthenticated()
    here = f"/invitations/accept?token={token}"
    try:
        membership = await invitations.accept(db, token, principal.user, Actor.of(principal.user, client))
    except TokenboardError as exc:
        await db.rollback()
        return redirect(here, error=exc.message)
    return redirect(f"/organizations/{membership.organization_id}/overview", notice="Welcome aboard.")
