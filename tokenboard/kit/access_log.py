"""The access log: one line per HTTP request, written once its response has gone out.

uvicorn's own access log writes its line when the response *starts*, before the response head is handed to
the socket: every request, the gateway's included, waited for a log record to be built, formatted and written
to stdout before its first byte left. Here the application writes the line itself after the response is
complete (``serve`` turns uvicorn's off and routes this logger to uvicorn's access handler, so a line looks
the same as before). A streamed response is logged when it ends.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

ACCESS_LOGGER = logging.getLogger("tokenboard.access")


def write_line(scope: Scope, status: int) -> None:
    # uvicorn's own helpers and arguments (its AccessFormatter unpacks them): the target as the client sent
    # it, still percent-encoded, so a decoded line break or quote cannot forge a line.
    ACCESS_LOGGER.info(
        '%s - "%s %s HTTP/%s" %d',
        get_client_addr(scope),  # type: ignore[arg-type]
        scope["method"],
        get_path_with_query_string(scope),  # type: ignore[arg-type]
        scope.get("http_version", "1.1"),
        status,
    )


async def serve_logged(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run ``app`` on an HTTP request, then log it with the status it answered (500 if it sent none)."""
    status = 0

    async def send_noting_status(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    try:
        await app(scope, receive, send_noting_status)
    finally:
        write_line(scope, status or 500)


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's logging setup, with this module's logger writing through its access handler."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"][ACCESS_LOGGER.name] = {"handlers": ["access"], "level": "INFO", "propagate": False}
    return config
