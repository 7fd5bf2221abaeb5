from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base, utcnow, uuid7


class UsageEvent(Base):
    """One metered request: who, what, how much and how. Keyed (and idempotent) on (organization, request id).

    ``id`` is made by the pipeline for every row it writes, unindexed: when a batch meets events stored
    before, a row whose stored id is the one just made was inserted now (ingest.py).
    """

    __tablename__ = "usage_events"
    # The drill-down's index, over the events that name a conversation only (many gateway requests do not).
    __table_args__ = (
        Index(
            "ix_usage_events_org_conversation",
            "organization_id",
            "conversation_id",
            postgresql_where=text("conversation_id IS NOT NULL"),
            sqlite_where=text("conversation_id IS NOT NULL"),
        ),
    )

    # No foreign key to organizations: every writer has resolved the organization, organizations are never
    # deleted, and the per-row check was a measurable share of ingestion (decision 0003).
    organization_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(default=uuid7)
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(String(20), default="gateway")
    user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    workspace_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    team_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    provider_id: Mapped[str] = mapped_column(String(80))
    model_id: Mapped[str] = mapped_column(String(200))
    route: Mapped[str] = mapped_column(String(20))
    stream: Mapped[bool] = mapped_column(default=False)
    status_code: Mapped[int] = mapped_column(default=200)
    error_type: Mapped[str | None] = mapped_column(String(60), default=None)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cached_input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_write_5m_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_write_1h_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_nanousd: Mapped[int] = mapped_column(BigInteger, default=0)
    usage_estimated: Mapped[bool] = mapped_column(default=False)
    cancelled: Mapped[bool] = mapped_column(default=False)
    latency_ms: Mapped[int] = mapped_column(default=0)
    time_to_first_token_ms: Mapped[int | None] = mapped_column(default=None)
    gateway_overhead_ms: Mapped[float] = mapped_column(default=0.0)
    feature: Mapped[str | None] = mapped_column(String(100), default=None)
    tool: Mapped[str | None] = mapped_column(String(100), default=None)
    integration: Mapped[str | None] = mapped_column(String(100), default=None)
    conversation_id: Mapped[str | None] = mapped_column(String(200), default=None)
    message_id: Mapped[str | None] = mapped_column(String(200), default=None)
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    # Server-side web searches the request made (priced per search); last, as the migration that added it
    # put it.
    web_searches: Mapped[int] = mapped_column(default=0, server_default="0")
    # Of input_tokens and output_tokens, the audio tokens (priced at the model's audio prices); 0023.
    input_audio_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    output_audio_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
