"""Accounts: sign-up, sign-in with throttling, sessions, password changes and personal access tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.accounts import repository
from tokenboard.audit.service import Actor, audit
from tokenboard.config import Settings
from tokenboard.kit.context import ClientInfo
from tokenboard.kit.db import utcnow
from tokenboard.kit.errors import BadRequest, Conflict, NotAuthenticated, NotFound, TooManyRequests
from tokenboard.kit.ratelimit import FailureCounter
from tokenboard.kit.security import (
    MIN_PASSWORD_LENGTH,
    hash_password,
    hash_token,
    new_token,
    password_needs_rehash,
    verify_password,
)
from tokenboard.models import AccountEvent, PersonalAccessToken, User, UserSession

PAT_PREFIX = "tbp_"
LOGIN_FAILED = "Email or password is incorrect."


@dataclass(frozen=True, slots=True)
class NewSession:
    record: UserSession
    token: str


@dataclass(frozen=True, slots=True)
class NewToken:
    record: PersonalAccessToken
    token: str


def normalize_email(email: str) -> str:
    return email.strip().lower()


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadRequest(f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > 512:
        raise BadRequest("Choose a password of at most 512 characters.")


class AccountService:
    async def create_user(
        self,
        session: AsyncSession,
        *,
        email: str,
        name: str,
        password: str,
        client: ClientInfo,
        is_operator: bool = False,
    ) -> User:
        """Sign up. The email is unique across the installation."""
        email = normalize_email(email)
        name = name.strip()
        if not name:
            raise BadRequest("Enter your name.")
        check_password_strength(password)
        if await repository.get_user_by_email(session, email) is not None:
            raise Conflict("An account with this email already exists. Log in instead.")
        user = User(email=email, name=name, password_hash=hash_password(password), is_operator=is_operator)
        session.add(user)
        await session.flush()
        self._account_event(session, user, "user.signed_up", client)
        return user

    async def authenticate(
        self,
        session: AsyncSession,
        *,
        email: str,
        password: str,
        client: ClientInfo,
        counter: FailureCounter,
        settings: Settings,
    ) -> User:
        """Check a password, throttled per account and per address. Unknown and known emails look alike."""
        email = normalize_email(email)
        window = settings.login_window_seconds
        account_key = f"login:account:{email}"
        address_key = f"login:ip:{client.ip_address or 'unknown'}"
        if (
            await counter.count(account_key, window) >= settings.login_max_failures_per_account
            or await counter.count(address_key, window) >= settings.login_max_failures_per_address
        ):
            raise TooManyRequests(
                "Too many failed sign-in attempts. Wait a few minutes and try again.", retry_after=window
            )
        user = await repository.get_user_by_email(session, email)
        if not verify_password(user.password_hash if user else None, password) or user is None:
            await counter.add(account_key, window)
            await counter.add(address_key, window)
            if user is not None:
                self._account_event(session, user, "user.login_failed", client)
            raise NotAuthenticated(LOGIN_FAILED)
        await counter.clear(account_key)
        if password_needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        return user

    async def start_session(
        self,
        session: AsyncSession,
        user: User,
        *,
        client: ClientInfo,
        settings: Settings,
        replaces: uuid.UUID | None = None,
    ) -> NewSession:
        """A fresh session id at every login; the session the browser had before is dropped."""
        if replaces is not None:
            await repository.delete_session(session, replaces)
        now = utcnow()
        token = new_token()
        record = UserSession(
            user_id=user.id,
            token_hash=hash_token(token),
            expires_at=now + timedelta(days=settings.session_days),
            last_seen_at=now,
            ip_address=client.ip_address,
            user_agent=client.user_agent,
        )
        session.add(record)
        user.last_active_at = now
        self._account_event(session, user, "user.logged_in", client)
        await self._audit_in_each_org(session, user, "user.signed_in", client)
        await session.flush()
        return NewSession(record=record, token=token)

    async def end_session(
        self, session: AsyncSession, user: User, record: UserSession, client: ClientInfo
    ) -> None:
        await repository.delete_session(session, record.id)
        self._account_event(session, user, "user.logged_out", client)

    async def resolve_session(
        self, session: AsyncSession, token: str, settings: Settings
    ) -> tuple[User, UserSession] | None:
        record = await repository.get_session_by_hash(session, hash_token(token))
        now = utcnow()
        if record is None or record.expires_at <= now:
            return None
        user = await repository.get_user(session, record.user_id)
        if user is None:
            return None
        if now - record.last_seen_at > timedelta(minutes=1):
            record.last_seen_at = now
            record.expires_at = now + timedelta(days=settings.session_days)
            user.last_active_at = now
        return user, record

    async def resolve_token(
        self, session: AsyncSession, token: str
    ) -> tuple[User, PersonalAccessToken] | None:
        record = await repository.get_token_by_hash(session, hash_token(token))
        now = utcnow()
        if record is None or record.revoked_at is not None:
            return None
        if record.expires_at is not None and record.expires_at <= now:
            return None
        user = await repository.get_user(session, record.user_id)
        if user is None:
            return None
        if record.last_used_at is None or now - record.last_used_at > timedelta(minutes=1):
            record.last_used_at = now
            user.last_active_at = now
        return user, record

    async def update_profile(
        self, session: AsyncSession, user: User, *, name: str | None, email: str | None, client: ClientInfo
    ) -> User:
        before = {"name": user.name, "email": user.email}
        if name is not None:
            if not name.strip():
                raise BadRequest("Enter your name.")
            user.name = name.strip()
        if email is not None and normalize_email(email) != user.email:
            email = normalize_email(email)
            if await repository.get_user_by_email(session, email) is not None:
                raise Conflict("Another account already uses this email.")
            user.email = email
        after = {"name": user.name, "email": user.email}
        if after != before:
            self._account_event(
                session, user, "user.profile_updated", client, {"before": before, "after": after}
            )
            await self._audit_in_each_org(session, user, "user.profile_updated", client, before, after)
        await session.flush()
        return user

    async def change_password(
        self,
        session: AsyncSession,
        user: User,
        *,
        current_password: str,
        new_password: str,
        keep_session: uuid.UUID | None,
        client: ClientInfo,
    ) -> int:
        """Change the password and end every other session of the user. Returns how many ended."""
        if not verify_password(user.password_hash, current_password):
            raise BadRequest("The current password is incorrect.")
        check_password_strength(new_password)
        user.password_hash = hash_password(new_password)
        ended = await repository.delete_sessions_of_user(session, user.id, keep=keep_session)
        self._account_event(session, user, "user.password_changed", client, {"sessions_ended": ended})
        await self._audit_in_each_org(session, user, "user.password_changed", client)
        return ended

    async def create_token(
        self, session: AsyncSession, user: User, *, name: str, expires_in_days: int | None, client: ClientInfo
    ) -> NewToken:
        name = name.strip()
        if not name:
            raise BadRequest("Give the token a name.")
        token = new_token(PAT_PREFIX)
        record = PersonalAccessToken(
            user_id=user.id,
            name=name,
            token_hash=hash_token(token),
            token_hint=token[:8] + "…",
            expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
        )
        session.add(record)
        await session.flush()
        self._account_event(
            session, user, "token.created", client, {"token_id": str(record.id), "name": name}
        )
        return NewToken(record=record, token=token)

    async def list_tokens(self, session: AsyncSession, user: User) -> list[PersonalAccessToken]:
        return await repository.list_tokens(session, user.id)

    async def revoke_token(
        self, session: AsyncSession, user: User, token_id: uuid.UUID, client: ClientInfo
    ) -> PersonalAccessToken:
        record = await repository.get_token_of_user(session, user.id, token_id)
        if record is None:
            raise NotFound("No such token.")
        if record.revoked_at is None:
            record.revoked_at = utcnow()
            self._account_event(session, user, "token.revoked", client, {"token_id": str(record.id)})
        return record

    async def list_events(self, session: AsyncSession, user: User, limit: int = 20) -> list[AccountEvent]:
        return await repository.list_account_events(session, user.id, limit)

    def _account_event(
        self,
        session: AsyncSession,
        user: User,
        action: str,
        client: ClientInfo,
        data: dict[str, Any] | None = None,
    ) -> None:
        session.add(
            AccountEvent(
                user_id=user.id,
                action=action,
                ip_address=client.ip_address,
                user_agent=client.user_agent,
                data=data,
            )
        )

    async def _audit_in_each_org(
        self,
        session: AsyncSession,
        user: User,
        action: str,
        client: ClientInfo,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> None:
        # Account-level events also appear in the audit log of every organization the user belongs to.
        org_ids = await repository.organization_ids_of_user(session, user.id)
        actor = Actor.of(user, client)
        for org_id in org_ids:
            audit.record(
                session,
                organization_id=org_id,
                actor=actor,
                action=action,
                target_type="user",
                target_id=user.id,
                target_label=user.email,
                before=before,
                after=after,
            )


accounts = AccountService()
