"""A real HTTP server on 127.0.0.1 standing in for the Stripe API, and webhook payloads signed like Stripe's.

Start it with ``with fake_stripe() as fake:`` (or the ``stripe_fake`` fixture) and point the provider at
``fake.base_url`` (``TOKENBOARD_STRIPE_API_BASE``). It speaks Stripe's wire format: form-encoded bodies
(``metadata[key]=value``, ``line_items[0][price_data][unit_amount]=1000``), ``Authorization: Bearer
<secret key>`` checked against ``fake.secret_key``, ``Idempotency-Key`` honoured (the same key replays the
first response with ``Idempotent-Replayed: true``; the same key with other parameters is a 400
``idempotency_error``), and Stripe-shaped objects and errors (``{"error": {"type", "code", "message"}}``).

Endpoints: ``POST /v1/checkout/sessions``, ``GET /v1/checkout/sessions/{id}``,
``GET /v1/customers/{id}/payment_methods``, ``POST /v1/payment_intents``, ``GET /v1/payment_intents/{id}``,
``POST /v1/refunds``.
Every request is recorded in ``fake.requests`` (method, path, headers, the flat form as sent, the
idempotency key); ``fake.reset()`` forgets requests and objects.

What a customer does on Stripe's side is played by the test: ``complete_checkout`` (paid, or unpaid for
a delayed method such as a bank debit), ``settle_async`` (that payment later succeeds or fails),
``refund_charge`` (Dashboard refund: ``amount_refunded`` is cumulative), ``open_dispute`` and
``close_dispute``. ``event(type, object)`` wraps an object in a Stripe event, and ``sign(payload, secret)``
computes the ``Stripe-Signature`` header exactly like Stripe: ``t=<unix time>,v1=<hex HMAC-SHA256 of
"<t>.<payload>" keyed with the whsec secret>``.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.uvicorn_server import serving_in_thread

SECRET_KEY = "sk_test_CANARYsecretKEY_" + "0" * 16
WEBHOOK_SECRET = "whsec_CANARYwebhookSECRET_" + "1" * 16
API_VERSION = "2026-10-28.endive"

_counter = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_test_{next(_counter):06d}{secrets.token_hex(6)}"


def sign(payload: bytes | str, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe sends for ``payload`` (the exact bytes of the body)."""
    body = payload.decode() if isinstance(payload, bytes) else payload
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding back to objects: ``a[b][0][c]=1`` -> ``{"a": {"b": [{"c": "1"}]}}``."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node: Any = root
        for part, nxt in itertools.pairwise(parts):
            child_is_list = nxt.isdigit()
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append([] if child_is_list else {})
                node = node[index]
            else:
                node = node.setdefault(part, [] if child_is_list else {})
        last = parts[-1]
        if isinstance(node, list):
            index = int(last)
            while len(node) <= index:
                node.append(None)
            node[index] = value
        else:
            node[last] = value
    return root


@dataclass
class StripeRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    form: dict[str, str]  # exactly as sent, flat: {"metadata[tokenboard_purchase_id]": "..."}
    idempotency_key: str | None
    api_key: str | None
    replayed: bool = False

    @property
    def params(self) -> dict[str, Any]:
        return unflatten(list(self.form.items()))


