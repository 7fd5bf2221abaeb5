"""Credit leases: many requests admitted per database write, never more than the balance allows."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.support.factories import Factory
from tokenboard.kit.db import utcnow
from tokenboard.ledger.lease import CreditLeases
from tokenboard.ledger.service import EntryKind, InsufficientCredits, ledger
from tokenboard.models import CreditReservation

USD = 1_000_000_000
CENT = USD // 100


async def _funded_org(factory: Factory, amount: int) -> object:
    owner = await factory.user()
    org = await factory.org(owner, name="Lease Co")
    await factory.run(lambda s: ledger.post(s, org.id, kind=EntryKind.grant, amount_nanousd=amount))
    return org


def _leases(factory: Factory, block: int = USD) -> CreditLeases:
    return CreditLeases(factory.app.state.sessionmaker, block_nanousd=block)


async def _reserved(factory: Factory, org_id: object) -> int:
    return (await factory.run(lambda s: ledger.balance(s, org_id))).reserved_nanousd


async def _settle(factory: Factory, leases: CreditLeases, org_id: object, request_id: str, cost: int) -> None:
    """What the usage writer does for one request: a consumption entry, the cost drawn out of the lease."""
    lease_id = leases.current(org_id)
    assert lease_id is not None

    async def work(session: object) -> int:
        await ledger.settle_many(session, settle=[(org_id, request_id, cost, "test")], release=[])
        return await ledger.draw_lease(session, org_id, lease_id=lease_id, amount=cost)

    drawn = await factory.run(work)
    leases.settled(org_id, lease_id, cost, drawn)


async def test_a_lease_admits_many_requests_with_one_write(factory: Factory) -> None:
    org = await _funded_org(factory, 100 * USD)
    leases = _leases(factory)
    await leases.take(org.id, CENT)
    assert await _reserved(factory, org.id) == leases.held(org.id) == USD
    rows = await factory.run(lambda s: s.scalars(select(CreditReservation)))
    before = [(r.request_id, r.amount_nanousd) for r in rows]
    for _ in range(40):  # $0.40 more in flight: still over half of the $1 lease left, no write at all
        await leases.take(org.id, CENT)
    await leases.quiet()
    rows = await factory.run(lambda s: s.scalars(select(CreditReservation)))
    assert [(r.request_id, r.amount_nanousd) for r in rows] == before
    await factory.run(lambda s: ledger.check_invariants(s, org.id))


async def test_a_lease_under_half_full_is_refilled_in_the_background(factory: Factory) -> None:
    org = await _funded_org(factory, 100 * USD)
    leases = _leases(factory)
    for _ in range(60):  # past half of the first $1: the request that crosses it does not wait
        await leases.take(org.id, CENT)
    await leases.quiet()
    assert leases.held(org.id) == 2 * USD == await _reserved(factory, org.id)
    await factory.run(lambda s: ledger.check_invariants(s, org.id))


async def test_settling_moves_the_cost_out_of_the_lease_and_idle_leases_are_given_back(
    factory: Factory,
) -> None:
    org = await _funded_org(factory, 10 * USD)
    leases = _leases(factory)
    await leases.take(org.id, 5 * CENT)
    leases.finish(org.id, 5 * CENT, 3 * CENT)
    await _settle(factory, leases, org.id, "req-1", 3 * CENT)
    balance = await factory.run(lambda s: ledger.balance(s, org.id))
    assert balance.balance_nanousd == 10 * USD - 3 * CENT
    assert balance.reserved_nanousd == leases.held(org.id) == USD - 3 * CENT
    await factory.run(lambda s: ledger.check_invariants(s, org.id))
    await leases.maintain(idle_seconds=0)
    assert await _reserved(factory, org.id) == 0 and leases.held(org.id) == 0
    # The next request simply opens a new lease.
    await leases.take(org.id, CENT)
    assert await _reserved(factory, org.id) == USD
    await factory.run(lambda s: ledger.check_invariants(s, org.id))


async def test_two_processes_never_admit_more_than_the_balance(factory: Factory) -> None:
    estimate = 7 * CENT
    org = await _funded_org(factory, 10 * estimate)
    first, second = _leases(factory), _leases(factory)
    results = await asyncio.gather(
        *(lease.take(org.id, estimate) for lease in (first, second) for _ in range(20)),
        return_exceptions=True,
    )
    admitted = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, InsufficientCredits)]
    assert len(admitted) + len(refused) == 40
    # Every admitted estimate is covered by a hold, and the holds never exceed the balance.
    assert len(admitted) * estimate <= first.held(org.id) + second.held(org.id) <= 10 * estimate
    # Each process may strand less than one estimate in its lease: at worst one request per process fewer.
    assert 10 - 2 <= len(admitted) <= 10
    assert refused[0].status_code == 402 and "Add credits" in refused[0].message
    await factory.run(lambda s: ledger.check_invariants(s, org.id))


async def test_a_lease_takes_at_most_a_quarter_of_what_is_left(factory: Factory) -> None:
    org = await _funded_org(factory, 2 * USD)
    leases = _leases(factory, block=10 * USD)
    await leases.take(org.id, 10 * CENT)
    assert leases.held(org.id) == USD // 2
    # A request bigger than the quarter still gets exactly what it needs when that is available.
    await leases.take(org.id, USD)
    await leases.quiet()
    assert leases.held(org.id) == USD + 10 * CENT


async def test_a_lease_swept_under_a_stalled_process_is_replaced(factory: Factory) -> None:
    org = await _funded_org(factory, 10 * USD)
    leases = _leases(factory)
    first = await leases.take(org.id, CENT)
    leases.finish(org.id, CENT, 0)
    await factory.run(
        lambda s: s.execute(
            CreditReservation.__table__.update()
            .where(CreditReservation.request_id == first)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    )
    assert await factory.run(lambda s: ledger.release_expired(s)) == 1
    assert await _reserved(factory, org.id) == 0
    await leases.maintain(idle_seconds=3600)  # notices the lease is gone
    assert leases.held(org.id) == 0 and leases.current(org.id) != first
    second = await leases.take(org.id, CENT)
    assert second != first and await _reserved(factory, org.id) == USD
    await factory.run(lambda s: ledger.check_invariants(s, org.id))


async def test_a_dead_process_lease_expires_and_is_swept(factory: Factory) -> None:
    org = await _funded_org(factory, 10 * USD)
    dead = CreditLeases(factory.app.state.sessionmaker, block_nanousd=USD, hold_for=timedelta(seconds=-1))
    await dead.take(org.id, CENT)
    assert await _reserved(factory, org.id) == USD
    assert await factory.run(lambda s: ledger.release_expired(s)) == 1
    assert await _reserved(factory, org.id) == 0
    await factory.run(lambda s: ledger.check_invariants(s, org.id))


async def test_drawing_never_takes_more_than_the_lease_holds(factory: Factory) -> None:
    org = await _funded_org(factory, 10 * USD)
    leases = _leases(factory)
    lease_id = await leases.take(org.id, CENT)
    drawn = await factory.run(lambda s: ledger.draw_lease(s, org.id, lease_id=lease_id, amount=5 * USD))
    assert drawn == USD and await _reserved(factory, org.id) == 0
    with pytest.raises(Exception, match="positive"):
        await factory.run(lambda s: ledger.grow_lease(s, org.id, lease_id=lease_id, need=0, want=0))


async def test_a_refusal_is_remembered_for_a_second_until_something_is_freed(
    factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flood of requests from an org out of credits costs one database read, not one each."""
    from tokenboard.ledger import lease as lease_module

    org = await _funded_org(factory, 3 * CENT)
    leases = _leases(factory)
    grows = 0
    grow = ledger.grow_lease

    async def counted(*args: object, **kwargs: object) -> int:
        nonlocal grows
        grows += 1
        return await grow(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ledger, "grow_lease", counted)
    clock = [1000.0]
    monkeypatch.setattr(lease_module.time, "monotonic", lambda: clock[0])
    for _ in range(3):
        await leases.take(org.id, CENT)  # the lease grows one estimate at a time: little is left
    assert grows == 3
    with pytest.raises(InsufficientCredits) as first:
        await leases.take(org.id, CENT)
    assert grows == 4
    refusals = await asyncio.gather(*(leases.take(org.id, CENT) for _ in range(20)), return_exceptions=True)
    assert all(isinstance(r, InsufficientCredits) and r.message == first.value.message for r in refusals)
    with pytest.raises(InsufficientCredits, match="less than"):
        await leases.take(org.id, 2 * CENT)  # asks for more: refused from memory too
    assert grows == 4
    # a request that ends frees part of its estimate, not enough alone: the database is asked again
    leases.finish(org.id, CENT, CENT // 2)
    with pytest.raises(InsufficientCredits):
        await leases.take(org.id, CENT)
    assert grows == 5
    # one that ends costing nothing frees its whole estimate: admitted from memory
    leases.finish(org.id, CENT, 0)
    assert await leases.take(org.id, CENT)
    assert grows == 5
    # credits added: counted once the second has passed
    await factory.run(lambda s: ledger.post(s, org.id, kind=EntryKind.grant, amount_nanousd=USD))
    with pytest.raises(InsufficientCredits):
        await leases.take(org.id, CENT)
    assert grows == 5
    clock[0] += 1.0
    assert await leases.take(org.id, CENT)
    assert grows == 6
