"""Demo usage: a realistic year through the pipeline, deterministic, and the rollups agree with it."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support.factories import Factory
from tests.usage.test_rollups import check_reads, stored_events
from tokenboard.catalog.pricing import TokenUsage, cost_nanousd
from tokenboard.catalog.service import CatalogCache
from tokenboard.demo import DEMO_DEFAULT_MODEL, seed_demo
from tokenboard.models import Membership, Organization, User
from tokenboard.usage.synthetic import Person, UsageGenerator


async def test_demo_seeds_a_realistic_year(factory: Factory, db: AsyncSession) -> None:
    seen: list[int] = []
    result = await factory.run(lambda s: seed_demo(s, events=1500, progress=seen.append))
    assert sum(seen) == 1500
    raw = await stored_events(db, result.organization.id)
    assert len(raw) == 1500
    weekdays = Counter(e["created_at"].weekday() for e in raw)
    assert weekdays[2] > 4 * weekdays[6]  # quiet weekends
    hours = Counter(e["created_at"].hour for e in raw)
    assert sum(hours[h] for h in range(8, 18)) > 0.7 * len(raw)  # working hours
    assert len({e["provider_id"] for e in raw}) >= 3 and len({e["model_id"] for e in raw}) >= 5
    assert 0.4 < sum(e["stream"] for e in raw) / len(raw) < 0.8
    assert any(e["status_code"] >= 400 for e in raw) and any(e["cancelled"] for e in raw)
    per_user = Counter(e["user_id"] for e in raw).most_common()
    assert per_user[0][1] > 3 * per_user[-1][1]  # a few heavy users
    conversations = Counter(e["conversation_id"] for e in raw)
    assert max(conversations.values()) >= 4
    assert all(e["feature"] for e in raw) and any(e["integration"] for e in raw)
    # Some Claude requests searched the web, and their cost has the searches in it (a line of its own).
    searched = [e for e in raw if e["web_searches"]]
    assert searched and all(e["provider_id"] == "anthropic" and e["status_code"] == 200 for e in searched)
    assert {e["web_searches"] for e in searched} <= {1, 2, 3}
    cache = CatalogCache()
    await factory.run(cache.load)
    for e in searched:
        prices = cache.prices_at(e["model_id"], e["created_at"])
        assert prices is not None and prices.per_web_search == Decimal("0.01")
        tokens = {
            k: e[k] for k in ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens")
        }
        with_searches = cost_nanousd(prices, TokenUsage(**tokens, web_searches=e["web_searches"]))
        assert (
            e["cost_nanousd"]
            == with_searches
            == cost_nanousd(prices, TokenUsage(**tokens)) + e["web_searches"] * 10_000_000
        )
    org = await db.get(Organization, result.organization.id)
    assert org is not None and org.default_model_id == DEMO_DEFAULT_MODEL  # a request without a model works
    # A token quota last month's usage fits in with a fifth to spare (two significant digits, rounded up),
    # so the usage page shows its quota view from the start.
    this_month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    last = [e for e in raw if last_month <= e["created_at"] < this_month]
    tokens = sum(e["input_tokens"] + e["cached_input_tokens"] + e["cache_write_5m_tokens"] for e in last)
    tokens += sum(e["cache_write_1h_tokens"] + e["output_tokens"] + e["reasoning_tokens"] for e in last)
    assert tokens > 0 and org.monthly_usage_quota_tokens is not None
    assert tokens * 1.2 <= org.monthly_usage_quota_tokens < tokens * 1.2 * 1.1
    assert int(str(org.monthly_usage_quota_tokens)[2:] or 0) == 0
    users = list(
        await db.scalars(
            select(User)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.organization_id == org.id)
        )
    )
    await check_reads(db, org, users, raw)


async def test_the_generator_is_deterministic(factory: Factory, db: AsyncSession) -> None:
    from tokenboard.catalog.service import catalog

    await factory.run(lambda s: catalog.sync(s, provider_ids=["openai", "anthropic", "google"]))
    cache = CatalogCache()
    await cache.load(db)
    org = await factory.org(await factory.user())
    people = [Person(None), Person((await factory.user()).id)]
    end = datetime(2026, 6, 1, tzinfo=UTC)

    def rows() -> list[dict[str, object]]:
        generator = UsageGenerator(org.id, people, cache, events=400, end=end, seed=3)
        return [e for batch in generator.batches(size=64) for e in batch]

    first, second = rows(), rows()
    assert first == second and len(first) == 400
    assert [e["created_at"] for e in first] == sorted(e["created_at"] for e in first)  # type: ignore[type-var]


async def test_the_benchmarks_model_count(factory: Factory, db: AsyncSession) -> None:
    """``models=40`` (QUALITY.md's dashboard data): the mix first, then a tail of other priced chat models."""
    from tokenboard.catalog.service import catalog
    from tokenboard.usage.synthetic import MODEL_MIX

    await factory.run(lambda s: catalog.sync(s))
    cache = CatalogCache()
    await cache.load(db)
    org = await factory.org(await factory.user())
    end = datetime(2026, 6, 1, tzinfo=UTC)
    generator = UsageGenerator(org.id, [Person(None)], cache, events=20_000, end=end, seed=3, models=40)
    assert len(generator.models) == 40 and len({m for m, _, _ in generator.models}) == 40
    assert [m for m, _, _ in generator.models[: len(MODEL_MIX)]] == [m for m, _ in MODEL_MIX]
    for model_id, _, _ in generator.models:
        prices = cache.get(model_id).price_at(end)  # type: ignore[union-attr]
        assert prices is not None and prices.input > 0 and prices.output > 0
    used = Counter(e["model_id"] for batch in generator.batches(size=5_000) for e in batch)
    assert len(used) == 40  # every model appears in 20,000 events
    assert used.most_common(1)[0][0] in {m for m, _ in MODEL_MIX}
    # Fewer than the mix: its most popular models only.
    assert [m for m, _, _ in UsageGenerator(org.id, [], cache, events=1, end=end, models=3).models] == [
        m for m, _ in MODEL_MIX[:3]
    ]
