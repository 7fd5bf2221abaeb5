"""Per-key limits that hold across instances without I/O on the request path.

Two limits apply to each API key: requests per minute and, when the key has one, a spend limit. A request
is decided from memory; what the other instances did arrives in the background:

- **Rate.** Each instance counts its own requests per key in a sliding minute. With Redis configured, once
  a second it adds its new requests to a per-key, per-minute counter there (``INCRBY``) and reads back the
  total, so it knows what the other instances admitted this minute. Without Redis the limit is per
  instance.
- **Spend.** A key's spend is what the database says (``api_keys.spent_nanousd``, which every instance's
  usage batches increase), plus this instance's finished requests not yet written, plus its requests in
  flight. Every two seconds the database figure is read again for the keys with a limit, so the other
  instances' spend is seen within a couple of seconds.

Both may let a burst across instances overshoot by what those instances admitted within that delay; the
overshoot is bounded and documented (docs/gateway.md). Credits, which are money, do not work this way:
they are held by leases in the database (tokenboard/ledger/lease.py) and can never be overspent.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenboard.models import ApiKey

log = logging.getLogger("tokenboard.limits")
RATE_PREFIX = "tokenboard:rate"


class RateLimiter:
    """Requests per minute per key: a sliding window here plus, with Redis, the other instances' counts."""

    def __init__(self, per_minute: int, redis: Redis | None = None) -> None:
        self.per_minute = per_minute
        self._redis = redis
        self._hits: dict[uuid.UUID, deque[float]] = {}
        # Shared counting, by wall-clock minute: what this instance has sent and what the others did.
        self._unsent: dict[tuple[uuid.UUID, int], int] = {}
        self._mine: dict[tuple[uuid.UUID, int], int] = {}
        self._others: dict[tuple[uuid.UUID, int], int] = {}

    def allow(self, key_id: uuid.UUID, now: float, wall: float | None = None) -> int | None:
        """None when allowed, else the seconds to wait."""
        hits = self._hits.setdefault(key_id, deque())
        while hits and hits[0] <= now - 60:
            hits.popleft()
        minute = int((wall if wall is not None else time.time()) // 60)
        others = self._others.get((key_id, minute), 0)
        if len(hits) + others >= self.per_minute:
            wait = 60 - (now - hits[0]) if hits and len(hits) >= self.per_minute else 60 - (time.time() % 60)
            return max(1, int(wait) + 1)
        hits.append(now)
        if self._redis is not None:
            slot = (key_id, minute)
            self._unsent[slot] = self._unsent.get(slot, 0) + 1
        return None

    async def sync(self) -> None:
        """Share this instance's new counts and learn the others' (once a second, in the background)."""
        if self._redis is None or not self._unsent:
            return
        unsent, self._unsent = self._unsent, {}
        slots = list(unsent)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key_id, minute in slots:
                    name = f"{RATE_PREFIX}:{key_id}:{minute}"
                    pipe.incrby(name, unsent[(key_id, minute)])
                    pipe.expire(name, 180)
                results = await pipe.execute()
        except Exception:  # Redis away: keep the counts for the next try, decide alone meanwhile
            for slot, n in unsent.items():
                self._unsent[slot] = self._unsent.get(slot, 0) + n
            log.warning("could not share rate-limit counts through Redis", exc_info=True)
            return
        current = int(time.time() // 60)
        for index, slot in enumerate(slots):
            mine = self._mine.get(slot, 0) + unsent[slot]
            self._mine[slot] = mine
            self._others[slot] = max(0, int(results[2 * index]) - mine)
        for table in (self._mine, self._others):
            for slot in [s for s in table if s[1] < current - 1]:
                del table[slot]


class KeySpend:
    """What each key has spent, for spend limits: database figure + unwritten + in flight (per instance)."""

    def __init__(self) -> None:
        self._stored: dict[uuid.UUID, int] = {}
        self._unwritten: dict[uuid.UUID, int] = {}
        self._in_flight: dict[uuid.UUID, int] = {}
        self._writes = 0  # bumped on each committed batch: a refresh that overlapped one is not applied

    def committed(self, key_id: uuid.UUID, stored: int) -> int:
        """Everything this key has spent or may spend right now, as far as this instance knows."""
        return (
            self._stored.get(key_id, stored) + self._unwritten.get(key_id, 0) + self._in_flight.get(key_id, 0)
        )

    def start(self, key_id: uuid.UUID, stored: int, estimate: int, *, limited: bool) -> None:
        if limited:  # only keys with a limit have their database figure refreshed
            self._stored.setdefault(key_id, stored)
        self._in_flight[key_id] = self._in_flight.get(key_id, 0) + estimate

    def finish(self, key_id: uuid.UUID, estimate: int, cost: int) -> None:
        self._in_flight[key_id] = self._in_flight.get(key_id, 0) - estimate
        self._unwritten[key_id] = self._unwritten.get(key_id, 0) + cost

    def written(self, spent: dict[uuid.UUID, int]) -> None:
        """A batch committed: its costs moved from "unwritten" into the database figure."""
        self._writes += 1
        for key_id, cost in spent.items():
            self._unwritten[key_id] = self._unwritten.get(key_id, 0) - cost
            if key_id in self._stored:
                self._stored[key_id] += cost

    def forget(self) -> None:
        """Keys changed (a limit was raised, a key revoked): read the database figures again."""
        self._stored.clear()

    async def refresh(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        """Read the database figure of the keys being tracked (every instance's committed spend)."""
        ids = list(self._stored)
        if not ids:
            return
        writes = self._writes
        async with sessionmaker() as session:
            stmt = select(ApiKey.id, ApiKey.spent_nanousd).where(ApiKey.id.in_(ids))
            rows = (await session.execute(stmt)).all()
        if writes != self._writes:
            return  # a batch committed meanwhile: these figures may miss it; the next refresh applies
        for key_id, spent in rows:
            self._stored[key_id] = int(spent)
