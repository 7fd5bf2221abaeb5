"""Which models an organization may call, decided in memory for the gateway's request path.

:class:`ModelAccessCache` holds each organization's policy (its provider and model switches, its training
opt-out and default model) next to the app's :class:`~tokenboard.catalog.service.CatalogCache`.
``ensure_org`` loads an organization once; ``decide`` is then a few set lookups with no I/O.

A change to a policy queues :func:`invalidate_after_commit` on its session: once the change is committed,
the organization's entry is dropped and the next ``ensure_org`` reads it again. The cache reaches the
session through ``session.info`` (``create_app`` binds it to the app's sessionmaker), so every change made
through the app, from any route or service, invalidates without the caller having to remember it.
Invalidation is per process: sharing it across instances (Redis pub/sub) is left for later.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.catalog.service import CatalogCache, CatalogEntry
from tokenboard.kit.db import utcnow
from tokenboard.kit.jobs import after_commit
from tokenboard.model_access import repository

PROVIDER_DISABLED = "provider disabled"
MODEL_DISABLED = "model disabled"
TRAINING_OPTED_OUT = "provider trains on prompts and the organization opted out"

SESSION_INFO_KEY = "model_access_cache"


@dataclass(frozen=True, slots=True)
class OrgPolicy:
    """One organization's switches. No entry for a provider or model means enabled."""

    disabled_providers: frozenset[str]
    disabled_models: frozenset[str]
    opt_out_training_providers: bool
    default_model_id: str | None
    # Off: the gateway records what billing needs (who, which model, tokens, cost, status) and none of the
    # request's attribution (feature, tool, integration, conversation and message ids) or attachments.
    usage_analytics: bool = True

    def provider_block_reason(self, provider_id: str, trains_on_prompts: bool | None) -> str | None:
        if provider_id in self.disabled_providers:
            return PROVIDER_DISABLED
        # A provider whose policy is unknown (an operator's own) is not treated as training on prompts.
        if self.opt_out_training_providers and trains_on_prompts is True:
            return TRAINING_OPTED_OUT
        return None

    def block_reason(self, model_id: str, provider_id: str, trains_on_prompts: bool | None) -> str | None:
        """Why the organization may not call the model, or ``None`` when it may."""
        if provider_id in self.disabled_providers:
            return PROVIDER_DISABLED
        if model_id in self.disabled_models:
            return MODEL_DISABLED
        return self.provider_block_reason(provider_id, trains_on_prompts)


