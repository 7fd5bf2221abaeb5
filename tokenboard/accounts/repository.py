"""SQL for users, sessions, personal access tokens and account events."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.models import AccountEvent, Membership, PersonalAccessToken, User, UserSession


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.execute(select(User).where(User.email == email.lower()))
    return result.scalar_one_or_none()


async def get_session_by_hash(session: AsyncSession, token_hash: str) -> UserSession | None:
    result = await session.execute(select(UserSession).where(UserSession.token_hash == token_hash))
    return result.scalar_one_or_none()


async def delete_session(session: AsyncSession, session_id: uuid.UUID) -> None:
    await session.execute(delete(UserSession).where(UserSession.id == session_id))


async def delete_sessions_of_user(
    session: AsyncSession, user_id: uuid.UUID, *, keep: uuid.UUID | None = None
) -> int:
    stmt = delete(UserSession).where(UserSession.user_id == user_id)
    if keep is not None:
        stmt = stmt.where(UserSession.id != keep)
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


async def get_token_by_hash(session: AsyncSession, token_hash: str) -> PersonalAccessToken | None:
    result = await session.execute(
        select(PersonalAccessToken).where(PersonalAccessToken.token_hash == token_hash)
    )
    return result.scalar_one_or_none()


async def list_tokens(session: AsyncSession, user_id: uuid.UUID) -> list[PersonalAccessToken]:
    result = await session.execute(
        select(PersonalAccessToken)
        .where(PersonalAccessToken.user_id == user_id)
        .order_by(PersonalAccessToken.created_at.desc())
    )
    return list(result.scalars())


async def get_token_of_user(
    session: AsyncSession, user_id: uuid.UUID, token_id: uuid.UUID
) -> PersonalAccessToken | None:
    result = await session.execute(
        select(PersonalAccessToken).where(
            PersonalAccessToken.id == token_id, PersonalAccessToken.user_id == user_id
        )
    )
    return result.scalar_one_or_none()


async def list_account_events(session: AsyncSession, user_id: uuid.UUID, limit: int) -> list[AccountEvent]:
    result = await session.execute(
        select(AccountEvent)
        .where(AccountEvent.user_id == user_id)
        .order_by(AccountEvent.created_at.desc(), AccountEvent.id.desc())
        .limit(limit)
    )
    return list(result.scalars())


async def organization_ids_of_user(session: AsyncSession, user_id: uuid.UUID) -> list[uuid.UUID]:
    result = await session.execute(select(Membership.organization_id).where(Membership.user_id == user_id))
    return list(result.scalars())
