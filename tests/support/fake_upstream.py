"""A real HTTP server on 127.0.0.1 that speaks the OpenAI and Anthropic wire formats.

Start it with ``with fake_upstream() as fake:`` (or the ``upstream`` fixture below) and point a client,
or the gateway under test, at ``fake.base_url``. Every request is recorded in ``fake.requests``
(method, path, headers, parsed JSON body, the API key it carried); ``fake.reset()`` forgets them.

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/embeddings``, ``POST /v1/messages``,
``POST /v1/messages/count_tokens`` (``{"input_tokens": N}``, the prompt counted as below) and
``GET /v1/models`` (OpenAI shape, or Anthropic shape when the request carries ``anthropic-version``).

Token counting is deterministic, so tests can compute the usage they expect (``expected_usage``):
a prompt costs ``ceil(len(text) / 4)`` tokens per text piece (system prompt, each message content or
text part, each embedding input; token-id arrays cost their length). A reply is ``tokens`` (16)
four-character tokens, capped by ``max_completion_tokens``/``max_tokens`` (finish reason then
``length``/``max_tokens``); OpenAI bills every one of the ``n`` choices.

Behaviours are chosen per request, from a header and/or from the model name, so that a gateway which
forwards the body unchanged can trigger them too (the header wins where both set the same thing)::

    x-fake-behaviour: delay_ms=50,chunks=20,interval_ms=10
    "model": "gpt-4o-mini+error=429+retry_after=3"     (items after "+", joined by "+")
    "model": "fake-slow", "fake-error-529", "fake-late-usage"   (one preset after "fake-")

Items are ``key=value`` or a preset word:

    delay_ms=N        wait N ms before the response starts (nothing at all is sent meanwhile)
    first_byte_ms=N   streams: send the headers at once, then wait N ms before the first event
    chunks=N          streams: number of content deltas (default: one per token, at most 100);
                      the reply grows to at least N tokens so that no delta is empty
    interval_ms=N     streams: pause before each content delta
    tokens=N          reply length in tokens before max_tokens caps it (default 16)
    error=NNN         answer status NNN with the provider's own error JSON; retry_after=S sets the
                      ``retry-after`` header (429 always sends one, default 1)
    cached=N          prompt tokens served from cache (OpenAI cached_tokens, Anthropic cache reads)
    cache_write=N, cache_write_1h=N   Anthropic cache writes (5-minute and 1-hour)
    reasoning=N       OpenAI reasoning tokens per choice (included in completion_tokens)
    audio_in=N, audio_out=N   OpenAI: of the prompt (uncached part) and of each choice's completion (reasoning
                      apart), N tokens were audio (``audio_tokens`` in the usage details; capped)
    web_searches=N    Anthropic: the web search tool ran N searches (``usage.server_tool_use``, and plain
                      replies start with its ``server_tool_use`` and ``web_search_tool_result`` blocks;
                      streams report 0 in message_start and N in message_delta)
    usage=MODE        missing (no usage at all), duplicate (streams send it twice), zero (all
                      counts 0), late (streams: 200 chunks by default, and Anthropic reports the
                      input tokens only in message_delta, not in message_start)
    end_with_last     streams: the last event goes out with the response's end, in one message (as
                      servers that know their last write send it); by default the end follows alone
    end_delay_ms=N    streams: wait N ms between the last event and the response's end
    cut               streams stop after half the content, without usage, and the connection is
                      dropped; plain responses drop it halfway through the declared body
    malformed         200 with a body (or, in streams, one event) that is not valid JSON
    nan               plain responses: 200 with a body that holds NaN (which Python's json reads, JSON not)
    huge_kb=N         a reply of N KiB whatever max_tokens says

Presets: slow (delay_ms=200), stall (delay_ms=60000, for timeouts), cut, malformed, huge
(huge_kb=16384), no_usage, duplicate_usage, zero_usage, late_usage, bad_request, unauthorized,
rate_limited, server_error, overloaded (529), and error_NNN for any status.

A client that goes away before the response is complete is counted in ``fake.disconnects`` and its
request gets ``disconnected = True``; a delay or stall ends as soon as the client is gone.

Fixtures: ``fake_upstream_server`` (one server per session) and ``upstream`` (that server, its record
cleared for the test). Bring them into a conftest with
``from tests.support.fake_upstream import fake_upstream_server, upstream  # noqa: F401``.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import logging
import re
import struct
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.support.uvicorn_server import serving_in_thread

BEHAVIOUR_HEADER = "x-fake-behaviour"
OPENROUTER_CHARGE_PER_TOKEN = 0.000001  # what the fake "charges" when asked for usage accounting (USD)
CHARS_PER_TOKEN = 4
DEFAULT_REPLY_TOKENS = 16
MAX_DEFAULT_CHUNKS = 100
LATE_USAGE_CHUNKS = 200
EMBEDDING_DIMENSIONS = 8
OPENAI_MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
ANTHROPIC_MODELS = ("claude-sonnet-4-6", "claude-haiku-4-5")
FINGERPRINT = "fp_fake"
_FILLER = "The fake upstream says hello. "
_PART_SIZE = 64 * 1024

Provider = Literal["openai", "anthropic"]
Api = Literal["chat", "messages", "embeddings"]
UsageMode = Literal["normal", "missing", "duplicate", "zero", "late"]
_USAGE_MODES = get_args(UsageMode)


# --- behaviours ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Behaviour:
    """What one request asked the fake to do; see the module docstring for each setting."""

    delay_ms: int = 0
    first_byte_ms: int = 0
    chunks: int | None = None
    interval_ms: int = 0
    tokens: int = DEFAULT_REPLY_TOKENS
    error: int | None = None
    retry_after: int | None = None
    cached: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    reasoning: int = 0
    web_searches: int = 0
    audio_in: int = 0
    audio_out: int = 0
    usage: UsageMode = "normal"
    cut: bool = False
    malformed: bool = False
    nan: bool = False
    huge_kb: int = 0
    end_with_last: bool = False
    end_delay_ms: int = 0

    @property
    def stream_chunks(self) -> int | None:
        if self.chunks is None and self.usage == "late":
            return LATE_USAGE_CHUNKS
        return self.chunks


_PRESETS = {
    "slow": "delay_ms=200",
    "stall": "delay_ms=60000",
    "cut": "cut=true",
    "malformed": "malformed=true",
    "huge": "huge_kb=16384",
    "no_usage": "usage=missing",
    "duplicate_usage": "usage=duplicate",
    "zero_usage": "usage=zero",
    "late_usage": "usage=late",
    "bad_request": "error=400",
    "unauthorized": "error=401",
    "rate_limited": "error=429",
    "server_error": "error=500",
    "overloaded": "error=529",
}
_FIELDS = {f.name for f in fields(Behaviour)}


def parse_behaviour(spec: str, separator: str = ",") -> dict[str, Any]:
    """The settings a behaviour spec asks for; raises ``ValueError`` on anything unknown."""
    settings: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in spec.split(separator))):
        key, has_value, value = item.partition("=")
        key = key.strip().lower().replace("-", "_")
        value = value.strip().lower()
        if not has_value:
            if key in _PRESETS:
                settings.update(parse_behaviour(_PRESETS[key]))
            elif match := re.fullmatch(r"error_(\d{3})", key):
                settings["error"] = int(match[1])
            else:
                raise ValueError(f"unknown fake behaviour {item!r}")
        elif key not in _FIELDS:
            raise ValueError(f"unknown fake behaviour {item!r}")
        elif key == "usage":
            if value not in _USAGE_MODES:
                raise ValueError(f"usage must be one of {', '.join(_USAGE_MODES)}, not {value!r}")
            settings[key] = value
        elif key in ("cut", "malformed", "nan", "end_with_last"):
            settings[key] = value in ("1", "true", "yes", "on")
        else:
            try:
                settings[key] = int(value)
            except ValueError:
                raise ValueError(f"fake behaviour {key} needs a whole number, not {value!r}") from None
    return settings


def behaviour_for(body: Any, header: str | None = None) -> Behaviour:
    """The behaviour a request asks for through its model name and its ``x-fake-behaviour`` header."""
    settings: dict[str, Any] = {}
    model = body.get("model") if isinstance(body, dict) else None
    if isinstance(model, str):
        name, _, spec = model.partition("+")
        if name.startswith("fake-"):
            try:
                settings.update(parse_behaviour(name.removeprefix("fake-")))
            except ValueError:
                pass  # "fake-model" is just a name
        settings.update(parse_behaviour(spec, separator="+"))
    if header:
        settings.update(parse_behaviour(header))
    return Behaviour(**settings)


# --- token accounting ------------------------------------------------------------------------


def count_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


def _texts(content: Any) -> list[str]:
    """Text pieces of a message ``content`` or ``system`` prompt: a string or a list of typed parts."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return []


