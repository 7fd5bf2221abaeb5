"""The simulated provider speaks the real wire formats: the official SDKs' own types accept every reply."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from anthropic.types import Message, ModelInfo, RawMessageStreamEvent
from openai.types import CreateEmbeddingResponse, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import TypeAdapter

from tokenboard.catalog.reference import curated
from tokenboard.gateway.simulated import (
    IMAGE_TOKENS,
    REASONING_SHARE,
    SIMULATED_BASE_URL,
    SIMULATED_HEADER,
    SimulatedTransport,
    count_text_tokens,
    profile_for,
)

STREAM_EVENT = TypeAdapter[RawMessageStreamEvent](RawMessageStreamEvent)
HELLO = "Hello there, simulated model! Tell me about token budgets."
CHAT: dict[str, Any] = {
    "model": "fast",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": HELLO}],
}
MESSAGES: dict[str, Any] = {
    "model": "fast",
    "max_tokens": 1024,
    "system": "Be brief.",
    "messages": [{"role": "user", "content": [{"type": "text", "text": HELLO}]}],
}
FRESH = ("id", "created")  # the only fields that differ between two answers to the same request


def client(latency_scale: float = 0, **options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=SimulatedTransport(latency_scale=latency_scale, **options), base_url=SIMULATED_BASE_URL
    )


@pytest.fixture
async def sim() -> AsyncIterator[httpx.AsyncClient]:
    async with client() as c:
        yield c


async def post(c: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await c.post(path, json=body)
    assert response.status_code == 200, response.text
    assert response.headers[SIMULATED_HEADER] == "true"
    assert response.headers["content-type"] == "application/json"
    payload: dict[str, Any] = response.json()
    return payload


async def sse(c: httpx.AsyncClient, path: str, body: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(event name, data) of each server-sent event of a streamed reply."""
    events: list[tuple[str | None, str]] = []
    async with c.stream("POST", path, json={**body, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers[SIMULATED_HEADER] == "true"
        assert response.headers["content-type"].startswith("text/event-stream")
        name: str | None = None
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, line.removeprefix("data: ")))
                name = None
            else:
                assert line == ""
    return events


def without(payload: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in keys}


# --- OpenAI chat completions -------------------------------------------------------------------------


async def test_chat_completion_is_an_openai_chat_completion(sim: httpx.AsyncClient) -> None:
    completion = ChatCompletion.model_validate(await post(sim, "/v1/chat/completions", {**CHAT, "n": 2}))

    assert completion.object == "chat.completion"
    assert completion.model == "fast"
    assert [c.index for c in completion.choices] == [0, 1]
    assert all(c.message.role == "assistant" and c.message.content for c in completion.choices)
    assert {c.finish_reason for c in completion.choices} == {"stop"}
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens_details and usage.completion_tokens_details
    assert usage.prompt_tokens == count_text_tokens("Be brief.") + count_text_tokens(HELLO) == 3 + 15
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details.reasoning_tokens == 0
    # one token per word of filler text, and both choices are billed
    words = sum(len((c.message.content or "").split()) for c in completion.choices)
    assert usage.completion_tokens == words


async def test_chat_stream_matches_the_plain_reply(sim: httpx.AsyncClient) -> None:
    body = {**CHAT, "n": 2, "stream_options": {"include_usage": True}}
    plain = ChatCompletion.model_validate(await post(sim, "/v1/chat/completions", body))
    events = await sse(sim, "/v1/chat/completions", body)

    assert events[-1] == (None, "[DONE]")
    chunks = [ChatCompletionChunk.model_validate_json(data) for _, data in events[:-1]]
    *content, last = chunks
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert {c.model for c in chunks} == {"fast"}
    assert len({c.id for c in chunks}) == 1
    assert last.choices == [] and last.usage == plain.usage
    assert all(c.usage is None for c in content)
    for index, choice in enumerate(plain.choices):
        deltas = [d for c in content for d in c.choices if d.index == index]
        assert deltas[0].delta.role == "assistant"
        assert "".join(d.delta.content or "" for d in deltas) == choice.message.content
        assert [d.finish_reason for d in deltas if d.finish_reason] == ["stop"]


