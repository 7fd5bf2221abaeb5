"""The usage pages' reads: the usage report, per-user lines, conversations, and the month's billing card.

Everything here reads the rollups through :mod:`tokenboard.usage.repository`; only a conversation's detail
reads raw events (drill-down to one conversation, by the organization + conversation index).

Who sees what: owners and admins (``usage.view_all``) see everyone and may narrow to their own usage ("only
my usage"); every other member always sees only their own, whatever they ask for. A conversation is one
user's requests with a conversation id: users who send the same id each have their own, and a member never
sees another's part of it.
"""

from __future__ import annotations

import asyncio
import calendar
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.catalog.pricing import CostLine, TokenUsage, compute_cost
from tokenboard.catalog.service import CatalogCache
from tokenboard.kit.errors import NotFound, ValidationFailed
from tokenboard.kit.fanout import ReadFanout
from tokenboard.members.roles import Permission
from tokenboard.models import UsageEvent
from tokenboard.models.usage_rollup_columns import NO_USER
from tokenboard.organizations.auth import OrgContext
from tokenboard.usage import repository
from tokenboard.usage.repository import (
    USER_NONE,
    ConversationRow,
    DayRow,
    DimensionRow,
    HourCell,
    ModelDayRow,
    ModelStats,
    PeriodRow,
    ProviderShare,
    Summary,
    UserLine,
)

PERIODS = ("week", "month", "year", "all", "custom")
PERIOD_DAYS = {"week": 7, "month": 30, "year": 365}
PERIOD_LABELS = {
    "week": "Past week",
    "month": "Past month",
    "year": "Past year",
    "all": "All",
    "custom": "Custom",
}
MAX_RANGE_DAYS = 3653  # ten years: a custom range longer than that is a typing error
DAYS_PER_PAGE = 14  # the By Day table shows this many days per page
MODEL_ROWS_PER_PAGE = 50  # the By Model & Day table shows this many rows (day x model) per page
TOP_USERS = 10
MONTHS_COMPARED = 12
MAX_MESSAGES = 500  # a conversation's detail lists at most this many messages
BREAKDOWNS = ("team", "workspace", "feature", "tool", "integration")


def half_even_div(numerator: int, denominator: int) -> int:
    """Integer division rounded half-even: averages of money stay integers, never floats."""
    if denominator == 0:
        return 0
    quotient, remainder = divmod(numerator, denominator)
    if 2 * remainder > denominator or (2 * remainder == denominator and quotient % 2):
        quotient += 1
    return quotient


# --- Period and scope ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """UTC days, both ends included; ``None`` leaves that side open ("all")."""

    key: str
    start: date | None
    end: date | None

    @property
    def label(self) -> str:
        if self.key == "custom" and self.start and self.end:
            return f"{self.start.isoformat()} to {self.end.isoformat()}"
        return PERIOD_LABELS[self.key]


