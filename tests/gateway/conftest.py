"""A live gateway (uvicorn on loopback) whose upstreams are the fake provider server, plus seeded data."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import uvicorn

from tests.support.factories import Factory, OrgSetup
from tests.support.fake_upstream import FakeUpstream, fake_upstream_server, upstream  # noqa: F401
from tests.support.live_server import free_port
from tokenboard.app import create_app
from tokenboard.catalog.service import catalog
from tokenboard.config import Settings, UpstreamConfig, UpstreamKind
from tokenboard.ledger.service import EntryKind, ledger
from tokenboard.members.roles import Role
from tokenboard.models import UsageEvent

UPSTREAM_OPENAI_KEY = "sk-upstream-openai-secret"
UPSTREAM_ANTHROPIC_KEY = "sk-ant-upstream-secret"
USD = 1_000_000_000
T = TypeVar("T")


@dataclass
class LiveGateway:
    url: str
    app: Any

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    async def call(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run a coroutine on the live server's own event loop (its engine and caches live there)."""
        loop = self.app.state.gateway.loop
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(make(), loop))

    async def give_back_leases(self) -> None:
        """Write what is queued, then give back the credit leases (as at shutdown)."""
        gateway = self.app.state.gateway

        async def run() -> None:
            await gateway.writer.drain()
            await gateway.leases.release_all()

        await self.call(run)


@pytest.fixture
def gateway_settings(settings: Settings, upstream: FakeUpstream) -> Settings:  # noqa: F811
    upstreams = {
        "openai": UpstreamConfig(
            kind=UpstreamKind.openai,
            base_url=f"{upstream.base_url}/v1",
            api_key=UPSTREAM_OPENAI_KEY,
            timeout_seconds=3,
        ),
        "anthropic": UpstreamConfig(
            kind=UpstreamKind.anthropic,
            base_url=f"{upstream.base_url}/v1",
            api_key=UPSTREAM_ANTHROPIC_KEY,
            timeout_seconds=3,
        ),
        "openrouter": UpstreamConfig(
            kind=UpstreamKind.openrouter,
            base_url=f"{upstream.base_url}/v1",
            api_key="sk-or-upstream",
            timeout_seconds=3,
        ),
        "simulated": UpstreamConfig(kind=UpstreamKind.simulated, latency_scale=0),
    }
    return settings.model_copy(update={"upstreams": upstreams, "gateway_rate_limit_per_minute": 10_000})


@pytest.fixture
def live_gateway(gateway_settings: Settings, app: object) -> Iterator[LiveGateway]:
    """A live gateway on the database that ``app`` (the in-process one) has just emptied."""
    live_app = create_app(gateway_settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(live_app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the live gateway did not start")
        time.sleep(0.02)
    yield LiveGateway(url=f"http://127.0.0.1:{port}", app=live_app)
    server.should_exit = True
    thread.join(timeout=15)


@dataclass
class Tenant:
    setup: OrgSetup
    key: str


async def seed(
    factory: Factory, *, credits_usd: int = 100, allowed_models: list[str] | None = None
) -> Tenant:
    await factory.run(
        lambda s: catalog.sync(s, provider_ids=["openai", "anthropic", "openrouter", "simulated"])
    )
    setup = await factory.org_with_roles("Gateway Co")
    if credits_usd:
        await factory.run(
            lambda s: ledger.post(s, setup.id, kind=EntryKind.grant, amount_nanousd=credits_usd * USD)
        )
    key = setup.api_key_secret
    if allowed_models is not None:
        _, key = await factory.api_key(
            setup.organization, setup.workspace, setup.users[Role.member], allowed_models
        )
    return Tenant(setup=setup, key=key)


async def wait_for_events(
    factory: Factory, org_id: object, count: int, within: float = 10
) -> list[UsageEvent]:
    from sqlalchemy import select

    deadline = time.monotonic() + within
    while True:
        events = await factory.run(
            lambda s: s.scalars(
                select(UsageEvent).where(UsageEvent.organization_id == org_id).order_by(UsageEvent.created_at)
            )
        )
        found = list(events)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def check_hold(
    factory: Factory,
    live_gateway: LiveGateway,
    upstream: FakeUpstream,  # noqa: F811
    tenant: Tenant,
    *,
    path: str,
    raw: bytes,
    headers: dict[str, str],
    hold: int,
) -> None:
    """The gateway holds exactly ``hold`` nano-USD for this request: with one nano-USD less in the balance it
    is refused (402) before the provider is called, with ``hold`` it is served; then every hold is given back
    and the ledger's invariants hold. The tenant starts with no credits (``seed(credits_usd=0)``)."""
    import httpx

    async def grant(amount: int) -> None:
        await factory.run(
            lambda s: ledger.post(s, tenant.setup.id, kind=EntryKind.grant, amount_nanousd=amount)
        )

    async with httpx.AsyncClient(base_url=live_gateway.url, timeout=20) as http:
        await grant(hold - 1)
        short = await http.post(path, content=raw, headers=headers)
        assert short.status_code == 402, short.text
        assert not upstream.requests
        await grant(1)
        served = await http.post(path, content=raw, headers=headers)
        assert served.status_code == 200, served.text
    await wait_for_events(factory, tenant.setup.id, 1)
    await live_gateway.give_back_leases()
    await factory.run(lambda s: ledger.check_invariants(s, tenant.setup.id))
