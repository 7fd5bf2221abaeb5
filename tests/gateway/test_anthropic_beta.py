"""The client's ``anthropic-beta`` header through a live gateway: passed on to an Anthropic upstream as sent
(messages, streams, token counting), never to other upstreams, and refused unless it is a list of beta names.
"""

from __future__ import annotations

import anthropic
import httpx
import pytest

from tests.gateway.conftest import LiveGateway, seed
from tests.support.factories import Factory
from tests.support.fake_upstream import FakeUpstream

HAIKU = "anthropic/claude-haiku-4-5"
HELLO = [{"role": "user", "content": "Hello there"}]
BETAS = "context-1m-2025-08-07,output-128k-2025-02-19"


async def test_the_beta_list_reaches_anthropic_with_each_request_that_sends_it(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream
) -> None:
    tenant = await seed(factory)
    client = anthropic.AsyncAnthropic(base_url=live_gateway.url, api_key=tenant.key, max_retries=0)
    beta = {"anthropic-beta": BETAS}
    await client.messages.create(model=HAIKU, max_tokens=8, messages=HELLO, extra_headers=beta)  # type: ignore[arg-type]
    assert upstream.requests[-1].headers["anthropic-beta"] == BETAS
    async with client.messages.stream(
        model=HAIKU,
        max_tokens=8,
        messages=HELLO,  # type: ignore[arg-type]
        extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
    ) as stream:
        await stream.get_final_message()
    assert upstream.requests[-1].headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    # A request without it is sent without it: each list has its own prebuilt request head.
    await client.messages.create(model=HAIKU, max_tokens=8, messages=HELLO)  # type: ignore[arg-type]
    assert "anthropic-beta" not in upstream.requests[-1].headers
    await client.messages.count_tokens(model=HAIKU, messages=HELLO, extra_headers=beta)  # type: ignore[arg-type]
    assert upstream.requests[-1].path == "/v1/messages/count_tokens"
    assert upstream.requests[-1].headers["anthropic-beta"] == BETAS
    await client.close()
    # Sent twice, the header is one list, as HTTP reads repeated headers.
    async with httpx.AsyncClient(base_url=live_gateway.url) as http:
        answer = await http.post(
            "/v1/messages",
            headers=[
                ("x-api-key", tenant.key),
                ("anthropic-beta", "context-1m-2025-08-07"),
                ("anthropic-beta", "output-128k-2025-02-19"),
            ],
            json={"model": HAIKU, "max_tokens": 8, "messages": HELLO},
        )
    assert answer.status_code == 200, answer.text
    assert upstream.requests[-1].headers["anthropic-beta"] == "context-1m-2025-08-07,output-128k-2025-02-19"


@pytest.mark.parametrize("value", ["context-1m; x-api-key=sk-other", "a b", "é", ",", "x" * 600])
async def test_anything_but_a_list_of_beta_names_is_refused_before_the_provider(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream, value: str
) -> None:
    tenant = await seed(factory)
    async with httpx.AsyncClient(base_url=live_gateway.url) as http:
        for path in ("/v1/messages", "/v1/messages/count_tokens"):
            answer = await http.post(
                path,
                headers={"x-api-key": tenant.key, "anthropic-beta": value.encode()},  # type: ignore[dict-item]
                json={"model": HAIKU, "max_tokens": 8, "messages": HELLO},
            )
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["message"] == (
                "The anthropic-beta header must be a comma-separated list of beta names."
            )
    assert upstream.requests == []


async def test_other_upstreams_never_get_the_header(
    factory: Factory, live_gateway: LiveGateway, upstream: FakeUpstream
) -> None:
    tenant = await seed(factory)
    async with httpx.AsyncClient(base_url=live_gateway.url) as http:
        answer = await http.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {tenant.key}", "anthropic-beta": BETAS},
            json={"model": "openai/gpt-4o-mini", "max_tokens": 8, "messages": HELLO},
        )
        assert answer.status_code == 200, answer.text
        assert "anthropic-beta" not in upstream.requests[-1].headers
        # Through the OpenAI format to an Anthropic model (Anthropic's OpenAI-compatible route) it is not
        # sent either: the beta names are the Messages API's.
        answer = await http.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {tenant.key}", "anthropic-beta": BETAS},
            json={"model": HAIKU, "max_tokens": 8, "messages": HELLO},
        )
        assert answer.status_code == 200, answer.text
        assert "anthropic-beta" not in upstream.requests[-1].headers
        simulated = await http.post(
            "/v1/messages",
            headers={"x-api-key": tenant.key, "anthropic-beta": "a b"},  # not Anthropic's: not read at all
            json={"model": "simulated/fast", "max_tokens": 8, "messages": HELLO},
        )
        assert simulated.status_code == 200, simulated.text
