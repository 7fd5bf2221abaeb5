"""Teams: departments or cost centers; a member belongs to at most one."""

from __future__ import annotations

import builtins
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.audit.service import audit
from tokenboard.kit.errors import BadRequest, Conflict, NotFound
from tokenboard.members import repository as members_repository
from tokenboard.models import Team, User
from tokenboard.organizations.auth import OrgContext
from tokenboard.teams import repository


@dataclass(frozen=True, slots=True)
class TeamRow:
    team: Team
    member_count: int


class TeamService:
    async def list(self, session: AsyncSession, ctx: OrgContext) -> list[TeamRow]:
        return [TeamRow(t, n) for t, n in await repository.list_with_counts(session, ctx.organization_id)]

    async def get(self, session: AsyncSession, ctx: OrgContext, team_id: uuid.UUID) -> Team:
        team = await repository.get(session, ctx.organization_id, team_id)
        if team is None:
            raise NotFound("No such team.")
        return team

    async def members_of(self, session: AsyncSession, ctx: OrgContext, team: Team) -> builtins.list[User]:
        rows = await members_repository.list_members(session, ctx.organization_id)
        return [user for membership, user, _ in rows if membership.team_id == team.id]

    async def create(
        self, session: AsyncSession, ctx: OrgContext, *, name: str, description: str = ""
    ) -> Team:
        name = self._clean_name(name)
        if await repository.get_by_name(session, ctx.organization_id, name) is not None:
            raise Conflict(f"A team named {name!r} already exists.")
        team = Team(organization_id=ctx.organization_id, name=name, description=description.strip())
        session.add(team)
        await session.flush()
        audit.record(
            session,
            organization_id=ctx.organization_id,
            actor=ctx.actor,
            action="team.created",
            target_type="team",
            target_id=team.id,
            target_label=team.name,
            after={"name": team.name, "description": team.description},
        )
        return team

    async def update(
        self,
        session: AsyncSession,
        ctx: OrgContext,
        team_id: uuid.UUID,
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> Team:
        team = await self.get(session, ctx, team_id)
        before = {"name": team.name, "description": team.description}
        if name is not None:
            name = self._clean_name(name)
            other = await repository.get_by_name(session, ctx.organization_id, name)
            if other is not None and other.id != team.id:
                raise Conflict(f"A team named {name!r} already exists.")
            team.name = name
        if description is not None:
            team.description = description.strip()
        after = {"name": team.name, "description": team.description}
        if after != before:
            audit.record(
                session,
                organization_id=ctx.organization_id,
                actor=ctx.actor,
                action="team.updated",
                target_type="team",
                target_id=team.id,
                target_label=team.name,
                before=before,
                after=after,
            )
        await session.flush()
        return team

    async def delete(self, session: AsyncSession, ctx: OrgContext, team_id: uuid.UUID) -> None:
        team = await self.get(session, ctx, team_id)
        await members_repository.clear_team(session, ctx.organization_id, team.id)
        audit.record(
            session,
            organization_id=ctx.organization_id,
            actor=ctx.actor,
            action="team.deleted",
            target_type="team",
            target_id=team.id,
            target_label=team.name,
            before={"name": team.name, "description": team.description},
        )
        await session.delete(team)
        await session.flush()

    @staticmethod
    def _clean_name(name: str) -> str:
        name = name.strip()
        if not name:
            raise BadRequest("Give the team a name.")
        if len(name) > 120:
            raise BadRequest("Team names are at most 120 characters.")
        return name


teams = TeamService()
