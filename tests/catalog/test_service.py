"""Catalog storage: sync is idempotent, prices are versioned by date, overrides win, the cache agrees."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from tests.support.factories import Factory
from tokenboard.catalog import service as catalog_service
from tokenboard.catalog.pricing import Prices, TokenUsage, compute_cost
from tokenboard.catalog.reference import (
    SOURCE_GENAI,
    SOURCE_OVERRIDE,
    ReferenceCatalog,
    load_reference,
    per_token,
)
from tokenboard.catalog.service import CatalogCache, catalog
from tokenboard.kit.errors import BadRequest, Conflict
from tokenboard.models import CatalogModel, ModelPrice

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