async def test_chat_stream_sends_usage_only_when_asked(sim: httpx.AsyncClient) -> None:
    events = await sse(sim, "/v1/chat/completions", CHAT)

    chunks = [json.loads(data) for _, data in events[:-1]]
    assert all("usage" not in chunk and chunk["choices"] for chunk in chunks)


@pytest.mark.parametrize("cap_field", ["max_tokens", "max_completion_tokens"])
async def test_max_tokens_caps_every_choice(sim: httpx.AsyncClient, cap_field: str) -> None:
    body = {**CHAT, "n": 3, cap_field: 5}
    completion = ChatCompletion.model_validate(await post(sim, "/v1/chat/completions", body))

    assert {c.finish_reason for c in completion.choices} == {"length"}
    assert {len((c.message.content or "").split()) for c in completion.choices} == {5}
    assert completion.usage is not None and completion.usage.completion_tokens == 15
    events = await sse(sim, "/v1/chat/completions", {**body, "stream_options": {"include_usage": True}})
    assert json.loads(events[-2][1])["usage"] == completion.usage.model_dump(exclude_none=True)


async def test_reply_length_grows_with_the_prompt(sim: httpx.AsyncClient) -> None:
    async def completion_tokens(words: int) -> int:
        text = " ".join(["word"] * words)
        payload = await post(
            sim, "/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": text}]}
        )
        tokens: int = payload["usage"]["completion_tokens"]
        return tokens

    short = [await completion_tokens(n) for n in range(1, 6)]
    long = [await completion_tokens(2000 + n) for n in range(5)]
    assert max(short) < 64 <= min(long)


async def test_reasoning_models_spend_reasoning_tokens_within_max_tokens(sim: httpx.AsyncClient) -> None:
    body = {**CHAT, "model": "reasoning"}
    usage = (await post(sim, "/v1/chat/completions", body))["usage"]
    reasoning = usage["completion_tokens_details"]["reasoning_tokens"]
    assert reasoning == pytest.approx(usage["completion_tokens"] * REASONING_SHARE, abs=1)

    capped = ChatCompletion.model_validate(
        await post(sim, "/v1/chat/completions", {**body, "max_completion_tokens": 10})
    )
    assert capped.usage and capped.usage.completion_tokens_details
    assert capped.usage.completion_tokens == 10
    assert capped.usage.completion_tokens_details.reasoning_tokens == 6
    assert len((capped.choices[0].message.content or "").split()) == 4
    assert capped.choices[0].finish_reason == "length"


def test_reasoning_follows_the_curated_catalog() -> None:
    models = curated()["simulated_models"]
    for model_id, spec in models.items():
        reasons = "reasoning" in spec["prices_per_mtok"]
        assert (profile_for(model_id).reasoning_share > 0) is reasons
        assert profile_for(model_id.removeprefix("simulated/")) == profile_for(model_id)
    assert profile_for("simulated/reasoning").reasoning_share == REASONING_SHARE


async def test_replies_are_deterministic(sim: httpx.AsyncClient) -> None:
    first = await post(sim, "/v1/chat/completions", CHAT)
    async with client() as other:
        again = await post(other, "/v1/chat/completions", CHAT)
    different = await post(sim, "/v1/chat/completions", {**CHAT, "temperature": 0.5})

    assert without(first, FRESH) == without(again, FRESH)
    assert first["id"] != again["id"]
    assert different["choices"][0]["message"] != first["choices"][0]["message"]


async def test_echo_repeats_the_last_user_message(sim: httpx.AsyncClient) -> None:
    body = {**CHAT, "model": "echo"}
    echoed = await post(sim, "/v1/chat/completions", body)
    assert echoed["choices"][0]["message"]["content"] == HELLO
    assert echoed["usage"]["completion_tokens"] == count_text_tokens(HELLO)

    capped = await post(sim, "/v1/chat/completions", {**body, "max_tokens": 2})
    assert capped["choices"][0]["message"]["content"] == HELLO[:8]


async def test_prompt_counts_system_tools_and_images(sim: httpx.AsyncClient) -> None:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": HELLO}, image]},
    ]
    body = {"model": "fast", "messages": messages, "tools": [tool]}
    usage = (await post(sim, "/v1/chat/completions", body))["usage"]

    tool_tokens = count_text_tokens(json.dumps(tool, separators=(",", ":")))
    assert usage["prompt_tokens"] == tool_tokens + 3 + 15 + IMAGE_TOKENS


