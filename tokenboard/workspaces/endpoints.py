"""REST API for workspaces and their lifecycle."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Depends, Query, status

from tokenboard.kit.deps import DB
from tokenboard.kit.routing import make_router
from tokenboard.members.roles import Permission
from tokenboard.models import WorkspaceStatus
from tokenboard.organizations.auth import OrgContext, require_org
from tokenboard.workspaces import schemas
from tokenboard.workspaces.service import workspaces

router = make_router(prefix="/api/v1", tags=["workspaces"])

Viewer = Annotated[OrgContext, Depends(require_org(Permission.workspaces_view))]
Manager = Annotated[OrgContext, Depends(require_org(Permission.workspaces_manage))]


@router.get("/organizations/{org_id}/workspaces", response_model=list[schemas.Workspace])
async def list_workspaces(
    ctx: Viewer, db: DB, status_filter: Annotated[WorkspaceStatus | None, Query(alias="status")] = None
) -> object:
    return await workspaces.list(db, ctx, status_filter.value if status_filter else None)


@router.post(
    "/organizations/{org_id}/workspaces",
    response_model=schemas.Workspace,
    status_code=status.HTTP_201_CREATED,
)
async def create_workspace(body: schemas.WorkspaceCreate, ctx: Manager, db: DB) -> object:
    return await workspaces.create(db, ctx, name=body.name, description=body.description)


@router.get("/organizations/{org_id}/workspaces/{workspace_id}", response_model=schemas.Workspace)
async def get_workspace(workspace_id: uuid.UUID, ctx: Viewer, db: DB) -> object:
    return await workspaces.get(db, ctx, workspace_id)


@router.patch("/organizations/{org_id}/workspaces/{workspace_id}", response_model=schemas.Workspace)
async def update_workspace(
    workspace_id: uuid.UUID, body: schemas.WorkspaceUpdate, ctx: Manager, db: DB
) -> object:
    return await workspaces.update(db, ctx, workspace_id, **body.model_dump(exclude_unset=True))


@router.post("/organizations/{org_id}/workspaces/{workspace_id}/{action}", response_model=schemas.Workspace)
async def transition_workspace(
    workspace_id: uuid.UUID, action: Literal["suspend", "resume", "archive"], ctx: Manager, db: DB
) -> object:
    return await workspaces.transition(db, ctx, workspace_id, action)
