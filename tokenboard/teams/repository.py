"""SQL for teams."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.kit.tenancy import scoped
from tokenboard.models import Membership, Team


async def get(session: AsyncSession, org_id: uuid.UUID, team_id: uuid.UUID) -> Team | None:
    return await session.get(Team, (org_id, team_id))


async def get_by_name(session: AsyncSession, org_id: uuid.UUID, name: str) -> Team | None:
    # Fold case with the database's lower() on both sides: Python's str.lower() folds non-ASCII letters
    # that SQLite's lower() leaves alone, so an exact duplicate would slip past and hit the unique index.
    stmt = scoped(select(Team), Team, org_id).where(func.lower(Team.name) == func.lower(name))
    return (await session.execute(stmt)).scalars().first()


async def list_with_counts(session: AsyncSession, org_id: uuid.UUID) -> list[tuple[Team, int]]:
    counts = (
        scoped(select(Membership.team_id, func.count().label("n")), Membership, org_id)
        .where(Membership.team_id.is_not(None))
        .group_by(Membership.team_id)
        .subquery()
    )
    stmt = (
        scoped(select(Team, func.coalesce(counts.c.n, 0)), Team, org_id)
        .outerjoin(counts, counts.c.team_id == Team.id)
        .order_by(Team.name)
    )
    return [(team, int(n)) for team, n in await session.execute(stmt)]
