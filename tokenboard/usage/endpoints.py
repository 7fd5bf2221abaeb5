"""REST API for usage: recording usage made elsewhere, and the usage page's JSON twins (reports)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine
from datetime import date
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from starlette.responses import Response

from tokenboard.catalog.service import CatalogCache
from tokenboard.kit.deps import DB
from tokenboard.kit.live import LiveHub
from tokenboard.kit.routing import OnePassJsonRoute, make_router
from tokenboard.members.roles import Permission
from tokenboard.organizations.auth import OrgContext, require_org
from tokenboard.usage import schemas
from tokenboard.usage.reports import reports, resolve_period
from tokenboard.usage.service import usage

router = make_router(prefix="/api/v1/organizations/{org_id}/usage", tags=["usage"])
# The ingest route's path, for its larger body limit (``max_ingest_body_bytes``): a full batch of 5,000
# events does not fit the default 1 MiB.
INGEST_PATH = re.compile(re.escape(router.prefix).replace(re.escape("{org_id}"), "[^/]+") + "/events")

Ingester = Annotated[OrgContext, Depends(require_org(Permission.usage_ingest))]
# Everyone in the org reads usage; what they see is scoped by the report (members: only their own).
Reader = Annotated[OrgContext, Depends(require_org(Permission.org_view))]
Mine = Annotated[bool, Query(description="Only my usage (always on for roles without usage.view_all).")]


def _catalog(request: Request) -> CatalogCache:
    cache: CatalogCache = request.app.state.catalog_cache
    return cache


def _live(request: Request) -> LiveHub:
    hub: LiveHub = request.app.state.live_hub
    return hub


class _OneBatchAtATime(OnePassJsonRoute):
    """On SQLite, one ingest batch at a time per process, from before its body is read to after its commit.

    SQLite writes one batch at a time (kit/writer_gate.py). A second batch parsed and checked in the same
    process meanwhile would only take the interpreter from the one being written, which then holds the
    database's writer slot longer; checked in another process it overlaps with the writing instead (decision
    0003). A batch waiting for its turn has done nothing yet: it has not been parsed, has not checked its
    caller (which may record a token's use, a write) and holds no database connection.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def in_turn(request: Request) -> Response:
            slot: asyncio.Lock | None = request.app.state.ingest_slot
            if slot is None:
                return await handler(request)
            async with slot:
                return await handler(request)

        return in_turn


async def ingest_events(
    body: schemas.UsageEventBatch,
    request: Request,
    ctx: Ingester,
    db: DB,
    catalog: Annotated[CatalogCache, Depends(_catalog)],
) -> object:
    """Record usage made elsewhere (priced from the catalog when no cost is given); never debits credits."""
    return await usage.ingest(
        db,
        ctx.organization_id,
        body.events,
        catalog=catalog,
        actor=ctx.actor,
        source="api",
        live=_live(request),
    )


# One batch at a time on SQLite; its 5,000 events parsed and validated in one pass (kit/routing.py).
router.add_api_route(
    "/events",
    ingest_events,
    methods=["POST"],
    response_model=schemas.IngestResult,
    route_class_override=_OneBatchAtATime,
)


@router.get("", response_model=schemas.UsageReportOut)
async def usage_report(
    ctx: Reader,
    db: DB,
    period: Annotated[
        str | None, Query(max_length=10, description="week, month, year, all or custom.")
    ] = None,
    start: Annotated[date | None, Query(description="Custom range: first UTC day.")] = None,
    end: Annotated[date | None, Query(description="Custom range: last UTC day (at most 10 years).")] = None,
    mine: Mine = False,
    page: Annotated[int, Query(ge=1, le=10_000, description="Page of the By Day table.")] = 1,
    model_page: Annotated[
        int, Query(ge=1, le=100_000, description="Page of the By Model & Day table's rows.")
    ] = 1,
) -> object:
    """The usage page: cards, the By Day and By Model & Day tables, charts, models, breakdowns, quota."""
    today = reports.today()
    chosen = resolve_period(period, start, end, today=today)
    report = await reports.report(db, ctx, chosen, mine=mine, page=page, model_page=model_page, today=today)
    return schemas.UsageReportOut.of(report)


@router.get("/days/{day}/users", response_model=list[schemas.UserLineOut])
async def usage_day_users(
    day: date,
    ctx: Reader,
    db: DB,
    model: Annotated[str | None, Query(max_length=200, description="A By Model & Day row's model.")] = None,
    mine: Mine = False,
) -> object:
    """The per-user lines behind one By Day row, or one By Model & Day row with ``model``."""
    return [
        schemas.UserLineOut.of(line) for line in await reports.lines(db, ctx, day, model_id=model, mine=mine)
    ]


# A conversation is one user's: the detail's ``user`` says whose when several users sent the same id.
ConversationUser = Annotated[
    str | None,
    Query(
        max_length=64,
        description="Whose conversation: a user id, or none for the requests recorded without a user. "
        "Needed only when several users sent the same conversation id (members: always their own).",
    ),
]


@router.get("/conversations", response_model=schemas.ConversationPage)
async def usage_conversations(
    ctx: Reader,
    db: DB,
    mine: Mine = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> object:
    """Conversations, most recently active first: one item per user of a conversation id (members: their
    own)."""
    rows, more = await reports.conversations(db, ctx, mine=mine, limit=limit, offset=offset)
    return schemas.ConversationPage(
        items=[schemas.ConversationOut.of(c) for c in rows], offset=offset, limit=limit, has_more=more
    )


@router.get("/conversations/{conversation_id:path}", response_model=schemas.ConversationDetailOut)
async def usage_conversation(
    conversation_id: str,
    ctx: Reader,
    db: DB,
    catalog: Annotated[CatalogCache, Depends(_catalog)],
    user: ConversationUser = None,
) -> object:
    """One user's conversation: their messages with the id, tokens, processing time, the cost line by line,
    file impact."""
    detail = await reports.conversation(db, ctx, conversation_id, user=user, catalog=catalog)
    return schemas.ConversationDetailOut.of(detail)
