"""REST API for teams."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, status

from tokenboard.kit.deps import DB
from tokenboard.kit.routing import make_router
from tokenboard.members.roles import Permission
from tokenboard.organizations.auth import OrgContext, require_org
from tokenboard.teams import schemas
from tokenboard.teams.service import teams

router = make_router(prefix="/api/v1", tags=["teams"])

Viewer = Annotated[OrgContext, Depends(require_org(Permission.teams_view))]
Manager = Annotated[OrgContext, Depends(require_org(Permission.teams_manage))]


@router.get("/organizations/{org_id}/teams", response_model=list[schemas.Team])
async def list_teams(ctx: Viewer, db: DB) -> object:
    rows = await teams.list(db, ctx)
    return [
        schemas.Team(
            **schemas.Team.model_validate(r.team).model_dump(exclude={"member_count"}),
            member_count=r.member_count,
        )
        for r in rows
    ]


@router.post(
    "/organizations/{org_id}/teams", response_model=schemas.Team, status_code=status.HTTP_201_CREATED
)
async def create_team(body: schemas.TeamCreate, ctx: Manager, db: DB) -> object:
    return await teams.create(db, ctx, name=body.name, description=body.description)


@router.get("/organizations/{org_id}/teams/{team_id}", response_model=schemas.Team)
async def get_team(team_id: uuid.UUID, ctx: Viewer, db: DB) -> object:
    team = await teams.get(db, ctx, team_id)
    count = len(await teams.members_of(db, ctx, team))
    return schemas.Team(
        **schemas.Team.model_validate(team).model_dump(exclude={"member_count"}), member_count=count
    )


@router.patch("/organizations/{org_id}/teams/{team_id}", response_model=schemas.Team)
async def update_team(team_id: uuid.UUID, body: schemas.TeamUpdate, ctx: Manager, db: DB) -> object:
    return await teams.update(db, ctx, team_id, **body.model_dump(exclude_unset=True))


@router.delete("/organizations/{org_id}/teams/{team_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_team(team_id: uuid.UUID, ctx: Manager, db: DB) -> None:
    await teams.delete(db, ctx, team_id)
