"""A Hypothesis state machine over the ledger and billing's credit operations, on SQLite and PostgreSQL.

Steps: purchases (pending, then paid), payment replays, promotions with expiry and the expiry sweep,
reserve / settle / release, settle replays, refunds and adjustments. After every step: the balance equals
the sum of entries (and the reserved total the held reservations), no entry was edited or deleted, every
external id appears at most once, and balance and reserved equal a simple in-memory model, which spends
promotions first-granted-first (the rule in tokenboard/billing/credits.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenboard.audit.service import Actor
from tokenboard.billing.credits import credits
from tokenboard.config import Settings
from tokenboard.kit.context import SYSTEM_CLIENT
from tokenboard.kit.db import create_engine, create_sessionmaker, utcnow
from tokenboard.ledger.service import EntryKind, InsufficientCredits, ledger
from tokenboard.models import CreditEntry, CreditPromotion, Organization

T = TypeVar("T")
USD = 1_000_000_000
ACTOR = Actor.system(SYSTEM_CLIENT)


@dataclass
class Promo:
    id: uuid.UUID
    amount: int
    used: int = 0
    expired: bool = False


class Model:
    """What the balance must be, computed without the database."""

    def __init__(self) -> None:
        self.balance = 0
        self.reserved = 0
        self.promos: list[Promo] = []

    def spend(self, cost: int) -> None:
        self.balance -= cost
        for promo in self.promos:  # first granted, first spent; only while valid
            if cost <= 0:
                break
            if not promo.expired:
                take = min(promo.amount - promo.used, cost)
                promo.used += take
                cost -= take

    def expire(self, promo: Promo) -> None:
        promo.expired = True
        amount = min(promo.amount - promo.used, max(self.balance, 0))
        self.balance -= amount


class LedgerMachine(RuleBasedStateMachine):
    run: Callable[[Callable[[AsyncSession], Awaitable[Any]]], Any]
    config: Settings

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.org_id = uuid.uuid4()
        self.pending: list[tuple[uuid.UUID, int]] = []
        self.paid: dict[uuid.UUID, tuple[int, int]] = {}  # purchase -> (amount, refunded)
        self.events: list[tuple[uuid.UUID, str]] = []
        self.held: list[str] = []
        self.settled: list[str] = []
        self.seen: dict[uuid.UUID, tuple[str, int, str | None]] = {}

        async def create(s: AsyncSession) -> None:
            s.add(Organization(id=self.org_id, name=f"Machine {self.org_id.hex[:6]}", seat_limit=5))

        self.run(create)

    # ---------------------------------------------------------------- credits in

    @initialize(promotion=st.integers(min_value=1, max_value=40), purchase=st.sampled_from([5, 10, 50]))
    def start_with_credits(self, promotion: int, purchase: int) -> None:
        """Most examples start with a promotion and paid credits, so spending and expiry interact."""
        self.grant_promotion(promotion)
        self.start_purchase(purchase)
        self.record_payment(0)

    @rule(amount=st.sampled_from([5, 10, 50, 100]))
    def start_purchase(self, amount: int) -> None:
        async def work(s: AsyncSession) -> uuid.UUID:
            org = await s.get(Organization, self.org_id)
            assert org is not None
            started = await credits.start_purchase(
                s, org, amount_nanousd=amount * USD, settings=self.config, actor=ACTOR
            )
            return started.purchase.id

        self.pending.append((self.run(work), amount * USD))  # pending: grants nothing

    @precondition(lambda self: self.pending)
    @rule(index=st.integers(min_value=0, max_value=50))
    def record_payment(self, index: int) -> None:
        purchase_id, amount = self.pending.pop(index % len(self.pending))
        reference = f"receipt-{uuid.uuid4().hex[:8]}"
        applied = self.run(
            lambda s: credits.record_offline_payment(
                s, self.org_id, purchase_id, reference=reference, actor=ACTOR
            )
        )
        assert applied
        self.events.append((purchase_id, reference))
        self.paid[purchase_id] = (amount, 0)
        self.model.balance += amount

    @precondition(lambda self: self.events)
    @rule(index=st.integers(min_value=0, max_value=50))
    def replay_payment(self, index: int) -> None:
        purchase_id, reference = self.events[index % len(self.events)]
        applied = self.run(
            lambda s: credits.record_offline_payment(
                s, self.org_id, purchase_id, reference=reference, actor=ACTOR
            )
        )
        assert not applied

    @rule(amount=st.integers(min_value=1, max_value=40))
    def grant_promotion(self, amount: int) -> None:
        promotion = self.run(
            lambda s: credits.grant_promotion(
                s,
                self.org_id,
                amount_nanousd=amount * USD // 4,
                expires_at=utcnow() + timedelta(days=30),
                reason="machine",
                actor=ACTOR,
            )
        )
        self.model.promos.append(Promo(promotion.id, amount * USD // 4))
        self.model.balance += amount * USD // 4

    @precondition(lambda self: any(not p.expired for p in self.model.promos))
    @rule(index=st.integers(min_value=0, max_value=50))
    def promotion_expires(self, index: int) -> None:
        live = [p for p in self.model.promos if not p.expired]
        promo = live[index % len(live)]

        async def work(s: AsyncSession) -> int:
            # Time reaches the promotion's expiry now; the sweep runs just after.
            await s.execute(
                update(CreditPromotion)
                .where(CreditPromotion.organization_id == self.org_id, CreditPromotion.id == promo.id)
                .values(expires_at=utcnow())
            )
            return await credits.expire_promotions(s, self.org_id, settings=self.config, now=utcnow())

        self.run(work)
        self.model.expire(promo)
        assert self.run(lambda s: credits.expire_promotions(s, self.org_id, settings=self.config)) == 0

    @rule(cents=st.integers(min_value=-3000, max_value=3000).filter(lambda c: c != 0))
    def adjust(self, cents: int) -> None:
        self.run(
            lambda s: credits.adjust(
                s,
                self.org_id,
                amount_nanousd=cents * 10_000_000,
                reason="machine",
                settings=self.config,
                actor=ACTOR,
            )
        )
        self.model.balance += cents * 10_000_000

    @precondition(lambda self: any(amount > refunded for amount, refunded in self.paid.values()))
    @rule(index=st.integers(min_value=0, max_value=50), share=st.integers(min_value=1, max_value=4))
    def refund(self, index: int, share: int) -> None:
        open_ = [(pid, a, r) for pid, (a, r) in self.paid.items() if a > r]
        purchase_id, amount, refunded = open_[index % len(open_)]
        part = max((amount - refunded) * share // 4, 1)
        self.run(
            lambda s: credits.refund(
                s,
                self.org_id,
                purchase_id,
                amount_nanousd=part,
                reason="machine",
                settings=self.config,
                actor=ACTOR,
            )
        )
        self.paid[purchase_id] = (amount, refunded + part)
        self.model.balance -= part

    # ---------------------------------------------------------------- requests

    @rule(amount=st.integers(min_value=0, max_value=15 * USD))
    def reserve(self, amount: int) -> None:
        request_id = uuid.uuid4().hex

        async def work(s: AsyncSession) -> bool:
            try:
                async with s.begin_nested():
                    await ledger.reserve(s, self.org_id, request_id=request_id, amount_nanousd=amount)
            except InsufficientCredits:
                return False
            return True

        admitted = self.run(work)
        assert admitted == (self.model.balance - self.model.reserved >= amount)
        if admitted:
            self.held.append(request_id)
            self.model.reserved += amount
            self.reserved_amounts = getattr(self, "reserved_amounts", {}) | {request_id: amount}

    @precondition(lambda self: self.held)
    @rule(index=st.integers(min_value=0, max_value=50), cost=st.integers(min_value=0, max_value=20 * USD))
    def settle(self, index: int, cost: int) -> None:
        request_id = self.held.pop(index % len(self.held))
        self.run(lambda s: ledger.settle(s, self.org_id, request_id=request_id, cost_nanousd=cost))
        self.model.reserved -= self.reserved_amounts[request_id]
        self.model.spend(cost)
        self.settled.append(request_id)

    @precondition(lambda self: self.settled)
    @rule(index=st.integers(min_value=0, max_value=50), cost=st.integers(min_value=0, max_value=5 * USD))
    def replay_settle(self, index: int, cost: int) -> None:
        request_id = self.settled[index % len(self.settled)]
        result = self.run(lambda s: ledger.settle(s, self.org_id, request_id=request_id, cost_nanousd=cost))
        assert not result.applied

    @precondition(lambda self: self.held)
    @rule(index=st.integers(min_value=0, max_value=50))
    def release(self, index: int) -> None:
        request_id = self.held.pop(index % len(self.held))
        assert self.run(lambda s: ledger.release(s, self.org_id, request_id=request_id))
        assert not self.run(lambda s: ledger.release(s, self.org_id, request_id=request_id))
        self.model.reserved -= self.reserved_amounts[request_id]

    # ---------------------------------------------------------------- invariants

    @invariant()
    def ledger_matches_the_model(self) -> None:
        async def work(s: AsyncSession) -> tuple[Any, list[CreditEntry]]:
            await ledger.check_invariants(s, self.org_id)
            rows = (
                await s.execute(select(CreditEntry).where(CreditEntry.organization_id == self.org_id))
            ).scalars()
            return await ledger.balance(s, self.org_id), list(rows)

        balance, entries = self.run(work)
        assert (balance.balance_nanousd, balance.reserved_nanousd) == (
            self.model.balance,
            self.model.reserved,
        )
        assert sum(e.amount_nanousd for e in entries) == self.model.balance
        now = {e.id: (e.kind, e.amount_nanousd, e.external_id) for e in entries}
        for entry_id, row in self.seen.items():  # append-only: nothing edited, nothing deleted
            assert now.get(entry_id) == row
        self.seen = now
        external = [e.external_id for e in entries if e.external_id is not None]
        assert len(external) == len(set(external))
        assert all(e.kind in {k.value for k in EntryKind} for e in entries)


def _runner(sessionmaker: async_sessionmaker[AsyncSession], loop: asyncio.AbstractEventLoop) -> Any:
    def run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async def unit() -> T:
            async with sessionmaker() as session:
                result = await work(session)
                await session.commit()
                return result

        return loop.run_until_complete(unit())

    return run


def test_ledger_state_machine(settings: Settings) -> None:
    loop = asyncio.new_event_loop()
    engine = create_engine(settings.database_url)
    try:
        LedgerMachine.run = staticmethod(_runner(create_sessionmaker(engine), loop))  # type: ignore[assignment]
        LedgerMachine.config = settings
        run_state_machine_as_test(
            LedgerMachine,
            settings=settings_for_ci(),
        )
    finally:
        loop.run_until_complete(engine.dispose())
        loop.close()


def settings_for_ci() -> hypothesis_settings:
    return hypothesis_settings(
        max_examples=12,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        derandomize=False,
    )
