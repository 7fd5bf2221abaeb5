"""The gateway end to end: official SDKs -> live gateway -> fake provider on loopback, on both databases."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.gateway.conftest import (
    UPSTREAM_ANTHROPIC_KEY,
    UPSTREAM_OPENAI_KEY,
    USD,
    LiveGateway,
    check_hold,
    seed,
    wait_for_events,
)
from tests.support.factories import Factory
from tests.support.fake_upstream import FakeUpstream, expected_usage
from tokenboard.catalog.pricing import anthropic_usage, compute_cost, openai_usage
from tokenboard.kit.db import utcnow
from tokenboard.ledger.service import ledger

CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello to the gateway"}]}


async def _prices(factory: Factory, model_id: str) -> object:
    from tokenboard.catalog.service import CatalogCache

    cache = CatalogCache()
    await factory.run(cache.load)
    entry = cache.get(model_id)
    assert entry is not None
    return entry.price_at(utcnow())


async def _balance(factory: Factory, org_id: object) -> object:
    return await factory.run(lambda s: ledger.balance(s, org_id))


async def test_openai_sdk_chat_is_forwarded_metered_and_billed(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream
) -> None:
    tenant = await seed(factory)
    client = openai.AsyncOpenAI(base_url=live_gateway.v1, api_key=tenant.key)
    raw = await client.chat.completions.with_raw_response.create(**CHAT, max_tokens=50)
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.model == "openai/gpt-4o-mini"
    assert float(raw.headers["x-tokenboard-overhead-ms"]) >= 0
    await client.close()
    sent = upstream.requests[-1]
    assert sent.api_key == UPSTREAM_OPENAI_KEY and tenant.key not in str(sent.headers)
    assert sent.body["model"] == "gpt-4o-mini"
    events = await wait_for_events(factory, tenant.setup.id, 1)
    event = events[0]
    usage = expected_usage("chat", {**CHAT, "max_tokens": 50})
    expected = compute_cost(await _prices(factory, "openai/gpt-4o-mini"), openai_usage(usage)).total_nanousd
    assert event.cost_nanousd == expected > 0
    assert (event.input_tokens + event.cached_input_tokens, event.output_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert (
        event.api_key_id == tenant.setup.api_key.id and event.status_code == 200 and not event.usage_estimated
    )
    # The same batch kept the rollups the usage pages read current.
    from tokenboard.usage import repository as usage_repository

    summary = await factory.run(lambda s: usage_repository.summary(s, tenant.setup.id, None, None))
    assert (summary.requests, summary.cost_nanousd, summary.output_tokens) == (
        1,
        expected,
        usage["completion_tokens"],
    )
    await live_gateway.call(live_gateway.app.state.gateway.writer.drain)
    leased = live_gateway.app.state.gateway.leases.held(tenant.setup.id)
    held = await _balance(factory, tenant.setup.id)
    assert held.reserved_nanousd == leased > 0  # the process's lease, not a hold per request
    await live_gateway.give_back_leases()
    balance = await _balance(factory, tenant.setup.id)
    assert balance.balance_nanousd == 100 * USD - expected and balance.reserved_nanousd == 0
    await factory.run(lambda s: ledger.check_invariants(s, tenant.setup.id))


async def test_openai_stream_asks_upstream_for_usage_and_hides_it_unless_asked(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream
) -> None:
    tenant = await seed(factory)
    client = openai.AsyncOpenAI(base_url=live_gateway.v1, api_key=tenant.key)
    chunks = [c async for c in await client.chat.completions.create(**CHAT, stream=True)]
    assert all(c.usage is None for c in chunks) and "".join(
        c.choices[0].delta.content or "" for c in chunks if c.choices
    )
    assert upstream.requests[-1].body["stream_options"] == {"include_usage": True}
    with_usage = [
        c
        async for c in await client.chat.completions.create(
            **CHAT, stream=True, stream_options={"include_usage": True}
        )
    ]
    assert with_usage[-1].usage is not None and with_usage[-1].usage.completion_tokens > 0
    await client.close()
    events = await wait_for_events(factory, tenant.setup.id, 2)
    assert all(e.stream and e.cost_nanousd > 0 and not e.usage_estimated for e in events)


async def test_answers_carry_the_security_headers_once_and_streams_end_cleanly(
    factory: Factory, live_gateway: LiveGateway
) -> None:
    tenant = await seed(factory)
    auth = {"authorization": f"Bearer {tenant.key}"}
    async with httpx.AsyncClient(base_url=live_gateway.url, timeout=20) as http:
        plain = await http.post("/v1/chat/completions", json=CHAT, headers=auth)
        async with http.stream(
            "POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth
        ) as streamed:
            body = b"".join([chunk async for chunk in streamed.aiter_bytes()])
    for response in (plain, streamed):
        assert response.status_code == 200
        assert response.headers.get_list("x-frame-options") == ["DENY"]
        assert response.headers.get_list("x-content-type-options") == ["nosniff"]
    assert plain.json()["choices"][0]["message"]["content"]
    # the upstream's last event and the end of the body went out together; nothing is lost or repeated
    assert body.endswith(b"data: [DONE]\n\n") and body.count(b"data: [DONE]") == 1
    events = await wait_for_events(factory, tenant.setup.id, 2)
    assert sorted(e.stream for e in events) == [False, True]
    assert all(e.status_code == 200 and not e.usage_estimated and e.cost_nanousd > 0 for e in events)


@pytest.mark.parametrize(
    ("stream", "behaviour"), [(False, None), (True, "end_delay_ms=50"), (True, "end_with_last=true")]
)
async def test_usage_is_taken_before_the_answer_ends(
    stream: bool,
    behaviour: str | None,
    factory: Factory,
    live_gateway: LiveGateway,
    upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client that has its whole answer may take the request as done: by then its usage is in the journal,
    which survives a crash, never after. The event is queued for the database once, just after the end goes
    out (the client does not wait for that). A stream whose last event comes with the upstream's end ends
    the client's response with that event; one whose end comes apart, with an end of its own."""
    from tokenboard.gateway.asgi import GatewayFrontDoor
    from tokenboard.gateway.metering import UsageWriter

    tenant = await seed(factory)
    upstream.default_behaviour = behaviour
    seen: list[str] = []
    serve, journal, enqueue = GatewayFrontDoor.serve, UsageWriter.journal_record, UsageWriter.enqueue

    async def noting_serve(
        self: GatewayFrontDoor, route: object, scope: object, receive: object, send: Any
    ) -> None:
        async def noting_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                seen.append("end" if message.get("body") else "end alone")
            await send(message)

        await serve(self, route, scope, receive, noting_send)  # type: ignore[arg-type]

    def noting_journal(self: UsageWriter, record: Any) -> None:
        assert self.journal is not None  # the live gateway journals, as `tokenboard serve` does
        seen.append("journaled")
        journal(self, record)

    def noting_enqueue(self: UsageWriter, record: Any) -> None:
        seen.append("queued")
        enqueue(self, record)

    monkeypatch.setattr(GatewayFrontDoor, "serve", noting_serve)
    monkeypatch.setattr(UsageWriter, "journal_record", noting_journal)
    monkeypatch.setattr(UsageWriter, "enqueue", noting_enqueue)
    async with httpx.AsyncClient(base_url=live_gateway.url, timeout=20) as http:
        r = await http.post(
            "/v1/chat/completions",
            json={**CHAT, "stream": stream},
            headers={"authorization": f"Bearer {tenant.key}"},
        )
    assert r.status_code == 200 and (b"[DONE]" in r.content) == stream
    (event,) = await wait_for_events(factory, tenant.setup.id, 1)
    assert event.stream == stream and event.cost_nanousd > 0
    end = "end alone" if behaviour == "end_delay_ms=50" else "end"
    assert seen == ["journaled", end, "queued"]


