"""CSRF protection for cookie-authenticated requests (signed double-submit).

Every browser gets a random ``tb_csrf`` cookie; forms and scripts send ``sign(secret, cookie)`` back as
the ``csrf_token`` field or the ``X-CSRF-Token`` header. A site that cannot read our cookie cannot forge it.
Requests authenticated by a bearer token carry no ambient credentials and are exempt.
"""

from __future__ import annotations

import secrets

from fastapi import Request

from tokenboard.kit.errors import CSRFFailed
from tokenboard.kit.security import constant_time_equals, sign

CSRF_COOKIE = "tb_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Called by payment providers, authenticated by their signature over the body; no cookies are read.
SIGNED_WEBHOOK_PATHS = frozenset({"/api/v1/billing/stripe/webhook"})


def new_csrf_cookie() -> str:
    return secrets.token_urlsafe(24)


def csrf_cookie_value(request: Request) -> str:
    # The middleware puts a fresh value in scope state when the browser had none (or a login rotated it).
    fresh: str | None = request.scope.get("state", {}).get("csrf_cookie")
    return fresh or request.cookies.get(CSRF_COOKIE, "")


def csrf_token(request: Request) -> str:
    return sign(request.app.state.settings.secret_key, "csrf:" + csrf_cookie_value(request))


async def verify_csrf(request: Request) -> None:
    """Dependency on every router: refuse unsafe cookie-authenticated requests without a valid token."""
    if request.method in SAFE_METHODS or request.url.path.startswith("/v1/"):
        # The gateway (/v1/...) accepts API keys only, never cookies: there is nothing to forge.
        return
    if request.url.path in SIGNED_WEBHOOK_PATHS:
        return
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie:
        raise CSRFFailed()
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    expected = sign(request.app.state.settings.secret_key, "csrf:" + cookie)
    if not sent or not constant_time_equals(sent, expected):
        raise CSRFFailed()
