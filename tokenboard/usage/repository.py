"""Reads of the usage rollups for the usage pages and their JSON twins. Never a GROUP BY over raw events.

Every function is scoped to one organization; ``user_id`` narrows it to one user ("only my usage").
Ranges are UTC days, ``start`` and ``end`` both included; ``None`` leaves that side open. Token counts
are totals: ``input_tokens`` counts every input token (cached reads and cache writes included),
``output_tokens`` every output token (reasoning included).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    CompoundSelect,
    Integer,
    Select,
    cast,
    func,
    literal,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.kit.tenancy import scoped
from tokenboard.models import (
    Team,
    UsageConversation,
    UsageDay,
    UsageDayModel,
    UsageDayUser,
    UsageDayUserModel,
    UsageDimensionDay,
    UsageDimensionUserDay,
    UsageEvent,
    UsageHour,
    UsageHourUser,
    UsageLatencyBucket,
    UsageMonthDimension,
    UsageMonthDimensionUser,
    UsageMonthHourCell,
    UsageMonthLatencyBucket,
    UsageMonthModel,
    UsageMonthUser,
    UsageMonthUserHourCell,
    UsageMonthUserModel,
    User,
    Workspace,
)
from tokenboard.models.usage_rollup_columns import NO_USER
from tokenboard.usage.rollups import DIMENSIONS, bucket_reading


@dataclass(frozen=True, slots=True)
class Usage:
    requests: int
    cost_nanousd: int
    input_tokens: int
    output_tokens: int

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class Summary(Usage):
    errors: int
    avg_cost_per_request_nanousd: int  # rounded half-even to the nano-USD
    active_users_7d: int


@dataclass(frozen=True, slots=True)
class DayRow(Usage):
    day: date
    users: int


@dataclass(frozen=True, slots=True)
class DayTotals(DayRow):
    errors: int


@dataclass(frozen=True, slots=True)
class ModelDayRow(Usage):
    day: date
    model_id: str
    provider_id: str
    users: int


@dataclass(frozen=True, slots=True)
class UserLine(Usage):
    user_id: uuid.UUID | None  # None: requests recorded without a user
    email: str | None
    name: str | None


@dataclass(frozen=True, slots=True)
class HourCell(Usage):
    weekday: int  # 0 = Monday
    hour: int  # 0-23, UTC


@dataclass(frozen=True, slots=True)
class PeriodRow(Usage):
    start: date  # first day of the month or year


@dataclass(frozen=True, slots=True)
class ModelStats(Usage):
    model_id: str
    provider_id: str
    errors: int
    error_rate: float
    cost_share: float
    latency_avg_ms: float | None
    latency_p50_ms: int | None  # upper bound of the histogram bucket holding the percentile
    latency_p95_ms: int | None


@dataclass(frozen=True, slots=True)
class ProviderShare(Usage):
    provider_id: str
    cost_share: float


@dataclass(frozen=True, slots=True)
class DimensionRow(Usage):
    value: str


@dataclass(frozen=True, slots=True)
class ConversationRow(Usage):
    """One user's conversation: their requests with the conversation id (``user_id`` None: the requests
    recorded without a user). Users who share a conversation id have a row each."""

    conversation_id: str
    user_id: uuid.UUID | None
    email: str | None
    first_at: datetime
    last_at: datetime

    @property
    def duration(self) -> timedelta:
        return self.last_at - self.first_at

    @property
    def user_key(self) -> str:
        """The row's user as its detail's ``user`` parameter names it: the id, or ``none``."""
        return USER_NONE if self.user_id is None else str(self.user_id)


# --- Helpers --------------------------------------------------------------------------------------------


def _sum(column: Any) -> ColumnElement[Any]:
    return func.coalesce(func.sum(column), 0)


def _full_sums(model: Any) -> list[ColumnElement[Any]]:
    """requests, cost, all input tokens, all output tokens of a table with the full metrics."""
    return [
        _sum(model.requests),
        _sum(model.cost_nanousd),
        _sum(model.input_tokens + model.cached_input_tokens + model.cache_write_tokens),
        _sum(model.output_tokens + model.reasoning_tokens),
    ]


def _slim_sums(model: Any) -> list[ColumnElement[Any]]:
    return [
        _sum(model.requests),
        _sum(model.cost_nanousd),
        _sum(model.total_input_tokens),
        _sum(model.total_output_tokens),
    ]


def _usage(values: Any) -> dict[str, int]:
    requests, cost, input_tokens, output_tokens = (int(v) for v in values)
    return {
        "requests": requests,
        "cost_nanousd": cost,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
    }


def _days(stmt: Select[Any], column: Any, start: date | None, end: date | None) -> Select[Any]:
    if start is not None:
        stmt = stmt.where(column >= start)
    if end is not None:
        stmt = stmt.where(column <= end)
    return stmt


def _hours(stmt: Select[Any], column: Any, start: date | None, end: date | None) -> Select[Any]:
    if start is not None:
        stmt = stmt.where(column >= datetime.combine(start, time(), UTC))
    if end is not None:
        stmt = stmt.where(column < datetime.combine(end + timedelta(days=1), time(), UTC))
    return stmt


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


@dataclass(frozen=True, slots=True)
class Split:
    """A range of days as its full calendar months and the days at its edges outside those months.

    ``months`` is (first month, month after the last) by their first days, ``None`` for an open side, or
    ``None`` altogether when the range holds no full month; ``edges`` are day ranges (both ends included).
    Summing the monthly rollups over ``months`` and the daily ones over ``edges`` gives the range's sums.
    """

    months: tuple[date | None, date | None] | None
    edges: tuple[tuple[date, date], ...]


def split_range(start: date | None, end: date | None) -> Split:
    lo = None if start is None else start if start.day == 1 else _next_month(start)
    hi = None if end is None else (end + timedelta(days=1)).replace(day=1)
    if lo is not None and hi is not None and lo >= hi:
        assert start is not None and end is not None
        return Split(None, ((start, end),))
    edges = []
    if start is not None and lo is not None and start < lo:
        edges.append((start, lo - timedelta(days=1)))
    if end is not None and hi is not None and hi <= end:
        edges.append((hi, end))
    return Split((lo, hi), tuple(edges))


def _in_months(stmt: Select[Any], column: Any, months: tuple[date | None, date | None]) -> Select[Any]:
    lo, hi = months
    if lo is not None:
        stmt = stmt.where(column >= lo)
    if hi is not None:
        stmt = stmt.where(column < hi)
    return stmt


def _split_union(
    split: Split, monthly: Callable[[], Select[Any]], daily: Callable[[], Select[Any]], month: Any, day: Any
) -> CompoundSelect[Any] | Select[Any] | None:
    """The monthly select over the full months and the daily one over each edge, as one statement.

    One daily select per edge, each a plain range: SQLite plans ``day BETWEEN a AND b OR day BETWEEN c AND d``
    as a scan of the organization's rows through another index (every user's every day, at 10M events a
    20x slower read), where a single range uses the primary key.
    """
    parts: list[Select[Any]] = []
    if split.months is not None:
        parts.append(_in_months(monthly(), month, split.months))
    parts.extend(daily().where(day.between(lo, hi)) for lo, hi in split.edges)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else union_all(*parts)


async def _summed(
    session: AsyncSession, union: CompoundSelect[Any] | Select[Any] | None, keys: int
) -> dict[tuple[Any, ...], list[int]]:
    """Rows ``(*key, *values)`` of a split range's parts, summed per key by the database (one row per key)."""
    if union is None:
        return {}
    if isinstance(union, CompoundSelect):
        parts = union.subquery()
        columns = list(parts.c)
        union = select(*columns[:keys], *(_sum(c) for c in columns[keys:])).group_by(*columns[:keys])
    return _merge(await session.execute(union), keys)


