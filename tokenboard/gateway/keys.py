"""Gateway key resolution: one query on a cache miss, then memory only.

Entries are dropped on any change that affects admission (key revoked, workspace suspended, member removed)
right after that change commits, so a revoked key is refused on the very next request of this process.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.kit.db import HashedUUID
from tokenboard.kit.security import hash_token
from tokenboard.models import ApiKey, Membership, Workspace

MAX_ENTRIES = 100_000


@dataclass(frozen=True, slots=True)
class KeyInfo:
    key_id: uuid.UUID
    organization_id: uuid.UUID
    workspace_id: uuid.UUID
    workspace_name: str
    workspace_status: str
    user_id: uuid.UUID
    member_active: bool
    team_id: uuid.UUID | None
    revoked: bool
    allowed_models: frozenset[str] | None
    spend_limit_nanousd: int | None = None
    spent_nanousd: int = 0


async def _load(session: AsyncSession, key_hash: str) -> KeyInfo | None:
    stmt = (
        select(ApiKey, Workspace, Membership)
        .join(
            Workspace,
            (Workspace.organization_id == ApiKey.organization_id) & (Workspace.id == ApiKey.workspace_id),
        )
        .outerjoin(
            Membership,
            (Membership.organization_id == ApiKey.organization_id) & (Membership.user_id == ApiKey.user_id),
        )
        .where(ApiKey.key_hash == key_hash)
    )
    row = (await session.execute(stmt)).first()
    if row is None:
        return None
    key, workspace, membership = row
    team_id = membership.team_id if membership is not None else None
    return KeyInfo(  # ids that hash once: the gateway looks them up in its tables on every request
        key_id=HashedUUID(key.id),
        organization_id=HashedUUID(key.organization_id),
        workspace_id=HashedUUID(workspace.id),
        workspace_name=workspace.name,
        workspace_status=workspace.status,
        user_id=HashedUUID(key.user_id),
        member_active=membership is not None,
        team_id=HashedUUID(team_id) if team_id is not None else None,
        revoked=key.revoked_at is not None,
        allowed_models=frozenset(key.allowed_models) if key.allowed_models else None,
        spend_limit_nanousd=key.spend_limit_nanousd,
        spent_nanousd=key.spent_nanousd,
    )


class KeyCache:
    def __init__(self) -> None:
        self._by_hash: dict[str, KeyInfo | None] = {}
        # Bumped whenever entries are dropped: what was decided from an entry holds while it is unchanged.
        self.generation = 0

    def peek(self, secret: str) -> tuple[bool, KeyInfo | None]:
        """(found in cache, info) without any I/O."""
        return self.peek_hash(hash_token(secret))

    def peek_hash(self, key_hash: str) -> tuple[bool, KeyInfo | None]:
        """The same, by the key's hash (``hash_token``)."""
        if key_hash in self._by_hash:
            return True, self._by_hash[key_hash]
        return False, None

    async def resolve(self, session: AsyncSession, secret: str) -> KeyInfo | None:
        return await self.resolve_hash(session, hash_token(secret))

    async def resolve_hash(self, session: AsyncSession, key_hash: str) -> KeyInfo | None:
        if key_hash in self._by_hash:
            return self._by_hash[key_hash]
        info = await _load(session, key_hash)
        if len(self._by_hash) >= MAX_ENTRIES:
            self.clear()
        self._by_hash[key_hash] = info
        return info

    def clear(self) -> None:
        self._by_hash.clear()
        self.generation += 1
