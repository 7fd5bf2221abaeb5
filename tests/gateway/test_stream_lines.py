"""The relay's pieces: lines split across chunks, the model-name rewrite and the messages a stream sends; the
complete answer's metering finished after it is sent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenboard.gateway.service import (
    CHAT,
    Gateway,
    _Answer,
    _EventStream,
    _ModelRewrite,
    _Relay,
    _split_lines,
)

EVENT_LINES = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=30),
    max_size=8,
)


def relay(chunks: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    pending = b""
    for chunk in chunks:
        lines, pending = _split_lines(pending + chunk)
        out += lines
    if pending:  # as the relay does at the end of the stream
        last, _ = _split_lines(pending + b"\n")
        out += last
    return out


@given(EVENT_LINES, st.sampled_from([b"\n", b"\r\n", b"\r"]), st.lists(st.integers(0, 400), max_size=6))
def test_lines_are_the_same_however_the_stream_is_cut(
    lines: list[str], ending: bytes, cuts: list[int]
) -> None:
    data = b"".join(line.encode() + ending for line in lines)
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert relay(chunks) == [line.encode() for line in lines]


def test_a_last_line_without_its_break_is_kept_for_the_end() -> None:
    assert relay([b"data: 1\n\nda", b"ta: 2"]) == [b"data: 1", b"", b"data: 2"]


def test_the_model_name_is_replaced_in_place_in_compact_json() -> None:
    rewrite = _ModelRewrite("gpt-4o-mini", "openai/gpt-4o-mini")
    line = b'data: {"id":"c1","model":"gpt-4o-mini","choices":[{"delta":{"content":"model"}}]}'
    event = json.loads(line[6:])
    out = rewrite(line)
    assert out == line.replace(b'"gpt-4o-mini"', b'"openai/gpt-4o-mini"')
    assert json.loads(out[6:])["choices"] == event["choices"]


def test_an_anthropic_stream_names_the_model_in_its_message_start() -> None:
    rewrite = _ModelRewrite("claude-haiku-4-5", "anthropic/claude-haiku-4-5")
    compact = b'data: {"type":"message_start","message":{"id":"m1","model":"claude-haiku-4-5","usage":{}}}'
    spaced = b'data: {"type": "message_start", "message": {"id": "m1", "model": "claude-haiku-4-5"}}'
    for line in (compact, spaced):
        event = json.loads(rewrite(line)[6:])
        assert event["message"]["model"] == "anthropic/claude-haiku-4-5" and "model" not in event


def test_other_shapes_are_re_serialized_from_the_parsed_event() -> None:
    rewrite = _ModelRewrite("gpt-4o-mini", "openai/gpt-4o-mini")
    spaced = b'data: {"id": "c1", "model": "gpt-4o-mini"}'
    out = json.loads(rewrite(spaced)[6:])
    assert out == {"id": "c1", "model": "openai/gpt-4o-mini"}
    # a second "model" key deeper in the event: never a blind byte replacement
    nested = b'data: {"model":"gpt-4o-mini","tool":{"model":"gpt-4o-mini"}}'
    out = json.loads(rewrite(nested)[6:])
    assert out == {"model": "openai/gpt-4o-mini", "tool": {"model": "gpt-4o-mini"}}
    # the provider names another model (a fallback): still the gateway's name
    other = b'data: {"model":"gpt-4o-mini-2024-07-18"}'
    assert json.loads(rewrite(other)[6:]) == {"model": "openai/gpt-4o-mini"}
    # integers beyond 64 bits come back exactly as the provider wrote them
    big = (
        b'data: {"model": "gpt-4o-mini", "seed": 123456789012345678901234567890, "low": -9223372036854775809}'
    )
    assert json.loads(rewrite(big)[6:]) == {
        "model": "openai/gpt-4o-mini",
        "seed": 123456789012345678901234567890,
        "low": -9223372036854775809,
    }


async def test_a_compressed_answer_is_decoded_and_a_plain_one_passed_as_is() -> None:
    import gzip

    import httpx

    from tokenboard.gateway.service import _body_chunks

    text = b"data: {}\n\n" * 50
    plain = httpx.Response(200, stream=httpx.ByteStream(text))
    assert b"".join([c async for c in _body_chunks(plain)]) == text
    packed = httpx.Response(
        200, headers={"content-encoding": "gzip"}, stream=httpx.ByteStream(gzip.compress(text))
    )
    assert b"".join([c async for c in _body_chunks(packed)]) == text


def test_events_are_read_whatever_json_python_accepts() -> None:
    """The relay parses events with orjson and falls back to ``json.loads`` for what orjson refuses (lone
    surrogate escapes, NaN): such an event is relayed and counted as before, never taken as malformed."""
    admitted: Any = SimpleNamespace(usage={}, route=CHAT, client_wants_usage=False)
    rewrite = _ModelRewrite("gpt-4o-mini", "openai/gpt-4o-mini")
    state: dict[str, Any] = {"ttft": None, "text_chars": 0, "done": False}
    lines = [
        b'data: {"choices":[{"delta":{"content":"ab"}}]}',
        b'data: {"choices":[{"delta":{"content":"\\ud800c"}}]}',
        b'data: {"choices":[{"delta":{"content":"de"}}],"score":NaN}',
        b'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}',
        b"data: [DONE]",
    ]
    observe = Gateway._observe
    out = [observe(None, admitted, line, state, rewrite) for line in lines]  # type: ignore[arg-type]
    assert out == [*lines[:3], None, lines[4]]  # the usage-only event is the gateway's: not relayed
    assert state["text_chars"] == 6
    assert state["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert state["done"] and "malformed" not in state
    assert observe(None, admitted, b"data: {not json", state, rewrite) is None  # type: ignore[arg-type]
    assert state["malformed"]


async def _relayed(script: Any) -> list[dict[str, Any]]:
    """The ASGI messages an event stream sends while ``script(relay)`` plays the pump's part."""
    relay = _Relay()
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        await asyncio.Event().wait()  # the client never leaves

    response = asyncio.create_task(_EventStream(relay, {})({"type": "http"}, receive, send))
    await script(relay)
    await asyncio.wait_for(response, 5)
    return sent


