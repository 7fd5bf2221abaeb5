"""The model catalog: providers, models and dated prices, from genai-prices, curated facts and operators.

Prices are versioned by date. A row in force is never edited: a changed reference price is a new row from
the moment ``catalog sync`` sees it, so a past request keeps the price of its day. Two streams of rows
exist per model: the reference (``genai-prices`` or ``curated``, kept by sync) and operator overrides; an
override in force wins over the reference.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.catalog import repository
from tokenboard.catalog.pricing import Prices, PriceTier
from tokenboard.catalog.reference import (
    BEGINNING,
    SOURCE_CURATED,
    SOURCE_GENAI,
    SOURCE_OPERATOR,
    SOURCE_OVERRIDE,
    ReferenceModel,
    ReferenceProvider,
    load_reference,
)
from tokenboard.kit.db import ExactDecimal, utcnow
from tokenboard.kit.errors import BadRequest, Conflict, NotFound
from tokenboard.models import CatalogModel, CatalogProvider, ModelPrice

REFERENCE_SOURCES = (SOURCE_GENAI, SOURCE_CURATED)
_PRICE_FIELDS = ("input", "output", "cached_input_read", "cache_write_5m", "cache_write_1h", "reasoning")
# What an override may leave out, to keep the model's price in force when it starts (input and output it
# always gives).
INHERITABLE = frozenset(
    {
        "cached_input_read",
        "cache_write_5m",
        "cache_write_1h",
        "reasoning",
        "per_request",
        "per_web_search",
        "input_audio",
        "output_audio",
        "tiers",
    }
)
# Token kinds priced at the base price only (no long-context tiers).
_UNTIERED_FIELDS = ("input_audio", "output_audio")
_MAX_DECIMALS = ExactDecimal.SCALE


# --- Rows to values and back ----------------------------------------------------------------------------


def prices_of_row(row: ModelPrice) -> Prices:
    return Prices(
        input=row.input,
        output=row.output,
        cached_input_read=row.cached_input_read,
        cache_write_5m=row.cache_write_5m,
        cache_write_1h=row.cache_write_1h,
        reasoning=row.reasoning,
        per_request=row.per_request,
        per_web_search=row.per_web_search,
        input_audio=row.input_audio,
        output_audio=row.output_audio,
        tiers=tuple(
            PriceTier(
                above_input_tokens=int(tier["above_input_tokens"]),
                **{k: Decimal(tier[k]) if tier.get(k) is not None else None for k in _PRICE_FIELDS},
            )
            for tier in row.tiers or []
        ),
    )


def _row_values(prices: Prices) -> dict[str, Any]:
    for value in _all_prices(prices):
        if value is not None and -value.as_tuple().exponent > _MAX_DECIMALS:  # type: ignore[operator]
            raise BadRequest(f"Prices have at most {_MAX_DECIMALS} decimals per token; {value} has more.")
    tiers = [
        {"above_input_tokens": tier.above_input_tokens}
        | {k: _text(getattr(tier, k)) for k in _PRICE_FIELDS if getattr(tier, k) is not None}
        for tier in prices.tiers
    ]
    return {k: getattr(prices, k) for k in (*_PRICE_FIELDS, *_UNTIERED_FIELDS)} | {
        "per_request": prices.per_request,
        "per_web_search": prices.per_web_search,
        "tiers": tiers,
    }


def _all_prices(prices: Prices) -> Iterable[Decimal | None]:
    yield from (getattr(prices, k) for k in _PRICE_FIELDS)
    yield prices.per_request
    yield prices.per_web_search
    yield from (getattr(prices, k) for k in _UNTIERED_FIELDS)
    for tier in prices.tiers:
        yield from (getattr(tier, k) for k in _PRICE_FIELDS)


def _text(value: Decimal) -> str:
    return f"{value:f}"


# --- The in-memory catalog the gateway reads -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One model as the gateway needs it: enabled, and its price at any moment (overrides applied)."""

    model_id: str
    provider_id: str
    enabled: bool
    context_length: int | None
    starts: tuple[datetime, ...]
    prices: tuple[Prices | None, ...]
    # The provider's data policy, for the organizations that refuse providers training on prompts.
    provider_trains_on_prompts: bool | None = None
    # The most tokens one reply may have, when known: the gateway clamps a request's bound to it.
    max_output_tokens: int | None = None

    def price_at(self, when: datetime) -> Prices | None:
        index = bisect.bisect_right(self.starts, when) - 1
        return self.prices[index] if index >= 0 else None

    def next_price_change(self, when: datetime) -> datetime | None:
        """The first moment after ``when`` at which ``price_at`` answers differently; ``None``: never."""
        index = bisect.bisect_right(self.starts, when)
        return self.starts[index] if index < len(self.starts) else None