def resolve_period(key: str | None, start: date | None, end: date | None, *, today: date) -> Period:
    """The period asked for: a named one, or a custom range (start and end both given, at most 10 years)."""
    if key is None:
        key = "custom" if start is not None or end is not None else "month"
    if key not in PERIODS:
        raise ValidationFailed(f"Unknown period {key!r}; one of {', '.join(PERIODS)}.")
    if key == "custom":
        if start is None or end is None:
            raise ValidationFailed("A custom range needs both a start and an end date.")
        if end < start:
            raise ValidationFailed(f"The end date {end.isoformat()} is before the start {start.isoformat()}.")
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise ValidationFailed("A custom range may span at most 10 years.")
        return Period("custom", start, end)
    if key == "all":
        return Period("all", None, None)
    return Period(key, today - timedelta(days=PERIOD_DAYS[key] - 1), today)


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose usage a view shows: everyone (``user_id`` None) or one user."""

    user_id: uuid.UUID | None
    can_view_all: bool

    @property
    def mine(self) -> bool:
        return self.user_id is not None

    @property
    def forced(self) -> bool:
        """Only their own usage, whatever they ask: members without ``usage.view_all``."""
        return not self.can_view_all


def scope_for(ctx: OrgContext, *, mine: bool) -> Scope:
    can_view_all = ctx.can(Permission.usage_view_all)
    return Scope(user_id=ctx.user.id if mine or not can_view_all else None, can_view_all=can_view_all)


# --- The month card (usage page and overview) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MonthView:
    """This calendar month (UTC) so far, against last month.

    ``projection`` is linear: the daily average so far (month to date / days elapsed, today included)
    times the days of the month, rounded half-even. ``change`` compares the month to date with last month
    up to the same day of the month (its last day when it is shorter). The tokens are the usage page's
    (input with cached reads and cache writes, output with reasoning), averaged and projected by the same
    rule as the cost.
    """

    month_start: date
    today: date
    days_elapsed: int
    days_in_month: int
    cost_nanousd: int
    requests: int
    daily_average_nanousd: int
    projection_nanousd: int
    last_month_to_date_nanousd: int
    last_month_total_nanousd: int
    quota_nanousd: int | None  # the org's monthly quota; None when unset or not shown to this scope
    input_tokens: int
    output_tokens: int
    daily_average_tokens: int
    projection_tokens: int
    quota_tokens: int | None  # the org's monthly token quota; None when unset or not shown to this scope

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def change(self) -> float | None:
        """Relative change against last month to the same day; ``None`` when last month had nothing."""
        before = self.last_month_to_date_nanousd
        return (self.cost_nanousd - before) / before if before else None

    @property
    def direction(self) -> str:
        if self.cost_nanousd == self.last_month_to_date_nanousd:
            return "flat"
        return "up" if self.cost_nanousd > self.last_month_to_date_nanousd else "down"

    @property
    def quota_share(self) -> float | None:
        if self.quota_nanousd is None:
            return None
        return self.cost_nanousd / self.quota_nanousd if self.quota_nanousd else None

    @property
    def quota_tokens_share(self) -> float | None:
        """Tokens this month / the token quota (above 1 when over it)."""
        return self.tokens / self.quota_tokens if self.quota_tokens else None


def _month_before(day: date) -> date:
    return (day.replace(day=1) - timedelta(days=1)).replace(day=1)


async def month_view(
    session: AsyncSession,
    ctx: OrgContext,
    scope: Scope,
    *,
    today: date,
    series: Sequence[DayRow] | None = None,
) -> MonthView:
    """The month card; ``series`` (every day of the scope, as :func:`repository.day_series` reads them)
    saves the read when the caller has it already."""
    month_start = today.replace(day=1)
    last_start = _month_before(today)
    last_days = calendar.monthrange(last_start.year, last_start.month)[1]
    same_day = last_start.replace(day=min(today.day, last_days))
    if series is None:
        rows: Sequence[DayRow] = await repository.by_day(
            session, ctx.organization_id, last_start, today, user_id=scope.user_id
        )
    else:
        rows = [r for r in series if last_start <= r.day <= today]
    this = [r for r in rows if r.day >= month_start]
    cost = sum(r.cost_nanousd for r in this)
    days_in_month = calendar.monthrange(today.year, today.month)[1]
    tokens_in = sum(r.input_tokens for r in this)
    tokens_out = sum(r.output_tokens for r in this)
    # The organization's quotas are compared with everyone's usage: not with one user's.
    quota = ctx.organization.monthly_usage_quota_nanousd if not scope.mine else None
    quota_tokens = ctx.organization.monthly_usage_quota_tokens if not scope.mine else None
    return MonthView(
        month_start=month_start,
        today=today,
        days_elapsed=today.day,
        days_in_month=days_in_month,
        cost_nanousd=cost,
        requests=sum(r.requests for r in this),
        daily_average_nanousd=half_even_div(cost, today.day),
        projection_nanousd=half_even_div(cost * days_in_month, today.day),
        last_month_to_date_nanousd=sum(
            r.cost_nanousd for r in rows if r.day < month_start and r.day <= same_day
        ),
        last_month_total_nanousd=sum(r.cost_nanousd for r in rows if r.day < month_start),
        quota_nanousd=quota,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        daily_average_tokens=half_even_div(tokens_in + tokens_out, today.day),
        projection_tokens=half_even_div((tokens_in + tokens_out) * days_in_month, today.day),
        quota_tokens=quota_tokens,
    )


# --- The usage report ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Usage per value of one dimension, with the value's name (teams and workspaces)."""

    dimension: str
    rows: list[tuple[str, DimensionRow]]  # (label, row)