async def test_a_stream_still_ends_when_its_metering_fails(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal that cannot be written (a full disk) must not leave the client waiting for an end that
    never comes: the response ends, and the failure is the server's to log."""
    from tokenboard.gateway.metering import UsageWriter

    tenant = await seed(factory)
    upstream.default_behaviour = "end_delay_ms=50"

    def failing_journal(self: UsageWriter, record: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(UsageWriter, "journal_record", failing_journal)
    async with httpx.AsyncClient(base_url=live_gateway.url, timeout=10) as http:
        r = await http.post(
            "/v1/chat/completions",
            json={**CHAT, "stream": True},
            headers={"authorization": f"Bearer {tenant.key}"},
        )
    assert r.status_code == 200 and r.content.endswith(b"data: [DONE]\n\n")


async def test_anthropic_sdk_messages_stream_and_not(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream
) -> None:
    tenant = await seed(factory)
    client = anthropic.AsyncAnthropic(base_url=live_gateway.url, api_key=tenant.key)
    body = {
        "model": "anthropic/claude-haiku-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    message = await client.messages.create(**body)
    assert message.content[0].text and message.usage.output_tokens > 0
    assert message.model == "anthropic/claude-haiku-4-5"
    assert upstream.requests[-1].api_key == UPSTREAM_ANTHROPIC_KEY
    async with client.messages.stream(**body) as stream:
        final = await stream.get_final_message()
    assert final.usage.output_tokens > 0
    assert final.model == "anthropic/claude-haiku-4-5", "a stream names the model as the gateway does"
    await client.close()
    events = await wait_for_events(factory, tenant.setup.id, 2)
    prices = await _prices(factory, "anthropic/claude-haiku-4-5")
    usage = expected_usage("messages", {**body, "model": "claude-haiku-4-5"})
    expected = compute_cost(prices, anthropic_usage(usage)).total_nanousd
    assert [e.cost_nanousd for e in events] == [expected, expected]


async def test_embeddings_and_models(factory: Factory, live_gateway: LiveGateway) -> None:
    tenant = await seed(factory, allowed_models=["openai/text-embedding-3-small", "simulated/fast"])
    client = openai.AsyncOpenAI(base_url=live_gateway.v1, api_key=tenant.key)
    result = await client.embeddings.create(model="openai/text-embedding-3-small", input=["one", "two"])
    assert len(result.data) == 2 and result.usage.prompt_tokens > 0
    models = [m.id async for m in client.models.list()]
    assert models == ["openai/text-embedding-3-small", "simulated/fast"]
    await client.close()
    # Answers no model wrote say so, streamed or not; a provider's answers do not.
    async with httpx.AsyncClient(
        base_url=live_gateway.v1, headers={"authorization": f"Bearer {tenant.key}"}
    ) as http:
        hello = {"messages": [{"role": "user", "content": "Hi"}]}
        for stream in (False, True):
            r = await http.post(
                "/chat/completions", json={"model": "simulated/fast", "stream": stream, **hello}
            )
            assert r.status_code == 200 and r.headers["x-tokenboard-simulated"] == "true", r.text
        r = await http.post("/embeddings", json={"model": "openai/text-embedding-3-small", "input": "x"})
        assert r.status_code == 200 and "x-tokenboard-simulated" not in r.headers
    events = await wait_for_events(factory, tenant.setup.id, 4)
    assert events[0].route == "embeddings" and events[0].cost_nanousd > 0


async def test_refusals_in_each_apis_format(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream
) -> None:
    tenant = await seed(factory, allowed_models=["openai/gpt-4o-mini"])
    async with httpx.AsyncClient(base_url=live_gateway.url) as http:

        def auth(key: str = tenant.key) -> dict[str, str]:
            return {"authorization": f"Bearer {key}"}

        cases = [
            ({}, CHAT, 401),
            (auth("tb_not-a-key"), CHAT, 401),
            (auth(), {**CHAT, "model": "gpt-4o-mini"}, 404),
            (auth(), {**CHAT, "model": "openai/no-such-model"}, 404),
            (auth(), {**CHAT, "model": "simulated/fast"}, 403),
            (auth(), {**CHAT, "base_url": "http://169.254.169.254"}, 400),
            (auth(), {**CHAT, "extra_body": {"api_key": "sk-mine"}}, 400),
            (auth(), {**CHAT, "n": 500}, 400),
            (auth(), {**CHAT, "max_tokens": -5}, 400),
            # Fields the gateway reads, with a JSON type they never have: the client's mistake, not a 500.
            (auth(), {**CHAT, "messages": 5}, 400),
            (auth(), {**CHAT, "messages": True}, 400),
            (auth(), {**CHAT, "stream_options": "x"}, 400),
            (auth(), {**CHAT, "stream_options": [1]}, 400),
            (auth(), {**CHAT, "stream": "yes"}, 400),
        ]
        for headers, body, status in cases:
            r = await http.post("/v1/chat/completions", json=body, headers=headers)
            assert r.status_code == status, (body, r.text)
            assert set(r.json()["error"]) >= {"message", "type"}
            assert "x-tokenboard-request-id" not in r.headers  # a refusal is recorded nowhere
        for document in (b'{"model": "openai/gpt-4o-mini", "temperature": NaN}', b"\xff{}", b"[1]"):
            r = await http.post("/v1/chat/completions", content=document, headers=auth())
            assert r.status_code == 400 and "JSON" in r.json()["error"]["message"], r.text
        anthropic_refusal = await http.post(
            "/v1/messages",
            json={"model": "anthropic/claude-haiku-4-5", "max_tokens": 5, "messages": []},
            headers={"x-api-key": tenant.key, "anthropic-version": "2023-06-01"},
        )
        assert anthropic_refusal.status_code == 403
        malformed = await http.post(
            "/v1/messages",
            json={"model": "openai/gpt-4o-mini", "max_tokens": 5, "messages": 7},
            headers={"x-api-key": tenant.key, "anthropic-version": "2023-06-01"},
        )
        assert malformed.status_code == 400, malformed.text
        assert malformed.json()["error"]["type"] == "invalid_request_error"
        assert "messages" in malformed.json()["error"]["message"]
        assert (
            anthropic_refusal.json()["type"] == "error"
            and anthropic_refusal.json()["error"]["type"] == "permission_error"
        )
    assert upstream.requests == [], "a refused request must never reach the provider"
    await live_gateway.give_back_leases()
    balance = await _balance(factory, tenant.setup.id)
    assert balance.reserved_nanousd == 0 and balance.balance_nanousd == 100 * USD


async def test_the_body_reaches_the_provider_as_the_client_wrote_it(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream
) -> None:
    """Big integers, non-ASCII text and lone surrogate escapes arrive with the same values."""
    tenant = await seed(factory)
    sent = {**CHAT, "seed": 2**70, "user": "Zoë ☃", "metadata": {"note": "\ud83d"}, "temperature": 0.1}
    async with httpx.AsyncClient(base_url=live_gateway.url) as http:
        r = await http.post(  # json.dumps escapes the lone surrogate, as a client's encoder would
            "/v1/chat/completions",
            content=json.dumps(sent).encode(),
            headers={"authorization": f"Bearer {tenant.key}"},
        )
    assert r.status_code == 200, r.text
    received = upstream.requests[-1].body
    assert received == {**sent, "model": "gpt-4o-mini"}


async def test_revocation_and_suspension_take_effect_on_the_next_request(
    factory: Factory, live_gateway: LiveGateway
) -> None:
    from tokenboard.members.roles import Role

    tenant = await seed(factory)
    client = openai.AsyncOpenAI(base_url=live_gateway.v1, api_key=tenant.key, max_retries=0)
    assert (await client.chat.completions.create(**CHAT)).choices
    token = await factory.personal_token(tenant.setup.users[Role.owner])
    # The change goes through the live app, as a person would make it, so its caches hear of it.
    async with httpx.AsyncClient(
        base_url=live_gateway.url, headers={"authorization": f"Bearer {token}"}
    ) as owner:
        r = await owner.post(
            f"/api/v1/organizations/{tenant.setup.id}/workspaces/{tenant.setup.workspace.id}/suspend"
        )
        assert r.status_code == 200
        with pytest.raises(openai.PermissionDeniedError, match="suspended"):
            await client.chat.completions.create(**CHAT)
        with pytest.raises(openai.PermissionDeniedError, match="suspended"):  # the same chain lists models
            await client.models.list()
        await owner.post(
            f"/api/v1/organizations/{tenant.setup.id}/workspaces/{tenant.setup.workspace.id}/resume"
        )
        assert (await client.chat.completions.create(**CHAT)).choices
        revoke = await owner.delete(
            f"/api/v1/organizations/{tenant.setup.id}/api-keys/{tenant.setup.api_key.id}"
        )
        assert revoke.status_code == 204
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(**CHAT)
    await client.close()


async def test_no_credits_is_402(factory: Factory, live_gateway: LiveGateway) -> None:
    tenant = await seed(factory, credits_usd=0)
    client = openai.AsyncOpenAI(base_url=live_gateway.v1, api_key=tenant.key, max_retries=0)
    with pytest.raises(openai.APIStatusError) as refused:
        await client.chat.completions.create(**CHAT)
    assert refused.value.status_code == 402 and "Add credits" in refused.value.message
    await client.close()


@pytest.mark.parametrize(
    ("behaviour", "status"),
    [
        ("error=500", 502),
        ("error=429", 429),
        ("malformed", 502),
        ("nan=true", 502),  # not JSON: refused as malformed, never relayed as a 500
        ("delay_ms=5000", 504),
        ("error=400", 400),
    ],
)
async def test_upstream_failures_are_clean_and_release_the_hold(
    behaviour: str, status: int, factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream
) -> None:
    tenant = await seed(factory)
    upstream.default_behaviour = behaviour
    async with httpx.AsyncClient(base_url=live_gateway.url, timeout=20) as http:
        r = await http.post(
            "/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {tenant.key}"}
        )
    assert r.status_code == status, r.text
    assert "error" in r.json() and "Traceback" not in r.text and "fake" not in r.text.lower()
    events = await wait_for_events(factory, tenant.setup.id, 1)
    assert events[0].status_code >= 400 and events[0].cost_nanousd == 0
    assert r.headers["x-tokenboard-request-id"] == events[0].request_id  # the client can name its record
    await live_gateway.give_back_leases()
    balance = await _balance(factory, tenant.setup.id)
    assert (balance.balance_nanousd, balance.reserved_nanousd) == (100 * USD, 0)


async def test_a_client_that_leaves_mid_stream_is_still_billed_once(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream
) -> None:
    tenant = await seed(factory)
    upstream.default_behaviour = "chunks=30,interval_ms=20"
    async with httpx.AsyncClient(base_url=live_gateway.url, timeout=20) as http:
        async with http.stream(
            "POST",
            "/v1/chat/completions",
            json={**CHAT, "stream": True},
            headers={"authorization": f"Bearer {tenant.key}"},
        ) as response:
            assert response.status_code == 200
            read = 0
            async for _ in response.aiter_lines():
                read += 1
                if read == 4:
                    break
    events = await wait_for_events(factory, tenant.setup.id, 1, within=15)
    assert len(events) == 1
    event = events[0]
    assert event.cancelled and event.cost_nanousd > 0
    # The gateway read the upstream on to its final usage chunk: the real count, not an estimate.
    usage = expected_usage("chat", {**CHAT, "stream": True}, "chunks=30,interval_ms=20")
    assert not event.usage_estimated and event.output_tokens == usage["completion_tokens"]
    await asyncio.sleep(0.5)
    assert len(await wait_for_events(factory, tenant.setup.id, 2, within=0.5)) == 1
    await live_gateway.give_back_leases()
    balance = await _balance(factory, tenant.setup.id)
    assert balance.balance_nanousd == 100 * USD - event.cost_nanousd and balance.reserved_nanousd == 0


async def test_fifty_concurrent_requests_never_overspend(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream
) -> None:
    tenant = await seed(factory, credits_usd=0)
    from tokenboard.catalog.pricing import TokenUsage
    from tokenboard.ledger.service import EntryKind

    # Worth about three requests at their reserved maximum (the default output allowance of 4096 tokens).
    prices = await _prices(factory, "openai/gpt-4o-mini")
    one = compute_cost(prices, TokenUsage(input_tokens=60, output_tokens=4096)).total_nanousd
    await factory.run(lambda s: ledger.post(s, tenant.setup.id, kind=EntryKind.grant, amount_nanousd=3 * one))
    # All fifty are decided before the first answer (a request that ends frees the part of its estimate it
    # did not use, which could rightly admit one more): the refusals after the first come from memory.
    upstream.default_behaviour = "delay_ms=1500"
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=live_gateway.url, timeout=30) as http:
        results = await asyncio.gather(
            *(
                http.post(
                    "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {tenant.key}"}
                )
                for _ in range(50)
            )
        )
    codes = [r.status_code for r in results]
    assert set(codes) <= {200, 402} and 1 <= codes.count(200) <= 3 and codes.count(402) >= 47
    refusal = next(r for r in results if r.status_code == 402).json()["error"]
    assert "Not enough credits" in refusal["message"]
    events = await wait_for_events(factory, tenant.setup.id, codes.count(200))
    spent = sum(e.cost_nanousd for e in events)
    await live_gateway.give_back_leases()
    balance = await _balance(factory, tenant.setup.id)
    assert balance.balance_nanousd == 3 * one - spent >= 0
    assert balance.reserved_nanousd == 0
    await factory.run(lambda s: ledger.check_invariants(s, tenant.setup.id))