def _timeline(rows: Sequence[ModelPrice]) -> tuple[tuple[datetime, ...], tuple[Prices | None, ...]]:
    """Merge the reference and override streams: at each change, an override in force wins."""
    reference = [(r.effective_from, prices_of_row(r)) for r in rows if r.source != SOURCE_OVERRIDE]
    overrides = [(r.effective_from, prices_of_row(r)) for r in rows if r.source == SOURCE_OVERRIDE]
    starts: list[datetime] = []
    resolved: list[Prices | None] = []
    for moment in sorted({when for when, _ in reference} | {when for when, _ in overrides}):
        price = _in_force(overrides, moment) or _in_force(reference, moment)
        if not resolved or resolved[-1] != price:
            starts.append(moment)
            resolved.append(price)
    return tuple(starts), tuple(resolved)


def _in_force(stream: Sequence[tuple[datetime, Prices]], when: datetime) -> Prices | None:
    found = None
    for start, prices in stream:
        if start <= when:
            found = prices
    return found


class CatalogCache:
    """Every model and its prices in memory: ``get`` is a dict lookup, no database work on the hot path.

    ``invalidate()`` after a change (the admin routes do, after their commit); the next ``ensure_loaded``
    reads the catalog again.
    """

    def __init__(self) -> None:
        self._entries: dict[str, CatalogEntry] | None = None
        self._fingerprint: tuple[object, ...] | None = None
        # Bumped on every load and invalidation: what was decided from the entries holds while it is equal.
        self.generation = 0

    @property
    def loaded(self) -> bool:
        return self._entries is not None

    async def load(self, session: AsyncSession) -> None:
        fingerprint = await repository.fingerprint(session)  # before the read: a change between is seen later
        self._entries = await catalog.snapshot(session)
        self._fingerprint = fingerprint
        self.generation += 1

    async def reload_if_changed(self, session: AsyncSession) -> bool:
        """Read the catalog again when the stored one changed without this process hearing of it (a CLI
        command on a server without Redis); the gateway's upkeep calls this every few seconds."""
        if self._entries is None or await repository.fingerprint(session) == self._fingerprint:
            return False
        await self.load(session)
        return True

    async def ensure_loaded(self, session: AsyncSession) -> None:
        if self._entries is None:
            await self.load(session)

    def get(self, model_id: str) -> CatalogEntry | None:
        """The model, or ``None`` when unknown or the cache is not loaded."""
        entries = self._entries
        return entries.get(model_id) if entries is not None else None

    def entries(self) -> Iterable[CatalogEntry]:
        """Every model, enabled or not; nothing when the cache is not loaded."""
        return self._entries.values() if self._entries is not None else ()

    def prices_at(self, model_id: str, when: datetime) -> Prices | None:
        """``None`` when the model is unknown, disabled or unpriced: the gateway refuses those."""
        entry = self.get(model_id)
        if entry is None or not entry.enabled:
            return None
        return entry.price_at(when)

    def invalidate(self) -> None:
        self._entries = None
        self.generation += 1


