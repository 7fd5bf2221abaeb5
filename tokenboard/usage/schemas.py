"""Usage events as the ingest API and ``tokenboard import`` take them."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    StrictBool,
    StrictInt,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic_core import core_schema

from tokenboard.kit.money import format_usd, usd_string
from tokenboard.usage.reports import (
    DAYS_PER_PAGE,
    MODEL_ROWS_PER_PAGE,
    ConversationDetail,
    Message,
    MonthView,
    UsageReport,
)
from tokenboard.usage.repository import ConversationRow, Usage, UserLine

MAX_BATCH = 5_000
MAX_TOKENS = 10**12


class Schema(BaseModel):
    model_config = ConfigDict(extra="forbid")


# An ISO 8601 timestamp starts with its date, YYYY-MM-DD. Without this check pydantic would also take a number
# (or a text of digits, such as the basic-format date 20260105) as seconds or milliseconds since 1970.
ISO_DATE_START = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
# A plain decimal: digits with an optional fraction and sign (the range is the service's check). Python's
# Decimal would also read exponents ("1e2"), underscores ("1_000"), "NaN" and "Infinity".
PLAIN_DECIMAL = r"^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)\s*$"


class _TextFirst:
    """A value that must come as a string matching ``pattern`` before its own type reads it (from Python, an
    instance of the type itself is taken too: a datetime for a timestamp).

    Checked by pydantic-core, not by a Python validator: the ingest API validates 5,000 events per batch
    (kit/routing.py), and a Python call per event costs about 1 us, 5 ms a batch (0.2 us this way; measured
    2026-12-07).
    """

    def __init__(self, pattern: str, message: str) -> None:
        self.pattern, self.message = pattern, message

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        text = core_schema.str_schema(pattern=self.pattern)
        typed = handler(source)
        given: core_schema.CoreSchema = text
        if source is not str:
            given = core_schema.json_or_python_schema(
                json_schema=text,
                python_schema=core_schema.union_schema([core_schema.is_instance_schema(source), text]),
            )
        checked = core_schema.custom_error_schema(
            given, custom_error_type="text_format", custom_error_message=self.message
        )
        return core_schema.chain_schema([checked, typed])


IsoTimestamp = Annotated[
    datetime,
    _TextFirst(ISO_DATE_START, "Input should be ISO 8601 text, such as 2026-01-05T09:30:00Z"),
]
DecimalText = Annotated[
    str,
    _TextFirst(
        PLAIN_DECIMAL, 'Input should be a decimal amount in USD as text, such as "0.0042" (no exponent)'
    ),
]
_ANY_DATETIME: TypeAdapter[datetime] = TypeAdapter(datetime)
_ISO_DATE_START = re.compile(ISO_DATE_START)
_PLAIN_DECIMAL = re.compile(PLAIN_DECIMAL)


def _tokens(description: str) -> int:
    return Field(0, ge=0, le=MAX_TOKENS, description=description)


class UsageEventCreate(Schema):
    """One request recorded elsewhere. Token kinds are exclusive: ``input_tokens`` excludes cached reads and
    cache writes, ``output_tokens`` excludes reasoning (each kind is priced on its own).

    As JSON (the ingest API, a JSON Lines import) every value must have its documented JSON type: numbers and
    booleans are never read from strings, integers never from floats or booleans, the timestamp is ISO 8601
    text and ``cost_usd`` a plain decimal string. A CSV file's cells are all text: :meth:`from_text`.
    """

    id: str = Field(min_length=1, max_length=64, description="Unique per organization: a retry is a no-op.")
    timestamp: IsoTimestamp = Field(
        description="When the request was made: ISO 8601 text (2026-01-05T09:30:00Z; without offset, UTC).",
        json_schema_extra={"format": "date-time"},
    )
    model: str = Field(min_length=3, max_length=200, description="provider/model, in the catalog.")
    user_id: uuid.UUID | None = Field(None, description="A member of the organization.")
    user_email: str | None = Field(None, max_length=320, description="Or the member's email.")
    input_tokens: StrictInt = _tokens("Uncached input tokens.")
    cached_input_tokens: StrictInt = _tokens("Input tokens read from the cache.")
    cache_write_5m_tokens: StrictInt = _tokens("Input tokens written to a 5-minute cache.")
    cache_write_1h_tokens: StrictInt = _tokens("Input tokens written to a 1-hour cache.")
    output_tokens: StrictInt = _tokens("Output tokens, reasoning excluded.")
    reasoning_tokens: StrictInt = _tokens("Reasoning (thinking) tokens.")
    input_audio_tokens: StrictInt = _tokens("Of input_tokens, the audio tokens (priced as audio).")
    output_audio_tokens: StrictInt = _tokens("Of output_tokens, the audio tokens (priced as audio).")
    web_searches: StrictInt = Field(
        0, ge=0, le=1_000_000, description="Server-side web searches (priced per search from the catalog)."
    )
    cost_nanousd: StrictInt | None = Field(
        None, ge=0, le=10**15, description="The cost, when known, in nano-USD (an integer)."
    )
    cost_usd: DecimalText | None = Field(
        None,
        max_length=40,
        description='Or the cost as a decimal USD string ("0.0042", no exponent); else priced from the '
        "catalog.",
    )
    latency_ms: StrictInt = Field(0, ge=0, le=10**8)
    stream: StrictBool = False
    status_code: StrictInt = Field(200, ge=100, le=599)
    error_type: str | None = Field(None, max_length=60)
    cancelled: StrictBool = False
    feature: str | None = Field(None, max_length=100)
    tool: str | None = Field(None, max_length=100)
    integration: str | None = Field(None, max_length=100)
    conversation_id: str | None = Field(None, max_length=200)
    message_id: str | None = Field(None, max_length=200)
    workspace_id: uuid.UUID | None = Field(None, description="A workspace of the organization.")
    team_id: uuid.UUID | None = Field(None, description="A team of the organization.")

    @field_validator(
        "user_email",
        "cost_usd",
        "error_type",
        "feature",
        "tool",
        "integration",
        "conversation_id",
        "message_id",
        mode="before",
    )
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        """CSV cells are never missing, only empty: an empty text means "not given"."""
        return None if isinstance(value, str) and not value.strip() else value

    @classmethod
    def from_text(cls, cells: Mapping[str, str]) -> Self:
        """An event from text cells (a CSV row), which take what they took before the API became strict.

        Numbers and booleans are read from their text ("12", "true" or "1"); a timestamp may be any text
        pydantic reads as one (Unix seconds included), ``cost_usd`` any finite amount Python's Decimal reads
        (spreadsheets write small amounts as 1.5E-05). Both are rewritten in the API's form first, with the
        same value. Raises ValidationError.
        """
        given = dict(cells)
        timestamp = given.get("timestamp")
        if isinstance(timestamp, str) and not _ISO_DATE_START.match(timestamp):
            try:
                given["timestamp"] = _ANY_DATETIME.validate_python(timestamp).isoformat()
            except ValidationError:
                pass  # left as it is: the field's own error names it
        cost = given.get("cost_usd")
        if isinstance(cost, str) and cost.strip() and not _PLAIN_DECIMAL.match(cost):
            given["cost_usd"] = _plain(cost)
        return cls.model_validate(given, strict=False)


def _plain(amount: str) -> str:
    """``amount`` without an exponent when Decimal reads it as a finite number of sensible size, else as it
    is (refused by the field; a million-digit "1e999999" is never written out)."""
    try:
        value = Decimal(amount.strip())
    except InvalidOperation:
        return amount
    if not value.is_finite() or not -40 < value.adjusted() < 40:
        return amount
    return f"{value:f}"


class UsageEventBatch(Schema):
    events: list[UsageEventCreate] = Field(min_length=1, max_length=MAX_BATCH)


class IngestResult(BaseModel):
    accepted: int = Field(description="Events recorded now.")
    duplicates: int = Field(description="Events already recorded (same id): nothing changed.")


# --- Reads: the usage page's JSON twin, per-user lines, conversations ---------------------------------


class Money(BaseModel):
    """An amount: the exact integer, its exact decimal string, and how the pages show it."""

    nanousd: int
    usd: str
    display: str

    @classmethod
    def of(cls, nanousd: int) -> Money:
        # A report holds hundreds (a year's trend alone is 365, the members' distribution one per member).
        # Plain construction: with pydantic 2.14 it is twice as fast as ``model_construct`` (1.2 against 2.5
        # us), which skips validation in Python.
        return cls(nanousd=nanousd, usd=usd_string(nanousd), display=format_usd(nanousd))


class Totals(BaseModel):
    requests: int
    cost: Money
    tokens: int = Field(description="Input plus output tokens.")
    input_tokens: int = Field(description="Every input token: uncached, cached reads and cache writes.")
    output_tokens: int = Field(description="Every output token, reasoning included.")

    @staticmethod
    def values(row: Usage) -> dict[str, Any]:
        return {
            "requests": row.requests,
            "cost": Money.of(row.cost_nanousd),
            "tokens": row.tokens,
            "input_tokens": row.input_tokens,
            "output_tokens": row.output_tokens,
        }


class PeriodOut(BaseModel):
    key: str = Field(description="week, month, year, all or custom.")
    label: str
    start: date | None = Field(description="First UTC day included; null for all.")
    end: date | None = Field(description="Last UTC day included; null for all.")


class ScopeOut(BaseModel):
    only_mine: bool = Field(description="Only the caller's own usage.")
    forced: bool = Field(description="True for roles that may only ever see their own usage.")


class SummaryOut(Totals):
    errors: int
    avg_cost_per_request: Money
    active_users_7d: int = Field(description="Distinct users with usage in the 7 days ending today.")


class DayOut(Totals):
    day: date
    users: int


class ModelDayOut(Totals):
    day: date
    model: str
    provider: str
    users: int


class UserLineOut(Totals):
    user_id: uuid.UUID | None = Field(description="null: requests recorded without a user.")
    email: str | None
    name: str | None

    @classmethod
    def of(cls, line: UserLine) -> UserLineOut:
        return cls(**cls.values(line), user_id=line.user_id, email=line.email, name=line.name)


class TrendPoint(BaseModel):
    day: date
    cost: Money


class HourOut(BaseModel):
    weekday: int = Field(description="0 = Monday.")
    hour: int = Field(description="0-23, UTC.")
    requests: int
    cost: Money


class MonthOut(Totals):
    month: date = Field(description="The first day of the month.")


class YearOut(BaseModel):
    year: int
    months: list[Money] = Field(description="Cost of January to December.")
    total: Money


class ModelOut(Totals):
    model: str
    provider: str
    errors: int
    error_rate: float
    cost_share: float
    latency_avg_ms: float | None
    latency_p50_ms: int | None = Field(description="Upper bound of the histogram bucket (every user).")
    latency_p95_ms: int | None


class ProviderOut(Totals):
    provider: str
    cost_share: float


class BreakdownRowOut(Totals):
    value: str = Field(description="The value recorded (a team or workspace id, a feature, ...).")
    label: str = Field(description="Its name: team and workspace names, else the value.")


class MonthCard(BaseModel):
    """This calendar month (UTC) against last month; the projection is linear from the daily average."""

    month_start: date
    days_elapsed: int
    days_in_month: int
    cost: Money
    requests: int
    daily_average: Money = Field(description="Month to date / days elapsed (today included), half-even.")
    projection: Money = Field(
        description="Daily average x days in the month (exactly: cost x days / elapsed)."
    )
    last_month_to_date: Money = Field(description="Last month up to the same day of the month.")
    last_month_total: Money
    change: float | None = Field(description="Against last month to date; null when that was zero.")
    direction: str = Field(description="up, down or flat.")
    quota: Money | None = Field(description="The org's monthly usage quota; null when unset or only mine.")
    quota_used: float | None = Field(description="cost / quota.")
    tokens: int = Field(
        description="Month to date, input plus output tokens (as the tokens card counts them)."
    )
    input_tokens: int = Field(description="Every input token: uncached, cached reads and cache writes.")
    output_tokens: int = Field(description="Every output token, reasoning included.")
    daily_average_tokens: int = Field(description="tokens / days elapsed (today included), half-even.")
    projection_tokens: int = Field(description="tokens x days in the month / days elapsed, half-even.")
    quota_tokens: int | None = Field(
        description="The org's monthly token quota; null when unset or only mine."
    )
    quota_tokens_used: float | None = Field(description="tokens / quota_tokens (above 1 when over it).")

    @classmethod
    def of(cls, view: MonthView) -> MonthCard:
        return cls(
            month_start=view.month_start,
            days_elapsed=view.days_elapsed,
            days_in_month=view.days_in_month,
            cost=Money.of(view.cost_nanousd),
            requests=view.requests,
            daily_average=Money.of(view.daily_average_nanousd),
            projection=Money.of(view.projection_nanousd),
            last_month_to_date=Money.of(view.last_month_to_date_nanousd),
            last_month_total=Money.of(view.last_month_total_nanousd),
            change=view.change,
            direction=view.direction,
            quota=Money.of(view.quota_nanousd) if view.quota_nanousd is not None else None,
            quota_used=view.quota_share,
            tokens=view.tokens,
            input_tokens=view.input_tokens,
            output_tokens=view.output_tokens,
            daily_average_tokens=view.daily_average_tokens,
            projection_tokens=view.projection_tokens,
            quota_tokens=view.quota_tokens,
            quota_tokens_used=view.quota_tokens_share,
        )


class Pagination(BaseModel):
    """The By Day table's pages (``page``)."""

    page: int
    pages: int
    days_total: int = Field(description="Days with usage in the period.")
    days_per_page: int