def _merge(rows: Any, keys: int) -> dict[tuple[Any, ...], list[int]]:
    """Sum rows ``(*key, *values)`` per key (the monthly and the daily parts of a split range)."""
    out: dict[tuple[Any, ...], list[int]] = {}
    for r in rows:
        key = tuple(r[:keys])
        values = [int(v) for v in r[keys:]]
        found = out.get(key)
        out[key] = values if found is None else [a + b for a, b in zip(found, values, strict=True)]
    return out


def _user(user_id: uuid.UUID) -> uuid.UUID | None:
    return None if user_id == NO_USER else user_id


USER_NONE = "none"  # a conversation's requests recorded without a user, in its detail's ``user`` parameter


class _Person(NamedTuple):
    email: str
    name: str


async def _people(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, _Person]:
    """Email and name of each user (two columns, not whole accounts: a year's top users are hundreds)."""
    ids = {i for i in ids if i != NO_USER}
    if not ids:
        return {}
    rows = await session.execute(select(User.id, User.email, User.name).where(User.id.in_(ids)))
    return {r[0]: _Person(r[1], r[2]) for r in rows}


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


# --- Reads ----------------------------------------------------------------------------------------------


async def day_series(
    session: AsyncSession, org_id: uuid.UUID, *, user_id: uuid.UUID | None = None
) -> list[DayTotals]:
    """Every day with usage, oldest first, with its errors: the one read behind the page's summary, day
    table, trend, month and year comparisons and month card (a few thousand rows at most in ten years)."""
    if user_id is None:
        model: Any = UsageDay
        stmt = select(model.day, *_full_sums(model), _sum(model.errors), _sum(model.users))
        stmt = scoped(stmt, model, org_id)
    else:
        model = UsageDayUser
        stmt = select(model.day, *_full_sums(model), _sum(model.errors), func.count())
        stmt = scoped(stmt, model, org_id).where(model.user_id == user_id)
    stmt = stmt.group_by(model.day).order_by(model.day)
    return [
        DayTotals(**_usage(r[1:5]), day=r[0], errors=int(r[5]), users=int(r[6]))
        for r in await session.execute(stmt)
    ]


