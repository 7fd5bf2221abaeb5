"""The usage live stream over real HTTP: events, scoping, disconnects, shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from tests.support.databases import BACKENDS
from tests.support.factories import Factory
from tests.support.live_server import live_server
from tests.support.uvicorn_server import serving
from tokenboard.app import create_app
from tokenboard.config import Settings
from tokenboard.kit.live import LiveHub
from tokenboard.members.roles import Role

REDIS_URL = "redis://127.0.0.1:6379/0"


def live_path(org_id: uuid.UUID | str) -> str:
    return f"/api/v1/organizations/{org_id}/usage/live"


class EventReader:
    """Reads one open event stream: events by name, comments kept apart."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.comments: list[str] = []
        self._lines = response.aiter_lines()

    async def next_event(self, within: float) -> tuple[str, dict[str, object]] | None:
        """The next ``event:``/``data:`` pair, or ``None`` when none comes within ``within`` seconds."""
        deadline = time.monotonic() + within
        event, data = "message", ""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                line = await asyncio.wait_for(self._lines.__anext__(), remaining)
            except TimeoutError:
                return None
            except StopAsyncIteration:
                raise AssertionError("the stream ended") from None
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "" and data:
                return event, json.loads(data)


@asynccontextmanager
async def stream(base: str, org_id: uuid.UUID, token: str, query: str = "") -> AsyncIterator[EventReader]:
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    async with (
        httpx.AsyncClient(base_url=base, headers=headers, timeout=httpx.Timeout(10, read=30)) as client,
        client.stream("GET", live_path(org_id) + query) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        yield EventReader(response)


async def wait_for_subscribers(hub: LiveHub, org_id: uuid.UUID, count: int, within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while hub.subscriber_count(org_id) != count:
        assert time.monotonic() < deadline, (hub.subscriber_count(org_id), count)
        await asyncio.sleep(0.02)


async def test_members_hear_their_org_within_two_seconds_and_only_theirs(
    app: FastAPI, factory: Factory
) -> None:
    ours = await factory.org_with_roles("Live Co")
    theirs = await factory.org_with_roles("Other Co")
    owner = await factory.personal_token(ours.users[Role.owner])
    member = await factory.personal_token(ours.users[Role.member])
    outsider = await factory.personal_token(theirs.users[Role.owner])
    hub: LiveHub = app.state.live_hub
    async with (
        serving(app) as base,
        stream(base, ours.id, owner) as owner_stream,
        stream(base, ours.id, member) as member_stream,
        stream(base, theirs.id, outsider) as outsider_stream,
    ):
        await wait_for_subscribers(hub, ours.id, 2)
        await wait_for_subscribers(hub, theirs.id, 1)
        published = time.monotonic()
        hub.notify_usage(ours.id, requests=3, cost_nanousd=4_200_000)
        event = await owner_stream.next_event(within=2)
        assert event is not None, "no event within 2 s"
        assert time.monotonic() - published < 2
        name, data = event
        assert name == "usage"
        assert (data["requests"], data["cost_nanousd"]) == (3, 4_200_000)
        assert isinstance(data["at"], str)
        # A plain member may not see org-wide amounts: told that something changed, and when.
        assert await member_stream.next_event(within=2) == ("usage", {"at": data["at"]})
        assert await outsider_stream.next_event(within=0.5) is None
        assert "open" in owner_stream.comments  # the opening comment carries the reconnect delay


async def test_a_disconnect_frees_the_subscription(app: FastAPI, factory: Factory) -> None:
    setup = await factory.org_with_roles("Live Co")
    token = await factory.personal_token(setup.users[Role.admin])
    hub: LiveHub = app.state.live_hub
    async with serving(app) as base:
        for _ in range(3):  # open and drop a few times: nothing accumulates
            async with stream(base, setup.id, token):
                await wait_for_subscribers(hub, setup.id, 1)
            # Noticed through the connection closing, not at the next heartbeat 15 s later.
            await wait_for_subscribers(hub, setup.id, 0, within=2)
        assert hub.subscriber_count() == 0


async def test_the_stream_ends_after_its_lifetime(app: FastAPI, factory: Factory) -> None:
    setup = await factory.org_with_roles("Live Co")
    token = await factory.personal_token(setup.users[Role.member])
    async with serving(app) as base, stream(base, setup.id, token, "?lifetime=0.3") as reader:
        started = time.monotonic()
        body = b"".join([chunk async for chunk in reader.response.aiter_bytes()])
        assert time.monotonic() - started < 3
        assert body.startswith(b": open\nretry: ")
        await wait_for_subscribers(app.state.live_hub, setup.id, 0)


async def test_only_members_may_subscribe(app: FastAPI, factory: Factory) -> None:
    setup = await factory.org_with_roles("Live Co")
    stranger = await factory.personal_token(await factory.user())
    async with factory.anonymous(csrf=False) as client:
        assert (await client.get(live_path(setup.id))).status_code == 401
        client.headers["Authorization"] = f"Bearer {stranger}"
        assert (await client.get(live_path(setup.id))).status_code == 404
        assert (await client.get(live_path(uuid.uuid4()))).status_code == 404
    assert app.state.live_hub.subscriber_count() == 0


async def test_a_publish_on_another_instance_reaches_the_stream(settings: Settings, app: FastAPI) -> None:
    shared = settings.model_copy(update={"redis_url": REDIS_URL})
    serving_app = create_app(shared)
    factory = Factory(serving_app)
    setup = await factory.org_with_roles("Live Co")
    token = await factory.personal_token(setup.users[Role.owner])
    other_instance = LiveHub(Redis.from_url(REDIS_URL))
    try:
        await other_instance.start()
        async with serving(serving_app) as base, stream(base, setup.id, token) as reader:
            await wait_for_subscribers(serving_app.state.live_hub, setup.id, 1)
            other_instance.notify_usage(setup.id, requests=5, cost_nanousd=99)
            event = await reader.next_event(within=2)
            assert event is not None, "nothing crossed Redis within 2 s"
            assert event[0] == "usage" and (event[1]["requests"], event[1]["cost_nanousd"]) == (5, 99)
    finally:
        await other_instance.stop()
        await other_instance._redis.aclose()  # type: ignore[union-attr]


def _sign_up_with_an_org(base: str) -> tuple[str, str]:
    """A new user and organization on a live server; returns (org id, personal access token)."""
    with httpx.Client(base_url=base, timeout=30) as browser:

        def csrf() -> dict[str, str]:
            page = browser.get("/login", follow_redirects=True).text
            return {"X-CSRF-Token": page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]}

        signup = browser.post(
            "/api/v1/auth/signup",
            json={"email": "live@example.com", "name": "Live", "password": "a long password"},
            headers=csrf(),
        )
        assert signup.status_code == 201, signup.text
        org = browser.post("/api/v1/organizations", json={"name": "Live Co"}, headers=csrf())
        assert org.status_code == 201, org.text
        token = browser.post("/api/v1/me/tokens", json={"name": "live"}, headers=csrf())
        assert token.status_code == 201, token.text
        return str(org.json()["id"]), str(token.json()["token"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigterm_ends_open_streams_and_the_server_exits(backend: str, tmp_path: Path) -> None:
    with live_server(backend, tmp_path, seed_demo=False) as server:
        org_id, token = _sign_up_with_an_org(server.url)
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        with (
            httpx.Client(base_url=server.url, headers=headers, timeout=httpx.Timeout(10, read=8)) as client,
            client.stream("GET", live_path(org_id)) as response,
        ):
            assert response.status_code == 200, response.read()
            chunks = response.iter_raw()
            assert next(chunks).startswith(b": open")
            signalled = time.monotonic()
            os.kill(server.pid, signal.SIGTERM)
            rest = b"".join(chunks)  # ends when the server closes the stream; a hang is a read timeout
            assert b"event:" not in rest
        exit_code = server.wait(10)
        assert time.monotonic() - signalled < 5, server.log()
        # Uvicorn shuts down, then re-raises the signal it caught: -SIGTERM is its clean exit.
        assert exit_code in (0, -signal.SIGTERM), server.log()
        assert "Application shutdown complete" in server.log()
