from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base, IdMixin, utcnow


class Announcement(IdMixin, Base):
    """Operator news shown on every overview: features, releases, maintenance."""

    __tablename__ = "announcements"

    kind: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    published_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