def in_range(rows: list[DayTotals], start: date | None, end: date | None) -> list[DayTotals]:
    return [r for r in rows if (start is None or r.day >= start) and (end is None or r.day <= end)]


async def active_users(
    session: AsyncSession, org_id: uuid.UUID, as_of: date, *, user_id: uuid.UUID | None = None
) -> int:
    """Distinct users with requests in the 7 days ending ``as_of`` (7 days of the day x user rollup)."""
    active = _days(
        scoped(select(func.count(func.distinct(UsageDayUser.user_id))), UsageDayUser, org_id),
        UsageDayUser.day,
        as_of - timedelta(days=6),
        as_of,
    ).where(UsageDayUser.user_id != NO_USER)
    if user_id is not None:
        active = active.where(UsageDayUser.user_id == user_id)
    return int(await session.scalar(active) or 0)


def summary_of(rows: list[DayTotals], active_users_7d: int) -> Summary:
    """The summary card from the days of the range (see :func:`summary`)."""
    usage = [0, 0, 0, 0]
    errors = 0
    for r in rows:
        usage[0] += r.requests
        usage[1] += r.cost_nanousd
        usage[2] += r.input_tokens
        usage[3] += r.output_tokens
        errors += r.errors
    requests = usage[0]
    # Half-even integer division: money is never a float.
    quotient, remainder = divmod(usage[1], requests) if requests else (0, 0)
    if 2 * remainder > requests or (2 * remainder == requests and quotient % 2):
        quotient += 1
    return Summary(
        **_usage(usage),
        errors=errors,
        avg_cost_per_request_nanousd=quotient,
        active_users_7d=active_users_7d,
    )


def periods_of(rows: list[DayTotals], period: str) -> list[PeriodRow]:
    """Month over month (``period`` "month") or year over year, oldest first, from the days."""
    totals: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in rows:
        key = r.day.replace(day=1) if period == "month" else r.day.replace(month=1, day=1)
        t = totals[key]
        t[0] += r.requests
        t[1] += r.cost_nanousd
        t[2] += r.input_tokens
        t[3] += r.output_tokens
    return [PeriodRow(**_usage(v), start=k) for k, v in sorted(totals.items())]


async def summary(
    session: AsyncSession,
    org_id: uuid.UUID,
    start: date | None,
    end: date | None,
    *,
    user_id: uuid.UUID | None = None,
    as_of: date | None = None,
) -> Summary:
    """Totals over the range, and the distinct users active in the 7 days ending ``as_of`` (default today)."""
    rows = in_range(await day_series(session, org_id, user_id=user_id), start, end)
    as_of = as_of or datetime.now(UTC).date()
    return summary_of(rows, await active_users(session, org_id, as_of, user_id=user_id))


