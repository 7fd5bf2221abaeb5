"""The reference catalog: genai-prices' price database plus the facts Tokenboard curates, as plain values.

No database here: :mod:`tokenboard.catalog.service` stores what this module reads. genai-prices gives prices
per million tokens with their start dates; we turn them into :class:`~tokenboard.catalog.pricing.Prices`
per token, one entry per date the price changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from genai_prices import data_snapshot
from genai_prices import types as gp

from tokenboard.catalog.curated_file import FamilyRule, family_of, family_rules, validate, with_family
from tokenboard.catalog.pricing import Prices, PriceTier

CURATED_PATH = Path(__file__).resolve().parent / "data" / "curated.json"
# Prices without a start date have been in force since before anyone used this installation.
BEGINNING = datetime(2020, 1, 1, tzinfo=UTC)
SOURCE_GENAI = "genai-prices"
SOURCE_CURATED = "curated"
SOURCE_OVERRIDE = "operator override"
SOURCE_OPERATOR = "operator"

# genai-prices keys we meter, and the Prices field each becomes (all per million tokens).
_TOKEN_KEYS = {
    "input_mtok": "input",
    "output_mtok": "output",
    "cache_read_mtok": "cached_input_read",
    "cache_write_mtok": "cache_write_5m",
    "cache_write_1h_mtok": "cache_write_1h",
    "output_reasoning_mtok": "reasoning",
}
# Audio prices (per million tokens; genai-prices has no tiers for them): a part of the input or output.
_AUDIO_KEYS = {"input_audio_mtok": "input_audio", "output_audio_mtok": "output_audio"}
_PER_REQUEST_KEY = "requests_kcount"
_PER_WEB_SEARCH_KEY = "web_searches_kcount"  # USD per thousand searches; we keep USD per search
_FEE_KEYS = (_PER_REQUEST_KEY, _PER_WEB_SEARCH_KEY)
# Curated per-model facts given as {"value": ..., "source": {...}}: kept with their source in the model's
# ``details["facts"]``, as a provider's facts are in its ``facts``.
_MODEL_FACTS = ("max_output_tokens",)


@dataclass(frozen=True)
class ReferenceProvider:
    id: str
    name: str
    website: str | None
    headquarters_country: str | None
    regions: list[str]
    trains_on_prompts: bool | None
    retains_prompts: bool | None
    may_publish: bool | None
    simulated: bool
    facts: dict[str, Any]
    source: str


@dataclass(frozen=True)
class ReferenceModel:
    id: str
    provider_id: str
    name: str
    context_length: int | None
    # The most tokens one reply may have; its source is in ``details["facts"]["max_output_tokens"]``.
    max_output_tokens: int | None
    input_modalities: list[str] | None
    output_modalities: list[str] | None
    deprecated: bool
    source: str
    details: dict[str, Any]
    # (effective_from, prices), oldest first; empty when the model has no token prices we can meter.
    schedule: list[tuple[datetime, Prices]] = field(default_factory=list)


@dataclass(frozen=True)
class ReferenceCatalog:
    providers: list[ReferenceProvider]
    models: list[ReferenceModel]
    genai_prices_version: str


def per_token(per_mtok: Decimal) -> Decimal:
    """USD per million tokens to USD per token, exactly (a shift of the decimal point)."""
    return per_mtok.scaleb(-6)


@cache
def curated() -> dict[str, Any]:
    """The curated file, checked: a :class:`~tokenboard.catalog.curated_file.CuratedFileError` if wrong."""
    data: dict[str, Any] = json.loads(CURATED_PATH.read_text())
    validate(data)
    return data


@cache
def families() -> tuple[FamilyRule, ...]:
    """The curated file's family rules, in order: the first that matches a model is its family."""
    return family_rules(curated())


def load_reference(provider_ids: list[str] | None = None) -> ReferenceCatalog:
    """Every provider the curated file covers, with all its genai-prices models, plus simulated models."""
    import genai_prices

    data = curated()
    wanted = list(data["providers"]) if provider_ids is None else provider_ids
    snapshot = {p.id: p for p in data_snapshot.get_snapshot().providers}
    providers: list[ReferenceProvider] = []
    models: list[ReferenceModel] = []
    for provider_id in wanted:
        facts = data["providers"].get(provider_id)
        upstream = snapshot.get(provider_id)
        if facts is None and upstream is None:
            raise KeyError(f"unknown provider {provider_id!r}")
        providers.append(_provider(provider_id, facts or {}, upstream))
        if upstream is not None:
            models.extend(_genai_model(provider_id, m, data["models"]) for m in upstream.models)
    for model_id, spec in data.get("simulated_models", {}).items():
        if model_id.split("/", 1)[0] in wanted:
            models.append(_simulated_model(model_id, spec))
    return ReferenceCatalog(providers, models, genai_prices.__version__)


