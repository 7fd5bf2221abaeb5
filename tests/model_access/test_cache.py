"""The gateway's decision: in memory after ensure_org, right again as soon as a change commits."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.model_access.conftest import as_role
from tests.support.factories import Factory, OrgSetup
from tokenboard.members.roles import Role
from tokenboard.model_access.cache import (
    MODEL_DISABLED,
    PROVIDER_DISABLED,
    TRAINING_OPTED_OUT,
    ModelAccessCache,
    PolicyNotLoaded,
)
from tokenboard.model_access.service import model_access

GPT4O = "openai/gpt-4o"
DEEPSEEK = "deepseek/deepseek-chat"


def the_cache(factory: Factory) -> ModelAccessCache:
    cache: ModelAccessCache = factory.app.state.model_access_cache
    return cache


async def load(factory: Factory, setup: OrgSetup) -> ModelAccessCache:
    cache = the_cache(factory)
    async with factory.app.state.sessionmaker() as session:
        await cache.ensure_org(session, setup.id)
    return cache


async def test_the_cache_decides_without_the_database(
    factory: Factory, setup: OrgSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    await as_role(
        factory, setup, lambda s, ctx: model_access.set_model(s, ctx, "openai/gpt-4o-mini", enabled=False)
    )
    await as_role(factory, setup, lambda s, ctx: model_access.set_default_model(s, ctx, GPT4O))
    cache = await load(factory, setup)  # the session is closed once loaded

    async def no_database(*args: object, **kwargs: object) -> None:
        raise AssertionError("the decision touched the database")

    monkeypatch.setattr(AsyncSession, "execute", no_database)
    monkeypatch.setattr(AsyncSession, "get", no_database)
    assert cache.decide(setup.id, GPT4O) is None
    refusal = cache.decide(setup.id, "openai/gpt-4o-mini")
    assert refusal is not None and refusal.status == 403 and refusal.reason == MODEL_DISABLED
    assert "openai/gpt-4o-mini" in refusal.message and MODEL_DISABLED in refusal.message
    trains = cache.decide(setup.id, DEEPSEEK)
    assert trains is not None and trains.status == 403 and trains.reason == TRAINING_OPTED_OUT
    unknown = cache.decide(setup.id, "openai/not-a-model")
    assert unknown is not None and unknown.status == 404 and "openai/not-a-model" in unknown.message
    allowed = cache.allowed_models(setup.id)
    assert GPT4O in allowed and "openai/gpt-4o-mini" not in allowed and DEEPSEEK not in allowed
    assert allowed == sorted(allowed)
    assert cache.default_model(setup.id) == GPT4O
    # ensure_org again is free: the policy is in memory.
    async with factory.app.state.sessionmaker() as session:
        await cache.ensure_org(session, setup.id)


async def test_deciding_before_loading_is_an_error_not_an_allow(factory: Factory, setup: OrgSetup) -> None:
    with pytest.raises(PolicyNotLoaded):
        the_cache(factory).decide(setup.id, GPT4O)


async def test_the_cache_sees_a_change_as_soon_as_it_commits(factory: Factory, setup: OrgSetup) -> None:
    cache = await load(factory, setup)
    assert cache.decide(setup.id, GPT4O) is None

    async def disable_and_check(session: AsyncSession, ctx: object) -> None:
        await model_access.set_provider(session, ctx, "openai", enabled=False)  # type: ignore[arg-type]
        assert cache.loaded(setup.id), "not invalidated before the commit: the change may still roll back"

    await as_role(factory, setup, disable_and_check)
    assert not cache.loaded(setup.id)
    cache = await load(factory, setup)
    refusal = cache.decide(setup.id, GPT4O)
    assert refusal is not None and refusal.reason == PROVIDER_DISABLED


async def test_a_rolled_back_change_leaves_the_cache_alone(factory: Factory, setup: OrgSetup) -> None:
    cache = await load(factory, setup)
    async with factory.app.state.sessionmaker() as session:
        ctx = await factory.org_context(session, setup.organization, setup.users[Role.owner])
        await model_access.set_provider(session, ctx, "openai", enabled=False)
        await session.rollback()
    assert cache.loaded(setup.id) and cache.decide(setup.id, GPT4O) is None


async def test_opting_in_through_the_api_allows_training_providers_at_once(
    factory: Factory, setup: OrgSetup
) -> None:
    cache = await load(factory, setup)
    assert cache.decide(setup.id, DEEPSEEK) is not None
    async with await factory.client_for(setup.users[Role.admin]) as client:
        settings = f"/api/v1/organizations/{setup.id}/settings"
        assert (await client.patch(settings, json={"opt_out_training_providers": False})).status_code == 200
        await load(factory, setup)
        assert cache.decide(setup.id, DEEPSEEK) is None
        assert (await client.patch(settings, json={"opt_out_training_providers": True})).status_code == 200
        await load(factory, setup)
        refusal = cache.decide(setup.id, DEEPSEEK)
        assert refusal is not None and refusal.reason == TRAINING_OPTED_OUT


async def test_a_load_that_raced_a_change_is_read_again(factory: Factory, setup: OrgSetup) -> None:
    cache = the_cache(factory)
    async with factory.app.state.sessionmaker() as session:
        await cache.ensure_org(session, setup.id)
    cache.invalidate(setup.id)
    assert not cache.loaded(setup.id)
    # Simulate: a load starts, a change commits (invalidating) before the load stores its result.
    from tokenboard.model_access import cache as cache_module

    real = cache_module.load_policy

    async def slow_load(session: AsyncSession, org_id: object) -> object:
        policy = await real(session, org_id)  # type: ignore[arg-type]
        cache.invalidate(setup.id)
        return policy

    cache_module.load_policy = slow_load  # type: ignore[assignment]
    try:
        async with factory.app.state.sessionmaker() as session:
            await cache.ensure_org(session, setup.id)
    finally:
        cache_module.load_policy = real
    assert cache.decide(setup.id, GPT4O) is None  # the racing request is still served
    assert not cache.loaded(setup.id)  # but the next one reads again