async def by_day(
    session: AsyncSession,
    org_id: uuid.UUID,
    start: date | None,
    end: date | None,
    *,
    user_id: uuid.UUID | None = None,
) -> list[DayRow]:
    """One row per day with usage, newest first."""
    if user_id is None:
        stmt = select(UsageDay.day, *_full_sums(UsageDay), _sum(UsageDay.users)).group_by(UsageDay.day)
        stmt = _days(scoped(stmt, UsageDay, org_id), UsageDay.day, start, end).order_by(UsageDay.day.desc())
    else:
        model = UsageDayUser
        stmt = select(model.day, *_full_sums(model), func.count()).group_by(model.day)
        stmt = scoped(stmt, model, org_id).where(model.user_id == user_id)
        stmt = _days(stmt, model.day, start, end).order_by(model.day.desc())
    return [DayRow(**_usage(r[1:5]), day=r[0], users=int(r[5])) for r in await session.execute(stmt)]


async def by_day_users(
    session: AsyncSession, org_id: uuid.UUID, day: date, *, user_id: uuid.UUID | None = None
) -> list[UserLine]:
    """The users behind one day's row, by cost (highest first)."""
    model = UsageDayUser
    stmt = scoped(select(model.user_id, *_full_sums(model)), model, org_id).where(model.day == day)
    if user_id is not None:
        stmt = stmt.where(model.user_id == user_id)
    return await _user_lines(session, list(await session.execute(stmt.group_by(model.user_id))))


async def _user_lines(session: AsyncSession, rows: list[Any]) -> list[UserLine]:
    people = await _people(session, {r[0] for r in rows})
    lines = []
    for r in rows:
        person = people.get(r[0])
        lines.append(
            UserLine(
                **_usage(r[1:5]),
                user_id=_user(r[0]),
                email=person.email if person else None,
                name=person.name if person else None,
            )
        )
    lines.sort(key=lambda line: (-line.cost_nanousd, -line.requests, line.email or ""))
    return lines


