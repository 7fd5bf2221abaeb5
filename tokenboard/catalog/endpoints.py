"""REST API for the model catalog: everyone signed in reads it; operators change it."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import Query, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.accounts.auth import CurrentPrincipal, OperatorPrincipal
from tokenboard.catalog import schemas
from tokenboard.catalog.service import CatalogCache, ModelFilters, catalog
from tokenboard.kit.deps import DB
from tokenboard.kit.jobs import after_commit
from tokenboard.kit.routing import make_router

router = make_router(prefix="/api/v1/catalog", tags=["catalog"])
admin_router = make_router(prefix="/api/v1/admin/catalog", tags=["catalog (operators)"])

TrainsFilter = Annotated[bool | None, Query(description="Only providers that do (true) or do not train.")]
Price = Annotated[Decimal | None, Query(ge=0, le=1_000_000, description="USD per million tokens.")]


def _invalidate_after_commit(request: Request, db: AsyncSession) -> None:
    cache: CatalogCache | None = getattr(request.app.state, "catalog_cache", None)
    if cache is not None:

        async def invalidate() -> None:
            cache.invalidate()
            bus = getattr(request.app.state, "cache_bus", None)
            if bus is not None:
                await bus.announce("catalog")

        after_commit(db, invalidate)


@router.get("/models", response_model=list[schemas.CatalogModelOut])
async def list_models(
    principal: CurrentPrincipal,
    db: DB,
    trains_on_prompts: TrainsFilter = None,
    retains_prompts: Annotated[bool | None, Query()] = None,
    may_publish: Annotated[bool | None, Query()] = None,
    location: Annotated[
        str | None, Query(max_length=40, description="Headquarters country (US) or region (eu).")
    ] = None,
    modality: Annotated[str | None, Query(max_length=40, description="text, image, audio, ...")] = None,
    min_context_length: Annotated[int | None, Query(ge=0, le=100_000_000)] = None,
    max_input_price: Price = None,
    max_output_price: Price = None,
    provider: Annotated[str | None, Query(max_length=64)] = None,
) -> object:
    filters = ModelFilters(
        trains_on_prompts=trains_on_prompts,
        retains_prompts=retains_prompts,
        may_publish=may_publish,
        location=location,
        modality=modality,
        min_context_length=min_context_length,
        max_input_price_per_mtok=max_input_price,
        max_output_price_per_mtok=max_output_price,
        provider=provider,
    )
    return [schemas.CatalogModelOut.of(v) for v in await catalog.list_models(db, filters)]


@admin_router.get("/models", response_model=list[schemas.CatalogModelOut])
async def admin_list_models(principal: OperatorPrincipal, db: DB) -> object:
    filters = ModelFilters(include_disabled=True, include_unpriced=True)
    return [schemas.CatalogModelOut.of(v) for v in await catalog.list_models(db, filters)]


@admin_router.post("/models", response_model=schemas.CatalogModelOut, status_code=status.HTTP_201_CREATED)
async def admin_add_model(
    body: schemas.CatalogModelCreate, principal: OperatorPrincipal, db: DB, request: Request
) -> object:
    await catalog.add_model(
        db,
        body.id,
        name=body.name,
        context_length=body.context_length,
        max_output_tokens=body.max_output_tokens,
        input_modalities=body.input_modalities,
        output_modalities=body.output_modalities,
        enabled=body.enabled,
        prices=body.prices.to_prices() if body.prices else None,
        user_id=principal.user.id,
    )
    _invalidate_after_commit(request, db)
    return schemas.CatalogModelOut.of(await catalog.model_view(db, body.id))


@admin_router.post("/sync", response_model=schemas.SyncResult)
async def admin_sync(principal: OperatorPrincipal, db: DB, request: Request) -> object:
    report = await catalog.sync(db)
    _invalidate_after_commit(request, db)
    return schemas.SyncResult(
        providers_added=report.providers_added,
        providers_updated=report.providers_updated,
        models_added=report.models_added,
        models_updated=report.models_updated,
        prices_added=report.prices_added,
        scheduled_prices_removed=report.scheduled_prices_removed,
        genai_prices_version=report.genai_prices_version,
    )


@admin_router.patch("/models/{provider}/{model:path}", response_model=schemas.CatalogModelOut)
async def admin_update_model(
    provider: str,
    model: str,
    body: schemas.CatalogModelUpdate,
    principal: OperatorPrincipal,
    db: DB,
    request: Request,
) -> object:
    model_id = f"{provider}/{model}"
    await catalog.update_model(
        db,
        model_id,
        enabled=body.enabled,
        name=body.name,
        context_length=body.context_length,
        max_output_tokens=body.max_output_tokens,
    )
    _invalidate_after_commit(request, db)
    return schemas.CatalogModelOut.of(await catalog.model_view(db, model_id))


@admin_router.get("/models/{provider}/{model:path}/prices", response_model=list[schemas.PriceRow])
async def admin_price_history(provider: str, model: str, principal: OperatorPrincipal, db: DB) -> object:
    return [schemas.PriceRow.of(r) for r in await catalog.price_history(db, f"{provider}/{model}")]


@admin_router.post(
    "/models/{provider}/{model:path}/prices",
    response_model=schemas.PriceRow,
    status_code=status.HTTP_201_CREATED,
)
async def admin_set_price(
    provider: str,
    model: str,
    body: schemas.PriceOverrideCreate,
    principal: OperatorPrincipal,
    db: DB,
    request: Request,
) -> object:
    row = await catalog.set_price(
        db,
        f"{provider}/{model}",
        body.to_prices(),
        effective_from=body.effective_from,
        user_id=principal.user.id,
        note=body.note,
        keep=body.left_out(),
    )
    _invalidate_after_commit(request, db)
    return schemas.PriceRow.of(row)
