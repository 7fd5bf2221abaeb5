"""``OnePassJson``: a JSON body parsed and validated by pydantic in one pass, with FastAPI's own errors."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import pytest
from fastapi import Body, FastAPI
from fastapi.routing import APIRoute
from httpx import ASGITransport, AsyncClient
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field

from tokenboard.kit.routing import OnePassJson
from tokenboard.usage.schemas import UsageEventBatch, UsageEventCreate


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


def test_only_a_route_taking_the_whole_body_as_one_parameter_can_parse_it_in_one_pass() -> None:
    app = FastAPI()

    async def nothing() -> None:
        return None

    async def two(batch: Batch, more: Batch) -> None:
        return None

    async def embedded(batch: Annotated[Batch, Body(embed=True)]) -> None:
        return None

    for endpoint in (nothing, two, embedded):
        with pytest.raises(TypeError, match="takes the whole body as one parameter"):
            app.router.add_api_route("/x", endpoint, methods=["POST"], route_class_override=OnePassJson)


def _usage_app(route_class: type[APIRoute]) -> FastAPI:
    """The ingest API's own body model behind each kind of route."""
    app = FastAPI()

    async def take(batch: UsageEventBatch) -> dict[str, Any]:
        return batch.model_dump(mode="json")

    app.router.add_api_route("/batch", take, methods=["POST"], route_class_override=route_class)
    return app


USAGE_APPS = (_usage_app(OnePassJson), _usage_app(APIRoute))
FIELDS = (*UsageEventCreate.model_fields, "surprise")
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            " ",
            "openai/gpt-4o",
            "2026-01-05T10:00:00Z",
            "2026-01-05T10:00:00",
            "2026-01-05",
            "1767607200",
            "0190a2b3-c4d5-7e6f-8a9b-0c1d2e3f4a5b",
            "0190a2b3c4d57e6f8a9b0c1d2e3f4a5b",
            "0.000001",
            "true",
            "yes",
            "1e3",
        ]
    ),
    st.lists(st.integers(), max_size=2),
)
VALID = {"id": "evt-1", "timestamp": "2026-01-05T10:00:00Z", "model": "openai/gpt-4o"}
TOKENS = st.integers(min_value=0, max_value=10**12)
# A valid event (its optional fields set to valid values, or a few of them to anything), or anything at all.
EVENTS = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "timestamp": st.sampled_from(["2026-01-05T10:00:00+02:00", "2026-01-05 10:00:00", 1767607200]),
            "user_id": st.uuids().map(str),
            "user_email": st.emails(),
            "input_tokens": TOKENS,
            "output_tokens": TOKENS,
            "cost_usd": st.decimals(min_value=0, max_value=10, places=9).map(str),
            "stream": st.booleans(),
            "status_code": st.integers(min_value=100, max_value=599),
            "feature": st.text(max_size=100),
            "conversation_id": st.text(min_size=1, max_size=20),
        },
    ).map(lambda changes: VALID | changes),
    st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=3).map(lambda changes: VALID | changes),
    st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=8),
)


@settings(max_examples=200, deadline=None)
@given(events=st.lists(EVENTS, max_size=3), ascii_only=st.booleans())
def test_any_usage_batch_gets_the_same_answer_as_through_fastapi_alone(
    events: list[dict[str, Any]], ascii_only: bool
) -> None:
    body = json.dumps({"events": events}, ensure_ascii=ascii_only).encode()

    async def both() -> list[tuple[int, Any]]:
        return [await _post(app, body) for app in USAGE_APPS]

    one_pass, plain = asyncio.run(both())
    assert one_pass == plain
    event(f"answer {one_pass[0]}")
