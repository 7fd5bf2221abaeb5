"""The session cookie and CSRF rotation at login and logout."""

from __future__ import annotations

from fastapi import Request, Response

from tokenboard.accounts.auth import SESSION_COOKIE
from tokenboard.config import Settings
from tokenboard.kit.csrf import new_csrf_cookie


def start_browser_session(request: Request, response: Response, token: str, settings: Settings) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_days * 86400,
        httponly=True,
        secure=settings.secure_cookies,
        samesite="lax",
        path="/",
    )
    rotate_csrf(request)


def end_browser_session(request: Request, response: Response, settings: Settings) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, secure=settings.secure_cookies, samesite="lax"
    )
    rotate_csrf(request)


def rotate_csrf(request: Request) -> None:
    # A new CSRF secret at every change of identity, so a token seen before login is useless after it.
    value = new_csrf_cookie()
    state = request.scope.setdefault("state", {})
    state["csrf_cookie_rotated"] = value
    state["csrf_cookie"] = value