# --- Listing and filters ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFilters:
    trains_on_prompts: bool | None = None
    retains_prompts: bool | None = None
    may_publish: bool | None = None
    location: str | None = None
    modality: str | None = None
    min_context_length: int | None = None
    max_input_price_per_mtok: Decimal | None = None
    max_output_price_per_mtok: Decimal | None = None
    provider: str | None = None
    include_disabled: bool = False
    include_unpriced: bool = False


@dataclass(frozen=True)
class ModelView:
    model: CatalogModel
    provider: CatalogProvider
    prices: Prices | None
    price_source: str | None
    price_effective_from: datetime | None


@dataclass
class SyncReport:
    providers_added: int = 0
    providers_updated: int = 0
    models_added: int = 0
    models_updated: int = 0
    prices_added: int = 0
    scheduled_prices_removed: int = 0
    genai_prices_version: str = ""
    changed_models: list[str] = field(default_factory=list)


def matches(view: ModelView, f: ModelFilters) -> bool:
    """Whether a model passes the filters (the catalog's and the model access listing's)."""
    provider, model, prices = view.provider, view.model, view.prices
    checks = (
        f.include_disabled or model.enabled,
        f.include_unpriced or prices is not None,
        f.provider is None or provider.id == f.provider,
        f.trains_on_prompts is None or provider.trains_on_prompts is f.trains_on_prompts,
        f.retains_prompts is None or provider.retains_prompts is f.retains_prompts,
        f.may_publish is None or provider.may_publish is f.may_publish,
        f.location is None or _located(provider, f.location),
        f.modality is None or f.modality in (model.input_modalities or []) + (model.output_modalities or []),
        f.min_context_length is None or (model.context_length or 0) >= f.min_context_length,
        f.max_input_price_per_mtok is None
        or (prices is not None and prices.input.scaleb(6) <= f.max_input_price_per_mtok),
        f.max_output_price_per_mtok is None
        or (prices is not None and prices.output.scaleb(6) <= f.max_output_price_per_mtok),
    )
    return all(checks)


def _located(provider: CatalogProvider, location: str) -> bool:
    wanted = location.strip().lower()
    country = (provider.headquarters_country or "").lower()
    return wanted == country or wanted in [r.lower() for r in provider.regions or []]


# --- The service ----------------------------------------------------------------------------------------


