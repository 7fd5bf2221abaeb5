"""REST API for model access: everyone in the organization reads it; owners and admins change it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from tokenboard.kit.deps import DB, AppSettings
from tokenboard.kit.routing import make_router
from tokenboard.members.roles import Permission
from tokenboard.model_access import schemas
from tokenboard.model_access.service import model_access
from tokenboard.organizations.auth import OrgContext, require_org

router = make_router(prefix="/api/v1/organizations/{org_id}/model-access", tags=["model access"])

Viewer = Annotated[OrgContext, Depends(require_org(Permission.models_view))]
Manager = Annotated[OrgContext, Depends(require_org(Permission.models_manage))]


@router.get("", response_model=schemas.ModelAccessPage)
async def list_model_access(
    ctx: Viewer, db: DB, settings: AppSettings, query: Annotated[schemas.ModelAccessQuery, Query()]
) -> object:
    result = await model_access.list(
        db, ctx, query.filters(), offset=query.offset, limit=query.limit, reachable=settings.upstreams
    )
    return schemas.ModelAccessPage.of(result)


@router.put("/providers/{provider_id}", response_model=schemas.ProviderAccess)
async def set_provider_access(
    provider_id: str, body: schemas.AccessUpdate, ctx: Manager, db: DB, settings: AppSettings
) -> object:
    return schemas.ProviderAccess.of(
        await model_access.set_provider(
            db, ctx, provider_id, enabled=body.enabled, reachable=settings.upstreams
        )
    )


@router.put("/models/{model:path}", response_model=schemas.ModelAccess)
async def set_model_access(
    model: str, body: schemas.AccessUpdate, ctx: Manager, db: DB, settings: AppSettings
) -> object:
    return schemas.ModelAccess.of(
        await model_access.set_model(db, ctx, model, enabled=body.enabled, reachable=settings.upstreams)
    )


@router.put("/default-model", response_model=schemas.DefaultModel)
async def set_default_model(
    body: schemas.DefaultModelUpdate, ctx: Manager, db: DB, settings: AppSettings
) -> object:
    chosen = await model_access.set_default_model(db, ctx, body.model_id, reachable=settings.upstreams)
    return schemas.DefaultModel(default_model_id=chosen)