async def test_the_last_block_ends_the_response_in_the_same_message() -> None:
    async def pump(relay: _Relay) -> None:
        await relay.write(b"data: 1\n\n")
        await relay.write(b"data: [DONE]\n\n", last=True)
        await relay.end()  # already ended: nothing more is sent
        relay.finish()

    sent = await _relayed(pump)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body", "http.response.body"]
    assert [(m["body"], m["more_body"]) for m in sent[1:]] == [
        (b"data: 1\n\n", True),
        (b"data: [DONE]\n\n", False),
    ]


async def test_the_pump_ends_the_response_before_it_finishes() -> None:
    """Where the body's end is not known with its last block, the pump ends the response itself; the
    response never sends a second end."""
    ends_before_finish: list[bool] = []

    async def pump(relay: _Relay) -> None:
        await relay.write(b"data: 1\n\n")
        await relay.end()
        ends_before_finish.append(relay.ended)
        relay.finish()

    sent = await _relayed(pump)
    assert ends_before_finish == [True]
    assert [(m["body"], m["more_body"]) for m in sent[1:]] == [(b"data: 1\n\n", True), (b"", False)]


async def test_a_complete_answer_settles_after_it_is_sent_and_when_sending_fails() -> None:
    """``settle`` (credit holds finished, the event queued) runs once the body is out, not before: and also
    when the body could not be sent, or the request's holds and queued event would be lost."""
    seen: list[str] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        seen.append(message["type"])

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}
    answer = _Answer(b'{"ok":true}', {"x-tokenboard-request-id": "r1"}, settle=lambda: seen.append("settled"))
    await answer(scope, receive, send)
    assert seen == ["http.response.start", "http.response.body", "settled"]
    assert dict(answer.raw_headers)[b"content-type"] == b"application/json"

    async def failing_send(message: MutableMapping[str, Any]) -> None:
        seen.append(message["type"])
        raise OSError("the client's socket broke")

    seen.clear()
    answer = _Answer(b"{}", {}, settle=lambda: seen.append("settled"))
    with pytest.raises(OSError):
        await answer(scope, receive, failing_send)
    assert seen == ["http.response.start", "settled"]
