"""The conversation page's cost calculation shows unit prices people can read: USD per million tokens, never
a raw Decimal in exponent notation (``1.00000000000000000E-7``) or with a tail of zeros; the JSON API keeps
the exact per-token string."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tests.support.factories import Factory
from tokenboard.catalog.service import catalog
from tokenboard.members.roles import Role
from tokenboard.usage.ingest import record_events

# USD per token in the reference catalog, and what the page shows for them.
EXPECTED = {
    "openai/gpt-4o": {
        "input": (Decimal("0.0000025"), "$2.50 / M tokens"),
        "cached_input_read": (Decimal("0.00000125"), "$1.25 / M tokens"),
        "output": (Decimal("0.00001"), "$10.00 / M tokens"),
    },
    "openai/gpt-4.1-nano": {
        "input": (Decimal("1E-7"), "$0.10 / M tokens"),
        "cached_input_read": (Decimal("2.5E-8"), "$0.025 / M tokens"),
        "output": (Decimal("4E-7"), "$0.40 / M tokens"),
    },
}
ROW = re.compile(r'<tr data-kind="(?P<kind>[a-z0-9_]+)">(?P<cells>.*?)</tr>', re.S)
CELL = re.compile(r"<td[^>]*>(.*?)</td>", re.S)
EXPONENT = re.compile(r"\d[eE][+-]?\d")


def text_of(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


async def test_unit_prices_are_readable_and_the_api_stays_exact(app: object, factory: Factory) -> None:
    await factory.run(lambda s: catalog.sync(s, provider_ids=["openai"]))
    app.state.catalog_cache.invalidate()  # type: ignore[attr-defined]
    setup = await factory.org_with_roles("Prices Co")
    owner = setup.users[Role.owner]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    events = [
        {
            "organization_id": setup.id,
            "request_id": f"prices-{n}",
            "created_at": start + timedelta(minutes=n),
            "user_id": owner.id,
            "model_id": model,
            "provider_id": "openai",
            "input_tokens": 12_000,
            "cached_input_tokens": 3_000,
            "output_tokens": 450,
            "cost_nanousd": 1_000_000,  # as recorded; the lines show the catalog's prices all the same
            "latency_ms": 800,
            "conversation_id": "conv-prices",
            "message_id": f"msg-{n}",
        }
        for n, model in enumerate(EXPECTED)
    ]
    await factory.run(lambda s: record_events(s, events))

    async with await factory.client_for(owner) as client:
        page = await client.get(
            f"/organizations/{setup.id}/usage/conversations/conv-prices", headers={"accept": "text/html"}
        )
        api = await client.get(f"/api/v1/organizations/{setup.id}/usage/conversations/conv-prices")
    assert page.status_code == 200, page.text
    assert api.status_code == 200, api.text

    # The JSON API is unchanged: each unit price is the exact per-token Decimal, as a plain string.
    for message, model in zip(api.json()["messages"], EXPECTED, strict=True):
        prices = {line["kind"]: line["unit_price_usd"] for line in message["cost_lines"]}
        for kind, (per_token, _) in EXPECTED[model].items():
            assert Decimal(prices[kind]) == per_token, (model, kind, prices[kind])
            assert not EXPONENT.search(prices[kind])

    # The page: one table per message, in order; the price column reads "$2.50 / M tokens".
    tables = re.findall(r'<table class="cost-lines">(.*?)</table>', page.text, re.S)
    assert len(tables) == len(EXPECTED)
    for table, model in zip(tables, EXPECTED, strict=True):
        rows = {m["kind"]: CELL.findall(m["cells"]) for m in ROW.finditer(table)}
        for kind, (per_token, shown) in EXPECTED[model].items():
            price_cell = rows[kind][2]
            assert text_of(price_cell) == shown, (model, kind, price_cell)
            # The exact per-token price stays at hand, as a plain decimal, in the cell's title.
            assert f'title="{per_token:f} USD per token"' in price_cell
        assert not EXPONENT.search(text_of(table)), text_of(table)
        assert not re.search(r"\d\.\d*0{4,}\b", text_of(table)), text_of(table)  # no tail of zeros
        assert "<th>Price</th>" in table


async def test_web_searches_are_a_line_priced_per_search(app: object, factory: Factory) -> None:
    await factory.run(lambda s: catalog.sync(s, provider_ids=["anthropic"]))
    app.state.catalog_cache.invalidate()  # type: ignore[attr-defined]
    setup = await factory.org_with_roles("Search Co")
    owner = setup.users[Role.owner]
    event = {
        "organization_id": setup.id,
        "request_id": "search-1",
        "created_at": datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5),
        "user_id": owner.id,
        "model_id": "anthropic/claude-sonnet-4-5",
        "provider_id": "anthropic",
        "input_tokens": 2_100,
        "output_tokens": 640,
        "web_searches": 2,
        # 2,100 x $3/M + 640 x $15/M + 2 x $0.01, as the gateway records it
        "cost_nanousd": 6_300_000 + 9_600_000 + 20_000_000,
        "conversation_id": "conv-search",
    }
    await factory.run(lambda s: record_events(s, [event]))
    async with await factory.client_for(owner) as client:
        page = await client.get(
            f"/organizations/{setup.id}/usage/conversations/conv-search", headers={"accept": "text/html"}
        )
        api = await client.get(f"/api/v1/organizations/{setup.id}/usage/conversations/conv-search")
    assert page.status_code == 200 and api.status_code == 200, (page.text, api.text)
    (message,) = api.json()["messages"]
    assert message["web_searches"] == 2
    lines = {line["kind"]: line for line in message["cost_lines"]}
    assert (lines["web_search"]["quantity"], Decimal(lines["web_search"]["unit_price_usd"])) == (
        2,
        Decimal("0.01"),
    )
    assert "recorded_difference" not in lines  # the lines add up to what was recorded
    (table,) = re.findall(r'<table class="cost-lines">(.*?)</table>', page.text, re.S)
    rows = {m["kind"]: CELL.findall(m["cells"]) for m in ROW.finditer(table)}
    label, quantity, price, amount = (text_of(cell) for cell in rows["web_search"])
    assert (label, quantity, price, amount) == ("Web searches", "2", "$0.01 / search", "$0.020")
    assert 'title="0.01 USD per search"' in rows["web_search"][2]
