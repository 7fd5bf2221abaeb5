from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base, ExactDecimal, IdMixin, TimestampMixin


class ModelPrice(IdMixin, TimestampMixin, Base):
    """A model's prices from ``effective_from`` on, in USD per token. Rows in force are never edited.

    ``source`` is "genai-prices" or "curated" (the reference prices ``catalog sync`` keeps) or
    "operator override" (which wins over the reference while in force). ``None`` prices mean "priced like"
    (see ``catalog.pricing.Prices``); ``per_request`` and ``per_web_search`` are USD per request and per
    server-side web search; ``tiers`` holds long-context prices as exact decimal strings.
    """

    __tablename__ = "model_prices"
    __table_args__ = (
        UniqueConstraint("model_id", "source", "effective_from"),
        Index("ix_model_prices_model_effective", "model_id", "effective_from"),
    )

    model_id: Mapped[str] = mapped_column(String(200), ForeignKey("catalog_models.id", ondelete="CASCADE"))
    effective_from: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(40))
    input: Mapped[Decimal] = mapped_column(ExactDecimal())
    output: Mapped[Decimal] = mapped_column(ExactDecimal())
    cached_input_read: Mapped[Decimal | None] = mapped_column(ExactDecimal(), default=None)
    cache_write_5m: Mapped[Decimal | None] = mapped_column(ExactDecimal(), default=None)
    cache_write_1h: Mapped[Decimal | None] = mapped_column(ExactDecimal(), default=None)
    reasoning: Mapped[Decimal | None] = mapped_column(ExactDecimal(), default=None)
    per_request: Mapped[Decimal] = mapped_column(ExactDecimal(), default=Decimal(0))
    per_web_search: Mapped[Decimal] = mapped_column(ExactDecimal(), default=Decimal(0), server_default="0")
    input_audio: Mapped[Decimal | None] = mapped_column(ExactDecimal(), default=None)
    output_audio: Mapped[Decimal | None] = mapped_column(ExactDecimal(), default=None)
    tiers: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    note: Mapped[str | None] = mapped_column(String(400), default=None)
