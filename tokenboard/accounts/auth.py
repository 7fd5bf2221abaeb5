"""Typed auth dependencies: who is calling, by session cookie or by personal access token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.accounts.service import PAT_PREFIX, accounts
from tokenboard.kit.errors import NotAuthenticated, PermissionDenied
from tokenboard.kit.routing import get_db
from tokenboard.models import PersonalAccessToken, User, UserSession

SESSION_COOKIE = "tb_session"

_bearer = HTTPBearer(auto_error=False, description="A personal access token (tbp_…)")


@dataclass(frozen=True, slots=True)
class Principal:
    user: User
    session: UserSession | None = None
    token: PersonalAccessToken | None = None


async def optional_principal(
    request: Request,
    db: Annotated[AsyncSession, Depends(get_db)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal | None:
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    principal: Principal | None = None
    if credentials is not None:
        if not credentials.credentials.startswith(PAT_PREFIX):
            raise NotAuthenticated("The bearer token is not a Tokenboard personal access token.")
        found = await accounts.resolve_token(db, credentials.credentials)
        if found is None:
            raise NotAuthenticated("The access token is not valid, expired or was revoked.")
        principal = Principal(user=found[0], token=found[1])
    elif cookie := request.cookies.get(SESSION_COOKIE):
        resolved = await accounts.resolve_session(db, cookie, request.app.state.settings)
        if resolved is not None:
            principal = Principal(user=resolved[0], session=resolved[1])
    request.state.principal = principal
    return principal


async def require_principal(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    if principal is None:
        raise NotAuthenticated()
    return principal


async def require_operator(principal: Annotated[Principal, Depends(require_principal)]) -> Principal:
    if not principal.user.is_operator:
        raise PermissionDenied("Only operators of this installation can do this.")
    return principal


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]
CurrentPrincipal = Annotated[Principal, Depends(require_principal)]
OperatorPrincipal = Annotated[Principal, Depends(require_operator)]
