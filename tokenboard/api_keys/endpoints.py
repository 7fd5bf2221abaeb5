"""REST API for gateway API keys."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, status

from tokenboard.api_keys import schemas
from tokenboard.api_keys.service import KeyRow, api_keys
from tokenboard.kit.deps import DB
from tokenboard.kit.money import money
from tokenboard.kit.routing import make_router
from tokenboard.members.roles import Permission
from tokenboard.organizations.auth import OrgContext, require_org

router = make_router(prefix="/api/v1", tags=["api keys"])

KeyUser = Annotated[OrgContext, Depends(require_org(Permission.keys_use))]


def key_schema(row: KeyRow) -> schemas.ApiKey:
    k = row.key
    return schemas.ApiKey(
        id=k.id,
        name=k.name,
        key_hint=k.key_hint,
        workspace_id=k.workspace_id,
        workspace_name=row.workspace.name,
        user_id=k.user_id,
        user_email=row.user.email,
        allowed_models=k.allowed_models,
        spend_limit=money(k.spend_limit_nanousd) if k.spend_limit_nanousd else None,
        created_at=k.created_at,
        last_used_at=k.last_used_at,
        revoked_at=k.revoked_at,
    )


@router.get("/organizations/{org_id}/api-keys", response_model=list[schemas.ApiKey])
async def list_keys(ctx: KeyUser, db: DB) -> object:
    return [key_schema(r) for r in await api_keys.list(db, ctx)]


@router.post(
    "/organizations/{org_id}/api-keys",
    response_model=schemas.ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
)
async def create_key(body: schemas.ApiKeyCreate, ctx: KeyUser, db: DB) -> object:
    new = await api_keys.create(
        db,
        ctx,
        workspace_id=body.workspace_id,
        name=body.name,
        allowed_models=body.allowed_models,
        spend_limit_nanousd=body.spend_limit_nanousd,
    )
    row = await api_keys.row(db, ctx, new.key.id)
    return schemas.ApiKeyCreated(**key_schema(row).model_dump(), key=new.secret)


@router.delete("/organizations/{org_id}/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_key(key_id: uuid.UUID, ctx: KeyUser, db: DB) -> None:
    await api_keys.revoke(db, ctx, key_id)
