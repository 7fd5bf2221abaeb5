"""Server-side web searches through the gateway: counted from the provider's usage, priced per search, held
for before forwarding, and shown line by line. Live gateway, fake Anthropic on loopback, both databases."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import pytest

from tests.gateway.conftest import LiveGateway, check_hold, seed, wait_for_events
from tests.support.factories import Factory
from tests.support.fake_upstream import FakeUpstream, expected_usage
from tokenboard.catalog.pricing import anthropic_usage, compute_cost, plain_cost_nanousd
from tokenboard.catalog.service import CatalogCache
from tokenboard.gateway.service import DEFAULT_WEB_SEARCHES, declared_web_searches
from tokenboard.kit.db import utcnow
from tokenboard.usage.reports import cost_lines

MODEL = "anthropic/claude-haiku-4-5"
SEARCH_TOOL = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
BODY: dict[str, Any] = {
    "model": MODEL,
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "What happened in the news today?"}],
    "tools": [SEARCH_TOOL],
}


async def _catalog(factory: Factory) -> CatalogCache:
    cache = CatalogCache()
    await factory.run(cache.load)
    return cache


async def test_searches_are_billed_per_search_streamed_or_not(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream
) -> None:
    tenant = await seed(factory)
    upstream.default_behaviour = "web_searches=3"
    client = anthropic.AsyncAnthropic(base_url=live_gateway.url, api_key=tenant.key)
    message = await client.messages.create(**BODY)
    assert message.usage.server_tool_use is not None
    assert message.usage.server_tool_use.web_search_requests == 3
    assert [block.type for block in message.content][:2] == ["server_tool_use", "web_search_tool_result"]
    async with client.messages.stream(**BODY) as stream:
        final = await stream.get_final_message()
    assert final.usage.server_tool_use is not None and final.usage.server_tool_use.web_search_requests == 3
    await client.close()
    assert upstream.requests[-1].body["tools"] == [SEARCH_TOOL], "the tool reaches the provider as sent"

    events = await wait_for_events(factory, tenant.setup.id, 2)
    catalog = await _catalog(factory)
    entry = catalog.get(MODEL)
    assert entry is not None
    prices = entry.price_at(utcnow())
    assert prices is not None and prices.per_web_search == Decimal("0.01")
    usage = anthropic_usage(
        expected_usage("messages", {**BODY, "model": "claude-haiku-4-5"}, "web_searches=3")
    )
    assert usage.web_searches == 3
    expected = compute_cost(prices, usage).total_nanousd
    assert expected == compute_cost(prices, replace(usage, web_searches=0)).total_nanousd + 30_000_000
    assert [(e.stream, e.web_searches, e.cost_nanousd) for e in events] == [
        (False, 3, expected),
        (True, 3, expected),
    ]
    # The searches are 3 x $0.01 of it, and the message detail shows them as a line of their own.
    lines, priced = cost_lines(events[1], catalog)
    assert priced
    by_kind = {line.kind: line for line in lines}
    assert "recorded_difference" not in by_kind
    search = by_kind["web_search"]
    assert (search.quantity, search.unit_price_usd, search.amount_nanousd) == (
        3,
        Decimal("0.010"),
        30_000_000,
    )
    assert sum(line.amount_nanousd for line in lines) == expected


async def test_a_stream_without_searches_bills_none(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream
) -> None:
    """message_start's zero and no count at all are the same: no search line, tokens only."""
    tenant = await seed(factory)
    async with httpx.AsyncClient(base_url=live_gateway.url, timeout=20) as http:
        r = await http.post(
            "/v1/messages",
            json={**BODY, "stream": True},
            headers={"x-api-key": tenant.key, "anthropic-version": "2023-06-01"},
        )
    assert r.status_code == 200 and b"message_stop" in r.content
    (event,) = await wait_for_events(factory, tenant.setup.id, 1)
    assert event.web_searches == 0
    catalog = await _catalog(factory)
    assert "web_search" not in {line.kind for line in cost_lines(event, catalog)[0]}


@pytest.mark.parametrize(
    ("tools", "searches"),
    [
        ([SEARCH_TOOL], 5),  # its max_uses
        ([{"type": "web_search_20250305", "name": "web_search"}], DEFAULT_WEB_SEARCHES),  # no limit given
        ([{"type": "web_search_20250305", "name": "web_search", "max_uses": 10**9}], 1000),  # held at most
        ([{"name": "get_weather", "input_schema": {"type": "object"}}], 0),  # a client tool searches nothing
    ],
)
async def test_the_credit_hold_covers_the_searches_a_request_allows(
    tools: list[dict[str, Any]],
    searches: int,
    factory: Factory,
    live_gateway: LiveGateway,
    upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A balance one nano-USD short of tokens + allowed searches is refused before the provider is called;
    the hold itself is enough."""
    monkeypatch.setattr("tokenboard.ledger.lease.REFUSAL_MEMORY_S", 0.0)
    tenant = await seed(factory, credits_usd=0)
    body = {**BODY, "tools": tools}
    assert declared_web_searches(body) == searches
    raw = json.dumps(body).encode()
    entry = (await _catalog(factory)).get(MODEL)
    assert entry is not None
    prices = entry.price_at(utcnow())
    assert prices is not None
    hold = plain_cost_nanousd(prices, len(raw) // 3, 64, searches)
    assert hold - plain_cost_nanousd(prices, len(raw) // 3, 64) == searches * 10_000_000

    headers = {"x-api-key": tenant.key, "anthropic-version": "2023-06-01", "content-type": "application/json"}
    await check_hold(
        factory, live_gateway, upstream, tenant, path="/v1/messages", raw=raw, headers=headers, hold=hold
    )


def test_openai_web_search_options_hold_one_search() -> None:
    assert declared_web_searches({"model": "openai/gpt-4o-search-preview", "web_search_options": {}}) == 1
    assert declared_web_searches({"tools": "not a list"}) == 0
    assert declared_web_searches({"tools": [{"type": "web_search_20250305", "max_uses": True}]}) == 10
