"""Model access: which providers and models an organization allows, and its default model.

Everything in the catalog is allowed unless the organization switched its provider or the model off, or
the provider trains on prompts and the organization opted out of such providers (an organization
setting). The rule itself is :meth:`OrgPolicy.block_reason`, shared with the gateway's in-memory
:class:`~tokenboard.model_access.cache.ModelAccessCache`; every change here invalidates that cache after
its commit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.audit.service import audit
from tokenboard.catalog.service import ModelFilters, ModelView, catalog, matches
from tokenboard.kit.db import utcnow
from tokenboard.kit.errors import BadRequest, Conflict, NotFound
from tokenboard.model_access import repository
from tokenboard.model_access.cache import OrgPolicy, invalidate_after_commit, load_policy
from tokenboard.models import CatalogProvider, OrgModelAccess, OrgProviderAccess
from tokenboard.organizations.auth import OrgContext

STATES = ("allowed", "blocked")
NOT_CONFIGURED = "provider not configured on this gateway"
# The providers this gateway has an upstream for (the settings' ``upstreams``); ``None``: not checked.
Reachable = Collection[str] | None


@dataclass(frozen=True)
class AccessFilters:
    """The catalog's filters, plus a text search, input and output modalities, and the effective state."""

    catalog: ModelFilters = field(default_factory=ModelFilters)
    search: str | None = None
    input_modality: str | None = None
    output_modality: str | None = None
    state: str | None = None


@dataclass(frozen=True)
class ModelAccessView:
    """A catalog model with the organization's switch and its effective state."""

    view: ModelView
    enabled: bool
    provider_enabled: bool
    blocked_reason: str | None
    is_default: bool

    @property
    def allowed(self) -> bool:
        return self.blocked_reason is None


@dataclass(frozen=True)
class ProviderAccessView:
    provider: CatalogProvider
    enabled: bool
    blocked_reason: str | None
    model_count: int


@dataclass
class AccessCatalog:
    """One page of the organization's view of the catalog, and what the page needs around it."""

    providers: list[ProviderAccessView]
    models: list[ModelAccessView]
    total: int
    offset: int
    limit: int
    opt_out_training_providers: bool
    default_model_id: str | None
    default_model_blocked_reason: str | None
    allowed_choices: list[tuple[str, str]]  # (id, name) of every allowed model: the default model's options


def _state(policy: OrgPolicy, view: ModelView, reachable: Reachable) -> ModelAccessView:
    model, provider = view.model, view.provider
    return ModelAccessView(
        view=view,
        enabled=model.id not in policy.disabled_models,
        provider_enabled=provider.id not in policy.disabled_providers,
        blocked_reason=policy.block_reason(model.id, provider.id, provider.trains_on_prompts)
        or _unreachable(provider.id, reachable),
        is_default=model.id == policy.default_model_id,
    )


def _unreachable(provider_id: str, reachable: Reachable) -> str | None:
    """Whatever the organization allows, a provider this gateway has no upstream for cannot be called."""
    return NOT_CONFIGURED if reachable is not None and provider_id not in reachable else None


def _passes(state: ModelAccessView, f: AccessFilters) -> bool:
    model = state.view.model
    search = (f.search or "").strip().lower()
    checks = (
        matches(state.view, f.catalog),
        not search or search in model.id.lower() or search in model.name.lower(),
        f.input_modality is None or f.input_modality in (model.input_modalities or []),
        f.output_modality is None or f.output_modality in (model.output_modalities or []),
        f.state is None or (f.state == "allowed") is state.allowed,
    )
    return all(checks)