def _fact(facts: dict[str, Any], name: str) -> Any:
    entry = facts.get(name)
    return entry.get("value") if isinstance(entry, dict) else None


def _model_facts(spec: dict[str, Any]) -> dict[str, Any]:
    """The curated facts of one model that name their source (each ``{"value", "source"}``, a note maybe)."""
    return {
        name: spec[name]
        for name in _MODEL_FACTS
        if isinstance(spec.get(name), dict) and "source" in spec[name]
    }


def _provider(provider_id: str, facts: dict[str, Any], upstream: gp.Provider | None) -> ReferenceProvider:
    kept = {k: v for k, v in facts.items() if isinstance(v, dict) and "source" in v}
    if upstream is not None and upstream.pricing_urls:
        kept["pricing_urls"] = {"value": upstream.pricing_urls, "source": {"title": "genai-prices"}}
    return ReferenceProvider(
        id=provider_id,
        name=facts.get("name") or (upstream.name if upstream else provider_id),
        website=facts.get("website"),
        headquarters_country=_fact(facts, "headquarters"),
        regions=list(_fact(facts, "regions") or []),
        trains_on_prompts=_fact(facts, "trains_on_prompts"),
        retains_prompts=_fact(facts, "retains_prompts"),
        may_publish=_fact(facts, "may_publish"),
        simulated=bool(facts.get("simulated", False)),
        facts=kept,
        source=SOURCE_CURATED if facts else SOURCE_GENAI,
    )


def _genai_model(provider_id: str, model: gp.ModelInfo, curated_models: dict[str, Any]) -> ReferenceModel:
    model_id = f"{provider_id}/{model.id}"
    # The model's own entry, filled in by its family rule: the entry wins field by field.
    extra, family_facts = with_family(
        curated_models.get(model_id, {}), family_of(families(), provider_id, model.id)
    )
    details: dict[str, Any] = {}
    if model.description:
        details["description"] = model.description
    if model.price_comments:
        details["price_comments"] = model.price_comments
    schedule, notes = genai_schedule(model)
    details.update(notes)
    facts = _model_facts(extra) | family_facts
    if facts:
        details["facts"] = facts
    return ReferenceModel(
        id=model_id,
        provider_id=provider_id,
        name=model.name or model.id,
        context_length=model.context_window or extra.get("context_length"),
        max_output_tokens=_fact(facts, "max_output_tokens"),
        input_modalities=extra.get("input_modalities"),
        output_modalities=extra.get("output_modalities"),
        deprecated=bool(model.deprecated),
        source=SOURCE_GENAI,
        details=details,
        schedule=schedule,
    )


def _simulated_model(model_id: str, spec: dict[str, Any]) -> ReferenceModel:
    details: dict[str, Any] = {
        "simulated": True,
        "description": "A built-in simulated model; prices are for testing.",
    }
    facts = _model_facts(spec)
    if facts:
        details["facts"] = facts
    return ReferenceModel(
        id=model_id,
        provider_id=model_id.split("/", 1)[0],
        name=spec["name"],
        context_length=spec.get("context_length"),
        max_output_tokens=_fact(facts, "max_output_tokens"),
        input_modalities=spec.get("input_modalities"),
        output_modalities=spec.get("output_modalities"),
        deprecated=False,
        source=SOURCE_CURATED,
        details=details,
        schedule=[(BEGINNING, prices_from_spec(spec["prices_per_mtok"], spec.get("per_request_usd")))],
    )


def prices_from_spec(per_mtok: dict[str, Any], per_request_usd: str | None = None) -> Prices:
    """Prices from a curated or operator spec in USD per million tokens (decimal strings)."""

    def price(value: Any) -> Decimal | None:
        return None if value is None else per_token(Decimal(str(value)))

    tiers = tuple(
        PriceTier(
            above_input_tokens=int(tier["above_input_tokens"]),
            **{k: price(tier.get(k)) for k in _TIER_FIELDS},
        )
        for tier in per_mtok.get("tiers", [])
    )
    return Prices(
        input=per_token(Decimal(str(per_mtok["input"]))),
        output=per_token(Decimal(str(per_mtok["output"]))),
        cached_input_read=price(per_mtok.get("cached_input_read")),
        cache_write_5m=price(per_mtok.get("cache_write_5m")),
        cache_write_1h=price(per_mtok.get("cache_write_1h")),
        reasoning=price(per_mtok.get("reasoning")),
        input_audio=price(per_mtok.get("input_audio")),
        output_audio=price(per_mtok.get("output_audio")),
        per_request=Decimal(per_request_usd) if per_request_usd else Decimal(0),
        tiers=tiers,
    )


_TIER_FIELDS = ("input", "output", "cached_input_read", "cache_write_5m", "cache_write_1h", "reasoning")


# --- genai-prices to Prices -----------------------------------------------------------------------------


