"""Sliding-window failure counters for login throttling.

In memory for one process; with ``TOKENBOARD_REDIS_URL`` the counters live in Redis so every instance
shares them.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Protocol

from redis.asyncio import Redis


class FailureCounter(Protocol):
    async def count(self, key: str, window: int) -> int: ...
    async def add(self, key: str, window: int) -> None: ...
    async def clear(self, key: str) -> None: ...


class MemoryFailureCounter:
    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}

    def _prune(self, key: str, window: int) -> deque[float]:
        hits = self._hits.setdefault(key, deque())
        cutoff = time.monotonic() - window
        while hits and hits[0] < cutoff:
            hits.popleft()
        if not hits:
            del self._hits[key]
            return deque()
        return hits

    async def count(self, key: str, window: int) -> int:
        return len(self._prune(key, window))

    async def add(self, key: str, window: int) -> None:
        self._prune(key, window)
        self._hits.setdefault(key, deque()).append(time.monotonic())

    async def clear(self, key: str) -> None:
        self._hits.pop(key, None)


class RedisFailureCounter:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def count(self, key: str, window: int) -> int:
        now = time.time()
        await self._redis.zremrangebyscore(f"tb:fail:{key}", 0, now - window)
        return int(await self._redis.zcard(f"tb:fail:{key}"))

    async def add(self, key: str, window: int) -> None:
        now = time.time()
        pipe = self._redis.pipeline()
        pipe.zadd(f"tb:fail:{key}", {f"{now:.6f}": now})
        pipe.expire(f"tb:fail:{key}", window)
        await pipe.execute()

    async def clear(self, key: str) -> None:
        await self._redis.delete(f"tb:fail:{key}")