class ModelPagination(BaseModel):
    """The By Model & Day table's pages (``model_page``), of rows: ``more`` when an older page follows."""

    page: int
    rows_per_page: int
    more: bool


class Distribution(BaseModel):
    members: int
    top_20_percent_share: float = Field(description="Share of the cost of the top 20% of members.")
    costs: list[Money] = Field(description="Each member's cost, highest first.")


class UsageReportOut(BaseModel):
    period: PeriodOut
    scope: ScopeOut
    summary: SummaryOut
    month: MonthCard
    pagination: Pagination
    model_pagination: ModelPagination
    by_day: list[DayOut] = Field(description="This page's days, newest first.")
    by_model_day: list[ModelDayOut] = Field(
        description="This page of rows (model_page), newest day first, then by cost."
    )
    trend: list[TrendPoint] = Field(description="Cost per day over the period, days without usage at zero.")
    weekly_pattern: list[HourOut]
    months: list[MonthOut] = Field(description="The last 12 calendar months, oldest first.")
    years: list[YearOut]
    models: list[ModelOut]
    providers: list[ProviderOut]
    breakdowns: dict[str, list[BreakdownRowOut]]
    top_users: list[UserLineOut] | None = Field(description="null unless seeing everyone's usage.")
    distribution: Distribution | None = Field(description="null unless seeing everyone's usage.")

    @classmethod
    def of(cls, r: UsageReport) -> UsageReportOut:
        s = r.summary
        costs = sorted(r.member_costs or [], reverse=True)
        return cls(
            period=PeriodOut(key=r.period.key, label=r.period.label, start=r.period.start, end=r.period.end),
            scope=ScopeOut(only_mine=r.scope.mine, forced=r.scope.forced),
            summary=SummaryOut(
                **Totals.values(s),
                errors=s.errors,
                avg_cost_per_request=Money.of(s.avg_cost_per_request_nanousd),
                active_users_7d=s.active_users_7d,
            ),
            month=MonthCard.of(r.month),
            pagination=Pagination(
                page=r.page, pages=r.pages, days_total=r.days_total, days_per_page=DAYS_PER_PAGE
            ),
            model_pagination=ModelPagination(
                page=r.model_page, rows_per_page=MODEL_ROWS_PER_PAGE, more=r.model_more
            ),
            by_day=[DayOut(**Totals.values(d), day=d.day, users=d.users) for d in r.days],
            by_model_day=[
                ModelDayOut(
                    **Totals.values(m), day=m.day, model=m.model_id, provider=m.provider_id, users=m.users
                )
                for m in r.model_days
            ],
            trend=[TrendPoint(day=d, cost=Money.of(v)) for d, v in r.trend],
            weekly_pattern=[
                HourOut(weekday=h.weekday, hour=h.hour, requests=h.requests, cost=Money.of(h.cost_nanousd))
                for h in r.hours
            ],
            months=[MonthOut(**Totals.values(m), month=m.start) for m in r.months],
            years=[
                YearOut(year=y, months=[Money.of(v) for v in values], total=Money.of(sum(values)))
                for y, values in sorted(r.years.items())
            ],
            models=[
                ModelOut(
                    **Totals.values(m),
                    model=m.model_id,
                    provider=m.provider_id,
                    errors=m.errors,
                    error_rate=m.error_rate,
                    cost_share=m.cost_share,
                    latency_avg_ms=m.latency_avg_ms,
                    latency_p50_ms=m.latency_p50_ms,
                    latency_p95_ms=m.latency_p95_ms,
                )
                for m in r.models
            ],
            providers=[
                ProviderOut(**Totals.values(p), provider=p.provider_id, cost_share=p.cost_share)
                for p in r.providers
            ],
            breakdowns={
                b.dimension: [
                    BreakdownRowOut(**Totals.values(row), value=row.value, label=label)
                    for label, row in b.rows
                ]
                for b in r.breakdowns
            },
            top_users=[UserLineOut.of(u) for u in r.top_users] if r.top_users is not None else None,
            distribution=Distribution(
                members=len(costs), top_20_percent_share=top_share(costs), costs=[Money.of(c) for c in costs]
            )
            if r.member_costs is not None
            else None,
        )


