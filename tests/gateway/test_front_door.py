"""The gateway's POST routes are served ahead of FastAPI's stack, with the same guarantees."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient

from tests.support.factories import Factory
from tokenboard.gateway.service import Gateway


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/v1/chat/completions", "authentication_error"),
        ("/v1/messages", "authentication_error"),
        ("/v1/messages/count_tokens", "authentication_error"),
    ],
)
async def test_refusals_carry_the_security_headers_and_no_cookie(
    client: AsyncClient, path: str, kind: str
) -> None:
    r = await client.post(
        path, json={"model": "openai/gpt-4o-mini"}, headers={"authorization": "Bearer nope"}
    )
    assert r.status_code == 401 and r.json()["error"]["type"] == kind
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    assert "set-cookie" not in r.headers  # the gateway never sets the dashboard's CSRF cookie


async def test_oversized_bodies_are_refused_in_the_apis_own_format(client: AsyncClient, app: Any) -> None:
    big = b'{"model": "x", "pad": "' + b"a" * (app.state.settings.max_body_bytes + 10) + b'"}'
    openai_style = await client.post("/v1/chat/completions", content=big)
    assert openai_style.status_code == 413 and "too large" in openai_style.json()["error"]["message"]

    async def chunks() -> Any:
        for _ in range(3):
            yield big[: len(big) // 2]

    anthropic_style = await client.post("/v1/messages", content=chunks())  # no content-length: counted
    assert anthropic_style.status_code == 413
    assert anthropic_style.json() == {
        "type": "error",
        "error": {"type": "request_too_large", "message": "The request body is too large."},
    }


async def test_an_unexpected_failure_is_a_clean_500_in_format(
    client: AsyncClient, app: Any, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom with a secret sk-should-not-leak")

    monkeypatch.setattr(Gateway, "admit", broken)
    r = await client.post("/v1/messages", json={"model": "anthropic/claude-3-5-haiku"})
    assert r.status_code == 500 and r.json()["type"] == "error"
    assert "sk-should-not-leak" not in r.text and "boom" not in r.text


async def test_other_methods_and_paths_still_reach_fastapi(client: AsyncClient) -> None:
    assert (await client.get("/v1/chat/completions")).status_code == 405
    assert (await client.get("/v1/messages/count_tokens")).status_code == 405
    assert (await client.get("/v1/models")).status_code == 401
    assert (await client.get("/v1/models/openai/gpt-4o")).status_code == 401