class StripeApiError(Exception):
    def __init__(self, status: int, type_: str, message: str, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.body = status, {"type": type_, "message": message, **extra}
        if code:
            self.body["code"] = code


@dataclass
class Card:
    brand: str = "visa"
    last4: str = "4242"
    exp_month: int = 4
    exp_year: int = 2030
    declines: bool = False  # off-session charges on it fail with card_declined


@dataclass
class FakeStripe:
    secret_key: str = SECRET_KEY
    webhook_secret: str = WEBHOOK_SECRET
    base_url: str = ""
    requests: list[StripeRequest] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    cards: dict[str, Card] = field(default_factory=dict)  # payment method id -> card behaviour
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    disputes: dict[str, dict[str, Any]] = field(default_factory=dict)
    _idempotent: dict[str, tuple[str, dict[str, str], int, dict[str, Any]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self._lock:
            for store in (
                self.requests,
                self.sessions,
                self.customers,
                self.payment_methods,
                self.cards,
                self.intents,
                self.charges,
                self.refunds,
                self.disputes,
                self._idempotent,
            ):
                store.clear()

    # ------------------------------------------------------------------ the HTTP side

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/checkout/sessions", self._endpoint(self._create_session), methods=["POST"]),
                Route("/v1/checkout/sessions/{id}", self._endpoint(self._get_session), methods=["GET"]),
                Route(
                    "/v1/customers/{id}/payment_methods",
                    self._endpoint(self._list_payment_methods),
                    methods=["GET"],
                ),
                Route("/v1/payment_intents", self._endpoint(self._create_intent), methods=["POST"]),
                Route("/v1/payment_intents/{id}", self._endpoint(self._get_intent), methods=["GET"]),
                Route("/v1/refunds", self._endpoint(self._create_refund), methods=["POST"]),
            ]
        )

    def _endpoint(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            raw = (await request.body()).decode()
            query = list(parse_qsl(request.url.query, keep_blank_values=True))
            pairs = list(parse_qsl(raw, keep_blank_values=True)) + query
            headers = {k.lower(): v for k, v in request.headers.items()}
            auth = headers.get("authorization", "")
            record = StripeRequest(
                method=request.method,
                path=request.url.path,
                headers=headers,
                form=dict(pairs),
                idempotency_key=headers.get("idempotency-key"),
                api_key=auth[7:] if auth.lower().startswith("bearer ") else None,
            )
            with self._lock:
                self.requests.append(record)
                status, body, replayed = self._handle(record, handler, dict(request.path_params))
            record.replayed = replayed
            reply_headers = {"request-id": f"req_{secrets.token_hex(8)}"}
            if replayed:
                reply_headers["idempotent-replayed"] = "true"
            return JSONResponse(body, status_code=status, headers=reply_headers)

        return endpoint

    def _handle(
        self, record: StripeRequest, handler: Any, path_params: dict[str, str]
    ) -> tuple[int, dict[str, Any], bool]:
        if record.api_key is None:
            return 401, _error("invalid_request_error", "You did not provide an API key."), False
        if not hmac.compare_digest(record.api_key, self.secret_key):
            masked = "*" * max(len(record.api_key) - 4, 0) + record.api_key[-4:]
            return 401, _error("invalid_request_error", f"Invalid API Key provided: {masked}"), False
        key = record.idempotency_key if record.method == "POST" else None
        if key is not None and key in self._idempotent:
            path, form, status, body = self._idempotent[key]
            if path != record.path or form != record.form:
                message = (
                    "Keys for idempotent requests can only be used with the same parameters they were "
                    "first used with."
                )
                return 400, _error("idempotency_error", message), False
            return status, copy.deepcopy(body), True
        try:
            status, body = 200, handler(record.params, **path_params)
        except StripeApiError as exc:
            status, body = exc.status, {"error": exc.body}
        if key is not None and status < 500:
            self._idempotent[key] = (record.path, record.form, status, copy.deepcopy(body))
        return status, body, False

    def _create_session(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("mode") != "payment":
            raise StripeApiError(400, "invalid_request_error", "Only mode=payment here.", param="mode")
        items = p.get("line_items") or []
        if not items:
            raise StripeApiError(400, "invalid_request_error", "Missing required param: line_items.")
        total = sum(int(i["price_data"]["unit_amount"]) * int(i.get("quantity", 1)) for i in items)
        if total < 50:
            raise StripeApiError(
                400,
                "invalid_request_error",
                "The Checkout Session's total amount due must add up to at least $0.50 usd",
                code="amount_too_small",
            )
        customer = p.get("customer")
        if customer is not None and customer not in self.customers:
            raise StripeApiError(
                400,
                "invalid_request_error",
                f"No such customer: '{customer}'",
                code="resource_missing",
                param="customer",
            )
        session_id = new_id("cs")
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": total,
            "amount_total": total,
            "cancel_url": p.get("cancel_url"),
            "client_reference_id": p.get("client_reference_id"),
            "created": int(time.time()),
            "currency": items[0]["price_data"]["currency"],
            "customer": customer,
            "customer_creation": p.get("customer_creation"),
            "customer_email": p.get("customer_email"),
            "expires_at": int(time.time()) + 86_400,
            "livemode": False,
            "metadata": p.get("metadata", {}),
            "mode": "payment",
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": p.get("success_url"),
            "url": f"{self.base_url}/c/pay/{session_id}",
            "_payment_intent_data": p.get("payment_intent_data", {}),
        }
        self.sessions[session_id] = session
        return _public(session)

    def _get_session(self, p: dict[str, Any], id: str) -> dict[str, Any]:
        if id not in self.sessions:
            raise StripeApiError(
                404, "invalid_request_error", f"No such checkout.session: '{id}'", code="resource_missing"
            )
        return _public(self.sessions[id])

    def _list_payment_methods(self, p: dict[str, Any], id: str) -> dict[str, Any]:
        if id not in self.customers:
            raise StripeApiError(
                404, "invalid_request_error", f"No such customer: '{id}'", code="resource_missing"
            )
        methods = [m for m in self.payment_methods.values() if m["customer"] == id]
        if p.get("type"):
            methods = [m for m in methods if m["type"] == p["type"]]
        methods.sort(key=lambda m: m["created"], reverse=True)
        limit = int(p.get("limit", 10))
        return {
            "object": "list",
            "data": methods[:limit],
            "has_more": len(methods) > limit,
            "url": f"/v1/customers/{id}/payment_methods",
        }

    def _create_intent(self, p: dict[str, Any]) -> dict[str, Any]:
        customer, method = p.get("customer"), p.get("payment_method")
        if customer not in self.customers:
            raise StripeApiError(
                400,
                "invalid_request_error",
                f"No such customer: '{customer}'",
                code="resource_missing",
                param="customer",
            )
        if method not in self.payment_methods or self.payment_methods[method]["customer"] != customer:
            raise StripeApiError(
                400,
                "invalid_request_error",
                f"No such PaymentMethod: '{method}'",
                code="resource_missing",
                param="payment_method",
            )
        intent = self._intent(int(p["amount"]), p["currency"], customer, method, p.get("metadata", {}))
        intent["description"] = p.get("description")
        if p.get("confirm") == "true":
            if self.cards[method].declines:
                intent["status"] = "requires_payment_method"
                intent["last_payment_error"] = {
                    "type": "card_error",
                    "code": "card_declined",
                    "decline_code": "insufficient_funds",
                }
                raise StripeApiError(
                    402,
                    "card_error",
                    "Your card has insufficient funds.",
                    code="card_declined",
                    decline_code="insufficient_funds",
                    payment_intent=copy.deepcopy(intent),
                )
            self._succeed(intent)
        return copy.deepcopy(intent)

    def _get_intent(self, p: dict[str, Any], id: str) -> dict[str, Any]:
        if id not in self.intents:
            raise StripeApiError(
                404, "invalid_request_error", f"No such payment_intent: '{id}'", code="resource_missing"
            )
        return copy.deepcopy(self.intents[id])

    def _create_refund(self, p: dict[str, Any]) -> dict[str, Any]:
        intent = self.intents.get(p.get("payment_intent", ""))
        if intent is None or not intent.get("latest_charge"):
            raise StripeApiError(
                400,
                "invalid_request_error",
                f"No such payment_intent: '{p.get('payment_intent')}'",
                code="resource_missing",
                param="payment_intent",
            )
        charge = self.charges[intent["latest_charge"]]
        amount = int(p.get("amount", charge["amount"] - charge["amount_refunded"]))
        if amount <= 0 or charge["amount_refunded"] + amount > charge["amount"]:
            raise StripeApiError(
                400,
                "invalid_request_error",
                f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                f"({charge['amount'] - charge['amount_refunded']})",
                code="amount_too_large",
            )
        return self._refund(charge, amount, p.get("metadata", {}))

    # ------------------------------------------------------------------ Stripe's side, played by tests

    def add_customer(self, card: Card | None = None, email: str | None = None) -> str:
        with self._lock:
            customer_id = new_id("cus")
            self.customers[customer_id] = {
                "id": customer_id,
                "object": "customer",
                "email": email,
                "livemode": False,
                "metadata": {},
            }
            self._attach(customer_id, card or Card())
            return customer_id

    def complete_checkout(
        self, session_id: str, *, paid: bool = True, card: Card | None = None
    ) -> dict[str, Any]:
        """The buyer finishes Checkout: paid at once (cards), or ``unpaid`` for a delayed method."""
        with self._lock:
            session = self.sessions[session_id]
            customer = session["customer"]
            if customer is None:
                customer = new_id("cus")
                self.customers[customer] = {
                    "id": customer,
                    "object": "customer",
                    "email": session["customer_email"],
                    "livemode": False,
                    "metadata": {},
                }
            method = self._attach(customer, card or Card())
            data = session["_payment_intent_data"]
            intent = self._intent(
                session["amount_total"], session["currency"], customer, method, data.get("metadata", {})
            )
            if paid:
                self._succeed(intent)
            else:
                intent["status"] = "processing"
            session.update(
                status="complete",
                customer=customer,
                payment_intent=intent["id"],
                payment_status="paid" if paid else "unpaid",
            )
            return _public(session)

    def settle_async(self, session_id: str, *, succeeded: bool) -> dict[str, Any]:
        """The delayed payment of a completed session clears (async_payment_succeeded) or fails."""
        with self._lock:
            session = self.sessions[session_id]
            intent = self.intents[session["payment_intent"]]
            if succeeded:
                self._succeed(intent)
                session["payment_status"] = "paid"
            else:
                intent["status"] = "requires_payment_method"
            return _public(session)

    def charge_of(self, session_or_intent_id: str) -> dict[str, Any]:
        intent_id = (
            self.sessions[session_or_intent_id]["payment_intent"]
            if session_or_intent_id.startswith("cs_")
            else session_or_intent_id
        )
        return copy.deepcopy(self.charges[self.intents[intent_id]["latest_charge"]])

    def refund_charge(self, charge_id: str, amount: int) -> dict[str, Any]:
        """A refund made on the Dashboard; returns the charge as ``charge.refunded`` carries it."""
        with self._lock:
            charge = self.charges[charge_id]
            self._refund(charge, amount, {})
            return copy.deepcopy(charge)

    def open_dispute(self, charge_id: str, amount: int | None = None) -> dict[str, Any]:
        with self._lock:
            charge = self.charges[charge_id]
            dispute = {
                "id": new_id("dp"),
                "object": "dispute",
                "amount": charge["amount"] if amount is None else amount,
                "charge": charge_id,
                "currency": charge["currency"],
                "created": int(time.time()),
                "livemode": False,
                "metadata": {},
                "payment_intent": charge["payment_intent"],
                "reason": "fraudulent",
                "status": "needs_response",
            }
            charge["disputed"] = True
            self.disputes[dispute["id"]] = dispute
            return copy.deepcopy(dispute)

    def close_dispute(self, dispute_id: str, *, won: bool) -> dict[str, Any]:
        with self._lock:
            dispute = self.disputes[dispute_id]
            dispute["status"] = "won" if won else "lost"
            return copy.deepcopy(dispute)

    def event(
        self, type_: str, obj: dict[str, Any], *, event_id: str | None = None, created: int | None = None
    ) -> dict[str, Any]:
        return {
            "id": event_id or new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()) if created is None else created,
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type_,
        }

    def signed(
        self, event: dict[str, Any], *, secret: str | None = None, timestamp: int | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers Stripe would POST to the webhook endpoint for ``event``."""
        payload = json.dumps(event, indent=2).encode()  # Stripe sends pretty-printed JSON
        return payload, {
            "content-type": "application/json; charset=utf-8",
            "stripe-signature": sign(payload, secret or self.webhook_secret, timestamp),
            "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }

    def posts(self, path: str) -> list[StripeRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path == path]

    # ------------------------------------------------------------------ internals

    def _attach(self, customer: str, card: Card) -> str:
        method_id = new_id("pm")
        self.payment_methods[method_id] = {
            "id": method_id,
            "object": "payment_method",
            "type": "card",
            "card": {
                "brand": card.brand,
                "last4": card.last4,
                "exp_month": card.exp_month,
                "exp_year": card.exp_year,
                "country": "US",
                "funding": "credit",
            },
            "customer": customer,
            "created": time.time_ns(),
            "livemode": False,
            "metadata": {},
        }
        self.cards[method_id] = card
        return method_id

    def _intent(
        self, amount: int, currency: str, customer: str, method: str, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        intent = {
            "id": new_id("pi"),
            "object": "payment_intent",
            "amount": amount,
            "amount_received": 0,
            "currency": currency,
            "customer": customer,
            "payment_method": method,
            "status": "requires_confirmation",
            "metadata": metadata,
            "latest_charge": None,
            "created": int(time.time()),
            "livemode": False,
        }
        self.intents[intent["id"]] = intent
        return intent

    def _succeed(self, intent: dict[str, Any]) -> None:
        charge = {
            "id": new_id("ch"),
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": intent["amount"],
            "amount_refunded": 0,
            "captured": True,
            "currency": intent["currency"],
            "customer": intent["customer"],
            "disputed": False,
            "livemode": False,
            "metadata": {},
            "paid": True,
            "payment_intent": intent["id"],
            "payment_method": intent["payment_method"],
            "refunded": False,
            "status": "succeeded",
            "created": int(time.time()),
        }
        self.charges[charge["id"]] = charge
        intent.update(status="succeeded", amount_received=intent["amount"], latest_charge=charge["id"])

    def _refund(self, charge: dict[str, Any], amount: int, metadata: dict[str, Any]) -> dict[str, Any]:
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        refund = {
            "id": new_id("re"),
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "currency": charge["currency"],
            "created": int(time.time()),
            "metadata": metadata,
            "payment_intent": charge["payment_intent"],
            "status": "succeeded",
        }
        self.refunds[refund["id"]] = refund
        return copy.deepcopy(refund)


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}


def _error(type_: str, message: str) -> dict[str, Any]:
    return {"error": {"type": type_, "message": message}}


@contextmanager
def fake_stripe(secret_key: str = SECRET_KEY, webhook_secret: str = WEBHOOK_SECRET) -> Iterator[FakeStripe]:
    """Serve a ``FakeStripe`` with uvicorn on a free loopback port, in a background thread."""
    fake = FakeStripe(secret_key=secret_key, webhook_secret=webhook_secret)
    with serving_in_thread(fake.app, "fake-stripe") as base_url:
        fake.base_url = base_url
        yield fake


@pytest.fixture(scope="session")
def fake_stripe_server() -> Iterator[FakeStripe]:
    with fake_stripe() as fake:
        yield fake


@pytest.fixture
def stripe_fake(fake_stripe_server: FakeStripe) -> FakeStripe:
    fake_stripe_server.reset()
    return fake_stripe_server


def stripe_settings(settings: Any, fake: FakeStripe, **overrides: Any) -> Any:
    """``settings`` with the Stripe provider pointed at ``fake`` (its keys as SecretStr)."""
    from pydantic import SecretStr

    from tokenboard.config import PaymentProviderKind

    return settings.model_copy(
        update={
            "payment_provider": PaymentProviderKind.stripe,
            "stripe_secret_key": SecretStr(fake.secret_key),
            "stripe_webhook_secret": SecretStr(fake.webhook_secret),
            "stripe_api_base": fake.base_url,
            **overrides,
        }
    )
