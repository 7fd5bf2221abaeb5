"""Audio tokens through the gateway: the audio part of a request's input and output, as the provider reports
it, priced at the model's audio prices (gpt-audio: $32 and $64 per million, against $2.50 and $10 for text),
recorded on the event and shown line by line. Live gateway, fake OpenAI on loopback, both databases."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import openai
import pytest

from tests.gateway.conftest import LiveGateway, check_hold, seed, wait_for_events
from tests.support.factories import Factory
from tests.support.fake_upstream import FakeUpstream, expected_usage
from tokenboard.catalog.pricing import (
    TokenUsage,
    compute_cost,
    cost_nanousd,
    openai_usage,
    plain_cost_nanousd,
)
from tokenboard.catalog.service import CatalogCache
from tokenboard.kit.db import utcnow
from tokenboard.usage.reports import cost_lines

MODEL = "openai/gpt-audio"
BEHAVIOUR = "audio_in=5,audio_out=10"
MESSAGES = [{"role": "user", "content": "Read this aloud, please."}]


async def test_audio_tokens_are_billed_at_audio_prices_streamed_or_not(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream
) -> None:
    tenant = await seed(factory)
    upstream.default_behaviour = BEHAVIOUR
    client = openai.AsyncOpenAI(base_url=live_gateway.v1, api_key=tenant.key)
    completion = await client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    assert completion.usage is not None and completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.audio_tokens == 5
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    async for _ in stream:
        pass
    await client.close()

    events = await wait_for_events(factory, tenant.setup.id, 2)
    catalog = CatalogCache()
    await factory.run(catalog.load)
    entry = catalog.get(MODEL)
    assert entry is not None
    prices = entry.price_at(utcnow())
    assert prices is not None
    assert (prices.input_audio, prices.output_audio) == (Decimal("0.000032"), Decimal("0.000064"))
    usage = openai_usage(expected_usage("chat", {"model": "gpt-audio", "messages": MESSAGES}, BEHAVIOUR))
    assert (usage.input_audio_tokens, usage.output_audio_tokens) == (5, 10)
    expected = compute_cost(prices, usage).total_nanousd
    # 5 tokens at $32/M rather than $2.50/M, 10 at $64/M rather than $10/M
    text_only = compute_cost(
        prices, replace(usage, input_audio_tokens=0, output_audio_tokens=0)
    ).total_nanousd
    assert expected - text_only == 5 * (32_000 - 2_500) + 10 * (64_000 - 10_000)
    assert [(e.stream, e.input_audio_tokens, e.output_audio_tokens, e.cost_nanousd) for e in events] == [
        (False, 5, 10, expected),
        (True, 5, 10, expected),
    ]
    lines, priced = cost_lines(events[1], catalog)
    by_kind = {line.kind: line for line in lines}
    assert priced and "recorded_difference" not in by_kind
    assert (by_kind["input_audio"].quantity, by_kind["output_audio"].quantity) == (5, 10)
    assert by_kind["input"].quantity == events[1].input_tokens - 5
    assert by_kind["output"].quantity == events[1].output_tokens - 10


async def test_a_model_without_audio_prices_bills_audio_as_text(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream
) -> None:
    """gpt-4o-mini has no audio price: its audio tokens are input and output tokens like the others."""
    tenant = await seed(factory)
    upstream.default_behaviour = BEHAVIOUR
    client = openai.AsyncOpenAI(base_url=live_gateway.v1, api_key=tenant.key)
    await client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    await client.close()
    (event,) = await wait_for_events(factory, tenant.setup.id, 1)
    catalog = CatalogCache()
    await factory.run(catalog.load)
    prices = catalog.prices_at("openai/gpt-4o-mini", utcnow())
    assert prices is not None and prices.input_audio is None and prices.output_audio is None
    usage = openai_usage(expected_usage("chat", {"model": "gpt-4o-mini", "messages": MESSAGES}, BEHAVIOUR))
    text_only = replace(usage, input_audio_tokens=0, output_audio_tokens=0)
    assert (
        event.cost_nanousd
        == compute_cost(prices, usage).total_nanousd
        == compute_cost(prices, text_only).total_nanousd
    )
    assert (event.input_audio_tokens, event.output_audio_tokens) == (5, 10)


async def test_the_hold_of_an_audio_model_assumes_audio(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every token of a gpt-audio request may be audio, which costs more: the hold is sized so, a balance one
    nano-USD short of it is refused before the provider is called, and the hold itself is enough."""
    monkeypatch.setattr("tokenboard.ledger.lease.REFUSAL_MEMORY_S", 0.0)
    tenant = await seed(factory, credits_usd=0)
    raw = json.dumps({"model": MODEL, "messages": MESSAGES, "max_tokens": 50}).encode()
    catalog = CatalogCache()
    await factory.run(catalog.load)
    prices = catalog.prices_at(MODEL, utcnow())
    assert prices is not None
    prompt = len(raw) // 3
    hold = cost_nanousd(
        prices,
        TokenUsage(input_tokens=prompt, output_tokens=50, input_audio_tokens=prompt, output_audio_tokens=50),
    )
    assert hold == prompt * 32_000 + 50 * 64_000 > plain_cost_nanousd(prices, prompt, 50)

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