@dataclass
class UsageReport:
    period: Period
    scope: Scope
    today: date
    summary: Summary
    days: list[DayRow]  # this page, newest first
    days_total: int
    page: int
    pages: int
    model_days: list[ModelDayRow]  # this page of the By Model & Day table, newest day first
    model_page: int
    model_more: bool  # older rows on a next page
    trend: list[tuple[date, int]]  # cost per day over the period, oldest first, days without usage at 0
    hours: list[HourCell]
    months: list[PeriodRow]  # the last 12 calendar months (oldest first), zeros included
    years: dict[int, list[int]]  # cost per month (Jan..Dec) of every year with usage
    models: list[ModelStats]
    providers: list[ProviderShare]
    breakdowns: list[Breakdown]
    month: MonthView
    top_users: list[UserLine] | None  # None: not shown to this scope
    member_costs: list[int] | None
    expanded: tuple[date, str | None] | None = None
    expanded_lines: list[UserLine] = field(default_factory=list)


def _zero_filled(rows: Sequence[DayRow], start: date | None, end: date) -> list[tuple[date, int]]:
    by_day = {r.day: r.cost_nanousd for r in rows}
    if not by_day:
        return []
    first = start or min(by_day)
    last = max(end, max(by_day))
    return [
        (first + timedelta(days=i), by_day.get(first + timedelta(days=i), 0))
        for i in range((last - first).days + 1)
    ]


def _last_months(rows: Sequence[PeriodRow], today: date) -> list[PeriodRow]:
    found = {r.start: r for r in rows}
    months = [today.replace(day=1)]
    while len(months) < MONTHS_COMPARED:
        months.append(_month_before(months[-1]))
    return [
        found.get(m, PeriodRow(requests=0, cost_nanousd=0, input_tokens=0, output_tokens=0, start=m))
        for m in reversed(months)
    ]


def _providers(models: Sequence[ModelStats]) -> list[ProviderShare]:
    """The provider mix, from the model rows already read (the same sums as ``repository.provider_mix``)."""
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for m in models:
        for i, value in enumerate((m.requests, m.cost_nanousd, m.input_tokens, m.output_tokens)):
            sums[m.provider_id][i] += value
    total = sum(v[1] for v in sums.values())
    rows = [
        ProviderShare(
            requests=v[0],
            cost_nanousd=v[1],
            input_tokens=v[2],
            output_tokens=v[3],
            provider_id=k,
            cost_share=v[1] / total if total else 0.0,
        )
        for k, v in sums.items()
    ]
    rows.sort(key=lambda r: (-r.cost_nanousd, r.provider_id))
    return rows


