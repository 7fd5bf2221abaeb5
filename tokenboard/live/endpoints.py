"""Live updates for an organization's open pages, as server-sent events (``text/event-stream``).

Any member may subscribe and hears only about their own organization. Members who may not see everyone's
usage get only the time of each change (their page then re-reads its own view), never org-wide amounts.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from starlette.responses import Response

from tokenboard.kit.live import LiveHub, LiveMessage, Payload
from tokenboard.kit.routing import make_router
from tokenboard.kit.sse import EventStream
from tokenboard.members.roles import Permission
from tokenboard.organizations.auth import OrgContext, require_org

router = make_router(prefix="/api/v1/organizations/{org_id}", tags=["live updates"])

Member = Annotated[OrgContext, Depends(require_org(Permission.org_view))]


def _only_the_time(message: LiveMessage) -> Payload:
    return {"at": message.data.get("at")}


@router.get(
    "/usage/live",
    response_class=Response,
    # A stream, not a JSON document: left out of the OpenAPI schema (and so out of Schemathesis' reach).
    include_in_schema=False,
)
async def usage_live(
    ctx: Member,
    request: Request,
    lifetime: Annotated[float, Query(ge=0, le=3600, description="Seconds before the server ends it.")] = 300,
) -> Response:
    """Stream ``event: usage`` messages for the organization, with a keep-alive comment every 15 s."""
    hub: LiveHub = request.app.state.live_hub
    shape = (lambda message: message.data) if ctx.can(Permission.usage_view_all) else _only_the_time
    return EventStream(hub, ctx.organization_id, shape=shape, lifetime=lifetime)
