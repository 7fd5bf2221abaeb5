"""Usage events written in batches off the request path, settling each request's credits exactly once.

The gateway hands a finished request to :class:`UsageWriter`; a background task writes up to ``max_batch``
events per transaction (or whatever arrived within ``max_delay``). An event is idempotent on its
(organization, request id): a retried write inserts nothing and bills nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenboard.kit.db import utcnow
from tokenboard.ledger.service import ledger
from tokenboard.models import ApiKey
from tokenboard.usage.ingest import record_events

if TYPE_CHECKING:
    from tokenboard.gateway.journal import UsageJournal

log = logging.getLogger("tokenboard.metering")


@dataclass
class UsageRecord:
    organization_id: uuid.UUID
    request_id: str
    provider_id: str
    model_id: str
    route: str
    stream: bool
    status_code: int
    reserved: bool = False
    lease_id: str | None = None
    journal_segment: int | None = None
    user_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    workspace_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    error_type: str | None = None
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    web_searches: int = 0
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0
    cost_nanousd: int = 0
    usage_estimated: bool = False
    cancelled: bool = False
    latency_ms: int = 0
    time_to_first_token_ms: int | None = None
    gateway_overhead_ms: float = 0.0
    feature: str | None = None
    tool: str | None = None
    integration: str | None = None
    conversation_id: str | None = None
    message_id: str | None = None
    attachments: list[dict[str, Any]] | None = None
    created_at: datetime = field(default_factory=utcnow)

    def row(self) -> dict[str, Any]:
        values = dict(
            self.__dict__
        )  # shallow: the values are not changed, so no deep copy (asdict) is needed
        values.pop("reserved")
        values.pop("lease_id")
        values.pop("journal_segment")
        values["source"] = "gateway"
        return values


@dataclass
class BatchResult:
    inserted: int = 0
    # (organization, lease id) -> credits drawn out of that lease for the requests settled
    drawn: dict[tuple[uuid.UUID, str], int] = field(default_factory=dict)
    # organization -> (requests, cost) of the events new in this batch
    new_by_org: dict[uuid.UUID, tuple[int, int]] = field(default_factory=dict)


async def write_batch(session: AsyncSession, records: list[UsageRecord]) -> BatchResult:
    """Insert the events and bill each new one exactly once: a consumption entry, and its cost drawn out of
    the lease (or reservation) that held credits for it. Returns what was new and what was drawn."""
    if not records:
        return BatchResult()
    # The one ingestion pipeline: idempotent insert, rollups kept current in the same transaction.
    new = await record_events(session, [r.row() for r in records])
    inserted = {(row["organization_id"], row["request_id"]) for row in new}
    per_org: dict[uuid.UUID, tuple[int, int]] = {}
    for row in new:
        requests, cost = per_org.get(row["organization_id"], (0, 0))
        per_org[row["organization_id"]] = (requests + 1, cost + row["cost_nanousd"])
    last_used: dict[tuple[uuid.UUID, uuid.UUID], datetime] = {}
    key_spend: dict[tuple[uuid.UUID, uuid.UUID], int] = {}
    settle: list[tuple[uuid.UUID, str, int, str]] = []
    held: set[tuple[uuid.UUID, str]] = set()
    release: list[tuple[uuid.UUID, str]] = []
    draw: dict[tuple[uuid.UUID, str], int] = {}
    for record in records:
        if (record.organization_id, record.request_id) not in inserted:
            continue  # already written by an earlier attempt: never billed twice
        if record.status_code < 400 or record.cost_nanousd > 0:
            memo = f"{record.model_id} via {record.route}"
            settle.append((record.organization_id, record.request_id, record.cost_nanousd, memo))
            if record.reserved:
                held.add((record.organization_id, record.request_id))
            if record.lease_id is not None:
                pair_lease = (record.organization_id, record.lease_id)
                draw[pair_lease] = draw.get(pair_lease, 0) + record.cost_nanousd
        elif record.reserved:
            release.append((record.organization_id, record.request_id))
        if record.api_key_id is not None:
            last_used[(record.organization_id, record.api_key_id)] = record.created_at
            pair = (record.organization_id, record.api_key_id)
            key_spend[pair] = key_spend.get(pair, 0) + record.cost_nanousd
    await ledger.settle_many(session, settle=settle, release=release, held=held)
    drawn = {
        (org, lease_id): await ledger.draw_lease(session, org, lease_id=lease_id, amount=amount)
        for (org, lease_id), amount in sorted(draw.items(), key=lambda item: (str(item[0][0]), item[0][1]))
    }
    for (org_id, key_id), at in last_used.items():
        await session.execute(
            update(ApiKey)
            .where(ApiKey.organization_id == org_id, ApiKey.id == key_id)
            .values(last_used_at=at, spent_nanousd=ApiKey.spent_nanousd + key_spend.get((org_id, key_id), 0))
            .execution_options(synchronize_session=False)
        )
    return BatchResult(inserted=len(inserted), drawn=drawn, new_by_org=per_org)


WrittenHook = Callable[[list[UsageRecord], BatchResult], None]


class UsageWriter:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        max_batch: int = 500,
        max_delay: float = 0.05,
        journal: UsageJournal | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self.journal = journal
        # ``None`` in the queue asks the writer to stop waiting for a fuller batch (drain, shutdown).
        self._queue: asyncio.Queue[UsageRecord | None] = asyncio.Queue()
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.written = 0
        # Called after each batch commits (or is given up): credit leases, live updates.
        self.hooks: list[WrittenHook] = []

    def journal_record(self, record: UsageRecord) -> None:
        """Journal a finished request's event at once: from here it survives a crash."""
        if self.journal is not None:
            self.journal.append(record)

    def enqueue(self, record: UsageRecord) -> None:
        """Queue a journaled event for the next batch (the gateway sends the end of the request's response
        in between: the client does not wait for this)."""
        self._idle.clear()
        self._queue.put_nowait(record)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while not self._queue.empty():
            first = await self._queue.get()
            if first is None:
                continue
            batch = [first]
            deadline = asyncio.get_running_loop().time() + self._max_delay
            while len(batch) < self._max_batch:
                timeout = deadline - asyncio.get_running_loop().time()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), timeout)
                except TimeoutError:
                    break
                if item is None:
                    break
                batch.append(item)
            await self._write(batch)
        self._idle.set()

    async def _write(self, batch: list[UsageRecord]) -> None:
        for attempt in range(5):
            try:
                async with self._sessionmaker() as session:
                    result = await write_batch(session, batch)
                    await session.commit()
                self.written += result.inserted
                if self.journal is not None:
                    self.journal.committed(batch)
                self._after(batch, result)
                return
            except Exception:  # the database may be briefly unavailable: retry, the write is idempotent
                log.exception("writing %d usage events failed (attempt %d)", len(batch), attempt + 1)
                await asyncio.sleep(0.2 * 2**attempt)
        log.error(
            "dropping %d usage events after repeated failures: %s", len(batch), [r.request_id for r in batch]
        )
        self._after(batch, BatchResult())

    def _after(self, batch: list[UsageRecord], result: BatchResult) -> None:
        for hook in self.hooks:
            try:
                hook(batch, result)
            except Exception:  # a hook must never lose the writer
                log.exception("usage writer hook failed")

    async def recover(self, chunk: int = 1000) -> int:
        """Write the events journaled by processes that died, then let go of their leases.

        Idempotent like every batch: an event already written inserts and bills nothing. A journal that
        cannot be written now (the database is down) is kept for the next start. Returns events inserted.
        """
        from tokenboard.gateway.journal import read_segment

        if self.journal is None:
            return 0
        inserted = 0
        with self.journal.orphans() as found:
            for instance, segments in found:
                try:
                    for path in segments:
                        records, bad = read_segment(path)
                        if bad:
                            log.warning("%s: %d unreadable journal lines (torn by a crash)", path.name, bad)
                        for start in range(0, len(records), chunk):
                            async with self._sessionmaker() as session:
                                result = await write_batch(session, records[start : start + chunk])
                                await session.commit()
                            inserted += result.inserted
                    async with self._sessionmaker() as session:
                        await ledger.release_leases_of(session, instance)
                        await session.commit()
                except Exception:
                    log.exception("replaying the usage journal of %s failed; it is kept for later", instance)
                    continue
                self.journal.discard(instance, segments)
                log.info("recovered the usage journal of %s", instance)
        self.written += inserted
        return inserted

    async def drain(self) -> None:
        """Write everything queued so far now, without waiting for a fuller batch (tests, shutdown)."""
        if not self._idle.is_set():
            self._queue.put_nowait(None)
        await self._idle.wait()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
