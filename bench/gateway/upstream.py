"""A minimal OpenAI-compatible upstream for the gateway benchmark, run in its own process.

``python bench/gateway/upstream.py --port N`` serves, on 127.0.0.1 only:

- ``POST /v1/chat/completions``: a chat completion (16 output tokens, the prompt counted as ceil(chars / 4)),
  after the configured delay; with ``"stream": true`` an SSE stream of ``chunks`` content deltas, the
  n-th due ``n * interval_ms`` after the first, then the finish chunk, the usage chunk when
  ``stream_options.include_usage`` is set, and ``data: [DONE]`` (the same shape as OpenAI's).
  The deltas keep to that timetable whoever reads them: a provider's tokens come at the pace of its own
  hardware. (Sleeping ``interval_ms`` after each send let every late wake-up add up over the stream, and on
  a shared 2-core machine they came later when another process was on the path: decision 0002.)
- ``POST /_bench/mode`` with ``{"delay_ms": 50, "chunks": 20, "interval_ms": 10}``: sets the behaviour of
  every following request. The gateway does not pass client headers upstream, so the benchmark sets the
  behaviour here, and requests sent direct and through the gateway get exactly the same treatment.

It is a bare ASGI app on uvicorn (uvloop, httptools, no access log) so that the upstream costs as little
CPU as possible: on a 2-core machine it shares a core with the load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

import uvicorn

REPLY_TOKENS = 16
CHARS_PER_TOKEN = 4
_FILLER = "The bench upstream says hello. "
REPLY = (_FILLER * 4)[: REPLY_TOKENS * CHARS_PER_TOKEN]

mode: dict[str, int] = {"delay_ms": 0, "chunks": 20, "interval_ms": 10}
JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


def _tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


def _prompt_tokens(body: dict[str, Any]) -> int:
    total = 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += _tokens(content)
    return total


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _send_json(send: Any, status: int, payload: Any) -> None:
    data = json.dumps(payload, separators=(",", ":")).encode()
    headers = [*JSON_HEADERS, (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


async def _chat(body: dict[str, Any], send: Any) -> None:
    delay, chunks, interval = mode["delay_ms"] / 1000, mode["chunks"], mode["interval_ms"] / 1000
    model = body.get("model") or "gpt-4o-mini"
    prompt = _prompt_tokens(body)
    base = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": model}
    if delay:
        await asyncio.sleep(delay)
    if not body.get("stream"):
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": REPLY_TOKENS,
            "total_tokens": prompt + REPLY_TOKENS,
        }
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": REPLY, "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
        await _send_json(
            send, 200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
        )
        return
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    pieces = max(1, chunks)
    words = [f"tok{i} " for i in range(pieces)]
    completion = sum(_tokens(w) for w in words)

    def chunk(delta: dict[str, Any] | None, finish: str | None = None) -> bytes:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        data: dict[str, Any] = {**base, "object": "chat.completion.chunk", "choices": choices}
        if include_usage:
            data["usage"] = (
                {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                }
                if delta is None
                else None
            )
        return _sse(data)

    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    await send(
        {"type": "http.response.body", "body": chunk({"role": "assistant", "content": ""}), "more_body": True}
    )
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n, word in enumerate(words, 1):
        if interval:
            await asyncio.sleep(max(0.0, start + n * interval - loop.time()))
        await send({"type": "http.response.body", "body": chunk({"content": word}), "more_body": True})
    tail = chunk({}, "stop")
    if include_usage:
        tail += chunk(None)
    tail += b"data: [DONE]\n\n"
    await send({"type": "http.response.body", "body": tail, "more_body": False})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path, method = scope["path"], scope["method"]
    raw = await _read_body(receive)
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = None
    if method == "POST" and path == "/v1/chat/completions" and isinstance(body, dict):
        await _chat(body, send)
    elif method == "POST" and path == "/_bench/mode" and isinstance(body, dict):
        mode.update({k: int(v) for k, v in body.items() if k in mode})
        await _send_json(send, 200, mode)
    elif method == "GET" and path == "/healthz":
        await _send_json(send, 200, {"ok": True})
    else:
        await _send_json(send, 404, {"error": {"message": "not found", "type": "invalid_request_error"}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        backlog=4096,
    )


if __name__ == "__main__":
    main()
