"""The usage pages: the usage report and conversations. Each calls the same service as its JSON twin."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from urllib.parse import quote_plus, urlencode

from fastapi import Depends, Query, Request

from tokenboard.accounts.auth import CurrentPrincipal
from tokenboard.catalog.service import CatalogCache
from tokenboard.kit.deps import DB
from tokenboard.kit.errors import ValidationFailed
from tokenboard.kit.routing import make_router
from tokenboard.members.roles import Permission
from tokenboard.organizations.auth import OrgContext
from tokenboard.usage.reports import (
    BREAKDOWNS,
    MODEL_ROWS_PER_PAGE,
    PERIOD_LABELS,
    UsageReport,
    reports,
    resolve_period,
)
from tokenboard.web import charts
from tokenboard.web.support import org_page, page

router = make_router()

Reader = Annotated[OrgContext, org_page(Permission.org_view)]
Text = Annotated[str | None, Query(max_length=300)]
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DIMENSION_LABELS = {
    "team": "Team",
    "workspace": "Workspace",
    "feature": "Feature",
    "tool": "Tool",
    "integration": "Integration",
}


def _catalog(request: Request) -> CatalogCache:
    cache: CatalogCache = request.app.state.catalog_cache
    return cache


def _date(value: str | None, name: str) -> date | None:
    if not value or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValidationFailed(f"The {name} date {value!r} is not a date (YYYY-MM-DD).") from exc


def _expand(value: str | None) -> tuple[date, str | None] | None:
    """``2026-01-05`` (a By Day row) or ``2026-01-05|openai/gpt-4o`` (a By Model & Day row)."""
    if not value:
        return None
    day, _, model = value.partition("|")
    parsed = _date(day, "expanded")
    return (parsed, model or None) if parsed else None


def _charts(report: UsageReport) -> dict[str, Any]:
    months = report.months
    years = sorted(report.years)
    return {
        "trend": charts.trend_chart(report.trend, title="Daily cost"),
        "heatmap": charts.weekly_heatmap(
            {(h.weekday, h.hour): h.requests for h in report.hours}, title="Weekly pattern (requests, UTC)"
        ),
        "months": charts.comparison_chart(
            [m.start.strftime("%b %Y") for m in months],
            [charts.Series("Cost", [m.cost_nanousd for m in months])],
            title="Month over month",
        ),
        "years": charts.comparison_chart(
            list(MONTH_NAMES),
            [charts.Series(str(y), report.years[y]) for y in years[-6:]],
            title="Year over year",
        ),
        "models": charts.bar_list(
            [(m.model_id, m.requests) for m in report.models], title="Model popularity (requests)"
        ),
        "users": charts.bar_list(
            [(u.email or "(no user)", u.cost_nanousd) for u in report.top_users or []],
            title="Top users (cost)",
            unit="usd",
            total=sum(report.member_costs or []) or None,
        ),
        "distribution": charts.distribution_chart(
            report.member_costs or [], title="Distribution across members"
        ),
    }


@router.get("/organizations/{org_id}/usage")
async def usage_page(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    ctx: Reader,
    period: Annotated[str | None, Query(max_length=10)] = None,
    start: Text = None,
    end: Text = None,
    mine: Annotated[bool, Query()] = False,
    page_number: Annotated[int, Query(alias="page", ge=1, le=10_000)] = 1,
    model_page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    expand: Text = None,
) -> Any:
    today = reports.today()
    error = ""
    status_code = 200
    try:
        chosen = resolve_period(period or None, _date(start, "start"), _date(end, "end"), today=today)
        expanded = _expand(expand)
    except ValidationFailed as exc:
        # The page stays usable: the default period, the reason, and the 422 status of a refused range.
        error, status_code = exc.message, 422
        chosen, expanded = resolve_period("month", None, None, today=today), None
    report = await reports.report(
        db, ctx, chosen, mine=mine, page=page_number, model_page=model_page, today=today, expand=expanded
    )
    return await page(
        request,
        "usage.html",
        db,
        principal,
        ctx=ctx,
        active="usage",
        title="Usage",
        status_code=status_code,
        r=report,
        range_error=error,
        charts=_charts(report),
        periods=PERIOD_LABELS,
        breakdown_labels=DIMENSION_LABELS,
        breakdowns=BREAKDOWNS,
        model_rows=MODEL_ROWS_PER_PAGE,
        link=_Links(ctx, report, mine=report.scope.mine and not report.scope.forced),
        start_value=(chosen.start.isoformat() if chosen.start else "") if chosen.key == "custom" else "",
        end_value=(chosen.end.isoformat() if chosen.end else "") if chosen.key == "custom" else "",
    )


class _Links:
    """``link(page=2)``: this page's URL with some parameters changed (the others kept)."""

    def __init__(self, ctx: OrgContext, report: UsageReport, *, mine: bool) -> None:
        period = report.period
        self.base = f"/organizations/{ctx.organization_id}/usage"
        self.params: dict[str, Any] = {"period": period.key}
        if period.key == "custom":
            self.params |= {"start": period.start, "end": period.end}
        if mine:
            self.params["mine"] = "true"
        self.params["page"] = report.page  # always there: an expand link appends to a query
        if report.model_page > 1:
            self.params["model_page"] = report.model_page
        self._here: str | None = None

    def __call__(self, **changes: Any) -> str:
        params = self.params | changes
        if params.get("period") != "custom":
            params.pop("start", None)
            params.pop("end", None)
        clean = {k: str(v) for k, v in params.items() if v not in (None, False, "")}
        return self.base + ("?" + urlencode(clean) if clean else "")

    def expand(self, key: str) -> str:
        """``link(expand=key)`` for each row of the day tables: this page's URL made once, the row's key
        appended, as ``urlencode`` would."""
        if self._here is None:
            self._here = self()
        return f"{self._here}&expand={quote_plus(key)}"


@router.get("/organizations/{org_id}/usage/conversations")
async def conversations_page(
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    ctx: Reader,
    mine: Annotated[bool, Query()] = False,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Any:
    limit = 50
    rows, more = await reports.conversations(db, ctx, mine=mine, limit=limit, offset=offset)
    return await page(
        request,
        "conversations.html",
        db,
        principal,
        ctx=ctx,
        active="usage",
        title="Conversations",
        rows=rows,
        more=more,
        offset=offset,
        limit=limit,
        mine=mine or not ctx.can(Permission.usage_view_all),
        forced=not ctx.can(Permission.usage_view_all),
    )


@router.get("/organizations/{org_id}/usage/conversations/{conversation_id:path}")
async def conversation_page(
    conversation_id: str,
    request: Request,
    db: DB,
    principal: CurrentPrincipal,
    ctx: Reader,
    catalog: Annotated[CatalogCache, Depends(_catalog)],
    user: Annotated[str | None, Query(max_length=64)] = None,
) -> Any:
    detail = await reports.conversation(db, ctx, conversation_id, user=user, catalog=catalog)
    return await page(
        request,
        "conversation.html",
        db,
        principal,
        ctx=ctx,
        active="usage",
        title="Conversation",
        d=detail,
    )
