"""The gateway: one admission chain for every route, forwarding, stream relay and metering.

Admission runs on in-memory caches (keys, catalog, org policy); the only database work before forwarding
is the credit reservation. Usage is read from the upstream's response (the gateway asks for it in streams),
priced per token kind and handed to the batch writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import httpx
import orjson
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tokenboard.billing.status import BillingStatusCache
from tokenboard.catalog.pricing import (
    Prices,
    TokenUsage,
    UsageError,
    anthropic_usage,
    cost_nanousd,
    openai_usage,
    openrouter_cost,
    plain_cost_nanousd,
)
from tokenboard.catalog.service import CatalogCache, CatalogEntry
from tokenboard.config import Settings, UpstreamKind
from tokenboard.gateway.attachments import find_attachments, share_of_prompt
from tokenboard.gateway.errors import GatewayError
from tokenboard.gateway.http1 import body_exhausted, raw_chunks
from tokenboard.gateway.inspect import InspectionError, bound_output, check_shapes, find_forbidden_field
from tokenboard.gateway.keys import KeyCache, KeyInfo
from tokenboard.gateway.limits import KeySpend, RateLimiter
from tokenboard.gateway.metering import BatchResult, UsageRecord, UsageWriter
from tokenboard.gateway.simulated import SIMULATED_HEADER, count_prompt_tokens
from tokenboard.gateway.upstreams import ANTHROPIC_FORMAT, EMBEDDINGS, OPENAI_FORMAT, Upstream, UpstreamPool
from tokenboard.kit.db import request_id, utcnow
from tokenboard.kit.jsonenc import compact_dumps, dumps_bytes, strict_loads
from tokenboard.kit.money import format_usd
from tokenboard.kit.security import hash_token
from tokenboard.ledger.lease import CreditLeases
from tokenboard.ledger.service import InsufficientCredits, ledger
from tokenboard.models import WorkspaceStatus

log = logging.getLogger("tokenboard.gateway")

KEY_PREFIX = "tb_"
DRAIN_SECONDS = 60.0
DRAIN_BYTES = 50 * 1024 * 1024
MAX_ERROR_BODY = 64 * 1024
MAX_STREAM_LINE = 8 * 1024 * 1024  # an upstream "line" longer than this is not an event stream
SWEEP_SECONDS = 60.0
LEASE_UPKEEP_SECONDS = 15.0
DEFAULT_MODEL_MAX_OUTPUT = 128_000
ATTRIBUTION_HEADERS = {
    "feature": "x-tokenboard-feature",
    "tool": "x-tokenboard-tool",
    "integration": "x-tokenboard-integration",
    "conversation_id": "x-tokenboard-conversation-id",
    "message_id": "x-tokenboard-message-id",
}
_ATTRIBUTION_BY_HEADER = {header.encode(): name for name, header in ATTRIBUTION_HEADERS.items()}
_NO_ATTRIBUTION: Mapping[str, str | None] = MappingProxyType(dict.fromkeys(ATTRIBUTION_HEADERS))
PASS_SECONDS = 1.0  # the longest an admission pass is reused (see Gateway._decide)
MAX_PASSES = 10_000


def read_headers(
    raw_headers: list[tuple[bytes, bytes]],
) -> tuple[str | None, Mapping[str, str | None], bytes | None]:
    """The API key as sent, the feature, tool, integration, conversation and message ids, and the
    ``anthropic-beta`` header as sent (the Anthropic features a client opts into, passed on to Anthropic).

    The key is the bearer token, else the ``x-api-key`` (the first of each, as sent); the ids come from the
    x-tokenboard-* headers. One pass over the raw header list (ASGI names are lower-case); most requests
    carry none of the ids, and then share one read-only mapping.
    """
    authorization = api_key = beta = None
    found: dict[str, str | None] | None = None
    for key, value in raw_headers:
        if key == b"authorization":
            if authorization is None:
                authorization = value.decode("latin-1")
        elif key == b"x-api-key":
            if api_key is None:
                api_key = value.decode("latin-1")
        elif key.startswith(b"x-tokenboard-"):
            name = _ATTRIBUTION_BY_HEADER.get(key)
            if name is not None and value:
                if found is None:
                    found = dict(_NO_ATTRIBUTION)
                found[name] = _header_text(value)[: 200 if name.endswith("_id") else 100]
        elif key == b"anthropic-beta":
            beta = value if beta is None else beta + b"," + value  # sent once or repeated, one list
    if authorization is not None and authorization[:7].lower() == "bearer ":
        secret: str | None = authorization[7:].strip()
    else:
        secret = api_key
    return secret, _NO_ATTRIBUTION if found is None else found, beta


# Anthropic's beta names (``prompt-caching-2024-07-31``, ``context-1m-2025-08-07``), comma-separated.
_BETA_NAMES = re.compile(rb"[A-Za-z0-9._-]+(?:[ \t]*,[ \t]*[A-Za-z0-9._-]+)*")
MAX_BETA_HEADER = 512


def _anthropic_beta(raw: bytes | None, upstream: Upstream, route: Route) -> str | None:
    """The client's ``anthropic-beta`` list to pass on, for an Anthropic-format call to an Anthropic upstream
    (other upstreams have no such header: it is not sent to them); refused (400) unless it is a list of beta
    names, so nothing else rides on it to the provider."""
    if raw is None or route.api_format != "anthropic" or upstream.kind != UpstreamKind.anthropic:
        return None
    if len(raw) > MAX_BETA_HEADER or _BETA_NAMES.fullmatch(raw.strip()) is None:
        raise GatewayError(400, "The anthropic-beta header must be a comma-separated list of beta names.")
    return raw.strip().decode("ascii")


def _header_text(value: bytes) -> str:
    """A header's text: UTF-8, as clients send non-ASCII names today; bytes that are not UTF-8 as Latin-1,
    HTTP's historical charset."""
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _checked_secret(secret: str | None) -> str:
    """The key as sent, when it looks like one of ours; else the 401 to send."""
    if not secret:
        raise GatewayError(401, "Send your Tokenboard API key as a Bearer token (or x-api-key).")
    if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
        raise GatewayError(401, "That is not a Tokenboard API key (they start with tb_).")
    return secret


def _check_body(body: dict[str, Any]) -> None:
    """Refuse a body that names an upstream or carries a credential (400), or whose fields the gateway reads
    have the wrong JSON type (``InspectionError``)."""
    forbidden = find_forbidden_field(body)
    if forbidden is not None:
        raise GatewayError(
            400,
            f"The field {forbidden!r} is refused: the gateway chooses the upstream and its credentials.",
        )
    check_shapes(body)


@dataclass(frozen=True, slots=True)
class Route:
    name: str  # chat, messages, embeddings
    api_format: str  # openai or anthropic
    upstream_path: str
    kinds: frozenset[Any]
    token_keys: tuple[str, ...]