class ModelAccessService:
    async def policy(self, session: AsyncSession, ctx: OrgContext) -> OrgPolicy:
        """The organization's policy as stored in this unit of work (never the cache: it may lag)."""
        policy = await load_policy(session, ctx.organization_id)
        if policy is None:
            raise NotFound("No such organization.")
        return policy

    async def list(
        self,
        session: AsyncSession,
        ctx: OrgContext,
        filters: AccessFilters | None = None,
        *,
        offset: int = 0,
        limit: int = 100,
        reachable: Reachable = None,
    ) -> AccessCatalog:
        """The catalog's enabled, priced models as the organization sees them, filtered and paged."""
        filters = filters or AccessFilters()
        if filters.state is not None and filters.state not in STATES:
            raise BadRequest(f"The state is one of {', '.join(STATES)}.")
        policy = await self.policy(session, ctx)
        states = [_state(policy, v, reachable) for v in await catalog.list_models(session, ModelFilters())]
        matching = [s for s in states if _passes(s, filters)]
        counts = Counter(s.view.provider.id for s in states)
        providers = [
            ProviderAccessView(
                provider=p,
                enabled=p.id not in policy.disabled_providers,
                blocked_reason=policy.provider_block_reason(p.id, p.trains_on_prompts)
                or _unreachable(p.id, reachable),
                model_count=counts[p.id],
            )
            for p in await catalog.list_providers(session)
            if counts[p.id]
        ]
        default = next((s for s in states if s.is_default), None)
        default_reason = None
        if policy.default_model_id is not None:
            default_reason = default.blocked_reason if default else "not in the catalog or unpriced"
        return AccessCatalog(
            providers=providers,
            models=matching[offset : offset + limit],
            total=len(matching),
            offset=offset,
            limit=limit,
            opt_out_training_providers=policy.opt_out_training_providers,
            default_model_id=policy.default_model_id,
            default_model_blocked_reason=default_reason,
            allowed_choices=[(s.view.model.id, s.view.model.name) for s in states if s.allowed],
        )

    async def get_model(
        self, session: AsyncSession, ctx: OrgContext, model_id: str, *, reachable: Reachable = None
    ) -> ModelAccessView:
        view = await self._catalog_view(session, model_id)
        return _state(await self.policy(session, ctx), view, reachable)

    async def set_provider(
        self,
        session: AsyncSession,
        ctx: OrgContext,
        provider_id: str,
        *,
        enabled: bool,
        reachable: Reachable = None,
    ) -> ProviderAccessView:
        """Allow or refuse every model of a provider. Audited; the gateway sees it at once."""
        provider = await catalog.get_provider(session, provider_id)
        org_id = ctx.organization_id
        row = await repository.get_provider_access(session, org_id, provider_id)
        before = row.enabled if row is not None else True
        if before != enabled:
            if row is None:
                session.add(
                    OrgProviderAccess(organization_id=org_id, provider_id=provider_id, enabled=enabled)
                )
            else:
                row.enabled, row.updated_at = enabled, utcnow()
            audit.record(
                session,
                organization_id=org_id,
                actor=ctx.actor,
                action=f"model_access.provider_{'enabled' if enabled else 'disabled'}",
                target_type="provider",
                target_id=provider_id,
                target_label=provider.name,
                before={"enabled": before},
                after={"enabled": enabled},
            )
            await session.flush()
            invalidate_after_commit(session, org_id)
        listing = await self.list(
            session, ctx, AccessFilters(ModelFilters(provider=provider_id)), limit=0, reachable=reachable
        )
        found = next((p for p in listing.providers if p.provider.id == provider_id), None)
        if found is None:  # a provider with no priced model: nothing to count, the switch still holds
            policy = await self.policy(session, ctx)
            reason = policy.provider_block_reason(provider_id, provider.trains_on_prompts) or _unreachable(
                provider_id, reachable
            )
            found = ProviderAccessView(provider, enabled, reason, 0)
        return found

    async def set_model(
        self,
        session: AsyncSession,
        ctx: OrgContext,
        model_id: str,
        *,
        enabled: bool,
        reachable: Reachable = None,
    ) -> ModelAccessView:
        """Allow or refuse one model. Audited; the gateway sees it at once."""
        view = await self._catalog_view(session, model_id)
        org_id = ctx.organization_id
        row = await repository.get_model_access(session, org_id, model_id)
        before = row.enabled if row is not None else True
        if before != enabled:
            if row is None:
                session.add(OrgModelAccess(organization_id=org_id, model_id=model_id, enabled=enabled))
            else:
                row.enabled, row.updated_at = enabled, utcnow()
            audit.record(
                session,
                organization_id=org_id,
                actor=ctx.actor,
                action=f"model_access.model_{'enabled' if enabled else 'disabled'}",
                target_type="model",
                target_id=model_id,
                target_label=view.model.name,
                before={"enabled": before},
                after={"enabled": enabled},
            )
            await session.flush()
            invalidate_after_commit(session, org_id)
        return _state(await self.policy(session, ctx), view, reachable)

    async def set_default_model(
        self, session: AsyncSession, ctx: OrgContext, model_id: str | None, *, reachable: Reachable = None
    ) -> str | None:
        """Set (or clear, with ``None``) the model used when a request names none.

        It must be in the catalog, priced, allowed for the organization now and, given ``reachable``, of a
        provider this gateway can call. Audited.
        """
        model_id = (model_id or "").strip() or None
        if model_id is not None:
            await self._check_default(session, ctx, model_id, reachable)
        org = ctx.organization
        before = org.default_model_id
        if before != model_id:
            org.default_model_id = model_id
            audit.record(
                session,
                organization_id=org.id,
                actor=ctx.actor,
                action="model_access.default_model_changed",
                target_type="organization",
                target_id=org.id,
                target_label=org.name,
                before={"default_model_id": before},
                after={"default_model_id": model_id},
            )
            await session.flush()
            invalidate_after_commit(session, org.id)
        return model_id

    async def _check_default(
        self, session: AsyncSession, ctx: OrgContext, model_id: str, reachable: Reachable
    ) -> None:
        try:
            view = await self._catalog_view(session, model_id)
        except NotFound as exc:
            raise BadRequest(exc.message) from exc
        if view.prices is None:
            raise BadRequest(f"{model_id} has no price, so it cannot be the default model.")
        state = _state(await self.policy(session, ctx), view, reachable)
        if state.blocked_reason is not None:
            raise Conflict(f"{model_id} is not allowed in this organization: {state.blocked_reason}.")

    @staticmethod
    async def _catalog_view(session: AsyncSession, model_id: str) -> ModelView:
        """The model as the catalog shows it; one the operator switched off does not exist here."""
        view = await catalog.model_view(session, model_id)
        if not view.model.enabled:
            raise NotFound(f"No model {model_id!r} in the catalog.")
        return view


model_access = ModelAccessService()