async def test_repeated_long_prefix_is_cached(sim: httpx.AsyncClient) -> None:
    context = "Policy text that every request shares. " * 200  # 7,800 characters, 1,950 tokens
    first = {
        "model": "echo",
        "messages": [{"role": "system", "content": context}, {"role": "user", "content": "a"}],
    }
    second = {**first, "messages": [*first["messages"][:1], {"role": "user", "content": "b"}]}

    cold = (await post(sim, "/v1/chat/completions", first))["usage"]
    warm = (await post(sim, "/v1/chat/completions", second))["usage"]
    assert cold["prompt_tokens_details"]["cached_tokens"] == 0
    assert warm["prompt_tokens"] == cold["prompt_tokens"] == 1951
    assert warm["prompt_tokens_details"]["cached_tokens"] == 1920  # 1024 + 7 x 128, the shared prefix

    async with client(prompt_caching=False) as uncached:
        await post(uncached, "/v1/chat/completions", first)
        again = (await post(uncached, "/v1/chat/completions", first))["usage"]
    assert again["prompt_tokens_details"]["cached_tokens"] == 0


# --- Anthropic messages ------------------------------------------------------------------------------


async def test_message_is_an_anthropic_message(sim: httpx.AsyncClient) -> None:
    message = Message.model_validate(await post(sim, "/v1/messages", MESSAGES))

    assert message.model == "fast"
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text" and message.content[0].text
    assert message.usage.input_tokens == 3 + 15
    assert message.usage.output_tokens == len(message.content[0].text.split())
    assert message.usage.cache_read_input_tokens == message.usage.cache_creation_input_tokens == 0


async def test_message_stream_matches_the_plain_reply(sim: httpx.AsyncClient) -> None:
    plain = Message.model_validate(await post(sim, "/v1/messages", MESSAGES))
    events = await sse(sim, "/v1/messages", MESSAGES)

    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert json.loads(events[2][1]) == {"type": "ping"}  # not a RawMessageStreamEvent: the SDK skips it
    parsed = [STREAM_EVENT.validate_json(data) for name, data in events if name != "ping"]
    assert [event.type for event in parsed] == [name for name in names if name != "ping"]
    start, delta = parsed[0], parsed[-2]
    assert start.type == "message_start" and delta.type == "message_delta"
    assert start.message.model == "fast" and start.message.content == []
    # Anthropic semantics: input counts in message_start, the cumulative output count in message_delta
    streamed = start.message.usage.model_copy(update={"output_tokens": delta.usage.output_tokens})
    assert streamed == plain.usage
    assert delta.delta.stop_reason == plain.stop_reason
    text = "".join(
        e.delta.text for e in parsed if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )
    assert plain.content[0].type == "text" and text == plain.content[0].text


async def test_message_max_tokens_caps_output(sim: httpx.AsyncClient) -> None:
    message = Message.model_validate(await post(sim, "/v1/messages", {**MESSAGES, "max_tokens": 4}))
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 4

    events = await sse(sim, "/v1/messages", {**MESSAGES, "max_tokens": 4})
    delta = json.loads(events[-2][1])
    assert delta["delta"]["stop_reason"] == "max_tokens" and delta["usage"]["output_tokens"] == 4


async def test_thinking_tokens_when_a_reasoning_model_thinks(sim: httpx.AsyncClient) -> None:
    body = {**MESSAGES, "model": "reasoning"}
    plain = Message.model_validate(await post(sim, "/v1/messages", body))
    assert plain.usage.output_tokens_details is None

    thinking = {**body, "thinking": {"type": "enabled", "budget_tokens": 1024}}
    thought = Message.model_validate(await post(sim, "/v1/messages", thinking))
    assert thought.usage.output_tokens_details is not None
    thinking_tokens = thought.usage.output_tokens_details.thinking_tokens
    assert thinking_tokens == pytest.approx(thought.usage.output_tokens * REASONING_SHARE, abs=1)
    assert thought.content[0].type == "text"
    assert thought.usage.output_tokens == thinking_tokens + len(thought.content[0].text.split())