class CatalogService:
    async def sync(
        self, session: AsyncSession, *, now: datetime | None = None, provider_ids: list[str] | None = None
    ) -> SyncReport:
        """Load or refresh providers, models and reference prices from genai-prices and the curated file.

        Idempotent. A price that changed becomes a new row from ``now``; prices already in force are never
        edited. Future-dated reference rows follow the reference data (they are not in force yet).
        Operator overrides and the enabled flag are left alone.
        """
        now = now or utcnow()
        reference = load_reference(provider_ids)
        report = SyncReport(genai_prices_version=reference.genai_prices_version)
        providers = {p.id: p for p in await repository.list_providers(session)}
        for ref_provider in reference.providers:
            self._sync_provider(session, providers.get(ref_provider.id), ref_provider, report)
        await session.flush()
        models = {m.id: m for m in await repository.list_models(session)}
        rows_by_model = await _prices_by_model(session)
        for ref_model in reference.models:
            self._sync_model(session, models.get(ref_model.id), ref_model, report)
        await session.flush()
        for ref_model in reference.models:
            await self._sync_prices(session, ref_model, rows_by_model.get(ref_model.id, []), now, report)
        await session.flush()
        return report

    def _sync_provider(
        self,
        session: AsyncSession,
        existing: CatalogProvider | None,
        ref: ReferenceProvider,
        report: SyncReport,
    ) -> None:
        values = {
            "name": ref.name,
            "website": ref.website,
            "headquarters_country": ref.headquarters_country,
            "regions": ref.regions,
            "trains_on_prompts": ref.trains_on_prompts,
            "retains_prompts": ref.retains_prompts,
            "may_publish": ref.may_publish,
            "simulated": ref.simulated,
            "facts": ref.facts,
            "source": ref.source,
        }
        if existing is None:
            session.add(CatalogProvider(id=ref.id, **values))
            report.providers_added += 1
        elif _update(existing, values):
            report.providers_updated += 1

    def _sync_model(
        self, session: AsyncSession, existing: CatalogModel | None, ref: ReferenceModel, report: SyncReport
    ) -> None:
        values = {
            "provider_id": ref.provider_id,
            "name": ref.name,
            "context_length": ref.context_length,
            "max_output_tokens": _reference_max_output(existing, ref),
            "input_modalities": ref.input_modalities,
            "output_modalities": ref.output_modalities,
            "deprecated": ref.deprecated,
            "source": ref.source,
            "details": ref.details,
        }
        if existing is None:
            session.add(CatalogModel(id=ref.id, enabled=True, **values))
            report.models_added += 1
        elif existing.source == SOURCE_OPERATOR:
            return  # an operator's own model: the reference does not overwrite it
        elif _update(existing, values):
            report.models_updated += 1

    async def _sync_prices(
        self,
        session: AsyncSession,
        ref: ReferenceModel,
        rows: list[ModelPrice],
        now: datetime,
        report: SyncReport,
    ) -> None:
        reference_rows = [r for r in rows if r.source in REFERENCE_SOURCES]
        if not ref.schedule:
            return
        if not reference_rows:
            for start, prices in ref.schedule:
                self._add_price(session, ref.id, start, prices, ref.source)
                report.prices_added += 1
            report.changed_models.append(ref.id)
            return
        past = [(s, p) for s, p in ref.schedule if s <= now]
        future = [(s, p) for s, p in ref.schedule if s > now]
        changed = False
        # Future rows are not in force yet: drop those the reference no longer lists.
        stale = [
            r
            for r in reference_rows
            if r.effective_from > now and (r.effective_from, prices_of_row(r)) not in future
        ]
        if stale:
            await repository.delete_prices(session, [r.id for r in stale])
            report.scheduled_prices_removed += len(stale)
            changed = True
        kept = [r for r in reference_rows if r not in stale]
        if past:
            current = past[-1][1]
            in_force = [r for r in kept if r.effective_from <= now]
            if not in_force or prices_of_row(in_force[-1]) != current:
                self._add_price(session, ref.id, now, current, ref.source)
                report.prices_added += 1
                changed = True
        scheduled = {(r.effective_from, prices_of_row(r)) for r in kept if r.effective_from > now}
        for start, prices in future:
            if (start, prices) not in scheduled:
                self._add_price(session, ref.id, start, prices, ref.source)
                report.prices_added += 1
                changed = True
        if changed:
            report.changed_models.append(ref.id)

    @staticmethod
    def _add_price(
        session: AsyncSession,
        model_id: str,
        effective_from: datetime,
        prices: Prices,
        source: str,
        *,
        user_id: Any = None,
        note: str | None = None,
    ) -> ModelPrice:
        row = ModelPrice(
            model_id=model_id,
            effective_from=effective_from,
            source=source,
            created_by_user_id=user_id,
            note=note,
            **_row_values(prices),
        )
        session.add(row)
        return row

    async def list_providers(self, session: AsyncSession) -> list[CatalogProvider]:
        return await repository.list_providers(session)

    async def get_provider(self, session: AsyncSession, provider_id: str) -> CatalogProvider:
        provider = await repository.get_provider(session, provider_id)
        if provider is None:
            raise NotFound(f"No provider {provider_id!r} in the catalog.")
        return provider

    async def get_model(self, session: AsyncSession, model_id: str) -> CatalogModel:
        model = await repository.get_model(session, model_id)
        if model is None:
            raise NotFound(f"No model {model_id!r} in the catalog.")
        return model

    async def set_price(
        self,
        session: AsyncSession,
        model_id: str,
        prices: Prices,
        *,
        effective_from: datetime | None = None,
        user_id: Any = None,
        note: str | None = None,
        now: datetime | None = None,
        keep: Collection[str] = (),
    ) -> ModelPrice:
        """An operator override from ``effective_from`` (default now). Past prices are never changed.

        ``keep`` names the kinds (of :data:`INHERITABLE`) the operator left out: those are copied from the
        model's price in force when the override starts, so a new input and output price does not make cache
        reads, reasoning, the request and web search fees or the long-context tiers fall back to "priced like
        input".
        """
        unknown = set(keep) - INHERITABLE
        if unknown:
            raise ValueError(f"not kinds an override may keep: {sorted(unknown)}")
        await self.get_model(session, model_id)
        now = now or utcnow()
        start = effective_from or now
        if start.tzinfo is None:
            raise BadRequest("The start of a price needs a timezone (UTC).")
        if start < now:
            raise BadRequest("A price takes effect now or later: prices already in force are never changed.")
        existing = await repository.prices_of(session, model_id)
        if any(r.source == SOURCE_OVERRIDE and r.effective_from == start for r in existing):
            raise Conflict("An override already starts at that moment.")
        current = await self.prices_at(session, model_id, start) if keep else None
        if current is not None:
            prices = replace(prices, **{kind: getattr(current, kind) for kind in keep})
        row = self._add_price(session, model_id, start, prices, SOURCE_OVERRIDE, user_id=user_id, note=note)
        await session.flush()
        return row

    async def add_model(
        self,
        session: AsyncSession,
        model_id: str,
        *,
        name: str | None = None,
        context_length: int | None = None,
        max_output_tokens: int | None = None,
        input_modalities: list[str] | None = None,
        output_modalities: list[str] | None = None,
        enabled: bool = True,
        prices: Prices | None = None,
        user_id: Any = None,
    ) -> CatalogModel:
        """An operator's own model (self-hosted, or one genai-prices lacks); its provider is made if new."""
        provider_id, sep, rest = model_id.partition("/")
        if not sep or not provider_id or not rest or model_id != model_id.strip():
            raise BadRequest("A model id is provider/model, e.g. openai/gpt-4o.")
        if await repository.get_model(session, model_id) is not None:
            raise Conflict(f"The catalog already has {model_id!r}.")
        if await repository.get_provider(session, provider_id) is None:
            session.add(CatalogProvider(id=provider_id, name=provider_id, source=SOURCE_OPERATOR))
            await session.flush()
        model = CatalogModel(
            id=model_id,
            provider_id=provider_id,
            name=name or rest,
            enabled=enabled,
            context_length=context_length,
            max_output_tokens=max_output_tokens,
            input_modalities=input_modalities,
            output_modalities=output_modalities,
            source=SOURCE_OPERATOR,
            details={},
        )
        session.add(model)
        await session.flush()
        if prices is not None:
            self._add_price(session, model_id, utcnow(), prices, SOURCE_OVERRIDE, user_id=user_id)
            await session.flush()
        return model

    async def update_model(
        self,
        session: AsyncSession,
        model_id: str,
        *,
        enabled: bool | None = None,
        name: str | None = None,
        context_length: int | None = None,
        max_output_tokens: int | None = None,
    ) -> CatalogModel:
        """Change what is given (``None``: unchanged). A maximum output set here is the operator's own: a
        later sync keeps it (see :func:`_reference_max_output`)."""
        model = await self.get_model(session, model_id)
        if enabled is not None:
            model.enabled = enabled
        if name is not None:
            model.name = name
        if context_length is not None:
            model.context_length = context_length
        if max_output_tokens is not None:
            model.max_output_tokens = max_output_tokens
        await session.flush()
        return model

    async def prices_at(self, session: AsyncSession, model_id: str, when: datetime) -> Prices | None:
        """The price in force for ``model_id`` at ``when`` (an override wins); ``None`` when unpriced."""
        row = await repository.price_in_force(session, model_id, when, (SOURCE_OVERRIDE,))
        if row is None:
            row = await repository.price_in_force(session, model_id, when, REFERENCE_SOURCES)
        return prices_of_row(row) if row is not None else None

    async def price_history(self, session: AsyncSession, model_id: str) -> list[ModelPrice]:
        await self.get_model(session, model_id)
        return await repository.prices_of(session, model_id)

    async def snapshot(self, session: AsyncSession) -> dict[str, CatalogEntry]:
        """Every model with its merged price timeline, for :class:`CatalogCache`."""
        rows_by_model = await _prices_by_model(session)
        trains = {p.id: p.trains_on_prompts for p in await repository.list_providers(session)}
        entries = {}
        for model in await repository.list_models(session):
            starts, prices = _timeline(rows_by_model.get(model.id, []))
            entries[model.id] = CatalogEntry(
                model.id,
                model.provider_id,
                model.enabled,
                model.context_length,
                starts,
                prices,
                provider_trains_on_prompts=trains.get(model.provider_id),
                max_output_tokens=model.max_output_tokens,
            )
        return entries

    async def list_models(
        self, session: AsyncSession, filters: ModelFilters, *, when: datetime | None = None
    ) -> list[ModelView]:
        when = when or utcnow()
        providers = {p.id: p for p in await repository.list_providers(session)}
        rows_by_model = await _prices_by_model(session)
        views = []
        for model in await repository.list_models(session, enabled_only=not filters.include_disabled):
            in_force = _row_in_force(rows_by_model.get(model.id, []), when)
            view = ModelView(
                model=model,
                provider=providers[model.provider_id],
                prices=prices_of_row(in_force) if in_force else None,
                price_source=in_force.source if in_force else None,
                price_effective_from=in_force.effective_from if in_force else None,
            )
            if matches(view, filters):
                views.append(view)
        return views

    async def model_view(self, session: AsyncSession, model_id: str) -> ModelView:
        model = await self.get_model(session, model_id)
        provider = await repository.get_provider(session, model.provider_id)
        assert provider is not None
        row = _row_in_force(await repository.prices_of(session, model_id), utcnow())
        return ModelView(
            model,
            provider,
            prices_of_row(row) if row else None,
            row.source if row else None,
            row.effective_from if row else None,
        )


