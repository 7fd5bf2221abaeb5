"""Organization access: membership and the role table decide; another org's id is a 404."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.accounts.auth import Principal, require_principal
from tokenboard.audit.service import Actor
from tokenboard.kit.context import ClientInfo
from tokenboard.kit.db import utcnow
from tokenboard.kit.errors import NotFound, PermissionDenied
from tokenboard.kit.routing import get_db
from tokenboard.members.roles import Permission, Role, has_permission
from tokenboard.models import Membership, Organization, User
from tokenboard.organizations import repository


@dataclass(frozen=True, slots=True)
class OrgContext:
    """The caller inside one organization: the org, their membership and role, and the audit actor."""

    organization: Organization
    membership: Membership
    user: User
    client: ClientInfo

    @property
    def role(self) -> Role:
        return Role(self.membership.role)

    @property
    def organization_id(self) -> uuid.UUID:
        return self.organization.id

    @property
    def actor(self) -> Actor:
        return Actor.of(self.user, self.client)

    def can(self, permission: Permission) -> bool:
        return has_permission(self.membership.role, permission)


async def load_org_context(
    db: AsyncSession, principal: Principal, org_id: uuid.UUID, client: ClientInfo
) -> OrgContext:
    found = await repository.get_membership_with_org(db, org_id, principal.user.id)
    if found is None:
        raise NotFound("No such organization.")
    organization, membership = found
    now = utcnow()
    if membership.last_active_at is None or now - membership.last_active_at > timedelta(minutes=5):
        membership.last_active_at = now
    if principal.user.last_organization_id != organization.id:
        principal.user.last_organization_id = organization.id
    return OrgContext(organization=organization, membership=membership, user=principal.user, client=client)


def require_org(permission: Permission) -> Callable[..., Awaitable[OrgContext]]:
    """Dependency factory: the caller must belong to ``org_id`` and hold ``permission``."""

    async def dependency(
        org_id: uuid.UUID,
        request: Request,
        principal: Principal = Depends(require_principal),
        db: AsyncSession = Depends(get_db),
    ) -> OrgContext:
        context = await load_org_context(db, principal, org_id, ClientInfo.from_request(request))
        if not context.can(permission):
            raise PermissionDenied(f"Your role ({context.role.label}) does not allow this.")
        return context

    dependency.required_permission = permission  # type: ignore[attr-defined]
    return dependency
