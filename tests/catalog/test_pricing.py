"""Cost golden tests, exact to the nano-USD, computed by hand from the providers' published prices.

Each case is also priced by genai-prices' own ``calc_price``; the two must agree after rounding.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenboard.catalog.pricing import (
    Prices,
    PriceTier,
    TokenUsage,
    UsageError,
    anthropic_usage,
    compute_cost,
    cost_nanousd,
    gemini_usage,
    openai_usage,
    openrouter_cost,
    plain_cost_nanousd,
)
from tokenboard.catalog.reference import load_reference
from tokenboard.kit.money import to_nanousd

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


def reference_prices(model_id: str, when: datetime = NOW) -> Prices:
    provider = model_id.split("/", 1)[0]
    model = next(m for m in load_reference([provider]).models if m.id == model_id)
    return [prices for start, prices in model.schedule if start <= when][-1]


def genai_nanousd(model_id: str, usage: TokenUsage) -> int:
    """genai-prices' price for the same usage; its input and output counts include cache and reasoning."""
    provider, model = model_id.split("/", 1)
    counts = {
        "input_tokens": usage.total_input_tokens,
        "cache_read_tokens": usage.cached_input_tokens,
        "cache_write_tokens": usage.cache_write_5m_tokens + usage.cache_write_1h_tokens,
        "cache_write_1h_tokens": usage.cache_write_1h_tokens,
        "output_tokens": usage.total_output_tokens,
        "web_searches": usage.web_searches,
        "input_audio_tokens": usage.input_audio_tokens,
        "output_audio_tokens": usage.output_audio_tokens,
    }
    result = genai_prices.calc_price(
        genai_prices.Usage(**counts), model, provider_id=provider, genai_request_timestamp=NOW
    )
    return to_nanousd(result.total_price)


def cost(model_id: str, usage: TokenUsage) -> int:
    ours = compute_cost(reference_prices(model_id), usage).total_nanousd
    assert ours == genai_nanousd(model_id, usage), "genai-prices disagrees"
    return ours


# --- OpenAI: prompt tokens include cached ones, completion tokens include reasoning -----------------