class UsageReports:
    """The usage page and its JSON twin, the expansions, conversations and the overview's billing card."""

    @staticmethod
    def today() -> date:
        """Periods and months are UTC days."""
        return datetime.now(UTC).date()

    async def report(
        self,
        session: AsyncSession,
        ctx: OrgContext,
        period: Period,
        *,
        mine: bool = False,
        page: int = 1,
        model_page: int = 1,
        today: date | None = None,
        expand: tuple[date, str | None] | None = None,
    ) -> UsageReport:
        """Every card, table and chart of the usage page for ``period``, seen as ``ctx`` may see it.

        Its reads are independent of one another: they run side by side (:class:`ReadFanout`).
        """
        today = today or datetime.now(UTC).date()
        scope = scope_for(ctx, mine=mine)
        org_id, user_id = ctx.organization_id, scope.user_id
        start, end = period.start, period.end
        model_page = max(1, model_page)
        fanout = ReadFanout(session)

        async def top(s: AsyncSession) -> tuple[list[UserLine], list[int]] | None:
            if scope.mine:
                return None
            return await repository.top_users(s, org_id, start, end, top=TOP_USERS)

        async def lines(s: AsyncSession) -> list[UserLine]:
            if expand is None:
                return []
            return await self.lines(s, ctx, expand[0], model_id=expand[1], mine=mine)

        async with asyncio.TaskGroup() as reads:  # a failed read cancels the others
            # Every day of the scope in one read: summary, day table, trend, months, years and the month card.
            series_read = reads.create_task(
                fanout.run(lambda s: repository.day_series(s, org_id, user_id=user_id))
            )
            active_read = reads.create_task(
                fanout.run(lambda s: repository.active_users(s, org_id, today, user_id=user_id))
            )
            # The By Model & Day table pages by rows on its own: at 40 models, 14 days would be 560 rows.
            model_days_read = reads.create_task(
                fanout.run(
                    lambda s: repository.by_model_day(
                        s,
                        org_id,
                        start,
                        end,
                        user_id=user_id,
                        offset=(model_page - 1) * MODEL_ROWS_PER_PAGE,
                        limit=MODEL_ROWS_PER_PAGE + 1,  # one more tells whether there is a next page
                    )
                )
            )
            model_sums_read = reads.create_task(
                fanout.run(lambda s: repository.model_sums(s, org_id, start, end, user_id=user_id))
            )
            latency_read = reads.create_task(
                fanout.run(lambda s: repository.model_latency(s, org_id, start, end))
            )
            names_read = reads.create_task(fanout.run(lambda s: repository.dimension_names(s, org_id)))
            found_read = reads.create_task(
                fanout.run(lambda s: repository.dimension_breakdowns(s, org_id, start, end, user_id=user_id))
            )
            hours_read = reads.create_task(
                fanout.run(lambda s: repository.hourly_pattern(s, org_id, start, end, user_id=user_id))
            )
            top_read = reads.create_task(fanout.run(top))
            lines_read = reads.create_task(fanout.run(lines))
        series, model_days = series_read.result(), model_days_read.result()
        models = repository.model_stats(model_sums_read.result(), latency_read.result())
        names, found, top_found = names_read.result(), found_read.result(), top_read.result()
        active, hours, expanded_lines = active_read.result(), hours_read.result(), lines_read.result()
        in_period = repository.in_range(series, start, end)
        all_days: list[DayRow] = list(reversed(in_period))  # newest first
        pages = max(1, -(-len(all_days) // DAYS_PER_PAGE))
        page = min(max(1, page), pages)
        model_more = len(model_days) > MODEL_ROWS_PER_PAGE
        del model_days[MODEL_ROWS_PER_PAGE:]
        all_months = repository.periods_of(series, "month")
        years: dict[int, list[int]] = {}
        for row in all_months:
            years.setdefault(row.start.year, [0] * 12)[row.start.month - 1] = row.cost_nanousd
        breakdowns = []
        for dimension in BREAKDOWNS:
            labels = names.get(dimension, {})
            breakdowns.append(
                Breakdown(dimension, [(labels.get(r.value, r.value), r) for r in found[dimension]])
            )
        top_users, member_costs = top_found if top_found is not None else (None, None)
        report = UsageReport(
            period=period,
            scope=scope,
            today=today,
            summary=repository.summary_of(in_period, active),
            days=all_days[(page - 1) * DAYS_PER_PAGE : page * DAYS_PER_PAGE],
            days_total=len(all_days),
            page=page,
            pages=pages,
            model_days=model_days,
            model_page=model_page,
            model_more=model_more,
            trend=_zero_filled(all_days, start, end or today),
            hours=hours,
            months=_last_months(all_months, today),
            years=years,
            models=models,
            providers=_providers(models),
            breakdowns=breakdowns,
            month=await month_view(session, ctx, scope, today=today, series=series),
            top_users=top_users,
            member_costs=member_costs,
        )
        if expand is not None:
            report.expanded = expand
            report.expanded_lines = expanded_lines
        return report

    async def lines(
        self,
        session: AsyncSession,
        ctx: OrgContext,
        day: date,
        *,
        model_id: str | None = None,
        mine: bool = False,
    ) -> list[UserLine]:
        """The per-user lines behind one By Day row (or one By Model & Day row with ``model_id``)."""
        user_id = scope_for(ctx, mine=mine).user_id
        if model_id is None:
            return await repository.by_day_users(session, ctx.organization_id, day, user_id=user_id)
        return await repository.by_model_day_users(
            session, ctx.organization_id, day, model_id, user_id=user_id
        )

    async def current_billing(
        self, session: AsyncSession, ctx: OrgContext, *, today: date | None = None
    ) -> MonthView:
        """The overview's card: the organization's month (a member's own month) against last month."""
        today = today or datetime.now(UTC).date()
        return await month_view(session, ctx, scope_for(ctx, mine=False), today=today)

    # --- Conversations --------------------------------------------------------------------------------

    async def conversations(
        self, session: AsyncSession, ctx: OrgContext, *, mine: bool = False, limit: int = 50, offset: int = 0
    ) -> tuple[list[ConversationRow], bool]:
        """Conversations, most recently active first, and whether more follow."""
        user_id = scope_for(ctx, mine=mine).user_id
        rows = await repository.conversations(
            session, ctx.organization_id, user_id=user_id, limit=limit + 1, offset=offset
        )
        return rows[:limit], len(rows) > limit

    async def conversation(
        self,
        session: AsyncSession,
        ctx: OrgContext,
        conversation_id: str,
        *,
        user: str | None = None,
        catalog: CatalogCache,
    ) -> ConversationDetail:
        """One user's conversation: their messages with the conversation id, cost lines and file impact.

        ``user`` (a user id, or ``none`` for the requests recorded without a user) says whose, when several
        users sent the same conversation id. Without it, members get their own and owners and admins the
        id's only user's; when several users share the id that is a 404 saying so (with their ``user``
        values). Members never see anyone else's: another user's conversation is a 404 like an unknown one.
        """
        scope = scope_for(ctx, mine=False)
        wanted = conversation_user(user)
        if scope.user_id is not None:  # members: their own row, whatever they ask for
            if wanted is not None and wanted != scope.user_id:
                raise NotFound("No such conversation.")
            wanted = scope.user_id
        rows = await repository.conversation_rows(
            session, ctx.organization_id, conversation_id, user_id=wanted
        )
        if not rows:
            raise NotFound("No such conversation.")
        if len(rows) > 1:
            raise NotFound(
                f"{len(rows)} users sent conversation id {conversation_id!r}, each a conversation of their "
                "own: name one with the user parameter (a user id, or none for the requests recorded "
                "without a user).",
                details={"users": [row.user_key for row in rows]},
            )
        header = rows[0]
        await catalog.ensure_loaded(session)
        events = await repository.conversation_events(
            session,
            ctx.organization_id,
            conversation_id,
            user_id=NO_USER if header.user_id is None else header.user_id,
            limit=MAX_MESSAGES + 1,
        )
        people = await repository.emails(session, {e.user_id for e in events if e.user_id is not None})
        messages = [_message(e, catalog, people) for e in events[:MAX_MESSAGES]]
        return ConversationDetail(
            header=header,
            messages=messages,
            truncated=len(events) > MAX_MESSAGES,
            files=_files(messages),
        )


# --- Conversation detail ------------------------------------------------------------------------------


def conversation_user(value: str | None) -> uuid.UUID | None:
    """A conversation detail's ``user`` parameter: ``None`` when not given, ``NO_USER`` for ``none`` (the
    requests recorded without a user), else the user id; anything else is a validation error."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.lower() == USER_NONE:
        return NO_USER
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise ValidationFailed(
            f"The user {value!r} is neither a user id nor {USER_NONE!r} (the requests without a user)."
        ) from exc


@dataclass(frozen=True, slots=True)
class CostItem:
    """One line of a message's cost. The lines' ``amount_nanousd`` add up exactly to the stored cost."""

    kind: str  # a token kind, "rounding", or "recorded_difference"
    label: str
    quantity: int
    unit_price_usd: Decimal | None
    amount_usd: Decimal  # exact
    amount_nanousd: int


@dataclass(frozen=True, slots=True)
class Attachment:
    key: str
    name: str
    kind: str
    size_bytes: int
    estimated_tokens: int
    cost_nanousd: int  # estimated tokens x the message's input price
    cost_share: float  # of the message's cost
    reuse_count: int = 1  # messages of this conversation that sent the same file


@dataclass(frozen=True, slots=True)
class Message:
    event: UsageEvent
    email: str | None
    input_tokens: int
    output_tokens: int
    cost_lines: list[CostItem]
    priced_from_catalog: bool
    attachments: list[Attachment]


@dataclass(frozen=True, slots=True)
class FileImpact:
    key: str
    name: str
    kind: str
    size_bytes: int
    estimated_tokens: int
    cost_nanousd: int  # over every message that sent it
    reuse_count: int


@dataclass(frozen=True, slots=True)
class ConversationDetail:
    header: ConversationRow
    messages: list[Message]
    truncated: bool
    files: list[FileImpact]


KIND_LABELS = {
    "input": "Input tokens",
    "input_audio": "Audio input tokens",
    "cached_input_read": "Cached input (read)",
    "cache_write_5m": "Cache write (5 min)",
    "cache_write_1h": "Cache write (1 hour)",
    "output": "Output tokens",
    "output_audio": "Audio output tokens",
    "reasoning": "Reasoning tokens",
    "request": "Per-request fee",
    "web_search": "Web searches",
    "rounding": "Rounding to the nano-USD",
    "recorded_difference": "Recorded cost differs from the catalog price (provider-reported or imported)",
}


def cost_lines(event: UsageEvent, catalog: CatalogCache) -> tuple[list[CostItem], bool]:
    """Tokens x price per kind at the event's time, from the catalog; lines add up to the stored cost.

    Each line's exact amount is rounded for display; a "rounding" line carries what the single rounding of
    the total differs from the sum of those; a "recorded_difference" line what the stored cost differs from
    the catalog's (OpenRouter's reported cost, a cost given to the ingest API, an unpriced model).
    """
    entry = catalog.get(event.model_id)
    prices = entry.price_at(event.created_at) if entry is not None else None
    items: list[CostItem] = []
    computed = 0
    if prices is not None:
        usage = TokenUsage(
            input_tokens=event.input_tokens,
            cached_input_tokens=event.cached_input_tokens,
            cache_write_5m_tokens=event.cache_write_5m_tokens,
            cache_write_1h_tokens=event.cache_write_1h_tokens,
            output_tokens=event.output_tokens,
            reasoning_tokens=event.reasoning_tokens,
            web_searches=event.web_searches,
            input_audio_tokens=event.input_audio_tokens,
            output_audio_tokens=event.output_audio_tokens,
        )
        breakdown = compute_cost(prices, usage)
        items = [_item(line) for line in breakdown.lines]
        computed = breakdown.total_nanousd
        rounding = computed - sum(i.amount_nanousd for i in items)
        if rounding:
            items.append(
                CostItem("rounding", KIND_LABELS["rounding"], 0, None, Decimal(rounding) / 10**9, rounding)
            )
    difference = event.cost_nanousd - computed
    if difference or prices is None:
        items.append(
            CostItem(
                "recorded_difference",
                KIND_LABELS["recorded_difference"]
                if prices is not None
                else "Recorded cost (no catalog price)",
                0,
                None,
                Decimal(difference) / 10**9,
                difference,
            )
        )
    return items, prices is not None


def _item(line: CostLine) -> CostItem:
    return CostItem(
        line.kind,
        KIND_LABELS.get(line.kind, line.kind),
        line.quantity,
        line.unit_price_usd,
        line.amount_usd,
        line.amount_nanousd,
    )


def _attachment_key(raw: dict[str, Any]) -> str:
    for name in ("sha256", "id", "file_id", "name", "filename"):
        value = raw.get(name)
        if isinstance(value, str) and value:
            return f"{name}:{value}"
    return f"{raw.get('type', 'file')}:{raw.get('bytes', 0)}"


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


# The lines of a message's cost its prompt makes: what its attachments' shares are taken from.
INPUT_KINDS = frozenset({"input", "cached_input_read", "cache_write_5m", "cache_write_1h"})


def _attachments(event: UsageEvent, lines: list[CostItem]) -> list[Attachment]:
    """Each attachment with its share of the prompt's cost: its tokens over the prompt's (what the prompt
    was charged, cached and cache-written tokens at their own prices), so no file ever costs more than the
    prompt that carried it, and all of them together never more either."""
    raw = [a for a in (event.attachments or []) if isinstance(a, dict)]
    if not raw:
        return []
    total_input = event.input_tokens + event.cached_input_tokens
    total_input += event.cache_write_5m_tokens + event.cache_write_1h_tokens
    input_cost = sum(line.amount_nanousd for line in lines if line.kind in INPUT_KINDS)
    tokens = [_int(a.get("estimated_tokens")) for a in raw]
    whole = max(total_input, sum(tokens))  # estimates beyond the prompt are scaled down to it
    found = []
    for a, estimated in zip(raw, tokens, strict=True):
        cost = input_cost * estimated // whole if whole else 0
        name = next((str(a[k]) for k in ("name", "filename") if isinstance(a.get(k), str)), "")
        kind = str(a.get("type", "file"))
        found.append(
            Attachment(
                key=_attachment_key(a),
                name=name or kind.replace("_", " "),
                kind=kind,
                size_bytes=_int(a.get("bytes")),
                estimated_tokens=estimated,
                cost_nanousd=cost,
                cost_share=cost / event.cost_nanousd if event.cost_nanousd else 0.0,
            )
        )
    return found


def _message(event: UsageEvent, catalog: CatalogCache, people: dict[uuid.UUID, str]) -> Message:
    lines, priced = cost_lines(event, catalog)
    return Message(
        event=event,
        email=people.get(event.user_id) if event.user_id is not None else None,
        input_tokens=event.input_tokens
        + event.cached_input_tokens
        + event.cache_write_5m_tokens
        + event.cache_write_1h_tokens,
        output_tokens=event.output_tokens + event.reasoning_tokens,
        cost_lines=lines,
        priced_from_catalog=priced,
        attachments=_attachments(event, lines),
    )


def _files(messages: list[Message]) -> list[FileImpact]:
    """Each distinct file of the conversation, how many messages sent it, and its estimated cost in all."""
    grouped: dict[str, list[Attachment]] = defaultdict(list)
    for message in messages:
        for a in message.attachments:
            grouped[a.key].append(a)
    files = [
        FileImpact(
            key=key,
            name=uses[0].name,
            kind=uses[0].kind,
            size_bytes=uses[0].size_bytes,
            estimated_tokens=uses[0].estimated_tokens,
            cost_nanousd=sum(a.cost_nanousd for a in uses),
            reuse_count=len(uses),
        )
        for key, uses in grouped.items()
    ]
    files.sort(key=lambda f: (-f.cost_nanousd, f.name))
    # Each message's attachment learns how often its file was sent in this conversation.
    counts = {f.key: f.reuse_count for f in files}
    for message in messages:
        message.attachments[:] = [replace(a, reuse_count=counts[a.key]) for a in message.attachments]
    return files


reports = UsageReports()
