"""The HTML pages. Each calls the same service as its JSON twin under /api/v1."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Form, Query, Request
from fastapi.responses import RedirectResponse

from tokenboard.accounts.auth import CurrentPrincipal, OptionalPrincipal
from tokenboard.accounts.cookies import end_browser_session, start_browser_session
from tokenboard.accounts.service import accounts
from tokenboard.api_keys.service import api_keys
from tokenboard.audit.service import Actor, audit
from tokenboard.kit.deps import DB, AppMailer, AppSettings, Client, Counter
from tokenboard.kit.errors import NotAuthenticated, TokenboardError
from tokenboard.kit.routing import make_router
from tokenboard.members.roles import ROLE_PERMISSIONS, Permission, Role, can_grant
from tokenboard.members.service import invitations, members
from tokenboard.model_access.schemas import ModelAccessPage, ModelAccessQuery
from tokenboard.model_access.service import model_access
from tokenboard.organizations.auth import OrgContext, require_org
from tokenboard.organizations.service import organizations
from tokenboard.teams.service import teams
from tokenboard.web.support import form_action, page, redirect, safe_next
from tokenboard.workspaces.service import workspaces

router = make_router()

Text = Annotated[str, Form(max_length=500)]
OptionalText = Annotated[str, Form(max_length=500)]


def org_page(permission: Permission) -> Any:
    return Depends(require_org(permission))


# ---------------------------------------------------------------- sign-in


@router.get("/")
async def home(principal: OptionalPrincipal, db: DB) -> RedirectResponse:
    if principal is None:
        return redirect("/login")
    orgs = await organizations.list_for_user(db, principal.user)
    last = principal.user.last_organization_id
    for org, _ in orgs:
        if org.id == last:
            return redirect(f"/organizations/{org.id}/overview")
    if orgs:
        return redirect(f"/organizations/{orgs[0][0].id}/overview")
    return redirect("/organizations")


@router.get("/login")
async def login_page(
    request: Request,
    db: DB,
    principal: OptionalPrincipal,
    next: Annotated[str | None, Query(max_length=500)] = None,
) -> Any:
    return await page(request, "login.html", db, None, title="Log in", next=safe_next(next, ""), email="")


@router.post("/login")
async def login_submit(
    request: Request,
    db: DB,
    settings: AppSettings,
    client: Client,
    counter: Counter,
    principal: OptionalPrincipal,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=512)],
    next: Annotated[str, Form(max_length=500)] = "",
) -> Any:
    try:
        user = await accounts.authenticate(
            db, email=email, password=password, client=client, counter=counter, settings=settings
        )
    except TokenboardError as exc:
        return await page(
            request,
            "login.html",
            db,
            None,
            title="Log in",
            login_error=exc.message,
            next=safe_next(next, ""),
            email=email,
            status_code=exc.status_code,
        )
    previous = principal.session.id if principal and principal.session else None
    new = await accounts.start_session(db, user, client=client, settings=settings, replaces=previous)
    response = redirect(safe_next(next, "/"))
    start_browser_session(request, response, new.token, settings)
    return response


@router.get("/signup")
async def signup_page(
    request: Request,
    db: DB,
    invitation: Annotated[str | None, Query(max_length=200)] = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
) -> Any:
    return await page(
        request,
        "signup.html",
        db,
        None,
        title="Sign up",
        invitation=invitation or "",
        email=email or "",
        name="",
    )


@router.post("/signup")
async def signup_submit(
    request: Request,
    db: DB,
    settings: AppSettings,
    client: Client,
    email: Annotated[str, Form(max_length=320)],
    name: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=512)],
    invitation: Annotated[str, Form(max_length=200)] = "",
) -> Any:
    try:
        user = await accounts.create_user(db, email=email, name=name, password=password, client=client)
        joined = None
        if invitation:
            joined = await invitations.accept(db, invitation, user, Actor.of(user, client))
    except TokenboardError as exc:
        await db.rollback()
        return await page(
            request,
            "signup.html",
            db,
            None,
            title="Sign up",
            signup_error=exc.message,
            invitation=invitation,
            email=email,
            name=name,
            status_code=exc.status_code,
        )
    new = await accounts.start_session(db, user, client=client, settings=settings)
    target = f"/organizations/{joined.organization_id}/overview" if joined else "/organizations?welcome=1"
    response = redirect(target)
    start_browser_session(request, response, new.token, settings)
    return response


@router.post("/logout")
async def logout(
    request: Request, db: DB, settings: AppSettings, client: Client, principal: OptionalPrincipal
) -> Any:
    if principal is not None and principal.session is not None:
        await accounts.end_session(db, principal.user, principal.session, client)
    response = redirect("/login", notice="You are logged out.")
    end_browser_session(request, response, settings)
    return response


# ---------------------------------------------------------------- account


@router.get("/account")
async def account_page(request: Request, db: DB, principal: CurrentPrincipal) -> Any:
    return await page(
        request,
        "account.html",
        db,
        principal,
        title="Your account",
        tokens=await accounts.list_tokens(db, principal.user),
        events=await accounts.list_events(db, principal.user, limit=15),
        new_token=None,
    )


@router.post("/account/profile")
async def account_profile(
    db: DB,
    principal: CurrentPrincipal,
    client: Client,
    name: Annotated[str, Form(max_length=200)],
    email: Annotated[str, Form(max_length=320)],
) -> Any:
    return await form_action(
        db,
        lambda: accounts.update_profile(db, principal.user, name=name, email=email, client=client),
        success="/account",
        failure="/account",
        notice="Profile saved.",
    )


@router.post("/account/password")
async def account_password(
    db: DB,
    principal: CurrentPrincipal,
    client: Client,
    current_password: Annotated[str, Form(max_length=512)],
    new_password: Annotated[str, Form(max_length=512)],
) -> Any:
    keep = principal.session.id if principal.session else None
    return await form_action(
        db,
        lambda: accounts.change_password(
            db,
            principal.user,
            current_password=current_password,
            new_password=new_password,
            keep_session=keep,
            client=client,
        ),
        success="/account",
        failure="/account",
        notice="Password changed. Your other sessions were logged out.",
    )


@router.post("/account/tokens")
async def account_create_token(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    client: Client,
    name: Annotated[str, Form(max_length=100)],
) -> Any:
    try:
        new = await accounts.create_token(db, principal.user, name=name, expires_in_days=None, client=client)
    except TokenboardError as exc:
        return redirect("/account", error=exc.message)
    # Rendered directly (not redirected) so the secret is never in a URL or a later page.
    return await page(
        request,
        "account.html",
        db,
        principal,
        title="Your account",
        tokens=await accounts.list_tokens(db, principal.user),
        events=await accounts.list_events(db, principal.user, limit=15),
        new_token=new.token,
        status_code=201,
    )


@router.post("/account/tokens/{token_id}/revoke")
async def account_revoke_token(
    token_id: uuid.UUID, db: DB, principal: CurrentPrincipal, client: Client
) -> Any:
    await accounts.revoke_token(db, principal.user, token_id, client)
    return redirect("/account", notice="Token revoked.")


# ---------------------------------------------------------------- organizations


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
    ctx: Annotated[OrgContext, org_page(Permission.org_view)],
) -> Any:
    view = await organizations.overview(db, ctx)
    return await page(
        request, "overview.html", db, principal, ctx=ctx, active="overview", title="Dashboard", view=view
    )


@router.get("/organizations/{org_id}/settings")
async def settings_page(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    ctx: Annotated[OrgContext, org_page(Permission.org_manage)],
) -> Any:
    return await page(request, "settings.html", db, principal, ctx=ctx, active="settings", title="Settings")


@router.post("/organizations/{org_id}/settings")
async def settings_submit(
    db: DB,
    ctx: Annotated[OrgContext, org_page(Permission.org_manage)],
    name: Annotated[str, Form(max_length=200)],
    opt_out_training_providers: Annotated[bool, Form()] = False,
    usage_analytics_enabled: Annotated[bool, Form()] = False,
) -> Any:
    here = f"/organizations/{ctx.organization_id}/settings"
    return await form_action(
        db,
        lambda: organizations.update_settings(
            db,
            ctx,
            name=name,
            opt_out_training_providers=opt_out_training_providers,
            usage_analytics_enabled=usage_analytics_enabled,
        ),
        success=here,
        failure=here,
        notice="Settings saved.",
    )


@router.post("/organizations/{org_id}/seats")
async def seats_submit(
    db: DB,
    ctx: Annotated[OrgContext, org_page(Permission.seats_manage)],
    seat_limit: Annotated[int, Form(ge=1, le=100_000)],
) -> Any:
    here = f"/organizations/{ctx.organization_id}/members"
    return await form_action(
        db,
        lambda: organizations.set_seat_limit(db, ctx, seat_limit),
        success=here,
        failure=here,
        notice=f"Seats set to {seat_limit}.",
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


# ---------------------------------------------------------------- members and invitations


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


# ---------------------------------------------------------------- teams


@router.get("/organizations/{org_id}/teams")
async def teams_page(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    ctx: Annotated[OrgContext, org_page(Permission.teams_view)],
) -> Any:
    return await page(
        request,
        "teams.html",
        db,
        principal,
        ctx=ctx,
        active="teams",
        title="Teams",
        rows=await teams.list(db, ctx),
    )


@router.post("/organizations/{org_id}/teams")
async def teams_create(
    db: DB,
    ctx: Annotated[OrgContext, org_page(Permission.teams_manage)],
    name: Annotated[str, Form(max_length=120)],
    description: Annotated[str, Form(max_length=500)] = "",
) -> Any:
    here = f"/organizations/{ctx.organization_id}/teams"
    return await form_action(
        db,
        lambda: teams.create(db, ctx, name=name, description=description),
        success=here,
        failure=here,
        notice=f"Team {name.strip()} created.",
    )


@router.get("/organizations/{org_id}/teams/{team_id}")
async def team_page(
    team_id: uuid.UUID,
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    ctx: Annotated[OrgContext, org_page(Permission.teams_view)],
) -> Any:
    team = await teams.get(db, ctx, team_id)
    return await page(
        request,
        "team.html",
        db,
        principal,
        ctx=ctx,
        active="teams",
        title=team.name,
        team=team,
        team_members=await teams.members_of(db, ctx, team),
    )


@router.post("/organizations/{org_id}/teams/{team_id}")
async def team_update(
    team_id: uuid.UUID,
    db: DB,
    ctx: Annotated[OrgContext, org_page(Permission.teams_manage)],
    name: Annotated[str, Form(max_length=120)],
    description: Annotated[str, Form(max_length=500)] = "",
) -> Any:
    here = f"/organizations/{ctx.organization_id}/teams/{team_id}"
    return await form_action(
        db,
        lambda: teams.update(db, ctx, team_id, name=name, description=description),
        success=here,
        failure=here,
        notice="Team saved.",
    )


@router.post("/organizations/{org_id}/teams/{team_id}/delete")
async def team_delete(
    team_id: uuid.UUID, db: DB, ctx: Annotated[OrgContext, org_page(Permission.teams_manage)]
) -> Any:
    here = f"/organizations/{ctx.organization_id}/teams"
    return await form_action(
        db, lambda: teams.delete(db, ctx, team_id), success=here, failure=here, notice="Team deleted."
    )


# ---------------------------------------------------------------- workspaces


@router.get("/organizations/{org_id}/workspaces")
async def workspaces_page(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    ctx: Annotated[OrgContext, org_page(Permission.workspaces_view)],
) -> Any:
    return await page(
        request,
        "workspaces.html",
        db,
        principal,
        ctx=ctx,
        active="workspaces",
        title="Workspaces",
        rows=await workspaces.list(db, ctx),
    )


@router.post("/organizations/{org_id}/workspaces")
async def workspaces_create(
    db: DB,
    ctx: Annotated[OrgContext, org_page(Permission.workspaces_manage)],
    name: Annotated[str, Form(max_length=120)],
    description: Annotated[str, Form(max_length=500)] = "",
) -> Any:
    here = f"/organizations/{ctx.organization_id}/workspaces"
    return await form_action(
        db,
        lambda: workspaces.create(db, ctx, name=name, description=description),
        success=here,
        failure=here,
        notice=f"Workspace {name.strip()} created.",
    )


@router.get("/organizations/{org_id}/workspaces/{workspace_id}")
async def workspace_page(
    workspace_id: uuid.UUID,
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    ctx: Annotated[OrgContext, org_page(Permission.workspaces_view)],
) -> Any:
    workspace = await workspaces.get(db, ctx, workspace_id)
    return await page(
        request,
        "workspace.html",
        db,
        principal,
        ctx=ctx,
        active="workspaces",
        title=workspace.name,
        workspace=workspace,
    )


@router.post("/organizations/{org_id}/workspaces/{workspace_id}")
async def workspace_update(
    workspace_id: uuid.UUID,
    db: DB,
    ctx: Annotated[OrgContext, org_page(Permission.workspaces_manage)],
    name: Annotated[str, Form(max_length=120)],
    description: Annotated[str, Form(max_length=500)] = "",
) -> Any:
    here = f"/organizations/{ctx.organization_id}/workspaces/{workspace_id}"
    return await form_action(
        db,
        lambda: workspaces.update(db, ctx, workspace_id, name=name, description=description),
        success=here,
        failure=here,
        notice="Workspace saved.",
    )


@router.post("/organizations/{org_id}/workspaces/{workspace_id}/{action}")
async def workspace_transition(
    workspace_id: uuid.UUID,
    action: str,
    db: DB,
    ctx: Annotated[OrgContext, org_page(Permission.workspaces_manage)],
) -> Any:
    here = f"/organizations/{ctx.organization_id}/workspaces/{workspace_id}"
    return await form_action(
        db,
        lambda: workspaces.transition(db, ctx, workspace_id, action),
        success=here,
        failure=here,
        notice="Workspace status changed.",
    )


# ---------------------------------------------------------------- API keys


async def _keys_page(request: Request, db: DB, principal: Any, ctx: OrgContext, **extra: Any) -> Any:
    return await page(
        request,
        "keys.html",
        db,
        principal,
        ctx=ctx,
        active="keys",
        title="API keys",
        rows=await api_keys.list(db, ctx),
        workspaces=await workspaces.list(db, ctx, "active"),
        gateway_url=str(request.base_url).rstrip("/") + "/v1",
        **({"new_key": None} | extra),
    )


@router.get("/organizations/{org_id}/keys")
async def keys_page(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    ctx: Annotated[OrgContext, org_page(Permission.keys_use)],
) -> Any:
    return await _keys_page(request, db, principal, ctx)


@router.post("/organizations/{org_id}/keys")
async def keys_create(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    ctx: Annotated[OrgContext, org_page(Permission.keys_use)],
    name: Annotated[str, Form(max_length=100)],
    workspace_id: Annotated[str, Form(max_length=64)],
    allowed_models: Annotated[str, Form(max_length=5000)] = "",
) -> Any:
    here = f"/organizations/{ctx.organization_id}/keys"
    try:
        workspace = uuid.UUID(workspace_id)
    except ValueError:
        return redirect(here, error="Choose a workspace from the list.")
    models = [m for m in allowed_models.replace(",", " ").split() if m] or None
    try:
        new = await api_keys.create(db, ctx, workspace_id=workspace, name=name, allowed_models=models)
    except TokenboardError as exc:
        if exc.status_code in (403, 404):
            raise
        await db.rollback()
        return redirect(here, error=exc.message)
    # Rendered directly, never redirected: the secret must not land in a URL or browser history.
    return await _keys_page(request, db, principal, ctx, new_key=new.secret, status_code=201)


@router.post("/organizations/{org_id}/keys/{key_id}/revoke")
async def keys_revoke(
    key_id: uuid.UUID, db: DB, ctx: Annotated[OrgContext, org_page(Permission.keys_use)]
) -> Any:
    here = f"/organizations/{ctx.organization_id}/keys"
    await api_keys.revoke(db, ctx, key_id)
    return redirect(here, notice="Key revoked. Requests with it are refused from now on.")


# ---------------------------------------------------------------- model access

MODALITIES = ("text", "image", "audio", "video", "embedding")


def _models_page_url(ctx: OrgContext, next_url: str) -> str:
    """Back to the model access page, keeping its filters; never anywhere else."""
    base = f"/organizations/{ctx.organization_id}/models"
    target = safe_next(next_url, base)
    return target if target == base or target.startswith(base + "?") else base


def _with_offset(request: Request, offset: int) -> str:
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "offset" and v != ""]
    return request.url.path + "?" + urlencode([*params, ("offset", str(offset))])


@router.get("/organizations/{org_id}/models")
async def models_page(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    ctx: Annotated[OrgContext, org_page(Permission.models_view)],
    query: Annotated[ModelAccessQuery, Query()],
) -> Any:
    result = await model_access.list(db, ctx, query.filters(), offset=query.offset, limit=query.limit)
    view = ModelAccessPage.of(result)
    end = query.offset + len(view.models)
    return await page(
        request,
        "models.html",
        db,
        principal,
        ctx=ctx,
        active="models",
        title="Model access",
        view=view,
        query=query,
        choices=result.allowed_choices,
        locations=sorted(
            {p.headquarters_country for p in view.providers if p.headquarters_country}
            | {r for p in view.providers for r in p.regions}
        ),
        modalities=MODALITIES,
        here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        shown=(query.offset + 1 if view.models else 0, end),
        prev_url=_with_offset(request, max(query.offset - query.limit, 0)) if query.offset else None,
        next_url=_with_offset(request, end) if end < view.total and view.models else None,
    )


@router.post("/organizations/{org_id}/model-access/providers/{provider_id}")
async def provider_access_submit(
    provider_id: str,
    db: DB,
    ctx: Annotated[OrgContext, org_page(Permission.models_manage)],
    enabled: Annotated[bool, Form()],
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Any:
    back = _models_page_url(ctx, next)
    return await form_action(
        db,
        lambda: model_access.set_provider(db, ctx, provider_id, enabled=enabled),
        success=back,
        failure=back,
        notice=f"{provider_id} {'enabled' if enabled else 'disabled'}. The gateway applies it at once.",
    )


@router.post("/organizations/{org_id}/model-access/models/{model:path}")
async def model_access_submit(
    model: str,
    db: DB,
    ctx: Annotated[OrgContext, org_page(Permission.models_manage)],
    enabled: Annotated[bool, Form()],
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Any:
    back = _models_page_url(ctx, next)
    return await form_action(
        db,
        lambda: model_access.set_model(db, ctx, model, enabled=enabled),
        success=back,
        failure=back,
        notice=f"{model} {'enabled' if enabled else 'disabled'}. The gateway applies it at once.",
    )


@router.post("/organizations/{org_id}/model-access/default-model")
async def default_model_submit(
    db: DB,
    ctx: Annotated[OrgContext, org_page(Permission.models_manage)],
    model_id: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Any:
    back = _models_page_url(ctx, next)
    return await form_action(
        db,
        lambda: model_access.set_default_model(db, ctx, model_id or None),
        success=back,
        failure=back,
        notice=f"Default model set to {model_id}." if model_id else "Default model cleared.",
    )