async def test_cache_control_writes_then_reads(sim: httpx.AsyncClient) -> None:
    context = "Policy text that every request shares. " * 200
    system = [{"type": "text", "text": context, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    body = {**MESSAGES, "system": system}
    tokens = count_text_tokens(context)

    written = Message.model_validate(await post(sim, "/v1/messages", body)).usage
    read = Message.model_validate(await post(sim, "/v1/messages", body)).usage
    assert (written.cache_creation_input_tokens, written.cache_read_input_tokens) == (tokens, 0)
    assert written.cache_creation and written.cache_creation.ephemeral_1h_input_tokens == tokens
    assert (read.cache_creation_input_tokens, read.cache_read_input_tokens) == (0, tokens)
    assert written.input_tokens == read.input_tokens == 15


# --- embeddings and models ---------------------------------------------------------------------------


async def test_embeddings_as_floats_and_base64(sim: httpx.AsyncClient) -> None:
    body = {"model": "text-embedding-3-small", "input": ["hello", "token budgets"], "dimensions": 64}
    floats = CreateEmbeddingResponse.model_validate(await post(sim, "/v1/embeddings", body))
    encoded = await post(sim, "/v1/embeddings", {**body, "encoding_format": "base64"})

    assert floats.model == "text-embedding-3-small"
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == 2 + 4
    assert [len(d.embedding) for d in floats.data] == [64, 64]
    assert floats.data[0].embedding != floats.data[1].embedding
    assert sum(x * x for x in floats.data[0].embedding) == pytest.approx(1.0, abs=1e-5)
    for as_float, as_text in zip(floats.data, encoded["data"], strict=True):
        assert list(struct.unpack("<64f", base64.b64decode(as_text["embedding"]))) == as_float.embedding
    default = await post(sim, "/v1/embeddings", {"model": "m", "input": [1, 2, 3]})
    assert len(default["data"][0]["embedding"]) == 1536 and default["usage"]["prompt_tokens"] == 3


async def test_models_in_both_shapes(sim: httpx.AsyncClient) -> None:
    listed = (await sim.get("/v1/models")).json()
    models = [Model.model_validate(m) for m in listed["data"]]
    assert [m.id for m in models] == ["echo", "fast", "reasoning"]

    page = (await sim.get("/v1/models", headers={"anthropic-version": "2023-06-01"})).json()
    assert [ModelInfo.model_validate(m).id for m in page["data"]] == ["echo", "fast", "reasoning"]


# --- errors ------------------------------------------------------------------------------------------


async def test_errors_in_the_providers_shapes(sim: httpx.AsyncClient) -> None:
    missing = await sim.post("/v1/responses", json=CHAT)
    assert missing.status_code == 404 and missing.headers[SIMULATED_HEADER] == "true"
    assert set(missing.json()["error"]) == {"message", "type", "param", "code"}

    chat = await sim.post("/v1/chat/completions", content=b"{not json")
    assert chat.status_code == 400 and chat.json()["error"]["type"] == "invalid_request_error"

    messages = await sim.post("/v1/messages", content=b"{not json")
    assert messages.status_code == 400
    assert messages.json()["type"] == "error" and messages.json()["error"]["type"] == "invalid_request_error"

    no_max = await sim.post("/v1/messages", json={k: v for k, v in MESSAGES.items() if k != "max_tokens"})
    assert no_max.status_code == 400 and "max_tokens" in no_max.json()["error"]["message"]

    bad_n = await sim.post("/v1/chat/completions", json={**CHAT, "n": 0})
    assert bad_n.status_code == 400 and bad_n.json()["error"]["param"] == "n"


# --- latency and streams -----------------------------------------------------------------------------


async def first_byte_seconds(c: httpx.AsyncClient, body: dict[str, Any]) -> float:
    started = time.perf_counter()
    async with c.stream("POST", "/v1/chat/completions", json=body) as response:
        async for _ in response.aiter_raw():
            return time.perf_counter() - started
    raise AssertionError("no body")


async def test_latency_is_realistic_unless_scaled_to_zero() -> None:
    async with client(latency_scale=1) as slow, client(latency_scale=0) as instant:
        assert await first_byte_seconds(slow, {**CHAT, "stream": True}) > 0.15
        assert await first_byte_seconds(slow, CHAT) > 0.15
        assert await first_byte_seconds(instant, {**CHAT, "stream": True}) < 0.05
        assert await first_byte_seconds(instant, CHAT) < 0.05


def test_negative_latency_is_refused() -> None:
    with pytest.raises(ValueError, match="latency_scale"):
        SimulatedTransport(latency_scale=-1)


async def test_closing_a_stream_stops_generation() -> None:
    transport = SimulatedTransport(latency_scale=1)
    long_prompt = {**CHAT, "messages": [{"role": "user", "content": "word " * 3000}], "stream": True}
    async with httpx.AsyncClient(transport=transport, base_url=SIMULATED_BASE_URL) as c:
        started = time.perf_counter()
        async with c.stream("POST", "/v1/chat/completions", json=long_prompt) as response:
            async for _ in response.aiter_raw():
                break
            assert transport.active_streams == 1
        # some 400 tokens at 15-30 ms each were left unsent
        assert time.perf_counter() - started < 1.0
        assert transport.active_streams == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_cancelling_a_reader_stops_the_stream() -> None:
    transport = SimulatedTransport(latency_scale=1)
    async with httpx.AsyncClient(transport=transport, base_url=SIMULATED_BASE_URL) as c:

        async def read() -> None:
            async with c.stream("POST", "/v1/messages", json={**MESSAGES, "stream": True}) as response:
                async for _ in response.aiter_raw():
                    pass

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.05)  # the stream is waiting for its first token
        assert transport.active_streams == 1
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        assert transport.active_streams == 0


# --- the official SDKs, end to end -------------------------------------------------------------------


class _Httpx2Bridge(httpx2.AsyncBaseTransport):
    """The SDKs are built on ``httpx2``; this hands their requests to the ``httpx`` transport under test."""

    def __init__(self, inner: SimulatedTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        content = await request.aread()
        headers = list(request.headers.multi_items())
        forwarded = httpx.Request(request.method, str(request.url), headers=headers, content=content)
        response = await self.inner.handle_async_request(forwarded)
        return httpx2.Response(
            response.status_code, headers=response.headers.multi_items(), stream=_Httpx2Stream(response)
        )


class _Httpx2Stream(httpx2.AsyncByteStream):
    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.response.aiter_raw():
            yield chunk

    async def aclose(self) -> None:
        await self.response.aclose()


def sdk_http_client() -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=_Httpx2Bridge(SimulatedTransport(latency_scale=0)))


async def test_the_openai_sdk_end_to_end() -> None:
    async with openai.AsyncOpenAI(
        base_url=SIMULATED_BASE_URL + "/v1", api_key="x", http_client=sdk_http_client(), max_retries=0
    ) as sdk:
        completion = await sdk.chat.completions.create(model="fast", messages=CHAT["messages"], n=2)
        stream = await sdk.chat.completions.create(
            model="fast", messages=CHAT["messages"], n=2, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
        vectors = await sdk.embeddings.create(model="text-embedding-3-small", input=["a", "b"])  # base64
        floats = await sdk.embeddings.create(
            model="text-embedding-3-small", input=["a", "b"], encoding_format="float"
        )
        models = [m.id async for m in sdk.models.list()]
        with pytest.raises(openai.BadRequestError):
            await sdk.chat.completions.create(model="fast", messages=CHAT["messages"], n=0)

    assert completion.usage == chunks[-1].usage
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].index == 0)
    assert text == completion.choices[0].message.content
    assert [d.embedding for d in vectors.data] == [d.embedding for d in floats.data]
    assert models == ["echo", "fast", "reasoning"]


async def test_the_anthropic_sdk_end_to_end() -> None:
    async with anthropic.AsyncAnthropic(
        base_url=SIMULATED_BASE_URL, api_key="x", http_client=sdk_http_client(), max_retries=0
    ) as sdk:
        message = await sdk.messages.create(
            model="fast", max_tokens=1024, system="Be brief.", messages=MESSAGES["messages"]
        )
        async with sdk.messages.stream(
            model="fast", max_tokens=1024, system="Be brief.", messages=MESSAGES["messages"]
        ) as stream:
            streamed = await stream.get_final_message()
        with pytest.raises(anthropic.BadRequestError):
            await sdk.messages.create(model="fast", max_tokens=0, messages=MESSAGES["messages"])

    assert streamed.usage == message.usage
    assert [b.model_dump(include={"type", "text"}) for b in streamed.content] == [
        b.model_dump(include={"type", "text"}) for b in message.content
    ]
    assert streamed.stop_reason == message.stop_reason == "end_turn"