# What the fake charges for a part that is not text, as a provider does: a fixed count per image, and a
# file's text as extracted (here: one token per 6 characters of its base64 payload).
IMAGE_PART_TOKENS = 765
FILE_PART_CHARS_PER_TOKEN = 6


def _part_tokens(content: Any) -> int:
    tokens = 0
    for part in content if isinstance(content, list) else ():
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("image_url", "image"):
            tokens += IMAGE_PART_TOKENS
        elif kind in ("file", "document"):
            inner = part.get("file") or part.get("source") or {}
            payload = inner.get("file_data") or inner.get("data") or "" if isinstance(inner, dict) else ""
            tokens += len(payload) // FILE_PART_CHARS_PER_TOKEN
    return tokens


def prompt_tokens(body: Mapping[str, Any]) -> int:
    pieces = _texts(body.get("system"))
    parts = 0
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            pieces += _texts(message.get("content"))
            parts += _part_tokens(message.get("content"))
    return sum(count_tokens(piece) for piece in pieces) + parts


def _embedding_inputs(body: Mapping[str, Any]) -> list[str | list[int]]:
    items = body.get("input")
    if isinstance(items, str) or (isinstance(items, list) and items and isinstance(items[0], int)):
        return [items]
    return list(items) if isinstance(items, list) else []


