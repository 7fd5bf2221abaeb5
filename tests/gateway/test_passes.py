"""Admission passes: the chain over the caches runs once per key, model and route until something changes.

A pass must never outlive what it was decided from: a revoked key, a switched-off model, a changed policy or
subscription, a new price, or simply time (``PASS_SECONDS``) sends the next request through the chain again.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import LiveGateway, seed, wait_for_events
from tests.support.factories import Factory
from tests.support.fake_upstream import FakeUpstream
from tokenboard.catalog.pricing import Prices
from tokenboard.catalog.service import catalog
from tokenboard.gateway import keys, service
from tokenboard.kit.db import utcnow
from tokenboard.members.roles import Role

CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


class Decisions:
    """Counts the gateway's runs of the admission chain."""

    def __init__(self, gateway: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        decide = gateway._decide

        async def counted(*args: Any) -> Any:
            self.count += 1
            return await decide(*args)

        monkeypatch.setattr(gateway, "_decide", counted)


async def _post(http: httpx.AsyncClient, key: str, **extra: Any) -> int:
    body = {**CHAT, **extra}
    response = await http.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})
    return response.status_code


async def test_a_pass_is_reused_until_a_cache_it_read_changes(
    factory: Factory, live_gateway: LiveGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "PASS_SECONDS", 3600.0)
    tenant = await seed(factory)
    state = live_gateway.app.state
    gateway = state.gateway
    decisions = Decisions(gateway, monkeypatch)
    org = tenant.setup.id
    async with httpx.AsyncClient(base_url=live_gateway.url, timeout=30) as http:
        assert await _post(http, tenant.key) == 200
        assert await _post(http, tenant.key) == 200
        assert decisions.count == 1, "the second request reused the first one's pass"
        # Another model and another route are other passes.
        assert await _post(http, tenant.key, model="openai/gpt-4o") == 200
        embedding = await http.post(
            "/v1/embeddings",
            json={"model": "openai/text-embedding-3-small", "input": "hi"},
            headers={"authorization": f"Bearer {tenant.key}"},
        )
        assert embedding.status_code == 200, embedding.text
        assert decisions.count == 3
        # Each cache the chain reads drops the passes decided from it.
        changes = [
            state.key_cache.clear,
            state.catalog_cache.invalidate,
            lambda: state.model_access_cache.invalidate(org),
            lambda: state.billing_status.invalidate(org),
        ]
        for number, change in enumerate(changes, start=4):
            await live_gateway.call(_run(change))
            assert await _post(http, tenant.key) == 200
            assert decisions.count == number, change
            assert await _post(http, tenant.key) == 200
            assert decisions.count == number, "decided again once, then reused"
        # Another organization's policy change leaves this one's pass alone.
        other = await seed(factory)
        await live_gateway.call(_run(lambda: state.model_access_cache.invalidate(other.setup.id)))
        assert await _post(http, tenant.key) == 200
        assert decisions.count == len(changes) + 3


