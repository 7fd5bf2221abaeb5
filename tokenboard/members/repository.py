"""SQL for memberships and invitations."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.kit.tenancy import scoped
from tokenboard.models import Invitation, Membership, Team, User


async def list_members(
    session: AsyncSession, org_id: uuid.UUID, member_id: uuid.UUID | None = None
) -> list[tuple[Membership, User, Team | None]]:
    """Members with their user and team; only ``member_id`` when given."""
    stmt = (
        scoped(select(Membership, User, Team), Membership, org_id)
        .join(User, User.id == Membership.user_id)
        .outerjoin(
            Team, (Team.organization_id == Membership.organization_id) & (Team.id == Membership.team_id)
        )
        .order_by(User.name, User.email)
    )
    if member_id is not None:
        stmt = stmt.where(Membership.id == member_id)
    return [(m, u, t) for m, u, t in await session.execute(stmt)]


async def get_member(
    session: AsyncSession, org_id: uuid.UUID, member_id: uuid.UUID
) -> tuple[Membership, User] | None:
    stmt = (
        scoped(select(Membership, User), Membership, org_id)
        .join(User, User.id == Membership.user_id)
        .where(Membership.id == member_id)
    )
    row = (await session.execute(stmt)).first()
    return (row[0], row[1]) if row else None


async def get_member_by_user(
    session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID
) -> Membership | None:
    stmt = scoped(select(Membership), Membership, org_id).where(Membership.user_id == user_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_member_by_email(session: AsyncSession, org_id: uuid.UUID, email: str) -> Membership | None:
    stmt = (
        scoped(select(Membership), Membership, org_id)
        .join(User, User.id == Membership.user_id)
        .where(User.email == email)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def count_role(session: AsyncSession, org_id: uuid.UUID, role: str) -> int:
    stmt = scoped(select(func.count()).select_from(Membership), Membership, org_id).where(
        Membership.role == role
    )
    return int(await session.scalar(stmt) or 0)


async def clear_team(session: AsyncSession, org_id: uuid.UUID, team_id: uuid.UUID) -> None:
    await session.execute(
        update(Membership)
        .where(Membership.organization_id == org_id, Membership.team_id == team_id)
        .values(team_id=None)
        .execution_options(synchronize_session="fetch")
    )


async def list_pending_invitations(
    session: AsyncSession, org_id: uuid.UUID, now: datetime
) -> list[Invitation]:
    stmt = (
        scoped(select(Invitation), Invitation, org_id)
        .where(Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None))
        .order_by(Invitation.created_at.desc())
    )
    return list((await session.execute(stmt)).scalars())


async def get_invitation(
    session: AsyncSession, org_id: uuid.UUID, invitation_id: uuid.UUID
) -> Invitation | None:
    return await session.get(Invitation, (org_id, invitation_id))


async def get_invitation_by_hash(session: AsyncSession, token_hash: str) -> Invitation | None:
    stmt = select(Invitation).where(Invitation.token_hash == token_hash)
    return (await session.execute(stmt)).scalar_one_or_none()


async def find_open_invitation(
    session: AsyncSession, org_id: uuid.UUID, email: str, now: datetime
) -> Invitation | None:
    stmt = scoped(select(Invitation), Invitation, org_id).where(
        Invitation.email == email,
        Invitation.accepted_at.is_(None),
        Invitation.revoked_at.is_(None),
        Invitation.expires_at > now,
    )
    return (await session.execute(stmt)).scalars().first()
