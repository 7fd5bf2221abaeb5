"""Usage recorded elsewhere (the ingest API, ``tokenboard import``): validated, priced, then the pipeline.

Such events were paid for elsewhere: they are recorded with source ``api`` or ``import`` for analytics and
never debit credits (docs/usage.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from operator import attrgetter, gt
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.audit.service import Actor, audit
from tokenboard.catalog.pricing import TokenUsage, cost_nanousd
from tokenboard.catalog.service import CatalogCache
from tokenboard.kit.errors import ValidationFailed
from tokenboard.kit.jobs import after_commit
from tokenboard.kit.live import LiveHub
from tokenboard.kit.money import to_nanousd
from tokenboard.kit.tenancy import scoped
from tokenboard.models import Membership, Team, User, Workspace
from tokenboard.usage.ingest import EventColumns, record_events
from tokenboard.usage.schemas import IngestResult, UsageEventCreate

# An event from the future is a clock or unit error, not usage; so is one from more than ten years ago (a
# zero timestamp, seconds read as milliseconds), which would also stretch every "all time" chart to it.
FUTURE_TOLERANCE = timedelta(days=1)
OLDEST = timedelta(days=3653)


@dataclass(frozen=True, slots=True)
class EventError:
    index: int  # position in the batch (the import reports the line instead)
    message: str


@dataclass
class Directory:
    """The organization's members, workspaces and teams, loaded once per batch to check attribution."""

    user_ids: set[uuid.UUID] = field(default_factory=set)
    emails: dict[str, uuid.UUID] = field(default_factory=dict)
    workspace_ids: set[uuid.UUID] = field(default_factory=set)
    team_ids: set[uuid.UUID] = field(default_factory=set)

    @classmethod
    async def load(cls, session: AsyncSession, org_id: uuid.UUID) -> Directory:
        members = await session.execute(
            scoped(select(User.id, User.email).select_from(Membership), Membership, org_id).join(
                User, User.id == Membership.user_id
            )
        )
        directory = cls()
        for user_id, email in members:
            directory.user_ids.add(user_id)
            directory.emails[email.lower()] = user_id
        directory.workspace_ids = set(await session.scalars(scoped(select(Workspace.id), Workspace, org_id)))
        directory.team_ids = set(await session.scalars(scoped(select(Team.id), Team, org_id)))
        return directory


