"""REST API for members and invitations."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query, status

from tokenboard.accounts.auth import CurrentPrincipal
from tokenboard.audit.service import Actor
from tokenboard.kit.deps import DB, AppMailer, AppSettings, Client
from tokenboard.kit.routing import make_router
from tokenboard.members import schemas
from tokenboard.members.roles import Permission, Role
from tokenboard.members.service import MemberRow, NewInvitation, invitations, members
from tokenboard.organizations.auth import OrgContext, require_org

router = make_router(prefix="/api/v1", tags=["members"])

Viewer = Annotated[OrgContext, Depends(require_org(Permission.members_view))]
Manager = Annotated[OrgContext, Depends(require_org(Permission.members_manage))]
Inviter = Annotated[OrgContext, Depends(require_org(Permission.invitations_manage))]
Belongs = Annotated[OrgContext, Depends(require_org(Permission.org_view))]


def member_schema(row: MemberRow) -> schemas.Member:
    m, u, t = row.membership, row.user, row.team
    return schemas.Member(
        id=m.id,
        user_id=u.id,
        name=u.name,
        email=u.email,
        role=Role(m.role),
        team_id=m.team_id,
        team_name=t.name if t else None,
        joined_at=m.joined_at,
        last_active_at=m.last_active_at,
    )


def sent_schema(new: NewInvitation) -> schemas.InvitationSent:
    base = schemas.Invitation.model_validate(new.invitation).model_dump()
    return schemas.InvitationSent(**base, link=new.link)


@router.get("/organizations/{org_id}/members", response_model=list[schemas.Member])
async def list_members(ctx: Viewer, db: DB) -> object:
    return [member_schema(r) for r in await members.list(db, ctx)]


@router.get("/organizations/{org_id}/members/{member_id}", response_model=schemas.Member)
async def get_member(member_id: uuid.UUID, ctx: Viewer, db: DB) -> object:
    return member_schema(await members.row(db, ctx, member_id))


@router.patch("/organizations/{org_id}/members/{member_id}", response_model=schemas.Member)
async def update_member(member_id: uuid.UUID, body: schemas.MemberUpdate, ctx: Manager, db: DB) -> object:
    fields = body.model_dump(exclude_unset=True)
    if "team_id" in fields:
        await members.set_team(db, ctx, member_id, body.team_id)
    if body.role is not None:
        await members.change_role(db, ctx, member_id, body.role.value)
    return member_schema(await members.row(db, ctx, member_id))  # 404 for an unknown member, also on {}


@router.delete("/organizations/{org_id}/members/{member_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_member(member_id: uuid.UUID, ctx: Belongs, db: DB) -> None:
    await members.remove(db, ctx, member_id)


@router.get("/organizations/{org_id}/invitations", response_model=list[schemas.Invitation])
async def list_invitations(ctx: Inviter, db: DB) -> object:
    return await invitations.list_pending(db, ctx)


@router.post(
    "/organizations/{org_id}/invitations",
    response_model=schemas.InvitationSent,
    status_code=status.HTTP_201_CREATED,
)
async def create_invitation(
    body: schemas.InvitationCreate, ctx: Inviter, db: DB, settings: AppSettings, mailer: AppMailer
) -> object:
    new = await invitations.create(
        db, ctx, email=body.email, role=body.role.value, settings=settings, mailer=mailer
    )
    return sent_schema(new)


@router.post(
    "/organizations/{org_id}/invitations/{invitation_id}/resend", response_model=schemas.InvitationSent
)
async def resend_invitation(
    invitation_id: uuid.UUID, ctx: Inviter, db: DB, settings: AppSettings, mailer: AppMailer
) -> object:
    return sent_schema(await invitations.resend(db, ctx, invitation_id, settings=settings, mailer=mailer))


@router.delete("/organizations/{org_id}/invitations/{invitation_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_invitation(invitation_id: uuid.UUID, ctx: Inviter, db: DB) -> None:
    await invitations.revoke(db, ctx, invitation_id)


@router.get("/invitations/preview", response_model=schemas.InvitationPreview)
async def preview_invitation(db: DB, token: Annotated[str, Query(min_length=1, max_length=200)]) -> object:
    found = await invitations.preview(db, token)
    inv = found.invitation
    return schemas.InvitationPreview(
        organization_id=found.organization.id,
        organization_name=found.organization.name,
        email=inv.email,
        role=Role(inv.role),
        invited_by=found.invited_by.name if found.invited_by else None,
        expires_at=inv.expires_at,
    )


@router.post("/invitations/accept", response_model=schemas.Joined)
async def accept_invitation(
    body: schemas.InvitationAccept, principal: CurrentPrincipal, db: DB, client: Client
) -> object:
    membership = await invitations.accept(db, body.token, principal.user, Actor.of(principal.user, client))
    return schemas.Joined(
        organization_id=membership.organization_id, member_id=membership.id, role=Role(membership.role)
    )
