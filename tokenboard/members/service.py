"""Members and invitations: roles, removal, seats, and the rule that an owner always remains."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.accounts import repository as accounts_repository
from tokenboard.accounts.service import normalize_email
from tokenboard.audit.service import Actor, audit
from tokenboard.config import Settings
from tokenboard.gateway.invalidation import forget_keys
from tokenboard.kit.db import utcnow
from tokenboard.kit.email import Mailer, OutgoingEmail
from tokenboard.kit.errors import BadRequest, Conflict, Gone, NotFound, PermissionDenied
from tokenboard.kit.jobs import after_commit
from tokenboard.kit.security import hash_token, new_token
from tokenboard.members import repository
from tokenboard.members.roles import Permission, Role, can_grant
from tokenboard.models import Invitation, Membership, Organization, Team, User
from tokenboard.organizations import repository as org_repository
from tokenboard.organizations.auth import OrgContext
from tokenboard.teams import repository as teams_repository

INVITATION_PREFIX = "tbi_"


@dataclass(frozen=True, slots=True)
class MemberRow:
    membership: Membership
    user: User
    team: Team | None


@dataclass(frozen=True, slots=True)
class NewInvitation:
    invitation: Invitation
    token: str
    link: str


@dataclass(frozen=True, slots=True)
class InvitationPreview:
    invitation: Invitation
    organization: Organization
    invited_by: User | None


def _seats_full_message(org: Organization, used: int) -> str:
    return (
        f"All {org.seat_limit} seats of {org.name} are in use ({used} of {org.seat_limit}). "
        "Add seats or remove a member first."
    )


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError as exc:
        allowed = ", ".join(r.value for r in Role)
        raise BadRequest(f"Unknown role {value!r}; choose one of {allowed}.") from exc


class MemberService:
    async def list(self, session: AsyncSession, ctx: OrgContext) -> list[MemberRow]:
        rows = await repository.list_members(session, ctx.organization_id)
        return [MemberRow(m, u, t) for m, u, t in rows]

    async def row(self, session: AsyncSession, ctx: OrgContext, member_id: uuid.UUID) -> MemberRow:
        """One member with user and team, as the member list shows it."""
        rows = await repository.list_members(session, ctx.organization_id, member_id)
        if not rows:
            raise NotFound("No such member.")
        return MemberRow(*rows[0])

    async def get(
        self, session: AsyncSession, ctx: OrgContext, member_id: uuid.UUID
    ) -> tuple[Membership, User]:
        found = await repository.get_member(session, ctx.organization_id, member_id)
        if found is None:
            raise NotFound("No such member.")
        return found

    async def change_role(
        self, session: AsyncSession, ctx: OrgContext, member_id: uuid.UUID, new_role: str
    ) -> Membership:
        """Change a member's role. Nobody grants above their own role; an owner always remains."""
        role = parse_role(new_role)
        await org_repository.lock(session, ctx.organization_id)
        membership, user = await self.get(session, ctx, member_id)
        await session.refresh(membership)
        old = Role(membership.role)
        if old == role:
            return membership
        if not can_grant(ctx.role.value, role.value):
            raise PermissionDenied(f"As {ctx.role.label} you cannot grant the {role.label} role.")
        if not can_grant(ctx.role.value, old.value):
            raise PermissionDenied(f"As {ctx.role.label} you cannot change the role of an {old.label}.")
        if (
            old == Role.owner
            and await repository.count_role(session, ctx.organization_id, Role.owner.value) <= 1
        ):
            raise Conflict("This is the last owner. Make someone else an owner first.")
        membership.role = role.value
        audit.record(
            session,
            organization_id=ctx.organization_id,
            actor=ctx.actor,
            action="member.role_changed",
            target_type="member",
            target_id=membership.id,
            target_label=user.email,
            before={"role": old.value},
            after={"role": role.value},
        )
        await session.flush()
        return membership

    async def set_team(
        self, session: AsyncSession, ctx: OrgContext, member_id: uuid.UUID, team_id: uuid.UUID | None
    ) -> Membership:
        membership, user = await self.get(session, ctx, member_id)
        if team_id is not None and await teams_repository.get(session, ctx.organization_id, team_id) is None:
            raise NotFound("No such team.")
        if membership.team_id == team_id:
            return membership
        before = {"team_id": str(membership.team_id) if membership.team_id else None}
        membership.team_id = team_id
        audit.record(
            session,
            organization_id=ctx.organization_id,
            actor=ctx.actor,
            action="member.team_changed",
            target_type="member",
            target_id=membership.id,
            target_label=user.email,
            before=before,
            after={"team_id": str(team_id) if team_id else None},
        )
        await session.flush()
        return membership

    async def remove(self, session: AsyncSession, ctx: OrgContext, member_id: uuid.UUID) -> None:
        """Remove a member (or leave, when it is the caller). Their sessions end at once."""
        await org_repository.lock(session, ctx.organization_id)
        membership, user = await self.get(session, ctx, member_id)
        await session.refresh(membership)
        leaving = membership.user_id == ctx.user.id
        if not leaving:
            if not ctx.can(Permission.members_manage):
                raise PermissionDenied(f"Your role ({ctx.role.label}) does not allow removing members.")
            if not can_grant(ctx.role.value, membership.role):
                raise PermissionDenied(
                    f"As {ctx.role.label} you cannot remove an {Role(membership.role).label}."
                )
        if (
            membership.role == Role.owner.value
            and await repository.count_role(session, ctx.organization_id, Role.owner.value) <= 1
        ):
            raise Conflict("This is the last owner. Make someone else an owner first.")
        audit.record(
            session,
            organization_id=ctx.organization_id,
            actor=ctx.actor,
            action="member.left" if leaving else "member.removed",
            target_type="member",
            target_id=membership.id,
            target_label=user.email,
            before={"role": membership.role, "user_id": str(user.id)},
        )
        await session.delete(membership)
        await accounts_repository.delete_sessions_of_user(session, user.id)
        forget_keys(session)
        await session.flush()


