"""The gateway's HTTP surface: OpenAI- and Anthropic-compatible routes. No session per request here:
admission reads memory, and the few database touches open their own short sessions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from tokenboard.gateway.errors import GatewayError
from tokenboard.gateway.service import CHAT, EMBED, MESSAGES, Gateway, Route
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


@router.post("/v1/embeddings", summary="OpenAI-compatible embeddings")
async def embeddings(request: Request) -> Response:
    return await _handle(request, EMBED)


@router.get("/v1/models", summary="The models this key may use")
async def list_models(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    anthropic = "anthropic-version" in request.headers
    try:
        models = await gateway.models_for(request)
    except GatewayError as exc:
        return exc.response("anthropic" if anthropic else "openai")
    if anthropic:
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2024-01-01T00:00:00Z"}
            for m in models
        ]
        return JSONResponse(
            {
                "data": data,
                "has_more": False,
                "first_id": models[0] if models else None,
                "last_id": models[-1] if models else None,
            }
        )
    return JSONResponse(
        {
            "object": "list",
            "data": [{"id": m, "object": "model", "created": 0, "owned_by": m.split("/")[0]} for m in models],
        }
    )
