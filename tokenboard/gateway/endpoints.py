"""The gateway's HTTP surface: OpenAI- and Anthropic-compatible routes. No session per request here:
admission reads memory, and the few database touches open their own short sessions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from tokenboard.gateway.errors import GatewayError
from tokenboard.gateway.service import CHAT, COUNT_TOKENS, EMBED, MESSAGES, Gateway, Route
from tokenboard.kit.jsonenc import strict_loads

router = APIRouter(tags=["gateway"])


def _json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = strict_loads(raw)
    except ValueError as exc:
        raise GatewayError(400, "The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise GatewayError(400, "The request body must be a JSON object.")
    return body


async def handle(gateway: Gateway, request: Request, route: Route, raw: bytes) -> Response:
    """One gateway call, from the raw body to its response (the front door in gateway/asgi.py calls it)."""
    if route is COUNT_TOKENS:  # admitted and answered in one step: nothing is held, forwarded or metered
        try:
            return await gateway.count_tokens(request, _json_body(raw))
        except GatewayError as exc:
            return exc.response(route.api_format)
    try:
        admitted = await gateway.admit(request, route, _json_body(raw), len(raw))
    except GatewayError as exc:  # refused: nothing was recorded, so there is no request id to give
        return exc.response(route.api_format)
    try:
        return await gateway.forward(admitted)
    except GatewayError as exc:  # the provider failed: the request is recorded under its id, say which
        return exc.response(route.api_format, gateway.failure_headers(admitted))


async def _handle(request: Request, route: Route) -> Response:
    return await handle(request.app.state.gateway, request, route, await request.body())


@router.post("/v1/chat/completions", summary="OpenAI-compatible chat completions (stream and not)")
async def chat_completions(request: Request) -> Response:
    return await _handle(request, CHAT)


@router.post("/v1/messages", summary="Anthropic-compatible messages (stream and not)")
async def messages(request: Request) -> Response:
    return await _handle(request, MESSAGES)


@router.post(
    "/v1/messages/count_tokens",
    summary="Anthropic-compatible token counting (the provider's count, else the gateway's estimate)",
)
async def count_tokens(request: Request) -> Response:
    return await _handle(request, COUNT_TOKENS)


@router.post("/v1/embeddings", summary="OpenAI-compatible embeddings")
async def embeddings(request: Request) -> Response:
    return await _handle(request, EMBED)


def _openai_model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": model_id.split("/")[0]}


def _anthropic_model(model_id: str) -> dict[str, Any]:
    return {"type": "model", "id": model_id, "display_name": model_id, "created_at": "2024-01-01T00:00:00Z"}


@router.get("/v1/models", summary="The models this key may use")
async def list_models(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    anthropic = "anthropic-version" in request.headers
    try:
        models = await gateway.models_for(request)
    except GatewayError as exc:
        return exc.response("anthropic" if anthropic else "openai")
    if anthropic:
        return JSONResponse(
            {
                "data": [_anthropic_model(m) for m in models],
                "has_more": False,
                "first_id": models[0] if models else None,
                "last_id": models[-1] if models else None,
            }
        )
    return JSONResponse({"object": "list", "data": [_openai_model(m) for m in models]})


# ``:path``: model ids hold a slash (``openai/gpt-4o``), sent as is or escaped (``openai%2Fgpt-4o``, as the
# official SDKs send it); the path Starlette routes on is unescaped either way.
@router.get("/v1/models/{model_id:path}", summary="One model this key may use (404 for any other)")
async def retrieve_model(request: Request, model_id: str) -> Response:
    gateway: Gateway = request.app.state.gateway
    anthropic = "anthropic-version" in request.headers
    try:
        model = await gateway.model_for(request, model_id)
    except GatewayError as exc:
        return exc.response("anthropic" if anthropic else "openai")
    return JSONResponse(_anthropic_model(model) if anthropic else _openai_model(model))
