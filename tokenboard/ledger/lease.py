"""Credit leases: reserve credits for many requests in one write, hand them out in memory.

A gateway process cannot afford a database write before every request it forwards. Instead it reserves a
block of an organization's credits once (a *lease*, one reservation row per process and org) and admits
requests against that block in memory:

- ``held``: what the lease row holds in the database, as this process last saw it committed;
- ``in_flight``: the estimated maximum cost of the requests admitted and not yet finished;
- ``unsettled``: the actual cost of finished requests whose usage events are not yet written.

A request is admitted when ``held - in_flight - unsettled`` covers its estimate; otherwise the process tops
the lease up (one write, amortized over many requests) or refuses with 402. When the usage writer commits a
batch, each request's cost becomes a consumption entry and the same amount is drawn out of the lease, so
``balance - reserved`` never promises other processes money this one may still spend. Every admitted
estimate is covered by a hold, hence concurrent requests overspend by at most one request's estimate error.

A refusal is remembered for a second (``REFUSAL_MEMORY_S``): while nothing this process holds has been freed,
further requests of that org for as much or more are refused from memory, so a flood of requests from an
org out of credits does not become a database read each (credits added meanwhile count after that second).

A lease is prolonged while its process lives, given back when idle or at shutdown, and left to expire (and
be swept by any instance) when the process dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenboard.kit.db import uuid7
from tokenboard.kit.money import format_usd
from tokenboard.ledger.service import InsufficientCredits, LeaseLost, ledger

log = logging.getLogger("tokenboard.leases")

REFUSAL_MEMORY_S = 1.0


@dataclass(frozen=True)
class _Refusal:
    at: float  # monotonic
    free: int  # what the lease had free then
    estimate: int
    message: str


@dataclass
class _Lease:
    id: str
    held: int = 0
    in_flight: int = 0
    unsettled: int = 0
    last_used: float = field(default_factory=time.monotonic)
    last_grant: int = 0
    refill_after: float = 0.0  # no background refill before this (monotonic), after one failed
    refusal: _Refusal | None = None  # the last time the database had too little for a request
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def free(self) -> int:
        return self.held - self.in_flight - self.unsettled


class CreditLeases:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        block_nanousd: int,
        hold_for: timedelta = timedelta(minutes=10),
        idle_seconds: float = 60.0,
        instance: str | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self.block_nanousd = block_nanousd
        self.hold_for = hold_for
        self.idle_seconds = idle_seconds
        self.instance = instance or uuid7().hex
        self._serial = itertools.count(1)
        self._leases: dict[uuid.UUID, _Lease] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _new_id(self) -> str:
        return f"lease:{self.instance}:{next(self._serial)}"

    # ------------------------------------------------------------------ the request path

    async def take(self, org_id: uuid.UUID, estimate: int) -> str:
        """Admit a request that may cost up to ``estimate``; returns the lease it draws on.

        Memory only, unless the lease must grow. Raises :class:`InsufficientCredits` (402).
        """
        lease = self._leases.get(org_id)
        if lease is None:
            lease = self._leases[org_id] = _Lease(id=self._new_id())
        now = lease.last_used = time.monotonic()
        if lease.free >= estimate:
            lease.in_flight += estimate
            if 2 * lease.free < lease.last_grant and not lease.lock.locked() and now >= lease.refill_after:
                # Under half a block left: refill in the background, so no request waits for the write.
                task = asyncio.get_running_loop().create_task(self._refill(org_id, lease, estimate))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return lease.id
        async with lease.lock:
            if lease.free < estimate:
                self._refuse_from_memory(lease, estimate)
                await self._grow(org_id, lease, estimate)
            lease.in_flight += estimate
            return lease.id

    @staticmethod
    def _refuse_from_memory(lease: _Lease, estimate: int) -> None:
        refusal = lease.refusal
        if (
            refusal is None
            or estimate < refusal.estimate
            or lease.free > refusal.free
            or time.monotonic() - refusal.at >= REFUSAL_MEMORY_S
        ):
            return
        if estimate == refusal.estimate:
            raise InsufficientCredits(refusal.message)
        raise InsufficientCredits(
            f"Not enough credits: this request may cost up to {format_usd(estimate)} and less than "
            f"{format_usd(refusal.estimate)} is available. Add credits to continue."
        )

    async def _refill(self, org_id: uuid.UUID, lease: _Lease, estimate: int) -> None:
        async with lease.lock:
            if 2 * lease.free >= lease.last_grant:
                return
            try:
                await self._grow(org_id, lease, estimate)
            except Exception:  # little left, or the database is busy: requests will grow it themselves
                lease.refill_after = time.monotonic() + 1.0

    async def _grow(self, org_id: uuid.UUID, lease: _Lease, estimate: int) -> None:
        for _ in range(2):
            need = max(estimate - lease.free, 1)
            want = max(need, self.block_nanousd, 16 * estimate)
            async with self._sessionmaker() as session:
                try:
                    granted = await ledger.grow_lease(
                        session,
                        org_id,
                        lease_id=lease.id,
                        need=need,
                        want=want,
                        unused=max(lease.free, 0),
                        hold_for=self.hold_for,
                    )
                    await session.commit()
                except LeaseLost:
                    await session.rollback()
                    # Swept under us (this process stalled past the expiry): what it held is gone.
                    lease.id, lease.held = self._new_id(), 0
                    continue
                except InsufficientCredits as exc:
                    await session.rollback()
                    lease.refusal = _Refusal(time.monotonic(), lease.free, estimate, exc.message)
                    raise
            lease.held += granted
            lease.last_grant = granted
            lease.refusal = None
            return
        raise InsufficientCredits("Credits could not be reserved for this request; retry shortly.")

    async def quiet(self) -> None:
        """Wait for background refills to finish (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def finish(self, org_id: uuid.UUID, estimate: int, cost: int) -> None:
        """A request ended: its estimate stops being in flight and its cost waits to be settled."""
        lease = self._leases.get(org_id)
        if lease is None:
            return
        lease.in_flight -= estimate
        lease.unsettled += cost
        lease.last_used = time.monotonic()

    def settled(self, org_id: uuid.UUID, lease_id: str | None, cost: int, drawn: int) -> None:
        """The writer committed requests costing ``cost`` and drew ``drawn`` out of ``lease_id``."""
        lease = self._leases.get(org_id)
        if lease is None:
            return
        lease.unsettled -= cost
        if lease_id == lease.id:
            lease.held -= drawn

    def current(self, org_id: uuid.UUID) -> str | None:
        lease = self._leases.get(org_id)
        return lease.id if lease else None

    def held(self, org_id: uuid.UUID) -> int:
        """What this process's lease for the org holds (tests and the status page)."""
        lease = self._leases.get(org_id)
        return lease.held if lease else 0

    # ------------------------------------------------------------------ upkeep

    async def maintain(self, *, idle_seconds: float | None = None) -> None:
        """Give back idle leases and keep the others from expiring. Run every half minute or so."""
        idle_after = self.idle_seconds if idle_seconds is None else idle_seconds
        now = time.monotonic()
        for org_id, lease in list(self._leases.items()):
            idle = lease.in_flight == 0 and lease.unsettled == 0 and now - lease.last_used >= idle_after
            if idle and lease.held > 0:
                await self._give_back(org_id, lease)
        live = [(org, lease.id) for org, lease in self._leases.items() if lease.held > 0]
        if not live:
            return
        async with self._sessionmaker() as session:
            still = await ledger.prolong_leases(session, live, hold_for=self.hold_for)
            await session.commit()
        for org, lease_id in live:
            current = self._leases.get(org)
            if (org, lease_id) not in still and current is not None and current.id == lease_id:
                log.warning("credit lease %s for %s expired under this process; starting anew", lease_id, org)
                current.id, current.held = self._new_id(), 0

    async def _give_back(self, org_id: uuid.UUID, lease: _Lease) -> None:
        async with lease.lock:
            if lease.in_flight or lease.unsettled:
                return
            old_id, lease.id, lease.held = lease.id, self._new_id(), 0
            async with self._sessionmaker() as session:
                await ledger.release_lease(session, org_id, lease_id=old_id)
                await session.commit()

    async def release_all(self) -> None:
        """Give back every lease whose requests are all settled (shutdown, after the writer drained)."""
        await self.quiet()
        for org_id, lease in list(self._leases.items()):
            with contextlib.suppress(Exception):
                await self._give_back(org_id, lease)