def prices_from_genai(model_price: gp.ModelPrice) -> tuple[Prices | None, dict[str, str]]:
    """Our Prices for one genai-prices ModelPrice, and the prices we do not meter (audio, images, other
    tools).

    ``None`` when the model has no token price at all (priced per page or per hour, or simply unknown).
    """
    values = {k: v for k, v in model_price.__dict__.items() if not k.startswith("_") and v is not None}
    metered = {*_TOKEN_KEYS, *_AUDIO_KEYS, *_FEE_KEYS}
    unmetered = {k: _describe(v) for k, v in values.items() if k not in metered}
    if "input_mtok" not in values and "output_mtok" not in values:
        return None, unmetered
    base: dict[str, Decimal] = {}
    thresholds: set[int] = set()
    for key, name in _TOKEN_KEYS.items():
        value = values.get(key)
        if isinstance(value, gp.TieredPrices):
            base[name] = per_token(value.base)
            thresholds.update(tier.start for tier in value.tiers)
        elif isinstance(value, Decimal):
            base[name] = per_token(value)
    for key, name in _AUDIO_KEYS.items():
        value = values.get(key)
        if isinstance(value, Decimal):
            base[name] = per_token(value)
    tiers = tuple(_tier(values, threshold) for threshold in sorted(thresholds))
    per_request, per_search = values.get(_PER_REQUEST_KEY), values.get(_PER_WEB_SEARCH_KEY)
    prices = Prices(
        input=base.get("input", Decimal(0)),
        output=base.get("output", Decimal(0)),
        cached_input_read=base.get("cached_input_read"),
        cache_write_5m=base.get("cache_write_5m"),
        cache_write_1h=base.get("cache_write_1h"),
        reasoning=base.get("reasoning"),
        per_request=per_request.scaleb(-3) if isinstance(per_request, Decimal) else Decimal(0),
        per_web_search=per_search.scaleb(-3) if isinstance(per_search, Decimal) else Decimal(0),
        input_audio=base.get("input_audio"),
        output_audio=base.get("output_audio"),
        tiers=tiers,
    )
    return prices, unmetered


def _tier(values: dict[str, Any], threshold: int) -> PriceTier:
    prices: dict[str, Decimal] = {}
    for key, name in _TOKEN_KEYS.items():
        value = values.get(key)
        if isinstance(value, gp.TieredPrices):
            # The highest tier of this kind that the threshold reaches (genai-prices' "cliff" model).
            chosen = [tier.price for tier in value.tiers if tier.start <= threshold]
            if chosen:
                prices[name] = per_token(chosen[-1])
    return PriceTier(above_input_tokens=threshold, **prices)


def _describe(value: Any) -> str:
    if isinstance(value, gp.TieredPrices):
        return f"{value.base} (+tiers)"
    return str(value)


def genai_schedule(model: gp.ModelInfo) -> tuple[list[tuple[datetime, Prices]], dict[str, Any]]:
    """The model's prices by start date, oldest first, and notes on what we could not represent.

    genai-prices lists conditional prices; the last one whose start date has passed wins. Time-of-day
    prices (off-peak discounts and peak surcharges) are not metered per hour: for each period the highest of
    the day's prices is used, so a request is never under-billed.
    """
    entries = model.prices if isinstance(model.prices, list) else [gp.ConditionalPrice(prices=model.prices)]
    starts = sorted(
        {e.constraint.start_date for e in entries if isinstance(e.constraint, gp.StartDateConstraint)}
    )
    time_of_day = [e.prices for e in entries if isinstance(e.constraint, gp.TimeOfDateConstraint)]
    notes: dict[str, Any] = {}
    if time_of_day:
        notes["time_of_day_pricing"] = (
            "time-of-day prices are not metered; the highest price of the day is used"
        )
    schedule: list[tuple[datetime, Prices]] = []
    unmetered: dict[str, str] = {}
    for when in [None, *starts]:
        candidates = [_price_on(entries, when), *time_of_day]
        resolved = []
        for candidate in candidates:
            prices, extra = prices_from_genai(candidate)
            unmetered.update(extra)
            if prices is not None:
                resolved.append(prices)
        if not resolved:
            continue
        highest = max(resolved, key=lambda p: (p.input + p.output, p.input))
        effective = BEGINNING if when is None else datetime.combine(when, time(0), tzinfo=UTC)
        if not schedule or schedule[-1][1] != highest:
            schedule.append((effective, highest))
    if unmetered:
        notes["unmetered_prices_per_unit"] = unmetered
    return schedule, notes


def _price_on(entries: list[gp.ConditionalPrice], when: date | None) -> gp.ModelPrice:
    """genai-prices' rule: the last entry in force wins, else the first; time-of-day entries aside."""
    for entry in reversed(entries):
        constraint = entry.constraint
        if constraint is None:
            return entry.prices
        if (
            isinstance(constraint, gp.StartDateConstraint)
            and when is not None
            and constraint.start_date <= when
        ):
            return entry.prices
    return entries[0].prices
