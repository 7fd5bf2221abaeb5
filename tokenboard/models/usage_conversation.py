from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base
from tokenboard.models.usage_rollup_columns import OrgKey, SlimMetrics


class UsageConversation(OrgKey, SlimMetrics, Base):
    """Rollup: one conversation (events sharing a conversation id), its first and last request.

    ``user_id`` is the user of the conversation's first event applied (``NO_USER`` when none).
    """

    __tablename__ = "usage_conversations"
    __table_args__ = (
        Index("ix_usage_conversations_org_last", "organization_id", "last_at"),
        Index("ix_usage_conversations_org_user_last", "organization_id", "user_id", "last_at"),
    )

    conversation_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    user_id: Mapped[uuid.UUID]
    first_at: Mapped[datetime]
    last_at: Mapped[datetime]
