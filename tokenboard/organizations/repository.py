"""SQL for organizations and the figures on their overview."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.kit.tenancy import scoped
from tokenboard.models import Membership, Organization, User, Workspace


async def get(session: AsyncSession, org_id: uuid.UUID) -> Organization | None:
    return await session.get(Organization, org_id)


async def get_membership_with_org(
    session: AsyncSession, org_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[Organization, Membership] | None:
    stmt = scoped(select(Organization, Membership), Membership, org_id).where(
        Organization.id == Membership.organization_id, Membership.user_id == user_id
    )
    row = (await session.execute(stmt)).first()
    return (row[0], row[1]) if row else None


async def list_for_user(session: AsyncSession, user_id: uuid.UUID) -> list[tuple[Organization, Membership]]:
    stmt = (
        select(Organization, Membership)
        .join(Membership, Membership.organization_id == Organization.id)
        .where(Membership.user_id == user_id)
        .order_by(Organization.name, Organization.id)
    )
    return [(row[0], row[1]) for row in await session.execute(stmt)]


async def lock(session: AsyncSession, org_id: uuid.UUID) -> None:
    """Serialise membership changes of one org on both engines.

    The UPDATE takes PostgreSQL's row lock and SQLite's write lock before anything is counted, so two
    concurrent demotions cannot both see two owners.
    """
    await session.execute(
        update(Organization)
        .where(Organization.id == org_id)
        .values(lock_version=Organization.lock_version + 1)
        .execution_options(synchronize_session=False)
    )


async def member_count(session: AsyncSession, org_id: uuid.UUID) -> int:
    stmt = scoped(select(func.count()).select_from(Membership), Membership, org_id)
    return int(await session.scalar(stmt) or 0)


async def role_counts(session: AsyncSession, org_id: uuid.UUID) -> dict[str, int]:
    stmt = scoped(select(Membership.role, func.count()), Membership, org_id).group_by(Membership.role)
    return {role: int(n) for role, n in await session.execute(stmt)}


async def workspace_status_counts(session: AsyncSession, org_id: uuid.UUID) -> dict[str, int]:
    stmt = scoped(select(Workspace.status, func.count()), Workspace, org_id).group_by(Workspace.status)
    return {status: int(n) for status, n in await session.execute(stmt)}


async def first_owner(session: AsyncSession, org_id: uuid.UUID) -> User | None:
    stmt = (
        scoped(select(User), Membership, org_id)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.role == "owner")
        .order_by(Membership.joined_at, Membership.id)
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()
