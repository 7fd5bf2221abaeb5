"""Pure ASGI middleware for every request, and the one error handler.

No ``BaseHTTPMiddleware``: it costs milliseconds per request on the gateway path.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenboard.kit.csrf import CSRF_COOKIE, new_csrf_cookie
from tokenboard.kit.errors import NotAuthenticated, TokenboardError, TooManyRequests

log = logging.getLogger("tokenboard.http")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        b"script-src 'self'; frame-ancestors 'none'; form-action 'self'",
    ),
]


TOO_LARGE = "The request body is too large."


class BodyTooLarge(StarletteHTTPException):
    """Raised when a body grows past the limit while it is read (a chunked body has no Content-Length).

    An ``HTTPException`` so that FastAPI's body parsing lets it through: it turns any other exception raised
    while reading the body into a 400 "error parsing the body". The handler below answers 413.
    """

    def __init__(self) -> None:
        super().__init__(status_code=413, detail=TOO_LARGE)


class RequestGuardMiddleware:
    """Rejects oversized bodies with 413, sets security headers, and gives each browser a CSRF cookie.

    ``larger_bodies``: paths (full-match patterns) allowed a larger body than ``max_body_bytes``, with theirs.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        secure_cookies: bool,
        larger_bodies: Sequence[tuple[re.Pattern[str], int]] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.secure_cookies = secure_cookies
        self.larger_bodies = tuple(larger_bodies)

    def limit_for(self, path: str) -> int:
        for pattern, limit in self.larger_bodies:
            if pattern.fullmatch(path):
                return limit
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        limit = self.limit_for(scope["path"])
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _send_json(send, 413, "payload_too_large", TOO_LARGE)
            return
        cookie_header = headers.get(b"cookie", b"").decode("latin-1")
        set_cookie: bytes | None = None
        # The gateway (/v1/...) never uses cookies: no CSRF cookie there.
        if f"{CSRF_COOKIE}=" not in cookie_header and not scope["path"].startswith("/v1/"):
            value = new_csrf_cookie()
            scope.setdefault("state", {})["csrf_cookie"] = value
            set_cookie = self._cookie(value)
        received = 0
        response_started = False

        async def guarded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                extra = list(SECURITY_HEADERS)
                rotated = scope.get("state", {}).get("csrf_cookie_rotated")
                if rotated:
                    extra.append((b"set-cookie", self._cookie(rotated)))
                elif set_cookie:
                    extra.append((b"set-cookie", set_cookie))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        try:
            await self.app(scope, guarded_receive, send_with_headers)
        except BodyTooLarge:
            if not response_started:
                await _send_json(send, 413, "payload_too_large", TOO_LARGE)

    def _cookie(self, value: str) -> bytes:
        secure = "; Secure" if self.secure_cookies else ""
        return f"{CSRF_COOKIE}={value}; Path=/; SameSite=Lax{secure}".encode()


async def _send_json(send: Send, status: int, type_: str, message: str) -> None:
    body = json.dumps({"error": {"type": type_, "message": message, "status": status}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def wants_json(request: Request) -> bool:
    path = request.url.path
    if path.startswith(("/api/", "/v1/")) or path in ("/openapi.json", "/healthz"):
        return True
    return "text/html" not in request.headers.get("accept", "")


def error_response(
    request: Request,
    status: int,
    type_: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"type": type_, "message": message, "status": status}
    if details is not None:
        body["details"] = details
    headers = dict(headers or {})
    if status == 429 and isinstance(details, dict) and "retry_after" in details:
        headers["Retry-After"] = str(details["retry_after"])
    if wants_json(request):
        return JSONResponse({"error": body}, status_code=status, headers=headers)
    if status == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
    from tokenboard.kit.templating import render

    context = {"status": status, "message": message, "error_type": type_}
    page: Response = render(request, "error.html", context, status)
    page.headers.update(headers)
    return page


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        details.append({"field": ".".join(loc), "message": str(err.get("msg", "invalid"))})
    return details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TokenboardError)
    async def _tokenboard_error(request: Request, exc: TokenboardError) -> Response:
        return error_response(request, exc.status_code, exc.type, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        return error_response(
            request, 422, "validation_error", "The request is not valid.", _validation_details(exc)
        )

    @app.exception_handler(BodyTooLarge)
    async def _body_too_large(request: Request, exc: BodyTooLarge) -> Response:
        return error_response(request, 413, "payload_too_large", TOO_LARGE)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        messages = {404: "Not found.", 405: "Method not allowed."}
        message = messages.get(exc.status_code, str(exc.detail))
        # Keep the exception's headers: a 405 must carry ``Allow`` (RFC 9110), a 401 ``WWW-Authenticate``.
        return error_response(request, exc.status_code, "http_error", message, headers=exc.headers)

    @app.exception_handler(IntegrityError)
    async def _integrity_error(request: Request, exc: IntegrityError) -> Response:
        # Services check uniqueness first; this answers the rare race where two requests pass that check
        # together and the database's unique index refuses the second.
        log.info("integrity error on %s %s: %s", request.method, request.url.path, exc.orig)
        return error_response(
            request, 409, "conflict", "This conflicts with a change made at the same time. Retry."
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "internal_error", "Something went wrong on our side.")


__all__ = ["NotAuthenticated", "RequestGuardMiddleware", "TooManyRequests", "install_error_handlers"]