class ConversationOut(Totals):
    conversation_id: str
    user_id: uuid.UUID | None
    email: str | None
    first_at: datetime
    last_at: datetime
    duration_seconds: float

    @classmethod
    def of(cls, c: ConversationRow) -> ConversationOut:
        return cls(
            **cls.values(c),
            conversation_id=c.conversation_id,
            user_id=c.user_id,
            email=c.email,
            first_at=c.first_at,
            last_at=c.last_at,
            duration_seconds=c.duration.total_seconds(),
        )


class ConversationPage(BaseModel):
    items: list[ConversationOut]
    offset: int
    limit: int
    has_more: bool


class CostLineOut(BaseModel):
    kind: str = Field(description="A token kind, request, rounding or recorded_difference.")
    label: str
    quantity: int
    unit_price_usd: str | None = Field(description="USD per token (or per request), exact.")
    amount_usd: str = Field(description="quantity x unit price, exact.")
    amount: Money = Field(description="Rounded to the nano-USD; the lines add up to the message's cost.")


class AttachmentOut(BaseModel):
    name: str
    kind: str
    size_bytes: int
    estimated_tokens: int
    cost: Money = Field(description="Estimated tokens x the message's input price.")
    cost_share: float = Field(description="Of the message's cost.")
    reuse_count: int = Field(description="Messages of this conversation that sent the same file.")


