from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tokenboard.announcements.service import AnnouncementKind
from tokenboard.organizations.schemas import Announcement

__all__ = ["Announcement", "AnnouncementCreate"]


class AnnouncementCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: AnnouncementKind = AnnouncementKind.notice
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(default="", max_length=10_000)