async def test_requests_that_end_free_their_share_of_the_lease_at_once(
    factory: Factory, live_gateway: LiveGateway
) -> None:
    """Sequential requests that cost far less than their estimate all run on a balance worth three
    estimates: the lease frees what a finished request did not use, before its event is even written."""
    tenant = await seed(factory, credits_usd=0)
    from tokenboard.catalog.pricing import TokenUsage
    from tokenboard.ledger.service import EntryKind

    prices = await _prices(factory, "simulated/fast")
    one = compute_cost(prices, TokenUsage(input_tokens=60, output_tokens=4096)).total_nanousd
    await factory.run(lambda s: ledger.post(s, tenant.setup.id, kind=EntryKind.grant, amount_nanousd=3 * one))
    body = {"model": "simulated/fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4096}
    async with httpx.AsyncClient(base_url=live_gateway.url, timeout=30) as http:
        for _ in range(10):
            r = await http.post(
                "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {tenant.key}"}
            )
            assert r.status_code == 200, r.text
    events = await wait_for_events(factory, tenant.setup.id, 10)
    await live_gateway.give_back_leases()
    balance = await _balance(factory, tenant.setup.id)
    assert balance.balance_nanousd == 3 * one - sum(e.cost_nanousd for e in events) > 0
    await factory.run(lambda s: ledger.check_invariants(s, tenant.setup.id))