def test_openai_chat_with_cached_tokens() -> None:
    usage = openai_usage(
        {
            "prompt_tokens": 12_345,
            "completion_tokens": 2_000,
            "prompt_tokens_details": {"cached_tokens": 4_096, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
    )
    # gpt-4o-mini: $0.15 input, $0.075 cached, $0.60 output per million tokens.
    # 8,249 x 0.15 + 4,096 x 0.075 + 2,000 x 0.60 = 1237.35 + 307.2 + 1200 = 2744.55 micro-USD
    assert cost("openai/gpt-4o-mini", usage) == 2_744_550


def test_openai_reasoning_tokens_are_part_of_completion_tokens() -> None:
    usage = openai_usage(
        {
            "prompt_tokens": 10_000,
            "completion_tokens": 5_000,
            "prompt_tokens_details": {"cached_tokens": 3_000},
            "completion_tokens_details": {"reasoning_tokens": 4_000},
        }
    )
    assert usage.plain_output_tokens == 1_000 and usage.reasoning_tokens == 4_000
    # o4-mini: $1.10 input, $0.275 cached, $4.40 output (reasoning at the output price).
    # 7,000 x 1.1 + 3,000 x 0.275 + 1,000 x 4.4 + 4,000 x 4.4 = 7700 + 825 + 4400 + 17600 micro-USD
    breakdown = compute_cost(reference_prices("openai/o4-mini"), usage)
    assert breakdown.total_nanousd == 30_525_000 == cost("openai/o4-mini", usage)
    assert [(line.kind, line.quantity) for line in breakdown.lines] == [
        ("input", 7_000),
        ("cached_input_read", 3_000),
        ("output", 1_000),
        ("reasoning", 4_000),
    ]
    assert [line.amount_nanousd for line in breakdown.lines] == [7_700_000, 825_000, 4_400_000, 17_600_000]


def test_openai_responses_api_shape() -> None:
    usage = openai_usage(
        {
            "input_tokens": 10_000,
            "input_tokens_details": {"cached_tokens": 3_000},
            "output_tokens": 5_000,
            "output_tokens_details": {"reasoning_tokens": 4_000},
        }
    )
    assert compute_cost(reference_prices("openai/o4-mini"), usage).total_nanousd == 30_525_000


def test_deepseek_cache_hits_in_the_openai_shape() -> None:
    usage = openai_usage({"prompt_tokens": 1_000, "prompt_cache_hit_tokens": 600, "completion_tokens": 10})
    assert usage.cached_input_tokens == 600 and usage.uncached_input_tokens == 400


# --- Anthropic: input excludes cache reads and writes; 5-minute and 1-hour writes priced apart -----------


def test_anthropic_cache_reads_and_5m_and_1h_writes() -> None:
    usage = anthropic_usage(
        {
            "input_tokens": 1_234,
            "cache_read_input_tokens": 5_678,
            "cache_creation_input_tokens": 2_022,
            "cache_creation": {"ephemeral_5m_input_tokens": 910, "ephemeral_1h_input_tokens": 1_112},
            "output_tokens": 1_314,
        }
    )
    assert usage.total_input_tokens == 1_234 + 5_678 + 2_022
    # claude-3-5-haiku: $0.80 input, $0.08 cache read, $1 5m write, $1.60 1h write, $4 output.
    # 987.2 + 454.24 + 910 + 1779.2 + 5256 = 9386.64 micro-USD
    assert cost("anthropic/claude-3-5-haiku-latest", usage) == 9_386_640


def test_anthropic_without_the_cache_creation_split_writes_5_minutes() -> None:
    usage = anthropic_usage(
        {"input_tokens": 1_500, "cache_read_input_tokens": 20_000, "cache_creation_input_tokens": 8_000}
    )
    assert usage.cache_write_5m_tokens == 8_000 and usage.cache_write_1h_tokens == 0
    # claude-sonnet-4: 1,500 x 3 + 20,000 x 0.3 + 8,000 x 3.75 = 4500 + 6000 + 30000 micro-USD
    assert cost("anthropic/claude-sonnet-4-0", usage) == 40_500_000


def test_anthropic_web_searches_are_priced_per_search() -> None:
    usage = anthropic_usage(
        {
            "input_tokens": 2_100,
            "cache_read_input_tokens": 0,
            "output_tokens": 640,
            "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 1},
        }
    )
    assert usage.web_searches == 3
    # claude-sonnet-4-5: 2,100 x $3/M + 640 x $15/M + 3 x $0.01 = 6,300 + 9,600 + 30,000 micro-USD
    assert cost("anthropic/claude-sonnet-4-5", usage) == 45_900_000
    lines = {
        line.kind: line for line in compute_cost(reference_prices("anthropic/claude-sonnet-4-5"), usage).lines
    }
    assert lines["web_search"].quantity == 3 and lines["web_search"].unit_price_usd == Decimal("0.01")
    assert lines["web_search"].amount_nanousd == 30_000_000


def test_a_search_api_in_the_openai_shape_reports_its_searches() -> None:
    usage = openai_usage({"prompt_tokens": 40, "completion_tokens": 300, "num_search_queries": 2})
    assert usage.web_searches == 2
    prices = Prices(input=Decimal("0.000001"), output=Decimal("0.000001"), per_web_search=Decimal("0.005"))
    # 40 + 300 tokens at $1/M, 2 searches at $0.005: 340,000 + 10,000,000 nano-USD
    assert cost_nanousd(prices, usage) == compute_cost(prices, usage).total_nanousd == 10_340_000


def test_searches_are_free_where_the_model_prices_none() -> None:
    usage = anthropic_usage(
        {"input_tokens": 10, "output_tokens": 10, "server_tool_use": {"web_search_requests": 5}}
    )
    prices = reference_prices("simulated/fast")
    assert prices.per_web_search == 0
    assert "web_search" not in {line.kind for line in compute_cost(prices, usage).lines}


def test_reference_search_prices_come_from_genai_prices() -> None:
    assert reference_prices("anthropic/claude-opus-4-1").per_web_search == Decimal("0.010")
    assert reference_prices("google/gemini-2.5-pro").per_web_search == Decimal("0.035")
    notes = next(
        m for m in load_reference(["anthropic"]).models if m.id == "anthropic/claude-opus-4-1"
    ).details
    assert "web_searches_kcount" not in str(notes)  # metered now, not listed as unmetered


# --- Audio: a part of the input and output, priced at the model's audio prices ------------------------------


def test_openai_audio_tokens_are_priced_as_audio() -> None:
    usage = openai_usage(
        {
            "prompt_tokens": 1_000,
            "completion_tokens": 100,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 400},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 60},
        }
    )
    assert (usage.input_audio_tokens, usage.output_audio_tokens) == (400, 60)
    # gpt-audio: 600 x $2.50/M + 400 x $32/M + 40 x $10/M + 60 x $64/M
    # = 1,500 + 12,800 + 400 + 3,840 micro-USD
    assert cost("openai/gpt-audio", usage) == 18_540_000
    kinds = [line.kind for line in compute_cost(reference_prices("openai/gpt-audio"), usage).lines]
    assert kinds == ["input", "input_audio", "output", "output_audio"]


