from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tokenboard.catalog.pricing import Prices, PriceTier
from tokenboard.catalog.reference import per_token
from tokenboard.catalog.service import INHERITABLE, ModelView
from tokenboard.models import ModelPrice as ModelPriceRow

PriceInput = Decimal  # USD per million tokens, as a JSON string or number


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _mtok(value: Decimal | None) -> str | None:
    """A per-token price shown per million tokens, exactly, without trailing zeros."""
    if value is None:
        return None
    text = f"{value.scaleb(6).normalize():f}"
    return text


class TierPrices(Schema):
    above_input_tokens: int = Field(ge=0, le=100_000_000)
    input: PriceInput | None = Field(default=None, ge=0, max_digits=30, decimal_places=18)
    output: PriceInput | None = Field(default=None, ge=0, max_digits=30, decimal_places=18)
    cached_input_read: PriceInput | None = Field(default=None, ge=0, max_digits=30, decimal_places=18)
    cache_write_5m: PriceInput | None = Field(default=None, ge=0, max_digits=30, decimal_places=18)
    cache_write_1h: PriceInput | None = Field(default=None, ge=0, max_digits=30, decimal_places=18)
    reasoning: PriceInput | None = Field(default=None, ge=0, max_digits=30, decimal_places=18)


class PricesIn(Schema):
    """Prices in USD per million tokens (decimal strings keep them exact); the request and web search fees in
    USD each."""

    input: PriceInput = Field(ge=0, max_digits=30, decimal_places=18)
    output: PriceInput = Field(ge=0, max_digits=30, decimal_places=18)
    cached_input_read: PriceInput | None = Field(default=None, ge=0, max_digits=30, decimal_places=18)
    cache_write_5m: PriceInput | None = Field(default=None, ge=0, max_digits=30, decimal_places=18)
    cache_write_1h: PriceInput | None = Field(default=None, ge=0, max_digits=30, decimal_places=18)
    reasoning: PriceInput | None = Field(default=None, ge=0, max_digits=30, decimal_places=18)
    input_audio: PriceInput | None = Field(
        default=None,
        ge=0,
        max_digits=30,
        decimal_places=18,
        description="Audio input tokens (default: as input).",
    )
    output_audio: PriceInput | None = Field(
        default=None,
        ge=0,
        max_digits=30,
        decimal_places=18,
        description="Audio output tokens (default: as output).",
    )
    per_request_usd: Decimal = Field(default=Decimal(0), ge=0, max_digits=20, decimal_places=12)
    per_web_search_usd: Decimal = Field(
        default=Decimal(0),
        ge=0,
        max_digits=20,
        decimal_places=12,
        description="USD per server-side web search (Anthropic's web search tool: 0.01).",
    )
    tiers: list[TierPrices] = Field(default_factory=list, max_length=8)

    def to_prices(self) -> Prices:
        def tok(value: Decimal | None) -> Decimal | None:
            return None if value is None else per_token(value)

        return Prices(
            input=per_token(self.input),
            output=per_token(self.output),
            cached_input_read=tok(self.cached_input_read),
            cache_write_5m=tok(self.cache_write_5m),
            cache_write_1h=tok(self.cache_write_1h),
            reasoning=tok(self.reasoning),
            per_request=self.per_request_usd,
            per_web_search=self.per_web_search_usd,
            input_audio=tok(self.input_audio),
            output_audio=tok(self.output_audio),
            tiers=tuple(
                PriceTier(
                    above_input_tokens=t.above_input_tokens,
                    input=tok(t.input),
                    output=tok(t.output),
                    cached_input_read=tok(t.cached_input_read),
                    cache_write_5m=tok(t.cache_write_5m),
                    cache_write_1h=tok(t.cache_write_1h),
                    reasoning=tok(t.reasoning),
                )
                for t in sorted(self.tiers, key=lambda t: t.above_input_tokens)
            ),
        )


# The fee fields' names as kinds of INHERITABLE.
_KIND_OF_FIELD = {"per_request_usd": "per_request", "per_web_search_usd": "per_web_search"}


class PriceOverrideCreate(PricesIn):
    """An override's prices. A kind left out (cache reads and writes, reasoning, the request and web search
    fees, the tiers) keeps the model's price in force when the override starts."""

    effective_from: datetime | None = Field(default=None, description="Default: now. Never in the past.")
    note: str | None = Field(default=None, max_length=400)

    def left_out(self) -> set[str]:
        given = {_KIND_OF_FIELD.get(name, name) for name in self.model_fields_set}
        return set(INHERITABLE - given)


class TierOut(Schema):
    above_input_tokens: int
    input_per_mtok: str | None
    output_per_mtok: str | None
    cached_input_read_per_mtok: str | None
    cache_write_5m_per_mtok: str | None
    cache_write_1h_per_mtok: str | None
    reasoning_per_mtok: str | None


