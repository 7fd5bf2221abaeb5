"""``tokenboard import``: usage from a CSV or JSON Lines file, with the same checks and pipeline as the API.

Unlike the API (all or nothing), a file is imported line by line: valid lines are recorded in batches, each
batch committed, and invalid lines are reported with their line number. Running it again is safe: events
already recorded (same id) count as duplicates.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenboard.audit.service import Actor
from tokenboard.catalog.service import CatalogCache
from tokenboard.kit.context import SYSTEM_CLIENT
from tokenboard.kit.errors import NotFound
from tokenboard.models import Organization
from tokenboard.usage.schemas import MAX_BATCH, UsageEventCreate
from tokenboard.usage.service import Directory, usage

FORMATS = ("csv", "jsonl")


@dataclass
class ImportReport:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)


def detect_format(path: Path) -> str:
    return "csv" if path.suffix.lower() == ".csv" else "jsonl"


def count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def read_records(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, fields) per record, or (line number, error text) for a line that cannot be read."""
    with path.open(newline="", encoding="utf-8") as f:
        if fmt == "csv":
            reader = csv.DictReader(f)
            for row in reader:
                # An empty cell is "not given"; None keys are surplus cells past the header.
                if None in row:
                    yield reader.line_num, "more cells than the header has columns"
                    continue
                yield reader.line_num, {k: v for k, v in row.items() if v not in ("", None)}
            return
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, f"not JSON: {exc.msg}"
                continue
            yield (number, value) if isinstance(value, dict) else (number, "not a JSON object")


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


async def resolve_org(session: AsyncSession, ref: str) -> Organization:
    """An organization by id, or by its exact name (case-insensitive) when that is unambiguous."""
    try:
        found = await session.get(Organization, uuid.UUID(ref))
    except ValueError:
        matches = list(
            await session.scalars(select(Organization).where(func.lower(Organization.name) == ref.lower()))
        )
        if len(matches) > 1:
            raise NotFound(f"{len(matches)} organizations are named {ref!r}: give the id instead.") from None
        found = matches[0] if matches else None
    if found is None:
        raise NotFound(f"No organization {ref!r}.")
    return found


async def import_file(
    sessionmaker: async_sessionmaker[AsyncSession],
    path: Path,
    org_ref: str,
    *,
    fmt: str | None = None,
    progress: Callable[[int], None] | None = None,
    batch_size: int = MAX_BATCH,
) -> ImportReport:
    """Import every line of ``path`` into the organization; ``progress`` gets the lines read per batch."""
    fmt = fmt or detect_format(path)
    catalog = CatalogCache()
    async with sessionmaker() as session:
        org = await resolve_org(session, org_ref)
        await catalog.load(session)
        directory = await Directory.load(session, org.id)
    report = ImportReport()
    pending: list[tuple[int, UsageEventCreate]] = []
    position = {"read": 0, "reported": 0}

    async def flush() -> None:
        if pending:
            rows, errors = usage.prepare(
                org.id, [e for _, e in pending], catalog=catalog, directory=directory, source="import"
            )
            report.rejected.extend((pending[e.index][0], e.message) for e in errors)
            async with sessionmaker() as session:
                result = await usage.record(
                    session, org.id, rows, actor=Actor.system(SYSTEM_CLIENT), source="import"
                )
                await session.commit()
            report.accepted += result.accepted
            report.duplicates += result.duplicates
            pending.clear()
        if progress is not None:
            progress(position["read"] - position["reported"])
        position["reported"] = position["read"]

    for number, record in read_records(path, fmt):
        position["read"] = number
        if isinstance(record, str):
            report.rejected.append((number, record))
        else:
            try:
                pending.append((number, UsageEventCreate.model_validate(record)))
            except ValidationError as exc:
                report.rejected.append((number, _validation_message(exc)))
        if len(pending) >= batch_size:
            await flush()
    await flush()
    report.rejected.sort()
    return report
