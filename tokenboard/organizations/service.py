"""Organizations: creation, settings, seats and the overview."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.announcements.service import announcements
from tokenboard.audit.service import Actor, audit
from tokenboard.kit.errors import BadRequest
from tokenboard.members.roles import Permission, Role
from tokenboard.model_access.cache import invalidate_after_commit
from tokenboard.models import Announcement, AuditEvent, Membership, Organization, User, WorkspaceStatus
from tokenboard.organizations import repository
from tokenboard.organizations.auth import OrgContext
from tokenboard.usage.reports import MonthView, reports

MAX_SEATS = 100_000


@dataclass
class Overview:
    organization: Organization
    owner: User | None
    team_size: int
    seat_limit: int
    role_counts: dict[str, int]
    workspaces_total: int
    workspaces_active: int
    workspaces_suspended: int
    workspaces_other: int
    recent_activity: list[AuditEvent] | None
    activity_cursor: str | None
    announcements: list[Announcement]
    # This month against last month: the organization's, or a member's own usage for members.
    current_billing: MonthView
    billing_only_mine: bool


def _settings_snapshot(org: Organization) -> dict[str, Any]:
    return {
        "name": org.name,
        "opt_out_training_providers": org.opt_out_training_providers,
        "usage_analytics_enabled": org.usage_analytics_enabled,
        "monthly_usage_quota_nanousd": org.monthly_usage_quota_nanousd,
        "monthly_usage_quota_tokens": org.monthly_usage_quota_tokens,
    }


class Unset:
    """A setting left as it is (``None`` is a value: "no quota")."""


UNSET = Unset()
MAX_QUOTA_NANOUSD = 10**18  # one billion USD a month: anything above is a typing error
MAX_QUOTA_TOKENS = 10**15  # a quadrillion tokens a month: anything above is a typing error


class OrganizationService:
    async def create(
        self, session: AsyncSession, *, name: str, owner: User, actor: Actor, seat_limit: int
    ) -> Organization:
        """Create an organization with ``owner`` as its first owner."""
        name = name.strip()
        if not name:
            raise BadRequest("Give the organization a name.")
        if not 1 <= seat_limit <= MAX_SEATS:
            raise BadRequest(f"Seats must be between 1 and {MAX_SEATS}.")
        org = Organization(name=name, seat_limit=seat_limit)
        session.add(org)
        await session.flush()
        membership = Membership(organization_id=org.id, user_id=owner.id, role=Role.owner.value)
        session.add(membership)
        owner.last_organization_id = org.id
        audit.record(
            session,
            organization_id=org.id,
            actor=actor,
            action="organization.created",
            target_type="organization",
            target_id=org.id,
            target_label=org.name,
            after=_settings_snapshot(org) | {"seat_limit": seat_limit},
        )
        audit.record(
            session,
            organization_id=org.id,
            actor=actor,
            action="member.joined",
            target_type="member",
            target_id=membership.id,
            target_label=owner.email,
            after={"role": Role.owner.value},
        )
        await session.flush()
        return org

    async def list_for_user(self, session: AsyncSession, user: User) -> list[tuple[Organization, Membership]]:
        return await repository.list_for_user(session, user.id)

    async def overview(self, session: AsyncSession, ctx: OrgContext, *, activity_limit: int = 6) -> Overview:
        org = ctx.organization
        statuses = await repository.workspace_status_counts(session, org.id)
        roles = await repository.role_counts(session, org.id)
        activity: list[AuditEvent] | None = None
        cursor = None
        if ctx.can(Permission.audit_view):
            activity, cursor = await audit.list(session, org.id, limit=activity_limit)
        active = statuses.get(WorkspaceStatus.active.value, 0)
        suspended = statuses.get(WorkspaceStatus.suspended.value, 0)
        total = sum(statuses.values())
        return Overview(
            organization=org,
            owner=await repository.first_owner(session, org.id),
            team_size=sum(roles.values()),
            seat_limit=org.seat_limit,
            role_counts={role.value: roles.get(role.value, 0) for role in Role},
            workspaces_total=total,
            workspaces_active=active,
            workspaces_suspended=suspended,
            workspaces_other=total - active - suspended,
            recent_activity=activity,
            activity_cursor=cursor,
            announcements=await announcements.list(session, limit=5),
            current_billing=await reports.current_billing(session, ctx),
            billing_only_mine=not ctx.can(Permission.usage_view_all),
        )

    async def update_settings(
        self,
        session: AsyncSession,
        ctx: OrgContext,
        *,
        name: str | None = None,
        opt_out_training_providers: bool | None = None,
        usage_analytics_enabled: bool | None = None,
        monthly_usage_quota_nanousd: int | Unset | None = UNSET,
        monthly_usage_quota_tokens: int | Unset | None = UNSET,
    ) -> Organization:
        """Change the settings given (``UNSET`` leaves a quota as it is, ``None`` removes it), recording the
        changed values, before and after, in the audit log.

        The quotas (USD and tokens, either, both or neither) are what the usage page compares the month
        with; nothing enforces them.
        """
        org = ctx.organization
        before = _settings_snapshot(org)
        if name is not None:
            if not name.strip():
                raise BadRequest("Give the organization a name.")
            org.name = name.strip()
        if opt_out_training_providers is not None:
            org.opt_out_training_providers = opt_out_training_providers
        if usage_analytics_enabled is not None:
            org.usage_analytics_enabled = usage_analytics_enabled
        if not isinstance(monthly_usage_quota_nanousd, Unset):
            if monthly_usage_quota_nanousd is not None and not (
                0 <= monthly_usage_quota_nanousd <= MAX_QUOTA_NANOUSD
            ):
                raise BadRequest("The monthly usage quota must be between 0 and 1,000,000,000 USD.")
            org.monthly_usage_quota_nanousd = monthly_usage_quota_nanousd
        if not isinstance(monthly_usage_quota_tokens, Unset):
            # A quota of zero tokens would read as "over quota" from the first token: at least one.
            if monthly_usage_quota_tokens is not None and not (
                1 <= monthly_usage_quota_tokens <= MAX_QUOTA_TOKENS
            ):
                raise BadRequest(
                    "The monthly token quota must be a whole number of tokens "
                    f"from 1 to {MAX_QUOTA_TOKENS:,}."
                )
            org.monthly_usage_quota_tokens = monthly_usage_quota_tokens
        after = _settings_snapshot(org)
        if after != before:
            changed = [k for k in after if after[k] != before[k]]
            audit.record(
                session,
                organization_id=org.id,
                actor=ctx.actor,
                action="organization.settings_changed",
                target_type="organization",
                target_id=org.id,
                target_label=org.name,
                before={k: before[k] for k in changed},
                after={k: after[k] for k in changed},
            )
            if {"opt_out_training_providers", "usage_analytics_enabled"} & set(changed):
                invalidate_after_commit(session, org.id)  # the gateway applies it at once
        await session.flush()
        return org


organizations = OrganizationService()
