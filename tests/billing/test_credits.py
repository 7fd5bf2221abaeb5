"""Credits through the offline provider: pending grants nothing, a payment grants once, refunds claw back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.billing.conftest import ACTOR, USD, billing_org, in_app
from tests.support.factories import Factory
from tokenboard.billing import repository
from tokenboard.billing.credits import credits
from tokenboard.billing.service import billing
from tokenboard.config import Settings
from tokenboard.kit.db import utcnow
from tokenboard.kit.errors import BadRequest, Conflict
from tokenboard.ledger.service import ledger
from tokenboard.models import Organization


async def balance(factory: Factory, org: Organization) -> int:
    return (await factory.run(lambda s: ledger.balance(s, org.id))).balance_nanousd


async def test_offline_purchase_pays_once_and_refund_claws_back_exactly(
    factory: Factory, settings: Settings
) -> None:
    org, _ = await billing_org(factory)

    async def buy(s: AsyncSession) -> object:
        return await credits.start_purchase(s, org, amount_nanousd=50 * USD, settings=settings, actor=ACTOR)

    started = await factory.run(buy)
    purchase = started.purchase  # type: ignore[attr-defined]
    assert purchase.status == "pending" and started.checkout_url is None  # type: ignore[attr-defined]
    assert await balance(factory, org) == 0  # pending grants nothing

    record = lambda s: credits.record_offline_payment(s, org.id, purchase.id, reference="wire-1", actor=ACTOR)  # noqa: E731
    assert await factory.run(record) is True
    assert await balance(factory, org) == 50 * USD
    assert await factory.run(record) is False  # the same receipt again: nothing more
    other = lambda s: credits.record_offline_payment(s, org.id, purchase.id, reference="wire-2", actor=ACTOR)  # noqa: E731
    assert await factory.run(other) is False  # a second payment for a paid invoice is a duplicate
    assert await balance(factory, org) == 50 * USD
    payments = await factory.run(lambda s: repository.list_payments(s, org.id, 10))
    assert sorted(p.status for p in payments) == ["duplicate", "succeeded"]
    invoice = await factory.run(lambda s: repository.get_invoice(s, org.id, purchase.invoice_id))
    assert invoice is not None and invoice.status == "paid" and invoice.number

    # spend some, then refund 30: exactly 30 comes back out, even below zero
    await factory.run(
        lambda s: ledger.post(s, org.id, kind=ledger_kind("consumption"), amount_nanousd=-45 * USD)
    )
    refunded = await factory.run(
        lambda s: credits.refund(
            s,
            org.id,
            purchase.id,
            amount_nanousd=30 * USD,
            reason="customer asked",
            settings=settings,
            actor=ACTOR,
        )
    )
    assert refunded == 30 * USD
    assert await balance(factory, org) == 50 * USD - 45 * USD - 30 * USD
    again = await factory.run(
        lambda s: credits.refund(
            s,
            org.id,
            purchase.id,
            amount_nanousd=20 * USD,
            reason="rest",
            settings=settings,
            actor=ACTOR,
            refund_event_id="re_1",
        )
    )
    assert again == 20 * USD
    with pytest.raises(Conflict):
        await factory.run(
            lambda s: credits.refund(
                s, org.id, purchase.id, amount_nanousd=1, reason="too much", settings=settings, actor=ACTOR
            )
        )
    assert await balance(factory, org) == -45 * USD
    await factory.run(lambda s: ledger.check_invariants(s, org.id))


def ledger_kind(name: str):  # type: ignore[no-untyped-def]
    from tokenboard.ledger.service import EntryKind

    return EntryKind(name)


async def test_replayed_refund_event_claws_back_once(factory: Factory, settings: Settings) -> None:
    org, _ = await billing_org(factory)
    started = await factory.run(
        lambda s: credits.start_purchase(s, org, amount_nanousd=10 * USD, settings=settings, actor=ACTOR)
    )
    pid = started.purchase.id
    await factory.run(lambda s: credits.record_offline_payment(s, org.id, pid, reference="r", actor=ACTOR))
    for expected in (4 * USD, 0):
        got = await factory.run(
            lambda s: credits.refund(
                s,
                org.id,
                pid,
                amount_nanousd=4 * USD,
                reason="dispute lost",
                settings=settings,
                actor=ACTOR,
                refund_event_id="re_same",
            )
        )
        assert got == expected
    assert await balance(factory, org) == 6 * USD


async def test_an_operator_refund_and_its_webhook_racing_claw_back_once(
    factory: Factory, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider's webhook confirming a refund commits while the operator's refund is still open (between
    its read and its write): the operator's compare-and-set finds the total changed and is rolled back, so
    the credits are clawed back once."""
    from tokenboard.billing import credits as credits_module
    from tokenboard.billing import repository
    from tokenboard.billing.providers.base import ChargeStatus, RefundRequest, RefundResult
    from tokenboard.kit.errors import Conflict

    org, _ = await billing_org(factory)
    started = await factory.run(
        lambda s: credits.start_purchase(s, org, amount_nanousd=10 * USD, settings=settings, actor=ACTOR)
    )
    pid = started.purchase.id
    await factory.run(lambda s: credits.record_offline_payment(s, org.id, pid, reference="r", actor=ACTOR))

    class RefundsThenWebhook:
        async def refund(self, request: RefundRequest) -> RefundResult:
            # The provider refunds, and its webhook for that refund lands and commits at once.
            await factory.run(
                lambda s: credits.refund(
                    s,
                    org.id,
                    pid,
                    amount_nanousd=request.amount_nanousd,
                    reason="webhook",
                    settings=settings,
                    actor=ACTOR,
                    refund_event_id="ch_1:400",
                )
            )
            return RefundResult(refund_id="re_operator", status=ChargeStatus.succeeded)

    monkeypatch.setattr(credits_module, "provider_for", lambda _settings: RefundsThenWebhook())
    with pytest.raises(Conflict, match="recorded meanwhile"):
        await factory.run(
            lambda s: credits.refund(
                s, org.id, pid, amount_nanousd=4 * USD, reason="operator", settings=settings, actor=ACTOR
            )
        )
    assert await balance(factory, org) == 6 * USD
    purchase = await factory.run(lambda s: repository.get_purchase(s, org.id, pid))
    assert purchase is not None and purchase.refunded_nanousd == 4 * USD