class UsageService:
    def prepare(
        self,
        org_id: uuid.UUID,
        events: Sequence[UsageEventCreate],
        *,
        catalog: CatalogCache,
        directory: Directory,
        source: str,
        now: datetime | None = None,
    ) -> tuple[EventColumns, list[EventError]]:
        """Check and price each event: the ``usage_events`` rows of the valid ones (a column at a time), and
        the errors.

        A batch whose every event is valid (the usual case) is checked a field at a time. Otherwise each
        event is checked on its own, so that each error names its event, and the rows are made of the valid
        ones.
        """
        now = now or datetime.now(UTC)
        columns = self._columns(org_id, events, catalog, directory, source, now)
        if columns is not None:
            return columns, []
        valid: list[UsageEventCreate] = []
        errors: list[EventError] = []
        for index, event in enumerate(events):
            try:
                self._check(event, catalog, directory, now)
                valid.append(event)
            except ValueError as exc:
                errors.append(EventError(index, str(exc)))
        columns = self._columns(org_id, valid, catalog, directory, source, now)
        if columns is None and valid:  # the two ways of checking disagree: a bug, never a silent loss
            raise RuntimeError("usage events passed their checks one by one but not as a batch")
        return (columns if columns is not None else EventColumns({}, 0)), errors

    def _columns(
        self,
        org_id: uuid.UUID,
        events: Sequence[UsageEventCreate],
        catalog: CatalogCache,
        directory: Directory,
        source: str,
        now: datetime,
    ) -> EventColumns | None:
        """The rows :meth:`_row` makes, a column at a time, if every event passes its checks; else None.

        A field at a time, the checks are set operations and the rows are never dicts (about 5 us of CPU
        per event less on a batch of 5,000; decision 0003).
        """
        count = len(events)
        if not count:
            return None
        given = dict(zip(_FIELDS, zip(*map(_pick_fields, events), strict=True), strict=True))
        created = list(map(_utc, given["timestamp"]))
        if max(created) > now + FUTURE_TOLERANCE or min(created) < now - OLDEST:
            return None
        entries = list(map(catalog.get, given["model"]))
        if any(entry is None for entry in entries):
            return None
        if not _known(given["workspace_id"], directory.workspace_ids) or not _known(
            given["team_id"], directory.team_ids
        ):
            return None
        if any(map(gt, given["input_audio_tokens"], given["input_tokens"])) or any(
            map(gt, given["output_audio_tokens"], given["output_tokens"])
        ):
            return None
        users: Sequence[uuid.UUID | None] = given["user_id"]
        costs: Sequence[int | None] = given["cost_nanousd"]
        try:
            if any(email is not None for email in given["user_email"]):
                users = [self._user(event, directory) for event in events]
            elif not _known(users, directory.user_ids):
                return None
            if any(cost is None for cost in costs) or any(usd is not None for usd in given["cost_usd"]):
                costs = [self._cost(e, catalog, at) for e, at in zip(events, created, strict=True)]
        except ValueError:
            return None
        values: dict[str, Sequence[Any]] = {
            "organization_id": [org_id] * count,
            "request_id": given["id"],
            "created_at": created,
            "source": [source] * count,
            "route": ["external"] * count,
            "user_id": users,
            "workspace_id": given["workspace_id"],
            "team_id": given["team_id"],
            "provider_id": [entry.provider_id for entry in entries],  # type: ignore[union-attr]
            "model_id": [entry.model_id for entry in entries],  # type: ignore[union-attr]
            "cost_nanousd": costs,
        }
        values.update((name, given[name]) for name in _AS_GIVEN)
        return EventColumns(values, count)

    def _check(
        self, event: UsageEventCreate, catalog: CatalogCache, directory: Directory, now: datetime
    ) -> None:
        """Raise what is wrong with one event, in words that name it: the checks of :meth:`_columns`."""
        at = _utc(event.timestamp)
        if at > now + FUTURE_TOLERANCE:
            raise ValueError(f"timestamp {at.isoformat()} is in the future")
        if at < now - OLDEST:
            raise ValueError(f"timestamp {at.isoformat()} is more than ten years old")
        if catalog.get(event.model) is None:
            raise ValueError(f"model {event.model!r} is not in the catalog")
        self._user(event, directory)
        _member_of(event.workspace_id, directory.workspace_ids, "workspace")
        _member_of(event.team_id, directory.team_ids, "team")
        for audio, total in (
            ("input_audio_tokens", "input_tokens"),
            ("output_audio_tokens", "output_tokens"),
        ):
            if getattr(event, audio) > getattr(event, total):
                raise ValueError(
                    f"{audio} ({getattr(event, audio)}) exceeds {total} ({getattr(event, total)})"
                )
        self._cost(event, catalog, at)

    @staticmethod
    def _user(event: UsageEventCreate, directory: Directory) -> uuid.UUID | None:
        user_id = event.user_id
        if event.user_email is not None:
            by_email = directory.emails.get(event.user_email.strip().lower())
            if by_email is None:
                raise ValueError(f"{event.user_email} is not a member of this organization")
            if user_id is not None and user_id != by_email:
                raise ValueError("user_id and user_email name different members")
            user_id = by_email
        if user_id is not None and user_id not in directory.user_ids:
            raise ValueError(f"user {user_id} is not a member of this organization")
        return user_id

    @staticmethod
    def _cost(event: UsageEventCreate, catalog: CatalogCache, at: datetime) -> int:
        if event.cost_nanousd is not None and event.cost_usd is not None:
            raise ValueError("give cost_nanousd or cost_usd, not both")
        if event.cost_nanousd is not None:
            return event.cost_nanousd
        if event.cost_usd is not None:
            try:
                amount = Decimal(event.cost_usd.strip())
            except InvalidOperation as exc:
                raise ValueError(f"cost_usd {event.cost_usd!r} is not a decimal amount") from exc
            if not amount.is_finite() or amount < 0 or amount > 1_000_000:
                raise ValueError(f"cost_usd {event.cost_usd!r} must be between 0 and 1000000")
            return to_nanousd(amount)
        entry = catalog.get(event.model)
        prices = entry.price_at(at) if entry is not None else None
        if prices is None:
            raise ValueError(
                f"model {event.model!r} has no price on {at:%Y-%m-%d}: give cost_nanousd or cost_usd"
            )
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
        return cost_nanousd(prices, usage)  # compute_cost's total, in integers (property-tested equal)

    async def ingest(
        self,
        session: AsyncSession,
        org_id: uuid.UUID,
        events: Sequence[UsageEventCreate],
        *,
        catalog: CatalogCache,
        actor: Actor,
        source: str = "api",
        live: LiveHub | None = None,
    ) -> IngestResult:
        """Record a batch all or nothing: any invalid event refuses the batch (422 naming each index).

        With ``live``, open usage pages of the organization hear of the new events once they are committed.
        """
        await catalog.ensure_loaded(session)
        directory = await Directory.load(session, org_id)
        rows, errors = self.prepare(org_id, events, catalog=catalog, directory=directory, source=source)
        if errors:
            raise ValidationFailed(
                f"{len(errors)} of {len(events)} events are invalid; nothing was recorded. "
                f"First: event {errors[0].index}: {errors[0].message}",
                details=[{"index": e.index, "message": e.message} for e in errors[:100]],
            )
        return await self.record(session, org_id, rows, actor=actor, source=source, live=live)

    async def record(
        self,
        session: AsyncSession,
        org_id: uuid.UUID,
        rows: EventColumns,
        *,
        actor: Actor,
        source: str,
        live: LiveHub | None = None,
    ) -> IngestResult:
        """Record prepared rows through the pipeline, with one audit event for the batch."""
        inserted = await record_events(session, rows)
        if live is not None and inserted:
            requests, cost = len(inserted), inserted.total("cost_nanousd")

            async def tell_open_pages() -> None:
                live.notify_usage(org_id, requests=requests, cost_nanousd=cost)

            after_commit(session, tell_open_pages)
        result = IngestResult(accepted=len(inserted), duplicates=len(rows) - len(inserted))
        audit.record(
            session,
            organization_id=org_id,
            actor=actor,
            action="usage.ingested",
            target_type="usage_events",
            after={"source": source, "accepted": result.accepted, "duplicates": result.duplicates},
        )
        return result


