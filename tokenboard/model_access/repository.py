"""SQL for an organization's model access: its provider and model switches and its default model."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.kit.tenancy import scoped
from tokenboard.models import Organization, OrgModelAccess, OrgProviderAccess


async def org_settings(session: AsyncSession, org_id: uuid.UUID) -> tuple[bool, str | None, bool] | None:
    """The organization's training opt-out, default model and usage analytics switch, or ``None`` when it
    does not exist."""
    stmt = select(
        Organization.opt_out_training_providers,
        Organization.default_model_id,
        Organization.usage_analytics_enabled,
    ).where(Organization.id == org_id)
    row = (await session.execute(stmt)).first()
    return (bool(row[0]), row[1], bool(row[2])) if row is not None else None


async def disabled_providers(session: AsyncSession, org_id: uuid.UUID) -> list[str]:
    stmt = scoped(select(OrgProviderAccess.provider_id), OrgProviderAccess, org_id).where(
        OrgProviderAccess.enabled.is_(False)
    )
    return list((await session.execute(stmt)).scalars())


async def disabled_models(session: AsyncSession, org_id: uuid.UUID) -> list[str]:
    stmt = scoped(select(OrgModelAccess.model_id), OrgModelAccess, org_id).where(
        OrgModelAccess.enabled.is_(False)
    )
    return list((await session.execute(stmt)).scalars())


async def get_provider_access(
    session: AsyncSession, org_id: uuid.UUID, provider_id: str
) -> OrgProviderAccess | None:
    return await session.get(OrgProviderAccess, (org_id, provider_id))


async def get_model_access(session: AsyncSession, org_id: uuid.UUID, model_id: str) -> OrgModelAccess | None:
    return await session.get(OrgModelAccess, (org_id, model_id))
