"""Teams. Each page calls the same service as its JSON twin under /api/v1."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Form, Request

from tokenboard.accounts.auth import CurrentPrincipal
from tokenboard.kit.deps import DB
from tokenboard.kit.routing import make_router
from tokenboard.members.roles import Permission
from tokenboard.organizations.auth import OrgContext
from tokenboard.teams.service import teams
from tokenboard.web.support import form_action, org_page, page

router = make_router()


@router.get("/organizations/{org_id}/teams")
async def teams_page(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    ctx: Annotated[OrgContext, org_page(Permission.teams_view)],
) -> Any:
    return await page(
        request,
        "teams.html",
        db,
        principal,
        ctx=ctx,
        active="teams",
        title="Teams",
        rows=await teams.list(db, ctx),
    )


@router.post("/organizations/{org_id}/teams")
async def teams_create(
    db: DB,
    ctx: Annotated[OrgContext, org_page(Permission.teams_manage)],
    name: Annotated[str, Form(max_length=120)],
    description: Annotated[str, Form(max_length=500)] = "",
) -> Any:
    here = f"/organizations/{ctx.organization_id}/teams"
    return await form_action(
        db,
        lambda: teams.create(db, ctx, name=name, description=description),
        success=here,
        failure=here,
        notice=f"Team {name.strip()} created.",
    )


@router.get("/organizations/{org_id}/teams/{team_id}")
async def team_page(
    team_id: uuid.UUID,
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    ctx: Annotated[OrgContext, org_page(Permission.teams_view)],
) -> Any:
    team = await teams.get(db, ctx, team_id)
    return await page(
        request,
        "team.html",
        db,
        principal,
        ctx=ctx,
        active="teams",
        title=team.name,
        team=team,
        team_members=await teams.members_of(db, ctx, team),
    )


@router.post("/organizations/{org_id}/teams/{team_id}")
async def team_update(
    team_id: uuid.UUID,
    db: DB,
    ctx: Annotated[OrgContext, org_page(Permission.teams_manage)],
    name: Annotated[str, Form(max_length=120)],
    description: Annotated[str, Form(max_length=500)] = "",
) -> Any:
    here = f"/organizations/{ctx.organization_id}/teams/{team_id}"
    return await form_action(
        db,
        lambda: teams.update(db, ctx, team_id, name=name, description=description),
        success=here,
        failure=here,
        notice="Team saved.",
    )


@router.post("/organizations/{org_id}/teams/{team_id}/delete")
async def team_delete(
    team_id: uuid.UUID, db: DB, ctx: Annotated[OrgContext, org_page(Permission.teams_manage)]
) -> Any:
    here = f"/organizations/{ctx.organization_id}/teams"
    return await form_action(
        db, lambda: teams.delete(db, ctx, team_id), success=here, failure=here, notice="Team deleted."
    )
