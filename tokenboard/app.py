"""The application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis
from starlette.types import Receive, Scope, Send

from tokenboard import __version__
from tokenboard.accounts.endpoints import router as accounts_router
from tokenboard.announcements.endpoints import router as announcements_router
from tokenboard.api_keys.endpoints import router as api_keys_router
from tokenboard.billing.credits import credits
from tokenboard.billing.endpoints import admin_router as billing_admin_router
from tokenboard.billing.endpoints import router as billing_router
from tokenboard.billing.status import BillingStatusCache
from tokenboard.billing.webhooks import router as stripe_webhook_router
from tokenboard.catalog.endpoints import admin_router as catalog_admin_router
from tokenboard.catalog.endpoints import router as catalog_router
from tokenboard.catalog.service import CatalogCache
from tokenboard.config import Environment, Settings, get_settings
from tokenboard.gateway.asgi import ROUTES as GATEWAY_ROUTES
from tokenboard.gateway.asgi import GatewayFrontDoor
from tokenboard.gateway.endpoints import router as gateway_router
from tokenboard.gateway.journal import UsageJournal
from tokenboard.gateway.keys import KeyCache
from tokenboard.gateway.metering import BatchResult, UsageRecord, UsageWriter
from tokenboard.gateway.service import Gateway
from tokenboard.gateway.upstreams import UpstreamPool
from tokenboard.kit.access_log import serve_logged
from tokenboard.kit.cache_bus import CacheBus
from tokenboard.kit.csrf import verify_csrf
from tokenboard.kit.db import create_engine, create_sessionmaker, uuid7
from tokenboard.kit.email import Mailer
from tokenboard.kit.http import RequestGuardMiddleware, install_error_handlers
from tokenboard.kit.jobs import run_after_commit
from tokenboard.kit.live import LiveHub, close_streams_on_exit_signals
from tokenboard.kit.ratelimit import FailureCounter, MemoryFailureCounter, RedisFailureCounter
from tokenboard.kit.runtime import tune_gc
from tokenboard.ledger.endpoints import router as ledger_router
from tokenboard.live.endpoints import router as live_router
from tokenboard.members.endpoints import router as members_router
from tokenboard.model_access.cache import ModelAccessCache, session_info
from tokenboard.model_access.endpoints import router as model_access_router
from tokenboard.organizations.endpoints import router as organizations_router
from tokenboard.teams.endpoints import router as teams_router
from tokenboard.usage.endpoints import INGEST_PATH
from tokenboard.usage.endpoints import router as usage_router
from tokenboard.web.routes import router as web_router
from tokenboard.workspaces.endpoints import router as workspaces_router

log = logging.getLogger("tokenboard")

STATIC_DIR = Path(__file__).resolve().parent / "web" / "static"

API_ROUTERS = [
    accounts_router,
    organizations_router,
    members_router,
    teams_router,
    workspaces_router,
    announcements_router,
    api_keys_router,
    ledger_router,
    billing_router,
    billing_admin_router,
    stripe_webhook_router,
    catalog_router,
    catalog_admin_router,
    model_access_router,
    live_router,
    usage_router,
]


class TokenboardApp(FastAPI):
    """The application: the gateway's POST routes go to its front door, everything else to FastAPI."""

    front_door: GatewayFrontDoor | None = None
    access_log = False  # a line per request once its response is out (kit/access_log.py)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.access_log and scope["type"] == "http":
            await serve_logged(self._dispatch, scope, receive, send)
        else:
            await self._dispatch(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front_door is not None and scope["type"] == "http" and scope["method"] == "POST":
            route = GATEWAY_ROUTES.get(scope["path"])
            if route is not None:
                await self.front_door.serve(route, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    if settings.env == Environment.production and "TOKENBOARD_SECRET_KEY" not in _environ_keys():
        raise RuntimeError("Set TOKENBOARD_SECRET_KEY in production: every instance must share it.")
    engine = create_engine(settings.database_url, echo=settings.database_echo)
    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.usage_journal.open()
        await app.state.usage_writer.recover()
        app.state.gateway.start()
        await app.state.cache_bus.start()
        await app.state.live_hub.start()
        restore_signals = close_streams_on_exit_signals(app.state.live_hub)
        if settings.gc_tuning:
            tune_gc()
        yield
        restore_signals()
        await app.state.live_hub.stop()
        await app.state.cache_bus.stop()
        await app.state.gateway.aclose()
        app.state.usage_journal.close()
        await app.state.upstreams.aclose()
        if redis is not None:
            await redis.aclose()
        await engine.dispose()

    app = TokenboardApp(
        title="Tokenboard",
        version=__version__,
        description="AI usage, cost and governance for teams. Every page has a JSON twin under /api/v1.",
        lifespan=lifespan,
        dependencies=[Depends(verify_csrf)],
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = create_sessionmaker(engine)
    app.state.mailer = Mailer(settings)
    counter: FailureCounter = RedisFailureCounter(redis) if redis is not None else MemoryFailureCounter()
    app.state.failure_counter = counter
    app.state.redis = redis
    app.state.catalog_cache = CatalogCache()
    app.state.ingest_slot = asyncio.Lock() if settings.is_sqlite else None
    app.state.model_access_cache = ModelAccessCache(app.state.catalog_cache)
    # Every session of this app can reach the cache, so a committed policy change invalidates it.
    app.state.sessionmaker.configure(info=session_info(app.state.model_access_cache))
    # Billing state per organization (suspended, grace...) for the gateway, invalidated after commits.
    app.state.billing_status = BillingStatusCache()
    app.state.key_cache = KeyCache()
    app.state.upstreams = UpstreamPool(settings.upstreams)
    app.state.usage_journal = UsageJournal(settings.journal_path(), uuid7().hex)
    app.state.usage_writer = UsageWriter(
        app.state.sessionmaker,
        journal=app.state.usage_journal,
        max_delay=settings.usage_batch_delay_ms / 1000,
    )
    app.state.gateway = Gateway(
        settings=settings,
        sessionmaker=app.state.sessionmaker,
        keys=app.state.key_cache,
        catalog=app.state.catalog_cache,
        upstreams=app.state.upstreams,
        writer=app.state.usage_writer,
        redis=redis,
    )

    app.state.gateway.policy = getattr(app.state, "model_access_cache", None)
    app.state.gateway.billing = app.state.billing_status

    def apply_invalidation(message: str) -> None:
        if message in ("keys", "all"):
            app.state.key_cache.clear()
            app.state.gateway.forget_key_spend()
        if message in ("catalog", "all"):
            app.state.catalog_cache.invalidate()
        if message == "all":
            app.state.model_access_cache.invalidate_all()
            app.state.billing_status.invalidate_all()
        elif message.startswith("billing:"):
            with contextlib.suppress(ValueError):
                app.state.billing_status.invalidate(uuid.UUID(message.split(":", 1)[1]))
        elif message.startswith("policy:"):
            with contextlib.suppress(ValueError):
                app.state.model_access_cache.invalidate(uuid.UUID(message.split(":", 1)[1]))

    app.state.cache_bus = CacheBus(apply_invalidation, redis)
    # Live updates to open pages; the usage writer calls app.state.live_hub.notify_usage after a commit.
    app.state.live_hub = LiveHub(redis)

    def tell_open_pages(batch: list[UsageRecord], result: BatchResult) -> None:
        for org_id, (requests, cost) in result.new_by_org.items():
            app.state.live_hub.notify_usage(org_id, requests=requests, cost_nanousd=cost)

    app.state.usage_writer.hooks.append(tell_open_pages)

    # Gateway usage lowers balances: low-balance email and automatic top-up are checked after each batch.
    balance_watch: set[asyncio.Task[None]] = set()

    async def watch_balances(org_ids: list[uuid.UUID]) -> None:
        try:
            async with app.state.sessionmaker() as session:
                session.info["app_state"] = app.state  # the app's mailer and caches, as in a request
                for org_id in org_ids:
                    await credits.watch_balance(session, org_id, settings)
                await session.commit()
                await run_after_commit(session)  # the emails, once the "notified" mark is committed
        except Exception:  # `tokenboard billing run` checks again; usage was written regardless
            log.exception("checking balances after usage failed")

    def check_balances(batch: list[UsageRecord], result: BatchResult) -> None:
        spent = [org_id for org_id, (_, cost) in result.new_by_org.items() if cost > 0]
        if spent:
            task = asyncio.get_running_loop().create_task(watch_balances(spent))
            balance_watch.add(task)
            task.add_done_callback(balance_watch.discard)

    app.state.usage_writer.hooks.append(check_balances)
    install_error_handlers(app)
    app.include_router(gateway_router)
    for router in API_ROUTERS:
        app.include_router(router)
    app.include_router(web_router, include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    app.add_middleware(
        RequestGuardMiddleware,
        max_body_bytes=settings.max_body_bytes,
        secure_cookies=settings.secure_cookies,
        larger_bodies=[(INGEST_PATH, max(settings.max_ingest_body_bytes, settings.max_body_bytes))],
    )
    # Outermost: the gateway's POST routes skip the dashboard's stack (see tokenboard/gateway/asgi.py).
    app.front_door = GatewayFrontDoor(app.state.gateway, max_body_bytes=settings.max_body_bytes)
    app.access_log = settings.access_log
    return app


def _environ_keys() -> set[str]:
    import os

    return set(os.environ)
