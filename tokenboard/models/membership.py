from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, ForeignKeyConstraint, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base, utcnow, uuid7


class Membership(Base):
    """A user in an organization, with one role and at most one team."""

    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("organization_id", "user_id"),
        ForeignKeyConstraint(["organization_id", "team_id"], ["teams.organization_id", "teams.id"]),
    )

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    team_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_active_at: Mapped[datetime | None] = mapped_column(default=None)
