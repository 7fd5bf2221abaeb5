from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.support.factories import Factory
from tokenboard.kit.db import utcnow
from tokenboard.ledger.service import (
    MAX_BALANCE_NANOUSD,
    BalanceLimitExceeded,
    EntryKind,
    InsufficientCredits,
    ledger,
)
from tokenboard.models import CreditAccount, CreditEntry

USD = 1_000_000_000


async def _org(factory: Factory) -> object:
    owner = await factory.user()
    return await factory.org(owner, name="Ledger Co")


async def _grant(factory: Factory, org_id: object, amount: int, external_id: str | None = None) -> bool:
    result = await factory.run(
        lambda s: ledger.post(s, org_id, kind=EntryKind.grant, amount_nanousd=amount, external_id=external_id)
    )
    return result.applied


async def _check(factory: Factory, org_id: object) -> None:
    await factory.run(lambda s: ledger.check_invariants(s, org_id))


async def test_balance_is_the_sum_of_entries_and_events_apply_once(factory: Factory) -> None:
    org = await _org(factory)
    assert await _grant(factory, org.id, 10 * USD, external_id="payment:evt_1")
    assert not await _grant(factory, org.id, 10 * USD, external_id="payment:evt_1")
    await factory.run(
        lambda s: ledger.post(s, org.id, kind=EntryKind.adjustment, amount_nanousd=-USD, memo="fix")
    )
    balance = await factory.run(lambda s: ledger.balance(s, org.id))
    assert balance.balance_nanousd == 9 * USD
    await _check(factory, org.id)
    with pytest.raises(Exception, match="positive"):
        await factory.run(lambda s: ledger.post(s, org.id, kind=EntryKind.grant, amount_nanousd=0))


async def test_reserve_settle_release(factory: Factory) -> None:
    org = await _org(factory)
    await _grant(factory, org.id, 3 * USD)
    await factory.run(lambda s: ledger.reserve(s, org.id, request_id="r1", amount_nanousd=2 * USD))
    with pytest.raises(InsufficientCredits) as refused:
        await factory.run(lambda s: ledger.reserve(s, org.id, request_id="r2", amount_nanousd=2 * USD))
    assert refused.value.status_code == 402 and "$1.00 is available" in refused.value.message
    settled = await factory.run(lambda s: ledger.settle(s, org.id, request_id="r1", cost_nanousd=123_456))
    assert settled.applied
    again = await factory.run(lambda s: ledger.settle(s, org.id, request_id="r1", cost_nanousd=123_456))
    assert not again.applied  # a retry never bills twice
    balance = await factory.run(lambda s: ledger.balance(s, org.id))
    assert (balance.balance_nanousd, balance.reserved_nanousd) == (3 * USD - 123_456, 0)
    await factory.run(lambda s: ledger.reserve(s, org.id, request_id="r3", amount_nanousd=USD))
    assert await factory.run(lambda s: ledger.release(s, org.id, request_id="r3"))
    assert not await factory.run(lambda s: ledger.release(s, org.id, request_id="r3"))
    balance = await factory.run(lambda s: ledger.balance(s, org.id))
    assert balance.reserved_nanousd == 0
    await _check(factory, org.id)


async def test_holds_of_dead_processes_expire_and_late_settles_still_bill(factory: Factory) -> None:
    org = await _org(factory)
    await _grant(factory, org.id, USD)
    past = utcnow() - timedelta(hours=1)
    await factory.run(
        lambda s: ledger.reserve(
            s, org.id, request_id="dead", amount_nanousd=USD, hold_for=timedelta(minutes=1), now=past
        )
    )
    assert (await factory.run(lambda s: ledger.balance(s, org.id))).available_nanousd == 0
    assert await factory.run(lambda s: ledger.release_expired(s)) == 1
    assert (await factory.run(lambda s: ledger.balance(s, org.id))).available_nanousd == USD
    late = await factory.run(lambda s: ledger.settle(s, org.id, request_id="dead", cost_nanousd=5))
    assert late.applied
    assert (await factory.run(lambda s: ledger.balance(s, org.id))).balance_nanousd == USD - 5
    await _check(factory, org.id)