async def load_policy(session: AsyncSession, org_id: uuid.UUID) -> OrgPolicy | None:
    """The organization's policy as stored now; ``None`` when the organization does not exist."""
    settings = await repository.org_settings(session, org_id)
    if settings is None:
        return None
    opt_out, default_model_id, usage_analytics = settings
    return OrgPolicy(
        disabled_providers=frozenset(await repository.disabled_providers(session, org_id)),
        disabled_models=frozenset(await repository.disabled_models(session, org_id)),
        opt_out_training_providers=opt_out,
        default_model_id=default_model_id,
        usage_analytics=usage_analytics,
    )


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the gateway refuses a model, ready to send: an HTTP status, an error code and a message."""

    status: int
    code: str
    message: str
    reason: str


class PolicyNotLoaded(RuntimeError):
    """``decide`` was called before ``ensure_org``: a programming error, never a silent allow."""


class ModelAccessCache:
    """Organization policies in memory; ``decide`` answers without touching the database."""

    def __init__(self, catalog: CatalogCache) -> None:
        self._catalog = catalog
        # Each policy with the generation it was read at; invalidation bumps the generation, so a read
        # that raced a change serves the request that made it but is read again by the next one.
        self._policies: dict[uuid.UUID, tuple[int, OrgPolicy]] = {}
        self._generations: dict[uuid.UUID, int] = {}

    @property
    def catalog(self) -> CatalogCache:
        return self._catalog

    def loaded(self, org_id: uuid.UUID) -> bool:
        entry = self._policies.get(org_id)
        return entry is not None and entry[0] == self._generations.get(org_id, 0) and self._catalog.loaded

    async def ensure_org(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        """Load the catalog and the organization's policy unless already in memory (then no I/O)."""
        await self._catalog.ensure_loaded(session)
        if self.loaded(org_id):
            return
        generation = self._generations.get(org_id, 0)
        policy = await load_policy(session, org_id)
        if policy is None:
            raise LookupError(f"No organization {org_id}.")
        self._policies[org_id] = (generation, policy)

    def generation(self, org_id: uuid.UUID) -> int:
        """Bumped by each invalidation of the organization: a decision holds while this is unchanged."""
        return self._generations.get(org_id, 0)

    def policy(self, org_id: uuid.UUID) -> OrgPolicy:
        entry = self._policies.get(org_id)
        if entry is None or not self._catalog.loaded:
            raise PolicyNotLoaded(f"Call ensure_org({org_id}) before deciding.")
        return entry[1]

    def decide(self, org_id: uuid.UUID, model_id: str, *, when: datetime | None = None) -> Refusal | None:
        """``None`` when the organization may call ``model_id`` now, else why not. No I/O.

        Refuses what the catalog refuses too (unknown, switched off by the operator, unpriced), so the
        gateway needs this one call.
        """
        policy = self.policy(org_id)
        entry = self._catalog.get(model_id)
        if entry is None or not entry.enabled:
            return Refusal(
                404, "model_not_found", f"The model {model_id!r} is not in the catalog.", "unknown model"
            )
        if entry.price_at(when or utcnow()) is None:
            return Refusal(
                403,
                "model_not_allowed",
                f"The model {model_id!r} has no price, so it cannot be metered.",
                "unpriced",
            )
        reason = policy.block_reason(model_id, entry.provider_id, entry.provider_trains_on_prompts)
        if reason is not None:
            return Refusal(
                403,
                "model_not_allowed",
                f"The model {model_id!r} is not allowed in this organization: {reason}.",
                reason,
            )
        return None

    def allowed_models(self, org_id: uuid.UUID, *, when: datetime | None = None) -> list[str]:
        """Every model the organization may call now, sorted: what ``GET /v1/models`` lists. No I/O."""
        policy = self.policy(org_id)
        moment = when or utcnow()
        return sorted(entry.model_id for entry in self._catalog.entries() if _allowed(policy, entry, moment))

    def default_model(self, org_id: uuid.UUID) -> str | None:
        """The organization's default model (it may have become blocked since: ``decide`` tells)."""
        return self.policy(org_id).default_model_id

    def invalidate(self, org_id: uuid.UUID) -> None:
        self._generations[org_id] = self._generations.get(org_id, 0) + 1
        self._policies.pop(org_id, None)

    def invalidate_all(self) -> None:
        for org_id in list(self._policies):
            self.invalidate(org_id)


def _allowed(policy: OrgPolicy, entry: CatalogEntry, when: datetime) -> bool:
    return (
        entry.enabled
        and entry.price_at(when) is not None
        and policy.block_reason(entry.model_id, entry.provider_id, entry.provider_trains_on_prompts) is None
    )


def session_info(cache: ModelAccessCache) -> dict[str, object]:
    """What ``create_app`` puts in every session's ``info`` so changes can reach the app's cache."""
    return {SESSION_INFO_KEY: cache}


def invalidate_after_commit(session: AsyncSession, org_ids: Iterable[uuid.UUID] | uuid.UUID) -> None:
    """Once ``session`` commits, drop these organizations' policies from the cache bound to it."""
    cache = session.info.get(SESSION_INFO_KEY)
    if not isinstance(cache, ModelAccessCache):
        return  # a session outside the app (CLI, migrations): no cache in this process to refresh
    ids = [org_ids] if isinstance(org_ids, uuid.UUID) else list(org_ids)

    async def invalidate() -> None:
        for org_id in ids:
            cache.invalidate(org_id)
        state = session.info.get("app_state")  # set for request sessions: tell the other instances too
        bus = getattr(state, "cache_bus", None)
        if bus is not None:
            for org_id in ids:
                await bus.announce(f"policy:{org_id}")

    after_commit(session, invalidate)
