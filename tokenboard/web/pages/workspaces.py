"""Workspaces and their lifecycle. Each page calls the same service as its JSON twin under /api/v1."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Form, Request

from tokenboard.accounts.auth import CurrentPrincipal
from tokenboard.kit.deps import DB
from tokenboard.kit.routing import make_router
from tokenboard.members.roles import Permission
from tokenboard.organizations.auth import OrgContext
from tokenboard.web.support import form_action, org_page, page
from tokenboard.workspaces.service import workspaces

router = make_router()


@router.get("/organizations/{org_id}/workspaces")
async def workspaces_page(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    ctx: Annotated[OrgContext, org_page(Permission.workspaces_view)],
) -> Any:
    return await page(
        request,
        "workspaces.html",
        db,
        principal,
        ctx=ctx,
        active="workspaces",
        title="Workspaces",
        rows=await workspaces.list(db, ctx),
    )


@router.post("/organizations/{org_id}/workspaces")
async def workspaces_create(
    db: DB,
    ctx: Annotated[OrgContext, org_page(Permission.workspaces_manage)],
    name: Annotated[str, Form(max_length=120)],
    description: Annotated[str, Form(max_length=500)] = "",
) -> Any:
    here = f"/organizations/{ctx.organization_id}/workspaces"
    return await form_action(
        db,
        lambda: workspaces.create(db, ctx, name=name, description=description),
        success=here,
        failure=here,
        notice=f"Workspace {name.strip()} created.",
    )


@router.get("/organizations/{org_id}/workspaces/{workspace_id}")
async def workspace_page(
    workspace_id: uuid.UUID,
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    ctx: Annotated[OrgContext, org_page(Permission.workspaces_view)],
) -> Any:
    workspace = await workspaces.get(db, ctx, workspace_id)
    return await page(
        request,
        "workspace.html",
        db,
        principal,
        ctx=ctx,
        active="workspaces",
        title=workspace.name,
        workspace=workspace,
    )


@router.post("/organizations/{org_id}/workspaces/{workspace_id}")
async def workspace_update(
    workspace_id: uuid.UUID,
    db: DB,
    ctx: Annotated[OrgContext, org_page(Permission.workspaces_manage)],
    name: Annotated[str, Form(max_length=120)],
    description: Annotated[str, Form(max_length=500)] = "",
) -> Any:
    here = f"/organizations/{ctx.organization_id}/workspaces/{workspace_id}"
    return await form_action(
        db,
        lambda: workspaces.update(db, ctx, workspace_id, name=name, description=description),
        success=here,
        failure=here,
        notice="Workspace saved.",
    )


@router.post("/organizations/{org_id}/workspaces/{workspace_id}/{action}")
async def workspace_transition(
    workspace_id: uuid.UUID,
    action: str,
    db: DB,
    ctx: Annotated[OrgContext, org_page(Permission.workspaces_manage)],
) -> Any:
    here = f"/organizations/{ctx.organization_id}/workspaces/{workspace_id}"
    return await form_action(
        db,
        lambda: workspaces.transition(db, ctx, workspace_id, action),
        success=here,
        failure=here,
        notice="Workspace status changed.",
    )