CHAT = Route("chat", "openai", "/chat/completions", OPENAI_FORMAT, ("max_tokens", "max_completion_tokens"))
MESSAGES = Route("messages", "anthropic", "/messages", ANTHROPIC_FORMAT, ("max_tokens",))
EMBED = Route("embeddings", "openai", "/embeddings", EMBEDDINGS, ())
# Anthropic's token counting, for a model of any provider: forwarded to an ``anthropic`` upstream, estimated
# by the gateway for the others (``Gateway.count_tokens``). Never metered, so it needs no credits.
COUNT_TOKENS = Route("count_tokens", "anthropic", "/messages/count_tokens", frozenset(UpstreamKind), ())
ESTIMATED_HEADER = "x-tokenboard-estimated"
MAX_COUNT_BODY = 64 * 1024  # a count is a few bytes; anything longer is not one


@dataclass(slots=True)
class Admitted:
    """A request that passed admission, with everything metering needs."""

    request_id: str
    key: KeyInfo
    model_id: str
    provider_id: str
    upstream_model: str
    upstream: Upstream
    prices: Prices
    body: dict[str, Any]
    route: Route
    stream: bool
    client_wants_usage: bool
    started: float
    attribution: Mapping[str, str | None]
    attachments: list[dict[str, Any]] | None
    lease_id: str | None = None
    estimate: int = 0
    reported_usage: dict[str, Any] | None = None
    checks_ms: float = 0.0  # request parsed -> upstream request ready to send (admission and its building)
    usage: dict[str, int] = field(default_factory=dict)
    # The organization opted out of providers that train on prompts, and the upstream routes to providers
    # of varying policies (OpenRouter): it is told to use only those that do not collect data.
    deny_data_collection: bool = False
    text_chars: int = 0  # the body's characters outside its attachments' payloads
    anthropic_beta: str | None = None  # the client's anthropic-beta list, for an Anthropic upstream


@dataclass(frozen=True, slots=True)
class _Pass:
    """What admission decided from the caches for one key, model and route, and until when it holds."""

    key: KeyInfo
    model_id: str
    provider_id: str
    upstream_model: str
    upstream: Upstream
    prices: Prices
    model_max_output: int
    stamp: tuple[int, int, int, int]  # Gateway._stamp when it was decided
    until: float  # wall-clock seconds
    deny_data_collection: bool = False
    usage_analytics: bool = True  # the organization's switch (model_access.cache.OrgPolicy)


# The web searches held for a web search tool that sets no ``max_uses`` (Anthropic's has no limit then), and
# the most a declared ``max_uses`` counts for.
DEFAULT_WEB_SEARCHES = 10
MAX_HELD_WEB_SEARCHES = 1000


def declared_web_searches(body: dict[str, Any]) -> int:
    """How many server-side web searches a request may make, for its credit hold: each Anthropic web search
    tool's ``max_uses`` (``DEFAULT_WEB_SEARCHES`` without one), one for OpenAI's ``web_search_options``."""
    count = 1 if body.get("web_search_options") is not None else 0
    tools = body.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            kind = tool.get("type") if isinstance(tool, dict) else None
            if isinstance(kind, str) and kind.startswith("web_search"):
                uses = tool.get("max_uses")
                count += (
                    min(uses, MAX_HELD_WEB_SEARCHES)
                    if type(uses) is int and uses > 0
                    else DEFAULT_WEB_SEARCHES
                )
    return count


def _merge_usage(usage: dict[str, int], reported: object) -> None:
    """Add an Anthropic stream event's usage to the counts so far, flat: ``output_tokens``,
    ``cache_creation.ephemeral_1h_input_tokens``, ``server_tool_use.web_search_requests``. The counts are
    cumulative (``message_delta`` repeats and raises ``message_start``'s), so the largest is kept."""
    if not isinstance(reported, dict):
        return
    for name, value in reported.items():
        if type(value) is int:
            usage[name] = max(usage.get(name, 0), value)
        elif isinstance(value, dict):
            for sub, count in value.items():
                if type(count) is int:
                    flat = f"{name}.{sub}"
                    usage[flat] = max(usage.get(flat, 0), count)


def request_cost(
    kind: UpstreamKind, prices: Prices, usage: TokenUsage, reported: dict[str, Any] | None, estimated: bool
) -> int:
    """A request's cost in nano-USD: what OpenRouter reports it charged, else tokens x prices."""
    if kind == UpstreamKind.openrouter and not estimated and reported and reported.get("cost") is not None:
        try:
            return openrouter_cost(reported).total_nanousd
        except UsageError:
            pass  # an unreadable report: price the tokens instead
    return cost_nanousd(prices, usage)


