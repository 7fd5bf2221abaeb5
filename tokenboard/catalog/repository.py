"""SQL for the catalog: providers, models and their dated prices."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.models import CatalogModel, CatalogProvider, ModelPrice


async def list_providers(session: AsyncSession) -> list[CatalogProvider]:
    return list((await session.execute(select(CatalogProvider).order_by(CatalogProvider.id))).scalars())


async def get_provider(session: AsyncSession, provider_id: str) -> CatalogProvider | None:
    return await session.get(CatalogProvider, provider_id)


async def list_models(session: AsyncSession, *, enabled_only: bool = False) -> list[CatalogModel]:
    stmt = select(CatalogModel).order_by(CatalogModel.id)
    if enabled_only:
        stmt = stmt.where(CatalogModel.enabled.is_(True))
    return list((await session.execute(stmt)).scalars())


async def get_model(session: AsyncSession, model_id: str) -> CatalogModel | None:
    return await session.get(CatalogModel, model_id)


async def all_prices(session: AsyncSession, model_ids: Sequence[str] | None = None) -> list[ModelPrice]:
    """Price rows, by model and then oldest first."""
    stmt = select(ModelPrice).order_by(ModelPrice.model_id, ModelPrice.effective_from, ModelPrice.source)
    if model_ids is not None:
        stmt = stmt.where(ModelPrice.model_id.in_(model_ids))
    return list((await session.execute(stmt)).scalars())


async def prices_of(session: AsyncSession, model_id: str) -> list[ModelPrice]:
    stmt = (
        select(ModelPrice)
        .where(ModelPrice.model_id == model_id)
        .order_by(ModelPrice.effective_from, ModelPrice.source)
    )
    return list((await session.execute(stmt)).scalars())


async def price_in_force(
    session: AsyncSession, model_id: str, when: datetime, sources: Sequence[str]
) -> ModelPrice | None:
    stmt = (
        select(ModelPrice)
        .where(
            ModelPrice.model_id == model_id,
            ModelPrice.source.in_(sources),
            ModelPrice.effective_from <= when,
        )
        .order_by(ModelPrice.effective_from.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalars().first()


async def delete_prices(session: AsyncSession, ids: Sequence[object]) -> None:
    if ids:
        await session.execute(delete(ModelPrice).where(ModelPrice.id.in_(ids)))


async def fingerprint(session: AsyncSession) -> tuple[object, ...]:
    """What changes when a model is added, switched on or off, changed (its maximum output, which the gateway
    clamps to), or a price added or withdrawn: a process that did not hear of a change (a CLI command without
    Redis) compares it to what it loaded."""
    models = (
        await session.execute(
            select(
                func.count(), func.count().filter(CatalogModel.enabled), func.max(CatalogModel.updated_at)
            ).select_from(CatalogModel)
        )
    ).one()
    prices = (
        await session.execute(select(func.count(), func.max(ModelPrice.created_at)).select_from(ModelPrice))
    ).one()
    return (*models, *prices)