async def by_model_day(
    session: AsyncSession,
    org_id: uuid.UUID,
    start: date | None,
    end: date | None,
    *,
    user_id: uuid.UUID | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> list[ModelDayRow]:
    """One row per day and model, newest day first, then by cost (then model id); ``offset`` and ``limit``
    page them in SQL.

    Both rollups hold one row per key (organization, day, model; and the user for one user's rows), so no
    grouping: a page is read by walking the key backwards from the range's last day and sorting each day's
    few rows by cost, not by sorting the whole range.
    """
    if user_id is None:
        model: Any = UsageDayModel
        users: ColumnElement[Any] = model.users
    else:
        model = UsageDayUserModel
        users = literal(1, BigInteger)  # one user's own row
    stmt: Select[Any] = select(
        model.day,
        model.model_id,
        model.provider_id,
        model.requests,
        model.cost_nanousd,
        model.input_tokens + model.cached_input_tokens + model.cache_write_tokens,
        model.output_tokens + model.reasoning_tokens,
        users,
    )
    stmt = _days(scoped(stmt, model, org_id), model.day, start, end)
    if user_id is not None:
        stmt = stmt.where(model.user_id == user_id)
    stmt = stmt.order_by(model.day.desc(), model.cost_nanousd.desc(), model.model_id).offset(offset or None)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [
        ModelDayRow(**_usage(r[3:7]), day=r[0], model_id=r[1], provider_id=r[2], users=int(r[7]))
        for r in await session.execute(stmt)
    ]


async def by_model_day_users(
    session: AsyncSession,
    org_id: uuid.UUID,
    day: date,
    model_id: str,
    *,
    user_id: uuid.UUID | None = None,
) -> list[UserLine]:
    """The users behind one (day, model) row, by cost."""
    model = UsageDayUserModel
    stmt = scoped(select(model.user_id, *_full_sums(model)), model, org_id).where(
        model.day == day, model.model_id == model_id
    )
    if user_id is not None:
        stmt = stmt.where(model.user_id == user_id)
    return await _user_lines(session, list(await session.execute(stmt.group_by(model.user_id))))


async def hourly_pattern(
    session: AsyncSession,
    org_id: uuid.UUID,
    start: date | None,
    end: date | None,
    *,
    user_id: uuid.UUID | None = None,
) -> list[HourCell]:
    """The weekly pattern: 7 x 24 cells (weekday 0 = Monday, UTC hours), every cell present.

    A range's full months come from the monthly cells (168 rows a month; one user's own for their pattern)
    and its edge days from the hourly rollup, grouped by weekday and hour in SQL.
    """
    split = split_range(start, end)
    statements: list[Select[Any]] = []
    if split.months is not None:
        m: Any = UsageMonthHourCell if user_id is None else UsageMonthUserHourCell
        monthly = scoped(select(m.weekday, m.hour, *_slim_sums(m)), m, org_id)
        if user_id is not None:
            monthly = monthly.where(m.user_id == user_id)
        statements.append(_in_months(monthly, m.month, split.months).group_by(m.weekday, m.hour))
    for lo, hi in split.edges:
        statements.append(_hour_cells(session, org_id, lo, hi, user_id))
    union = statements[0] if len(statements) == 1 else union_all(*statements)
    summed = await _summed(session, union, 2)  # one round trip: the monthly cells and the edges' hours
    found = {(int(k[0]), int(k[1])): v for k, v in summed.items()}
    zero = [0, 0, 0, 0]
    return [
        HourCell(**_usage(found.get((day, h), zero)), weekday=day, hour=h)
        for day in range(7)
        for h in range(24)
    ]


def _hour_cells(
    session: AsyncSession, org_id: uuid.UUID, start: date | None, end: date | None, user_id: uuid.UUID | None
) -> Select[Any]:
    """Weekday, hour of day and sums of the hourly rollup's rows over a range (at most 168 rows back)."""
    model: Any = UsageHour if user_id is None else UsageHourUser
    if session.get_bind().dialect.name == "postgresql":
        # date_part's double precision groups faster than EXTRACT's numeric (a year of one user's hours:
        # 25 -> 15 ms at 10M events).
        utc = func.timezone("UTC", model.hour)
        weekday: ColumnElement[Any] = cast(func.date_part("isodow", utc), Integer) - 1
        hour: ColumnElement[Any] = cast(func.date_part("hour", utc), Integer)
    else:  # stored as text "YYYY-MM-DD HH:MM:SS.ffffff", UTC; %w counts from Sunday
        weekday = (func.cast(func.strftime("%w", model.hour), Integer) + 6) % 7
        hour = func.cast(func.substr(model.hour, 12, 2), Integer)
    stmt = select(weekday, hour, *_slim_sums(model))
    stmt = _hours(scoped(stmt, model, org_id), model.hour, start, end)
    if user_id is not None:
        stmt = stmt.where(model.user_id == user_id)
    return stmt.group_by(weekday, hour)


async def _periods(
    session: AsyncSession,
    org_id: uuid.UUID,
    start: date | None,
    end: date | None,
    user_id: uuid.UUID | None,
    period: str,
) -> list[PeriodRow]:
    rows = in_range(await day_series(session, org_id, user_id=user_id), start, end)
    return periods_of(rows, period)


async def by_month(
    session: AsyncSession,
    org_id: uuid.UUID,
    start: date | None,
    end: date | None,
    *,
    user_id: uuid.UUID | None = None,
) -> list[PeriodRow]:
    """Month over month (oldest first), from the daily rollup (a few thousand rows in ten years)."""
    return await _periods(session, org_id, start, end, user_id, "month")


async def by_year(
    session: AsyncSession,
    org_id: uuid.UUID,
    start: date | None,
    end: date | None,
    *,
    user_id: uuid.UUID | None = None,
) -> list[PeriodRow]:
    """Year over year (oldest first), from the daily rollup."""
    return await _periods(session, org_id, start, end, user_id, "year")


async def model_popularity(
    session: AsyncSession,
    org_id: uuid.UUID,
    start: date | None,
    end: date | None,
    *,
    user_id: uuid.UUID | None = None,
) -> list[ModelStats]:
    """Per model: requests, cost and its share, error rate, latency (by requests, highest first).

    Latency percentiles come from the organization's histogram of the model (every user's requests). Two
    reads, :func:`model_sums` and :func:`model_latency`, which a caller may also run side by side and join
    with :func:`model_stats`.
    """
    sums = await model_sums(session, org_id, start, end, user_id=user_id)
    return model_stats(sums, await model_latency(session, org_id, start, end))


# model -> (provider, [requests, cost, input tokens, output tokens, errors, latency sum])
ModelSums = dict[str, tuple[str, list[int]]]


async def model_sums(
    session: AsyncSession,
    org_id: uuid.UUID,
    start: date | None,
    end: date | None,
    *,
    user_id: uuid.UUID | None = None,
) -> ModelSums:
    """Per model: its provider, requests, cost, input and output tokens, errors and the latency sum."""

    def sums(model: Any) -> Callable[[], Select[Any]]:
        def stmt() -> Select[Any]:
            columns = (model.model_id, func.min(model.provider_id), *_full_sums(model), _sum(model.errors))
            found = scoped(select(*columns, _sum(model.latency_ms_sum)), model, org_id)
            return found.group_by(model.model_id)

        return stmt

    def mine(model: Any) -> Callable[[], Select[Any]]:  # one user's rows (the key's prefix)
        return lambda: sums(model)().where(model.user_id == user_id)

    if user_id is None:
        monthly, daily = sums(UsageMonthModel), sums(UsageDayModel)
        months, days = UsageMonthModel.month, UsageDayModel.day
    else:
        monthly, daily = mine(UsageMonthUserModel), mine(UsageDayUserModel)
        months, days = UsageMonthUserModel.month, UsageDayUserModel.day
    union = _split_union(split_range(start, end), monthly, daily, months, days)
    totals: ModelSums = {}
    for r in await session.execute(union) if union is not None else []:
        values = [int(v) for v in r[2:]]
        found = totals.get(r[0])
        if found is None:
            totals[r[0]] = (r[1], values)
        else:
            totals[r[0]] = (min(found[0], r[1]), [x + y for x, y in zip(found[1], values, strict=True)])
    return totals


async def model_latency(
    session: AsyncSession, org_id: uuid.UUID, start: date | None, end: date | None
) -> dict[str, tuple[int | None, int | None]]:
    """Per model, latency p50 and p95 over the range from the organization's histograms (every user's
    requests; see :func:`percentiles`).

    One statement: the full months' buckets and each edge's days, one month at a time, each part summed per
    model and bucket by the database as it reads them in its key's order (migration 0018), so no part sorts.
    The parts are added up here: a few hundred rows each (models x buckets in use).
    """
    months, days = UsageMonthLatencyBucket, UsageLatencyBucket
    split = split_range(start, end)
    parts: list[Select[Any]] = []
    if split.months is not None:
        stmt = scoped(select(months.model_id, months.bucket, _sum(months.requests)), months, org_id)
        parts.append(_in_months(stmt, months.month, split.months).group_by(months.model_id, months.bucket))
    for month, first, last in (cut for lo, hi in split.edges for cut in month_cuts(lo, hi)):
        stmt = scoped(select(days.model_id, days.bucket, _sum(days.requests)), days, org_id)
        stmt = stmt.where(days.month == month, days.day.between(first, last))
        parts.append(stmt.group_by(days.model_id, days.bucket))
    if not parts:
        return {}
    histograms: dict[str, dict[int, int]] = {}
    for model_id, bucket, requests in await session.execute(
        parts[0] if len(parts) == 1 else union_all(*parts)
    ):
        histogram = histograms.setdefault(model_id, {})
        histogram[bucket] = histogram.get(bucket, 0) + int(requests)
    return {model_id: percentiles(histogram) for model_id, histogram in histograms.items()}


def month_cuts(first: date, last: date) -> list[tuple[date, date, date]]:
    """The days from ``first`` to ``last`` (both included) cut at month ends: (month, first day, last day)."""
    cuts = []
    while first <= last:
        following = _next_month(first)
        cuts.append((first.replace(day=1), first, min(last, following - timedelta(days=1))))
        first = following
    return cuts


def percentiles(histogram: dict[int, int]) -> tuple[int | None, int | None]:
    """The latency read at p50 and p95 from one model's histogram (bucket -> requests).

    Nearest rank: the bucket where the running count of requests (buckets in order) first reaches
    ceil(total x p); it reads as its upper bound (:func:`rollups.bucket_reading`; the tests check both
    percentiles against the raw latencies).
    """
    total = sum(histogram.values())
    ranks = ((total + 1) // 2, (total * 95 + 99) // 100)  # ceil(total x 0.50), ceil(total x 0.95)
    found: list[int | None] = [None, None]
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        for i, rank in enumerate(ranks):
            if found[i] is None and seen >= rank:
                found[i] = bucket
    return bucket_reading(found[0]), bucket_reading(found[1])


def model_stats(sums: ModelSums, latency: dict[str, tuple[int | None, int | None]]) -> list[ModelStats]:
    """The model popularity rows from :func:`model_sums` and :func:`model_latency`."""
    total_cost = sum(values[1] for _, values in sums.values())
    stats = []
    for model_id, (provider_id, values) in sums.items():
        usage = _usage(values[:4])
        requests, errors = usage["requests"], values[4]
        p50, p95 = latency.get(model_id, (None, None))
        stats.append(
            ModelStats(
                **usage,
                model_id=model_id,
                provider_id=provider_id,
                errors=errors,
                error_rate=_share(errors, requests),
                cost_share=_share(usage["cost_nanousd"], total_cost),
                latency_avg_ms=values[5] / requests if requests else None,
                latency_p50_ms=p50,
                latency_p95_ms=p95,
            )
        )
    stats.sort(key=lambda s: (-s.requests, s.model_id))
    return stats


async def provider_mix(
    session: AsyncSession,
    org_id: uuid.UUID,
    start: date | None,
    end: date | None,
    *,
    user_id: uuid.UUID | None = None,
) -> list[ProviderShare]:
    """Usage per provider with its share of the cost (highest cost first)."""
    shares: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for stats in await model_popularity(session, org_id, start, end, user_id=user_id):
        values = (stats.requests, stats.cost_nanousd, stats.input_tokens, stats.output_tokens)
        for i, value in enumerate(values):
            shares[stats.provider_id][i] += value
    total = sum(v[1] for v in shares.values())
    rows = [
        ProviderShare(**_usage(v), provider_id=k, cost_share=_share(v[1], total)) for k, v in shares.items()
    ]
    rows.sort(key=lambda r: (-r.cost_nanousd, r.provider_id))
    return rows


async def _user_sums(
    session: AsyncSession, org_id: uuid.UUID, start: date | None, end: date | None
) -> dict[tuple[Any, ...], list[int]]:
    """(user id,) -> requests, cost, input, output over the range: full months from the monthly rollup,
    the edge days from the daily one (a year: ~12 x users rows)."""

    def month() -> Select[Any]:
        m = UsageMonthUser
        return scoped(select(m.user_id, *_slim_sums(m)), m, org_id).group_by(m.user_id)

    def day() -> Select[Any]:
        d = UsageDayUser
        return scoped(select(d.user_id, *_full_sums(d)), d, org_id).group_by(d.user_id)

    union = _split_union(split_range(start, end), month, day, UsageMonthUser.month, UsageDayUser.day)
    return await _summed(session, union, 1)


async def top_users(
    session: AsyncSession, org_id: uuid.UUID, start: date | None, end: date | None, *, top: int
) -> tuple[list[UserLine], list[int]]:
    """The ``top`` users over the range by cost (then requests, then email), and every member's cost,
    highest first (the distribution across members).

    Only the users who can be among the top are looked up: those costing at least the ``top``-th highest
    cost; ties at that cost are then ordered with the others by :func:`_user_lines`.
    """
    merged = await _user_sums(session, org_id, start, end)
    costs = sorted((v[1] for v in merged.values()), reverse=True)
    threshold = costs[top - 1] if len(costs) >= top else 0
    candidates = [(k[0], *v) for k, v in merged.items() if v[1] >= threshold]
    members = sorted((v[1] for k, v in merged.items() if k[0] != NO_USER), reverse=True)
    return (await _user_lines(session, candidates))[:top], members


async def dimension_breakdowns(
    session: AsyncSession,
    org_id: uuid.UUID,
    start: date | None,
    end: date | None,
    *,
    user_id: uuid.UUID | None = None,
) -> dict[str, list[DimensionRow]]:
    """Every dimension's breakdown (see :func:`dimension_breakdown`) in one read, every dimension present."""
    monthly: Any = UsageMonthDimension if user_id is None else UsageMonthDimensionUser
    daily: Any = UsageDimensionDay if user_id is None else UsageDimensionUserDay

    def values(model: Any) -> Callable[[], Select[Any]]:
        def stmt() -> Select[Any]:
            found = scoped(select(model.dimension, model.value, *_slim_sums(model)), model, org_id)
            if user_id is not None:
                # Every dimension named, so the key (organization, dimension, user, ...) is probed per
                # dimension for the one user.
                found = found.where(model.dimension.in_(list(DIMENSIONS)), model.user_id == user_id)
            return found.group_by(model.dimension, model.value)

        return stmt

    union = _split_union(split_range(start, end), values(monthly), values(daily), monthly.month, daily.day)
    merged = await _summed(session, union, 2)
    found: dict[str, list[DimensionRow]] = {dimension: [] for dimension in DIMENSIONS}
    for (dimension, value), v in merged.items():
        if dimension in found:
            found[dimension].append(DimensionRow(**_usage(v), value=value))
    for rows in found.values():
        rows.sort(key=lambda r: (-r.cost_nanousd, r.value))
    return found


async def dimension_breakdown(
    session: AsyncSession,
    org_id: uuid.UUID,
    dimension: str,
    start: date | None,
    end: date | None,
    *,
    user_id: uuid.UUID | None = None,
) -> list[DimensionRow]:
    """Usage per value of ``dimension`` (team, workspace, feature, tool, integration), by cost.

    Team and workspace values are their ids (as text). Requests without a value are not listed.
    """
    if dimension not in DIMENSIONS:
        raise ValueError(f"unknown dimension {dimension!r}; one of {sorted(DIMENSIONS)}")
    return (await dimension_breakdowns(session, org_id, start, end, user_id=user_id))[dimension]


async def conversations(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    user_id: uuid.UUID | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[ConversationRow]:
    """Conversations, most recently active first: one row per user of a conversation id (``user_id``: that
    user's only), by the (organization, last activity) or (organization, user, last activity) index."""
    model = UsageConversation
    stmt = scoped(select(model), model, org_id)
    if user_id is not None:
        stmt = stmt.where(model.user_id == user_id)
    stmt = stmt.order_by(model.last_at.desc(), model.conversation_id, model.user_id)
    found = list(await session.scalars(stmt.limit(limit).offset(offset)))
    return await _conversation_rows(session, found)


async def conversation_rows(
    session: AsyncSession, org_id: uuid.UUID, conversation_id: str, *, user_id: uuid.UUID | None = None
) -> list[ConversationRow]:
    """The rows of one conversation id, one per user who sent it (by user id; ``NO_USER``'s, the requests of
    no user, first), from the key's prefix; ``user_id`` (``NO_USER`` too) narrows them to that user's row."""
    model = UsageConversation
    stmt = scoped(select(model), model, org_id).where(model.conversation_id == conversation_id)
    if user_id is not None:
        stmt = stmt.where(model.user_id == user_id)
    return await _conversation_rows(session, list(await session.scalars(stmt.order_by(model.user_id))))


async def _conversation_rows(session: AsyncSession, found: list[UsageConversation]) -> list[ConversationRow]:
    people = await _people(session, {c.user_id for c in found})
    return [
        ConversationRow(
            requests=c.requests,
            cost_nanousd=c.cost_nanousd,
            input_tokens=c.total_input_tokens,
            output_tokens=c.total_output_tokens,
            conversation_id=c.conversation_id,
            user_id=_user(c.user_id),
            email=people[c.user_id].email if c.user_id in people else None,
            first_at=c.first_at,
            last_at=c.last_at,
        )
        for c in found
    ]


async def conversation_events(
    session: AsyncSession,
    org_id: uuid.UUID,
    conversation_id: str,
    *,
    user_id: uuid.UUID | None = None,
    limit: int = 500,
) -> list[UsageEvent]:
    """The raw events of a conversation id, oldest first: drill-down, by the (org, conversation) index.

    ``user_id`` keeps one user's (``NO_USER``: the events without a user), as a conversation's detail
    shows them; ``None`` keeps every user's.
    """
    stmt = scoped(select(UsageEvent), UsageEvent, org_id).where(UsageEvent.conversation_id == conversation_id)
    if user_id == NO_USER:
        stmt = stmt.where(UsageEvent.user_id.is_(None))
    elif user_id is not None:
        stmt = stmt.where(UsageEvent.user_id == user_id)
    stmt = stmt.order_by(UsageEvent.created_at, UsageEvent.request_id).limit(limit)
    return list(await session.scalars(stmt))


async def emails(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Email of each user id (the unknown ones are left out)."""
    return {user_id: person.email for user_id, person in (await _people(session, ids)).items()}


async def dimension_names(session: AsyncSession, org_id: uuid.UUID) -> dict[str, dict[str, str]]:
    """Names of the organization's teams and workspaces by id (as text), for the breakdown tables."""
    names: dict[str, dict[str, str]] = {"team": {}, "workspace": {}}
    for dimension, model in (("team", Team), ("workspace", Workspace)):
        for item_id, name in await session.execute(scoped(select(model.id, model.name), model, org_id)):
            names[dimension][str(item_id)] = name
    return names
