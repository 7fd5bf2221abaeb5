from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base, utcnow


class CatalogModel(Base):
    """A model that can be called, installation-wide; ``id`` is ``provider/model``, e.g. ``openai/gpt-4o``."""

    __tablename__ = "catalog_models"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    provider_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("catalog_providers.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(default=True)
    context_length: Mapped[int | None] = mapped_column(default=None)
    # The most tokens one reply may have (genai-prices lacks it: curated or set by an operator); the gateway
    # clamps a request's max_tokens to it, else to the context length.
    max_output_tokens: Mapped[int | None] = mapped_column(default=None)
    input_modalities: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    output_modalities: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    deprecated: Mapped[bool] = mapped_column(default=False)
    # Where the entry came from: "genai-prices", "curated" or "operator".
    source: Mapped[str] = mapped_column(String(40))
    # Anything else worth showing: description, pricing comments, prices we do not meter yet.
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
