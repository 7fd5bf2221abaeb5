"""The built-in simulated provider: answers like the OpenAI and Anthropic APIs without leaving the process.

The gateway reaches every upstream through a pooled ``httpx.AsyncClient``; for the ``simulated`` provider
that client's transport is a ``SimulatedTransport``, so simulated requests take the real code path::

    httpx.AsyncClient(transport=SimulatedTransport(), base_url=SIMULATED_BASE_URL)

Endpoints, in the real APIs' wire formats: ``POST /v1/chat/completions`` (OpenAI; JSON or SSE, ``n``,
``max_tokens``/``max_completion_tokens``, ``stream_options.include_usage``), ``POST /v1/messages``
(Anthropic; JSON or SSE), ``POST /v1/embeddings`` (float or base64 vectors) and ``GET /v1/models``
(Anthropic's shape when the request carries ``anthropic-version``). Every response carries
``x-tokenboard-simulated: true``. An unknown path is a 404 in OpenAI's error shape; a body that is not
valid JSON, or lacks what the real API requires, is a 400 in the provider's own error shape.

A reply is a function of the request body (``stream`` and ``stream_options`` aside, so a stream and a plain
response to the same request agree); only ids and timestamps are fresh. How tokens are counted:

- prompt: ``ceil(len / 4)`` per text piece (system prompt, message text, tool calls and results, the JSON
  of each tool definition), ``IMAGE_TOKENS`` per image; an embedding input the same, or its length when
  it is a token array;
- reply: one token per word of plausible filler text (``simulated/echo`` repeats the last user message in
  four-character tokens instead); its length grows with the prompt and stops at the request's max tokens
  (finish reason ``length`` / stop reason ``max_tokens``); every one of the ``n`` choices is billed;
- reasoning: models whose curated catalog entry has a ``reasoning`` price also spend hidden reasoning
  tokens, ``REASONING_SHARE`` of the completion, within the same max tokens (OpenAI
  ``completion_tokens_details.reasoning_tokens``; Anthropic ``output_tokens_details.thinking_tokens`` when
  the request enables ``thinking``);
- prompt caching (``prompt_caching=True``): OpenAI-style automatic caching of a repeated prompt prefix of
  at least 1024 tokens, in steps of 128 (``cached_tokens``); Anthropic-style caching up to the request's
  ``cache_control`` breakpoints (a new prefix is written, with its ``ttl``, a known one read).

Latency is realistic unless scaled down: about 200-400 ms before the first token (more for a reasoning
model, which thinks first), then 15-30 ms per token; a plain response arrives after the whole generation
time. ``latency_scale`` multiplies every wait, and 0 never sleeps. Streams are produced as they are read:
closing the response stops the generator where it is, and every wait is a cancellable ``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import random
import struct
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import httpx

from tokenboard.catalog.reference import curated

__all__ = [
    "CHARS_PER_TOKEN",
    "IMAGE_TOKENS",
    "REASONING_SHARE",
    "SIMULATED_BASE_URL",
    "SIMULATED_HEADER",
    "ModelProfile",
    "SimulatedStream",
    "SimulatedTransport",
    "count_prompt_tokens",
    "count_text_tokens",
    "profile_for",
]

SIMULATED_BASE_URL = "http://simulated.invalid"
SIMULATED_HEADER = "x-tokenboard-simulated"
PROVIDER_ID = "simulated"
CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 85
REASONING_SHARE = 0.6  # of all completion tokens, for a model the catalog prices for reasoning
EMBEDDING_DIMENSIONS = 1536
MAX_N = 128
MAX_ECHO_TOKENS = 4096
CACHE_MIN_TOKENS = 1024
CACHE_STEP_TOKENS = 128
CACHE_CAPACITY = 8192
REASONING_SECONDS_PER_TOKEN = 0.004  # hidden thinking is faster than visible tokens, but it delays the first
EMBEDDING_SECONDS = (0.05, 0.1)
MODELS_CREATED = 1_735_689_600  # 2025-01-01, when the simulated models were "released"

Provider = Literal["openai", "anthropic"]

_WORDS = (
    "the a of and to in is that it for on with as by this we you they data model token request answer "
    "system user budget cost usage team report price time value result question reply example simple "
    "clear small large fast good new first next each every other more most many some any all can will "
    "would should could may must help show give make take find keep send read write check count note "
    "build run test use plan track measure compare explain describe suggest consider review today "
    "soon later here there now then also only just still even well very quite rather"
).split()

_OPENAI_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    404: ("invalid_request_error", "unknown_url"),
}
_ANTHROPIC_ERRORS: dict[int, str] = {400: "invalid_request_error", 404: "not_found_error"}


# --- models ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelProfile:
    """How one simulated model behaves: its speed, its share of hidden reasoning, whether it echoes."""

    first_token_s: tuple[float, float] = (0.2, 0.4)
    token_interval_s: tuple[float, float] = (0.015, 0.03)
    reasoning_share: float = 0.0
    echo: bool = False


_PROFILES = {
    "echo": ModelProfile(echo=True),
    "fast": ModelProfile(first_token_s=(0.2, 0.26), token_interval_s=(0.015, 0.02)),
    "reasoning": ModelProfile(first_token_s=(0.3, 0.4), token_interval_s=(0.02, 0.03)),
}


@cache
def _reasoning_models() -> frozenset[str]:
    """Simulated models (without the provider prefix) that the curated catalog prices for reasoning."""
    specs: dict[str, Any] = curated().get("simulated_models", {})
    return frozenset(
        model_id.removeprefix(f"{PROVIDER_ID}/")
        for model_id, spec in specs.items()
        if "reasoning" in (spec.get("prices_per_mtok") or {})
    )


def profile_for(model: str) -> ModelProfile:
    """The profile of ``model`` (with or without the ``simulated/`` prefix); unknown names get the default."""
    name = model.removeprefix(f"{PROVIDER_ID}/")
    profile = _PROFILES.get(name, ModelProfile())
    if name in _reasoning_models():
        profile = ModelProfile(profile.first_token_s, profile.token_interval_s, REASONING_SHARE, profile.echo)
    return profile


def _listed_models() -> list[str]:
    specs: dict[str, Any] = curated().get("simulated_models", {})
    return [model_id.removeprefix(f"{PROVIDER_ID}/") for model_id in specs]


# --- the prompt ----------------------------------------------------------------------------------------


def count_text_tokens(text: str) -> int:
    """Tokens of one text piece: one per four characters, rounded up."""
    return -(-len(text) // CHARS_PER_TOKEN)


@dataclass
class _Piece:
    """One piece of a prompt, in order; ``cache_ttl`` marks an Anthropic cache breakpoint after it."""

    key: str
    tokens: int
    cache_ttl: str | None = None


def _text_piece(text: str) -> _Piece:
    return _Piece(text, count_text_tokens(text))


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _content_pieces(content: Any) -> list[_Piece]:
    """Pieces of a message ``content`` or ``system`` prompt: a string or a list of typed blocks."""
    if isinstance(content, str):
        return [_text_piece(content)]
    if not isinstance(content, list):
        return []
    pieces: list[_Piece] = []
    for block in content:
        found = _block_pieces(block)
        if found and isinstance(block, dict) and isinstance(block.get("cache_control"), dict):
            found[-1].cache_ttl = str(block["cache_control"].get("ttl") or "5m")
        pieces += found
    return pieces


def _block_pieces(block: Any) -> list[_Piece]:
    if isinstance(block, str):
        return [_text_piece(block)]
    if not isinstance(block, dict):
        return []
    kind = block.get("type")
    if isinstance(block.get("text"), str):
        return [_text_piece(block["text"])]
    if kind in ("image", "image_url", "input_image"):
        return [_Piece(_compact(block), IMAGE_TOKENS)]
    if kind == "tool_use":
        return [_text_piece(_compact({"name": block.get("name"), "input": block.get("input")}))]
    if kind == "tool_result":
        return _content_pieces(block.get("content"))
    if kind == "thinking" and isinstance(block.get("thinking"), str):
        return [_text_piece(block["thinking"])]
    return [_text_piece(_compact(block))]


def _list(value: Any) -> list[Any]:
    """``value`` when it is a list, else nothing: the prompt is read from any body without failing."""
    return value if isinstance(value, list) else []


def _prompt_pieces(body: Mapping[str, Any]) -> list[_Piece]:
    """Tool definitions, system prompt and messages, in the order a provider caches them."""
    pieces: list[_Piece] = []
    for tool in _list(body.get("tools")):
        piece = _text_piece(_compact(tool))
        if isinstance(tool, dict) and isinstance(tool.get("cache_control"), dict):
            piece.cache_ttl = str(tool["cache_control"].get("ttl") or "5m")
        pieces.append(piece)
    pieces += _content_pieces(body.get("system"))
    for message in _list(body.get("messages")):
        if not isinstance(message, dict):
            continue
        pieces += _content_pieces(message.get("content"))
        for call in _list(message.get("tool_calls")):
            pieces.append(_text_piece(_compact(call.get("function") if isinstance(call, dict) else call)))
    return pieces


def count_prompt_tokens(body: Mapping[str, Any]) -> int:
    """Every prompt token of a chat or messages body as this provider counts them, caching aside (the
    ``input_tokens`` it reports when nothing is cached).

    Also the gateway's estimate for ``/v1/messages/count_tokens`` on providers that do not count: close to a
    real tokenizer for prose, with no tokenizer to ship. Any JSON object is read without failing.
    """
    return sum(piece.tokens for piece in _prompt_pieces(body))


def _last_user_text(body: Mapping[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                texts = [b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)]
                return " ".join(texts)
    return ""


@dataclass(frozen=True)
class _PromptUsage:
    tokens: int  # every prompt token, cached or not
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0


class _PrefixCache:
    """Prompt prefixes seen recently, as digests, so that a repeated prefix is reported as cached."""

    def __init__(self, capacity: int = CACHE_CAPACITY) -> None:
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._capacity = capacity

    def automatic(self, model: str, pieces: list[_Piece]) -> _PromptUsage:
        """OpenAI: the longest known prefix of at least 1024 tokens, in steps of 128, is read from cache."""
        total = sum(p.tokens for p in pieces)
        text = "\x1e".join(p.key for p in pieces)
        digest, cached, start = hashlib.sha256(model.encode() + b"\x00"), 0, 0
        for tokens in range(CACHE_MIN_TOKENS, total + 1, CACHE_STEP_TOKENS):
            end = min(len(text), tokens * CHARS_PER_TOKEN)
            digest.update(text[start:end].encode())
            start = end
            key = digest.copy().digest() + tokens.to_bytes(8, "big")
            if self._remember(key):
                cached = tokens
        return _PromptUsage(total, cache_read=cached)

    def breakpoints(self, model: str, pieces: list[_Piece]) -> _PromptUsage:
        """Anthropic: the prefix up to the last ``cache_control`` is read when known, else written."""
        total = sum(p.tokens for p in pieces)
        digest, tokens, read = hashlib.sha256(model.encode() + b"\x00"), 0, 0
        marks: list[tuple[int, str]] = []
        for piece in pieces:
            digest.update(piece.key.encode() + b"\x1e")
            tokens += piece.tokens
            if piece.cache_ttl is not None and tokens >= CACHE_MIN_TOKENS:
                marks.append((tokens, piece.cache_ttl))
                if self._remember(digest.copy().digest()):
                    read = tokens
        if not marks or marks[-1][0] <= read:
            return _PromptUsage(total, cache_read=read)
        written, ttl = marks[-1][0] - read, marks[-1][1]
        if ttl == "1h":
            return _PromptUsage(total, cache_read=read, cache_write_1h=written)
        return _PromptUsage(total, cache_read=read, cache_write_5m=written)

    def _remember(self, key: bytes) -> bool:
        """Whether ``key`` was seen before; either way it is now the most recent."""
        known = key in self._seen
        self._seen[key] = None
        self._seen.move_to_end(key)
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return known


# --- the reply -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Choice:
    tokens: list[str]  # the visible text, token by token
    reasoning: int
    truncated: bool

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def completion_tokens(self) -> int:
        return len(self.tokens) + self.reasoning


@dataclass(frozen=True)
class _Reply:
    prompt: _PromptUsage
    choices: list[_Choice]
    first_token_s: float
    token_interval_s: float

    @property
    def completion_tokens(self) -> int:
        return sum(choice.completion_tokens for choice in self.choices)

    @property
    def generation_s(self) -> float:
        return self.first_token_s + self.token_interval_s * max(len(c.tokens) for c in self.choices)


def _seed(body: Mapping[str, Any]) -> str:
    """The same request, streamed or not, gets the same seed."""
    canonical = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, default=str).encode()).hexdigest()


def _filler(rng: random.Random, count: int) -> list[str]:
    """``count`` tokens of plausible sentences, one word each."""
    tokens: list[str] = []
    sentence_left = 0
    for _ in range(count):
        word = rng.choice(_WORDS)
        if sentence_left == 0:
            word, sentence_left = word.capitalize(), rng.randint(5, 14)
        sentence_left -= 1
        if sentence_left == 0:
            word += "."
        tokens.append(word if not tokens else " " + word)
    return tokens


def _echo(text: str) -> list[str]:
    return [text[i : i + CHARS_PER_TOKEN] for i in range(0, len(text), CHARS_PER_TOKEN)][:MAX_ECHO_TOKENS]


def _choice(
    body: Mapping[str, Any], profile: ModelProfile, rng: random.Random, prompt_tokens: int, cap: int | None
) -> _Choice:
    echoed = _echo(_last_user_text(body)) if profile.echo else []
    visible = echoed or _filler(rng, 16 + rng.randrange(48) + min(prompt_tokens // 8, 400))
    share = profile.reasoning_share
    reasoning = round(len(visible) * share / (1 - share)) if share else 0
    wanted = len(visible) + reasoning
    if cap is not None and wanted > cap:
        reasoning = min(reasoning, math.floor(cap * share))
        visible = visible[: cap - reasoning]
    return _Choice(visible, reasoning, truncated=len(visible) + reasoning < wanted)


def _reply(
    body: Mapping[str, Any],
    prompt: _PromptUsage,
    cap: int | None,
    n: int = 1,
    reasoning: bool = True,
) -> _Reply:
    profile = profile_for(str(body["model"]))
    if not reasoning:
        profile = ModelProfile(profile.first_token_s, profile.token_interval_s, 0.0, profile.echo)
    seed = _seed(body)
    choices = [_choice(body, profile, random.Random(f"{seed}:{i}"), prompt.tokens, cap) for i in range(n)]
    timing = random.Random(f"{seed}:timing")
    thinking = max(choice.reasoning for choice in choices) * REASONING_SECONDS_PER_TOKEN
    return _Reply(
        prompt=prompt,
        choices=choices,
        first_token_s=timing.uniform(*profile.first_token_s) + thinking,
        token_interval_s=timing.uniform(*profile.token_interval_s),
    )


def _embedding(model: str, item: str | list[int], dimensions: int) -> list[float]:
    """A deterministic unit vector, exact in float32 so that its base64 form decodes to the same numbers."""
    noise = hashlib.shake_256(f"{model}\x00{_compact(item)}".encode()).digest(2 * dimensions)
    vector = struct.unpack(f"<{dimensions}h", noise)
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *(x / norm for x in vector))))


# --- wire helpers --------------------------------------------------------------------------------------


class _Invalid(Exception):
    """The request breaks the provider's rules: answered 400 in the provider's error shape."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _sse(data: Any, event: str | None = None) -> bytes:
    line = f"data: {data if isinstance(data, str) else _json_bytes(data).decode()}\n\n"
    return (f"event: {event}\n" + line if event else line).encode()