def test_openai_audio_is_taken_as_uncached_up_to_the_uncached_count() -> None:
    """Which cached tokens were audio is not reported: the audio is billed as uncached, up to that count."""
    usage = openai_usage(
        {
            "prompt_tokens": 1_000,
            "completion_tokens": 10,
            "prompt_tokens_details": {"cached_tokens": 800, "audio_tokens": 500},
        }
    )
    assert (usage.uncached_input_tokens, usage.input_audio_tokens) == (200, 200)


def test_gemini_audio_input_less_its_cached_audio() -> None:
    usage = gemini_usage(
        {
            "promptTokenCount": 1_000,
            "cachedContentTokenCount": 100,
            "candidatesTokenCount": 100,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": 600},
                {"modality": "AUDIO", "tokenCount": 400},
            ],
            "cacheTokensDetails": [{"modality": "AUDIO", "tokenCount": 100}],
        }
    )
    assert usage.input_audio_tokens == 300
    # gemini-2.5-flash: 600 x $0.30/M + 300 x $1/M + 100 cached x $0.03/M + 100 x $2.50/M
    assert compute_cost(reference_prices("google/gemini-2.5-flash"), usage).total_nanousd == 733_000


def test_audio_beyond_what_includes_it_is_refused() -> None:
    with pytest.raises(UsageError, match="audio input"):
        TokenUsage(input_tokens=10, input_audio_tokens=11)
    with pytest.raises(UsageError, match="audio output"):
        TokenUsage(
            output_tokens=10, reasoning_tokens=5, output_includes_reasoning=True, output_audio_tokens=6
        )


def test_reference_audio_prices_come_from_genai_prices() -> None:
    prices = reference_prices("openai/gpt-audio-mini")
    assert (prices.input_audio, prices.output_audio) == (Decimal("0.00001"), Decimal("0.00002"))
    model = next(m for m in load_reference(["openai"]).models if m.id == "openai/gpt-audio")
    assert "audio" not in str(model.details.get("unmetered_prices_per_unit", {}))
    assert reference_prices("openai/gpt-4o").input_audio is None  # priced as input


# --- Gemini: the prompt count includes cached content; thoughts are counted apart --------------------------


def test_gemini_thinking_tokens_are_extra_output() -> None:
    usage = gemini_usage(
        {
            "promptTokenCount": 10_000,
            "cachedContentTokenCount": 6_000,
            "candidatesTokenCount": 1_200,
            "thoughtsTokenCount": 3_400,
            "totalTokenCount": 14_600,
        }
    )
    assert usage.total_output_tokens == 4_600
    # gemini-2.5-flash: $0.30 input, $0.03 cached, $2.50 output (thoughts too).
    # 4,000 x 0.3 + 6,000 x 0.03 + 1,200 x 2.5 + 3,400 x 2.5 = 1200 + 180 + 3000 + 8500 micro-USD
    assert cost("google/gemini-2.5-flash", usage) == 12_880_000


# --- Long-context tiers: chosen by the request's total input tokens -------------------------------------


