"""Announcements: operator news (features, releases, maintenance) shown newest first on every overview."""

from __future__ import annotations

import uuid
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.announcements import repository
from tokenboard.kit.errors import BadRequest, NotFound
from tokenboard.models import Announcement


class AnnouncementKind(StrEnum):
    feature = "feature"
    release = "release"
    maintenance = "maintenance"
    notice = "notice"


class AnnouncementService:
    async def publish(
        self,
        session: AsyncSession,
        *,
        kind: AnnouncementKind,
        title: str,
        body: str,
        created_by: uuid.UUID | None,
    ) -> Announcement:
        if not title.strip():
            raise BadRequest("An announcement needs a title.")
        item = Announcement(
            kind=kind.value, title=title.strip(), body=body.strip(), created_by_user_id=created_by
        )
        session.add(item)
        await session.flush()
        return item

    async def list(self, session: AsyncSession, *, limit: int = 20) -> list[Announcement]:
        return await repository.list_latest(session, limit)

    async def delete(self, session: AsyncSession, announcement_id: uuid.UUID) -> None:
        item = await repository.get(session, announcement_id)
        if item is None:
            raise NotFound("No such announcement.")
        await session.delete(item)
        await session.flush()


announcements = AnnouncementService()
