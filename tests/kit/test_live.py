"""The live-update hub: coalesced, bounded, scoped by organization, shared across instances through Redis."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tokenboard.kit.live import LiveHub, LiveMessage, Subscription

REDIS_URL = "redis://127.0.0.1:6379/0"


async def _next(subscription: Subscription, within: float = 2.0) -> LiveMessage:
    message = await subscription.next(within=within)
    assert message is not None, f"no message within {within} s"
    return message


async def test_a_subscriber_hears_its_org_and_never_another() -> None:
    hub = LiveHub(min_interval=0.01)
    ours, theirs = uuid.uuid4(), uuid.uuid4()
    with hub.subscribe(ours) as mine, hub.subscribe(theirs) as other:
        hub.notify_usage(ours, requests=3, cost_nanousd=1_500_000)
        message = await _next(mine)
        assert message.event == "usage"
        assert message.data["requests"] == 3 and message.data["cost_nanousd"] == 1_500_000
        assert isinstance(message.data["at"], str)
        assert await other.next(within=0.2) is None
        assert other.pending() == 0


async def test_a_burst_is_coalesced_and_the_counts_add_up() -> None:
    hub = LiveHub(min_interval=0.2)
    org = uuid.uuid4()
    loop = asyncio.get_running_loop()
    with hub.subscribe(org) as subscription:
        for _ in range(100):  # one batch after another, without yielding: one message
            hub.notify_usage(org, requests=1, cost_nanousd=7)
        first = await _next(subscription)
        first_at = loop.time()
        for _ in range(50):  # within the interval: held back, then sent as one
            hub.notify_usage(org, requests=2, cost_nanousd=3)
            await asyncio.sleep(0)
        second = await _next(subscription)
        assert loop.time() - first_at >= 0.15
        assert await subscription.next(within=0.4) is None
        assert (first.data["requests"], first.data["cost_nanousd"]) == (100, 700)
        assert (second.data["requests"], second.data["cost_nanousd"]) == (100, 150)


async def test_publishing_is_rate_limited_per_org() -> None:
    hub = LiveHub(min_interval=0.2)
    org = uuid.uuid4()
    loop = asyncio.get_running_loop()
    times: list[float] = []
    with hub.subscribe(org) as subscription:
        started = loop.time()
        while loop.time() - started < 1.0:  # a steady stream of writes for one second
            hub.notify_usage(org, requests=1, cost_nanousd=1)
            message = await subscription.next(within=0.01)
            if message is not None:
                times.append(loop.time())
        while await subscription.next(within=0.3) is not None:
            times.append(loop.time())
    assert 3 <= len(times) <= 7, times  # about 5 a second, never one per write
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.15, gaps


async def test_a_slow_subscriber_keeps_only_the_latest_messages() -> None:
    hub = LiveHub(min_interval=0.0, queue_size=4)
    org = uuid.uuid4()
    with hub.subscribe(org) as slow, hub.subscribe(org) as fast:
        seen = []
        for n in range(1000):
            hub.publish(org, {"n": n}, event="tick")
            await asyncio.sleep(0)
            while fast.pending():
                seen.append((await _next(fast)).data["n"])
        while (message := await fast.next(within=0.05)) is not None:
            seen.append(message.data["n"])
        assert len(seen) > 100 and seen[-1] == 999  # a flood, most of it sent as separate messages
        assert slow.pending() == 4  # never more than the queue holds, however many were sent
        assert slow.dropped == len(seen) - 4
        assert [(await _next(slow)).data["n"] for _ in range(4)] == seen[-4:]


async def test_closing_frees_the_subscription_and_ends_iteration() -> None:
    hub = LiveHub(min_interval=0.0)
    org = uuid.uuid4()
    subscription = hub.subscribe(org)
    assert hub.subscriber_count(org) == 1

    async def collect() -> list[LiveMessage]:
        return [message async for message in subscription]

    task = asyncio.create_task(collect())
    hub.publish(org, {"n": 1}, event="tick")
    await asyncio.sleep(0.05)
    subscription.close()
    assert await asyncio.wait_for(task, 1) == [LiveMessage("tick", {"n": 1})]
    assert hub.subscriber_count(org) == 0 and hub.subscriber_count() == 0
    hub.publish(org, {"n": 2}, event="tick")  # nobody listens: nothing is kept for anyone
    await asyncio.sleep(0.05)
    assert subscription.pending() == 0


async def test_shutdown_ends_every_stream_and_refuses_new_ones() -> None:
    hub = LiveHub()
    org = uuid.uuid4()
    waiting = [hub.subscribe(org) for _ in range(3)]
    readers = [asyncio.create_task(s.next(within=30)) for s in waiting]
    await asyncio.sleep(0.01)
    await hub.stop()
    assert await asyncio.wait_for(asyncio.gather(*readers), 1) == [None, None, None]
    assert all(s.closed for s in waiting) and hub.subscriber_count() == 0
    assert hub.subscribe(org).closed


async def test_a_failing_publish_never_reaches_the_caller() -> None:
    class BrokenRedis:
        async def publish(self, channel: str, message: str) -> int:
            raise ConnectionError("Redis is gone")

    hub = LiveHub(BrokenRedis(), min_interval=0.0)  # type: ignore[arg-type]
    org = uuid.uuid4()
    with hub.subscribe(org) as subscription:
        hub.notify_usage(org, requests=1, cost_nanousd=1)
        assert (await _next(subscription)).data["requests"] == 1  # still delivered on this instance
    await hub.stop()


@pytest.fixture
async def two_instances() -> AsyncIterator[tuple[LiveHub, LiveHub]]:
    clients = [Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)]
    hubs = (LiveHub(clients[0], min_interval=0.05), LiveHub(clients[1], min_interval=0.05))
    try:
        for hub in hubs:
            await hub.start()  # fails loudly (timeout or connection error) when Redis is not running
        yield hubs
    finally:
        for hub in hubs:
            await hub.stop()
        for client in clients:
            await client.aclose()


async def test_a_publish_on_one_instance_reaches_subscribers_on_another(
    two_instances: tuple[LiveHub, LiveHub],
) -> None:
    first, second = two_instances
    org, other_org = uuid.uuid4(), uuid.uuid4()
    with second.subscribe(org) as remote, first.subscribe(org) as local, second.subscribe(other_org) as other:
        first.notify_usage(org, requests=2, cost_nanousd=42)
        assert (await _next(local)).data["requests"] == 2
        message = await _next(remote)
        assert message.event == "usage"
        assert (message.data["requests"], message.data["cost_nanousd"]) == (2, 42)
        # Each instance delivers its own message once: not again when Redis echoes it back.
        assert await local.next(within=0.3) is None
        assert await other.next(within=0.1) is None


async def test_an_instance_ignores_malformed_messages(two_instances: tuple[LiveHub, LiveHub]) -> None:
    first, second = two_instances
    org = uuid.uuid4()
    with second.subscribe(org) as subscription:
        second._receive(b"not json")
        second._receive(b'{"origin": "x", "org": "not-a-uuid", "event": "usage", "data": {}}')
        first.publish(org, {"n": 1}, event="tick")
        assert (await _next(subscription)).data == {"n": 1}
