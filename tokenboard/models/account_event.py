from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base, IdMixin, TimestampMixin


class AccountEvent(IdMixin, TimestampMixin, Base):
    """Security events of one account (sign-ins, password changes, tokens), shown to that user."""

    __tablename__ = "account_events"
    __table_args__ = (Index("ix_account_events_user_created", "user_id", "created_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(80))
    ip_address: Mapped[str | None] = mapped_column(String(64), default=None)
    user_agent: Mapped[str | None] = mapped_column(String(400), default=None)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
