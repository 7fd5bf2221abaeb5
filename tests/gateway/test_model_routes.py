"""GET /v1/models/{model} and POST /v1/messages/count_tokens through a live gateway, with the official SDKs.

Retrieving a model shows exactly what the list shows (404 for anything else, unknown or kept from the key
alike). Counting tokens is admitted like /v1/messages but is free: no credits needed or held, nothing
recorded; an ``anthropic`` model is counted by the provider, any other is the gateway's estimate.
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai
import pytest
from sqlalchemy import func, select

from tests.gateway.conftest import UPSTREAM_ANTHROPIC_KEY, LiveGateway, seed, wait_for_events
from tests.support.factories import Factory
from tests.support.fake_upstream import FakeUpstream, prompt_tokens
from tokenboard.members.roles import Role
from tokenboard.models import CreditEntry, CreditReservation, UsageEvent

HAIKU = "anthropic/claude-haiku-4-5"
COUNTED = {
    "system": "Be brief",  # 8 characters: 2 tokens
    "messages": [{"role": "user", "content": "Hello there"}],  # 11 characters: 3 tokens
}


async def _rows(factory: Factory, model: type[Any], org_id: object) -> int:
    return int(
        await factory.run(
            lambda s: s.scalar(select(func.count()).select_from(model).where(model.organization_id == org_id))
        )
    )


async def _owner(factory: Factory, live_gateway: LiveGateway, tenant: Any) -> httpx.AsyncClient:
    """The organization's owner on the live app, so that its caches hear of what the owner changes."""
    token = await factory.personal_token(tenant.setup.users[Role.owner])
    return httpx.AsyncClient(base_url=live_gateway.url, headers={"authorization": f"Bearer {token}"})


# ------------------------------------------------------------------ GET /v1/models/{model}


async def test_a_model_is_retrieved_as_the_list_shows_it_and_nothing_else(
    factory: Factory, live_gateway: LiveGateway
) -> None:
    tenant = await seed(factory, allowed_models=["openai/gpt-4o-mini", HAIKU, "simulated/fast"])
    paths: list[bytes] = []

    async def note(request: httpx.Request) -> None:
        paths.append(request.url.raw_path)

    http_client = httpx.AsyncClient(event_hooks={"request": [note]})
    client = openai.AsyncOpenAI(
        base_url=live_gateway.v1, api_key=tenant.key, max_retries=0, http_client=http_client
    )
    listed = {m.id: m async for m in client.models.list()}
    model = await client.models.retrieve("openai/gpt-4o-mini")
    assert model.model_dump() == listed["openai/gpt-4o-mini"].model_dump()
    assert (model.id, model.object, model.owned_by) == ("openai/gpt-4o-mini", "model", "openai")
    # The SDK escapes the model's slash; a client that does not (curl) reaches the same model.
    assert paths[-1] == b"/v1/models/openai%2Fgpt-4o-mini"
    async with httpx.AsyncClient(
        base_url=live_gateway.url, headers={"authorization": f"Bearer {tenant.key}"}
    ) as http:
        plain = await http.get("/v1/models/openai/gpt-4o-mini")
        assert plain.status_code == 200 and plain.json() == model.model_dump(exclude_unset=True)
    # Outside the key's subset and unknown are the same 404: asking shows no more than the list.
    messages = []
    for name in ("openai/gpt-4o", "openai/no-such-model", "gpt-4o-mini"):
        with pytest.raises(openai.NotFoundError) as missing:
            await client.models.retrieve(name)
        error = missing.value.body
        assert isinstance(error, dict) and error["type"] == "not_found_error", error
        messages.append(error["message"].replace(repr(name), "<name>"))
    assert len(set(messages)) == 1, messages
    await client.close()

    # The Anthropic SDK is answered in its own shape, as the list answers it.
    claude = anthropic.AsyncAnthropic(base_url=live_gateway.url, api_key=tenant.key, max_retries=0)
    info = await claude.models.retrieve(HAIKU)
    assert (info.id, info.type, info.display_name) == (HAIKU, "model", HAIKU)
    assert info.id in [m.id async for m in claude.models.list()]
    with pytest.raises(anthropic.NotFoundError) as refused:
        await claude.models.retrieve("openai/gpt-4o")
    assert refused.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": refused.value.body["error"]["message"]},  # type: ignore[index]
    }
    await claude.close()


