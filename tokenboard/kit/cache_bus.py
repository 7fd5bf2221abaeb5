"""Tell every app instance to drop a cache after a change commits.

Each instance applies an invalidation to its own caches at once; with Redis configured it also publishes it,
and every instance listening applies what the others publish. Messages are plain strings: ``keys``,
``catalog``, ``policy:<organization id>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.asyncio import Redis

from tokenboard.kit.redis_check import STARTUP_TIMEOUT, describe, ensure_reachable, unavailable

log = logging.getLogger("tokenboard.cache_bus")
CHANNEL = "tokenboard:invalidate"


class CacheBus:
    def __init__(self, apply: Callable[[str], None], redis: Redis | None = None) -> None:
        self._apply = apply
        self._redis = redis
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def announce(self, message: str) -> None:
        """Share an invalidation this instance has already applied with the other instances."""
        if self._redis is None:
            return
        try:
            await self._redis.publish(CHANNEL, message)
        except Exception:  # losing Redis must not fail the change that was committed
            log.exception("could not publish cache invalidation %r", message)

    async def start(self) -> None:
        """Listen to the other instances (when Redis is configured).

        Raises :class:`~tokenboard.kit.redis_check.RedisUnavailable`, naming the address, when Redis does
        not answer: a server that cannot hear of revoked keys must not start.
        """
        if self._redis is None or self._listener is not None:
            return
        await ensure_reachable(self._redis)
        self._listener = asyncio.get_running_loop().create_task(self._listen())
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout=STARTUP_TIMEOUT)
        except TimeoutError:
            await self.stop()
            raise unavailable(describe(self._redis), "no subscription to the invalidation channel") from None

    async def _listen(self) -> None:
        assert self._redis is not None
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    self._subscribed.set()
                    async for item in pubsub.listen():
                        if item.get("type") == "message":
                            data = item["data"]
                            self._apply(data.decode() if isinstance(data, bytes) else str(data))
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis went away: drop everything (it may have missed messages) and retry
                log.exception("cache invalidation listener lost Redis; retrying")
                self._apply("all")
                await asyncio.sleep(1)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
