"""REST API for accounts: sign-up, login, profile, password and personal access tokens."""

from __future__ import annotations

import uuid

from fastapi import Request, Response, status

from tokenboard.accounts import schemas
from tokenboard.accounts.auth import CurrentPrincipal, OptionalPrincipal
from tokenboard.accounts.cookies import end_browser_session, start_browser_session
from tokenboard.accounts.service import accounts
from tokenboard.kit.deps import DB, AppSettings, Client, Counter
from tokenboard.kit.routing import make_router
from tokenboard.organizations.service import organizations

router = make_router(prefix="/api/v1", tags=["accounts"])


@router.post("/auth/signup", response_model=schemas.User, status_code=status.HTTP_201_CREATED)
async def signup(
    body: schemas.SignupCreate,
    request: Request,
    response: Response,
    db: DB,
    settings: AppSettings,
    client: Client,
) -> object:
    user = await accounts.create_user(
        db, email=body.email, name=body.name, password=body.password, client=client
    )
    new = await accounts.start_session(db, user, client=client, settings=settings)
    start_browser_session(request, response, new.token, settings)
    return user


@router.post("/auth/login", response_model=schemas.User)
async def login(
    body: schemas.LoginCreate,
    request: Request,
    response: Response,
    db: DB,
    settings: AppSettings,
    client: Client,
    counter: Counter,
    principal: OptionalPrincipal,
) -> object:
    user = await accounts.authenticate(
        db, email=body.email, password=body.password, client=client, counter=counter, settings=settings
    )
    previous = principal.session.id if principal and principal.session else None
    new = await accounts.start_session(db, user, client=client, settings=settings, replaces=previous)
    start_browser_session(request, response, new.token, settings)
    return user


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(
    request: Request,
    response: Response,
    db: DB,
    settings: AppSettings,
    client: Client,
    principal: OptionalPrincipal,
) -> None:
    if principal is not None and principal.session is not None:
        await accounts.end_session(db, principal.user, principal.session, client)
    end_browser_session(request, response, settings)


@router.get("/me", response_model=schemas.Me)
async def me(principal: CurrentPrincipal, db: DB) -> object:
    orgs = await organizations.list_for_user(db, principal.user)
    return schemas.Me(
        user=schemas.User.model_validate(principal.user),
        organizations=[schemas.OrganizationMembership(id=o.id, name=o.name, role=m.role) for o, m in orgs],
    )


@router.patch("/me", response_model=schemas.User)
async def update_profile(
    body: schemas.ProfileUpdate, principal: CurrentPrincipal, db: DB, client: Client
) -> object:
    return await accounts.update_profile(db, principal.user, name=body.name, email=body.email, client=client)


@router.post("/me/password", response_model=schemas.PasswordChanged)
async def change_password(
    body: schemas.PasswordChange, principal: CurrentPrincipal, db: DB, client: Client
) -> object:
    ended = await accounts.change_password(
        db,
        principal.user,
        current_password=body.current_password,
        new_password=body.new_password,
        keep_session=principal.session.id if principal.session else None,
        client=client,
    )
    return schemas.PasswordChanged(sessions_ended=ended)


@router.get("/me/tokens", response_model=list[schemas.Token])
async def list_tokens(principal: CurrentPrincipal, db: DB) -> object:
    return await accounts.list_tokens(db, principal.user)


@router.post("/me/tokens", response_model=schemas.TokenCreated, status_code=status.HTTP_201_CREATED)
async def create_token(
    body: schemas.TokenCreate, principal: CurrentPrincipal, db: DB, client: Client
) -> object:
    new = await accounts.create_token(
        db, principal.user, name=body.name, expires_in_days=body.expires_in_days, client=client
    )
    return schemas.TokenCreated.model_validate(
        {**schemas.Token.model_validate(new.record).model_dump(), "token": new.token}
    )


@router.delete("/me/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_token(token_id: uuid.UUID, principal: CurrentPrincipal, db: DB, client: Client) -> None:
    await accounts.revoke_token(db, principal.user, token_id, client)


@router.get("/me/events", response_model=list[schemas.AccountEvent])
async def account_events(principal: CurrentPrincipal, db: DB) -> object:
    return await accounts.list_events(db, principal.user, limit=50)
