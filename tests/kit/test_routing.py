"""``OnePassJson``: a JSON body parsed and validated by pydantic in one pass, with FastAPI's own errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from httpx import ASGITransport, AsyncClient
from pydantic import BaseModel, ConfigDict, Field

from tokenboard.kit.routing import OnePassJson


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    count: int = Field(ge=0)


class Batch(BaseModel):
    items: list[Item] = Field(min_length=1)


def _app(route_class: type[APIRoute]) -> FastAPI:
    app = FastAPI()

    async def take(batch: Batch) -> dict[str, Any]:
        return {"type": type(batch).__name__, "names": [i.name for i in batch.items]}

    app.router.add_api_route("/batch", take, methods=["POST"], route_class_override=route_class)
    return app


async def _post(app: FastAPI, content: bytes, content_type: str = "application/json") -> tuple[int, Any]:
    transport = ASGITransport(app=app)
    async with AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.post("/batch", content=content, headers={"content-type": content_type})
    return r.status_code, r.json()


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What ``json.loads`` was given while the app ran."""
    seen: list[Any] = []
    loads = json.loads

    def spy(text: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(text)
        return loads(text, *args, **kwargs)

    monkeypatch.setattr(json, "loads", spy)
    return seen


async def test_a_valid_body_is_validated_by_pydantic_alone(decoded: list[Any]) -> None:
    body = b'{"items": [{"name": "a", "count": 1}, {"name": "b", "count": 2}]}'
    assert await _post(_app(OnePassJson), body) == (200, {"type": "Batch", "names": ["a", "b"]})
    assert body not in decoded  # FastAPI's own path decodes it with json.loads first
    decoded.clear()
    assert await _post(_app(APIRoute), body) == (200, {"type": "Batch", "names": ["a", "b"]})
    assert body in decoded


@pytest.mark.parametrize(
    "body",
    [
        b'{"items": []}',
        b'{"items": [{"name": "", "count": -1}, {"name": "ok", "count": "many"}]}',
        b'{"items": [{"name": "a", "count": 1, "extra": true}], "other": 1}',
        b'{"items": [{"name": "a"}]',  # not JSON
        b'["not", "an", "object"]',
        b"",
    ],
)
async def test_an_invalid_body_is_refused_exactly_as_fastapi_refuses_it(body: bytes) -> None:
    one_pass, plain = await _post(_app(OnePassJson), body), await _post(_app(APIRoute), body)
    assert one_pass == plain
    assert one_pass[0] == 422


async def test_a_body_that_is_not_json_is_left_to_fastapi() -> None:
    body = b'{"items": [{"name": "a", "count": 1}]}'
    one_pass = await _post(_app(OnePassJson), body, "text/plain")
    assert one_pass == await _post(_app(APIRoute), body, "text/plain")
    assert one_pass[0] == 422


def test_a_route_without_a_body_is_a_mistake() -> None:
    app = FastAPI()

    async def nothing() -> None:
        return None

    with pytest.raises(TypeError, match="needs a body parameter"):
        app.router.add_api_route("/nothing", nothing, methods=["POST"], route_class_override=OnePassJson)
