"""REST API for organizations: list, create, overview, settings, seats and the activity feed."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, status

from tokenboard.accounts.auth import CurrentPrincipal
from tokenboard.audit.service import Actor, audit
from tokenboard.billing.subscriptions import subscriptions
from tokenboard.kit.deps import DB, AppSettings, Client
from tokenboard.kit.routing import make_router
from tokenboard.members.roles import Permission
from tokenboard.organizations import schemas
from tokenboard.organizations.auth import OrgContext, require_org
from tokenboard.organizations.service import Overview, organizations
from tokenboard.usage.schemas import MonthCard

router = make_router(prefix="/api/v1", tags=["organizations"])


def overview_schema(view: Overview, ctx: OrgContext) -> schemas.Overview:
    org = view.organization
    activity = None
    if view.recent_activity is not None:
        activity = schemas.AuditEventPage(
            items=[schemas.AuditEvent.model_validate(e) for e in view.recent_activity],
            next_cursor=view.activity_cursor,
        )
    return schemas.Overview(
        organization=schemas.OrganizationCard(
            id=org.id,
            name=org.name,
            owner_name=view.owner.name if view.owner else None,
            owner_email=view.owner.email if view.owner else None,
            created_at=org.created_at,
            team_size=view.team_size,
        ),
        workspaces=schemas.WorkspacesCard(
            total=view.workspaces_total,
            active=view.workspaces_active,
            suspended=view.workspaces_suspended,
            others=view.workspaces_other,
        ),
        members=schemas.MembersCard(
            seats_used=view.team_size,
            seat_limit=view.seat_limit,
            seats_label=f"{view.team_size} of {view.seat_limit}",
            roles=view.role_counts,
        ),
        recent_activity=activity,
        announcements=[schemas.Announcement.model_validate(a) for a in view.announcements],
        your_role=ctx.role.value,
        current_billing=schemas.CurrentBilling(
            **MonthCard.of(view.current_billing).model_dump(), only_mine=view.billing_only_mine
        ),
    )


@router.get("/organizations", response_model=list[schemas.OrganizationSummary])
async def list_organizations(principal: CurrentPrincipal, db: DB) -> object:
    rows = await organizations.list_for_user(db, principal.user)
    return [schemas.OrganizationSummary(id=o.id, name=o.name, role=m.role) for o, m in rows]


@router.post("/organizations", response_model=schemas.Organization, status_code=status.HTTP_201_CREATED)
async def create_organization(
    body: schemas.OrganizationCreate,
    principal: CurrentPrincipal,
    db: DB,
    settings: AppSettings,
    client: Client,
) -> object:
    return await organizations.create(
        db,
        name=body.name,
        owner=principal.user,
        actor=Actor.of(principal.user, client),
        seat_limit=settings.default_seats,
    )


@router.get("/organizations/{org_id}", response_model=schemas.Organization)
async def get_organization(ctx: Annotated[OrgContext, Depends(require_org(Permission.org_view))]) -> object:
    return ctx.organization


@router.get("/organizations/{org_id}/overview", response_model=schemas.Overview)
async def get_overview(
    ctx: Annotated[OrgContext, Depends(require_org(Permission.org_view))], db: DB
) -> object:
    return overview_schema(await organizations.overview(db, ctx), ctx)


@router.get("/organizations/{org_id}/settings", response_model=schemas.OrganizationSettings)
async def get_settings(ctx: Annotated[OrgContext, Depends(require_org(Permission.org_view))]) -> object:
    return ctx.organization


@router.patch("/organizations/{org_id}/settings", response_model=schemas.OrganizationSettings)
async def update_settings(
    body: schemas.OrganizationSettingsUpdate,
    ctx: Annotated[OrgContext, Depends(require_org(Permission.org_manage))],
    db: DB,
) -> object:
    return await organizations.update_settings(db, ctx, **body.model_dump(exclude_unset=True))


@router.put(
    "/organizations/{org_id}/seats",
    response_model=schemas.Organization,
    description="Seats are part of the subscription: this is `PUT .../subscription/seats` (additions "
    "invoiced pro rata at once, removals at the next period), answering with the organization.",
)
async def set_seats(
    body: schemas.SeatsUpdate,
    ctx: Annotated[OrgContext, Depends(require_org(Permission.seats_manage))],
    db: DB,
    settings: AppSettings,
) -> object:
    await subscriptions.change_seats(
        db, ctx.organization, body.seat_limit, settings=settings, actor=ctx.actor
    )
    return ctx.organization


@router.get("/organizations/{org_id}/activity", response_model=schemas.AuditEventPage)
async def list_activity(
    ctx: Annotated[OrgContext, Depends(require_org(Permission.audit_view))],
    db: DB,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> object:
    events, next_cursor = await audit.list(db, ctx.organization_id, limit=limit, cursor=cursor)
    return schemas.AuditEventPage(
        items=[schemas.AuditEvent.model_validate(e) for e in events], next_cursor=next_cursor
    )
