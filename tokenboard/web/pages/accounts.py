"""Sign-in, sign-up and the account pages. Each page calls the same service as its JSON twin under /api/v1."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Form, Query, Request
from fastapi.responses import RedirectResponse

from tokenboard.accounts.auth import CurrentPrincipal, OptionalPrincipal
from tokenboard.accounts.cookies import end_browser_session, start_browser_session
from tokenboard.accounts.service import accounts
from tokenboard.audit.service import Actor
from tokenboard.kit.deps import DB, AppSettings, Client, Counter
from tokenboard.kit.errors import TokenboardError
from tokenboard.kit.routing import make_router
from tokenboard.members.service import invitations
from tokenboard.organizations.service import organizations
from tokenboard.web.support import form_action, page, redirect, safe_next

router = make_router()


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
