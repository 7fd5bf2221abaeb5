"""Hostile and malformed input: oversized, deeply nested or mistyped bodies get a 4xx in the one error shape.

``ASGITransport`` re-raises exceptions from the app, so a 500 here fails the test with its traceback.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import AsyncClient, Response

from tests.support.factories import Factory, OrgSetup
from tokenboard.members.roles import Role

CHUNK = 64 * 1024
ERROR_KEYS = {"type", "message", "status"}


def assert_error(response: Response, status: int | tuple[int, ...]) -> dict[str, Any]:
    """The response is a JSON error of the one shape ``{"error": {"type", "message", "status"}}``."""
    expected = (status,) if isinstance(status, int) else status
    assert response.status_code in expected, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert ERROR_KEYS <= set(error) <= ERROR_KEYS | {"details"}, error
    assert isinstance(error["type"], str) and error["type"], error
    assert isinstance(error["message"], str) and error["message"], error
    assert error["status"] == response.status_code, error
    return dict(error)


class Stream:
    """A request body produced chunk by chunk, counting how much of it the server pulled."""

    def __init__(self, total: int, chunk: int = CHUNK) -> None:
        self.total = total
        self.chunk = chunk
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.total:
            part = b" " * min(self.chunk, self.total - self.sent)
            self.sent += len(part)
            yield part


@pytest.fixture
async def setup(factory: Factory) -> OrgSetup:
    return await factory.org_with_roles()


@pytest.fixture
async def owner(factory: Factory, setup: OrgSetup) -> AsyncIterator[AsyncClient]:
    async with await factory.client_for(setup.users[Role.owner]) as client:
        yield client


def teams_url(setup: OrgSetup) -> str:
    return f"/api/v1/organizations/{setup.id}/teams"


# --- Body size ---------------------------------------------------------------------------------------------


async def test_a_declared_oversized_body_is_refused_before_it_is_read(
    owner: AsyncClient, setup: OrgSetup, app: Any
) -> None:
    limit = app.state.settings.max_body_bytes
    assert limit == 1024 * 1024

    # A plain body: httpx sends its Content-Length.
    started = time.monotonic()
    plain = await owner.post(
        teams_url(setup), content=b" " * (limit + 1), headers={"Content-Type": "application/json"}
    )
    assert_error(plain, 413)
    assert plain.json()["error"]["type"] == "payload_too_large"

    # The same declared length over a body we can watch: not a byte of it is read.
    stream = Stream(64 * limit)
    declared = await owner.post(
        teams_url(setup),
        content=stream,
        headers={"Content-Type": "application/json", "Content-Length": str(64 * limit)},
    )
    assert_error(declared, 413)
    assert stream.sent == 0
    assert time.monotonic() - started < 5


async def test_a_streamed_oversized_body_without_content_length_is_cut_off_at_the_limit(
    owner: AsyncClient, setup: OrgSetup, app: Any
) -> None:
    limit = app.state.settings.max_body_bytes
    stream = Stream(64 * limit)  # 64 MiB if the server kept reading
    started = time.monotonic()
    response = await owner.post(
        teams_url(setup), content=stream, headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    error = assert_error(response, 413)
    assert error["type"] == "payload_too_large"
    # Reading stopped with the first chunk past the limit, long before the end of the stream.
    assert limit < stream.sent <= limit + CHUNK
    assert time.monotonic() - started < 5


async def test_an_oversized_form_post_from_a_browser_is_refused_too(
    factory: Factory, setup: OrgSetup, app: Any
) -> None:
    # No CSRF header: the CSRF check itself reads the form, and must stop at the limit like the JSON parser.
    limit = app.state.settings.max_body_bytes
    async with await factory.client_for(setup.users[Role.owner], csrf=False) as browser:
        stream = Stream(8 * limit)
        response = await browser.post(
            f"/organizations/{setup.id}/teams",
            content=stream,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 413
    assert limit < stream.sent <= limit + CHUNK


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_a_body_of_exactly_the_limit_is_accepted(
    owner: AsyncClient, setup: OrgSetup, app: Any, streamed: bool
) -> None:
    limit = app.state.settings.max_body_bytes
    body = b'{"name": "Padded"}'
    body += b" " * (limit - len(body))  # whitespace after JSON is valid JSON
    assert len(body) == limit

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), CHUNK):
            yield body[start : start + CHUNK]

    content: Any = chunks() if streamed else body
    response = await owner.post(
        teams_url(setup), content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Padded"


# --- Malformed JSON and wrong content types -----------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 10_000,
        b"[" * 10_000 + b"]" * 10_000,
        b'{"name": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    ],
    ids=["unclosed-arrays", "closed-arrays", "nested-in-a-field", "nested-objects"],
)
async def test_deeply_nested_json_is_a_client_error(owner: AsyncClient, setup: OrgSetup, body: bytes) -> None:
    response = await owner.post(teams_url(setup), content=body, headers={"Content-Type": "application/json"})
    assert_error(response, (400, 422))


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b'{"name": "Platform 2"}'),
        ("application/xml", b"<team><name>Platform 2</name></team>"),
        ("application/x-www-form-urlencoded", b"name=Platform+2"),
        (
            "multipart/form-data; boundary=XyZ",
            b'--XyZ\r\nContent-Disposition: form-data; name="name"\r\n\r\nP\r\n--XyZ--\r\n',
        ),
        ("application/octet-stream", b"\x00\x01\x02\xff"),
        (None, b'{"name": "Platform 2"}'),
    ],
    ids=["text", "xml", "form", "multipart", "binary", "no-content-type"],
)
async def test_a_json_endpoint_answers_422_to_other_content_types(
    owner: AsyncClient, setup: OrgSetup, content_type: str | None, body: bytes
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await owner.post(teams_url(setup), content=body, headers=headers)
    error = assert_error(response, 422)
    assert error["type"] == "validation_error"
    # Nothing was created from a body that was not JSON.
    listed = await owner.get(teams_url(setup))
    assert [t["name"] for t in listed.json()] == ["Platform"]


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b'{"name": "x",}', b"null", b"[]", b'"name"', b"\xff\xfe\xfd", b'{"name": "x"} trailing'],
    ids=["empty", "truncated", "trailing-comma", "null", "array", "string", "not-utf8", "trailing-garbage"],
)
async def test_malformed_json_is_a_client_error(owner: AsyncClient, setup: OrgSetup, body: bytes) -> None:
    response = await owner.post(teams_url(setup), content=body, headers={"Content-Type": "application/json"})
    assert_error(response, (400, 422))


# --- Not found and method not allowed -----------------------------------------------------------------------


@pytest.mark.parametrize("accept", ["application/json", "text/html", "*/*"])
async def test_an_unknown_api_route_is_a_json_404_whatever_the_accept_header(
    factory: Factory, owner: AsyncClient, accept: str
) -> None:
    async with factory.anonymous() as anonymous:
        for client in (owner, anonymous):
            for method in ("GET", "POST", "DELETE"):
                response = await client.request(
                    method, "/api/v1/no-such-thing/42", headers={"Accept": accept}
                )
                error = assert_error(response, 404)
                assert error["message"] == "Not found."


async def test_an_unknown_page_is_an_html_404_for_browsers(factory: Factory, owner: AsyncClient) -> None:
    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    async with factory.anonymous() as anonymous:
        for client in (owner, anonymous):
            response = await client.get("/no-such-page", headers={"Accept": accept})
            assert response.status_code == 404
            assert response.headers["content-type"].startswith("text/html")
            assert "<html" in response.text.lower()
            assert "Not found" in response.text
            # ...and JSON for a script asking the same path.
            assert_error(await client.get("/no-such-page", headers={"Accept": "application/json"}), 404)


async def test_an_undeclared_method_is_a_json_405_with_allow(owner: AsyncClient) -> None:
    response = await owner.put("/api/v1/organizations", json={})
    assert_error(response, 405)
    assert "GET" in response.headers["allow"]


# --- Inputs the fuzzer found 500s with (regressions) --------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/organizations/{org}/teams", {"name": "a\x00b"}),
        ("POST", "/api/v1/organizations/{org}/workspaces", {"name": "ok", "description": "a\x00b"}),
        ("PATCH", "/api/v1/me", {"name": "a\x00b"}),
        ("POST", "/api/v1/organizations", {"name": "a\x00b"}),
    ],
    ids=["team-name", "workspace-description", "profile-name", "org-name"],
)
async def test_a_nul_character_in_text_is_a_400_on_every_engine(
    owner: AsyncClient, setup: OrgSetup, method: str, path: str, body: dict[str, str]
) -> None:
    # PostgreSQL text cannot hold U+0000; it used to fail inside the driver with a 500.
    response = await owner.request(method, path.format(org=setup.id), json=body)
    error = assert_error(response, 400)
    assert "NUL" in error["message"]


async def test_a_nul_character_in_a_login_email_is_a_400(factory: Factory) -> None:
    async with factory.anonymous() as client:
        response = await client.post(
            "/api/v1/auth/login", json={"email": "a\x00b@example.com", "password": "x"}
        )
    assert_error(response, 400)


@pytest.mark.parametrize("kind", ["teams", "workspaces"])
async def test_a_duplicate_non_ascii_name_is_a_409(owner: AsyncClient, setup: OrgSetup, kind: str) -> None:
    # Python folds the case of "É" and SQLite's lower() does not: the duplicate check used to miss the
    # clash and the unique index answered with a 500.
    url = f"/api/v1/organizations/{setup.id}/{kind}"
    first = await owner.post(url, json={"name": "Équipe Ü"})
    assert first.status_code == 201, first.text
    assert_error(await owner.post(url, json={"name": "Équipe Ü"}), 409)
    other = await owner.post(url, json={"name": "Other"})
    assert_error(await owner.patch(f"{url}/{other.json()['id']}", json={"name": "Équipe Ü"}), 409)


async def test_an_empty_member_update_of_an_unknown_member_is_a_404(
    owner: AsyncClient, setup: OrgSetup
) -> None:
    url = f"/api/v1/organizations/{setup.id}/members"
    assert_error(await owner.patch(f"{url}/{setup.invitation.id}", json={}), 404)
    known = await owner.patch(f"{url}/{setup.memberships[Role.member].id}", json={})
    assert known.status_code == 200, known.text
