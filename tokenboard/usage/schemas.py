"""Usage events as the ingest API and ``tokenboard import`` take them."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_BATCH = 5_000
MAX_TOKENS = 10**12


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _tokens(description: str) -> int:
    return Field(0, ge=0, le=MAX_TOKENS, description=description)


class UsageEventCreate(Schema):
    """One request recorded elsewhere. Token kinds are exclusive: ``input_tokens`` excludes cached reads and
    cache writes, ``output_tokens`` excludes reasoning (each kind is priced on its own)."""

    id: str = Field(min_length=1, max_length=64, description="Unique per organization: a retry is a no-op.")
    timestamp: datetime = Field(description="When the request was made (ISO 8601; without offset, UTC).")
    model: str = Field(min_length=3, max_length=200, description="provider/model, in the catalog.")
    user_id: uuid.UUID | None = Field(None, description="A member of the organization.")
    user_email: str | None = Field(None, max_length=320, description="Or the member's email.")
    input_tokens: int = _tokens("Uncached input tokens.")
    cached_input_tokens: int = _tokens("Input tokens read from the cache.")
    cache_write_5m_tokens: int = _tokens("Input tokens written to a 5-minute cache.")
    cache_write_1h_tokens: int = _tokens("Input tokens written to a 1-hour cache.")
    output_tokens: int = _tokens("Output tokens, reasoning excluded.")
    reasoning_tokens: int = _tokens("Reasoning (thinking) tokens.")
    cost_nanousd: int | None = Field(None, ge=0, le=10**15, description="The cost, when known, in nano-USD.")
    cost_usd: str | None = Field(
        None, max_length=40, description="Or the cost as a decimal USD string; else priced from the catalog."
    )
    latency_ms: int = Field(0, ge=0, le=10**8)
    stream: bool = False
    status_code: int = Field(200, ge=100, le=599)
    error_type: str | None = Field(None, max_length=60)
    cancelled: bool = False
    feature: str | None = Field(None, max_length=100)
    tool: str | None = Field(None, max_length=100)
    integration: str | None = Field(None, max_length=100)
    conversation_id: str | None = Field(None, max_length=200)
    message_id: str | None = Field(None, max_length=200)
    workspace_id: uuid.UUID | None = Field(None, description="A workspace of the organization.")
    team_id: uuid.UUID | None = Field(None, description="A team of the organization.")

    @field_validator(
        "user_email",
        "cost_usd",
        "error_type",
        "feature",
        "tool",
        "integration",
        "conversation_id",
        "message_id",
        mode="before",
    )
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        """CSV cells are never missing, only empty: an empty text means "not given"."""
        return None if isinstance(value, str) and not value.strip() else value


class UsageEventBatch(Schema):
    events: list[UsageEventCreate] = Field(min_length=1, max_length=MAX_BATCH)


class IngestResult(BaseModel):
    accepted: int = Field(description="Events recorded now.")
    duplicates: int = Field(description="Events already recorded (same id): nothing changed.")