async def test_retrieving_follows_the_organizations_model_access_and_the_keys_state(
    factory: Factory, live_gateway: LiveGateway
) -> None:
    tenant = await seed(factory)
    client = openai.AsyncOpenAI(base_url=live_gateway.v1, api_key=tenant.setup.api_key_secret, max_retries=0)
    assert (await client.models.retrieve("openai/gpt-4o")).id == "openai/gpt-4o"
    org = f"/api/v1/organizations/{tenant.setup.id}"
    async with await _owner(factory, live_gateway, tenant) as owner:
        r = await owner.put(f"{org}/model-access/models/openai/gpt-4o", json={"enabled": False})
        assert r.status_code == 200, r.text
        with pytest.raises(openai.NotFoundError):
            await client.models.retrieve("openai/gpt-4o")
        assert "openai/gpt-4o" not in [m.id async for m in client.models.list()]
        r = await owner.post(f"{org}/workspaces/{tenant.setup.workspace.id}/suspend")
        assert r.status_code == 200, r.text
        with pytest.raises(openai.PermissionDeniedError, match="suspended"):  # as the list is refused
            await client.models.retrieve("openai/gpt-4o-mini")
        await owner.post(f"{org}/workspaces/{tenant.setup.workspace.id}/resume")
        assert (await client.models.retrieve("openai/gpt-4o-mini")).id == "openai/gpt-4o-mini"
        revoke = await owner.delete(f"{org}/api-keys/{tenant.setup.api_key.id}")
        assert revoke.status_code == 204
    with pytest.raises(openai.AuthenticationError):
        await client.models.retrieve("openai/gpt-4o-mini")
    await client.close()
    async with httpx.AsyncClient(base_url=live_gateway.url) as http:
        for headers in ({}, {"authorization": "Bearer tb_not-a-key"}):
            r = await http.get("/v1/models/openai/gpt-4o-mini", headers=headers)
            assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"


# ------------------------------------------------------------------ POST /v1/messages/count_tokens


async def test_count_tokens_is_forwarded_to_anthropic_and_costs_nothing(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream
) -> None:
    tenant = await seed(factory, credits_usd=0)  # counting needs no credits
    client = anthropic.AsyncAnthropic(base_url=live_gateway.url, api_key=tenant.key, max_retries=0)
    tools = [{"name": "lookup", "description": "Look up", "input_schema": {"type": "object"}}]
    raw = await client.messages.with_raw_response.count_tokens(model=HAIKU, tools=tools, **COUNTED)  # type: ignore[arg-type]
    counted = await raw.parse()
    sent = upstream.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/v1/messages/count_tokens")
    assert sent.body == {**COUNTED, "tools": tools, "model": "claude-haiku-4-5"}
    assert counted.input_tokens == prompt_tokens(sent.body) == 5
    assert "x-tokenboard-estimated" not in raw.headers
    # The operator's credentials went to the provider, none of the client's.
    assert sent.api_key == UPSTREAM_ANTHROPIC_KEY and sent.headers["anthropic-version"]
    assert tenant.key not in str(sent.headers) and tenant.key.encode() not in sent.raw
    with pytest.raises(anthropic.APIStatusError) as unpaid:  # whereas the call itself needs credits
        await client.messages.create(model=HAIKU, max_tokens=5, **COUNTED)  # type: ignore[arg-type]
    assert unpaid.value.status_code == 402
    await client.close()
    await live_gateway.call(live_gateway.app.state.gateway.writer.drain)
    org = tenant.setup.id
    assert await _rows(factory, UsageEvent, org) == 0
    assert await _rows(factory, CreditEntry, org) == 0
    assert await _rows(factory, CreditReservation, org) == 0
    assert live_gateway.app.state.gateway.leases.held(org) == 0


async def test_count_tokens_is_estimated_for_other_providers(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream
) -> None:
    tenant = await seed(factory)
    client = anthropic.AsyncAnthropic(base_url=live_gateway.url, api_key=tenant.key, max_retries=0)
    simulated = await client.messages.with_raw_response.count_tokens(model="simulated/fast", **COUNTED)  # type: ignore[arg-type]
    assert (await simulated.parse()).input_tokens == 5
    assert simulated.headers["x-tokenboard-estimated"] == "true"
    assert simulated.headers["x-tokenboard-simulated"] == "true"
    # The estimate for the simulated provider is what its answer to the same prompt then reports.
    answered = await client.messages.create(model="simulated/fast", max_tokens=16, **COUNTED)  # type: ignore[arg-type]
    assert answered.usage.input_tokens == 5
    other = await client.messages.with_raw_response.count_tokens(model="openai/gpt-4o-mini", **COUNTED)  # type: ignore[arg-type]
    assert (await other.parse()).input_tokens == 5 and other.headers["x-tokenboard-estimated"] == "true"
    assert "x-tokenboard-simulated" not in other.headers
    await client.close()
    assert upstream.requests == [], "an estimate asks no provider"
    # Odd shapes the provider would judge are estimated all the same, never a failure of the gateway.
    async with httpx.AsyncClient(
        base_url=live_gateway.url, headers={"x-api-key": tenant.key, "anthropic-version": "2023-06-01"}
    ) as http:
        odd = {
            "model": "openai/gpt-4o-mini",
            "system": {"not": "a prompt"},
            "tools": 5,
            "messages": [7, {"role": "user", "content": 5, "tool_calls": 7}, {"content": [None, "abcd"]}],
        }
        r = await http.post("/v1/messages/count_tokens", json=odd)
        assert r.status_code == 200 and r.json() == {"input_tokens": 1}, r.text
    (event,) = await wait_for_events(factory, tenant.setup.id, 1)
    assert event.route == "messages", "only the call was recorded, none of the counts"


