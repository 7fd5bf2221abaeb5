"""REST API for announcements: everyone signed in reads them, operators publish them."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, status

from tokenboard.accounts.auth import CurrentPrincipal, OperatorPrincipal
from tokenboard.announcements import schemas
from tokenboard.announcements.service import announcements
from tokenboard.kit.deps import DB
from tokenboard.kit.routing import make_router

router = make_router(prefix="/api/v1", tags=["announcements"])


@router.get("/announcements", response_model=list[schemas.Announcement])
async def list_announcements(
    principal: CurrentPrincipal, db: DB, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> object:
    return await announcements.list(db, limit=limit)


@router.post("/announcements", response_model=schemas.Announcement, status_code=status.HTTP_201_CREATED)
async def publish_announcement(
    body: schemas.AnnouncementCreate, principal: OperatorPrincipal, db: DB
) -> object:
    return await announcements.publish(
        db, kind=body.kind, title=body.title, body=body.body, created_by=principal.user.id
    )


@router.delete("/announcements/{announcement_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_announcement(announcement_id: uuid.UUID, principal: OperatorPrincipal, db: DB) -> None:
    await announcements.delete(db, announcement_id)
