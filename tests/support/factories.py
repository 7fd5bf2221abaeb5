"""Small factory functions that build data through the real services and commit it."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from http.cookies import SimpleCookie
from typing import Any, TypeVar

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Request
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.accounts.auth import SESSION_COOKIE
from tokenboard.accounts.service import accounts
from tokenboard.audit.service import Actor
from tokenboard.kit.context import ClientInfo
from tokenboard.kit.csrf import CSRF_COOKIE
from tokenboard.kit.db import utcnow
from tokenboard.kit.security import hash_password, hash_token, new_token, sign
from tokenboard.members.roles import Role
from tokenboard.members.service import INVITATION_PREFIX
from tokenboard.models import ApiKey, Invitation, Membership, Organization, Team, User, Workspace
from tokenboard.organizations.auth import OrgContext
from tokenboard.organizations.service import organizations

T = TypeVar("T")
PASSWORD = "correct horse battery"
_PASSWORD_HASH = hash_password(PASSWORD)  # hashing once keeps the suite fast; argon2 is slow on purpose
_counter = itertools.count(1)
TEST_CLIENT = ClientInfo(ip_address="127.0.0.1", user_agent="pytest")
CSRF_VALUE = "test-csrf-cookie"
COOKIE_DOMAIN = "testserver.local"


@dataclass
class OrgSetup:
    """An organization with one user in every role, a team, a workspace and a pending invitation."""

    organization: Organization
    users: dict[Role, User]
    memberships: dict[Role, Membership]
    team: Team
    workspace: Workspace
    invitation: Invitation
    invitation_token: str
    api_key: ApiKey
    api_key_secret: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> uuid.UUID:
        return self.organization.id


class Factory:
    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with self.app.state.sessionmaker() as session:
            result = await work(session)
            await session.commit()
            return result

    async def user(self, email: str | None = None, name: str | None = None, operator: bool = False) -> User:
        n = next(_counter)
        user = User(
            email=(email or f"user{n}-{uuid.uuid4().hex[:6]}@example.com").lower(),
            name=name or f"User {n}",
            password_hash=_PASSWORD_HASH,
            is_operator=operator,
        )

        async def work(session: AsyncSession) -> User:
            session.add(user)
            await session.flush()
            return user

        return await self.run(work)

    async def org(self, owner: User, name: str = "Org", seats: int = 10) -> Organization:
        return await self.run(
            lambda s: organizations.create(
                s, name=name, owner=owner, actor=Actor.of(owner, TEST_CLIENT), seat_limit=seats
            )
        )

    async def add_member(self, org: Organization, user: User, role: Role) -> Membership:
        membership = Membership(organization_id=org.id, user_id=user.id, role=role.value)

        async def work(session: AsyncSession) -> Membership:
            session.add(membership)
            await session.flush()
            return membership

        return await self.run(work)

    async def team(self, org: Organization, name: str = "Platform") -> Team:
        team = Team(organization_id=org.id, name=name)
        return await self.run(lambda s: self._add(s, team))

    async def workspace(self, org: Organization, name: str = "web-app", status: str = "active") -> Workspace:
        workspace = Workspace(organization_id=org.id, name=name, status=status)
        return await self.run(lambda s: self._add(s, workspace))

    async def invitation(
        self,
        org: Organization,
        email: str,
        role: Role = Role.member,
        expires_in: timedelta = timedelta(days=7),
    ) -> tuple[Invitation, str]:
        token = new_token(INVITATION_PREFIX)
        invitation = Invitation(
            organization_id=org.id,
            email=email.lower(),
            role=role.value,
            token_hash=hash_token(token),
            expires_at=utcnow() + expires_in,
        )
        return await self.run(lambda s: self._add(s, invitation)), token

    async def org_with_roles(self, name: str = "Org", seats: int = 20) -> OrgSetup:
        owner = await self.user(name=f"{name} Owner")
        org = await self.org(owner, name=name, seats=seats)
        users = {Role.owner: owner}
        memberships: dict[Role, Membership] = {}
        for role in (Role.admin, Role.billing_manager, Role.member):
            users[role] = await self.user(name=f"{name} {role.label}")
            memberships[role] = await self.add_member(org, users[role], role)
        memberships[Role.owner] = await self.run(lambda s: self._membership_of(s, org, owner))
        team = await self.team(org)
        workspace = await self.workspace(org)
        invitation, token = await self.invitation(org, f"invitee-{uuid.uuid4().hex[:6]}@example.com")
        key, secret = await self.api_key(org, workspace, users[Role.member])
        return OrgSetup(org, users, memberships, team, workspace, invitation, token, key, secret)

    async def api_key(
        self, org: Organization, workspace: Workspace, user: User, allowed_models: list[str] | None = None
    ) -> tuple[ApiKey, str]:
        secret = new_token("tb_")
        key = ApiKey(
            organization_id=org.id,
            workspace_id=workspace.id,
            user_id=user.id,
            name=f"key {next(_counter)}",
            key_hash=hash_token(secret),
            key_hint=secret[:7] + "…",
            allowed_models=allowed_models,
        )
        return await self.run(lambda s: self._add(s, key)), secret

    async def session_token(self, user: User) -> str:
        new = await self.run(
            lambda s: accounts.start_session(s, user, client=TEST_CLIENT, settings=self.app.state.settings)
        )
        return new.token

    async def personal_token(self, user: User) -> str:
        new = await self.run(
            lambda s: accounts.create_token(s, user, name="test", expires_in_days=None, client=TEST_CLIENT)
        )
        return new.token

    def anonymous(self, *, csrf: bool = True) -> AsyncClient:
        """A client like a browser running our pages: it echoes the CSRF cookie's token in a header."""
        secret = self.app.state.settings.secret_key

        async def add_csrf_header(request: Request) -> None:
            cookies = SimpleCookie(request.headers.get("cookie", ""))
            if CSRF_COOKIE in cookies and "x-csrf-token" not in request.headers:
                request.headers["X-CSRF-Token"] = sign(secret, "csrf:" + cookies[CSRF_COOKIE].value)

        hooks = {"request": [add_csrf_header]} if csrf else {}
        client = AsyncClient(
            transport=ASGITransport(app=self.app), base_url="http://testserver", event_hooks=hooks
        )
        client.cookies.set(CSRF_COOKIE, CSRF_VALUE, domain=COOKIE_DOMAIN)
        return client

    async def client_for(self, user: User, *, csrf: bool = True) -> AsyncClient:
        client = self.anonymous(csrf=csrf)
        client.cookies.set(SESSION_COOKIE, await self.session_token(user), domain=COOKIE_DOMAIN)
        return client

    def csrf_token(self) -> str:
        return sign(self.app.state.settings.secret_key, "csrf:" + CSRF_VALUE)

    @staticmethod
    async def org_context(session: AsyncSession, org: Organization, user: User) -> OrgContext:
        """``user`` acting in ``org`` within ``session``, as a route's ``require_org`` would give it."""
        organization = await session.get(Organization, org.id)
        member = await session.get(User, user.id)
        assert organization is not None and member is not None
        membership = await Factory._membership_of(session, organization, member)
        return OrgContext(organization=organization, membership=membership, user=member, client=TEST_CLIENT)

    @staticmethod
    async def _add(session: AsyncSession, obj: T) -> T:
        session.add(obj)
        await session.flush()
        return obj

    @staticmethod
    async def _membership_of(session: AsyncSession, org: Organization, user: User) -> Membership:
        from tokenboard.members import repository

        membership = await repository.get_member_by_user(session, org.id, user.id)
        assert membership is not None
        return membership