async def test_a_burst_on_cold_caches_decides_once_and_reads_the_key_once(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forty requests at once with a key the gateway has not seen (a restart, a new key): one run of the
    chain and one read of the key for all of them, not one per request waiting on the connection pool; an
    unknown key is read once too."""
    monkeypatch.setattr(service, "PASS_SECONDS", 3600.0)
    tenant = await seed(factory)
    gateway = live_gateway.app.state.gateway
    decisions = Decisions(gateway, monkeypatch)
    loads = 0
    load = keys._load

    async def counted_load(*args: Any) -> Any:
        nonlocal loads
        loads += 1
        return await load(*args)

    monkeypatch.setattr(keys, "_load", counted_load)
    upstream.default_behaviour = "delay_ms=200"
    async with httpx.AsyncClient(base_url=live_gateway.url, timeout=60) as http:
        codes = await asyncio.gather(*(_post(http, tenant.key) for _ in range(40)))
        assert codes == [200] * 40
        assert (decisions.count, loads) == (1, 1)
        # A key that does not exist: one read for the burst, forty 401s (a refusal leaves no pass, so
        # requests that come after its decision decide again, from the cache).
        bogus = "tb_" + "x" * 43
        codes = await asyncio.gather(*(_post(http, bogus) for _ in range(40)))
        assert codes == [401] * 40
        assert loads == 2


async def test_a_pass_ends_with_its_time(
    factory: Factory, live_gateway: LiveGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Long enough for two requests on a loaded CI machine (0.2 s once saw the second request decide again),
    # short enough to wait out.
    monkeypatch.setattr(service, "PASS_SECONDS", 2.0)
    tenant = await seed(factory)
    decisions = Decisions(live_gateway.app.state.gateway, monkeypatch)
    async with httpx.AsyncClient(base_url=live_gateway.url, timeout=30) as http:
        assert await _post(http, tenant.key) == 200
        assert await _post(http, tenant.key) == 200
        assert decisions.count == 1
        await asyncio.sleep(2.1)
        assert await _post(http, tenant.key) == 200
        assert decisions.count == 2


async def test_refusals_leave_no_pass_and_revocation_acts_on_the_next_request(
    factory: Factory, live_gateway: LiveGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "PASS_SECONDS", 3600.0)
    tenant = await seed(factory)
    gateway = live_gateway.app.state.gateway
    async with httpx.AsyncClient(base_url=live_gateway.url, timeout=30) as http:
        assert await _post(http, tenant.key, model="openai/no-such-model") == 404
        assert await _post(http, tenant.key, model="openai/no-such-model") == 404
        assert not [p for p in gateway._passes.values() if p.model_id == "openai/no-such-model"]
        assert await _post(http, tenant.key) == 200
        token = await factory.personal_token(tenant.setup.users[Role.owner])
        revoke = await http.delete(
            f"/api/v1/organizations/{tenant.setup.id}/api-keys/{tenant.setup.api_key.id}",
            headers={"authorization": f"Bearer {token}"},
        )
        assert revoke.status_code == 204
        assert await _post(http, tenant.key) == 401


async def test_a_pass_ends_when_the_price_changes(
    factory: Factory, live_gateway: LiveGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A price that starts later is charged from its first moment, whatever passes were decided before."""
    monkeypatch.setattr(service, "PASS_SECONDS", 3600.0)
    tenant = await seed(factory)
    state = live_gateway.app.state
    decisions = Decisions(state.gateway, monkeypatch)
    start = utcnow() + timedelta(seconds=4)  # two requests fit before it, on a loaded machine too
    dearer = Prices(input=Decimal("0.001"), output=Decimal("0.002"))  # USD per token: easy to tell apart
    await factory.run(lambda s: catalog.set_price(s, "openai/gpt-4o-mini", dearer, effective_from=start))
    await live_gateway.call(_run(state.catalog_cache.invalidate))
    async with httpx.AsyncClient(base_url=live_gateway.url, timeout=30) as http:
        assert await _post(http, tenant.key) == 200
        (ticket,) = [p for p in state.gateway._passes.values() if p.model_id == "openai/gpt-4o-mini"]
        assert ticket.until == start.timestamp()
        assert await _post(http, tenant.key) == 200
        assert decisions.count == 1
        await asyncio.sleep(max(0.0, (start - utcnow()).total_seconds()) + 0.05)
        assert await _post(http, tenant.key) == 200
        assert decisions.count == 2
    events = await wait_for_events(factory, tenant.setup.id, 3)
    assert len(events) == 3
    cheap, also_cheap, dear = events
    assert cheap.cost_nanousd == also_cheap.cost_nanousd
    assert dear.cached_input_tokens == 0 and dear.input_tokens > 0 and dear.output_tokens > 0
    assert dear.cost_nanousd == dear.input_tokens * 1_000_000 + dear.output_tokens * 2_000_000


def _run(change: Any) -> Any:
    async def run() -> None:
        change()

    return run
