from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base
from tokenboard.models.usage_rollup_columns import OrgKey, SlimMetrics


class UsageConversation(OrgKey, SlimMetrics, Base):
    """Rollup: one user's conversation (that user's events sharing a conversation id), its first and last
    request.

    Keyed (organization, conversation id, user): two users who send the same conversation id have a row
    each, holding only their own events; the events without a user have theirs (``NO_USER``). A
    conversation's rows are neighbours in the key (its detail), the lists read the ``last_at`` indexes
    (decision 0003, "2026-12-07: a conversation is one user's").
    """

    __tablename__ = "usage_conversations"
    __table_args__ = (
        Index("ix_usage_conversations_org_last", "organization_id", "last_at"),
        Index("ix_usage_conversations_org_user_last", "organization_id", "user_id", "last_at"),
    )

    conversation_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    first_at: Mapped[datetime]
    last_at: Mapped[datetime]