class Gateway:
    def __init__(
        self,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        keys: KeyCache,
        catalog: CatalogCache,
        upstreams: UpstreamPool,
        writer: UsageWriter,
        policy: Any = None,
        redis: Redis | None = None,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.keys = keys
        self.catalog = catalog
        self.upstreams = upstreams
        self.writer = writer
        self.leases = CreditLeases(
            sessionmaker,
            block_nanousd=settings.gateway_credit_lease_nanousd,
            instance=writer.journal.instance if writer.journal is not None else None,
        )
        writer.hooks.append(self._settle_leases)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.policy = policy
        self.limiter = RateLimiter(settings.gateway_rate_limit_per_minute, redis)
        self.spend = KeySpend()
        self.background: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._syncer: asyncio.Task[None] | None = None
        # Subscription state (billing/status.py): a suspended org is refused; set by the app.
        self.billing: BillingStatusCache | None = None
        self._billing_refreshing: set[uuid.UUID] = set()
        # Admission passes by (key hash, model, route): the chain over the caches runs once per change.
        self._passes: dict[tuple[str, str, str], _Pass] = {}
        # The decisions being made, by the same key: concurrent requests wait for one (``_decide_once``).
        self._deciding: dict[tuple[str, str, str], asyncio.Task[_Pass]] = {}

    # ------------------------------------------------------------------ admission

    async def admit(
        self, request: Request, route: Route, body: dict[str, Any], body_size: int | None = None
    ) -> Admitted:
        started = time.perf_counter()
        ticket, attribution, beta = await self._pass_for(request, route, body)
        key = ticket.key
        try:
            _check_body(body)
            limits = bound_output(
                body,
                model_max_output=ticket.model_max_output,
                token_keys=route.token_keys,
                default_output=self.settings.gateway_default_max_output_tokens,
            )
        except InspectionError as exc:
            raise GatewayError(400, str(exc)) from exc
        self._check_rate(key)
        stream = bool(body.get("stream")) and route.name != "embeddings"
        if ticket.usage_analytics:
            attachments, payload_chars = find_attachments(body, route.api_format)
        else:  # the organization switched usage analytics off: what billing needs, nothing more
            attachments, payload_chars, attribution = None, 0, _NO_ATTRIBUTION
        admitted = Admitted(
            request_id=request_id(),
            key=key,
            model_id=ticket.model_id,
            provider_id=ticket.provider_id,
            upstream_model=ticket.upstream_model,
            upstream=ticket.upstream,
            prices=ticket.prices,
            body=body,
            route=route,
            stream=stream,
            client_wants_usage=bool((body.get("stream_options") or {}).get("include_usage")),
            started=started,
            attribution=attribution,
            attachments=attachments,
            deny_data_collection=ticket.deny_data_collection,
        )
        if beta is not None:
            admitted.anthropic_beta = _anthropic_beta(beta, ticket.upstream, route)
        if body_size is None:
            body_size = len(json.dumps(body))
        admitted.text_chars = body_size - payload_chars
        estimate = self._estimate(admitted, body_size, limits.max_output_tokens * limits.n)
        self._check_key_limit(key, estimate)
        try:
            admitted.lease_id = await self.leases.take(key.organization_id, estimate)
        except InsufficientCredits as exc:
            raise GatewayError(402, exc.message) from exc
        admitted.estimate = estimate
        self.spend.start(key.key_id, key.spent_nanousd, estimate, limited=key.spend_limit_nanousd is not None)
        return admitted

    async def _pass_for(
        self, request: Request, route: Route, body: dict[str, Any]
    ) -> tuple[_Pass, Mapping[str, str | None], bytes | None]:
        """The start of admission on every route: the request's key, attribution and ``anthropic-beta``
        headers, and the pass for its key, model (the organization's default when it names none) and route."""
        secret, attribution, beta = read_headers(request.scope["headers"])
        key_hash = hash_token(_checked_secret(secret))
        model_id = body.get("model")
        if model_id is None:
            model_id = ""  # the organization's default model, if it has one (``_decide``)
        ticket = self._held_pass(key_hash, model_id, route) or await self._decide_once(
            key_hash, route, model_id
        )
        return ticket, attribution, beta

    def _check_rate(self, key: KeyInfo) -> None:
        """The key's request rate limit: a 429 with the wait when it is reached."""
        wait = self.limiter.allow(key.key_id, time.monotonic())
        if wait is not None:
            raise GatewayError(429, "Rate limit reached for this key. Retry shortly.", retry_after=wait)

    def _held_pass(self, key_hash: str, model_id: Any, route: Route) -> _Pass | None:
        """The pass decided for this key, model and route, while it holds (``_decide`` says how long)."""
        ticket = self._passes.get((key_hash, model_id, route.name)) if type(model_id) is str else None
        if (
            ticket is None
            or ticket.until <= time.time()
            or ticket.stamp != self._stamp(ticket.key.organization_id)
        ):
            return None
        return ticket

    async def _decide_once(self, key_hash: str, route: Route, model_id: Any) -> _Pass:
        """``_decide``, run once for concurrent requests of the same key, model and route.

        A burst on cold caches (a restart, a new key, a pass that just expired) would otherwise read the
        key, the subscription and the policy from the database once per request, and a few dozen requests
        at once wait on the connection pool. The decision runs as its own task: a client that goes away
        does not cancel it for the others, and all of them get its pass or its refusal.
        """
        if type(model_id) is not str:  # refused by the chain; nothing to share
            return await self._decide(key_hash, route, model_id)
        flight = (key_hash, model_id, route.name)
        task = self._deciding.get(flight)
        if task is None:
            task = asyncio.ensure_future(self._decide(key_hash, route, model_id))
            self._deciding[flight] = task
            task.add_done_callback(lambda done: self._decided(flight, done))
        return await asyncio.shield(task)

    def _decided(self, flight: tuple[str, str, str], task: asyncio.Task[_Pass]) -> None:
        if self._deciding.get(flight) is task:
            del self._deciding[flight]
        if not task.cancelled():
            task.exception()  # seen here: the waiters may all have gone

    def _stamp(self, org_id: uuid.UUID) -> tuple[int, int, int, int]:
        """The generations of every cache a pass was decided from: any change to them bumps one."""
        return (self.keys.generation, self.catalog.generation, *self._org_generations(org_id))

    def _org_generations(self, org_id: uuid.UUID) -> tuple[int, int]:
        """The organization's model access and billing state generations (0 where there is no such cache)."""
        return (
            self.policy.generation(org_id) if self.policy is not None else 0,
            self.billing.generation(org_id) if self.billing is not None else 0,
        )

    async def _decide(self, key_hash: str, route: Route, model_id: Any) -> _Pass:
        """The admission chain over the caches, for one key, model and route; remembered as a pass.

        Refusals raise. The pass holds until one of the caches it read changes (``_stamp``), the model's
        price changes, or ``PASS_SECONDS`` pass (what the caches refresh by time: a billing state read
        again, a grace period running out).
        """
        if not self.catalog.loaded:  # loading bumps its generation: before the stamp is taken
            async with self.sessionmaker() as session:
                await self.catalog.ensure_loaded(session)
        generations = (self.keys.generation, self.catalog.generation)  # before the key is read
        key = await self._key_by_hash(key_hash)
        org_id = key.organization_id
        stamp = (*generations, *self._org_generations(org_id))
        wall = time.time()
        until = wall + PASS_SECONDS
        await self._check_holder(key)
        if self.billing is not None and self.billing.state(org_id).status not in ("none", "active"):
            until = wall  # a grace period ends by the clock: decide every request afresh
        if not isinstance(model_id, str):
            raise GatewayError(400, "Name the model, as provider/model (for example openai/gpt-4o).")
        named = model_id
        if not model_id:
            default = None
            if self.policy is not None:
                if not self.policy.loaded(org_id):
                    async with self.sessionmaker() as session:
                        await self.policy.ensure_org(session, org_id)
                default = self.policy.default_model(org_id)
            if not default:
                raise GatewayError(
                    400,
                    "Name the model, as provider/model (for example openai/gpt-4o): "
                    "this organization has no default model.",
                )
            model_id = default
        provider_id, _, upstream_model = model_id.partition("/")
        if not upstream_model:
            raise GatewayError(404, f"Unknown model {model_id!r}: model names look like provider/model.")
        entry = self.catalog.get(model_id)
        if entry is None or not entry.enabled:
            raise GatewayError(
                404, f"Unknown model {model_id!r}. GET /v1/models lists the models you may use."
            )
        now = utcnow()
        prices = entry.price_at(now)
        if prices is None:
            raise GatewayError(404, f"The model {model_id!r} has no price, so it is refused (never free).")
        change = entry.next_price_change(now)
        if change is not None:
            until = min(until, change.timestamp())
        upstream = self.upstreams.get(provider_id)
        if upstream is None:
            raise GatewayError(404, f"The provider {provider_id!r} is not configured on this gateway.")
        if upstream.kind not in route.kinds:
            raise GatewayError(
                400,
                f"{model_id} cannot be called through /v1/{route.name}; use the route of its provider's API.",
            )
        if key.allowed_models is not None and model_id not in key.allowed_models:
            raise GatewayError(403, f"This key may not use {model_id}; it is restricted to other models.")
        deny_data_collection = False
        usage_analytics = True
        if self.policy is not None:
            if not self.policy.loaded(org_id):
                async with self.sessionmaker() as session:
                    await self.policy.ensure_org(session, org_id)
            refusal = self.policy.decide(org_id, model_id, when=now)
            if refusal is not None:
                raise GatewayError(refusal.status, refusal.message)
            policy = self.policy.policy(org_id)
            deny_data_collection = (
                upstream.kind == UpstreamKind.openrouter and policy.opt_out_training_providers
            )
            usage_analytics = policy.usage_analytics
        ticket = _Pass(
            key=key,
            model_id=model_id,
            provider_id=provider_id,
            upstream_model=upstream_model,
            upstream=upstream,
            prices=prices,
            # The model's own maximum when the catalog knows it (gpt-4o writes at most 16,384 of its 128,000):
            # a larger bound would be refused by the provider and would size the credit hold too large.
            model_max_output=entry.max_output_tokens or entry.context_length or DEFAULT_MODEL_MAX_OUTPUT,
            stamp=stamp,
            until=until,
            deny_data_collection=deny_data_collection,
            usage_analytics=usage_analytics,
        )
        if len(self._passes) >= MAX_PASSES:
            self._passes.clear()
        self._passes[(key_hash, named, route.name)] = ticket
        return ticket

    async def _check_holder(self, key: KeyInfo) -> None:
        """What the key's holder must be, whatever the model: its workspace active, its owner still a
        member, the organization's subscription open. Refusals raise."""
        if key.workspace_status != WorkspaceStatus.active.value:
            raise GatewayError(
                403, f"The workspace {key.workspace_name} is {key.workspace_status}; its keys are refused."
            )
        if not key.member_active:
            raise GatewayError(403, "The owner of this key is no longer a member of the organization.")
        if self.billing is not None:
            await self._check_billing(key.organization_id)

    async def _check_billing(self, org_id: uuid.UUID) -> None:
        """A suspended or canceled subscription closes the gateway (memory; re-read at most once a minute)."""
        billing = self.billing
        assert billing is not None
        if not billing.loaded(org_id):
            try:
                billing.state(org_id)  # known but stale: answer from it, refresh in the background
            except LookupError:
                async with self.sessionmaker() as session:
                    await billing.ensure_org(session, org_id)
            else:
                self._refresh_billing_soon(org_id)
        refusal = billing.refusal(org_id)
        if refusal is not None:
            raise GatewayError(refusal.status, refusal.message, code=refusal.code)

    def _refresh_billing_soon(self, org_id: uuid.UUID) -> None:
        if org_id in self._billing_refreshing:
            return
        self._billing_refreshing.add(org_id)

        async def refresh() -> None:
            try:
                async with self.sessionmaker() as session:
                    await self.billing.ensure_org(session, org_id)  # type: ignore[union-attr]
            except Exception:  # the next request tries again
                log.exception("refreshing the billing status of %s failed", org_id)
            finally:
                self._billing_refreshing.discard(org_id)

        task = asyncio.get_running_loop().create_task(refresh())
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def forget_key_spend(self) -> None:
        self.spend.forget()

    def _check_key_limit(self, key: KeyInfo, estimate: int) -> None:
        if key.spend_limit_nanousd is None:
            return
        committed = self.spend.committed(key.key_id, key.spent_nanousd)
        if committed + estimate > key.spend_limit_nanousd:
            raise GatewayError(
                402,
                f"This key reached its spend limit of {format_usd(key.spend_limit_nanousd)} "
                f"({format_usd(committed)} spent or in flight). Ask an admin to raise it or use another key.",
            )

    async def _key(self, raw_headers: list[tuple[bytes, bytes]]) -> KeyInfo:
        """The request's key: its bearer token, else its ``x-api-key`` (the first of each, as sent)."""
        secret, _, _ = read_headers(raw_headers)
        return await self._key_by_hash(hash_token(_checked_secret(secret)))

    async def _key_by_hash(self, key_hash: str) -> KeyInfo:
        found, info = self.keys.peek_hash(key_hash)
        if not found:
            async with self.sessionmaker() as session:
                info = await self.keys.resolve_hash(session, key_hash)
        if info is None or info.revoked:
            raise GatewayError(401, "The API key is not valid or was revoked.")
        return info

    @staticmethod
    def _estimate(admitted: Admitted, body_chars: int, max_output: int) -> int:
        """The most this request can cost: every character of the body a token (generous), full output, the
        web searches its tools allow when the model's searches are priced, and audio prices where higher."""
        prompt = max(1, body_chars // 3)
        output = max_output if admitted.route.name != "embeddings" else 0
        prices = admitted.prices
        searches = declared_web_searches(admitted.body) if prices.per_web_search else 0
        if prices.input_audio is None and prices.output_audio is None:
            return plain_cost_nanousd(prices, prompt, output, searches)
        # A model with audio prices: every token may be audio, where audio costs more than text.
        rates = prices.rates(prompt)
        worst = TokenUsage(
            input_tokens=prompt,
            output_tokens=output,
            web_searches=searches,
            input_audio_tokens=prompt if rates.input_audio > rates.input else 0,
            output_audio_tokens=output if rates.output_audio > rates.output else 0,
        )
        return cost_nanousd(prices, worst)

    async def models_for(self, request: Request) -> list[str]:
        """Every priced model this key may use right now, on a configured provider; a key refused whatever
        the model (its workspace suspended, its owner gone, the subscription closed) is refused here too."""
        key = await self._model_reader(request)
        now = utcnow()
        return sorted(entry.model_id for entry in self.catalog.entries() if self._lists(key, entry, now))

    async def model_for(self, request: Request, model_id: str) -> str:
        """One model of ``models_for``'s list, by its id; refused as the list would be.

        A model the list would not show is a 404 whether it is unknown or kept from this key (its subset,
        the organization's model access), with the same message, so asking tells no more than listing.
        """
        key = await self._model_reader(request)
        entry = self.catalog.get(model_id)
        if entry is None or not self._lists(key, entry, utcnow()):
            raise GatewayError(
                404, f"Unknown model {model_id[:200]!r}. GET /v1/models lists the models you may use."
            )
        return entry.model_id

    async def _model_reader(self, request: Request) -> KeyInfo:
        """The key of a request for the model list, checked as admission checks it whatever the model (its
        workspace, its owner, the subscription), with the catalog and the organization's policy loaded."""
        key = await self._key(request.scope["headers"])
        await self._check_holder(key)
        if not self.catalog.loaded:
            async with self.sessionmaker() as session:
                await self.catalog.ensure_loaded(session)
        if self.policy is not None:
            async with self.sessionmaker() as session:
                await self.policy.ensure_org(session, key.organization_id)
        return key

    def _lists(self, key: KeyInfo, entry: CatalogEntry, now: datetime) -> bool:
        """Whether the model list shows ``entry`` to ``key``: enabled, priced now, on a configured provider,
        in the key's subset and allowed by the organization's model access."""
        if not entry.enabled or self.upstreams.get(entry.provider_id) is None or entry.price_at(now) is None:
            return False
        if key.allowed_models is not None and entry.model_id not in key.allowed_models:
            return False
        return self.policy is None or self.policy.decide(key.organization_id, entry.model_id) is None

    # ------------------------------------------------------------------ token counting

    async def count_tokens(self, request: Request, body: dict[str, Any]) -> Response:
        """``POST /v1/messages/count_tokens``: the input tokens of a messages body, ``{"input_tokens": N}``.

        Admission is the chain's, without what is about money: the key, the holder and the model are
        checked as for ``/v1/messages`` (from the same kind of pass), the body as for every route, and the
        request counts against the key's rate limit; counting is free, so no credits are needed or held
        and nothing is recorded or billed. A model of an ``anthropic`` upstream is counted by the provider
        (its own route, under its own model name); any other is the gateway's estimate (the simulated
        provider's count: a token per four characters of each text piece, a fixed count per image), said so
        by ``x-tokenboard-estimated: true``.
        """
        route = COUNT_TOKENS
        ticket, _, beta = await self._pass_for(request, route, body)
        try:
            _check_body(body)
        except InspectionError as exc:
            raise GatewayError(400, str(exc)) from exc
        if not isinstance(body.get("messages"), list):
            raise GatewayError(400, "messages: Field required.")
        self._check_rate(ticket.key)
        if ticket.upstream.kind == UpstreamKind.anthropic:
            return await self._forward_count(ticket, body, _anthropic_beta(beta, ticket.upstream, route))
        headers = {ESTIMATED_HEADER: "true"}
        if ticket.upstream.kind == UpstreamKind.simulated:
            headers[SIMULATED_HEADER] = "true"
        return Response(
            dumps_bytes({"input_tokens": count_prompt_tokens(body)}),
            headers=headers,
            media_type="application/json",
        )

    async def _forward_count(self, ticket: _Pass, body: dict[str, Any], beta: str | None) -> Response:
        """The provider's own count, relayed: the body under the provider's model name, the operator's
        credentials, and the provider's failures told as the other routes tell them."""
        payload = dumps_bytes({**body, "model": ticket.upstream_model})
        try:
            response = await ticket.upstream.post(
                COUNT_TOKENS.upstream_path, COUNT_TOKENS.api_format, payload, beta
            )
        except httpx.TimeoutException as exc:
            raise GatewayError(504, "The provider did not answer in time.") from exc
        except httpx.HTTPError as exc:
            raise GatewayError(502, "The provider could not be reached.") from exc
        if response.status_code >= 400:
            raise await self._upstream_refusal(response)
        try:
            raw = await self._read_bounded(response, MAX_COUNT_BODY)
        except httpx.TimeoutException as exc:
            raise GatewayError(504, "The provider stopped answering.") from exc
        except httpx.HTTPError as exc:
            raise GatewayError(502, "The provider's response broke off.") from exc
        finally:
            await response.aclose()
        try:
            answer = strict_loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or type(answer.get("input_tokens")) is not int:
            raise GatewayError(502, "The provider sent a malformed response.")
        return Response(dumps_bytes(answer), media_type="application/json")

    # ------------------------------------------------------------------ forwarding

    def _upstream_body(self, admitted: Admitted) -> bytes:
        body = dict(admitted.body)
        body["model"] = admitted.upstream_model
        if admitted.stream and admitted.route.api_format == "openai":
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        if admitted.upstream.kind == UpstreamKind.openrouter:
            body["usage"] = {"include": True}  # OpenRouter then reports what it charged: we bill that
            if admitted.deny_data_collection:  # whatever the client asked of OpenRouter's routing
                routing = body.get("provider")
                body["provider"] = {
                    **(routing if isinstance(routing, dict) else {}),
                    "data_collection": "deny",
                }
        return dumps_bytes(body)

    async def forward(self, admitted: Admitted) -> Response:
        body = self._upstream_body(admitted)
        upstream_started = time.perf_counter()
        admitted.checks_ms = (upstream_started - admitted.started) * 1000
        try:
            response = await admitted.upstream.post(
                admitted.route.upstream_path, admitted.route.api_format, body, admitted.anthropic_beta
            )
        except httpx.TimeoutException as exc:
            self._meter_failure(admitted, 504, "upstream_timeout")
            raise GatewayError(504, "The provider did not answer in time.") from exc
        except httpx.HTTPError as exc:
            self._meter_failure(admitted, 502, "upstream_unreachable")
            raise GatewayError(502, "The provider could not be reached.") from exc
        if response.status_code >= 400:
            await self._refuse_upstream_error(admitted, response)
        if admitted.stream:
            return self._relay_stream(admitted, response)
        return await self._complete(admitted, response, upstream_started)

    async def _read_bounded(self, response: httpx.Response, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in _body_chunks(response):
            size += len(chunk)
            if size > limit:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    async def _refuse_upstream_error(self, admitted: Admitted, response: httpx.Response) -> None:
        refusal = await self._upstream_refusal(response)
        self._meter_failure(admitted, response.status_code, f"upstream_{response.status_code}")
        raise refusal

    async def _upstream_refusal(self, response: httpx.Response) -> GatewayError:
        """What to tell the client of the provider's error answer (read, bounded, and closed here): its own
        message for a refusal of the request, never its body otherwise."""
        try:
            raw = await self._read_bounded(response, MAX_ERROR_BODY)
        except httpx.HTTPError:
            raw = b""
        finally:
            await response.aclose()
        status = response.status_code
        message = ""
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            error = json.loads(raw).get("error")
            message = str(error.get("message", "")) if isinstance(error, dict) else ""
        if status == 429:
            retry = response.headers.get("retry-after")
            return GatewayError(
                429,
                "The provider is rate limiting. Retry shortly.",
                retry_after=int(retry) if retry and retry.isdigit() else 1,
            )
        if status in (400, 404, 413, 422):
            detail = f": {message[:500]}" if message else "."
            return GatewayError(400, f"The provider refused the request{detail}")
        return GatewayError(502, f"The provider failed (status {status}).")

    async def _complete(
        self, admitted: Admitted, response: httpx.Response, upstream_started: float
    ) -> Response:
        try:
            raw = await self._read_bounded(response, 64 * 1024 * 1024)
        except httpx.TimeoutException as exc:
            self._meter_failure(admitted, 504, "upstream_timeout")
            raise GatewayError(504, "The provider stopped answering.") from exc
        except httpx.HTTPError as exc:
            self._meter_failure(admitted, 502, "upstream_broken")
            raise GatewayError(502, "The provider's response broke off.") from exc
        finally:
            await response.aclose()
        upstream_ms = (time.perf_counter() - upstream_started) * 1000
        try:
            payload = strict_loads(raw)  # NaN or Infinity would make the answer unencodable: malformed
            if not isinstance(payload, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            self._meter_failure(admitted, 502, "upstream_malformed")
            raise GatewayError(502, "The provider sent a malformed response.") from exc
        usage = payload.get("usage")
        estimated = not isinstance(usage, dict)
        admitted.reported_usage = usage if isinstance(usage, dict) else None
        token_usage = self._usage(admitted, usage if isinstance(usage, dict) else {})
        if estimated:
            token_usage = self._estimated_usage(admitted, json.dumps(payload))
        payload["model"] = admitted.model_id
        overhead = (time.perf_counter() - admitted.started) * 1000 - upstream_ms
        record = self._record(
            admitted,
            token_usage,
            status=200,
            estimated=estimated,
            cancelled=False,
            ttft_ms=None,
            overhead_ms=overhead,
        )
        # The body as JSONResponse would write it (compact UTF-8), by orjson: a quarter of its time.
        return _Answer(
            dumps_bytes(payload),
            self._headers(admitted, overhead),
            settle=lambda: self._settle(admitted, record),
        )

    def _relay_stream(self, admitted: Admitted, response: httpx.Response) -> Response:
        """Relay an upstream stream to the client as it comes.

        A pump task reads the upstream and writes each chunk's complete lines to the client itself (a
        partial line waits for the rest), once the response has started. If the client leaves, the pump keeps
        reading (bounded in time and bytes) until the upstream reports its usage, so the request is billed
        on the provider's own count; only if that never comes is the usage estimated and flagged. The pump
        is started here, before the response is sent, so the request is metered whatever happens to it.
        It journals the request's usage event before the response ends (the journal then holds the request
        the client sees complete) and finishes its credit holds and queues the event just after, off the
        time the client waits for the end; when the upstream's last chunk arrives with its body's end, those
        lines and the response's end go out as one message.
        """
        overhead = admitted.checks_ms  # waiting for the upstream's headers is the provider's time
        state: dict[str, Any] = {"ttft": None, "text_chars": 0, "done": False}
        relay = _Relay()
        rewrite = _ModelRewrite(admitted.upstream_model, admitted.model_id)

        record: UsageRecord | None = None
        metered = settled = False

        def meter() -> None:
            """Journal the request, before the response ends: the client takes its end as the request
            acknowledged, and from the journal the request is billed even if this process dies."""
            nonlocal record, metered
            if not metered:
                metered = True
                record = self._finish_stream(
                    admitted, state, cancelled=relay.client_gone.is_set(), overhead=overhead
                )

        def settle() -> None:
            """The rest of metering (credit holds finished, the event queued), once the end is out."""
            nonlocal settled
            if record is not None and not settled:
                settled = True
                self._settle(admitted, record)

        async def pump() -> None:
            read = 0
            deadline: float | None = None
            pending = b""
            try:
                async for chunk in _body_chunks(response):
                    lines, pending = _split_lines(pending + chunk)
                    if len(pending) > MAX_STREAM_LINE:
                        state["broken"] = True
                        break
                    out: list[bytes] = []
                    for line in lines:
                        forward = self._observe(admitted, line, state, rewrite)
                        if forward is not None:
                            out.append(forward)
                    if state["ttft"] is None and state["text_chars"]:
                        state["ttft"] = (time.perf_counter() - admitted.started) * 1000
                    if relay.client_gone.is_set():
                        read += len(chunk)
                        deadline = deadline or time.monotonic() + DRAIN_SECONDS
                        if state["done"] or read > DRAIN_BYTES or time.monotonic() > deadline:
                            break
                        continue
                    if not out:
                        continue
                    if not pending and body_exhausted(response):
                        # The upstream's body ended with this chunk: metered first (the client takes the end
                        # of its response as the request acknowledged), then the last lines and the end go
                        # out in one message rather than two.
                        meter()
                        try:
                            await relay.write(b"\n".join(out) + b"\n", last=True)
                        finally:
                            settle()
                    else:
                        await relay.write(b"\n".join(out) + b"\n")
                if pending and not relay.client_gone.is_set():  # a last line without its line break
                    (last,), _ = _split_lines(pending + b"\n")
                    forward = self._observe(admitted, last, state, rewrite)
                    if forward is not None:
                        await relay.write(forward + b"\n")
            except Exception:  # a broken upstream stream ends the relay; usage so far is estimated
                state["broken"] = True
            finally:
                try:
                    with contextlib.suppress(Exception):
                        await response.aclose()
                finally:
                    try:
                        meter()  # before the response ends, for the same reason
                    finally:
                        try:
                            await relay.end()
                        finally:
                            relay.finish()  # the response returns whatever metering raised
                            settle()

        task = asyncio.get_running_loop().create_task(pump())
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return _EventStream(relay, self._headers(admitted, overhead))

    def _observe(
        self, admitted: Admitted, line: bytes, state: dict[str, Any], rewrite: _ModelRewrite
    ) -> bytes | None:
        """Read usage out of one SSE line; return the line to forward (None to drop it)."""
        if not line.startswith(b"data:"):
            return line
        data = line[5:].strip()
        if data == b"[DONE]":
            state["done"] = True
            return line
        try:
            event = orjson.loads(data)  # a quarter of json.loads's time, and every chunk passes here
        except ValueError:
            try:  # what orjson refuses and json.loads reads (NaN, lone surrogates) is read as before
                event = json.loads(data)
            except ValueError:
                state["malformed"] = True
                return None
        if not isinstance(event, dict):
            return line
        usage = admitted.usage
        if admitted.route.api_format == "openai":
            for choice in event.get("choices") or []:
                delta = choice.get("delta") or {} if isinstance(choice, dict) else {}
                content = delta.get("content") if isinstance(delta, dict) else None
                if isinstance(content, str):
                    state["text_chars"] += len(content)
            if isinstance(event.get("usage"), dict):
                state["usage"] = event["usage"]
                if not admitted.client_wants_usage and not event.get("choices"):
                    return None
            if "model" in event:
                return rewrite(line)
            return line
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            _merge_usage(usage, message.get("usage"))
            if "model" in message:
                return rewrite(line)
        elif kind == "message_delta":
            _merge_usage(usage, event.get("usage"))
        elif kind == "content_block_delta":
            text = (event.get("delta") or {}).get("text")
            if isinstance(text, str):
                state["text_chars"] += len(text)
        elif kind == "message_stop":
            state["done"] = True
        return line

    def _finish_stream(
        self, admitted: Admitted, state: dict[str, Any], *, cancelled: bool, overhead: float
    ) -> UsageRecord:
        """The stream's usage event, journaled (``_settle`` is left to the caller)."""
        if admitted.route.api_format == "openai":
            raw_usage = state.get("usage")
            admitted.reported_usage = raw_usage
        else:
            raw_usage = self._anthropic_usage_dict(admitted.usage) if admitted.usage else None
        estimated = raw_usage is None or (
            admitted.route.api_format == "anthropic" and "output_tokens" not in admitted.usage
        )
        token_usage = self._usage(admitted, raw_usage) if raw_usage is not None and not estimated else None
        if token_usage is not None and state["text_chars"] and token_usage.total_output_tokens == 0:
            token_usage = None  # text was streamed yet the provider reports no output: not to be believed
        if token_usage is None:
            estimated = True
            token_usage = self._estimated_usage(admitted, "x" * state["text_chars"])
        status = 502 if state.get("broken") or state.get("malformed") else 200
        return self._record(
            admitted,
            token_usage,
            status=status,
            estimated=estimated,
            cancelled=cancelled,
            ttft_ms=state["ttft"],
            overhead_ms=overhead,
            error_type="upstream_broken" if status == 502 else None,
        )

    @staticmethod
    def _anthropic_usage_dict(flat: dict[str, int]) -> dict[str, Any]:
        """``_merge_usage``'s flat counts as Anthropic's usage object again (``cache_creation``,
        ``server_tool_use``)."""
        usage: dict[str, Any] = {}
        for name, count in flat.items():
            parent, dot, sub = name.partition(".")
            if dot:
                usage.setdefault(parent, {})[sub] = count
            else:
                usage[name] = count
        return usage

    def _usage(self, admitted: Admitted, usage: dict[str, Any]) -> TokenUsage:
        try:
            if admitted.route.api_format == "anthropic":
                return anthropic_usage(usage)
            return openai_usage(usage)
        except (UsageError, TypeError, ValueError):
            return self._estimated_usage(admitted, "")

    def _estimated_usage(self, admitted: Admitted, output_text: str) -> TokenUsage:
        prompt = max(1, len(json.dumps(admitted.body)) // 4)
        return TokenUsage(input_tokens=prompt, output_tokens=len(output_text) // 4)

    # ------------------------------------------------------------------ metering

    def _record(
        self,
        admitted: Admitted,
        usage: TokenUsage,
        *,
        status: int,
        estimated: bool,
        cancelled: bool,
        ttft_ms: float | None,
        overhead_ms: float,
        error_type: str | None = None,
    ) -> UsageRecord:
        """The request's usage event, priced, completed and journaled: from here it survives a crash.
        ``_settle`` then finishes the request's credit holds and queues the event for the database."""
        key, attribution = admitted.key, admitted.attribution
        record = UsageRecord(
            organization_id=key.organization_id,
            request_id=admitted.request_id,
            provider_id=admitted.provider_id,
            model_id=admitted.model_id,
            route=admitted.route.name,
            stream=admitted.stream,
            status_code=status,
            lease_id=admitted.lease_id,
            user_id=key.user_id,
            api_key_id=key.key_id,
            workspace_id=key.workspace_id,
            team_id=key.team_id,
            error_type=error_type,
            input_tokens=usage.uncached_input_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            cache_write_5m_tokens=usage.cache_write_5m_tokens,
            cache_write_1h_tokens=usage.cache_write_1h_tokens,
            output_tokens=usage.plain_output_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            web_searches=usage.web_searches,
            input_audio_tokens=usage.input_audio_tokens,
            output_audio_tokens=usage.output_audio_tokens,
            cost_nanousd=request_cost(
                admitted.upstream.kind, admitted.prices, usage, admitted.reported_usage, estimated
            ),
            usage_estimated=estimated,
            cancelled=cancelled,
            latency_ms=int((time.perf_counter() - admitted.started) * 1000),
            time_to_first_token_ms=int(ttft_ms) if ttft_ms is not None else None,
            gateway_overhead_ms=round(overhead_ms, 3),
            attachments=(
                share_of_prompt(admitted.attachments, usage.total_input_tokens, admitted.text_chars)
                if admitted.attachments
                else None
            ),
            feature=attribution["feature"],
            tool=attribution["tool"],
            integration=attribution["integration"],
            conversation_id=attribution["conversation_id"],
            message_id=attribution["message_id"],
        )
        self.writer.journal_record(record)
        return record

    def _settle(self, admitted: Admitted, record: UsageRecord) -> None:
        """Finish the request's credit lease and key spend at its cost, and queue its event for the database
        (once, after ``_record``)."""
        key = admitted.key
        if admitted.lease_id is not None:
            self.leases.finish(key.organization_id, admitted.estimate, record.cost_nanousd)
        self.spend.finish(key.key_id, admitted.estimate, record.cost_nanousd)
        admitted.estimate = 0
        self.writer.enqueue(record)

    def _meter_failure(self, admitted: Admitted, status: int, error_type: str) -> None:
        record = self._record(
            admitted,
            TokenUsage(),
            status=status,
            estimated=False,
            cancelled=False,
            ttft_ms=None,
            overhead_ms=admitted.checks_ms,
            error_type=error_type,
        )
        self._settle(admitted, record)

    def failure_headers(self, admitted: Admitted) -> dict[str, str]:
        """The headers of an answer the provider failed: the id its usage event is recorded under."""
        return self._headers(admitted, admitted.checks_ms)

    @staticmethod
    def _headers(admitted: Admitted, overhead_ms: float) -> dict[str, str]:
        headers = {
            "x-tokenboard-request-id": admitted.request_id,
            "x-tokenboard-overhead-ms": f"{overhead_ms:.3f}",
            # The standard header browsers' developer tools show: the hot path alone.
            "server-timing": f"checks;dur={admitted.checks_ms:.3f}",
        }
        if admitted.upstream.kind == UpstreamKind.simulated:
            headers["x-tokenboard-simulated"] = "true"  # no model answered: said on every such response
        return headers

    def _settle_leases(self, batch: list[UsageRecord], result: BatchResult) -> None:
        costs: dict[tuple[uuid.UUID, str], int] = {}
        by_key: dict[uuid.UUID, int] = {}
        for record in batch:
            if record.api_key_id is not None:
                by_key[record.api_key_id] = by_key.get(record.api_key_id, 0) + record.cost_nanousd
            if record.lease_id is not None:
                pair = (record.organization_id, record.lease_id)
                costs[pair] = costs.get(pair, 0) + record.cost_nanousd
        for (org_id, lease_id), cost in costs.items():
            self.leases.settled(org_id, lease_id, cost, result.drawn.get((org_id, lease_id), 0))
        self.spend.written(by_key)

    def start(self) -> None:
        """Start the upkeep task (called at app startup): lease renewal, sweeping holds of dead processes."""
        self.loop = asyncio.get_running_loop()
        if self._sweeper is None:
            self._sweeper = self.loop.create_task(self._upkeep_forever())
        if self._syncer is None:
            self._syncer = self.loop.create_task(self._sync_forever())

    async def _sync_forever(self) -> None:
        """Once a second: share rate counts through Redis; every other second: re-read key spend."""
        tick = 0
        while True:
            await asyncio.sleep(1.0)
            tick += 1
            try:
                await self.limiter.sync()
                if tick % 2 == 0:
                    await self.spend.refresh(self.sessionmaker)
            except Exception:  # the next tick tries again
                log.exception("sharing gateway limits failed")

    async def _upkeep_forever(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(LEASE_UPKEEP_SECONDS)
            ticks += 1
            try:
                await self.leases.maintain()
            except Exception:  # the next tick tries again
                log.exception("credit lease upkeep failed")
            try:  # catalog changes made where this process cannot hear of them (the CLI without Redis)
                async with self.sessionmaker() as session:
                    if await self.catalog.reload_if_changed(session):
                        log.info("the catalog changed in the database: reloaded")
            except Exception:
                log.exception("checking the catalog for changes failed")
            if ticks % int(SWEEP_SECONDS // LEASE_UPKEEP_SECONDS) == 0:
                await self.sweep_expired_holds()

    async def sweep_expired_holds(self) -> int:
        try:
            async with self.sessionmaker() as session:
                released = await ledger.release_expired(session)
                await session.commit()
                return released
        except Exception:  # the next sweep tries again; a failed sweep must not stop the sweeper
            log.exception("releasing expired credit holds failed")
            return 0

    async def aclose(self) -> None:
        for task in (self._sweeper, self._syncer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.background:
            await asyncio.gather(*self.background, return_exceptions=True)
        await self.writer.drain()
        await self.leases.release_all()


def _body_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The response's body as it arrives: straight from its stream when it is not encoded (the gateway asks
    for ``identity``), through httpx's decoders when the provider compressed it anyway."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        direct = raw_chunks(response)
        return direct if direct is not None else response.aiter_raw()
    return response.aiter_bytes()


def _split_lines(data: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines (any of the three line endings SSE allows) and the unfinished rest."""
    keep = b""
    if b"\r" in data:
        if data.endswith(b"\r"):  # its "\n" may be in the next chunk
            data, keep = data[:-1], b"\r"
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = data.split(b"\n")
    return lines, lines.pop() + keep


class _ModelRewrite:
    """Put the gateway's model name (``provider/model``) in a streamed event in place of the provider's: at
    the top of an OpenAI chunk, in the ``message`` of an Anthropic ``message_start``.

    Providers send compact JSON, so the name is replaced in the line's bytes when its key and value appear
    exactly once as the provider wrote them; anything else is re-serialized from the parsed event.
    """

    def __init__(self, upstream_model: str, model_id: str) -> None:
        self.needle = b'"model":' + json.dumps(upstream_model).encode()
        self.replacement = b'"model":' + json.dumps(model_id).encode()
        self.model_id = model_id

    def __call__(self, line: bytes) -> bytes:
        if line.count(self.needle) == 1 and line.count(b'"model"') == 1:
            return line.replace(self.needle, self.replacement)
        # Parsed again by json.loads, which keeps integers of any size exactly (orjson makes floats of those
        # beyond 64 bits): a rewritten line changes only its model.
        event = json.loads(line[5:])
        message = event.get("message")
        if event.get("type") == "message_start" and isinstance(message, dict):
            message["model"] = self.model_id
        else:
            event["model"] = self.model_id
        return b"data: " + compact_dumps(event).encode()


class _Relay:
    """What the stream's pump and its response share: the client's ``send`` once the response has started,
    and whether the client left or the pump finished."""

    START_WAIT_S = 30.0  # a response never started counts as a client that left (the pump still meters)

    def __init__(self) -> None:
        self.send: Send | None = None
        self.started = asyncio.Event()
        self.client_gone = asyncio.Event()
        self.finished = False
        self.ended = False  # the response's last body message was sent
        self.stop = asyncio.Event()  # the pump finished or the client left: the response may end

    def leave(self) -> None:
        self.client_gone.set()
        self.stop.set()

    def finish(self) -> None:
        self.finished = True
        self.stop.set()

    async def write(self, block: bytes, *, last: bool = False) -> None:
        """Send ``block`` to the client; with ``last``, as the response's end."""
        if self.send is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.START_WAIT_S):
                    await self.started.wait()
            if self.send is None:
                self.leave()
        if self.client_gone.is_set() or self.send is None or self.ended:
            return
        self.ended = last
        try:
            await self.send({"type": "http.response.body", "body": block, "more_body": not last})
        except Exception:  # the client's side failed: it is gone; the pump goes on reading to meter
            self.leave()

    async def end(self) -> None:
        """End the response from the pump, once the upstream's body has ended (if it started and the client
        is still there; otherwise the response ends itself when the pump finishes)."""
        if self.send is not None and not self.ended and not self.client_gone.is_set():
            await self.write(b"", last=True)


class _Answer(Response):
    """A complete JSON answer whose request is journaled already; ``settle`` (the rest of its metering) runs
    once the answer is sent, or failed to be, so the client does not wait for it."""

    media_type = "application/json"

    def __init__(self, content: bytes, headers: dict[str, str], *, settle: Callable[[], None]) -> None:
        super().__init__(content, headers=headers)
        self.settle = settle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.settle()


class _EventStream(Response):
    """Starts the response, then lets the pump write to the client until it finishes or the client leaves.

    Lighter than Starlette's ``StreamingResponse`` (no task group, no queue): one task listens for the
    disconnect, which the pump needs to know about (uvicorn drops writes to a client that left, silently).
    """

    media_type = "text/event-stream"

    def __init__(self, relay: _Relay, headers: dict[str, str]):
        self.status_code = 200
        self.background = None
        self.relay = relay
        self.init_headers(headers)

    async def _listen(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.relay.leave()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        relay = self.relay
        listener = asyncio.get_running_loop().create_task(self._listen(receive))
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            relay.send = send
            relay.started.set()
            await relay.stop.wait()
            if not relay.client_gone.is_set() and not relay.ended:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if not relay.finished:
                relay.leave()  # the pump stops writing; it reads on alone to meter
            relay.started.set()
            listener.cancel()
