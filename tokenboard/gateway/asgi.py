"""The gateway's front door: ``POST /v1/...`` goes straight to the gateway, ahead of FastAPI's stack.

The dashboard and its API need FastAPI's routing, dependencies (CSRF, sessions), exception handlers and
middleware; the gateway routes use none of it: they read the body, admit from memory and relay. Passing them
through that stack cost a noticeable share of the gateway's CPU per request, so the application object
(``TokenboardApp`` in app.py) hands them to this front door before any of FastAPI's own layers (its error,
telemetry and body-limit middleware, each wrapping ``send``) is entered. The front door gives them the same
guarantees the stack gave them: the body size limit (413 in the API's own error format), the security
headers, and a clean 500 in the API's format if anything unexpected happens.
The routes stay declared in FastAPI too (OpenAPI, ``GET /v1/models``, and 405s for other methods).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tokenboard.gateway.endpoints import handle
from tokenboard.gateway.errors import GatewayError
from tokenboard.gateway.service import CHAT, COUNT_TOKENS, EMBED, MESSAGES, Gateway, Route
from tokenboard.kit.http import SECURITY_HEADERS, TOO_LARGE

log = logging.getLogger("tokenboard.gateway")

ROUTES: dict[str, Route] = {
    "/v1/chat/completions": CHAT,
    "/v1/messages": MESSAGES,
    "/v1/messages/count_tokens": COUNT_TOKENS,
    "/v1/embeddings": EMBED,
}


class GatewayFrontDoor:
    """Serves the gateway's POST routes; the application calls it before its own stack (see app.py)."""

    def __init__(self, gateway: Gateway, *, max_body_bytes: int) -> None:
        self.gateway = gateway
        self.max_body_bytes = max_body_bytes

    async def serve(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        raw = await self._body(scope, receive)
        if raw is None:  # the client left while sending
            return
        response: Response
        if isinstance(raw, GatewayError):
            response = raw.response(route.api_format)
        else:
            try:
                response = await handle(self.gateway, Request(scope, receive), route, raw)
            except Exception:
                log.exception("the gateway failed on %s", scope["path"])
                response = GatewayError(
                    500, "The gateway failed on this request; it was not billed."
                ).response(route.api_format)
        # On the response's own headers rather than by wrapping ``send``: a wrapper would be one more call
        # for every message, and a stream sends one per chunk.
        response.raw_headers.extend(SECURITY_HEADERS)
        await response(scope, receive, send)

    async def _body(self, scope: Scope, receive: Receive) -> bytes | GatewayError | None:
        too_large = GatewayError(413, TOO_LARGE)
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_body_bytes):
                return too_large
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