@pytest.mark.parametrize(
    ("model", "sent", "bound"),
    [
        # Above gpt-4o's maximum output (16,384 of its 128,000-token context): each name clamped to it.
        ("openai/gpt-4o", {"max_tokens": 10**12, "max_completion_tokens": 10**12}, 16_384),
        ("openai/gpt-4o", {"max_completion_tokens": 2_000}, 2_000),  # within it: as sent
        ("openai/gpt-4o", {}, 4_096),  # no bound: held for the gateway's default output
        ("openai/gpt-3.5-turbo", {"max_tokens": 10**12}, 16_385),  # no maximum known: its context length
    ],
)
async def test_the_output_bound_is_clamped_to_the_models_maximum_and_held_for(
    model: str,
    sent: dict[str, int],
    bound: int,
    factory: Factory,
    live_gateway: LiveGateway,
    upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The provider receives the bound clamped to the model's maximum (not a refusal), and the credit hold
    is sized from it: a balance one nano-dollar short of that hold is refused, the hold itself is enough."""
    from tokenboard.catalog.pricing import plain_cost_nanousd

    monkeypatch.setattr("tokenboard.ledger.lease.REFUSAL_MEMORY_S", 0.0)  # each try reads the balance again
    tenant = await seed(factory, credits_usd=0)
    raw = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], **sent}).encode()
    hold = plain_cost_nanousd(await _prices(factory, model), len(raw) // 3, bound)  # the gateway's estimate

    headers = {"authorization": f"Bearer {tenant.key}", "content-type": "application/json"}
    await check_hold(
        factory,
        live_gateway,
        upstream,
        tenant,
        path="/v1/chat/completions",
        raw=raw,
        headers=headers,
        hold=hold,
    )
    forwarded = upstream.requests[-1].body
    assert {
        k: v for k, v in forwarded.items() if k in ("max_tokens", "max_completion_tokens")
    } == dict.fromkeys(sent, bound)


@pytest.mark.parametrize(
    ("behaviour", "estimated", "status"),
    [
        ("usage=missing", True, 200),
        ("usage=zero", True, 200),
        ("usage=duplicate", False, 200),
        ("usage=late", False, 200),
        ("cut", True, 502),
        ("malformed", False, 502),  # one event unreadable, the usage still arrives: billed on it
    ],
)
async def test_odd_upstream_streams_are_billed_once(
    behaviour: str,
    estimated: bool,
    status: int,
    factory: Factory,
    live_gateway: LiveGateway,
    upstream: FakeUpstream,
) -> None:
    tenant = await seed(factory)
    upstream.default_behaviour = behaviour
    async with httpx.AsyncClient(base_url=live_gateway.url, timeout=20) as http:
        async with http.stream(
            "POST",
            "/v1/chat/completions",
            json={**CHAT, "stream": True},
            headers={"authorization": f"Bearer {tenant.key}"},
        ) as response:
            assert response.status_code == 200
            body = b"".join([chunk async for chunk in response.aiter_bytes()])
    assert body.rstrip().endswith(b"data: [DONE]") or status == 502
    events = await wait_for_events(factory, tenant.setup.id, 1)
    assert len(events) == 1
    event = events[0]
    assert (event.usage_estimated, event.status_code) == (estimated, status)
    assert event.cost_nanousd > 0
    if not estimated:
        usage = expected_usage("chat", {**CHAT, "stream": True}, behaviour)
        assert event.output_tokens == usage["completion_tokens"]
    await live_gateway.give_back_leases()
    balance = await _balance(factory, tenant.setup.id)
    assert balance.balance_nanousd == 100 * USD - event.cost_nanousd and balance.reserved_nanousd == 0


@pytest.mark.parametrize("leave_after", [1, 3, 12])
async def test_disconnects_at_several_points_bill_the_providers_count(
    leave_after: int, factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream
) -> None:
    tenant = await seed(factory)
    upstream.default_behaviour = "chunks=20,interval_ms=10"
    async with httpx.AsyncClient(base_url=live_gateway.url, timeout=20) as http:
        async with http.stream(
            "POST",
            "/v1/chat/completions",
            json={**CHAT, "stream": True},
            headers={"authorization": f"Bearer {tenant.key}"},
        ) as response:
            read = 0
            async for _ in response.aiter_lines():
                read += 1
                if read >= leave_after:
                    break
    events = await wait_for_events(factory, tenant.setup.id, 1, within=15)
    usage = expected_usage("chat", {**CHAT, "stream": True}, "chunks=20,interval_ms=10")
    assert [(e.cancelled, e.usage_estimated, e.output_tokens) for e in events] == [
        (True, False, usage["completion_tokens"])
    ]


async def test_the_sync_sdks_work_too(factory: Factory, live_gateway: LiveGateway) -> None:
    tenant = await seed(factory)

    def use_sync_clients() -> None:
        with openai.OpenAI(base_url=live_gateway.v1, api_key=tenant.key) as client:
            reply = client.chat.completions.create(**CHAT)
            assert reply.choices[0].message.content
            chunks = list(client.chat.completions.create(**CHAT, stream=True))
            assert chunks and chunks[0].model == "openai/gpt-4o-mini"
        with anthropic.Anthropic(base_url=live_gateway.url, api_key=tenant.key) as claude:
            message = claude.messages.create(
                model="anthropic/claude-haiku-4-5",
                max_tokens=20,
                messages=[{"role": "user", "content": "hi"}],
            )
            assert message.usage.output_tokens > 0

    await asyncio.to_thread(use_sync_clients)
    assert len(await wait_for_events(factory, tenant.setup.id, 3)) == 3


async def test_holds_left_by_a_dead_process_are_swept(factory: Factory, live_gateway: LiveGateway) -> None:
    from datetime import timedelta

    tenant = await seed(factory)
    past = utcnow() - timedelta(hours=1)
    await factory.run(
        lambda s: ledger.reserve(
            s,
            tenant.setup.id,
            request_id="crashed",
            amount_nanousd=USD,
            hold_for=timedelta(minutes=1),
            now=past,
        )
    )
    assert (await _balance(factory, tenant.setup.id)).reserved_nanousd == USD
    released = await live_gateway.app.state.gateway.sweep_expired_holds()
    assert released == 1
    assert (await _balance(factory, tenant.setup.id)).reserved_nanousd == 0


async def test_a_keys_own_spend_limit_is_enforced(factory: Factory, live_gateway: LiveGateway) -> None:
    from sqlalchemy import update

    from tokenboard.models import ApiKey

    tenant = await seed(factory)
    body = {**CHAT, "max_tokens": 20}
    client = openai.AsyncOpenAI(base_url=live_gateway.v1, api_key=tenant.key, max_retries=0)
    await client.chat.completions.create(**body)
    events = await wait_for_events(factory, tenant.setup.id, 1)
    one = events[0].cost_nanousd
    stored = await factory.run(lambda s: s.get(ApiKey, (tenant.setup.id, tenant.setup.api_key.id)))
    assert stored.spent_nanousd == one
    # A limit a little above two requests' worst case: the next one passes, then the key is refused.
    prices = await _prices(factory, "openai/gpt-4o-mini")
    from tokenboard.catalog.pricing import TokenUsage

    worst = compute_cost(prices, TokenUsage(input_tokens=100, output_tokens=20)).total_nanousd
    await factory.run(
        lambda s: s.execute(
            update(ApiKey)
            .where(ApiKey.id == tenant.setup.api_key.id)
            .values(spend_limit_nanousd=one + worst + 1)
        )
    )
    live_gateway.app.state.key_cache.clear()  # as an admin change would, after its commit
    live_gateway.app.state.gateway.forget_key_spend()
    await client.chat.completions.create(**body)
    with pytest.raises(openai.APIStatusError) as refused:
        await client.chat.completions.create(**body)
    assert refused.value.status_code == 402 and "spend limit" in refused.value.message
    await client.close()


async def test_openrouter_is_billed_what_it_reports_it_charged(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream
) -> None:
    from decimal import Decimal

    from tests.support.fake_upstream import OPENROUTER_CHARGE_PER_TOKEN
    from tokenboard.kit.money import to_nanousd

    tenant = await seed(factory)
    client = openai.AsyncOpenAI(base_url=live_gateway.v1, api_key=tenant.key)
    body = {**CHAT, "model": "openrouter/openai/gpt-4o-mini"}
    reply = await client.chat.completions.create(**body)
    await client.close()
    sent = upstream.requests[-1]
    assert sent.body["usage"] == {"include": True} and sent.body["model"] == "openai/gpt-4o-mini"
    tokens = reply.usage.prompt_tokens + reply.usage.completion_tokens
    events = await wait_for_events(factory, tenant.setup.id, 1)
    charged = to_nanousd(Decimal(str(OPENROUTER_CHARGE_PER_TOKEN * tokens)))
    assert events[0].cost_nanousd == charged
    tokens_priced = compute_cost(
        await _prices(factory, "openrouter/openai/gpt-4o-mini"), openai_usage(reply.usage.model_dump())
    ).total_nanousd
    assert charged != tokens_priced  # the report, not our own pricing, decided the bill


async def test_openrouter_is_told_the_organizations_training_opt_out(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream
) -> None:
    """OpenRouter routes to providers of varying data policies: an organization that opted out of those
    that train on prompts (the default) has it ask for providers that collect nothing, whatever the client
    asked; one that opted in gets the client's routing as it was written."""
    from tokenboard.members.roles import Role

    tenant = await seed(factory)
    assert tenant.setup.organization.opt_out_training_providers
    client = openai.AsyncOpenAI(base_url=live_gateway.v1, api_key=tenant.key, max_retries=0)
    routing = {"order": ["deepseek"], "data_collection": "allow"}
    body = {**CHAT, "model": "openrouter/openai/gpt-4o-mini"}
    await client.chat.completions.create(**body, extra_body={"provider": routing})
    assert upstream.requests[-1].body["provider"] == {"order": ["deepseek"], "data_collection": "deny"}
    await client.chat.completions.create(**body, extra_body={"provider": "not an object"})
    assert upstream.requests[-1].body["provider"] == {"data_collection": "deny"}
    token = await factory.personal_token(tenant.setup.users[Role.owner])
    async with httpx.AsyncClient(
        base_url=live_gateway.url, headers={"authorization": f"Bearer {token}"}
    ) as owner:
        settings = f"/api/v1/organizations/{tenant.setup.id}/settings"
        assert (await owner.patch(settings, json={"opt_out_training_providers": False})).status_code == 200
    await client.chat.completions.create(**body, extra_body={"provider": routing})
    assert upstream.requests[-1].body["provider"] == routing
    await client.chat.completions.create(**{**CHAT, "model": "openai/gpt-4o-mini"})
    assert "provider" not in upstream.requests[-1].body  # only OpenRouter is told
    await client.close()


async def test_open_pages_hear_of_new_usage(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream
) -> None:
    tenant = await seed(factory)
    hub = live_gateway.app.state.live_hub

    async def subscribe() -> object:
        return hub.subscribe(tenant.setup.id)

    subscription = await live_gateway.call(subscribe)
    client = openai.AsyncOpenAI(base_url=live_gateway.v1, api_key=tenant.key)
    await client.chat.completions.create(**CHAT, max_tokens=20)
    await client.close()
    message = await live_gateway.call(lambda: subscription.next(within=5))
    events = await wait_for_events(factory, tenant.setup.id, 1)
    assert message is not None and message.event == "usage"
    assert message.data["requests"] == 1 and message.data["cost_nanousd"] == events[0].cost_nanousd
    subscription.close()


async def test_a_suspended_subscription_closes_the_gateway(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream
) -> None:
    from datetime import timedelta

    from tokenboard.models import Subscription

    tenant = await seed(factory)
    now = utcnow()

    async def subscribe(session: object, status: str, grace: object) -> None:
        from sqlalchemy import delete

        await session.execute(delete(Subscription).where(Subscription.organization_id == tenant.setup.id))  # type: ignore[attr-defined]
        session.add(  # type: ignore[attr-defined]
            Subscription(
                organization_id=tenant.setup.id,
                plan="teams",
                seats=5,
                status=status,
                anchor_day=1,
                current_period_start=now - timedelta(days=40),
                current_period_end=now - timedelta(days=10),
                past_due_since=now - timedelta(days=10) if status == "past_due" else None,
                grace_until=grace,
            )
        )

    # A payment failed and the grace period ended: refused in each API's format, nothing forwarded.
    await factory.run(lambda s: subscribe(s, "past_due", now - timedelta(days=1)))
    http = httpx.AsyncClient(base_url=live_gateway.url, timeout=30)
    headers = {"authorization": f"Bearer {tenant.key}"}
    refused = await http.post("/v1/chat/completions", json={**CHAT, "max_tokens": 5}, headers=headers)
    assert refused.status_code == 402 and "suspended" in refused.json()["error"]["message"]
    assert refused.json()["error"]["code"] == "billing_suspended" and upstream.requests == []
    # Still within the grace period: served. (The change is seen once the cache is told, as after a commit.)
    await factory.run(lambda s: subscribe(s, "past_due", now + timedelta(days=3)))
    live_gateway.app.state.billing_status.invalidate(tenant.setup.id)
    served = await http.post("/v1/chat/completions", json={**CHAT, "max_tokens": 5}, headers=headers)
    assert served.status_code == 200, served.text
    await http.aclose()


async def test_usage_that_crosses_the_low_balance_threshold_emails_once(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream
) -> None:
    from tokenboard.billing.service import billing

    tenant = await seed(factory, credits_usd=1)

    async def threshold(session: object) -> None:
        profile = await billing.profile(session, tenant.setup.id)  # type: ignore[arg-type]
        profile.low_balance_threshold_nanousd = USD  # $1: the first request's cost crosses it

    await factory.run(threshold)
    mailer = live_gateway.app.state.mailer
    mailer.sent.clear()
    client = openai.AsyncOpenAI(base_url=live_gateway.v1, api_key=tenant.key)
    for _ in range(2):
        await client.chat.completions.create(**CHAT, max_tokens=20)
    await client.close()
    await wait_for_events(factory, tenant.setup.id, 2)
    for _ in range(100):
        low = [m for m in mailer.sent if "Low credit" in m.subject]
        if low:
            break
        await asyncio.sleep(0.05)
    await live_gateway.give_back_leases()
    low = [m for m in mailer.sent if "Low credit" in m.subject]
    # One email per owner and billing manager, once for the crossing (not again for the second request).
    assert low and len(low) == len({m.to for m in low})


async def test_a_request_without_a_model_gets_the_organizations_default(
    factory: Factory, live_gateway: LiveGateway
) -> None:
    from tokenboard.members.roles import Role

    tenant = await seed(factory)
    hello = {"messages": [{"role": "user", "content": "Hi"}]}
    token = await factory.personal_token(tenant.setup.users[Role.owner])
    async with (
        httpx.AsyncClient(base_url=live_gateway.v1, headers={"authorization": f"Bearer {tenant.key}"}) as gw,
        httpx.AsyncClient(base_url=live_gateway.url, headers={"authorization": f"Bearer {token}"}) as owner,
    ):
        r = await gw.post("/chat/completions", json=hello)
        assert r.status_code == 400 and "no default model" in r.json()["error"]["message"], r.text
        default = f"/api/v1/organizations/{tenant.setup.id}/model-access/default-model"
        assert (await owner.put(default, json={"model_id": "simulated/fast"})).status_code == 200
        for body in (hello, {"model": None, **hello}, {"model": "", **hello}):
            r = await gw.post("/chat/completions", json=body)
            assert r.status_code == 200 and r.json()["model"] == "simulated/fast", r.text
        # The default changes at once, and a model the request names still wins.
        assert (await owner.put(default, json={"model_id": "openai/gpt-4o-mini"})).status_code == 200
        r = await gw.post("/chat/completions", json=hello)
        assert r.status_code == 200 and r.json()["model"] == "openai/gpt-4o-mini", r.text
        r = await gw.post("/chat/completions", json={"model": "simulated/fast", **hello})
        assert r.status_code == 200 and r.json()["model"] == "simulated/fast", r.text
        # An Anthropic-format route with an OpenAI default: refused with the reason, never sent elsewhere.
        r = await gw.post("/messages", json={"max_tokens": 5, **hello})
        assert r.status_code == 400 and "/v1/messages" in r.json()["error"]["message"], r.text
    events = await wait_for_events(factory, tenant.setup.id, 5)
    assert sorted(e.model_id for e in events) == ["openai/gpt-4o-mini"] + ["simulated/fast"] * 4


async def test_attribution_headers_are_recorded_as_sent(factory: Factory, live_gateway: LiveGateway) -> None:
    """The five x-tokenboard-* headers land on the request's usage event; non-ASCII names as UTF-8."""
    tenant = await seed(factory)
    sent = {
        "x-tokenboard-feature": "résumé-äö",
        "x-tokenboard-tool": "cli",
        "x-tokenboard-integration": "slack",
        "x-tokenboard-conversation-id": "thread-42",
        "x-tokenboard-message-id": "m-7",
    }
    auth = (b"authorization", f"Bearer {tenant.key}".encode())
    async with httpx.AsyncClient(base_url=live_gateway.v1) as http:
        utf8 = [auth, *((k.encode(), v.encode()) for k, v in sent.items())]
        latin1 = [auth, (b"x-tokenboard-tool", b"caf\xe9")]  # bytes that are not UTF-8: Latin-1
        for headers in (utf8, latin1):
            r = await http.post("/chat/completions", json=CHAT, headers=headers)
            assert r.status_code == 200, r.text
    first, second = await wait_for_events(factory, tenant.setup.id, 2)
    assert (first.feature, first.tool, first.integration, first.conversation_id, first.message_id) == (
        "résumé-äö",
        "cli",
        "slack",
        "thread-42",
        "m-7",
    )
    assert second.tool == "café" and second.feature is None


@pytest.fixture
def quick_upkeep(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway's upkeep every 0.2 s, for a live gateway started after this fixture."""
    from tokenboard.gateway import service

    monkeypatch.setattr(service, "LEASE_UPKEEP_SECONDS", 0.2)


async def test_a_price_set_where_the_gateway_cannot_hear_of_it_is_charged_soon(
    quick_upkeep: None, factory: Factory, live_gateway: LiveGateway
) -> None:
    """A price set by the CLI on a server without Redis invalidates no cache: the upkeep sees the stored
    catalog changed and reads it again."""
    from decimal import Decimal

    from tokenboard.catalog.pricing import Prices
    from tokenboard.catalog.service import catalog

    tenant = await seed(factory)
    client = openai.AsyncOpenAI(base_url=live_gateway.v1, api_key=tenant.key, max_retries=0)
    await client.chat.completions.create(**CHAT)
    dearer = Prices(input=Decimal("0.001"), output=Decimal("0.002"))  # USD per token: easy to tell apart
    cache = live_gateway.app.state.gateway.catalog
    generation = cache.generation
    await factory.run(lambda s: catalog.set_price(s, "openai/gpt-4o-mini", dearer))  # as the CLI does
    for _ in range(300):  # 15 s at most: an upkeep tick takes long on a loaded machine
        if cache.generation != generation:
            break
        await asyncio.sleep(0.05)
    await client.chat.completions.create(**CHAT)
    await client.close()
    cheap, dear = await wait_for_events(factory, tenant.setup.id, 2)
    assert cheap.cost_nanousd < dear.cost_nanousd
    assert dear.cost_nanousd == dear.input_tokens * 1_000_000 + dear.output_tokens * 2_000_000


async def test_files_and_images_are_recorded_with_their_share_of_the_prompt(
    factory: Factory, live_gateway: LiveGateway
) -> None:
    from tests.gateway.test_attachments import b64, png
    from tests.support.fake_upstream import FILE_PART_CHARS_PER_TOKEN

    tenant = await seed(factory)
    image, report = png(1024, 1024), b"%PDF-1.7 " + b"x" * 20_000
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(image)}"}},
        {
            "type": "file",
            "file": {"filename": "report.pdf", "file_data": f"data:application/pdf;base64,{b64(report)}"},
        },
    ]
    client = openai.AsyncOpenAI(base_url=live_gateway.v1, api_key=tenant.key, max_retries=0)
    await client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": content}]
    )
    await client.close()
    (event,) = await wait_for_events(factory, tenant.setup.id, 1)
    prompt = event.input_tokens + event.cached_input_tokens
    picture, document = event.attachments
    assert picture == {"type": "image_url", "bytes": len(image), "estimated_tokens": 765}
    assert document["name"] == "report.pdf" and document["bytes"] == len(report)
    # The fake provider charged 765 for the image and a sixth of the file's base64 characters for the file:
    # the gateway's share for the file is what the prompt left after its text, so close to that.
    assert picture["estimated_tokens"] + document["estimated_tokens"] <= prompt
    charged = len(b64(report)) // FILE_PART_CHARS_PER_TOKEN
    assert charged - 100 <= document["estimated_tokens"] <= charged  # the text estimated from the body


async def test_with_usage_analytics_off_only_what_billing_needs_is_recorded(
    factory: Factory, live_gateway: LiveGateway
) -> None:
    from tests.gateway.test_attachments import b64, png
    from tokenboard.members.roles import Role

    tenant = await seed(factory)
    token = await factory.personal_token(tenant.setup.users[Role.owner])
    async with httpx.AsyncClient(
        base_url=live_gateway.url, headers={"authorization": f"Bearer {token}"}
    ) as owner:
        settings = f"/api/v1/organizations/{tenant.setup.id}/settings"
        assert (await owner.patch(settings, json={"usage_analytics_enabled": False})).status_code == 200
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(png(64, 64))}"}},
    ]
    headers = {"x-tokenboard-feature": "search", "x-tokenboard-conversation-id": "c-1"}
    client = openai.AsyncOpenAI(base_url=live_gateway.v1, api_key=tenant.key, default_headers=headers)
    await client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": content}]
    )
    await client.close()
    (event,) = await wait_for_events(factory, tenant.setup.id, 1)
    assert event.cost_nanousd > 0 and event.input_tokens > 0 and event.user_id is not None
    assert (event.feature, event.conversation_id, event.attachments) == (None, None, None)
