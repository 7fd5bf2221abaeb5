"""Subscriptions: seat changes with their invoices, renewals, a failed payment's grace, then suspension."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.billing.conftest import ACTOR, USD, billing_org, in_app
from tests.support.factories import Factory
from tokenboard.billing import repository
from tokenboard.billing.payments import apply_payment, record_payment_failure
from tokenboard.billing.plans import Frequency
from tokenboard.billing.service import billing
from tokenboard.billing.status import BillingStatusCache, billing_status, load_state, refusal_for
from tokenboard.billing.subscriptions import subscriptions
from tokenboard.config import Settings
from tokenboard.models import Organization

START = datetime(2026, 3, 1, tzinfo=UTC)


async def started(factory: Factory, settings: Settings, seats: int = 10) -> Organization:
    org, _ = await billing_org(factory)

    async def work(s):  # type: ignore[no-untyped-def]
        fresh = await s.get(Organization, org.id)
        fresh.seat_limit = seats
        await subscriptions.ensure(s, fresh, settings, START)
        return fresh

    return await factory.run(work)


async def test_adding_seats_invoices_the_proration_and_raises_the_seat_limit(
    factory: Factory, settings: Settings
) -> None:
    org = await started(factory, settings)

    async def add(s):  # type: ignore[no-untyped-def]
        fresh = await s.get(Organization, org.id)
        return await subscriptions.change_seats(
            s, fresh, 12, settings=settings, actor=ACTOR, now=datetime(2026, 3, 16, 12, tzinfo=UTC)
        )

    preview, invoice = await factory.run(add)
    assert preview.charge_now_nanousd == 29 * USD
    assert invoice is not None and invoice.status == "open" and invoice.total_nanousd == 29 * USD
    lines = await factory.run(lambda s: repository.invoice_lines(s, org.id, invoice.id))
    assert [(line.kind, line.quantity, line.amount_nanousd) for line in lines] == [("proration", 2, 29 * USD)]
    assert (await factory.run(lambda s: s.get(Organization, org.id))).seat_limit == 12
    sub = await factory.run(lambda s: repository.get_subscription(s, org.id))
    assert sub is not None and sub.seats == 12


async def test_removal_waits_for_renewal_and_the_renewal_is_invoiced(
    factory: Factory, settings: Settings
) -> None:
    org = await started(factory, settings)

    async def remove(s):  # type: ignore[no-untyped-def]
        fresh = await s.get(Organization, org.id)
        return await subscriptions.change_seats(
            s, fresh, 6, settings=settings, actor=ACTOR, now=datetime(2026, 3, 10, tzinfo=UTC)
        )

    preview, invoice = await factory.run(remove)
    assert invoice is None and preview.charge_now_nanousd == 0
    sub = await factory.run(lambda s: repository.get_subscription(s, org.id))
    assert sub is not None and (sub.seats, sub.pending_seats) == (10, 6)
    report = await factory.run(
        lambda s: billing.run(
            s, settings=settings, actor=ACTOR, now=datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC)
        )
    )
    assert report.renewed == 1
    sub = await factory.run(lambda s: repository.get_subscription(s, org.id))
    assert sub is not None and (sub.seats, sub.pending_seats) == (6, None)
    assert (sub.current_period_start, sub.current_period_end) == (
        datetime(2026, 4, 1, tzinfo=UTC),
        datetime(2026, 5, 1, tzinfo=UTC),
    )
    renewal = [
        i
        for i in await factory.run(lambda s: repository.list_invoices(s, org.id, 10))
        if i.purpose == "subscription"
    ]
    assert [(i.status, i.total_nanousd) for i in renewal] == [("open", 6 * 29 * USD)]
    assert (await factory.run(lambda s: s.get(Organization, org.id))).seat_limit == 6


async def test_annual_switch_charges_the_difference_now(factory: Factory, settings: Settings) -> None:
    org = await started(factory, settings, seats=10)

    async def switch(s):  # type: ignore[no-untyped-def]
        fresh = await s.get(Organization, org.id)
        return await subscriptions.change_frequency(
            s,
            fresh,
            Frequency.annual,
            settings=settings,
            actor=ACTOR,
            now=datetime(2026, 3, 16, 12, tzinfo=UTC),
        )

    preview, invoice = await factory.run(switch)
    assert (
        invoice is not None and invoice.total_nanousd == 2_900 * USD - 145 * USD == preview.charge_now_nanousd
    )
    sub = await factory.run(lambda s: repository.get_subscription(s, org.id))
    assert sub is not None and sub.frequency == "annual"
    assert sub.current_period_end == datetime(2027, 3, 16, 12, tzinfo=UTC)


async def test_failed_payment_grace_then_suspension_then_payment_restores(
    app: object, factory: Factory, settings: Settings
) -> None:
    org = await started(factory, settings)
    renew_at = datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC)
    await factory.run(lambda s: billing.run(s, settings=settings, actor=ACTOR, now=renew_at))
    invoice = (await factory.run(lambda s: repository.list_invoices(s, org.id, 10)))[0]
    await in_app(
        app,
        lambda s: record_payment_failure(
            s,
            org.id,
            invoice_id=invoice.id,
            reason="card declined",
            settings=settings,
            actor=ACTOR,
            now=renew_at,
        ),
    )
    state = await factory.run(lambda s: load_state(s, org.id))
    assert state.effective(renew_at + timedelta(days=6)) == "grace"
    assert refusal_for(state, renew_at + timedelta(days=6)) is None
    # Past the grace period the cached state alone refuses, before the job has even run.
    refusal = refusal_for(state, renew_at + timedelta(days=7, seconds=1))
    assert refusal is not None and refusal.status == 402 and "suspended" in refusal.message
    emails = [m.subject for m in app.state.mailer.sent]  # type: ignore[attr-defined]
    assert any("Payment failed" in subject for subject in emails)

    await factory.run(
        lambda s: billing.run(s, settings=settings, actor=ACTOR, now=renew_at + timedelta(days=8))
    )
    sub = await factory.run(lambda s: repository.get_subscription(s, org.id))
    assert sub is not None and sub.status == "suspended"

    cache = BillingStatusCache()
    await factory.run(lambda s: cache.ensure_org(s, org.id))
    assert cache.refusal(org.id) is not None and cache.refusal(org.id).status == 402  # type: ignore[union-attr]

    paid = await in_app(
        app,
        lambda s: apply_payment(
            s,
            org.id,
            provider="offline",
            event_id="late-wire",
            invoice_id=invoice.id,
            actor=ACTOR,
            now=renew_at + timedelta(days=9),
        ),
    )
    assert paid.applied
    sub = await factory.run(lambda s: repository.get_subscription(s, org.id))
    assert sub is not None and (sub.status, sub.grace_until) == ("active", None)
    assert await factory.run(lambda s: billing_status(s, org.id)) == "active"


async def test_offline_renewal_unpaid_past_due_opens_grace(factory: Factory, settings: Settings) -> None:
    org = await started(factory, settings)
    renew_at = datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC)
    await factory.run(lambda s: billing.run(s, settings=settings, actor=ACTOR, now=renew_at))
    await factory.run(
        lambda s: billing.run(s, settings=settings, actor=ACTOR, now=renew_at + timedelta(days=7))
    )
    sub = await factory.run(lambda s: repository.get_subscription(s, org.id))
    assert sub is not None and sub.status == "past_due"
    assert sub.grace_until == renew_at + timedelta(days=14)


async def test_cancel_needs_confirmation_and_ends_at_period_end(factory: Factory, settings: Settings) -> None:
    org = await started(factory, settings)
    from tokenboard.kit.errors import BadRequest

    async def cancel(s, confirm):  # type: ignore[no-untyped-def]
        fresh = await s.get(Organization, org.id)
        return await subscriptions.cancel(s, fresh, confirm=confirm, settings=settings, actor=ACTOR)

    try:
        await factory.run(lambda s: cancel(s, False))
        raise AssertionError("an unconfirmed cancellation went through")
    except BadRequest:
        pass
    await factory.run(lambda s: cancel(s, True))
    await factory.run(
        lambda s: billing.run(s, settings=settings, actor=ACTOR, now=datetime(2026, 4, 1, tzinfo=UTC))
    )
    sub = await factory.run(lambda s: repository.get_subscription(s, org.id))
    assert sub is not None and sub.status == "canceled"
    state = await factory.run(lambda s: load_state(s, org.id))
    refusal = refusal_for(state, datetime(2026, 4, 2, tzinfo=UTC))
    assert refusal is not None and refusal.status == 403


async def test_enterprise_renewal_itemizes_usage_already_paid_from_credits(
    factory: Factory, settings: Settings
) -> None:
    from tokenboard.usage.ingest import record_events

    org = await started(factory, settings)

    async def enterprise_with_usage(s):  # type: ignore[no-untyped-def]
        sub = await repository.get_subscription(s, org.id)
        sub.plan = "enterprise"
        rows = [
            {
                "organization_id": org.id,
                "request_id": f"req-{n}",
                "provider_id": "openai",
                "model_id": "openai/gpt-4o" if n % 3 else "anthropic/claude-sonnet-4",
                "route": "chat",
                "cost_nanousd": 1_000_000 * (n + 1),
                "created_at": datetime(2026, 3, 5, 12, tzinfo=UTC) + timedelta(hours=n),
            }
            for n in range(9)
        ]
        await record_events(s, rows)

    await factory.run(enterprise_with_usage)
    renew_at = datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC)
    assert (
        await factory.run(lambda s: billing.run(s, settings=settings, actor=ACTOR, now=renew_at))
    ).renewed == 1
    invoice = next(
        i
        for i in await factory.run(lambda s: repository.list_invoices(s, org.id, 10))
        if i.purpose == "subscription"
    )
    lines = await factory.run(lambda s: repository.invoice_lines(s, org.id, invoice.id))
    usage = {line.model_id: line for line in lines if line.kind == "usage"}
    # gpt-4o: requests 1, 2, 4, 5, 7, 8 (costs 2+3+5+6+8+9 = 33 m$); claude: 0, 3, 6 (1+4+7 = 12 m$)
    assert {m: (line.quantity, line.amount_nanousd) for m, line in usage.items()} == {
        "openai/gpt-4o": (6, 0),
        "anthropic/claude-sonnet-4": (3, 0),
    }
    assert "$0.033, paid from credits" in usage["openai/gpt-4o"].description
    seats = [line for line in lines if line.kind == "seats"]
    assert invoice.subtotal_nanousd == sum(line.amount_nanousd for line in seats) > 0  # never charged twice
