"""The fake upstream speaks the providers' wire formats: the official SDKs, pointed straight at it, agree."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam

from tests.support import fake_upstream as fakes
from tests.support.fake_upstream import (
    FakeUpstream,
    count_tokens,
    embedding_for,
    expected_usage,
    fake_upstream,
)

# The module's own fixtures: one server for the session, its record cleared for every test.
fake_upstream_server = fakes.fake_upstream_server
upstream = fakes.upstream

GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
CHAT: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hello there, fake!"},
]
MESSAGES: list[MessageParam] = [{"role": "user", "content": [{"type": "text", "text": "Hello there, fake!"}]}]


def behave(spec: str) -> dict[str, Any]:
    return {"extra_headers": {"x-fake-behaviour": spec}}


@pytest.fixture
def oai(upstream: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=upstream.base_url + "/v1", api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(upstream: FakeUpstream) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=upstream.base_url, api_key="sk-ant-test", max_retries=0) as client:
        yield client


def sse_events(upstream: FakeUpstream, path: str, body: dict[str, Any], **headers: str) -> list[str]:
    """The raw ``event:``/``data:`` lines of a streamed response, blank lines dropped."""
    auth = {"authorization": "Bearer sk-test", "anthropic-version": "2023-06-01", **headers}
    with httpx.stream("POST", upstream.base_url + path, json=body, headers=auth) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return [line for line in response.iter_lines() if line]


# --- OpenAI ----------------------------------------------------------------------------------


def test_token_counting_is_four_characters_a_token() -> None:
    assert [count_tokens(t) for t in ("", "a", "abcd", "abcde")] == [0, 1, 1, 2]
    usage = expected_usage("chat", {"model": GPT, "messages": CHAT})
    assert usage["prompt_tokens"] == count_tokens("Be brief.") + count_tokens("Hello there, fake!") == 8
    assert usage["completion_tokens"] == 16


def test_openai_chat_completion(oai: openai.OpenAI, upstream: FakeUpstream) -> None:
    completion = oai.chat.completions.create(model=GPT, messages=CHAT)

    assert completion.object == "chat.completion"
    assert completion.model == GPT
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.model_dump(exclude_none=True) == expected_usage(
        "chat", {"model": GPT, "messages": CHAT}
    )
    (request,) = upstream.requests
    assert (request.method, request.path, request.api_key) == ("POST", "/v1/chat/completions", "sk-test")
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body == {"model": GPT, "messages": CHAT}


def test_openai_n_max_tokens_and_details(oai: openai.OpenAI) -> None:
    model = GPT + "+cached=3+reasoning=2"
    completion = oai.chat.completions.create(model=model, messages=CHAT, n=3, max_tokens=5)
    body = {"model": model, "messages": CHAT, "n": 3, "max_tokens": 5}

    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert {c.finish_reason for c in completion.choices} == {"length"}
    assert {count_tokens(c.message.content or "") for c in completion.choices} == {5}
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens_details and usage.completion_tokens_details
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (8, 3 * (5 + 2), 8 + 21)
    assert usage.prompt_tokens_details.cached_tokens == 3
    assert usage.completion_tokens_details.reasoning_tokens == 6
    assert usage.completion_tokens == expected_usage("chat", body)["completion_tokens"]
    capped = oai.chat.completions.create(model=GPT, messages=CHAT, max_completion_tokens=40)
    assert capped.usage and capped.usage.completion_tokens == 16 and capped.choices[0].finish_reason == "stop"


async def test_openai_async_chat_and_stream(upstream: FakeUpstream) -> None:
    async with openai.AsyncOpenAI(
        base_url=upstream.base_url + "/v1", api_key="sk-test", max_retries=0
    ) as client:
        completion = await client.chat.completions.create(model=GPT, messages=CHAT)
        stream = await client.chat.completions.create(
            model=GPT,
            messages=CHAT,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert completion.usage and chunks[-1].usage
    assert chunks[-1].usage.total_tokens == completion.usage.total_tokens == 24
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == completion.choices[0].message.content


def test_openai_stream_reports_usage_only_when_asked(oai: openai.OpenAI) -> None:
    with oai.chat.completions.create(
        model=GPT,
        messages=CHAT,
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        chunks = list(stream)
    *content, last = chunks
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert content[0].choices[0].delta.role == "assistant"
    assert content[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in content)
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == 16 and last.usage.prompt_tokens == 8

    with oai.chat.completions.create(model=GPT, messages=CHAT, stream=True) as stream:
        assert all(c.usage is None and c.choices for c in stream)


def test_openai_stream_wire_format(upstream: FakeUpstream) -> None:
    body = {"model": GPT, "messages": CHAT, "stream": True, "stream_options": {"include_usage": True}}
    lines = sse_events(
        upstream, "/v1/chat/completions", body, **{"x-fake-behaviour": "chunks=20,interval_ms=5"}
    )
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    # role, 20 content deltas, finish, usage, [DONE]
    assert len(lines) == 1 + 20 + 1 + 1 + 1
    assert '"choices":[]' in lines[-2] and '"usage":{"prompt_tokens":8,' in lines[-2]


def test_embeddings_float_and_base64(oai: openai.OpenAI, upstream: FakeUpstream) -> None:
    inputs = ["first text", "second, longer text"]
    default = oai.embeddings.create(model="text-embedding-3-small", input=inputs)  # SDK asks for base64
    floats = oai.embeddings.create(model="text-embedding-3-small", input=inputs, encoding_format="float")

    assert upstream.requests[0].body["encoding_format"] == "base64"
    for response in (default, floats):
        assert response.object == "list"
        assert [e.index for e in response.data] == [0, 1]
        assert [e.embedding for e in response.data] == [embedding_for(text) for text in inputs]
        assert response.usage.model_dump() == {"prompt_tokens": 3 + 5, "total_tokens": 8}
    tokens = oai.embeddings.create(model="text-embedding-3-small", input=[[1, 2, 3], [4]], dimensions=40)
    assert tokens.usage.prompt_tokens == 4 and len(tokens.data[0].embedding) == 40


def test_models_in_each_providers_shape(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    assert "gpt-4o-mini" in [m.id for m in oai.models.list()]
    assert CLAUDE in [m.id for m in claude.models.list()]


# --- Anthropic -------------------------------------------------------------------------------


def test_anthropic_message(claude: anthropic.Anthropic, upstream: FakeUpstream) -> None:
    spec = "cached=2,cache_write=1,cache_write_1h=1"
    message = claude.messages.create(
        model=CLAUDE, max_tokens=100, system="Be brief.", messages=MESSAGES, **behave(spec)
    )

    assert (message.type, message.role, message.model) == ("message", "assistant", CLAUDE)
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.content[0].type == "text"
    body = {"model": CLAUDE, "max_tokens": 100, "system": "Be brief.", "messages": MESSAGES}
    usage = expected_usage("messages", body, spec)
    assert usage["input_tokens"] + 2 + 1 + 1 == 8
    assert message.usage.model_dump(exclude_none=True) == usage
    request = upstream.requests[0]
    assert request.api_key == "sk-ant-test"
    assert request.headers["anthropic-version"]  # the SDK's API version, which the fake insists on


def test_anthropic_max_tokens(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model=CLAUDE, max_tokens=3, messages=MESSAGES)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3


async def test_anthropic_async_message_and_stream(upstream: FakeUpstream) -> None:
    async with anthropic.AsyncAnthropic(base_url=upstream.base_url, api_key="k", max_retries=0) as client:
        message = await client.messages.create(model=CLAUDE, max_tokens=100, messages=MESSAGES)
        async with client.messages.stream(model=CLAUDE, max_tokens=100, messages=MESSAGES) as stream:
            final = await stream.get_final_message()
    assert final.usage == message.usage
    assert final.content[0].type == message.content[0].type == "text"
    assert final.content[0].text == message.content[0].text


def test_anthropic_stream_helper_usage(claude: anthropic.Anthropic) -> None:
    for spec, chunks in (("chunks=7", 7), ("late_usage,cached=2", 200), ("duplicate_usage", 16)):
        with claude.messages.stream(
            model=CLAUDE, max_tokens=1000, messages=MESSAGES, **behave(spec)
        ) as stream:
            deltas = [e for e in stream if e.type == "content_block_delta"]
            final = stream.get_final_message()
        body = {"model": CLAUDE, "max_tokens": 1000, "messages": MESSAGES}
        assert len(deltas) == chunks
        assert final.usage.model_dump(exclude_none=True) == expected_usage("messages", body, spec)


def test_anthropic_stream_wire_format(upstream: FakeUpstream) -> None:
    body = {"model": CLAUDE, "max_tokens": 100, "messages": MESSAGES, "stream": True}
    lines = sse_events(upstream, "/v1/messages", body, **{"x-fake-behaviour": "chunks=2"})
    events = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    assert events == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert len(lines) == 2 * len(events)
    assert '"usage":{"input_tokens":5,' in lines[1]
    assert lines[
        13
    ] == 'data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},' + (
        '"usage":{"output_tokens":16}}'
    )


# --- behaviours ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (404, openai.NotFoundError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
    ],
)
def test_openai_errors(oai: openai.OpenAI, status: int, error: type[openai.APIStatusError]) -> None:
    with pytest.raises(error) as raised:
        oai.chat.completions.create(model=f"{GPT}+error={status}", messages=CHAT)
    assert raised.value.status_code == status
    assert isinstance(raised.value.body, dict)
    assert set(raised.value.body) == {"message", "type", "param", "code"}
    assert raised.value.response.headers["x-request-id"].startswith("req_")
    if status == 429:
        assert raised.value.response.headers["retry-after"] == "1"
        assert raised.value.code == "rate_limit_exceeded"


@pytest.mark.parametrize(
    ("spec", "error", "kind"),
    [
        ("bad_request", anthropic.BadRequestError, "invalid_request_error"),
        ("unauthorized", anthropic.AuthenticationError, "authentication_error"),
        ("rate_limited,retry_after=7", anthropic.RateLimitError, "rate_limit_error"),
        ("server_error", anthropic.InternalServerError, "api_error"),
        ("overloaded", anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_anthropic_errors(
    claude: anthropic.Anthropic, spec: str, error: type[anthropic.APIStatusError], kind: str
) -> None:
    with pytest.raises(error) as raised:
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=MESSAGES, **behave(spec))
    assert isinstance(raised.value, anthropic.APIStatusError)
    body = raised.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert set(body["error"]) == {"type", "message"} and body["error"]["type"] == kind
    assert raised.value.request_id == body["request_id"] == raised.value.response.headers["request-id"]
    if "retry_after" in spec:
        assert raised.value.response.headers["retry-after"] == "7"


def test_behaviour_from_model_name_preset(claude: anthropic.Anthropic, oai: openai.OpenAI) -> None:
    with pytest.raises(anthropic.OverloadedError) as raised:
        claude.messages.create(model="fake-overloaded", max_tokens=10, messages=MESSAGES)
    assert isinstance(raised.value, anthropic.InternalServerError)
    with pytest.raises(openai.RateLimitError):
        oai.chat.completions.create(model="fake-error-429", messages=CHAT)
    plain = oai.chat.completions.create(model="fake-model", messages=CHAT)
    assert plain.model == "fake-model"


def test_unknown_behaviour_is_a_clear_400(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="unknown fake behaviour 'sloww'"):
        oai.chat.completions.create(model=GPT, messages=CHAT, **behave("sloww"))


def test_malformed_json_raises(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    with pytest.raises(ValueError):
        oai.chat.completions.create(model=GPT, messages=CHAT, **behave("malformed"))
    with pytest.raises(ValueError):
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=MESSAGES, **behave("malformed"))
    with (
        pytest.raises(ValueError),
        claude.messages.stream(
            model=CLAUDE, max_tokens=10, messages=MESSAGES, **behave("malformed")
        ) as stream,
    ):
        stream.get_final_message()


def test_cut_stream_raises_in_the_sdk(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        stream = oai.chat.completions.create(
            model=GPT + "+cut",
            messages=CHAT,
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert 0 < len("".join(received)) < 64  # half the reply, then the connection drops
    # The Anthropic SDK raises the transport's error (before 2.17) or its connection error wrapping it.
    cut = (httpx2.RemoteProtocolError, anthropic.APIConnectionError)
    with pytest.raises(cut, match="incomplete chunked read"):
        with claude.messages.stream(
            model=CLAUDE, max_tokens=100, messages=MESSAGES, **behave("cut")
        ) as message_stream:
            message_stream.get_final_message()
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model=GPT, messages=CHAT, **behave("cut"))


@pytest.mark.parametrize(
    ("spec", "usage_lines"),
    [("", 1), ("no_usage", 0), ("duplicate_usage", 2), ("zero_usage", 1), ("late_usage", 1)],
)
def test_openai_stream_usage_modes(upstream: FakeUpstream, spec: str, usage_lines: int) -> None:
    body = {"model": GPT, "messages": CHAT, "stream": True, "stream_options": {"include_usage": True}}
    lines = sse_events(upstream, "/v1/chat/completions", body, **{"x-fake-behaviour": spec})
    usage = [line for line in lines if '"usage":{' in line]
    assert len(usage) == usage_lines
    assert all(line == lines[-2] for line in usage) and lines[-1] == "data: [DONE]"
    assert ('"total_tokens":0' in lines[-2]) is (spec == "zero_usage")
    assert len(lines) == (200 if spec == "late_usage" else 16) + 3 + usage_lines


def test_anthropic_late_usage_moves_input_to_message_delta(upstream: FakeUpstream) -> None:
    body = {"model": CLAUDE, "max_tokens": 1000, "messages": MESSAGES, "stream": True}
    lines = sse_events(upstream, "/v1/messages", body, **{"x-fake-behaviour": "late_usage"})
    assert '"input_tokens":0,' in lines[1]
    assert lines[-3].endswith(
        '"usage":{"output_tokens":200,"input_tokens":5,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}'
    )
    missing = sse_events(upstream, "/v1/messages", body, **{"x-fake-behaviour": "no_usage"})
    assert not any('"usage"' in line for line in missing)


def test_delay_and_chunk_interval(oai: openai.OpenAI) -> None:
    started = time.monotonic()
    oai.chat.completions.create(model=GPT + "+delay_ms=150", messages=CHAT)
    assert time.monotonic() - started >= 0.15
    started = time.monotonic()
    with oai.chat.completions.create(
        model=GPT,
        messages=CHAT,
        stream=True,
        **behave("chunks=20,interval_ms=10"),
    ) as stream:
        contents = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert len(contents) == 20
    assert time.monotonic() - started >= 0.2


def test_first_byte_delay_sends_headers_first(upstream: FakeUpstream) -> None:
    body = {"model": GPT, "messages": CHAT, "stream": True}
    headers = {"authorization": "Bearer k", "x-fake-behaviour": "first_byte_ms=150"}
    started = time.monotonic()
    with httpx.stream("POST", upstream.base_url + "/v1/chat/completions", json=body, headers=headers) as r:
        headers_after = time.monotonic() - started
        next(r.iter_lines())
        first_line_after = time.monotonic() - started
    assert headers_after < 0.15 <= first_line_after


def test_stall_times_the_client_out_and_the_fake_sees_it_leave(upstream: FakeUpstream) -> None:
    with openai.OpenAI(base_url=upstream.base_url + "/v1", api_key="k", max_retries=0, timeout=0.3) as client:
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="fake-stall", messages=CHAT)
    assert upstream.wait_for_disconnects(1)
    assert upstream.requests[0].disconnected


def test_client_leaving_mid_stream_is_counted(upstream: FakeUpstream) -> None:
    body = {"model": CLAUDE, "max_tokens": 100, "messages": MESSAGES, "stream": True}
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01", "x-fake-behaviour": "interval_ms=50"}
    with httpx.stream("POST", upstream.base_url + "/v1/messages", json=body, headers=headers) as response:
        assert next(response.iter_lines()) == "event: message_start"
    assert upstream.wait_for_disconnects(1)
    assert [r.disconnected for r in upstream.requests] == [True]
    sse_events(upstream, "/v1/messages", {**body, "model": CLAUDE})  # a complete one is not counted
    assert upstream.disconnects == 1


def test_huge_body(upstream: FakeUpstream) -> None:
    body = {"model": GPT, "messages": CHAT, "max_tokens": 1}
    headers = {"authorization": "Bearer k", "x-fake-behaviour": "huge_kb=2048"}
    with httpx.stream("POST", upstream.base_url + "/v1/chat/completions", json=body, headers=headers) as r:
        size = int(r.headers["content-length"])
        received = sum(len(part) for part in r.iter_bytes())
    assert received == size > 2 * 1024 * 1024
    assert expected_usage("chat", body, "huge_kb=2048")["completion_tokens"] == 2048 * 256


def test_credentials_are_checked_and_recorded() -> None:
    with fake_upstream(openai_api_key="sk-right", anthropic_api_key="sk-ant-right") as fake:
        with openai.OpenAI(base_url=fake.base_url + "/v1", api_key="sk-wrong", max_retries=0) as client:
            with pytest.raises(openai.AuthenticationError):
                client.models.list()
        with anthropic.Anthropic(base_url=fake.base_url, api_key="sk-ant-right", max_retries=0) as claude:
            claude.messages.create(model=CLAUDE, max_tokens=5, messages=MESSAGES)
        missing = httpx.post(fake.base_url + "/v1/messages", json={}, headers={"anthropic-version": "x"})
        no_version = httpx.post(
            fake.base_url + "/v1/messages", json={}, headers={"x-api-key": "sk-ant-right"}
        )
        assert [r.api_key for r in fake.requests] == ["sk-wrong", "sk-ant-right", None, "sk-ant-right"]
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"
    assert no_version.status_code == 400 and "anthropic-version" in no_version.json()["error"]["message"]
