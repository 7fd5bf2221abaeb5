"""The access log is written by the application once a response is complete, in uvicorn's line format."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from uvicorn.logging import AccessFormatter

from tokenboard.kit.access_log import ACCESS_LOGGER, uvicorn_log_config


class _Recorder(logging.Handler):
    def __init__(self, journal: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.journal = journal

    def emit(self, record: logging.LogRecord) -> None:
        self.journal.append(("log", record))


async def _call(
    app: Any,
    method: str,
    path: str,
    body: bytes,
    journal: list[tuple[str, Any]],
    raw_path: bytes | None = None,
) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode(),
        "root_path": "",
        "query_string": b"a=1" if method == "GET" else b"",
        "headers": [(b"host", b"testserver"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.9", 5123),
        "server": ("testserver", 80),
        "state": {},
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        journal.append(("send", message))

    await app(scope, receive, send)


@pytest.fixture
def journal() -> Any:
    entries: list[tuple[str, Any]] = []
    handler = _Recorder(entries)
    ACCESS_LOGGER.addHandler(handler)
    level = ACCESS_LOGGER.level
    ACCESS_LOGGER.setLevel(logging.INFO)
    yield entries
    ACCESS_LOGGER.removeHandler(handler)
    ACCESS_LOGGER.setLevel(level)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "target"),
    [
        ("POST", "/v1/chat/completions", b'{"model": "openai/gpt-4o-mini"}', 401, "/v1/chat/completions"),
        ("GET", "/healthz", b"", 200, "/healthz?a=1"),
    ],
)
async def test_the_line_is_written_after_the_response_is_complete(
    app: Any, journal: list[tuple[str, Any]], method: str, path: str, body: bytes, status: int, target: str
) -> None:
    await _call(app, method, path, body, journal)
    kinds = [kind for kind, _ in journal]
    assert kinds.count("log") == 1 and kinds[-1] == "log", kinds  # one line, after every message sent
    last_body = journal[-2][1]
    assert last_body["type"] == "http.response.body" and not last_body.get("more_body", False)
    record = journal[-1][1]
    assert record.args == ("127.0.0.9:5123", method, target, "1.1", status)
    # uvicorn's access formatter (the handler `tokenboard serve` routes this logger to) reads it as its own.
    config = uvicorn_log_config()
    assert config["loggers"][ACCESS_LOGGER.name]["handlers"] == ["access"]
    line = AccessFormatter(config["formatters"]["access"]["fmt"], use_colors=False).format(record)
    assert line == f'INFO:     127.0.0.9:5123 - "{method} {target} HTTP/1.1" {status}' + (
        " Unauthorized" if status == 401 else " OK"
    )


async def test_no_line_when_the_access_log_is_off(app: Any, journal: list[tuple[str, Any]]) -> None:
    app.access_log = False
    await _call(app, "GET", "/healthz", b"", journal)
    assert [kind for kind, _ in journal] == ["send", "send"]


async def test_the_target_is_logged_as_sent_so_a_decoded_line_break_cannot_forge_a_line(
    app: Any, journal: list[tuple[str, Any]]
) -> None:
    await _call(app, "GET", '/x\n"forged', b"", journal, raw_path=b"/x%0A%22forged")
    record = journal[-1][1]
    assert record.args[2] == "/x%0A%22forged?a=1" and record.args[4] == 404
    assert "\n" not in record.getMessage()