class MessageOut(BaseModel):
    request_id: str
    message_id: str | None
    created_at: datetime
    model: str
    provider: str
    status_code: int
    email: str | None
    input_tokens: int
    output_tokens: int
    token_kinds: dict[str, int]
    web_searches: int = Field(description="Server-side web searches the request made (priced per search).")
    latency_ms: int = Field(description="Processing time.")
    time_to_first_token_ms: int | None
    cost: Money
    priced_from_catalog: bool
    cost_lines: list[CostLineOut]
    attachments: list[AttachmentOut]

    @classmethod
    def of(cls, m: Message) -> MessageOut:
        e = m.event
        return cls(
            request_id=e.request_id,
            message_id=e.message_id,
            created_at=e.created_at,
            model=e.model_id,
            provider=e.provider_id,
            status_code=e.status_code,
            email=m.email,
            input_tokens=m.input_tokens,
            output_tokens=m.output_tokens,
            token_kinds={
                "input": e.input_tokens,
                "cached_input_read": e.cached_input_tokens,
                "cache_write_5m": e.cache_write_5m_tokens,
                "cache_write_1h": e.cache_write_1h_tokens,
                "output": e.output_tokens,
                "reasoning": e.reasoning_tokens,
                "input_audio": e.input_audio_tokens,
                "output_audio": e.output_audio_tokens,
            },
            web_searches=e.web_searches,
            latency_ms=e.latency_ms,
            time_to_first_token_ms=e.time_to_first_token_ms,
            cost=Money.of(e.cost_nanousd),
            priced_from_catalog=m.priced_from_catalog,
            cost_lines=[
                CostLineOut(
                    kind=line.kind,
                    label=line.label,
                    quantity=line.quantity,
                    unit_price_usd=_decimal(line.unit_price_usd) if line.unit_price_usd is not None else None,
                    amount_usd=_decimal(line.amount_usd),
                    amount=Money.of(line.amount_nanousd),
                )
                for line in m.cost_lines
            ],
            attachments=[
                AttachmentOut(
                    name=a.name,
                    kind=a.kind,
                    size_bytes=a.size_bytes,
                    estimated_tokens=a.estimated_tokens,
                    cost=Money.of(a.cost_nanousd),
                    cost_share=a.cost_share,
                    reuse_count=a.reuse_count,
                )
                for a in m.attachments
            ],
        )


