"""SQL for the audit log."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.kit.tenancy import scoped
from tokenboard.models import AuditEvent


async def list_events(
    session: AsyncSession,
    organization_id: uuid.UUID,
    *,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None = None,
) -> list[AuditEvent]:
    stmt = scoped(select(AuditEvent), AuditEvent, organization_id)
    if before is not None:
        at, event_id = before
        stmt = stmt.where(
            or_(AuditEvent.created_at < at, and_(AuditEvent.created_at == at, AuditEvent.id < event_id))
        )
    stmt = stmt.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def get_event(
    session: AsyncSession, organization_id: uuid.UUID, event_id: uuid.UUID
) -> AuditEvent | None:
    return await session.get(AuditEvent, (organization_id, event_id))