class PricesOut(Schema):
    """USD per million tokens as exact decimal strings; ``null`` means "priced like" (see docs/catalog.md)."""

    input_per_mtok: str
    output_per_mtok: str
    cached_input_read_per_mtok: str | None
    cache_write_5m_per_mtok: str | None
    cache_write_1h_per_mtok: str | None
    reasoning_per_mtok: str | None
    per_request_usd: str
    per_web_search_usd: str
    input_audio_per_mtok: str | None
    output_audio_per_mtok: str | None
    tiers: list[TierOut]

    @classmethod
    def of(cls, prices: Prices) -> PricesOut:
        return cls(
            input_per_mtok=_mtok(prices.input) or "0",
            output_per_mtok=_mtok(prices.output) or "0",
            cached_input_read_per_mtok=_mtok(prices.cached_input_read),
            cache_write_5m_per_mtok=_mtok(prices.cache_write_5m),
            cache_write_1h_per_mtok=_mtok(prices.cache_write_1h),
            reasoning_per_mtok=_mtok(prices.reasoning),
            per_request_usd=f"{prices.per_request.normalize():f}",
            per_web_search_usd=f"{prices.per_web_search.normalize():f}",
            input_audio_per_mtok=_mtok(prices.input_audio),
            output_audio_per_mtok=_mtok(prices.output_audio),
            tiers=[
                TierOut(
                    above_input_tokens=t.above_input_tokens,
                    input_per_mtok=_mtok(t.input),
                    output_per_mtok=_mtok(t.output),
                    cached_input_read_per_mtok=_mtok(t.cached_input_read),
                    cache_write_5m_per_mtok=_mtok(t.cache_write_5m),
                    cache_write_1h_per_mtok=_mtok(t.cache_write_1h),
                    reasoning_per_mtok=_mtok(t.reasoning),
                )
                for t in prices.tiers
            ],
        )


class PriceRow(Schema):
    effective_from: datetime
    source: str
    prices: PricesOut
    note: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: ModelPriceRow) -> PriceRow:
        from tokenboard.catalog.service import prices_of_row

        return cls(
            effective_from=row.effective_from,
            source=row.source,
            prices=PricesOut.of(prices_of_row(row)),
            note=row.note,
            created_at=row.created_at,
        )


class DataPolicy(Schema):
    trains_on_prompts: bool | None
    retains_prompts: bool | None
    may_publish: bool | None


class ProviderOut(Schema):
    id: str
    name: str
    website: str | None
    headquarters_country: str | None
    regions: list[str]
    data_policy: DataPolicy
    simulated: bool
    facts: dict[str, Any] = Field(description="Each fact with its source.")


class CatalogModelOut(Schema):
    id: str
    name: str
    provider: ProviderOut
    enabled: bool
    context_length: int | None
    max_output_tokens: int | None = Field(
        description="The most tokens one reply may have; the gateway clamps max_tokens to it (null: unknown, "
        "the context length bounds it)."
    )
    input_modalities: list[str] | None
    output_modalities: list[str] | None
    deprecated: bool
    source: str
    details: dict[str, Any]
    prices: PricesOut | None = Field(description="The price in force now; null when unpriced.")
    price_source: str | None
    price_effective_from: datetime | None

    @classmethod
    def of(cls, view: ModelView) -> CatalogModelOut:
        provider, model = view.provider, view.model
        return cls(
            id=model.id,
            name=model.name,
            provider=ProviderOut(
                id=provider.id,
                name=provider.name,
                website=provider.website,
                headquarters_country=provider.headquarters_country,
                regions=list(provider.regions or []),
                data_policy=DataPolicy(
                    trains_on_prompts=provider.trains_on_prompts,
                    retains_prompts=provider.retains_prompts,
                    may_publish=provider.may_publish,
                ),
                simulated=provider.simulated,
                facts=provider.facts or {},
            ),
            enabled=model.enabled,
            context_length=model.context_length,
            max_output_tokens=model.max_output_tokens,
            input_modalities=model.input_modalities,
            output_modalities=model.output_modalities,
            deprecated=model.deprecated,
            source=model.source,
            details=model.details or {},
            prices=PricesOut.of(view.prices) if view.prices is not None else None,
            price_source=view.price_source,
            price_effective_from=view.price_effective_from,
        )


class CatalogModelCreate(Schema):
    id: str = Field(min_length=3, max_length=200, pattern=r"^[a-z0-9][a-z0-9._-]*/[A-Za-z0-9][\w.:/-]*$")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    context_length: int | None = Field(default=None, ge=1, le=100_000_000)
    max_output_tokens: int | None = Field(default=None, ge=1, le=100_000_000)
    input_modalities: list[str] | None = Field(default=None, max_length=10)
    output_modalities: list[str] | None = Field(default=None, max_length=10)
    enabled: bool = True
    prices: PricesIn | None = None


class CatalogModelUpdate(Schema):
    enabled: bool | None = None
    name: str | None = Field(default=None, min_length=1, max_length=200)
    context_length: int | None = Field(default=None, ge=1, le=100_000_000)
    max_output_tokens: int | None = Field(
        default=None, ge=1, le=100_000_000, description="Kept by later syncs (the operator's own)."
    )


class SyncResult(Schema):
    providers_added: int
    providers_updated: int
    models_added: int
    models_updated: int
    prices_added: int
    scheduled_prices_removed: int
    genai_prices_version: str