def _reply(body: Mapping[str, Any], behaviour: Behaviour, api: Api) -> tuple[str, bool]:
    """The text of one reply and whether max_tokens cut it short."""
    if behaviour.huge_kb:
        wanted, cap = behaviour.huge_kb * 1024 // CHARS_PER_TOKEN, None
    else:
        wanted = max(behaviour.tokens, behaviour.stream_chunks or 0)
        keys = ("max_tokens",) if api == "messages" else ("max_completion_tokens", "max_tokens")
        cap = next((body[k] for k in keys if isinstance(body.get(k), int)), None)
    tokens = wanted if cap is None else max(0, min(cap, wanted))
    length = tokens * CHARS_PER_TOKEN
    return (_FILLER * (length // len(_FILLER) + 1))[:length], tokens < wanted


def expected_usage(api: Api, body: Mapping[str, Any], behaviour: str | None = None) -> dict[str, Any]:
    """The usage object the fake reports for ``body`` sent to ``api`` (with ``x-fake-behaviour``)."""
    return _usage(api, body, behaviour_for(body, behaviour))


def _usage(api: Api, body: Mapping[str, Any], b: Behaviour) -> dict[str, Any]:
    zero = b.usage == "zero"
    if api == "embeddings":
        total = 0 if zero else sum(_input_tokens(item) for item in _embedding_inputs(body))
        return {"prompt_tokens": total, "total_tokens": total}
    prompt = 0 if zero else prompt_tokens(body)
    output = 0 if zero else count_tokens(_reply(body, b, api)[0])
    if api == "messages":
        read = min(b.cached, prompt)
        write_5m = min(b.cache_write, prompt - read)
        write_1h = min(b.cache_write_1h, prompt - read - write_5m)
        usage = {
            "input_tokens": prompt - read - write_5m - write_1h,
            "cache_creation_input_tokens": write_5m + write_1h,
            "cache_read_input_tokens": read,
            "cache_creation": {"ephemeral_5m_input_tokens": write_5m, "ephemeral_1h_input_tokens": write_1h},
            "output_tokens": output,
            "service_tier": "standard",
        }
        if b.web_searches:
            usage["server_tool_use"] = {"web_search_requests": 0 if zero else b.web_searches}
        return usage
    n = body.get("n") or 1
    reasoning = 0 if zero else n * b.reasoning
    completion = n * output + reasoning
    usage_request = body.get("usage")
    # OpenRouter's usage accounting: asked with {"usage": {"include": true}}, it reports what it charged.
    cost = (
        {"cost": OPENROUTER_CHARGE_PER_TOKEN * (prompt + completion)}
        if isinstance(usage_request, dict) and usage_request.get("include")
        else {}
    )
    return {
        **cost,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {
            "cached_tokens": min(b.cached, prompt),
            "audio_tokens": min(b.audio_in, prompt - min(b.cached, prompt)),
        },
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": n * min(b.audio_out, output),
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _input_tokens(item: str | list[int]) -> int:
    return count_tokens(item) if isinstance(item, str) else len(item)


# --- what to send ----------------------------------------------------------------------------


@dataclass
class _Plan:
    """A response to play back: each part is (seconds to wait first, bytes)."""

    status: int
    headers: dict[str, str]
    parts: list[tuple[float, bytes]]
    delay: float = 0.0
    complete: bool = True  # False: stop after the parts and drop the connection
    end_with_last: bool = False  # the last part and the end in one message
    end_delay: float = 0.0  # seconds between the last part and the end, when they are apart


class _Invalid(Exception):
    """The request breaks the provider's rules: answered 400 in the provider's error shape."""


def _json_plan(payload: Any, behaviour: Behaviour, headers: Mapping[str, str], status: int = 200) -> _Plan:
    body = json.dumps(payload).encode()
    if behaviour.malformed and status == 200:
        body = body[: len(body) // 2]
    if behaviour.nan and status == 200:
        body = body[:-1] + b', "score": NaN}'
    sent = body[: len(body) // 2] if behaviour.cut else body
    return _Plan(
        status=status,
        headers={**headers, "content-type": "application/json", "content-length": str(len(body))},
        parts=[(0.0, sent[i : i + _PART_SIZE]) for i in range(0, len(sent), _PART_SIZE)],
        delay=(behaviour.delay_ms + behaviour.first_byte_ms) / 1000,
        complete=not behaviour.cut,
    )


def _sse(data: Any, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return (f"event: {event}\n" if event else "").encode() + f"data: {payload}\n\n".encode()


def _stream_plan(
    parts: list[tuple[float, bytes]],
    cut_at: int,
    broken: bytes,
    behaviour: Behaviour,
    headers: Mapping[str, str],
) -> _Plan:
    """``cut_at`` is where half the content has been sent; ``broken`` replaces that event when malformed."""
    if behaviour.malformed:
        parts[cut_at] = (parts[cut_at][0], broken)
    if behaviour.cut:
        parts = parts[:cut_at]
    if parts and behaviour.first_byte_ms:
        parts[0] = (parts[0][0] + behaviour.first_byte_ms / 1000, parts[0][1])
    return _Plan(
        status=200,
        headers={**headers, "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"},
        parts=parts,
        delay=behaviour.delay_ms / 1000,
        complete=not behaviour.cut,
        end_with_last=behaviour.end_with_last,
        end_delay=behaviour.end_delay_ms / 1000,
    )


def _pieces(text: str, behaviour: Behaviour) -> list[str]:
    count = min(behaviour.stream_chunks or min(count_tokens(text), MAX_DEFAULT_CHUNKS), count_tokens(text))
    bounds = [len(text) * i // count for i in range(count + 1)] if count else [0]
    return [text[start:end] for start, end in itertools.pairwise(bounds)]


_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Country not supported."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again in 1s."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}
_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timeout"),
    529: ("overloaded_error", "Overloaded"),
}


def _error_plan(
    provider: Provider, status: int, behaviour: Behaviour, headers: dict[str, str], message: str | None = None
) -> _Plan:
    if provider == "openai":
        kind, code, default = _OPENAI_ERRORS.get(status, ("server_error", None, "The server had an error."))
        payload: dict[str, Any] = {
            "error": {"message": message or default, "type": kind, "param": None, "code": code}
        }
    else:
        kind, default = _ANTHROPIC_ERRORS.get(status, ("api_error", "Internal server error"))
        payload = {
            "type": "error",
            "error": {"type": kind, "message": message or default},
            "request_id": headers["request-id"],
        }
    if status == 429 or behaviour.retry_after is not None:
        headers = {
            **headers,
            "retry-after": str(behaviour.retry_after if behaviour.retry_after is not None else 1),
        }
    clean = Behaviour(delay_ms=behaviour.delay_ms, first_byte_ms=behaviour.first_byte_ms)
    return _json_plan(payload, clean, headers, status)


# --- the providers ---------------------------------------------------------------------------


def _chat(body: dict[str, Any], b: Behaviour, headers: dict[str, str]) -> _Plan:
    if not isinstance(body.get("model"), str) or not isinstance(body.get("messages"), list):
        raise _Invalid("'model' and 'messages' are required properties.")
    n = body.get("n") or 1
    text, truncated = _reply(body, b, "chat")
    finish = "length" if truncated else "stop"
    usage = _usage("chat", body, b)
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "created": int(time.time()),
        "model": body["model"],
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
    if not body.get("stream"):
        choices: list[dict[str, Any]] = [
            {
                "index": i,
                "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": finish,
            }
            for i in range(n)
        ]
        payload = {**base, "object": "chat.completion", "choices": choices, "usage": usage}
        if b.usage == "missing":
            del payload["usage"]
        return _json_plan(payload, b, headers)

    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(i: int | None, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choices = [{"index": i, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        data = {**base, "object": "chat.completion.chunk", "choices": [] if i is None else choices}
        if include_usage:
            data["usage"] = usage if i is None else None
        return _sse(data)

    role = {"role": "assistant", "content": "", "refusal": None}
    parts = [(0.0, chunk(i, role)) for i in range(n)]
    pieces = _pieces(text, b)
    cut_at = len(parts) + n * (len(pieces) // 2)
    for piece in pieces:
        parts += [(b.interval_ms / 1000 if i == 0 else 0.0, chunk(i, {"content": piece})) for i in range(n)]
    parts += [(0.0, chunk(i, {}, finish)) for i in range(n)]
    if include_usage and b.usage != "missing":
        parts += [(0.0, chunk(None, {}))] * (2 if b.usage == "duplicate" else 1)
    parts.append((0.0, b"data: [DONE]\n\n"))
    return _stream_plan(parts, cut_at, b'data: {"id":"chatcmpl-broken","choices":[{\n\n', b, headers)


def _messages(body: dict[str, Any], b: Behaviour, headers: dict[str, str]) -> _Plan:
    for name, kind in (("model", str), ("messages", list), ("max_tokens", int)):
        if not isinstance(body.get(name), kind):
            raise _Invalid(f"{name}: Field required")
    text, truncated = _reply(body, b, "messages")
    usage = _usage("messages", body, b)
    message: dict[str, Any] = {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [*_search_blocks(b), {"type": "text", "text": text}],
        "stop_reason": "max_tokens" if truncated else "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }
    if not body.get("stream"):
        if b.usage == "missing":
            del message["usage"]
        return _json_plan(message, b, headers)

    input_keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    start_usage = {**usage, "output_tokens": min(1, usage["output_tokens"])}
    delta_usage: dict[str, Any] = {"output_tokens": usage["output_tokens"]}
    if "server_tool_use" in usage:  # counted as the searches run: none yet when the message starts
        start_usage["server_tool_use"] = {"web_search_requests": 0}
        delta_usage["server_tool_use"] = usage["server_tool_use"]
    if b.usage == "late":
        start_usage.update(dict.fromkeys(input_keys, 0))
        start_usage["cache_creation"] = dict.fromkeys(usage["cache_creation"], 0)
        delta_usage.update({key: usage[key] for key in input_keys})
    start = {**message, "content": [], "stop_reason": None, "usage": start_usage}
    delta = {"type": "message_delta", "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None}}
    if b.usage == "missing":
        del start["usage"]
    else:
        delta["usage"] = delta_usage
    parts = [
        (0.0, _sse({"type": "message_start", "message": start}, "message_start")),
        (0.0, _sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                   "content_block_start")),
        (0.0, _sse({"type": "ping"}, "ping")),
    ]  # fmt: skip
    pieces = _pieces(text, b)
    cut_at = len(parts) + len(pieces) // 2
    for piece in pieces:
        event = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        parts.append((b.interval_ms / 1000, _sse(event, "content_block_delta")))
    parts.append((0.0, _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")))
    parts += [(0.0, _sse(delta, "message_delta"))] * (2 if b.usage == "duplicate" else 1)
    parts.append((0.0, _sse({"type": "message_stop"}, "message_stop")))
    broken = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{\n\n'
    return _stream_plan(parts, cut_at, broken, b, headers)


def _search_blocks(b: Behaviour) -> list[dict[str, Any]]:
    """A plain reply's record of its web searches: Anthropic's tool call and result blocks, per search."""
    blocks: list[dict[str, Any]] = []
    for i in range(b.web_searches):
        tool_id = f"srvtoolu_fake{i:02d}"
        blocks.append(
            {"type": "server_tool_use", "id": tool_id, "name": "web_search", "input": {"query": f"fake {i}"}}
        )
        result = {"type": "web_search_result", "url": f"https://example.com/{i}", "title": f"Result {i}"}
        blocks.append({"type": "web_search_tool_result", "tool_use_id": tool_id, "content": [result]})
    return blocks


def _count_tokens(body: dict[str, Any], b: Behaviour, headers: dict[str, str]) -> _Plan:
    """Anthropic's token counting: the prompt as ``/v1/messages`` counts it, no max_tokens needed."""
    for name, kind in (("model", str), ("messages", list)):
        if not isinstance(body.get(name), kind):
            raise _Invalid(f"{name}: Field required")
    return _json_plan({"input_tokens": prompt_tokens(body)}, b, headers)


def _embeddings(body: dict[str, Any], b: Behaviour, headers: dict[str, str]) -> _Plan:
    inputs = _embedding_inputs(body)
    if not isinstance(body.get("model"), str) or not inputs:
        raise _Invalid("'model' and a non-empty 'input' are required properties.")
    dimensions = body.get("dimensions") or EMBEDDING_DIMENSIONS
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs):
        vector = embedding_for(item, dimensions)
        encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded if as_base64 else vector})
    payload = {
        "object": "list",
        "data": data,
        "model": body["model"],
        "usage": _usage("embeddings", body, b),
    }
    if b.usage == "missing":
        del payload["usage"]
    return _json_plan(payload, b, headers)


def embedding_for(item: str | list[int], dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """The fake's deterministic vector for one input (exact in float32, so base64 round-trips)."""
    seed = json.dumps(item).encode()
    digest = b"".join(hashlib.sha256(seed + bytes([i])).digest() for i in range(dimensions // 32 + 1))
    return [(byte - 128) / 128 for byte in digest[:dimensions]]


def _models(provider: Provider, b: Behaviour, headers: dict[str, str]) -> _Plan:
    if provider == "openai":
        data: list[dict[str, Any]] = [
            {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "system"}
            for m in OPENAI_MODELS
        ]
        return _json_plan({"object": "list", "data": data}, b, headers)
    data = [
        {
            "type": "model",
            "id": m,
            "display_name": m.replace("-", " ").title(),
            "created_at": "2025-09-29T00:00:00Z",
            "lifecycle": "active",
        }
        for m in ANTHROPIC_MODELS
    ]
    page = {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
    return _json_plan(page, b, headers)


# --- the server ------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None when absent or not JSON
    raw: bytes
    provider: Provider
    api_key: str | None  # from ``Authorization: Bearer`` or (Anthropic) ``x-api-key``
    behaviour: Behaviour | None = None  # None when the behaviour spec was invalid
    disconnected: bool = False  # the client went away before the response was complete


class _Playback(Response):
    """Plays a plan, watching for the client going away the whole time."""

    def __init__(self, plan: _Plan, on_disconnect: Callable[[], None]) -> None:
        self.plan = plan
        self.on_disconnect = on_disconnect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plan, done = self.plan, False

        async def watch(cancel: anyio.CancelScope) -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            if not done:
                self.on_disconnect()
                cancel.cancel()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(watch, tasks.cancel_scope)
            await anyio.sleep(plan.delay)
            headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in plan.headers.items()]
            await send({"type": "http.response.start", "status": plan.status, "headers": headers})
            together = plan.complete and plan.end_with_last and bool(plan.parts)
            for n, (wait, data) in enumerate(plan.parts, 1):
                if wait:
                    await anyio.sleep(wait)
                last = together and n == len(plan.parts)
                done = done or last
                await send({"type": "http.response.body", "body": data, "more_body": not last})
            if plan.complete and not together:
                if plan.end_delay:
                    await anyio.sleep(plan.end_delay)
                done = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            done = True
            tasks.cancel_scope.cancel()


def _api_key(provider: Provider, headers: Mapping[str, str]) -> str | None:
    if provider == "anthropic" and headers.get("x-api-key"):
        return headers["x-api-key"]
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class FakeUpstream:
    """The recording side of the fake; ``fake_upstream()`` serves its ``app``."""

    def __init__(self, *, openai_api_key: str | None = None, anthropic_api_key: str | None = None) -> None:
        """With a key configured, any other key is refused with 401; without, any key is accepted."""
        self.openai_api_key = openai_api_key
        self.anthropic_api_key = anthropic_api_key
        self.base_url = ""
        self.requests: list[RecordedRequest] = []
        self.disconnects = 0
        # Applied when a request carries no x-fake-behaviour header: for clients (such as a gateway) that
        # do not pass the test's headers through.
        self.default_behaviour: str | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._handler("openai", _chat), methods=["POST"]),
                Route("/v1/embeddings", self._handler("openai", _embeddings), methods=["POST"]),
                Route("/v1/messages", self._handler("anthropic", _messages), methods=["POST"]),
                Route(
                    "/v1/messages/count_tokens", self._handler("anthropic", _count_tokens), methods=["POST"]
                ),
                Route("/v1/models", self._list_models, methods=["GET"]),
            ]
        )

    def reset(self) -> None:
        self.requests.clear()
        self.disconnects = 0
        self.default_behaviour = None

    def wait_for_disconnects(self, count: int = 1, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.disconnects < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.disconnects >= count

    def _handler(
        self, provider: Provider, build: Callable[[dict[str, Any], Behaviour, dict[str, str]], _Plan]
    ) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            return await self._respond(request, provider, build)

        return endpoint

    async def _list_models(self, request: Request) -> Response:
        provider: Provider = "anthropic" if "anthropic-version" in request.headers else "openai"
        return await self._respond(request, provider, lambda _, b, headers: _models(provider, b, headers))

    async def _respond(
        self,
        request: Request,
        provider: Provider,
        build: Callable[[dict[str, Any], Behaviour, dict[str, str]], _Plan],
    ) -> Response:
        raw = await request.body()
        headers = {name.lower(): value for name, value in request.headers.items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = RecordedRequest(
            method=request.method,
            path=request.url.path,
            headers=headers,
            body=body,
            raw=raw,
            provider=provider,
            api_key=_api_key(provider, headers),
        )
        self.requests.append(record)
        id_header = "request-id" if provider == "anthropic" else "x-request-id"
        reply_headers = {id_header: f"req_{uuid.uuid4().hex[:24]}"}

        def on_disconnect() -> None:
            record.disconnected = True
            self.disconnects += 1

        try:
            record.behaviour = behaviour = behaviour_for(
                body, headers.get(BEHAVIOUR_HEADER) or self.default_behaviour
            )
        except ValueError as exc:
            return _Playback(_error_plan(provider, 400, Behaviour(), reply_headers, str(exc)), on_disconnect)
        try:
            plan = self._plan(record, behaviour, reply_headers, build)
        except _Invalid as exc:
            plan = _error_plan(provider, 400, behaviour, reply_headers, str(exc))
        return _Playback(plan, on_disconnect)

    def _plan(
        self,
        record: RecordedRequest,
        b: Behaviour,
        headers: dict[str, str],
        build: Callable[[dict[str, Any], Behaviour, dict[str, str]], _Plan],
    ) -> _Plan:
        expected = self.openai_api_key if record.provider == "openai" else self.anthropic_api_key
        if record.api_key is None or (expected is not None and record.api_key != expected):
            problem = "missing API key" if record.api_key is None else "invalid API key"
            return _error_plan(record.provider, 401, b, headers, f"{problem} (fake upstream)")
        if record.provider == "anthropic" and "anthropic-version" not in record.headers:
            raise _Invalid("anthropic-version: header is required")
        if b.error:
            return _error_plan(record.provider, b.error, b, headers)
        if record.method == "POST" and not isinstance(record.body, dict):
            raise _Invalid("We could not parse the JSON body of your request.")
        return build(record.body or {}, b, headers)


class _QuietIncompleteResponses(logging.Filter):
    """uvicorn logs an error when a response is dropped half-way, which ``cut`` does on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing response."


_QUIET = _QuietIncompleteResponses()


@contextmanager
def fake_upstream(
    *, openai_api_key: str | None = None, anthropic_api_key: str | None = None
) -> Iterator[FakeUpstream]:
    """Serve a ``FakeUpstream`` with uvicorn on a free loopback port, in a background thread."""
    fake = FakeUpstream(openai_api_key=openai_api_key, anthropic_api_key=anthropic_api_key)
    logger = logging.getLogger("uvicorn.error")
    if _QUIET not in logger.filters:
        logger.addFilter(_QUIET)
    with serving_in_thread(fake.app, "fake-upstream") as base_url:
        fake.base_url = base_url
        yield fake


@pytest.fixture(scope="session")
def fake_upstream_server() -> Iterator[FakeUpstream]:
    """One fake for the whole session; use ``upstream`` to get it with a clean record."""
    with fake_upstream() as fake:
        yield fake


@pytest.fixture
def upstream(fake_upstream_server: FakeUpstream) -> FakeUpstream:
    fake_upstream_server.reset()
    return fake_upstream_server