def test_gemini_25_pro_at_and_above_200k_input_tokens() -> None:
    at = gemini_usage(
        {
            "promptTokenCount": 200_000,
            "cachedContentTokenCount": 50_000,
            "candidatesTokenCount": 1_000,
            "thoughtsTokenCount": 2_000,
        }
    )
    # Base: 150,000 x 1.25 + 50,000 x 0.125 + 3,000 x 10 = 187500 + 6250 + 30000 micro-USD
    assert cost("google/gemini-2.5-pro", at) == 223_750_000
    above = gemini_usage(
        {
            "promptTokenCount": 200_001,
            "cachedContentTokenCount": 50_000,
            "candidatesTokenCount": 1_000,
            "thoughtsTokenCount": 2_000,
        }
    )
    # Over 200k every token costs the tier price: 150,001 x 2.5 + 50,000 x 0.25 + 3,000 x 15
    breakdown = compute_cost(reference_prices("google/gemini-2.5-pro"), above)
    assert breakdown.total_nanousd == 432_502_500 == cost("google/gemini-2.5-pro", above)
    assert breakdown.tier_above_input_tokens == 200_000


def test_anthropic_tier_counts_cached_input_towards_the_threshold() -> None:
    usage = anthropic_usage(
        {"input_tokens": 150_000, "cache_read_input_tokens": 60_000, "output_tokens": 1_000}
    )
    # 210,000 input tokens in all, over 200k: 150,000 x 6 + 60,000 x 0.6 + 1,000 x 22.5 micro-USD
    assert cost("anthropic/claude-sonnet-4-5", usage) == 958_500_000
    below = anthropic_usage(
        {"input_tokens": 140_000, "cache_read_input_tokens": 60_000, "output_tokens": 1_000}
    )
    # 200,000 exactly is not above: 140,000 x 3 + 60,000 x 0.3 + 1,000 x 15
    assert cost("anthropic/claude-sonnet-4-5", below) == 453_000_000


# --- Per-request fee ---------------------------------------------------------------------------------------


def test_per_request_fee_is_added_once() -> None:
    prices = reference_prices("simulated/reasoning")
    assert prices.per_request == Decimal("0.0001")
    usage = TokenUsage(input_tokens=1_000, output_tokens=500)
    # 1,000 x $2/M + 500 x $8/M + $0.0001 = 0.002 + 0.004 + 0.0001 USD
    breakdown = compute_cost(prices, usage)
    assert breakdown.total_nanousd == 6_100_000
    assert breakdown.lines[-1].kind == "request" and breakdown.lines[-1].amount_nanousd == 100_000


# --- OpenRouter: its reported cost is authoritative ---------------------------------------------------------


def test_openrouter_reported_cost() -> None:
    usage = {"prompt_tokens": 194, "completion_tokens": 2, "cost": 0.00014, "is_byok": False}
    assert openrouter_cost(usage).total_nanousd == 140_000


def test_openrouter_byok_adds_the_upstream_cost() -> None:
    usage = {
        "cost": 0.0000019,
        "is_byok": True,
        "cost_details": {"upstream_inference_cost": 0.000038},
    }
    breakdown = openrouter_cost(usage)
    assert breakdown.total_nanousd == 39_900
    assert [line.kind for line in breakdown.lines] == ["openrouter_reported", "upstream_inference_byok"]
    assert openrouter_cost({**usage, "is_byok": False}, byok=True).total_nanousd == 39_900
    with pytest.raises(UsageError):
        openrouter_cost({"cost": 0.1, "is_byok": True})
    with pytest.raises(UsageError):
        openrouter_cost({"prompt_tokens": 3})


def test_openrouter_sub_nano_amounts_round_half_even() -> None:
    assert openrouter_cost({"cost": "0.0000000015"}).total_nanousd == 2
    assert openrouter_cost({"cost": "0.0000000025"}).total_nanousd == 2
    assert openrouter_cost({"cost": 1e-9}).total_nanousd == 1


# --- Rounding once, and refusals ---------------------------------------------------------------------------


def test_the_total_is_rounded_once_not_line_by_line() -> None:
    prices = Prices(input=Decimal("0.0000000025"), output=Decimal("0.0000000025"))
    breakdown = compute_cost(prices, TokenUsage(input_tokens=1, output_tokens=1))
    assert [line.amount_nanousd for line in breakdown.lines] == [2, 2]  # 2.5 each, half-even, display only
    assert breakdown.total_nanousd == 5


