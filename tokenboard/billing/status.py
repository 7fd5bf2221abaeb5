"""Whether an organization's gateway access is open, decided in memory for the request path.

:class:`BillingStatusCache` keeps each organization's subscription state (status, grace end) read once;
``refusal`` is then a comparison with the clock, so a grace period that runs out takes effect without a
database read. A change to a subscription queues :func:`invalidate_after_commit`, which drops the entry
once the change is committed (the app's cache bus tells other instances); entries also expire after
``ttl`` seconds, so a change made by the CLI in another process is seen within a minute.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.billing import repository
from tokenboard.kit.db import utcnow
from tokenboard.kit.jobs import after_commit

STATE_KEY = "billing_status_cache"


@dataclass(frozen=True, slots=True)
class BillingState:
    status: str  # none (no subscription), active, past_due, suspended, canceled
    grace_until: datetime | None

    def effective(self, now: datetime) -> str:
        """active, grace, suspended or canceled at ``now`` (a grace period that ran out is suspended)."""
        if self.status in ("none", "active"):
            return "active"
        if self.status == "past_due":
            return "grace" if self.grace_until is not None and now < self.grace_until else "suspended"
        return self.status


@dataclass(frozen=True, slots=True)
class BillingRefusal:
    status: int
    code: str
    message: str


NO_SUBSCRIPTION = BillingState("none", None)


async def load_state(session: AsyncSession, org_id: uuid.UUID) -> BillingState:
    sub = await repository.get_subscription(session, org_id)
    return NO_SUBSCRIPTION if sub is None else BillingState(sub.status, sub.grace_until)


def refusal_for(state: BillingState, now: datetime) -> BillingRefusal | None:
    effective = state.effective(now)
    if effective == "suspended":
        return BillingRefusal(
            402,
            "billing_suspended",
            "Gateway access is suspended: a subscription payment failed and its grace period ended. "
            "An owner or billing manager can pay the open invoice on the organization's billing page.",
        )
    if effective == "canceled":
        return BillingRefusal(
            403,
            "subscription_canceled",
            "The organization's subscription has ended. An owner or billing manager can restart it on "
            "the subscription page.",
        )
    return None


class BillingStatusCache:
    """Organizations' billing states in memory; ``refusal`` answers without touching the database."""

    def __init__(self, ttl: float = 60.0) -> None:
        self.ttl = ttl
        self._states: dict[uuid.UUID, tuple[int, float, BillingState]] = {}
        self._generations: dict[uuid.UUID, int] = {}

    def loaded(self, org_id: uuid.UUID) -> bool:
        entry = self._states.get(org_id)
        return (
            entry is not None
            and entry[0] == self._generations.get(org_id, 0)
            and time.monotonic() - entry[1] < self.ttl
        )

    async def ensure_org(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        """Read the organization's state unless it is in memory and fresh (then no I/O)."""
        if self.loaded(org_id):
            return
        generation = self._generations.get(org_id, 0)
        self._states[org_id] = (generation, time.monotonic(), await load_state(session, org_id))

    def generation(self, org_id: uuid.UUID) -> int:
        """Bumped by each invalidation of the organization: a decision holds while this is unchanged."""
        return self._generations.get(org_id, 0)

    def state(self, org_id: uuid.UUID) -> BillingState:
        entry = self._states.get(org_id)
        if entry is None:
            raise LookupError(f"Call ensure_org({org_id}) first.")
        return entry[2]

    def refusal(self, org_id: uuid.UUID, now: datetime | None = None) -> BillingRefusal | None:
        """``None`` when the organization may use the gateway, else the status and message to send."""
        return refusal_for(self.state(org_id), now or utcnow())

    def invalidate(self, org_id: uuid.UUID) -> None:
        self._generations[org_id] = self._generations.get(org_id, 0) + 1
        self._states.pop(org_id, None)

    def invalidate_all(self) -> None:
        for org_id in list(self._states):
            self.invalidate(org_id)


async def billing_status(session: AsyncSession, org_id: uuid.UUID, now: datetime | None = None) -> str:
    """The effective state (active, grace, suspended, canceled), through the app's cache when there is one."""
    cache = _cache_of(session)
    if cache is None:
        return (await load_state(session, org_id)).effective(now or utcnow())
    await cache.ensure_org(session, org_id)
    return cache.state(org_id).effective(now or utcnow())


def _cache_of(session: AsyncSession) -> BillingStatusCache | None:
    state = session.info.get("app_state")
    cache = getattr(state, "billing_status", None)
    return cache if isinstance(cache, BillingStatusCache) else None


def invalidate_after_commit(session: AsyncSession, org_id: uuid.UUID) -> None:
    """Once ``session`` commits, forget the organization's state here and on the other instances."""
    cache = _cache_of(session)
    if cache is None:
        return  # the CLI or a job: no cache in this process; servers see it within their ttl

    async def invalidate() -> None:
        cache.invalidate(org_id)
        bus = getattr(session.info.get("app_state"), "cache_bus", None)
        if bus is not None:
            await bus.announce(f"billing:{org_id}")

    after_commit(session, invalidate)
