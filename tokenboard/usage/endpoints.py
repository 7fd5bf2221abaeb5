"""REST API for usage recorded elsewhere: a batch of events, idempotent on each event's id."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tokenboard.catalog.service import CatalogCache
from tokenboard.kit.deps import DB
from tokenboard.kit.routing import make_router
from tokenboard.members.roles import Permission
from tokenboard.organizations.auth import OrgContext, require_org
from tokenboard.usage import schemas
from tokenboard.usage.service import usage

router = make_router(prefix="/api/v1/organizations/{org_id}/usage", tags=["usage"])

Ingester = Annotated[OrgContext, Depends(require_org(Permission.usage_ingest))]


def _catalog(request: Request) -> CatalogCache:
    cache: CatalogCache = request.app.state.catalog_cache
    return cache


@router.post("/events", response_model=schemas.IngestResult)
async def ingest_events(
    body: schemas.UsageEventBatch,
    ctx: Ingester,
    db: DB,
    catalog: Annotated[CatalogCache, Depends(_catalog)],
) -> object:
    """Record usage made elsewhere (priced from the catalog when no cost is given); never debits credits."""
    return await usage.ingest(
        db, ctx.organization_id, body.events, catalog=catalog, actor=ctx.actor, source="api"
    )
