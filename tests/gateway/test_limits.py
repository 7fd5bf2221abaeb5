"""Per-key limits across instances: rate counts shared through Redis, spend re-read from the database."""

from __future__ import annotations

import time
import uuid

from redis.asyncio import Redis
from sqlalchemy import update

from tests.support.factories import Factory
from tokenboard.gateway.limits import KeySpend, RateLimiter
from tokenboard.models import ApiKey

REDIS_URL = "redis://127.0.0.1:6379/0"


async def test_two_instances_share_one_rate_limit_through_redis() -> None:
    first_redis, second_redis = Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)
    try:
        first, second = RateLimiter(10, first_redis), RateLimiter(10, second_redis)
        key = uuid.uuid4()
        wall, now = time.time(), time.monotonic()
        assert all(first.allow(key, now, wall) is None for _ in range(6))
        await first.sync()
        assert all(second.allow(key, now, wall) is None for _ in range(4))  # 6 + 4 = the limit
        await second.sync()
        await first.sync()  # nothing new to send; learns nothing yet (it only reads when it writes)
        assert first.allow(key, now, wall) is None  # 7th here: the first has not heard of the 4 yet
        await first.sync()
        refused = first.allow(key, now, wall)
        assert refused is not None and 1 <= refused <= 61
        assert second.allow(key, now, wall) is not None  # knew of the first's 6 since its own sync
    finally:
        await first_redis.aclose()
        await second_redis.aclose()


async def test_without_redis_each_instance_counts_alone() -> None:
    alone = RateLimiter(3)
    key = uuid.uuid4()
    now = time.monotonic()
    assert [alone.allow(key, now) for _ in range(4)][:3] == [None, None, None]
    assert alone.allow(key, now) is not None
    assert alone.allow(key, now + 61) is None  # the window slid past the first hits
    await alone.sync()  # no Redis: nothing to share, nothing fails


async def test_key_spend_counts_stored_unwritten_and_in_flight(factory: Factory) -> None:
    setup = await factory.org_with_roles("Spend Co")
    key = setup.api_key
    spend = KeySpend()
    spend.start(key.id, 1_000, 500, limited=True)
    assert spend.committed(key.id, 1_000) == 1_500
    spend.finish(key.id, 500, 200)  # the request cost 200 of its 500 estimate
    assert spend.committed(key.id, 1_000) == 1_200
    spend.written({key.id: 200})  # its batch committed: now part of the stored figure
    assert spend.committed(key.id, 1_000) == 1_200
    # Another instance's batches raised the stored figure: seen at the next refresh.
    await factory.run(
        lambda s: s.execute(
            update(ApiKey)
            .where(ApiKey.id == key.id)
            .values(spent_nanousd=5_000)
            .execution_options(synchronize_session=False)
        )
    )
    await spend.refresh(factory.app.state.sessionmaker)
    assert spend.committed(key.id, 1_000) == 5_000
    spend.forget()
    assert spend.committed(key.id, 7_000) == 7_000  # a fresh key load decides again
