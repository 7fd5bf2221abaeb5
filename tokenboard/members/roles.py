"""The role table: which role may do what. Pages, API and tests all read this one table."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    owner = "owner"
    admin = "admin"
    billing_manager = "billing_manager"
    member = "member"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()

    @property
    def rank(self) -> int:
        return ROLE_RANK[self]


class Permission(StrEnum):
    org_view = "org.view"
    org_manage = "org.manage"
    members_view = "members.view"
    members_manage = "members.manage"
    invitations_manage = "invitations.manage"
    teams_view = "teams.view"
    teams_manage = "teams.manage"
    workspaces_view = "workspaces.view"
    workspaces_manage = "workspaces.manage"
    audit_view = "audit.view"
    billing_view = "billing.view"
    # Buy credits, change billing details and the subscription (admins only read billing).
    billing_manage = "billing.manage"
    seats_manage = "seats.manage"
    keys_use = "keys.use"
    keys_manage_all = "keys.manage_all"
    models_view = "models.view"
    models_manage = "models.manage"
    usage_ingest = "usage.ingest"
    # Everyone's usage (org-wide amounts); without it a member sees only their own.
    usage_view_all = "usage.view_all"


# Higher rank may grant any role up to its own rank, never above it.
ROLE_RANK: dict[Role, int] = {Role.member: 1, Role.billing_manager: 2, Role.admin: 3, Role.owner: 4}

_EVERYONE = {
    Permission.org_view,
    Permission.members_view,
    Permission.teams_view,
    Permission.workspaces_view,
    Permission.keys_use,
    Permission.models_view,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.owner: frozenset(Permission),
    Role.admin: frozenset(
        _EVERYONE
        | {
            Permission.org_manage,
            Permission.members_manage,
            Permission.invitations_manage,
            Permission.teams_manage,
            Permission.workspaces_manage,
            Permission.audit_view,
            Permission.billing_view,
            Permission.keys_manage_all,
            Permission.models_manage,
            Permission.usage_ingest,
            Permission.usage_view_all,
        }
    ),
    Role.billing_manager: frozenset(
        _EVERYONE | {Permission.billing_view, Permission.billing_manage, Permission.seats_manage}
    ),
    Role.member: frozenset(_EVERYONE),
}


def has_permission(role: str, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[Role(role)]


def can_grant(actor_role: str, target_role: str) -> bool:
    return ROLE_RANK[Role(actor_role)] >= ROLE_RANK[Role(target_role)]
