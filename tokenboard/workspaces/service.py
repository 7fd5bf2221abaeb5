"""Workspaces: projects inside an organization, with a lifecycle (active, suspended, archived)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.audit.service import audit
from tokenboard.gateway.invalidation import forget_keys
from tokenboard.kit.db import utcnow
from tokenboard.kit.errors import BadRequest, Conflict, NotFound
from tokenboard.models import Workspace, WorkspaceStatus
from tokenboard.organizations.auth import OrgContext
from tokenboard.workspaces import repository

# Which status each action may start from, and where it leads.
TRANSITIONS: dict[str, tuple[frozenset[WorkspaceStatus], WorkspaceStatus]] = {
    "suspend": (frozenset({WorkspaceStatus.active}), WorkspaceStatus.suspended),
    "resume": (frozenset({WorkspaceStatus.suspended}), WorkspaceStatus.active),
    "archive": (frozenset({WorkspaceStatus.active, WorkspaceStatus.suspended}), WorkspaceStatus.archived),
}
PAST_TENSE = {"suspend": "suspended", "resume": "resumed", "archive": "archived"}


class WorkspaceService:
    async def list(
        self, session: AsyncSession, ctx: OrgContext, status: str | None = None
    ) -> list[Workspace]:
        if status is not None and status not in {s.value for s in WorkspaceStatus}:
            raise BadRequest(f"Unknown status {status!r}.")
        return await repository.list_all(session, ctx.organization_id, status)

    async def get(self, session: AsyncSession, ctx: OrgContext, workspace_id: uuid.UUID) -> Workspace:
        workspace = await repository.get(session, ctx.organization_id, workspace_id)
        if workspace is None:
            raise NotFound("No such workspace.")
        return workspace

    async def create(
        self, session: AsyncSession, ctx: OrgContext, *, name: str, description: str = ""
    ) -> Workspace:
        name = self._clean_name(name)
        if await repository.get_by_name(session, ctx.organization_id, name) is not None:
            raise Conflict(f"A workspace named {name!r} already exists.")
        workspace = Workspace(organization_id=ctx.organization_id, name=name, description=description.strip())
        session.add(workspace)
        await session.flush()
        audit.record(
            session,
            organization_id=ctx.organization_id,
            actor=ctx.actor,
            action="workspace.created",
            target_type="workspace",
            target_id=workspace.id,
            target_label=workspace.name,
            after={"name": workspace.name, "status": workspace.status},
        )
        return workspace

    async def update(
        self,
        session: AsyncSession,
        ctx: OrgContext,
        workspace_id: uuid.UUID,
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> Workspace:
        workspace = await self.get(session, ctx, workspace_id)
        before = {"name": workspace.name, "description": workspace.description}
        if name is not None:
            name = self._clean_name(name)
            other = await repository.get_by_name(session, ctx.organization_id, name)
            if other is not None and other.id != workspace.id:
                raise Conflict(f"A workspace named {name!r} already exists.")
            workspace.name = name
        if description is not None:
            workspace.description = description.strip()
        after = {"name": workspace.name, "description": workspace.description}
        if after != before:
            workspace.updated_at = utcnow()
            audit.record(
                session,
                organization_id=ctx.organization_id,
                actor=ctx.actor,
                action="workspace.renamed" if before["name"] != after["name"] else "workspace.updated",
                target_type="workspace",
                target_id=workspace.id,
                target_label=workspace.name,
                before=before,
                after=after,
            )
        await session.flush()
        return workspace

    async def transition(
        self, session: AsyncSession, ctx: OrgContext, workspace_id: uuid.UUID, action: str
    ) -> Workspace:
        """Suspend, resume or archive. Archived workspaces stay archived."""
        if action not in TRANSITIONS:
            raise BadRequest(f"Unknown action {action!r}.")
        workspace = await self.get(session, ctx, workspace_id)
        allowed_from, target = TRANSITIONS[action]
        current = WorkspaceStatus(workspace.status)
        if current not in allowed_from:
            raise Conflict(f"A {current.value} workspace cannot be {PAST_TENSE[action]}.")
        workspace.status = target.value
        forget_keys(session)
        workspace.updated_at = utcnow()
        audit.record(
            session,
            organization_id=ctx.organization_id,
            actor=ctx.actor,
            action=f"workspace.{PAST_TENSE[action]}",
            target_type="workspace",
            target_id=workspace.id,
            target_label=workspace.name,
            before={"status": current.value},
            after={"status": target.value},
        )
        await session.flush()
        return workspace

    @staticmethod
    def _clean_name(name: str) -> str:
        name = name.strip()
        if not name:
            raise BadRequest("Give the workspace a name.")
        if len(name) > 120:
            raise BadRequest("Workspace names are at most 120 characters.")
        return name


workspaces = WorkspaceService()
