"""Gateway API keys: created by a member for a workspace, shown once, stored hashed, revocable."""

from __future__ import annotations

import builtins
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.api_keys import repository
from tokenboard.audit.service import audit
from tokenboard.gateway.invalidation import forget_keys
from tokenboard.kit.db import utcnow
from tokenboard.kit.errors import BadRequest, Conflict, NotFound
from tokenboard.kit.money import usd_string
from tokenboard.kit.security import hash_token, new_token
from tokenboard.members.roles import Permission
from tokenboard.models import ApiKey, User, Workspace, WorkspaceStatus
from tokenboard.organizations.auth import OrgContext
from tokenboard.workspaces import repository as workspaces_repository

KEY_PREFIX = "tb_"
MAX_ALLOWED_MODELS = 200


@dataclass(frozen=True, slots=True)
class KeyRow:
    key: ApiKey
    user: User
    workspace: Workspace


@dataclass(frozen=True, slots=True)
class NewKey:
    key: ApiKey
    secret: str


def _clean_models(models: builtins.list[str] | None) -> builtins.list[str] | None:
    if models is None:
        return None
    cleaned = sorted({m.strip() for m in models if m.strip()})
    if len(cleaned) > MAX_ALLOWED_MODELS:
        raise BadRequest(f"A key can be restricted to at most {MAX_ALLOWED_MODELS} models.")
    for model in cleaned:
        provider, _, name = model.partition("/")
        if not provider or not name or len(model) > 200:
            raise BadRequest(f"{model!r} is not a model id; use provider/model, e.g. openai/gpt-4o.")
    return cleaned or None


class ApiKeyService:
    async def list(self, session: AsyncSession, ctx: OrgContext) -> builtins.list[KeyRow]:
        """Owners and admins see every key of the org; everyone else sees their own."""
        mine_only = None if ctx.can(Permission.keys_manage_all) else ctx.user.id
        rows = await repository.list_keys(session, ctx.organization_id, user_id=mine_only)
        return [KeyRow(k, u, w) for k, u, w in rows]

    async def row(self, session: AsyncSession, ctx: OrgContext, key_id: uuid.UUID) -> KeyRow:
        mine_only = None if ctx.can(Permission.keys_manage_all) else ctx.user.id
        rows = await repository.list_keys(session, ctx.organization_id, user_id=mine_only, key_id=key_id)
        if not rows:
            raise NotFound("No such key.")
        return KeyRow(*rows[0])

    async def create(
        self,
        session: AsyncSession,
        ctx: OrgContext,
        *,
        workspace_id: uuid.UUID,
        name: str,
        allowed_models: builtins.list[str] | None = None,
        spend_limit_nanousd: int | None = None,
    ) -> NewKey:
        name = name.strip()
        if not name:
            raise BadRequest("Give the key a name.")
        workspace = await workspaces_repository.get(session, ctx.organization_id, workspace_id)
        if workspace is None:
            raise NotFound("No such workspace.")
        if workspace.status != WorkspaceStatus.active.value:
            raise Conflict(
                f"The workspace {workspace.name} is {workspace.status}; "
                "keys can only be created in active workspaces."
            )
        if spend_limit_nanousd is not None and spend_limit_nanousd <= 0:
            raise BadRequest("A spend limit must be more than zero.")
        secret = new_token(KEY_PREFIX)
        key = ApiKey(
            organization_id=ctx.organization_id,
            workspace_id=workspace.id,
            user_id=ctx.user.id,
            name=name,
            key_hash=hash_token(secret),
            key_hint=secret[:7] + "…" + secret[-4:],
            allowed_models=_clean_models(allowed_models),
            spend_limit_nanousd=spend_limit_nanousd,
        )
        session.add(key)
        await session.flush()
        audit.record(
            session,
            organization_id=ctx.organization_id,
            actor=ctx.actor,
            action="api_key.created",
            target_type="api_key",
            target_id=key.id,
            target_label=name,
            after={
                "workspace": workspace.name,
                "allowed_models": key.allowed_models,
                "spend_limit_usd": usd_string(spend_limit_nanousd) if spend_limit_nanousd else None,
            },
        )
        return NewKey(key=key, secret=secret)

    async def revoke(self, session: AsyncSession, ctx: OrgContext, key_id: uuid.UUID) -> ApiKey:
        key = await repository.get(session, ctx.organization_id, key_id)
        if key is None or (key.user_id != ctx.user.id and not ctx.can(Permission.keys_manage_all)):
            # Another member's key is as invisible as another org's: members only ever see their own.
            raise NotFound("No such key.")
        if key.revoked_at is not None:
            return key
        key.revoked_at = utcnow()
        forget_keys(session)
        audit.record(
            session,
            organization_id=ctx.organization_id,
            actor=ctx.actor,
            action="api_key.revoked",
            target_type="api_key",
            target_id=key.id,
            target_label=key.name,
        )
        await session.flush()
        return key


api_keys = ApiKeyService()
