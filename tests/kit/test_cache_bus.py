"""Several instances behind a load balancer: a change on one drops the caches of the others (Redis)."""

from __future__ import annotations

import asyncio

from tests.support.factories import Factory
from tokenboard.app import create_app
from tokenboard.config import Settings
from tokenboard.members.roles import Role


async def test_a_revocation_on_one_instance_reaches_the_others(settings: Settings, app: object) -> None:
    shared = settings.model_copy(update={"redis_url": "redis://127.0.0.1:6379/0"})
    first, second = create_app(shared), create_app(shared)
    try:
        await first.state.cache_bus.start()
        await second.state.cache_bus.start()
        factory = Factory(first)
        setup = await factory.org_with_roles("Bus Co")
        async with second.state.sessionmaker() as session:
            info = await second.state.key_cache.resolve(session, setup.api_key_secret)
        assert info is not None and not info.revoked
        assert second.state.key_cache.peek(setup.api_key_secret) == (True, info)
        async with await factory.client_for(setup.users[Role.member]) as member:
            r = await member.delete(f"/api/v1/organizations/{setup.id}/api-keys/{setup.api_key.id}")
            assert r.status_code == 204
        for _ in range(100):  # the message crosses Redis in milliseconds
            if second.state.key_cache.peek(setup.api_key_secret) == (False, None):
                break
            await asyncio.sleep(0.02)
        assert second.state.key_cache.peek(setup.api_key_secret) == (False, None)
        async with second.state.sessionmaker() as session:
            reloaded = await second.state.key_cache.resolve(session, setup.api_key_secret)
        assert reloaded is not None and reloaded.revoked
    finally:
        for instance in (first, second):
            await instance.state.cache_bus.stop()
            await instance.state.redis.aclose()
            await instance.state.upstreams.aclose()
            await instance.state.engine.dispose()


async def test_without_redis_the_bus_only_applies_locally(app: object) -> None:
    bus = app.state.cache_bus  # type: ignore[attr-defined]
    await bus.start()
    await bus.announce("keys")  # nothing to publish to, nothing to fail
