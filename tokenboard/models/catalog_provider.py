from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from tokenboard.kit.db import Base, utcnow


class CatalogProvider(Base):
    """An inference provider, installation-wide: where it is and what it does with prompts, with sources."""

    __tablename__ = "catalog_providers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    website: Mapped[str | None] = mapped_column(String(400), default=None)
    headquarters_country: Mapped[str | None] = mapped_column(String(2), default=None)
    regions: Mapped[list[str]] = mapped_column(JSON, default=list)
    trains_on_prompts: Mapped[bool | None] = mapped_column(default=None)
    retains_prompts: Mapped[bool | None] = mapped_column(default=None)
    may_publish: Mapped[bool | None] = mapped_column(default=None)
    simulated: Mapped[bool] = mapped_column(default=False)
    # Each fact with its source ({"value", "note", "source": {"title", "url"}}), and the pricing pages.
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
