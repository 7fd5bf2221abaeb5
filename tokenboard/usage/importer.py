"""``tokenboard import``: usage from a CSV or JSON Lines file, with the same checks and pipeline as the API.

A JSON Lines object is validated exactly as the API validates an event (a number given as a string is
refused); a CSV row's cells are all text, read as numbers, booleans and times
(``UsageEventCreate.from_text``).

Unlike the API (all or nothing), a file is imported line by line: valid lines are recorded in batches, each
batch committed, and invalid lines are reported with their line number. Running it again is safe: events
already recorded (same id) count as duplicates.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tokenboard.audit.service import Actor
from tokenboard.catalog.service import CatalogCache
from tokenboard.kit.context import SYSTEM_CLIENT
from tokenboard.kit.errors import BadRequest, NotFound
from tokenboard.kit.jobs import run_after_commit
from tokenboard.kit.live import LiveHub
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


# The columns a CSV file must have (the fields an event cannot do without) and those it may have.
REQUIRED_COLUMNS = tuple(name for name, info in UsageEventCreate.model_fields.items() if info.is_required())
KNOWN_COLUMNS = frozenset(UsageEventCreate.model_fields)


def check_header(columns: Sequence[str]) -> None:
    """Refuse, once and clearly, a CSV header row that lacks a required column or names an unknown one (a
    wrong separator, a missing header row): otherwise every line would be refused with the same error."""
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    unknown = [name for name in columns if name and name not in KNOWN_COLUMNS]
    if not missing and not unknown:
        return
    problems = []
    if missing:
        problems.append(f"lacks the required column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        problems.append(f"names unknown column{'s' if len(unknown) > 1 else ''} {names}")
    found = ", ".join(repr(name) for name in columns) if columns else "none (the first line is blank)"
    if any(";" in name for name in columns):
        hint = (
            "It contains ';': separate the columns with commas, not semicolons (spreadsheets set to some "
            "languages export CSV with ';')."
        )
    else:
        hint = (
            f"The first line must name the columns, separated by commas: {', '.join(REQUIRED_COLUMNS)} and "
            "any of the optional fields of the ingest API (docs/usage.md)."
        )
    raise BadRequest(f"The CSV header row {' and '.join(problems)}; columns found: {found}. {hint}")


def read_records(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, fields) per record, or (line number, error text) for a line that cannot be read.

    A CSV file's header row is checked first (:func:`check_header`). A UTF-8 byte order mark (what Excel's
    "CSV UTF-8" writes) is skipped.
    """
    with path.open(newline="", encoding="utf-8-sig") as f:
        if fmt == "csv":
            reader = csv.DictReader(f)
            if reader.fieldnames is None:
                return  # an empty file: nothing to import
            reader.fieldnames = [name.strip() for name in reader.fieldnames]
            check_header(reader.fieldnames)
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
    live: LiveHub | None = None,
) -> ImportReport:
    """Import every line of ``path`` into the organization; ``progress`` gets the lines read per batch.

    With ``live`` (shared through Redis), the organization's open usage pages hear of each committed batch,
    as with the ingest API; call ``live.drain()`` before the process exits.
    """
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
                    session, org.id, rows, actor=Actor.system(SYSTEM_CLIENT), source="import", live=live
                )
                await session.commit()
                await run_after_commit(session)  # the live announcement, once the batch is committed
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
                # CSV cells are all text; a JSON Lines object has JSON types, checked as the API checks them.
                event = (
                    UsageEventCreate.from_text(record)
                    if fmt == "csv"
                    else UsageEventCreate.model_validate(record)
                )
                pending.append((number, event))
            except ValidationError as exc:
                report.rejected.append((number, _validation_message(exc)))
        if len(pending) >= batch_size:
            await flush()
    await flush()
    report.rejected.sort()
    return report
