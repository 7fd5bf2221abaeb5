"""Prices and the cost of one request. Pure: no I/O, fast enough for the gateway hot path.

A request's cost is the sum, over each kind of token, of ``tokens x price per token`` in exact ``Decimal``
USD, rounded once, half-even, to integer nano-USD by :func:`tokenboard.kit.money.to_nanousd`. The lines are
shown for display; only the total is an amount.

Providers count tokens differently; the normalizers below turn each provider's usage object into one
:class:`TokenUsage` that records the counts as reported *and* how the provider counts them:

- OpenAI (chat and responses, and OpenAI-compatible APIs such as Mistral and DeepSeek): prompt tokens
  include cached tokens; completion tokens include reasoning tokens.
- Anthropic messages: ``input_tokens`` excludes cache reads and cache writes; 5-minute and 1-hour cache
  writes are priced apart.
- Gemini: ``promptTokenCount`` includes ``cachedContentTokenCount``; ``thoughtsTokenCount`` is separate
  from ``candidatesTokenCount``.
- OpenRouter: its reported ``usage.cost`` is authoritative (see :func:`openrouter_cost`).

Audio tokens (OpenAI's ``prompt_tokens_details.audio_tokens`` and ``completion_tokens_details.audio_tokens``,
Gemini's ``AUDIO`` modality counts) are a part of the input or output tokens, priced at the model's audio
prices where it has them. Server-side web searches are priced per search, beside the tokens: Anthropic
reports them as ``usage.server_tool_use.web_search_requests``, OpenAI-compatible search APIs (Perplexity) as
``usage.num_search_queries``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from tokenboard.kit.money import nanousd_from_scaled, to_nanousd

# Enough digits that no product or sum is ever rounded before the one rounding to nano-USD.
_PRECISION = 80
_ZERO = Decimal(0)


class UsageError(ValueError):
    """A usage object that cannot be priced: negative or non-integer counts, parts larger than the whole."""


@dataclass(frozen=True, slots=True)
class PriceTier:
    """Long-context prices: they apply to every token of a request whose total input exceeds the threshold.

    A ``None`` price keeps the base price of that kind.
    """

    above_input_tokens: int
    input: Decimal | None = None
    output: Decimal | None = None
    cached_input_read: Decimal | None = None
    cache_write_5m: Decimal | None = None
    cache_write_1h: Decimal | None = None
    reasoning: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per token for each kind of token, plus a fee per request and a fee per server-side web search.

    ``None`` means "priced like": cached reads and 5-minute cache writes like input, 1-hour cache writes like
    5-minute ones, reasoning like output, audio input and output like input and output. Tiers are sorted by
    threshold; the highest one exceeded applies (audio prices have no tiers).
    """

    input: Decimal
    output: Decimal
    cached_input_read: Decimal | None = None
    cache_write_5m: Decimal | None = None
    cache_write_1h: Decimal | None = None
    reasoning: Decimal | None = None
    per_request: Decimal = _ZERO
    tiers: tuple[PriceTier, ...] = ()
    per_web_search: Decimal = _ZERO
    input_audio: Decimal | None = None
    output_audio: Decimal | None = None
    # The resolved rates of the base prices and of each tier as integers over one power of ten, for
    # :func:`cost_nanousd`: (tier threshold, scaled rates), highest threshold first, base last.
    scaled: tuple[tuple[int, _Scaled], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in _OPTIONAL_KINDS:
            _check_price(name, getattr(self, name))
        _check_price("per_request", self.per_request)
        _check_price("per_web_search", self.per_web_search)
        for tier in self.tiers:
            if tier.above_input_tokens < 0:
                raise ValueError("a tier threshold cannot be negative")
            for name in ("input", "output", "cached_input_read", "cache_write_5m", "cache_write_1h"):
                _check_price(name, getattr(tier, name))
        thresholds = [tier.above_input_tokens for tier in self.tiers]
        if thresholds != sorted(set(thresholds)):
            raise ValueError("tiers must have distinct thresholds in ascending order")
        # A request with more input tokens than a tier's threshold (and no more than the next one's) gets
        # exactly that tier's rates; -1 stands below every count for the base prices.
        scaled = [(t, _scale(self.rates(t + 1))) for t in reversed(thresholds)]
        scaled.append((-1, _scale(self.rates(0))))
        object.__setattr__(self, "scaled", tuple(scaled))

    def rates(self, total_input_tokens: int) -> Rates:
        """The price of each kind for a request with this many input tokens in all (cached ones included)."""
        input_, output = self.input, self.output
        cached, write_5m, write_1h, reasoning = (
            self.cached_input_read,
            self.cache_write_5m,
            self.cache_write_1h,
            self.reasoning,
        )
        applied: int | None = None
        for tier in reversed(self.tiers):
            if total_input_tokens > tier.above_input_tokens:
                applied = tier.above_input_tokens
                input_ = tier.input if tier.input is not None else input_
                output = tier.output if tier.output is not None else output
                cached = tier.cached_input_read if tier.cached_input_read is not None else cached
                write_5m = tier.cache_write_5m if tier.cache_write_5m is not None else write_5m
                write_1h = tier.cache_write_1h if tier.cache_write_1h is not None else write_1h
                reasoning = tier.reasoning if tier.reasoning is not None else reasoning
                break
        write_5m = write_5m if write_5m is not None else input_
        return Rates(
            input=input_,
            cached_input_read=cached if cached is not None else input_,
            cache_write_5m=write_5m,
            cache_write_1h=write_1h if write_1h is not None else write_5m,
            output=output,
            reasoning=reasoning if reasoning is not None else output,
            per_request=self.per_request,
            per_web_search=self.per_web_search,
            input_audio=self.input_audio if self.input_audio is not None else input_,
            output_audio=self.output_audio if self.output_audio is not None else output,
            tier_above_input_tokens=applied,
        )


@dataclass(frozen=True, slots=True)
class Rates:
    """Prices resolved for one request: every kind has a price, the tier is chosen."""

    input: Decimal
    cached_input_read: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    output: Decimal
    reasoning: Decimal
    per_request: Decimal
    per_web_search: Decimal
    input_audio: Decimal
    output_audio: Decimal
    tier_above_input_tokens: int | None


# (decimals, input, cached input read, cache write 5m, cache write 1h, output, reasoning, per request, per web
# search, input audio, output audio): each price times 10**decimals, an exact integer.
_Scaled = tuple[int, int, int, int, int, int, int, int, int, int, int]


def _scale(rates: Rates) -> _Scaled:
    prices = (
        rates.input,
        rates.cached_input_read,
        rates.cache_write_5m,
        rates.cache_write_1h,
        rates.output,
        rates.reasoning,
        rates.per_request,
        rates.per_web_search,
        rates.input_audio,
        rates.output_audio,
    )
    decimals = max(0, *(-int(p.as_tuple().exponent) for p in prices))
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        ints = [int(p.scaleb(decimals)) for p in prices]
    return (decimals, *ints)  # type: ignore[return-value]


_OPTIONAL_KINDS = (
    "input",
    "output",
    "cached_input_read",
    "cache_write_5m",
    "cache_write_1h",
    "reasoning",
    "input_audio",
    "output_audio",
)


def _check_price(name: str, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise ValueError(f"price {name} must be a finite, non-negative Decimal, not {value!r}")


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts as the provider reported them, and how that provider counts them.

    With ``input_includes_cache`` the input count contains the cached reads and the cache writes (OpenAI,
    Gemini); without it they are extra (Anthropic). With ``output_includes_reasoning`` the output count
    contains the reasoning tokens (OpenAI); without it they are extra (Gemini thoughts).
    """

    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    web_searches: int = 0
    # Of the uncached input and of the output other than reasoning: how many tokens were audio.
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0
    input_includes_cache: bool = False
    output_includes_reasoning: bool = False
    requests: int = 1

    def __post_init__(self) -> None:
        for name in (
            "input_tokens",
            "cached_input_tokens",
            "cache_write_5m_tokens",
            "cache_write_1h_tokens",
            "output_tokens",
            "reasoning_tokens",
            "web_searches",
            "input_audio_tokens",
            "output_audio_tokens",
            "requests",
        ):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise UsageError(f"{name} must be a non-negative integer, not {value!r}")
        if self.input_includes_cache and self.input_tokens < self.cache_tokens:
            raise UsageError(
                f"cached and cache-write tokens ({self.cache_tokens}) exceed the input tokens "
                f"({self.input_tokens}) that include them"
            )
        if self.output_includes_reasoning and self.output_tokens < self.reasoning_tokens:
            raise UsageError(
                f"reasoning tokens ({self.reasoning_tokens}) exceed the output tokens "
                f"({self.output_tokens}) that include them"
            )
        if self.input_audio_tokens > self.uncached_input_tokens:
            raise UsageError(
                f"audio input tokens ({self.input_audio_tokens}) exceed the uncached input tokens "
                f"({self.uncached_input_tokens}) that include them"
            )
        if self.output_audio_tokens > self.plain_output_tokens:
            raise UsageError(
                f"audio output tokens ({self.output_audio_tokens}) exceed the output tokens "
                f"({self.plain_output_tokens}) that include them"
            )

    @property
    def cache_tokens(self) -> int:
        return self.cached_input_tokens + self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def uncached_input_tokens(self) -> int:
        """Input tokens billed at the plain input price."""
        if self.input_includes_cache:
            return self.input_tokens - self.cache_tokens
        return self.input_tokens

    @property
    def total_input_tokens(self) -> int:
        """Every input token of the request, cached or not: what long-context tiers are chosen by."""
        return self.uncached_input_tokens + self.cache_tokens

    @property
    def plain_output_tokens(self) -> int:
        """Output tokens billed at the plain output price (reasoning apart)."""
        if self.output_includes_reasoning:
            return self.output_tokens - self.reasoning_tokens
        return self.output_tokens

    @property
    def total_output_tokens(self) -> int:
        return self.plain_output_tokens + self.reasoning_tokens


@dataclass(frozen=True, slots=True)
class CostLine:
    """One kind of token: ``quantity x unit_price_usd = amount_usd`` (exact), and that amount rounded."""

    kind: str
    quantity: int
    unit_price_usd: Decimal
    amount_usd: Decimal

    @property
    def amount_nanousd(self) -> int:
        """For display only: the total is rounded once from the exact amounts, not from these."""
        with localcontext() as ctx:
            ctx.prec = _PRECISION
            return to_nanousd(self.amount_usd)


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    lines: tuple[CostLine, ...]
    total_usd: Decimal
    total_nanousd: int
    tier_above_input_tokens: int | None = None


def compute_cost(prices: Prices, usage: TokenUsage) -> CostBreakdown:
    """The cost of one request: exact Decimal lines, summed, rounded once to nano-USD."""
    rates = prices.rates(usage.total_input_tokens)
    quantities = (
        ("input", usage.uncached_input_tokens - usage.input_audio_tokens, rates.input),
        ("input_audio", usage.input_audio_tokens, rates.input_audio),
        ("cached_input_read", usage.cached_input_tokens, rates.cached_input_read),
        ("cache_write_5m", usage.cache_write_5m_tokens, rates.cache_write_5m),
        ("cache_write_1h", usage.cache_write_1h_tokens, rates.cache_write_1h),
        ("output", usage.plain_output_tokens - usage.output_audio_tokens, rates.output),
        ("output_audio", usage.output_audio_tokens, rates.output_audio),
        ("reasoning", usage.reasoning_tokens, rates.reasoning),
        ("request", usage.requests if rates.per_request else 0, rates.per_request),
        ("web_search", usage.web_searches if rates.per_web_search else 0, rates.per_web_search),
    )
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        lines = tuple(
            CostLine(kind, quantity, price, price * quantity)
            for kind, quantity, price in quantities
            if quantity
        )
        total = sum((line.amount_usd for line in lines), _ZERO)
        return CostBreakdown(lines, total, to_nanousd(total), rates.tier_above_input_tokens)


def cost_nanousd(prices: Prices, usage: TokenUsage) -> int:
    """``compute_cost(prices, usage).total_nanousd`` in integer arithmetic, for the gateway's hot path.

    Exact for the same reason: every price is an integer over ``10**decimals``, so the sum of tokens x
    prices is an integer over that power of ten, rounded once, half-even, by the money module.
    """
    total_input = usage.total_input_tokens
    scaled = prices.scaled[-1][1]  # the base prices (threshold -1: every request is above it)
    for threshold, rates in prices.scaled:
        if total_input > threshold:
            scaled = rates
            break
    (
        decimals,
        input_,
        cached,
        write_5m,
        write_1h,
        output,
        reasoning,
        per_request,
        per_search,
        in_audio,
        out_audio,
    ) = scaled
    amount = (
        (usage.uncached_input_tokens - usage.input_audio_tokens) * input_
        + usage.input_audio_tokens * in_audio
        + usage.cached_input_tokens * cached
        + usage.cache_write_5m_tokens * write_5m
        + usage.cache_write_1h_tokens * write_1h
        + (usage.plain_output_tokens - usage.output_audio_tokens) * output
        + usage.output_audio_tokens * out_audio
        + usage.reasoning_tokens * reasoning
        + usage.requests * per_request
        + usage.web_searches * per_search
    )
    return nanousd_from_scaled(amount, decimals)


def plain_cost_nanousd(prices: Prices, input_tokens: int, output_tokens: int, web_searches: int = 0) -> int:
    """``cost_nanousd`` of a request of plain input and output tokens only (no cache, no reasoning), and
    ``web_searches`` searches.

    The gateway's estimate of a request's most cost, before it is forwarded (for a model without audio
    prices; one with them is held as if every token were audio where that costs more): the same integer sum
    without building a :class:`TokenUsage` for it (its checks were most of the estimate's time).
    """
    scaled = prices.scaled[-1][1]
    for threshold, rates in prices.scaled:
        if input_tokens > threshold:
            scaled = rates
            break
    decimals, input_, _, _, _, output, _, per_request, per_search, _, _ = scaled
    amount = input_tokens * input_ + output_tokens * output + per_request + web_searches * per_search
    return nanousd_from_scaled(amount, decimals)


# --- Usage normalizers: one per provider usage shape ---------------------------------------------------


def _count(data: Mapping[str, Any] | None, *keys: str) -> int:
    """The first present count among ``keys``; absent or null is 0."""
    if not data:
        return 0
    for key in keys:
        value = data.get(key)
        if value is None:
            continue
        if type(value) is not int or value < 0:
            raise UsageError(f"usage field {key!r} must be a non-negative integer, not {value!r}")
        return value
    return 0


def _details(data: Mapping[str, Any], *keys: str) -> Mapping[str, Any] | None:
    for key in keys:
        value = data.get(key)
        if isinstance(value, Mapping):
            return value
    return None


def openai_usage(usage: Mapping[str, Any]) -> TokenUsage:
    """OpenAI chat completions or responses ``usage`` (and OpenAI-compatible APIs: Mistral, DeepSeek, ...).

    ``prompt_tokens`` includes ``prompt_tokens_details.cached_tokens``; ``completion_tokens`` includes
    ``completion_tokens_details.reasoning_tokens``. The responses API names them ``input_tokens`` /
    ``output_tokens`` with ``*_details`` alike. DeepSeek reports cache hits as ``prompt_cache_hit_tokens``;
    Perplexity its web searches as ``num_search_queries``. ``audio_tokens`` in either details are the audio
    part of the count; which of the cached tokens were audio is not said, so the audio is taken as uncached
    (up to the uncached count): audio costs more than text, and a request is never under-billed.
    """
    input_details = _details(usage, "prompt_tokens_details", "input_tokens_details")
    output_details = _details(usage, "completion_tokens_details", "output_tokens_details")
    cached = _count(input_details, "cached_tokens") or _count(usage, "prompt_cache_hit_tokens")
    prompt = _count(usage, "prompt_tokens", "input_tokens")
    completion = _count(usage, "completion_tokens", "output_tokens")
    reasoning = _count(output_details, "reasoning_tokens")
    return TokenUsage(
        input_tokens=prompt,
        cached_input_tokens=cached,
        output_tokens=completion,
        reasoning_tokens=reasoning,
        web_searches=_count(usage, "num_search_queries"),
        input_audio_tokens=max(0, min(_count(input_details, "audio_tokens"), prompt - cached)),
        output_audio_tokens=max(0, min(_count(output_details, "audio_tokens"), completion - reasoning)),
        input_includes_cache=True,
        output_includes_reasoning=True,
    )


def anthropic_usage(usage: Mapping[str, Any]) -> TokenUsage:
    """Anthropic messages ``usage``: ``input_tokens`` excludes cache reads and cache writes.

    ``cache_creation`` splits the writes into ``ephemeral_5m_input_tokens`` and ``ephemeral_1h_input_tokens``
    (priced apart); without it, every ``cache_creation_input_tokens`` is a 5-minute write.
    ``server_tool_use.web_search_requests`` counts the searches of the web search tool (priced per search).
    """
    creation = _details(usage, "cache_creation")
    if creation is not None:
        write_5m = _count(creation, "ephemeral_5m_input_tokens")
        write_1h = _count(creation, "ephemeral_1h_input_tokens")
    else:
        write_5m, write_1h = _count(usage, "cache_creation_input_tokens"), 0
    return TokenUsage(
        input_tokens=_count(usage, "input_tokens"),
        cached_input_tokens=_count(usage, "cache_read_input_tokens"),
        cache_write_5m_tokens=write_5m,
        cache_write_1h_tokens=write_1h,
        output_tokens=_count(usage, "output_tokens"),
        web_searches=_count(_details(usage, "server_tool_use"), "web_search_requests"),
        input_includes_cache=False,
        output_includes_reasoning=True,
    )


def gemini_usage(usage_metadata: Mapping[str, Any]) -> TokenUsage:
    """Gemini ``usageMetadata``: the prompt count includes cached content; thoughts are counted apart.

    Tool-use prompt tokens are input tokens too. ``promptTokensDetails`` and ``candidatesTokensDetails`` split
    the counts by modality; the ``AUDIO`` part of the prompt, less the cached audio
    (``cacheTokensDetails``), and of the candidates are priced as audio.
    """
    prompt = _count(usage_metadata, "promptTokenCount") + _count(usage_metadata, "toolUsePromptTokenCount")
    cached = _count(usage_metadata, "cachedContentTokenCount")
    output = _count(usage_metadata, "candidatesTokenCount")
    audio_in = _modality(usage_metadata, "promptTokensDetails") - _modality(
        usage_metadata, "cacheTokensDetails"
    )
    return TokenUsage(
        input_tokens=prompt,
        cached_input_tokens=cached,
        output_tokens=output,
        reasoning_tokens=_count(usage_metadata, "thoughtsTokenCount"),
        input_audio_tokens=max(0, min(audio_in, prompt - cached)),
        output_audio_tokens=min(_modality(usage_metadata, "candidatesTokensDetails"), output),
        input_includes_cache=True,
        output_includes_reasoning=False,
    )


def _modality(usage_metadata: Mapping[str, Any], key: str, modality: str = "AUDIO") -> int:
    """Gemini's count of one modality in a ``*TokensDetails`` list (``{"modality": "AUDIO", "tokenCount": 5}``
    items)."""
    details = usage_metadata.get(key)
    if not isinstance(details, list):
        return 0
    return sum(
        _count(item, "tokenCount")
        for item in details
        if isinstance(item, Mapping) and item.get("modality") == modality
    )


def _usd(value: object, field: str) -> Decimal:
    """A reported USD amount. A JSON number arrives as a float: read its shortest decimal text instead."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise UsageError(f"{field} must be a number, not {value!r}")
    try:
        amount = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation as exc:
        raise UsageError(f"{field} must be a number, not {value!r}") from exc
    if not amount.is_finite() or amount < 0:
        raise UsageError(f"{field} must be a finite, non-negative amount, not {value!r}")
    return amount


def openrouter_cost(usage: Mapping[str, Any], *, byok: bool | None = None) -> CostBreakdown:
    """The cost OpenRouter reports for a request: authoritative, we do not recompute it from tokens.

    ``usage.cost`` is what OpenRouter charged the account. With bring-your-own-key (``usage.is_byok``, or
    ``byok=True``) the upstream provider bills the key owner as well: ``cost_details.upstream_inference_cost``
    is added, so the total is everything the request cost.
    """
    if usage.get("cost") is None:
        raise UsageError("OpenRouter usage has no reported cost")
    is_byok = bool(usage.get("is_byok")) if byok is None else byok
    amounts = [("openrouter_reported", _usd(usage["cost"], "usage.cost"))]
    if is_byok:
        details = _details(usage, "cost_details") or {}
        upstream = details.get("upstream_inference_cost")
        if upstream is None:
            raise UsageError("a bring-your-own-key OpenRouter usage has no upstream_inference_cost")
        amounts.append(("upstream_inference_byok", _usd(upstream, "upstream_inference_cost")))
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        lines = tuple(CostLine(kind, 1, amount, amount) for kind, amount in amounts)
        total = sum((amount for _, amount in amounts), _ZERO)
        return CostBreakdown(lines, total, to_nanousd(total))
