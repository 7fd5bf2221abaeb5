"""SQL for announcements."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.models import Announcement


async def list_latest(session: AsyncSession, limit: int) -> list[Announcement]:
    stmt = (
        select(Announcement).order_by(Announcement.published_at.desc(), Announcement.id.desc()).limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def get(session: AsyncSession, announcement_id: uuid.UUID) -> Announcement | None:
    return await session.get(Announcement, announcement_id)
