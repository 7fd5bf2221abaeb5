"""Catalog storage: sync is idempotent, prices are versioned by date, overrides win, the cache agrees."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import func, inspect, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support.databases import BACKENDS, create_database, drop_database
from tests.support.factories import Factory
from tokenboard.catalog import service as catalog_service
from tokenboard.catalog.pricing import Prices, TokenUsage, compute_cost
from tokenboard.catalog.reference import (
    SOURCE_GENAI,
    SOURCE_OVERRIDE,
    ReferenceCatalog,
    curated,
    load_reference,
    per_token,
)
from tokenboard.catalog.service import CatalogCache, catalog
from tokenboard.kit.db import create_engine, create_sessionmaker
from tokenboard.kit.errors import BadRequest, Conflict
from tokenboard.migrations import downgrade, upgrade
from tokenboard.models import CatalogModel, ModelPrice

T = TypeVar("T")
T0 = datetime(2026, 11, 1, tzinfo=UTC)
T1 = datetime(2026, 11, 10, tzinfo=UTC)
T2 = datetime(2026, 11, 20, tzinfo=UTC)
GPT4O = "openai/gpt-4o"


async def count(factory: Factory, model: type[object]) -> int:
    return int(await factory.run(lambda s: s.scalar(select(func.count()).select_from(model))))  # type: ignore[arg-type]


def changed_reference(model_id: str, **per_mtok: str) -> ReferenceCatalog:
    """The reference data as if genai-prices published a new price for one model."""
    reference = load_reference()
    models = []
    for model in reference.models:
        if model.id == model_id:
            start, prices = model.schedule[-1]
            new = replace(prices, **{k: per_token(Decimal(v)) for k, v in per_mtok.items()})
            model = replace(model, schedule=[(start, new)])
        models.append(model)
    return replace(reference, models=models)


async def test_sync_is_idempotent(factory: Factory) -> None:
    first = await factory.run(lambda s: catalog.sync(s, now=T0))
    assert first.models_added > 1000 and first.prices_added >= first.models_added // 2
    models, prices = await count(factory, CatalogModel), await count(factory, ModelPrice)
    again = await factory.run(lambda s: catalog.sync(s, now=T1))
    assert (again.models_added, again.models_updated, again.prices_added) == (0, 0, 0)
    assert (await count(factory, CatalogModel), await count(factory, ModelPrice)) == (models, prices)


async def test_a_changed_price_is_a_new_row_and_the_past_keeps_its_price(
    factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    await factory.run(lambda s: catalog.sync(s, now=T0))
    old = await factory.run(lambda s: catalog.prices_at(s, GPT4O, T1))
    assert old is not None and old.input == Decimal("0.0000025")

    monkeypatch.setattr(
        catalog_service, "load_reference", lambda ids=None: changed_reference(GPT4O, input="2")
    )
    report = await factory.run(lambda s: catalog.sync(s, now=T1))
    assert report.prices_added == 1 and report.changed_models == [GPT4O]
    again = await factory.run(lambda s: catalog.sync(s, now=T2))
    assert again.prices_added == 0

    rows = await factory.run(lambda s: catalog.price_history(s, GPT4O))
    assert [(r.effective_from, r.source) for r in rows] == [
        (datetime(2020, 1, 1, tzinfo=UTC), SOURCE_GENAI),
        (T1, SOURCE_GENAI),
    ]
    before = await factory.run(lambda s: catalog.prices_at(s, GPT4O, T1 - timedelta(seconds=1)))
    after = await factory.run(lambda s: catalog.prices_at(s, GPT4O, T1))
    assert before == old and after is not None and after.input == Decimal("0.000002")
    usage = TokenUsage(input_tokens=1_000_000)
    assert compute_cost(before, usage).total_nanousd == 2_500_000_000
    assert compute_cost(after, usage).total_nanousd == 2_000_000_000


async def test_scheduled_reference_prices_apply_on_their_day(factory: Factory) -> None:
    await factory.run(lambda s: catalog.sync(s, now=T0))
    # genai-prices lists a higher gemini-4-argon price from 2026-12-01.
    before = await factory.run(lambda s: catalog.prices_at(s, "google/gemini-4-argon", T2))
    after = await factory.run(
        lambda s: catalog.prices_at(s, "google/gemini-4-argon", datetime(2026, 12, 1, tzinfo=UTC))
    )
    assert before is not None and after is not None
    assert (before.input, after.input) == (Decimal("0.000002"), Decimal("0.000004"))


async def test_a_withdrawn_future_price_is_removed_but_past_rows_stay(
    factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    await factory.run(lambda s: catalog.sync(s, now=T0))
    argon = "google/gemini-4-argon"
    reference = load_reference()
    models = [replace(m, schedule=m.schedule[:1]) if m.id == argon else m for m in reference.models]
    monkeypatch.setattr(catalog_service, "load_reference", lambda ids=None: replace(reference, models=models))
    report = await factory.run(lambda s: catalog.sync(s, now=T1))
    assert report.scheduled_prices_removed == 1 and report.prices_added == 0
    later = await factory.run(lambda s: catalog.prices_at(s, argon, datetime(2027, 1, 1, tzinfo=UTC)))
    assert later is not None and later.input == Decimal("0.000002")


async def test_operator_override_wins_from_its_start(factory: Factory) -> None:
    await factory.run(lambda s: catalog.sync(s, now=T0))
    discount = Prices(input=per_token(Decimal("2")), output=per_token(Decimal("8")))
    start = datetime.now(UTC) + timedelta(hours=1)
    row = await factory.run(
        lambda s: catalog.set_price(s, GPT4O, discount, effective_from=start, note="deal")
    )
    assert row.source == SOURCE_OVERRIDE
    assert await factory.run(lambda s: catalog.prices_at(s, GPT4O, start)) == discount
    reference = await factory.run(lambda s: catalog.prices_at(s, GPT4O, start - timedelta(seconds=1)))
    assert reference is not None and reference.input == Decimal("0.0000025")
    # A later sync leaves the override alone.
    await factory.run(lambda s: catalog.sync(s))
    assert await factory.run(lambda s: catalog.prices_at(s, GPT4O, start + timedelta(days=1))) == discount

    with pytest.raises(BadRequest):
        await factory.run(lambda s: catalog.set_price(s, GPT4O, discount, effective_from=T0))
    with pytest.raises(Conflict):
        await factory.run(lambda s: catalog.set_price(s, GPT4O, discount, effective_from=start))


async def test_an_override_keeps_the_kinds_it_leaves_out(factory: Factory) -> None:
    """A new input and output price for Sonnet 4.5 keeps its cache prices, reasoning and 200k-token tier as
    they are when the override starts; what the override gives replaces them."""
    sonnet = "anthropic/claude-sonnet-4-5"
    await factory.run(lambda s: catalog.sync(s, now=T0))
    start = datetime.now(UTC) + timedelta(hours=1)
    before = await factory.run(lambda s: catalog.prices_at(s, sonnet, start))
    assert before is not None and before.cache_write_1h is not None and before.tiers
    cheaper = Prices(input=per_token(Decimal("2.4")), output=per_token(Decimal("12")))
    await factory.run(
        lambda s: catalog.set_price(
            s, sonnet, cheaper, effective_from=start, keep=catalog_service.INHERITABLE
        )
    )
    after = await factory.run(lambda s: catalog.prices_at(s, sonnet, start))
    assert after == replace(before, input=cheaper.input, output=cheaper.output)
    # Given kinds win; an override without ``keep`` is the whole price, as given.
    fee = replace(cheaper, per_request=Decimal("0.01"), tiers=())
    later = start + timedelta(hours=1)
    await factory.run(
        lambda s: catalog.set_price(s, sonnet, fee, effective_from=later, keep={"cache_write_5m"})
    )
    assert await factory.run(lambda s: catalog.prices_at(s, sonnet, later)) == replace(
        fee, cache_write_5m=before.cache_write_5m
    )
    with pytest.raises(ValueError, match="input"):
        await factory.run(lambda s: catalog.set_price(s, sonnet, cheaper, keep={"input"}))


async def test_unpriced_and_unknown_models_have_no_price(factory: Factory) -> None:
    await factory.run(lambda s: catalog.sync(s, now=T0))
    # Mistral OCR is priced per page, which the gateway does not meter: no token price.
    assert await factory.run(lambda s: catalog.prices_at(s, "mistral/mistral-ocr-2512", T1)) is None
    assert await factory.run(lambda s: catalog.prices_at(s, "nobody/nothing", T1)) is None
    await factory.run(lambda s: catalog.add_model(s, "local/llama-3.3-70b", context_length=128_000))
    assert await factory.run(lambda s: catalog.prices_at(s, "local/llama-3.3-70b", T2)) is None
    with pytest.raises(Conflict):
        await factory.run(lambda s: catalog.add_model(s, "local/llama-3.3-70b"))
    with pytest.raises(BadRequest):
        await factory.run(lambda s: catalog.add_model(s, "no-provider"))


async def test_the_cache_serves_prices_without_the_database(factory: Factory) -> None:
    await factory.run(lambda s: catalog.sync(s, now=T0))
    start = datetime.now(UTC) + timedelta(minutes=5)
    override = Prices(input=per_token(Decimal("1")), output=per_token(Decimal("4")))
    await factory.run(lambda s: catalog.set_price(s, GPT4O, override, effective_from=start))
    cache = CatalogCache()
    assert cache.get(GPT4O) is None and not cache.loaded
    await factory.run(cache.load)
    for model_id, when in [
        (GPT4O, T1),
        (GPT4O, start),
        ("google/gemini-4-argon", datetime(2027, 1, 1, tzinfo=UTC)),
    ]:
        expected = await factory.run(lambda s, m=model_id, w=when: catalog.prices_at(s, m, w))  # type: ignore[misc]
        assert cache.prices_at(model_id, when) == expected
    assert cache.prices_at(GPT4O, start) == override
    assert cache.prices_at("nobody/nothing", T1) is None

    await factory.run(lambda s: catalog.update_model(s, GPT4O, enabled=False))
    assert cache.prices_at(GPT4O, T1) is not None  # stale until invalidated
    cache.invalidate()
    await factory.run(cache.ensure_loaded)
    assert cache.prices_at(GPT4O, T1) is None
    entry = cache.get(GPT4O)
    assert entry is not None and not entry.enabled


async def test_stored_prices_are_exact_on_every_engine(factory: Factory) -> None:
    """Per-token prices round-trip exactly: 0.075/M is 0.000000075 per token, never a float."""
    await factory.run(lambda s: catalog.sync(s, now=T0))
    mini = await factory.run(lambda s: catalog.prices_at(s, "openai/gpt-4o-mini", T1))
    assert mini is not None and mini.cached_input_read == Decimal("0.000000075")
    odd = await factory.run(lambda s: catalog.prices_at(s, "deepseek/deepseek-v4-pro", T1))
    reference = load_reference(["deepseek"])
    expected = next(m for m in reference.models if m.id == "deepseek/deepseek-v4-pro").schedule[0][1]
    assert odd == expected


def reference_with_max_output(model_id: str, value: int, provider_ids: list[str] | None) -> ReferenceCatalog:
    """The reference data as if the curated file gave ``model_id`` another maximum output."""
    reference = load_reference(provider_ids)
    models = []
    for model in reference.models:
        if model.id == model_id:
            fact = model.details["facts"]["max_output_tokens"] | {"value": value}
            details = model.details | {"facts": model.details["facts"] | {"max_output_tokens": fact}}
            model = replace(model, max_output_tokens=value, details=details)
        models.append(model)
    return replace(reference, models=models)


async def test_sync_stores_the_curated_maximum_output_and_keeps_an_operators(
    factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The curated maximum reaches the catalog and the gateway's cache with its source; a row synced before
    the column existed gets it on the next sync; an operator's own value survives syncs while the reference's
    follows a corrected curated file."""
    mini, fast, local = "openai/gpt-4o-mini", "simulated/fast", "local/llama-3.3-70b"

    async def stored(model_id: str) -> int | None:
        model = await factory.run(lambda s: catalog.get_model(s, model_id))
        return model.max_output_tokens

    await factory.run(lambda s: catalog.sync(s, now=T0, provider_ids=["openai", "simulated"]))
    assert (await stored(GPT4O), await stored(mini), await stored(fast)) == (16_384, 16_384, 8_192)
    assert await stored("openai/gpt-3.5-turbo") is None  # no curated maximum: the context length bounds it
    gpt4o = await factory.run(lambda s: catalog.get_model(s, GPT4O))
    fact = gpt4o.details["facts"]["max_output_tokens"]
    assert fact["value"] == 16_384
    assert fact["source"]["url"] == "https://platform.openai.com/docs/models/gpt-4o"
    cache = CatalogCache()
    await factory.run(cache.load)
    entry = cache.get(GPT4O)
    assert entry is not None and (entry.context_length, entry.max_output_tokens) == (128_000, 16_384)

    # A database migrated to 0020: the column empty, the details as the sync before it wrote them.
    await factory.run(
        lambda s: s.execute(
            update(CatalogModel)
            .where(CatalogModel.id.in_([GPT4O, fast]))
            .values(max_output_tokens=None, details={})
        )
    )
    assert await stored(GPT4O) is None
    refreshed = await factory.run(lambda s: catalog.sync(s, now=T1, provider_ids=["openai", "simulated"]))
    assert refreshed.models_updated == 2
    assert (await stored(GPT4O), await stored(fast)) == (16_384, 8_192)

    await factory.run(lambda s: catalog.update_model(s, mini, max_output_tokens=8_000))
    await factory.run(lambda s: catalog.add_model(s, local, max_output_tokens=4_096))
    again = await factory.run(lambda s: catalog.sync(s, now=T1, provider_ids=["openai", "simulated"]))
    assert again.models_updated == 0
    assert (await stored(mini), await stored(local)) == (8_000, 4_096)

    # The curated file corrected: the reference's value follows it, the operator's stays.
    monkeypatch.setattr(
        catalog_service, "load_reference", lambda ids=None: reference_with_max_output(GPT4O, 32_768, ids)
    )
    await factory.run(lambda s: catalog.sync(s, now=T2, provider_ids=["openai", "simulated"]))
    assert (await stored(GPT4O), await stored(mini), await stored(local)) == (32_768, 8_000, 4_096)


