"""The credit ledger: append-only entries, a derived balance, and reserve-then-settle for requests.

A request reserves its estimated maximum cost before it is forwarded, settles to its actual cost when the
response ends, or releases the reservation on failure. Reservations left by a process that died expire and
are released by :meth:`LedgerService.release_expired`. Every external event (a request id, a payment event
id) is applied at most once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.kit.db import utcnow, uuid7
from tokenboard.kit.errors import BadRequest, TokenboardError
from tokenboard.kit.money import format_usd
from tokenboard.ledger import repository
from tokenboard.models import CreditEntry

DEFAULT_HOLD = timedelta(minutes=15)
# The most a balance may hold, either way: $9 billion, within the signed 64-bit column (9.22e18 nano-USD).
# Past 64 bits PostgreSQL refuses the write and SQLite silently stores a float, which breaks every page that
# shows the balance. Every entry :meth:`LedgerService.post` writes keeps the balance (the sum of the
# entries) within it.
MAX_BALANCE_NANOUSD = 9 * 10**18


class EntryKind(StrEnum):
    grant = "grant"
    purchase = "purchase"
    promotion = "promotion"
    consumption = "consumption"
    adjustment = "adjustment"
    expiry = "expiry"
    refund = "refund"


class InsufficientCredits(TokenboardError):
    status_code = 402
    type = "insufficient_credits"


class BalanceLimitExceeded(TokenboardError):
    """An entry would take the balance past :data:`MAX_BALANCE_NANOUSD` (or below its negative)."""

    status_code = 409
    type = "balance_limit"


# How a refusal ends, by the kind of entry refused.
_NOTHING_DONE = {
    EntryKind.grant: "nothing was granted",
    EntryKind.promotion: "nothing was granted",
    EntryKind.purchase: "nothing was credited",
    EntryKind.adjustment: "nothing was adjusted",
}


class LeaseLost(Exception):
    """The lease was released under its process (it expired and was swept); start a new one."""


@dataclass(frozen=True, slots=True)
class Balance:
    balance_nanousd: int
    reserved_nanousd: int

    @property
    def available_nanousd(self) -> int:
        return self.balance_nanousd - self.reserved_nanousd


@dataclass(frozen=True, slots=True)
class Settlement:
    entry: CreditEntry | None
    applied: bool


class LedgerService:
    async def balance(self, session: AsyncSession, org_id: uuid.UUID) -> Balance:
        account = await repository.get_account(session, org_id)
        if account is None:
            return Balance(0, 0)
        return Balance(account.balance_nanousd, account.reserved_nanousd)

    async def post(
        self,
        session: AsyncSession,
        org_id: uuid.UUID,
        *,
        kind: EntryKind,
        amount_nanousd: int,
        memo: str = "",
        external_id: str | None = None,
        actor_label: str = "system",
    ) -> Settlement:
        """Append one entry and move the balance with it. A repeated ``external_id`` changes nothing.

        An entry that would take the balance past :data:`MAX_BALANCE_NANOUSD` either way is refused with
        :class:`BalanceLimitExceeded` before anything is written, whichever path (the CLI, billing, an
        operator's route) posts it.
        """
        if kind in (EntryKind.grant, EntryKind.purchase, EntryKind.promotion) and amount_nanousd <= 0:
            raise BadRequest("A grant must be a positive amount.")
        if kind in (EntryKind.consumption, EntryKind.expiry, EntryKind.refund) and amount_nanousd > 0:
            raise BadRequest(f"A {kind.value} entry must not be positive.")
        if abs(amount_nanousd) > MAX_BALANCE_NANOUSD:
            raise BalanceLimitExceeded(
                f"{format_usd(amount_nanousd)} is more than the {format_usd(MAX_BALANCE_NANOUSD)} a balance "
                f"may hold; {_NOTHING_DONE.get(kind, 'nothing was recorded')}."
            )
        if external_id is not None and (
            existing := await repository.find_entry(session, org_id, external_id)
        ):
            return Settlement(entry=existing, applied=False)
        await repository.ensure_account(session, org_id)
        entry = CreditEntry(
            organization_id=org_id,
            kind=kind.value,
            amount_nanousd=amount_nanousd,
            external_id=external_id,
            memo=memo[:500],
            actor_label=actor_label,
        )
        try:
            async with session.begin_nested():
                # The balance first, within its bound in one conditional UPDATE (concurrent entries cannot
                # pass it together); the entry after it, so that a duplicate rolls both back.
                if not await repository.add_to_balance_within(
                    session, org_id, amount_nanousd, MAX_BALANCE_NANOUSD
                ):
                    raise await self._beyond_limit(session, org_id, kind, amount_nanousd)
                session.add(entry)
                await session.flush()
        except IntegrityError:
            # The same external event landed concurrently and committed first: it applies once, not twice.
            existing = await repository.find_entry(session, org_id, external_id or "")
            if external_id is None or existing is None:
                raise
            return Settlement(entry=existing, applied=False)
        return Settlement(entry=entry, applied=True)

    async def _beyond_limit(
        self, session: AsyncSession, org_id: uuid.UUID, kind: EntryKind, amount_nanousd: int
    ) -> BalanceLimitExceeded:
        after = (await self.balance(session, org_id)).balance_nanousd + amount_nanousd
        bound = (
            f"more than the {format_usd(MAX_BALANCE_NANOUSD)}"
            if amount_nanousd > 0
            else f"less than the {format_usd(-MAX_BALANCE_NANOUSD)}"
        )
        return BalanceLimitExceeded(
            f"The balance would be {format_usd(after)}, {bound} a balance may hold; "
            f"{_NOTHING_DONE.get(kind, 'nothing was recorded')}."
        )

    async def reserve(
        self,
        session: AsyncSession,
        org_id: uuid.UUID,
        *,
        request_id: str,
        amount_nanousd: int,
        hold_for: timedelta = DEFAULT_HOLD,
        now: datetime | None = None,
    ) -> None:
        """Hold the estimated maximum cost of a request, or refuse with 402 when it is not available."""
        if amount_nanousd < 0:
            raise BadRequest("A reservation cannot be negative.")
        # The account row exists once the org has had any credits; create it only when the hold misses.
        held = await repository.try_hold(session, org_id, amount_nanousd)
        if not held:
            await repository.ensure_account(session, org_id)
            held = await repository.try_hold(session, org_id, amount_nanousd)
        if not held:
            available = await self.balance(session, org_id)
            raise InsufficientCredits(
                f"Not enough credits: this request may cost up to {format_usd(amount_nanousd)} and "
                f"{format_usd(max(available.available_nanousd, 0))} is available. Add credits to continue."
            )
        now = now or utcnow()
        await repository.add_reservation(
            session,
            org_id,
            request_id=request_id,
            amount=amount_nanousd,
            created_at=now,
            expires_at=now + hold_for,
        )

    async def settle(
        self, session: AsyncSession, org_id: uuid.UUID, *, request_id: str, cost_nanousd: int, memo: str = ""
    ) -> Settlement:
        """Replace the hold with the actual cost, exactly once per request id.

        A request whose reservation already expired is still billed (its cost is real); only the hold
        release is skipped, since expiry released it.
        """
        if cost_nanousd < 0:
            raise BadRequest("A cost cannot be negative.")
        held = await repository.mark_reservation(
            session, org_id, request_id, to_state="settled", settled=cost_nanousd
        )
        if held is not None:
            await repository.unhold(session, org_id, held)
        return await self.post(
            session,
            org_id,
            kind=EntryKind.consumption,
            amount_nanousd=-cost_nanousd,
            external_id=f"request:{request_id}",
            memo=memo,
        )

    async def settle_many(
        self,
        session: AsyncSession,
        *,
        settle: list[tuple[uuid.UUID, str, int, str]],
        release: list[tuple[uuid.UUID, str]],
        held: set[tuple[uuid.UUID, str]] | None = None,
    ) -> int:
        """Settle (org, request id, cost, memo) and release (org, request id) in a few statements per batch.

        The same rules as :meth:`settle` and :meth:`release`: each hold is let go once, each request is
        billed once (its consumption entry is unique on ``request:<id>``). ``held``, when given, names the
        settled requests that had a hold of their own (the others were admitted against a credit lease,
        which the caller draws from): only those are looked up among the holds. Returns the entries written.
        """
        unhold: dict[uuid.UUID, int] = {}
        for state, keys in (
            ("settled", [(org, rid) for org, rid, _, _ in settle if held is None or (org, rid) in held]),
            ("released", release),
        ):
            for org, amount in await repository.mark_many(session, keys, to_state=state):
                unhold[org] = unhold.get(org, 0) + amount
        for org, amount in unhold.items():
            await repository.unhold(session, org, amount)
        now = utcnow()
        rows: list[dict[str, object]] = []
        for org, rid, cost, memo in settle:
            if cost < 0:
                raise BadRequest("A cost cannot be negative.")
            rows.append(
                {
                    "organization_id": org,
                    "id": uuid7(),
                    "kind": EntryKind.consumption.value,
                    "amount_nanousd": -cost,
                    "external_id": f"request:{rid}",
                    "memo": memo[:500],
                    "actor_label": "gateway",
                    "created_at": now,
                }
            )
        for org_id in {org for org, _, _, _ in settle}:
            await repository.ensure_account(session, org_id)
        spent: dict[uuid.UUID, int] = {}
        inserted = await repository.insert_entries_once(session, rows)
        for org, amount in inserted:
            spent[org] = spent.get(org, 0) + amount
        for org, amount in spent.items():
            # Not bounded as post() is: each cost was held against available credits first, so the
            # balance only goes below zero by what a request cost beyond its hold, never toward the bound.
            await repository.add_to_balance(session, org, amount)
        return len(inserted)

    async def release(self, session: AsyncSession, org_id: uuid.UUID, *, request_id: str) -> bool:
        """Give back a request's hold (the request failed before costing anything). At most once."""
        held = await repository.mark_reservation(session, org_id, request_id, to_state="released")
        if held is None:
            return False
        await repository.unhold(session, org_id, held)
        return True

    # ------------------------------------------------------------------ leases
    # A gateway process holds one lease per organization: a block of credits reserved in one write and
    # handed out to requests in memory (see tokenboard/ledger/lease.py). The lease row is a reservation
    # whose amount moves: grown by top-ups, shrunk as the process's requests are settled.

    async def grow_lease(
        self,
        session: AsyncSession,
        org_id: uuid.UUID,
        *,
        lease_id: str,
        need: int,
        want: int,
        unused: int = 0,
        hold_for: timedelta = DEFAULT_HOLD,
        now: datetime | None = None,
    ) -> int:
        """Hold up to ``want`` more under the lease, at least ``need``; returns the amount granted.

        No lease takes more than a quarter of what is left, so other processes can still serve the org.
        Raises :class:`InsufficientCredits` when even ``need`` is not available (``unused`` is what the
        process still holds, for the message) and :class:`LeaseLost` when the lease was swept.
        The caller rolls back on either.
        """
        if need <= 0 or want < need:
            raise BadRequest("A lease must grow by a positive amount.")
        now = now or utcnow()
        account = await repository.get_account(session, org_id)
        available = account.balance_nanousd - account.reserved_nanousd if account else 0
        grant = min(want, max(need, available // 4))
        if grant > available:
            raise InsufficientCredits(
                f"Not enough credits: this request may cost up to {format_usd(need + unused)} and "
                f"{format_usd(max(available + unused, 0))} is available. Add credits to continue."
            )
        # Lock order as in settle and release: the reservation row first, then the account row.
        if not await repository.resize_lease(session, org_id, lease_id, grant, expires_at=now + hold_for):
            if await repository.lease_exists(session, org_id, lease_id):
                raise LeaseLost(lease_id)
            await repository.open_lease(session, org_id, lease_id, created_at=now, expires_at=now + hold_for)
            await repository.resize_lease(session, org_id, lease_id, grant)
        if not await repository.try_hold(session, org_id, grant):
            # Another process took credits since the read above.
            raise InsufficientCredits(
                f"Not enough credits: this request may cost up to {format_usd(need + unused)}. "
                "Add credits to continue."
            )
        return grant

    async def draw_lease(
        self, session: AsyncSession, org_id: uuid.UUID, *, lease_id: str, amount: int
    ) -> int:
        """Let go of the part of a lease that settled requests used (their cost is now an entry).

        Returns what was drawn: at most what the lease still holds (nothing once it was swept).
        """
        held = await repository.lease_amount(session, org_id, lease_id)
        if held is None or amount <= 0:
            return 0
        drawn = min(held, amount)
        await repository.resize_lease(session, org_id, lease_id, -drawn)
        await repository.unhold(session, org_id, drawn)
        return drawn

    async def release_lease(self, session: AsyncSession, org_id: uuid.UUID, *, lease_id: str) -> int:
        """Give back a whole lease; returns the amount released (0 when it was no longer held)."""
        held = await repository.mark_reservation(session, org_id, lease_id, to_state="released")
        if held is None:
            return 0
        await repository.unhold(session, org_id, held)
        return held

    async def release_leases_of(self, session: AsyncSession, instance: str) -> int:
        """Give back every lease a (dead) process held; returns the amount released."""
        released = 0
        for org_id, lease_id in await repository.held_leases(session, f"lease:{instance}:"):
            released += await self.release_lease(session, org_id, lease_id=lease_id)
        return released

    async def prolong_leases(
        self, session: AsyncSession, keys: list[tuple[uuid.UUID, str]], *, hold_for: timedelta = DEFAULT_HOLD
    ) -> set[tuple[uuid.UUID, str]]:
        """Keep live leases from expiring; returns those still held (the others were swept)."""
        return await repository.prolong_leases(session, keys, utcnow() + hold_for)

    async def release_expired(
        self, session: AsyncSession, *, now: datetime | None = None, limit: int = 500
    ) -> int:
        """Release holds whose process never settled them (it crashed or was killed)."""
        released = 0
        for reservation in await repository.expired_holds(session, now or utcnow(), limit):
            if await self.release(session, reservation.organization_id, request_id=reservation.request_id):
                released += 1
        return released

    async def check_invariants(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        """The balance equals the sum of entries and the reserved total the sum of held reservations."""
        account = await repository.get_account(session, org_id)
        entries = await repository.sum_entries(session, org_id)
        held = await repository.sum_held(session, org_id)
        balance = account.balance_nanousd if account else 0
        reserved = account.reserved_nanousd if account else 0
        if balance != entries or reserved != held:
            raise AssertionError(
                f"ledger out of step for {org_id}: balance {balance} vs entries {entries}, "
                f"reserved {reserved} vs held {held}"
            )

    async def entries(self, session: AsyncSession, org_id: uuid.UUID, limit: int = 50) -> list[CreditEntry]:
        return await repository.list_entries(session, org_id, limit)


ledger = LedgerService()