async def test_count_tokens_is_refused_as_the_chain_refuses(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream
) -> None:
    tenant = await seed(factory, allowed_models=[HAIKU])
    client = anthropic.AsyncAnthropic(base_url=live_gateway.url, api_key=tenant.key, max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError):  # outside the key's subset
        await client.messages.count_tokens(model="openai/gpt-4o-mini", **COUNTED)  # type: ignore[arg-type]
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.count_tokens(model="anthropic/no-such-model", **COUNTED)  # type: ignore[arg-type]
    for smuggled in ({"api_base": "http://169.254.169.254"}, {"metadata": {"openai_api_key": "sk-mine"}}):
        with pytest.raises(anthropic.BadRequestError, match="refused") as refused:
            await client.messages.count_tokens(model=HAIKU, extra_body=smuggled, **COUNTED)  # type: ignore[arg-type]
        assert refused.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    revoked = anthropic.AsyncAnthropic(
        base_url=live_gateway.url, api_key=tenant.setup.api_key_secret, max_retries=0
    )
    async with await _owner(factory, live_gateway, tenant) as owner:
        r = await owner.delete(f"/api/v1/organizations/{tenant.setup.id}/api-keys/{tenant.setup.api_key.id}")
        assert r.status_code == 204
    with pytest.raises(anthropic.AuthenticationError):
        await revoked.messages.count_tokens(model=HAIKU, **COUNTED)  # type: ignore[arg-type]
    await client.close()
    await revoked.close()
    async with httpx.AsyncClient(
        base_url=live_gateway.url, headers={"x-api-key": tenant.key, "anthropic-version": "2023-06-01"}
    ) as http:
        for body in (
            {"model": HAIKU},
            {"model": HAIKU, "messages": 5},
            {"model": HAIKU, "messages": [], "stream": 1},
        ):
            r = await http.post("/v1/messages/count_tokens", json=body)
            assert r.status_code == 400 and r.json()["type"] == "error", (body, r.text)
        r = await http.post("/v1/messages/count_tokens", content=b"[1]")
        assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
    assert upstream.requests == [], "a refused count never reaches the provider"


@pytest.mark.parametrize(
    ("behaviour", "status", "kind"),
    [
        ("error=429", 429, "rate_limit_error"),
        ("error=400", 400, "invalid_request_error"),
        ("error=500", 502, "api_error"),
        ("malformed", 502, "api_error"),
        ("delay_ms=5000", 504, "timeout_error"),
    ],
)
async def test_count_tokens_relays_the_providers_failures_cleanly(
    behaviour: str,
    status: int,
    kind: str,
    factory: Factory,
    live_gateway: LiveGateway,
    upstream: FakeUpstream,
) -> None:
    tenant = await seed(factory)
    upstream.default_behaviour = behaviour
    async with httpx.AsyncClient(base_url=live_gateway.url, timeout=20) as http:
        r = await http.post(
            "/v1/messages/count_tokens",
            json={"model": HAIKU, **COUNTED},
            headers={"x-api-key": tenant.key, "anthropic-version": "2023-06-01"},
        )
    assert r.status_code == status and r.json()["error"]["type"] == kind, r.text
    assert r.json()["type"] == "error" and "x-tokenboard-request-id" not in r.headers
    assert len(upstream.requests) == 1
    await live_gateway.call(live_gateway.app.state.gateway.writer.drain)
    assert await _rows(factory, UsageEvent, tenant.setup.id) == 0


async def test_count_tokens_counts_against_the_keys_rate_limit(
    factory: Factory, live_gateway: LiveGateway
) -> None:
    tenant = await seed(factory)
    live_gateway.app.state.gateway.limiter.per_minute = 2
    client = anthropic.AsyncAnthropic(base_url=live_gateway.url, api_key=tenant.key, max_retries=0)
    for _ in range(2):
        assert (await client.messages.count_tokens(model="simulated/fast", **COUNTED)).input_tokens == 5  # type: ignore[arg-type]
    with pytest.raises(anthropic.RateLimitError):
        await client.messages.count_tokens(model="simulated/fast", **COUNTED)  # type: ignore[arg-type]
    with pytest.raises(anthropic.RateLimitError):  # the same budget as the calls themselves
        await client.messages.create(model="simulated/fast", max_tokens=5, **COUNTED)  # type: ignore[arg-type]
    await client.close()