async def test_a_changed_maximum_output_reaches_a_cache_that_did_not_hear_of_it(factory: Factory) -> None:
    """A CLI change (no admin route to invalidate the cache): the upkeep's fingerprint sees it."""
    await factory.run(lambda s: catalog.sync(s, now=T0, provider_ids=["openai"]))
    cache = CatalogCache()
    await factory.run(cache.load)
    assert not await factory.run(cache.reload_if_changed)
    await factory.run(lambda s: catalog.update_model(s, GPT4O, max_output_tokens=4_000))
    assert await factory.run(cache.reload_if_changed)
    entry = cache.get(GPT4O)
    assert entry is not None and entry.max_output_tokens == 4_000


def test_every_curated_maximum_output_is_a_positive_whole_number_with_its_source() -> None:
    data = curated()
    specs = data["models"] | data["simulated_models"]
    given = {
        model_id: spec["max_output_tokens"] for model_id, spec in specs.items() if "max_output_tokens" in spec
    }
    assert len(given) >= 25 and "openai/text-embedding-3-small" not in given
    for model_id, fact in given.items():
        assert type(fact["value"]) is int and fact["value"] > 0, model_id
        assert fact["source"]["title"] and fact["source"]["url"], model_id
    by_id = {m.id: m for m in load_reference().models}
    assert all(by_id[model_id].max_output_tokens == fact["value"] for model_id, fact in given.items())


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migration_0020_adds_the_maximum_output_and_drops_it_again(
    backend: str, tmp_path: Path
) -> None:
    """Down to 0019: the column is gone and the catalog (models and their prices) kept whole; up again: the
    column is back, empty, and the next sync fills the curated values."""
    url, name = await asyncio.to_thread(create_database, backend, tmp_path, "max_output")

    async def columns_and_counts() -> tuple[set[str], int, int]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                found = await conn.run_sync(lambda c: inspect(c).get_columns("catalog_models"))
                models = await conn.scalar(text("SELECT count(*) FROM catalog_models"))
                prices = await conn.scalar(text("SELECT count(*) FROM model_prices"))
        finally:
            await engine.dispose()
        return {c["name"] for c in found}, int(models or 0), int(prices or 0)

    async def synced() -> dict[str, int | None]:
        engine = create_engine(url)
        try:
            async with create_sessionmaker(engine)() as session:
                await catalog.sync(session, now=T0, provider_ids=["openai", "simulated"])
                await session.commit()
                rows = await session.execute(select(CatalogModel.id, CatalogModel.max_output_tokens))
                return {model_id: value for model_id, value in rows}
        finally:
            await engine.dispose()

    try:
        stored = await synced()
        assert (stored[GPT4O], stored["simulated/fast"]) == (16_384, 8_192)
        columns, models, prices = await columns_and_counts()
        assert "max_output_tokens" in columns and models == len(stored) and prices > 0

        await asyncio.to_thread(downgrade, url, "0019")
        old_columns, old_models, old_prices = await columns_and_counts()
        assert old_columns == columns - {"max_output_tokens"}
        assert (old_models, old_prices) == (models, prices)  # nothing cascaded away with the column

        await asyncio.to_thread(upgrade, url)
        assert await columns_and_counts() == (columns, models, prices)
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                filled = await conn.scalar(
                    select(func.count()).where(CatalogModel.max_output_tokens.is_not(None))
                )
        finally:
            await engine.dispose()
        assert filled == 0  # empty until the catalog is synced
        assert await synced() == stored
    finally:
        await asyncio.to_thread(drop_database, backend, name)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migrations_0022_and_0023_price_searches_and_audio_from_the_next_sync_on(
    backend: str, tmp_path: Path
) -> None:
    """Down to 0021 and up again, as an installation upgraded from 0021 would be: its prices charge nothing
    per search and audio as text (as they did), and the next sync adds Anthropic's $0.01 a search and
    gpt-audio's audio prices from that moment, never before; events keep their rows, with no searches or
    audio. Both ways nothing but the new columns changes."""
    from tokenboard.models import Organization, UsageEvent
    from tokenboard.usage.ingest import record_events

    url, name = await asyncio.to_thread(create_database, backend, tmp_path, "web_search")
    sonnet = "anthropic/claude-sonnet-4-5"
    org_id = uuid.uuid4()

    async def add_org(session: AsyncSession) -> None:
        session.add(Organization(id=org_id, name="Search Co"))
        await session.flush()

    async def in_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        engine = create_engine(url)
        try:
            async with create_sessionmaker(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    async def shape() -> tuple[dict[str, set[str]], int, int]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                names = {
                    table: {
                        c["name"] for c in await conn.run_sync(lambda c, t=table: inspect(c).get_columns(t))
                    }  # type: ignore[misc]
                    for table in ("model_prices", "usage_events")
                }
                prices = await conn.scalar(text("SELECT count(*) FROM model_prices"))
                events = await conn.scalar(text("SELECT count(*) FROM usage_events"))
        finally:
            await engine.dispose()
        return names, int(prices or 0), int(events or 0)

    async def search_price(session: AsyncSession, at: datetime) -> Decimal:
        prices = await catalog.prices_at(session, sonnet, at)
        assert prices is not None
        return prices.per_web_search

    async def audio_prices(session: AsyncSession, at: datetime) -> tuple[Decimal | None, Decimal | None]:
        prices = await catalog.prices_at(session, "openai/gpt-audio", at)
        assert prices is not None
        return prices.input_audio, prices.output_audio

    async def searches(session: AsyncSession) -> list[tuple[str, int]]:
        rows = await session.execute(select(UsageEvent.request_id, UsageEvent.web_searches))
        return sorted((request_id, count) for request_id, count in rows)

    try:
        await in_session(add_org)
        await in_session(lambda s: catalog.sync(s, now=T0, provider_ids=["anthropic", "openai"]))
        assert await in_session(lambda s: search_price(s, T1)) == Decimal("0.01")
        audio = (Decimal("0.000032"), Decimal("0.000064"))
        assert await in_session(lambda s: audio_prices(s, T1)) == audio
        row = {"organization_id": org_id, "request_id": "r-1", "provider_id": "anthropic", "model_id": sonnet}
        await in_session(lambda s: record_events(s, [row | {"web_searches": 2, "cost_nanousd": 20_000_105}]))
        columns, prices, events = await shape()
        added = {
            "model_prices": {"per_web_search", "input_audio", "output_audio"},
            "usage_events": {"web_searches", "input_audio_tokens", "output_audio_tokens"},
        }
        assert all(added[table] <= columns[table] for table in added)

        await asyncio.to_thread(downgrade, url, "0021")
        assert await shape() == (
            {table: columns[table] - added[table] for table in added},
            prices,
            events,
        )

        await asyncio.to_thread(upgrade, url)
        assert await shape() == (columns, prices, events)
        assert await in_session(searches) == [("r-1", 0)]
        assert await in_session(lambda s: search_price(s, T1)) == 0  # what 0021 charged
        assert await in_session(lambda s: audio_prices(s, T1)) == (None, None)  # audio as text

        now = datetime.now(UTC)
        report = await in_session(lambda s: catalog.sync(s, now=now, provider_ids=["anthropic", "openai"]))
        assert {sonnet, "openai/gpt-audio"} <= set(report.changed_models)
        assert await in_session(lambda s: audio_prices(s, T1)) == (None, None)
        assert await in_session(lambda s: audio_prices(s, now)) == audio
        assert await in_session(lambda s: search_price(s, T1)) == 0  # a past request keeps its day's price
        assert await in_session(lambda s: search_price(s, now)) == Decimal("0.01")
        await in_session(lambda s: record_events(s, [row | {"request_id": "r-2", "web_searches": 3}]))
        assert await in_session(searches) == [("r-1", 0), ("r-2", 3)]
    finally:
        await asyncio.to_thread(drop_database, backend, name)