async def test_fifty_concurrent_reservations_never_overspend(factory: Factory) -> None:
    org = await _org(factory)
    per_request = 30_000_000  # the estimated maximum of one request: $0.03
    await _grant(factory, org.id, 5 * per_request + per_request // 2)  # worth five and a half requests

    async def one(i: int) -> str:
        try:
            await factory.run(
                lambda s: ledger.reserve(s, org.id, request_id=f"c{i}", amount_nanousd=per_request)
            )
        except InsufficientCredits:
            return "refused"
        # Half the admitted requests fail upstream and release; the rest cost less than estimated.
        if i % 2:
            await factory.run(lambda s: ledger.release(s, org.id, request_id=f"c{i}"))
            return "released"
        await factory.run(
            lambda s: ledger.settle(s, org.id, request_id=f"c{i}", cost_nanousd=per_request - 1_000)
        )
        return "settled"

    outcomes = await asyncio.gather(*(one(i) for i in range(50)))
    balance = await factory.run(lambda s: ledger.balance(s, org.id))
    assert balance.reserved_nanousd == 0
    assert balance.balance_nanousd >= 0, outcomes
    # Released holds are available again, so more than five may be admitted over time, never beyond the money.
    assert outcomes.count("settled") * (per_request - 1_000) <= 5 * per_request + per_request // 2
    assert outcomes.count("refused") > 0
    await _check(factory, org.id)
    entries = await factory.run(
        lambda s: s.scalars(select(CreditEntry).where(CreditEntry.organization_id == org.id))
    )
    assert len(list(entries)) == 1 + outcomes.count("settled")


async def test_concurrent_holds_alone_admit_exactly_what_the_balance_allows(factory: Factory) -> None:
    org = await _org(factory)
    await _grant(factory, org.id, 5 * USD)

    async def hold(i: int) -> bool:
        try:
            await factory.run(lambda s: ledger.reserve(s, org.id, request_id=f"h{i}", amount_nanousd=USD))
        except InsufficientCredits:
            return False
        return True

    admitted = await asyncio.gather(*(hold(i) for i in range(50)))
    assert sum(admitted) == 5
    await _check(factory, org.id)


async def test_the_same_external_event_delivered_concurrently_applies_once(factory: Factory) -> None:
    org = await _org(factory)
    results = await asyncio.gather(
        *(_grant(factory, org.id, USD, external_id="payment:evt_dup") for _ in range(8))
    )
    assert sum(results) == 1
    assert (await factory.run(lambda s: ledger.balance(s, org.id))).balance_nanousd == USD
    await _check(factory, org.id)


async def _entries(factory: Factory, org_id: object) -> int:
    rows = await factory.run(
        lambda s: s.scalars(select(CreditEntry).where(CreditEntry.organization_id == org_id))
    )
    return len(list(rows))


async def _stored_balance(factory: Factory, org_id: object) -> object:
    return await factory.run(
        lambda s: s.scalar(
            select(CreditAccount.balance_nanousd).where(CreditAccount.organization_id == org_id)
        )
    )


@pytest.mark.parametrize(
    "kind", [EntryKind.grant, EntryKind.purchase, EntryKind.promotion, EntryKind.adjustment]
)
async def test_no_entry_takes_the_balance_past_the_bound(factory: Factory, kind: EntryKind) -> None:
    org = await _org(factory)
    await _grant(factory, org.id, MAX_BALANCE_NANOUSD - USD)
    await factory.run(lambda s: ledger.post(s, org.id, kind=kind, amount_nanousd=USD))  # up to it exactly
    assert await _stored_balance(factory, org.id) == MAX_BALANCE_NANOUSD

    with pytest.raises(BalanceLimitExceeded) as refused:
        await factory.run(
            lambda s: ledger.post(s, org.id, kind=kind, amount_nanousd=1, external_id="payment:one-more")
        )
    assert refused.value.status_code == 409 and refused.value.type == "balance_limit"
    assert "The balance would be $9,000,000,000.00, more than the $9,000,000,000.00" in refused.value.message
    # An amount past 64 bits on its own: the same refusal, never an overflow in the database.
    with pytest.raises(BalanceLimitExceeded, match="more than the"):
        await factory.run(lambda s: ledger.post(s, org.id, kind=kind, amount_nanousd=2**63))

    # Nothing was written: neither the entries nor the balance (an int, never SQLite's float).
    stored = await _stored_balance(factory, org.id)
    assert type(stored) is int and stored == MAX_BALANCE_NANOUSD
    assert await _entries(factory, org.id) == 2
    await _check(factory, org.id)
    # Taking some back makes room again.
    await factory.run(lambda s: ledger.post(s, org.id, kind=EntryKind.adjustment, amount_nanousd=-USD))
    assert await _grant(factory, org.id, USD, external_id="payment:one-more")


async def test_no_entry_takes_the_balance_below_the_negative_bound(factory: Factory) -> None:
    org = await _org(factory)
    await factory.run(
        lambda s: ledger.post(s, org.id, kind=EntryKind.adjustment, amount_nanousd=-MAX_BALANCE_NANOUSD)
    )
    for kind in (EntryKind.refund, EntryKind.adjustment, EntryKind.consumption):
        with pytest.raises(BalanceLimitExceeded) as refused:
            await factory.run(lambda s, kind=kind: ledger.post(s, org.id, kind=kind, amount_nanousd=-1))
        assert "less than the -$9,000,000,000.00 a balance may hold" in refused.value.message
    assert await _stored_balance(factory, org.id) == -MAX_BALANCE_NANOUSD
    assert await _entries(factory, org.id) == 1
    await _check(factory, org.id)


async def test_a_replay_at_the_bound_is_still_a_no_op(factory: Factory) -> None:
    org = await _org(factory)
    assert await _grant(factory, org.id, MAX_BALANCE_NANOUSD, external_id="payment:evt_big")
    assert not await _grant(factory, org.id, MAX_BALANCE_NANOUSD, external_id="payment:evt_big")
    await _check(factory, org.id)


async def test_concurrent_grants_never_pass_the_bound_together(factory: Factory) -> None:
    org = await _org(factory)
    await _grant(factory, org.id, MAX_BALANCE_NANOUSD - 3 * USD)

    async def grant(i: int) -> bool:
        try:
            return await _grant(factory, org.id, USD, external_id=f"payment:race_{i}")
        except BalanceLimitExceeded:
            return False

    admitted = await asyncio.gather(*(grant(i) for i in range(8)))
    assert sum(admitted) == 3
    assert await _stored_balance(factory, org.id) == MAX_BALANCE_NANOUSD
    await _check(factory, org.id)


async def test_credits_api_for_billing_roles(factory: Factory) -> None:
    from tokenboard.members.roles import Role

    setup = await factory.org_with_roles("Api Ledger")
    await _grant(factory, setup.id, 25 * USD)
    async with await factory.client_for(setup.users[Role.billing_manager]) as client:
        body = (await client.get(f"/api/v1/organizations/{setup.id}/credits")).json()
    assert body["balance"] == {"nanousd": 25 * USD, "usd": "25.00"}
    assert body["available"]["nanousd"] == 25 * USD and body["recent_entries"][0]["kind"] == "grant"
