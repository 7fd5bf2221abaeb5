"""Stripe webhooks end to end: events signed like Stripe's, delivered to the app, Stripe's API faked locally.

Valid, bad signature, missing header, stale timestamp, replayed, duplicated concurrently over real HTTP,
out of order, delayed payments, cumulative refunds, disputes, failed subscription payments; the secrets
never show in logs or responses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from tests.billing.conftest import ACTOR, USD, billing_org
from tests.support import fake_stripe
from tests.support.factories import Factory
from tests.support.fake_stripe import (
    FakeStripe,
    stripe_settings,
)
from tests.support.uvicorn_server import serving
from tokenboard.billing import repository
from tokenboard.billing.credits import StartedPurchase, credits
from tokenboard.billing.service import billing
from tokenboard.billing.subscriptions import subscriptions
from tokenboard.config import Settings
from tokenboard.kit.db import utcnow
from tokenboard.ledger.service import ledger
from tokenboard.models import CreditPurchase, Organization

WEBHOOK = "/api/v1/billing/stripe/webhook"


# the fake Stripe API's fixtures, for this module
fake_stripe_server = fake_stripe.fake_stripe_server
stripe_fake = fake_stripe.stripe_fake


@pytest.fixture
def settings(settings: Settings, stripe_fake: FakeStripe) -> Settings:
    return stripe_settings(settings, stripe_fake)


async def buy(factory: Factory, settings: Settings, usd: int = 50) -> tuple[Organization, CreditPurchase]:
    org, _ = await billing_org(factory)

    async def start(s: AsyncSession) -> StartedPurchase:
        return await credits.start_purchase(s, org, amount_nanousd=usd * USD, settings=settings, actor=ACTOR)

    return org, (await factory.run(start)).purchase


async def balance(factory: Factory, org: Organization) -> int:
    return (await factory.run(lambda s: ledger.balance(s, org.id))).balance_nanousd


async def purchase_of(factory: Factory, org: Organization, purchase: CreditPurchase) -> CreditPurchase:
    found = await factory.run(lambda s: repository.get_purchase(s, org.id, purchase.id))
    assert found is not None
    return found


async def deliver(
    client: AsyncClient, fake: FakeStripe, event: dict[str, Any], **sign: Any
) -> httpx.Response:
    payload, headers = fake.signed(event, **sign)
    return await client.post(WEBHOOK, content=payload, headers=headers)


async def test_completed_checkout_grants_once_and_a_replay_changes_nothing(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_fake: FakeStripe
) -> None:
    org, purchase = await buy(factory, settings)
    session = stripe_fake.complete_checkout(str(purchase.provider_reference))
    event = stripe_fake.event("checkout.session.completed", session)
    first = await deliver(client, stripe_fake, event)
    assert first.status_code == 200 and first.json()["outcome"] == "applied", first.text
    assert await balance(factory, org) == 50 * USD
    paid = await purchase_of(factory, org, purchase)
    assert paid.status == "paid"
    # the same event again (Stripe redelivers), and a different event about the same payment
    for again in (
        event,
        stripe_fake.event("payment_intent.succeeded", stripe_fake.intents[session["payment_intent"]]),
    ):
        replay = await deliver(client, stripe_fake, again)
        assert replay.status_code == 200 and replay.json()["outcome"] == "already applied", replay.text
    assert await balance(factory, org) == 50 * USD
    payments = await factory.run(lambda s: repository.list_payments(s, org.id, 10))
    assert [(p.provider, p.event_id, p.status) for p in payments] == [
        ("stripe", session["payment_intent"], "succeeded")
    ]
    # the customer and the card are remembered for later charges and the billing page
    profile = await factory.run(lambda s: billing.profile(s, org.id))
    assert profile.provider_customer_id == session["customer"]
    assert (profile.payment_method_brand, profile.payment_method_last4) == ("visa", "4242")


@pytest.mark.parametrize(
    "problem", ["bad signature", "other secret", "missing header", "stale timestamp", "garbled header"]
)
async def test_unverified_deliveries_are_refused_and_apply_nothing(
    problem: str, client: AsyncClient, factory: Factory, settings: Settings, stripe_fake: FakeStripe
) -> None:
    org, purchase = await buy(factory, settings)
    session = stripe_fake.complete_checkout(str(purchase.provider_reference))
    event = stripe_fake.event("checkout.session.completed", session)
    payload, headers = stripe_fake.signed(event)
    if problem == "bad signature":
        payload = payload.replace(b'"paid"', b'"paid" ')  # one byte changed after signing
    elif problem == "other secret":
        payload, headers = stripe_fake.signed(event, secret="whsec_someone_else")
    elif problem == "missing header":
        del headers["stripe-signature"]
    elif problem == "stale timestamp":  # a captured delivery replayed later than the tolerance
        payload, headers = stripe_fake.signed(event, timestamp=int(time.time()) - 301)
    else:
        headers["stripe-signature"] = "v1=abc,t=notanumber"
    response = await client.post(WEBHOOK, content=payload, headers=headers)
    assert response.status_code == 400, response.text
    assert await balance(factory, org) == 0
    assert (await purchase_of(factory, org, purchase)).status == "pending"
    # the genuine delivery still works afterwards
    assert (await deliver(client, stripe_fake, event)).status_code == 200
    assert await balance(factory, org) == 50 * USD


async def test_within_the_tolerance_is_accepted(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_fake: FakeStripe
) -> None:
    org, purchase = await buy(factory, settings)
    session = stripe_fake.complete_checkout(str(purchase.provider_reference))
    event = stripe_fake.event("checkout.session.completed", session)
    response = await deliver(client, stripe_fake, event, timestamp=int(time.time()) - 240)
    assert response.status_code == 200 and await balance(factory, org) == 50 * USD


async def test_the_same_event_delivered_ten_times_at_once_applies_once(
    app: Any, factory: Factory, settings: Settings, stripe_fake: FakeStripe
) -> None:
    org, purchase = await buy(factory, settings)
    session = stripe_fake.complete_checkout(str(purchase.provider_reference))
    payload, headers = stripe_fake.signed(stripe_fake.event("checkout.session.completed", session))
    async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as live:
        responses = await asyncio.gather(
            *(live.post(WEBHOOK, content=payload, headers=headers) for _ in range(10))
        )
    outcomes = sorted(r.json().get("outcome", r.status_code) for r in responses)
    assert all(r.status_code == 200 for r in responses), [(r.status_code, r.text[:200]) for r in responses]
    assert outcomes.count("applied") == 1 and outcomes.count("already applied") == 9, outcomes
    assert await balance(factory, org) == 50 * USD
    entries = await factory.run(lambda s: repository.ledger_entries_of_kinds(s, org.id, ("purchase",), 10))
    assert len(entries) == 1


async def test_delayed_payment_grants_nothing_until_it_succeeds(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_fake: FakeStripe
) -> None:
    org, purchase = await buy(factory, settings)
    session = stripe_fake.complete_checkout(str(purchase.provider_reference), paid=False)
    assert session["payment_status"] == "unpaid"
    r = await deliver(client, stripe_fake, stripe_fake.event("checkout.session.completed", session))
    assert r.status_code == 200 and r.json()["outcome"] == "awaiting payment"
    assert await balance(factory, org) == 0
    assert (await purchase_of(factory, org, purchase)).status == "pending"
    settled = stripe_fake.settle_async(str(purchase.provider_reference), succeeded=True)
    r = await deliver(
        client, stripe_fake, stripe_fake.event("checkout.session.async_payment_succeeded", settled)
    )
    assert r.json()["outcome"] == "applied"
    assert await balance(factory, org) == 50 * USD


async def test_delayed_payment_that_fails_marks_the_purchase_failed(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_fake: FakeStripe
) -> None:
    org, purchase = await buy(factory, settings)
    session = stripe_fake.complete_checkout(str(purchase.provider_reference), paid=False)
    failed = stripe_fake.settle_async(str(purchase.provider_reference), succeeded=False)
    # out of order: the failure arrives before the completion
    r = await deliver(client, stripe_fake, stripe_fake.event("checkout.session.async_payment_failed", failed))
    assert r.status_code == 200 and r.json()["outcome"] == "purchase failed"
    r = await deliver(client, stripe_fake, stripe_fake.event("checkout.session.completed", session))
    assert r.status_code == 200 and r.json()["outcome"] == "awaiting payment"
    assert await balance(factory, org) == 0
    assert (await purchase_of(factory, org, purchase)).status == "failed"
    invoice = await factory.run(lambda s: repository.get_invoice(s, org.id, purchase.invoice_id))  # type: ignore[arg-type]
    assert invoice is not None and invoice.status == "void"


async def test_async_success_before_completion_converges(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_fake: FakeStripe
) -> None:
    org, purchase = await buy(factory, settings)
    completed = stripe_fake.complete_checkout(str(purchase.provider_reference), paid=False)
    succeeded = stripe_fake.settle_async(str(purchase.provider_reference), succeeded=True)
    events = [
        stripe_fake.event("checkout.session.async_payment_succeeded", succeeded),
        stripe_fake.event("checkout.session.completed", completed),
    ]
    outcomes = [(await deliver(client, stripe_fake, e)).json()["outcome"] for e in events]
    assert outcomes == ["applied", "awaiting payment"]
    assert await balance(factory, org) == 50 * USD


async def test_refunds_claw_back_the_cumulative_difference_once(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_fake: FakeStripe
) -> None:
    org, purchase = await buy(factory, settings)
    session = stripe_fake.complete_checkout(str(purchase.provider_reference))
    charge_id = stripe_fake.charge_of(session["id"])["id"]
    partial = stripe_fake.event("charge.refunded", stripe_fake.refund_charge(charge_id, 2000))  # $20 of $50
    full = stripe_fake.event("charge.refunded", stripe_fake.refund_charge(charge_id, 3000))  # cumulative 5000

    # out of order: the partial refund arrives before the payment is known -> 409, Stripe retries later
    early = await deliver(client, stripe_fake, partial)
    assert early.status_code == 409, early.text
    assert await balance(factory, org) == 0
    assert (
        await deliver(client, stripe_fake, stripe_fake.event("checkout.session.completed", session))
    ).status_code == 200
    assert await balance(factory, org) == 50 * USD

    assert (await deliver(client, stripe_fake, partial)).json()["outcome"] == f"clawed back {20 * USD}"
    assert await balance(factory, org) == 30 * USD
    assert (await deliver(client, stripe_fake, partial)).json()["outcome"] == "nothing new refunded"
    assert (await deliver(client, stripe_fake, full)).json()["outcome"] == f"clawed back {30 * USD}"
    assert (await deliver(client, stripe_fake, full)).json()["outcome"] == "nothing new refunded"
    assert (await deliver(client, stripe_fake, partial)).json()["outcome"] == "nothing new refunded"
    assert await balance(factory, org) == 0
    refreshed = await purchase_of(factory, org, purchase)
    assert (refreshed.status, refreshed.refunded_nanousd) == ("refunded", 50 * USD)


async def test_full_refund_first_then_the_older_partial_one(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_fake: FakeStripe
) -> None:
    org, purchase = await buy(factory, settings)
    session = stripe_fake.complete_checkout(str(purchase.provider_reference))
    await deliver(client, stripe_fake, stripe_fake.event("checkout.session.completed", session))
    charge_id = stripe_fake.charge_of(session["id"])["id"]
    partial = stripe_fake.event("charge.refunded", stripe_fake.refund_charge(charge_id, 1000))
    full = stripe_fake.event("charge.refunded", stripe_fake.refund_charge(charge_id, 4000))
    assert (await deliver(client, stripe_fake, full)).json()["outcome"] == f"clawed back {50 * USD}"
    assert (await deliver(client, stripe_fake, partial)).json()["outcome"] == "nothing new refunded"
    assert await balance(factory, org) == 0


@pytest.mark.parametrize("won", [True, False])
async def test_dispute_claws_back_and_a_won_dispute_restores(
    won: bool, client: AsyncClient, factory: Factory, settings: Settings, stripe_fake: FakeStripe
) -> None:
    org, purchase = await buy(factory, settings)
    session = stripe_fake.complete_checkout(str(purchase.provider_reference))
    await deliver(client, stripe_fake, stripe_fake.event("checkout.session.completed", session))
    charge_id = stripe_fake.charge_of(session["id"])["id"]
    created = stripe_fake.event("charge.dispute.created", stripe_fake.open_dispute(charge_id, 5000))
    dispute_id = created["data"]["object"]["id"]
    closed = stripe_fake.event("charge.dispute.closed", stripe_fake.close_dispute(dispute_id, won=won))
    assert (await deliver(client, stripe_fake, created)).json()["outcome"] == "clawed back"
    assert await balance(factory, org) == 0
    assert (await deliver(client, stripe_fake, created)).json()["outcome"] == "already clawed back"
    r = await deliver(client, stripe_fake, closed)
    assert r.json()["outcome"] == ("already clawed back, restored" if won else "already clawed back")
    await deliver(client, stripe_fake, closed)  # replayed
    assert await balance(factory, org) == (50 * USD if won else 0)


async def test_dispute_closed_before_created_converges(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_fake: FakeStripe
) -> None:
    org, purchase = await buy(factory, settings)
    session = stripe_fake.complete_checkout(str(purchase.provider_reference))
    await deliver(client, stripe_fake, stripe_fake.event("checkout.session.completed", session))
    charge_id = stripe_fake.charge_of(session["id"])["id"]
    created = stripe_fake.event("charge.dispute.created", stripe_fake.open_dispute(charge_id, 2000))
    closed = stripe_fake.event(
        "charge.dispute.closed", stripe_fake.close_dispute(created["data"]["object"]["id"], won=True)
    )
    assert (await deliver(client, stripe_fake, closed)).json()["outcome"] == "clawed back, restored"
    assert (await deliver(client, stripe_fake, created)).json()["outcome"] == "already clawed back"
    assert await balance(factory, org) == 50 * USD


async def test_failed_subscription_charge_opens_grace_and_payment_restores(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_fake: FakeStripe
) -> None:
    org, _ = await billing_org(factory)
    await factory.run(lambda s: subscriptions.ensure(s, org, settings))
    invoice_id = await factory.run(lambda s: _open_subscription_invoice(s, org, settings))
    invoice = await factory.run(lambda s: repository.get_invoice(s, org.id, invoice_id))
    assert invoice is not None
    metadata = {"tokenboard_organization_id": str(org.id), "tokenboard_invoice_id": str(invoice_id)}
    stripe_invoice = {
        "id": "in_test_1",
        "object": "invoice",
        "amount_due": invoice.total_nanousd // 10_000_000,
        "amount_paid": 0,
        "currency": "usd",
        "metadata": metadata,
        "status": "open",
    }
    r = await deliver(client, stripe_fake, stripe_fake.event("invoice.payment_failed", stripe_invoice))
    assert r.status_code == 200 and r.json()["outcome"] == "payment failure recorded", r.text
    sub = await factory.run(lambda s: repository.get_subscription(s, org.id))
    assert sub is not None and sub.status == "past_due" and sub.grace_until is not None
    paid = {**stripe_invoice, "status": "paid", "amount_paid": stripe_invoice["amount_due"]}
    r = await deliver(client, stripe_fake, stripe_fake.event("invoice.paid", paid))
    assert r.json()["outcome"] == "applied", r.text
    sub = await factory.run(lambda s: repository.get_subscription(s, org.id))
    assert sub is not None and sub.status == "active"


async def _open_subscription_invoice(s: AsyncSession, org: Organization, settings: Settings) -> Any:
    from datetime import timedelta

    from tokenboard.billing.invoices import LineSpec, invoices

    invoice = await invoices.create(
        s,
        org.id,
        purpose="subscription",
        issuer=settings.invoice_issuer,
        lines=[LineSpec("seats", "Seats", 29 * USD)],
    )
    await invoices.finalize(
        s, invoice, profile=None, org_name=org.name, now=utcnow(), due_in=timedelta(days=7)
    )
    return invoice.id


async def test_events_that_are_not_ours_are_acknowledged(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_fake: FakeStripe
) -> None:
    for event in (
        stripe_fake.event("customer.created", {"id": "cus_1", "object": "customer"}),
        stripe_fake.event(
            "checkout.session.completed", {"id": "cs_x", "object": "checkout.session", "metadata": {}}
        ),
        stripe_fake.event(
            "charge.refunded",
            {
                "id": "ch_x",
                "object": "charge",
                "payment_intent": "pi_unknown",
                "amount": 100,
                "amount_refunded": 100,
            },
        ),
    ):
        r = await deliver(client, stripe_fake, event)
        assert r.status_code == 200 and r.json()["outcome"].startswith("ignored"), r.text


async def test_secrets_never_reach_logs_or_responses(
    client: AsyncClient,
    factory: Factory,
    settings: Settings,
    stripe_fake: FakeStripe,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    _, purchase = await buy(factory, settings)
    session = stripe_fake.complete_checkout(str(purchase.provider_reference))
    bodies = []
    event = stripe_fake.event("checkout.session.completed", session)
    bodies.append((await deliver(client, stripe_fake, event)).text)
    payload, headers = stripe_fake.signed(event, secret="whsec_wrong")
    bodies.append((await client.post(WEBHOOK, content=payload, headers=headers)).text)
    bodies.append((await deliver(client, stripe_fake, event, timestamp=1)).text)
    bodies.append(repr(settings))
    text = caplog.text + "".join(bodies)
    assert "stripe event" in caplog.text  # the webhook did log: the canary was looked for in real output
    for canary in ("CANARYsecretKEY", "CANARYwebhookSECRET"):
        assert canary in stripe_fake.secret_key + stripe_fake.webhook_secret
        assert canary not in text
