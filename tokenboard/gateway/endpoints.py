"""The gateway's HTTP surface: OpenAI- and Anthropic-compatible routes. No session per request here:
admission reads memory, and the few database touches open their own short sessions."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from tokenboard.gateway.errors import GatewayError
from tokenboard.gateway.service import CHAT, EMBED, MESSAGES, Gateway, Route

router = APIRouter(tags=["gateway"])


async def _json_body(request: Request) -> tuple[dict[str, Any], int]:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise GatewayError(400, "The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise GatewayError(400, "The request body must be a JSON object.")
    return body, len(raw)


async def _handle(request: Request, route: Route) -> Response:
    gateway: Gateway = request.app.state.gateway
    try:
        body, size = await _json_body(request)
        admitted = await gateway.admit(request, route, body, size)
        return await gateway.forward(admitted)
    except GatewayError as exc:
        return exc.response(route.api_format)


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