class FileImpactOut(BaseModel):
    name: str
    kind: str
    size_bytes: int
    estimated_tokens: int
    cost: Money = Field(description="Over every message that sent it.")
    reuse_count: int


class ConversationDetailOut(BaseModel):
    conversation: ConversationOut
    messages: list[MessageOut]
    truncated: bool = Field(description="True when only the first messages are listed.")
    files: list[FileImpactOut]

    @classmethod
    def of(cls, d: ConversationDetail) -> ConversationDetailOut:
        return cls(
            conversation=ConversationOut.of(d.header),
            messages=[MessageOut.of(m) for m in d.messages],
            truncated=d.truncated,
            files=[
                FileImpactOut(
                    name=f.name,
                    kind=f.kind,
                    size_bytes=f.size_bytes,
                    estimated_tokens=f.estimated_tokens,
                    cost=Money.of(f.cost_nanousd),
                    reuse_count=f.reuse_count,
                )
                for f in d.files
            ],
        )


def top_share(costs: list[int]) -> float:
    """The share of all cost of the top 20% of members (at least one member), as the charts compute it."""
    ordered = sorted(costs, reverse=True)
    total = sum(ordered)
    top = max(1, -(-2 * len(ordered) // 10))  # ceil(20% of the members) in integers
    return sum(ordered[:top]) / total if total else 0.0


def _decimal(value: Decimal) -> str:
    """Exact and plain (never exponent notation)."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
