"""Audit recording: every state change writes an event in the same transaction as the change."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.audit import repository
from tokenboard.kit.context import ClientInfo
from tokenboard.kit.errors import BadRequest
from tokenboard.models import AuditEvent, User


@dataclass(frozen=True, slots=True)
class Actor:
    """Who caused a change: a signed-in user or the operator's CLI."""

    user_id: uuid.UUID | None
    label: str
    client: ClientInfo

    @classmethod
    def of(cls, user: User, client: ClientInfo) -> Actor:
        return cls(user_id=user.id, label=user.email, client=client)

    @classmethod
    def system(cls, client: ClientInfo) -> Actor:
        return cls(user_id=None, label="system", client=client)


class AuditService:
    def record(
        self,
        session: AsyncSession,
        *,
        organization_id: uuid.UUID,
        actor: Actor,
        action: str,
        target_type: str,
        target_id: uuid.UUID | str | None = None,
        target_label: str | None = None,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> AuditEvent:
        event = AuditEvent(
            organization_id=organization_id,
            actor_user_id=actor.user_id,
            actor_label=actor.label,
            action=action,
            target_type=target_type,
            target_id=str(target_id) if target_id is not None else None,
            target_label=target_label,
            before=before,
            after=after,
            ip_address=actor.client.ip_address,
            user_agent=actor.client.user_agent,
        )
        session.add(event)
        return event

    async def list(
        self, session: AsyncSession, organization_id: uuid.UUID, *, limit: int = 20, cursor: str | None = None
    ) -> tuple[list[AuditEvent], str | None]:
        """Newest first; ``cursor`` is the id of the last event already shown."""
        before = None
        if cursor:
            try:
                cursor_id = uuid.UUID(cursor)
            except ValueError as exc:
                raise BadRequest("The cursor is not valid.") from exc
            anchor = await repository.get_event(session, organization_id, cursor_id)
            if anchor is None:
                raise BadRequest("The cursor is not valid.")
            before = (anchor.created_at, anchor.id)
        events = await repository.list_events(session, organization_id, limit=limit + 1, before=before)
        next_cursor = str(events[limit - 1].id) if len(events) > limit else None
        return events[:limit], next_cursor


audit = AuditService()
