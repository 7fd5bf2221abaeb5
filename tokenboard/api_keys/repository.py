"""SQL for gateway API keys."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.kit.tenancy import scoped
from tokenboard.models import ApiKey, User, Workspace


async def list_keys(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    user_id: uuid.UUID | None = None,
    key_id: uuid.UUID | None = None,
) -> list[tuple[ApiKey, User, Workspace]]:
    stmt = (
        scoped(select(ApiKey, User, Workspace), ApiKey, org_id)
        .join(User, User.id == ApiKey.user_id)
        .join(
            Workspace,
            (Workspace.organization_id == ApiKey.organization_id) & (Workspace.id == ApiKey.workspace_id),
        )
        .order_by(ApiKey.created_at.desc())
    )
    if user_id is not None:
        stmt = stmt.where(ApiKey.user_id == user_id)
    if key_id is not None:
        stmt = stmt.where(ApiKey.id == key_id)
    return [(k, u, w) for k, u, w in await session.execute(stmt)]


async def get(session: AsyncSession, org_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
    return await session.get(ApiKey, (org_id, key_id))