async def _prices_by_model(session: AsyncSession) -> dict[str, list[ModelPrice]]:
    rows_by_model: dict[str, list[ModelPrice]] = {}
    for row in await repository.all_prices(session):
        rows_by_model.setdefault(row.model_id, []).append(row)
    return rows_by_model


def _row_in_force(rows: Sequence[ModelPrice], when: datetime) -> ModelPrice | None:
    """Rows oldest first; an override in force wins over the reference."""
    override: ModelPrice | None = None
    reference: ModelPrice | None = None
    for row in rows:
        if row.effective_from <= when:
            if row.source == SOURCE_OVERRIDE:
                override = row
            else:
                reference = row
    return override or reference


def _reference_max_output(existing: CatalogModel | None, ref: ReferenceModel) -> int | None:
    """The maximum output a sync stores: the reference's, unless the stored one is an operator's.

    The stored value is the reference's when it is what the reference gave at the last sync (kept with its
    source in ``details["facts"]``): it follows a corrected curated value. An empty one (a model synced
    before the column existed) takes the reference's. Any other value an operator set, and it stays.
    """
    if existing is None or existing.max_output_tokens is None:
        return ref.max_output_tokens
    last = ((existing.details or {}).get("facts") or {}).get("max_output_tokens") or {}
    if existing.max_output_tokens == last.get("value"):
        return ref.max_output_tokens
    return existing.max_output_tokens


def _update(obj: object, values: dict[str, Any]) -> bool:
    changed = False
    for key, value in values.items():
        if getattr(obj, key) != value:
            setattr(obj, key, value)
            changed = True
    return changed


catalog = CatalogService()

__all__ = ["BEGINNING", "CatalogCache", "CatalogEntry", "CatalogService", "ModelFilters", "catalog"]