# The fields of an event the columns are made of; those in _AS_GIVEN are stored as they came.
_AS_GIVEN = (
    "stream", "status_code", "error_type", "input_tokens", "cached_input_tokens", "cache_write_5m_tokens",
    "cache_write_1h_tokens", "output_tokens", "reasoning_tokens", "input_audio_tokens", "output_audio_tokens",
    "web_searches", "cancelled", "latency_ms", "feature", "tool", "integration", "conversation_id",
    "message_id",
)  # fmt: skip
_FIELDS = (
    "id", "timestamp", "model", "user_id", "user_email", "workspace_id", "team_id", "cost_nanousd",
    "cost_usd", *_AS_GIVEN,
)  # fmt: skip
_pick_fields = attrgetter(*_FIELDS)


def _utc(at: datetime) -> datetime:
    """An event's timestamp in UTC; one without an offset is taken as UTC."""
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)


def _known(values: Sequence[uuid.UUID | None], known: set[uuid.UUID]) -> bool:
    """Every value is None or one of ``known``."""
    return set(values).difference((None,)) <= known


def _member_of(value: uuid.UUID | None, known: set[uuid.UUID], kind: str) -> uuid.UUID | None:
    if value is not None and value not in known:
        raise ValueError(f"{kind} {value} is not in this organization")
    return value


usage = UsageService()