def _headers(provider: Provider, content_type: str) -> dict[str, str]:
    id_header = "request-id" if provider == "anthropic" else "x-request-id"
    return {
        "content-type": content_type,
        SIMULATED_HEADER: "true",
        id_header: f"req_{uuid.uuid4().hex[:24]}",
    }


def _json_response(
    provider: Provider, payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> httpx.Response:
    """A body that is read like one from the network (``aiter_raw`` works), with its length declared."""
    content = _json_bytes(payload)
    headers = {**(headers or _headers(provider, "application/json")), "content-length": str(len(content))}
    return httpx.Response(status, headers=headers, stream=httpx.ByteStream(content))


def _error(provider: Provider, status: int, message: str, param: str | None = None) -> httpx.Response:
    if provider == "anthropic":
        headers = _headers(provider, "application/json")
        kind = _ANTHROPIC_ERRORS.get(status, "api_error")
        payload: dict[str, Any] = {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": headers["request-id"],
        }
        return _json_response(provider, payload, status, headers)
    kind, code = _OPENAI_ERRORS.get(status, ("server_error", None))
    return _json_response(
        provider, {"error": {"message": message, "type": kind, "param": param, "code": code}}, status
    )


def _positive_int(body: Mapping[str, Any], *names: str, maximum: int | None = None) -> int | None:
    """The first of ``names`` present in ``body``, which must be a whole number from 1 (to ``maximum``)."""
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _Invalid(f"Invalid '{name}': expected an integer of at least 1, got {value!r}.", name)
        if maximum is not None and value > maximum:
            raise _Invalid(f"Invalid '{name}': expected at most {maximum}, got {value}.", name)
        return value
    return None


def _require(body: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> None:
    if not isinstance(body.get(name), kind):
        raise _Invalid(f"'{name}' is a required property.", name)


# --- the stream ----------------------------------------------------------------------------------------


class SimulatedStream(httpx.AsyncByteStream):
    """A response body produced while it is read; closing it stops the generator where it is."""

    def __init__(self, events: AsyncGenerator[bytes, None]) -> None:
        self._events = events

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._events

    async def aclose(self) -> None:
        await self._events.aclose()


# --- the transport -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    provider: Provider  # whose error shape the endpoint speaks
    handler: Callable[[SimulatedTransport, httpx.Request, dict[str, Any]], Awaitable[httpx.Response]]
    has_body: bool = True


class SimulatedTransport(httpx.AsyncBaseTransport):
    """An ``httpx`` transport that plays the OpenAI and Anthropic APIs for the ``simulated`` provider.

    ``latency_scale`` multiplies every simulated wait (1 is realistic, 0 never sleeps);
    ``prompt_caching`` reports repeated prompt prefixes as cached, as the real providers do.
    """

    def __init__(self, latency_scale: float = 1.0, *, prompt_caching: bool = True) -> None:
        if not latency_scale >= 0:
            raise ValueError("latency_scale must be 0 or more")
        self.latency_scale = latency_scale
        self._cache = _PrefixCache() if prompt_caching else None
        self._active_streams = 0

    @property
    def active_streams(self) -> int:
        """Streams that have started and are neither finished nor closed."""
        return self._active_streams

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        route = _ROUTES.get((request.method, request.url.path))
        if route is None:
            message = f"Invalid URL ({request.method} {request.url.path})"
            return _error("openai", 404, message)
        body: dict[str, Any] = {}
        raw = await request.aread()
        if route.has_body:
            try:
                parsed = json.loads(raw)
            except ValueError:
                return _error(route.provider, 400, "We could not parse the JSON body of your request.")
            if not isinstance(parsed, dict):
                return _error(route.provider, 400, "The request body must be a JSON object.")
            body = parsed
        try:
            return await route.handler(self, request, body)
        except _Invalid as exc:
            return _error(route.provider, 400, str(exc), exc.param)

    async def _sleep(self, seconds: float) -> None:
        if self.latency_scale and seconds > 0:
            await asyncio.sleep(seconds * self.latency_scale)

    def _stream(self, provider: Provider, events: AsyncGenerator[bytes, None]) -> httpx.Response:
        headers = {**_headers(provider, "text/event-stream; charset=utf-8"), "cache-control": "no-cache"}
        return httpx.Response(200, headers=headers, stream=SimulatedStream(self._tracked(events)))

    async def _tracked(self, events: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
        self._active_streams += 1
        try:
            async for event in events:
                yield event
        finally:
            self._active_streams -= 1
            await events.aclose()

    def _prompt(self, provider: Provider, model: str, body: Mapping[str, Any]) -> _PromptUsage:
        pieces = _prompt_pieces(body)
        if self._cache is None:
            return _PromptUsage(sum(p.tokens for p in pieces))
        if provider == "anthropic":
            return self._cache.breakpoints(model, pieces)
        return self._cache.automatic(model, pieces)

    # --- OpenAI chat completions ---

    async def _chat(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        _require(body, "model", str)
        _require(body, "messages", list)
        n = _positive_int(body, "n", maximum=MAX_N) or 1
        cap = _positive_int(body, "max_completion_tokens", "max_tokens")
        model = body["model"]
        reply = _reply(body, self._prompt("openai", model, body), cap, n)
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:29]}",
            "created": int(time.time()),
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_simulated",
        }
        if body.get("stream"):
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            return self._stream("openai", self._chat_events(reply, base, include_usage))
        await self._sleep(reply.generation_s)
        choices: list[dict[str, Any]] = [
            {
                "index": i,
                "message": {"role": "assistant", "content": c.text, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "length" if c.truncated else "stop",
            }
            for i, c in enumerate(reply.choices)
        ]
        payload = {**base, "object": "chat.completion", "choices": choices, "usage": _chat_usage(reply)}
        return _json_response("openai", payload)

    async def _chat_events(
        self, reply: _Reply, base: dict[str, Any], include_usage: bool
    ) -> AsyncGenerator[bytes, None]:
        def chunk(index: int | None, delta: dict[str, Any], finish: str | None = None) -> bytes:
            choices = [] if index is None else [{"index": index, "delta": delta, "logprobs": None,
                                                 "finish_reason": finish}]  # fmt: skip
            data: dict[str, Any] = {**base, "object": "chat.completion.chunk", "choices": choices}
            if include_usage:
                data["usage"] = _chat_usage(reply) if index is None else None
            return _sse(data)

        await self._sleep(reply.first_token_s)
        role = {"role": "assistant", "content": "", "refusal": None}
        yield b"".join(chunk(i, role) for i in range(len(reply.choices)))
        for step in range(max(len(c.tokens) for c in reply.choices)):
            if step:
                await self._sleep(reply.token_interval_s)
            yield b"".join(
                chunk(i, {"content": c.tokens[step]})
                for i, c in enumerate(reply.choices)
                if step < len(c.tokens)
            )
        yield b"".join(chunk(i, {}, "length" if c.truncated else "stop") for i, c in enumerate(reply.choices))
        if include_usage:
            yield chunk(None, {})
        yield _sse("[DONE]")

    # --- Anthropic messages ---

    async def _messages(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        _require(body, "model", str)
        _require(body, "messages", list)
        cap = _positive_int(body, "max_tokens")
        if cap is None:
            raise _Invalid("max_tokens: Field required", "max_tokens")
        model = body["model"]
        thinking = body.get("thinking")
        thinks = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
        reply = _reply(body, self._prompt("anthropic", model, body), cap, reasoning=thinks)
        choice = reply.choices[0]
        usage = _messages_usage(reply, thinks)
        message: dict[str, Any] = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": choice.text}],
            "stop_reason": "max_tokens" if choice.truncated else "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
        if body.get("stream"):
            return self._stream("anthropic", self._messages_events(reply, message, thinks))
        await self._sleep(reply.generation_s)
        return _json_response("anthropic", message)

    async def _messages_events(
        self, reply: _Reply, message: dict[str, Any], thinks: bool
    ) -> AsyncGenerator[bytes, None]:
        usage = message["usage"]
        start_usage = {**usage, "output_tokens": min(1, usage["output_tokens"])}
        start_usage.pop("output_tokens_details", None)
        start = {**message, "content": [], "stop_reason": None, "usage": start_usage}
        await self._sleep(reply.first_token_s)
        yield _sse({"type": "message_start", "message": start}, "message_start")
        block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
        yield _sse(block, "content_block_start")
        yield _sse({"type": "ping"}, "ping")
        for step, token in enumerate(reply.choices[0].tokens):
            if step:
                await self._sleep(reply.token_interval_s)
            delta = {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": token},
            }
            yield _sse(delta, "content_block_delta")
        yield _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
        delta_usage: dict[str, Any] = {"output_tokens": usage["output_tokens"]}
        if "output_tokens_details" in usage:
            delta_usage["output_tokens_details"] = usage["output_tokens_details"]
        stop = {"stop_reason": message["stop_reason"], "stop_sequence": None}
        yield _sse({"type": "message_delta", "delta": stop, "usage": delta_usage}, "message_delta")
        yield _sse({"type": "message_stop"}, "message_stop")

    # --- OpenAI embeddings ---

    async def _embeddings(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        _require(body, "model", str)
        inputs = _embedding_inputs(body.get("input"))
        dimensions = _positive_int(body, "dimensions", maximum=8192) or EMBEDDING_DIMENSIONS
        model = body["model"]
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(inputs):
            vector = _embedding(model, item, dimensions)
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append(
                {"object": "embedding", "index": index, "embedding": encoded if as_base64 else vector}
            )
        tokens = sum(count_text_tokens(i) if isinstance(i, str) else len(i) for i in inputs)
        timing = random.Random(_seed(body))
        await self._sleep(timing.uniform(*EMBEDDING_SECONDS) + tokens * 0.00002)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return _json_response("openai", {"object": "list", "data": data, "model": model, "usage": usage})

    # --- models ---

    async def _models(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        names = _listed_models()
        if "anthropic-version" in request.headers:
            data = [
                {
                    "type": "model",
                    "id": name,
                    "display_name": f"Simulated {name} (not a real model)",
                    "created_at": "2025-01-01T00:00:00Z",
                    "lifecycle": "active",
                }
                for name in names
            ]
            page = {"data": data, "has_more": False, "first_id": names[0], "last_id": names[-1]}
            return _json_response("anthropic", page)
        listed = [
            {"id": n, "object": "model", "created": MODELS_CREATED, "owned_by": "tokenboard"} for n in names
        ]
        return _json_response("openai", {"object": "list", "data": listed})


def _chat_usage(reply: _Reply) -> dict[str, Any]:
    completion = reply.completion_tokens
    return {
        "prompt_tokens": reply.prompt.tokens,
        "completion_tokens": completion,
        "total_tokens": reply.prompt.tokens + completion,
        "prompt_tokens_details": {"cached_tokens": reply.prompt.cache_read, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": sum(c.reasoning for c in reply.choices),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _messages_usage(reply: _Reply, thinks: bool) -> dict[str, Any]:
    p = reply.prompt
    written = p.cache_write_5m + p.cache_write_1h
    usage: dict[str, Any] = {
        "input_tokens": p.tokens - p.cache_read - written,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": p.cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": p.cache_write_5m,
            "ephemeral_1h_input_tokens": p.cache_write_1h,
        },
        "output_tokens": reply.completion_tokens,
        "service_tier": "standard",
    }
    if thinks:
        usage["output_tokens_details"] = {"thinking_tokens": reply.choices[0].reasoning}
    return usage


def _embedding_inputs(value: Any) -> list[str | list[int]]:
    """The inputs of an embeddings request: a string, a token array, or a non-empty list of either."""
    if isinstance(value, str):
        return [value]
    if (
        isinstance(value, list)
        and value
        and all(isinstance(x, int) and not isinstance(x, bool) for x in value)
    ):
        return [value]
    if isinstance(value, list) and value and all(_is_embedding_item(x) for x in value):
        return list(value)
    raise _Invalid("'input' must be a string, a token array, or a non-empty list of them.", "input")


def _is_embedding_item(value: Any) -> bool:
    if isinstance(value, str):
        return True
    return isinstance(value, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in value)


_ROUTES = {
    ("POST", "/v1/chat/completions"): _Route("openai", SimulatedTransport._chat),
    ("POST", "/v1/messages"): _Route("anthropic", SimulatedTransport._messages),
    ("POST", "/v1/embeddings"): _Route("openai", SimulatedTransport._embeddings),
    ("GET", "/v1/models"): _Route("openai", SimulatedTransport._models, has_body=False),
}