def test_impossible_usage_is_refused() -> None:
    with pytest.raises(UsageError):
        openai_usage({"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 11}})
    with pytest.raises(UsageError):
        openai_usage({"completion_tokens": 1, "completion_tokens_details": {"reasoning_tokens": 2}})
    with pytest.raises(UsageError):
        anthropic_usage({"input_tokens": -1})
    with pytest.raises(UsageError):
        gemini_usage({"promptTokenCount": 1.5})
    with pytest.raises(ValueError):
        Prices(input=Decimal(-1), output=Decimal(0))


def test_missing_cache_prices_fall_back_to_input_like_genai_prices() -> None:
    # gpt-4o-2024-05-13 has no cached price: cached tokens pay full input.
    usage = openai_usage({"prompt_tokens": 1_000, "prompt_tokens_details": {"cached_tokens": 400}})
    assert cost("openai/gpt-4o-2024-05-13", usage) == 5_000_000


# --- Properties ---------------------------------------------------------------------------------------------

price = st.decimals(min_value=0, max_value=Decimal("0.001"), places=12, allow_nan=False, allow_infinity=False)
optional_price = st.none() | price
count = st.integers(min_value=0, max_value=5_000_000)


@st.composite
def priced(draw: st.DrawFn) -> Prices:
    base = Prices(
        input=draw(price),
        output=draw(price),
        cached_input_read=draw(optional_price),
        cache_write_5m=draw(optional_price),
        cache_write_1h=draw(optional_price),
        reasoning=draw(optional_price),
        per_request=draw(price),
        per_web_search=draw(price),
        input_audio=draw(optional_price),
        output_audio=draw(optional_price),
    )
    if not draw(st.booleans()):
        return base
    # Long-context tiers cost more, as every provider publishes them.
    bump = draw(price)
    tier = PriceTier(
        above_input_tokens=draw(st.integers(min_value=0, max_value=1_000_000)),
        input=base.input + bump,
        output=base.output + bump,
    )
    return replace(base, tiers=(tier,))


@st.composite
def usages(draw: st.DrawFn) -> TokenUsage:
    inputs, outputs = draw(count), draw(count)
    return TokenUsage(
        input_tokens=inputs,
        cached_input_tokens=draw(count),
        cache_write_5m_tokens=draw(count),
        cache_write_1h_tokens=draw(count),
        output_tokens=outputs,
        reasoning_tokens=draw(count),
        web_searches=draw(st.integers(min_value=0, max_value=50)),
        input_audio_tokens=draw(st.integers(min_value=0, max_value=inputs)),
        output_audio_tokens=draw(st.integers(min_value=0, max_value=outputs)),
    )


FIELDS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "web_searches",
)


@given(priced(), usages(), st.sampled_from(FIELDS), st.integers(min_value=1, max_value=1_000_000))
def test_cost_is_never_negative_and_grows_with_every_count(
    prices: Prices, usage: TokenUsage, field: str, more: int
) -> None:
    before = compute_cost(prices, usage)
    counts = {f: getattr(usage, f) for f in FIELDS} | {field: getattr(usage, field) + more}
    audio = {"input_audio_tokens": usage.input_audio_tokens, "output_audio_tokens": usage.output_audio_tokens}
    after = compute_cost(prices, TokenUsage(**counts, **audio))
    assert before.total_nanousd >= 0
    assert after.total_nanousd >= before.total_nanousd


@given(priced(), usages())
def test_the_total_is_the_rounded_sum_of_the_lines(prices: Prices, usage: TokenUsage) -> None:
    breakdown = compute_cost(prices, usage)
    exact = sum((line.amount_usd for line in breakdown.lines), Decimal(0))
    assert breakdown.total_usd == exact
    assert breakdown.total_nanousd == to_nanousd(exact)
    for line in breakdown.lines:
        assert line.amount_usd == line.unit_price_usd * line.quantity


fine_price = st.decimals(
    min_value=0, max_value=Decimal("0.01"), places=20, allow_nan=False, allow_infinity=False
)


@st.composite
def finely_priced(draw: st.DrawFn) -> Prices:
    """Prices with up to 20 decimals (below and above nano-USD) and up to three tiers of their own."""
    thresholds = sorted(set(draw(st.lists(st.integers(min_value=0, max_value=2_000_000), max_size=3))))
    tiers = tuple(
        PriceTier(
            above_input_tokens=t,
            input=draw(st.none() | fine_price),
            output=draw(st.none() | fine_price),
            cached_input_read=draw(st.none() | fine_price),
            cache_write_5m=draw(st.none() | fine_price),
            cache_write_1h=draw(st.none() | fine_price),
            reasoning=draw(st.none() | fine_price),
        )
        for t in thresholds
    )
    return Prices(
        input=draw(fine_price),
        output=draw(fine_price),
        cached_input_read=draw(st.none() | fine_price),
        cache_write_5m=draw(st.none() | fine_price),
        cache_write_1h=draw(st.none() | fine_price),
        reasoning=draw(st.none() | fine_price),
        per_request=draw(st.sampled_from([Decimal(0), Decimal("0.0004"), Decimal("0.00000000025")])),
        per_web_search=draw(st.sampled_from([Decimal(0), Decimal("0.01"), Decimal("0.0000000007")])),
        input_audio=draw(st.none() | fine_price),
        output_audio=draw(st.none() | fine_price),
        tiers=tiers,
    )


@given(priced() | finely_priced(), usages(), st.booleans(), st.booleans())
def test_the_integer_cost_equals_the_decimal_cost(
    prices: Prices, usage: TokenUsage, includes_cache: bool, includes_reasoning: bool
) -> None:
    """The gateway's integer pricing is compute_cost's total, to the nano-USD, on every tier boundary."""
    shaped = replace(
        usage,
        input_tokens=usage.input_tokens + (usage.cache_tokens if includes_cache else 0),
        output_tokens=usage.output_tokens + (usage.reasoning_tokens if includes_reasoning else 0),
        input_includes_cache=includes_cache,
        output_includes_reasoning=includes_reasoning,
    )
    assert cost_nanousd(prices, shaped) == compute_cost(prices, shaped).total_nanousd
    for tier in prices.tiers:  # just at and just above each threshold
        for total in (tier.above_input_tokens, tier.above_input_tokens + 1):
            at = TokenUsage(input_tokens=total, output_tokens=usage.output_tokens)
            assert cost_nanousd(prices, at) == compute_cost(prices, at).total_nanousd


@given(priced() | finely_priced(), st.integers(0, 3_000_000), st.integers(0, 300_000), st.integers(0, 20))
def test_the_plain_estimate_equals_the_full_integer_cost(
    prices: Prices, inputs: int, outputs: int, searches: int
) -> None:
    """The gateway's estimate (plain input and output, no TokenUsage) prices as cost_nanousd does."""
    usage = TokenUsage(input_tokens=inputs, output_tokens=outputs, web_searches=searches)
    assert plain_cost_nanousd(prices, inputs, outputs, searches) == cost_nanousd(prices, usage)
    for tier in prices.tiers:
        for total in (tier.above_input_tokens, tier.above_input_tokens + 1):
            at = TokenUsage(input_tokens=total, output_tokens=outputs)
            assert plain_cost_nanousd(prices, total, outputs) == compute_cost(prices, at).total_nanousd


@given(usages())
def test_counting_conventions_agree_on_the_same_request(usage: TokenUsage) -> None:
    """The same request reported OpenAI-style (inclusive) or Anthropic-style (exclusive) costs the same."""
    prices = reference_prices("simulated/reasoning")
    inclusive = TokenUsage(
        input_tokens=usage.input_tokens + usage.cache_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        cache_write_5m_tokens=usage.cache_write_5m_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        output_tokens=usage.output_tokens + usage.reasoning_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        web_searches=usage.web_searches,
        input_audio_tokens=usage.input_audio_tokens,
        output_audio_tokens=usage.output_audio_tokens,
        input_includes_cache=True,
        output_includes_reasoning=True,
    )
    assert compute_cost(prices, inclusive) == compute_cost(prices, usage)
