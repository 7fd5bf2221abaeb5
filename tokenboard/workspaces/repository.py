"""SQL for workspaces."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.kit.tenancy import scoped
from tokenboard.models import Workspace


async def get(session: AsyncSession, org_id: uuid.UUID, workspace_id: uuid.UUID) -> Workspace | None:
    return await session.get(Workspace, (org_id, workspace_id))


async def get_by_name(session: AsyncSession, org_id: uuid.UUID, name: str) -> Workspace | None:
    # Fold case with the database's lower() on both sides: Python's str.lower() folds non-ASCII letters
    # that SQLite's lower() leaves alone, so an exact duplicate would slip past and hit the unique index.
    stmt = scoped(select(Workspace), Workspace, org_id).where(func.lower(Workspace.name) == func.lower(name))
    return (await session.execute(stmt)).scalars().first()


async def list_all(session: AsyncSession, org_id: uuid.UUID, status: str | None = None) -> list[Workspace]:
    stmt = scoped(select(Workspace), Workspace, org_id)
    if status is not None:
        stmt = stmt.where(Workspace.status == status)
    return list((await session.execute(stmt.order_by(Workspace.name))).scalars())