class InvitationService:
    async def list_pending(self, session: AsyncSession, ctx: OrgContext) -> list[Invitation]:
        return await repository.list_pending_invitations(session, ctx.organization_id, utcnow())

    async def create(
        self,
        session: AsyncSession,
        ctx: OrgContext,
        *,
        email: str,
        role: str,
        settings: Settings,
        mailer: Mailer,
    ) -> NewInvitation:
        """Invite someone by email with a role no higher than the inviter's."""
        granted = parse_role(role)
        email = normalize_email(email)
        if not can_grant(ctx.role.value, granted.value):
            raise PermissionDenied(f"As {ctx.role.label} you cannot invite someone as {granted.label}.")
        org = ctx.organization
        await org_repository.lock(session, org.id)
        if await repository.get_member_by_email(session, org.id, email) is not None:
            raise Conflict(f"{email} is already a member of {org.name}.")
        if await repository.find_open_invitation(session, org.id, email, utcnow()) is not None:
            raise Conflict(f"{email} already has an open invitation. Resend it instead.")
        used = await org_repository.member_count(session, org.id)
        if used >= org.seat_limit:
            raise Conflict(_seats_full_message(org, used))
        token = new_token(INVITATION_PREFIX)
        invitation = Invitation(
            organization_id=org.id,
            email=email,
            role=granted.value,
            token_hash=hash_token(token),
            invited_by_user_id=ctx.user.id,
            expires_at=utcnow() + timedelta(days=settings.invitation_days),
        )
        session.add(invitation)
        await session.flush()
        audit.record(
            session,
            organization_id=org.id,
            actor=ctx.actor,
            action="invitation.created",
            target_type="invitation",
            target_id=invitation.id,
            target_label=email,
            after={"email": email, "role": granted.value},
        )
        link = self._send(session, invitation, token, org, ctx.user, settings, mailer)
        return NewInvitation(invitation=invitation, token=token, link=link)

    async def resend(
        self,
        session: AsyncSession,
        ctx: OrgContext,
        invitation_id: uuid.UUID,
        *,
        settings: Settings,
        mailer: Mailer,
    ) -> NewInvitation:
        """Send a fresh link with a new expiry; the previous link stops working."""
        invitation = await self._get_open(session, ctx, invitation_id, allow_expired=True)
        if not can_grant(ctx.role.value, invitation.role):
            raise PermissionDenied(
                f"As {ctx.role.label} you cannot resend an invitation as {invitation.role}."
            )
        token = new_token(INVITATION_PREFIX)
        invitation.token_hash = hash_token(token)
        invitation.expires_at = utcnow() + timedelta(days=settings.invitation_days)
        invitation.last_sent_at = utcnow()
        invitation.send_count += 1
        audit.record(
            session,
            organization_id=ctx.organization_id,
            actor=ctx.actor,
            action="invitation.resent",
            target_type="invitation",
            target_id=invitation.id,
            target_label=invitation.email,
            after={"send_count": invitation.send_count},
        )
        await session.flush()
        link = self._send(session, invitation, token, ctx.organization, ctx.user, settings, mailer)
        return NewInvitation(invitation=invitation, token=token, link=link)

    async def revoke(self, session: AsyncSession, ctx: OrgContext, invitation_id: uuid.UUID) -> Invitation:
        invitation = await self._get_open(session, ctx, invitation_id, allow_expired=True)
        invitation.revoked_at = utcnow()
        audit.record(
            session,
            organization_id=ctx.organization_id,
            actor=ctx.actor,
            action="invitation.revoked",
            target_type="invitation",
            target_id=invitation.id,
            target_label=invitation.email,
            before={"email": invitation.email, "role": invitation.role},
        )
        await session.flush()
        return invitation

    async def preview(self, session: AsyncSession, token: str) -> InvitationPreview:
        invitation = await self._by_token(session, token)
        org = await org_repository.get(session, invitation.organization_id)
        assert org is not None
        inviter = (
            await accounts_repository.get_user(session, invitation.invited_by_user_id)
            if invitation.invited_by_user_id
            else None
        )
        return InvitationPreview(invitation=invitation, organization=org, invited_by=inviter)

    async def accept(self, session: AsyncSession, token: str, user: User, actor: Actor) -> Membership:
        """Join the organization. The link works once, before it expires, for the invited email only."""
        invitation = await self._by_token(session, token)
        org_id = invitation.organization_id
        await org_repository.lock(session, org_id)
        await session.refresh(invitation)
        self.check_usable(invitation)
        if normalize_email(user.email) != invitation.email:
            raise PermissionDenied(
                "This invitation was sent to a different email address. "
                "Log in with that address to accept it."
            )
        org = await org_repository.get(session, org_id)
        assert org is not None
        if await repository.get_member_by_user(session, org_id, user.id) is not None:
            raise Conflict(f"You are already a member of {org.name}.")
        used = await org_repository.member_count(session, org_id)
        if used >= org.seat_limit:
            raise Conflict(_seats_full_message(org, used))
        membership = Membership(organization_id=org_id, user_id=user.id, role=invitation.role)
        session.add(membership)
        invitation.accepted_at = utcnow()
        invitation.accepted_by_user_id = user.id
        user.last_organization_id = org_id
        await session.flush()
        audit.record(
            session,
            organization_id=org_id,
            actor=actor,
            action="invitation.accepted",
            target_type="invitation",
            target_id=invitation.id,
            target_label=invitation.email,
        )
        audit.record(
            session,
            organization_id=org_id,
            actor=actor,
            action="member.joined",
            target_type="member",
            target_id=membership.id,
            target_label=user.email,
            after={"role": membership.role},
        )
        return membership

    async def _by_token(self, session: AsyncSession, token: str) -> Invitation:
        invitation = await repository.get_invitation_by_hash(session, hash_token(token))
        if invitation is None:
            raise NotFound("This invitation link is not valid. Ask for a new invitation.")
        return invitation

    @staticmethod
    def check_usable(invitation: Invitation) -> None:
        if invitation.revoked_at is not None:
            raise Gone("This invitation was revoked. Ask for a new invitation.")
        if invitation.accepted_at is not None:
            raise Gone("This invitation was already used.")
        if invitation.expires_at <= utcnow():
            raise Gone("This invitation has expired. Ask for it to be resent.")

    async def _get_open(
        self, session: AsyncSession, ctx: OrgContext, invitation_id: uuid.UUID, *, allow_expired: bool
    ) -> Invitation:
        invitation = await repository.get_invitation(session, ctx.organization_id, invitation_id)
        if invitation is None:
            raise NotFound("No such invitation.")
        if invitation.revoked_at is not None:
            raise Gone("This invitation was already revoked.")
        if invitation.accepted_at is not None:
            raise Gone("This invitation was already accepted.")
        if not allow_expired and invitation.expires_at <= utcnow():
            raise Gone("This invitation has expired.")
        return invitation

    @staticmethod
    def _send(
        session: AsyncSession,
        invitation: Invitation,
        token: str,
        org: Organization,
        inviter: User,
        settings: Settings,
        mailer: Mailer,
    ) -> str:
        link = f"{settings.base_url.rstrip('/')}/invitations/accept?token={quote(token)}"
        message = OutgoingEmail(
            to=invitation.email,
            subject=f"{inviter.name} invited you to {org.name} on Tokenboard",
            body=(
                f"{inviter.name} ({inviter.email}) invited you to join {org.name} on Tokenboard as "
                f"{Role(invitation.role).label}.\n\nAccept the invitation: {link}\n\n"
                f"The link expires on {invitation.expires_at:%Y-%m-%d %H:%M} UTC."
            ),
        )

        async def send() -> None:
            await mailer.send(message)

        after_commit(session, send)
        return link


members = MemberService()
invitations = InvitationService()
