"""The Stripe provider through the official SDK, against a local server standing in for the Stripe API."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import stripe
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from tests.billing.conftest import ACTOR, USD, billing_org
from tests.support import fake_stripe
from tests.support.factories import Factory
from tests.support.fake_stripe import (
    Card,
    FakeStripe,
    sign,
    stripe_settings,
    unflatten,
)
from tokenboard.billing.credits import StartedPurchase, credits
from tokenboard.billing.providers import provider_for
from tokenboard.billing.providers.base import ChargeRequest, ChargeStatus, RefundRequest
from tokenboard.billing.providers.stripe import StripeNotConfigured, StripeProvider, to_cents
from tokenboard.config import Settings

# the fake Stripe API's fixtures, for this module
fake_stripe_server = fake_stripe.fake_stripe_server
stripe_fake = fake_stripe.stripe_fake


@pytest.fixture
def settings(settings: Settings, stripe_fake: FakeStripe) -> Settings:
    return stripe_settings(settings, stripe_fake)


def test_the_provider_is_chosen_by_configuration(settings: Settings) -> None:
    provider = provider_for(settings)
    assert isinstance(provider, StripeProvider) and provider.name == "stripe"
    with pytest.raises(StripeNotConfigured):
        provider_for(settings.model_copy(update={"stripe_secret_key": None}))


def test_cents_round_half_even_once() -> None:
    assert to_cents(50 * USD) == 5000
    assert to_cents(9_321_428_571) == 932  # $9.321428571
    assert to_cents(5_000_000) == 0 and to_cents(15_000_000) == 2 and to_cents(25_000_000) == 2
    assert to_cents(15_000_001) == 2 and to_cents(24_999_999) == 2


async def test_checkout_session_through_the_sdk(
    factory: Factory, settings: Settings, stripe_fake: FakeStripe
) -> None:
    org, _ = await billing_org(factory)

    async def buy(s: AsyncSession) -> StartedPurchase:
        return await credits.start_purchase(s, org, amount_nanousd=50 * USD, settings=settings, actor=ACTOR)

    started = await factory.run(buy)
    purchase = started.purchase
    assert purchase.provider == "stripe" and purchase.status == "pending"
    assert started.checkout_url and started.checkout_url.startswith(f"{stripe_fake.base_url}/c/pay/cs_test_")
    assert purchase.provider_reference in stripe_fake.sessions

    [sent] = stripe_fake.posts("/v1/checkout/sessions")
    assert sent.api_key == stripe_fake.secret_key
    assert sent.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert sent.idempotency_key == f"checkout:{purchase.id}"
    form = sent.form  # exactly as the SDK encoded it
    assert form["mode"] == "payment"
    assert form["client_reference_id"] == str(purchase.id)
    assert form["metadata[tokenboard_organization_id]"] == str(org.id)
    assert form["metadata[tokenboard_purchase_id]"] == str(purchase.id)
    assert form["payment_intent_data[metadata][tokenboard_purchase_id]"] == str(purchase.id)
    assert form["payment_intent_data[setup_future_usage]"] == "off_session"
    assert form["line_items[0][price_data][currency]"] == "usd"
    assert form["line_items[0][price_data][unit_amount]"] == "5000"
    assert form["customer_creation"] == "always"
    assert form["success_url"].endswith(f"/billing?purchase={purchase.id}")

    # The SDK retries with the same idempotency key: Stripe replays the session, no second one.
    provider = provider_for(settings)
    assert isinstance(provider, StripeProvider)
    async with provider.client() as client:
        again = await client.v1.checkout.sessions.create_async(
            unflatten(list(form.items())),  # type: ignore[arg-type]
            {"idempotency_key": sent.idempotency_key or ""},
        )
    assert again.id == purchase.provider_reference and len(stripe_fake.sessions) == 1
    assert stripe_fake.requests[-1].replayed

    # Once the org has a Stripe customer (its first payment), later checkouts reuse it.
    customer = stripe_fake.add_customer(email="billing@example.com")

    async def remember_customer(s: AsyncSession) -> None:
        from tokenboard.billing.service import billing

        profile = await billing.profile(s, org.id)
        profile.provider_customer_id = customer

    await factory.run(remember_customer)
    second = await factory.run(buy)
    sent_again = stripe_fake.posts("/v1/checkout/sessions")[-1]
    assert sent_again.idempotency_key == f"checkout:{second.purchase.id}"
    assert sent_again.form["customer"] == customer and "customer_creation" not in sent_again.form


async def test_charge_refund_and_card_on_the_saved_method(
    settings: Settings, stripe_fake: FakeStripe
) -> None:
    provider = provider_for(settings)
    assert isinstance(provider, StripeProvider)
    org_id, invoice_id = uuid.uuid4(), uuid.uuid4()
    customer = stripe_fake.add_customer(Card(brand="mastercard", last4="4444", exp_month=12, exp_year=2031))
    request = ChargeRequest(
        organization_id=org_id,
        amount_nanousd=29 * USD,
        description="Tokenboard Teams, invoice TB-2026-000001",
        idempotency_key=f"invoice:{invoice_id}",
        invoice_id=invoice_id,
        customer_id=customer,
    )
    result = await provider.charge(request)
    assert result.status == ChargeStatus.succeeded and result.event_id and result.event_id.startswith("pi_")
    [sent] = stripe_fake.posts("/v1/payment_intents")
    assert sent.idempotency_key == f"charge:invoice:{invoice_id}"
    assert (
        sent.form["amount"] == "2900"
        and sent.form["off_session"] == "true"
        and sent.form["confirm"] == "true"
    )
    assert sent.form["metadata[tokenboard_invoice_id]"] == str(invoice_id)
    assert (await provider.charge(request)).event_id == result.event_id  # same key: the same payment
    assert len(stripe_fake.intents) == 1

    assert await provider.saved_card(customer) == ("mastercard", "4444", 12, 2031)
    label = provider.payment_method("mastercard", "4444", 12, 2031).label
    assert label == "Mastercard ending in 4444, expires 12/2031"

    refund = await provider.refund(
        RefundRequest(org_id, result.event_id, 10 * USD, "goodwill", idempotency_key="refund:x:0:10")
    )
    assert refund.status == ChargeStatus.succeeded and refund.refund_id.startswith("re_")
    assert stripe_fake.charge_of(result.event_id)["amount_refunded"] == 1000

    declining = stripe_fake.add_customer(Card(declines=True))
    failed = await provider.charge(
        ChargeRequest(org_id, 29 * USD, "x", idempotency_key="invoice:other", customer_id=declining)
    )
    assert (
        failed.status == ChargeStatus.failed
        and "insufficient_funds" in failed.message
        and failed.provider_reference
    )
    no_card = await provider.charge(ChargeRequest(org_id, 29 * USD, "x", idempotency_key="invoice:none"))
    assert no_card.status == ChargeStatus.failed


async def test_a_wrong_key_is_refused_like_stripe_does(settings: Settings, stripe_fake: FakeStripe) -> None:
    wrong = StripeProvider(settings.model_copy(update={"stripe_secret_key": SecretStr("sk_test_wrong_1234")}))
    with pytest.raises(stripe.AuthenticationError) as caught:
        await wrong.saved_card("cus_x")
    assert "1234" in str(caught.value) and "sk_test_wrong" not in str(caught.value)


def test_the_sdk_verifier_accepts_our_signatures(stripe_fake: FakeStripe) -> None:
    event = stripe_fake.event("checkout.session.completed", {"id": "cs_test_1", "object": "checkout.session"})
    payload, headers = stripe_fake.signed(event)
    header = headers["stripe-signature"]
    assert header.startswith("t=") and ",v1=" in header
    assert stripe.WebhookSignature.verify_header(payload.decode(), header, stripe_fake.webhook_secret, 300)
    built = stripe.Webhook.construct_event(payload, header, stripe_fake.webhook_secret, 300)
    assert built.id == event["id"] and built.type == "checkout.session.completed"
    # and ours equals the SDK's own test signer, byte for byte
    t = int(time.time())
    assert sign(payload, "whsec_x", t) == stripe.WebhookSignature.generate_signature_header(
        payload.decode(), "whsec_x", t
    )
    for bad in (
        sign(payload, "whsec_other"),
        sign(payload + b" ", stripe_fake.webhook_secret),
        sign(payload, stripe_fake.webhook_secret, int(time.time()) - 301),
    ):
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.WebhookSignature.verify_header(payload.decode(), bad, stripe_fake.webhook_secret, 300)
    assert json.loads(payload) == event