@pytest.mark.parametrize(
    ("amount", "message"), [(4 * USD, "between"), (10_001 * USD, "between"), (5 * USD + 1, "cents")]
)
async def test_custom_amounts_are_validated(
    factory: Factory, settings: Settings, amount: int, message: str
) -> None:
    org, _ = await billing_org(factory)
    with pytest.raises(BadRequest, match=message):
        await factory.run(
            lambda s: credits.start_purchase(s, org, amount_nanousd=amount, settings=settings, actor=ACTOR)
        )


async def test_low_balance_email_once_and_rearmed_after_top_up(
    app: object, factory: Factory, settings: Settings
) -> None:
    org, owner = await billing_org(factory)
    await in_app(
        app,
        lambda s: billing.update_profile(
            s, org.id, actor=ACTOR, settings=settings, low_balance_threshold_nanousd=20 * USD
        ),
    )
    await in_app(
        app,
        lambda s: credits.adjust(
            s, org.id, amount_nanousd=30 * USD, reason="start", settings=settings, actor=ACTOR
        ),
    )
    mailer = app.state.mailer  # type: ignore[attr-defined]
    mailer.sent.clear()

    async def spend(s: AsyncSession, amount: int) -> None:
        await credits.adjust(
            s, org.id, amount_nanousd=-amount, reason="spend", settings=settings, actor=ACTOR
        )

    await in_app(app, lambda s: spend(s, 5 * USD))  # 25: above
    assert not [m for m in mailer.sent if "Low credit" in m.subject]
    await in_app(app, lambda s: spend(s, 10 * USD))  # 15: crossed
    await in_app(app, lambda s: spend(s, 1 * USD))  # 14: still below, no second email
    low = [m for m in mailer.sent if "Low credit" in m.subject]
    # once per crossing, to each owner and billing manager
    assert len(low) == 2 and owner.email in {m.to for m in low} and len({m.to for m in low}) == 2
    await in_app(
        app,
        lambda s: credits.adjust(
            s, org.id, amount_nanousd=50 * USD, reason="top", settings=settings, actor=ACTOR
        ),
    )
    await in_app(app, lambda s: spend(s, 60 * USD))  # 64 -> 4: crossed again, re-armed
    assert len([m for m in mailer.sent if "Low credit" in m.subject]) == 4


async def test_auto_top_up_creates_one_pending_purchase(factory: Factory, settings: Settings) -> None:
    org, _ = await billing_org(factory)
    await factory.run(
        lambda s: billing.update_profile(
            s,
            org.id,
            actor=ACTOR,
            settings=settings,
            auto_topup_below_nanousd=10 * USD,
            auto_topup_amount_nanousd=50 * USD,
        )
    )
    purchases = await factory.run(lambda s: repository.list_purchases(s, org.id, 10))
    assert [(p.origin, p.status, p.amount_nanousd) for p in purchases] == [
        ("auto_topup", "pending", 50 * USD)
    ]
    await factory.run(lambda s: credits.watch_balance(s, org.id, settings))
    assert len(await factory.run(lambda s: repository.list_purchases(s, org.id, 10))) == 1  # one at a time
    assert await balance(factory, org) == 0  # offline: nothing until paid
    pid = purchases[0].id
    await factory.run(lambda s: credits.record_offline_payment(s, org.id, pid, reference="auto", actor=ACTOR))
    assert await balance(factory, org) == 50 * USD


async def test_promotion_expiry_takes_back_only_the_unspent_part(
    factory: Factory, settings: Settings
) -> None:
    org, _ = await billing_org(factory)
    now = utcnow()
    promo = await factory.run(
        lambda s: credits.grant_promotion(
            s,
            org.id,
            amount_nanousd=10 * USD,
            expires_at=now + timedelta(days=1),
            reason="welcome",
            actor=ACTOR,
            now=now - timedelta(seconds=5),
        )
    )
    await factory.run(
        lambda s: credits.adjust(
            s, org.id, amount_nanousd=20 * USD, reason="paid", settings=settings, actor=ACTOR
        )
    )
    from tokenboard.ledger.service import EntryKind

    await factory.run(lambda s: ledger.post(s, org.id, kind=EntryKind.consumption, amount_nanousd=-4 * USD))
    assert await factory.run(lambda s: credits.expire_promotions(s, org.id, settings=settings, now=now)) == 0
    later = now + timedelta(days=2)
    assert (
        await factory.run(lambda s: credits.expire_promotions(s, org.id, settings=settings, now=later))
        == 6 * USD
    )
    assert (
        await factory.run(lambda s: credits.expire_promotions(s, org.id, settings=settings, now=later)) == 0
    )
    assert await balance(factory, org) == 10 * USD + 20 * USD - 4 * USD - 6 * USD
    promotions = await factory.run(lambda s: repository.list_promotions(s, org.id))
    assert promotions[0].id == promo.id and promotions[0].expired_nanousd == 6 * USD
