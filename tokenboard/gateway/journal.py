"""The usage journal: every finished request is appended to a local file before its response ends.

Usage events are written to the database in batches, off the request path. Between the response and the
batch commit an event lives only in memory, so a process killed at that moment would lose it. To close that
gap each process appends every event to its own journal (one ``write(2)`` of a JSON line on a file opened
with ``O_APPEND``): once ``write`` returns, the kernel has the bytes, and they survive the process being
killed (SIGKILL included). Power loss is the database's job, not this file's.

Files, in one directory per host:

- ``<instance>.lock``: held with ``flock`` for the life of the process that owns the journal;
- ``<instance>-<n>.jsonl``: segments of events, in order. A segment is deleted once every event in it is
  committed (the writer reports each batch), and a new one is started.

At startup a process looks for journals whose lock nobody holds (their process died), writes their events
through the same idempotent batch write (an event already in the database inserts and bills nothing) and
deletes them. Two processes starting at once cannot both recover the same journal: the lock decides.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from tokenboard.gateway.metering import UsageRecord
from tokenboard.kit.jsonenc import dumps_bytes

log = logging.getLogger("tokenboard.journal")

_UUID_FIELDS = {"organization_id", "user_id", "api_key_id", "workspace_id", "team_id"}
_KNOWN = {f.name for f in fields(UsageRecord)}


def _as_text(value: Any) -> str:
    """What orjson cannot write itself: the gateway's ids are ``HashedUUID``, a subclass it does not know."""
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode(record: UsageRecord) -> bytes:
    """One JSON line. orjson writes the dataclass, its ids and its time itself, in one call: 1.5 against 5
    us warm for a gateway's record, and about half as long as before when the process has just woken (it
    runs before a response ends)."""
    try:
        return orjson.dumps(record, default=_as_text, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, a lone surrogate
        return _encode_plainly(record)


def _encode_plainly(record: UsageRecord) -> bytes:
    # A shallow copy: ``dataclasses.asdict`` deep-copies every value and was most of this function's cost.
    values = dict(record.__dict__)
    values.pop("journal_segment", None)
    for name in _UUID_FIELDS:
        if values[name] is not None:
            values[name] = str(values[name])
    values["created_at"] = record.created_at.isoformat()
    return dumps_bytes(values) + b"\n"


def decode(line: bytes) -> UsageRecord:
    values: dict[str, Any] = {k: v for k, v in json.loads(line).items() if k in _KNOWN}
    for name in _UUID_FIELDS:
        if values.get(name) is not None:
            values[name] = uuid.UUID(values[name])
    values["created_at"] = datetime.fromisoformat(values["created_at"])
    return UsageRecord(**values)


class UsageJournal:
    def __init__(self, directory: Path, instance: str) -> None:
        self.directory = directory
        self.instance = instance
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._segment = 0
        self._appended: dict[int, int] = {}
        self._committed: dict[int, int] = {}

    # ------------------------------------------------------------------ this process's journal

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # Lock under a temporary name, then rename: a recovering process never sees an unlocked live lock.
        temporary = self.directory / f".{self.instance}.lock.tmp"
        fd = os.open(temporary, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(temporary, self._lock_path(self.instance))
        self._lock_fd = fd
        self._start_segment()

    def _lock_path(self, instance: str) -> Path:
        return self.directory / f"{instance}.lock"

    def _segment_path(self, number: int) -> Path:
        return self.directory / f"{self.instance}-{number}.jsonl"

    def _start_segment(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._segment += 1
        self._appended[self._segment] = 0
        self._committed[self._segment] = 0
        self._fd = os.open(self._segment_path(self._segment), os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)

    def append(self, record: UsageRecord) -> None:
        """Write the event to the journal (one system call) and note which segment holds it."""
        if self._fd is None:
            return
        os.write(self._fd, encode(record))
        record.journal_segment = self._segment
        self._appended[self._segment] += 1

    def committed(self, records: list[UsageRecord]) -> None:
        """These events are in the database: segments whose every event is committed are deleted."""
        for record in records:
            if record.journal_segment is not None and record.journal_segment in self._committed:
                self._committed[record.journal_segment] += 1
        for number in list(self._appended):
            done = self._committed[number] >= self._appended[number]
            if not done or self._appended[number] == 0:
                continue
            if number == self._segment:
                self._start_segment()
            with contextlib.suppress(FileNotFoundError):
                self._segment_path(number).unlink()
            del self._appended[number], self._committed[number]

    def close(self) -> None:
        """At a clean shutdown, after the writer drained: what is left was not written, so it stays."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        for number in list(self._appended):
            if self._committed[number] >= self._appended[number]:
                with contextlib.suppress(FileNotFoundError):
                    self._segment_path(number).unlink()
        if self._lock_fd is not None:
            if not any(self.directory.glob(f"{self.instance}-*.jsonl")):
                with contextlib.suppress(FileNotFoundError):
                    self._lock_path(self.instance).unlink()
            os.close(self._lock_fd)
            self._lock_fd = None

    # ------------------------------------------------------------------ journals of dead processes

    @contextlib.contextmanager
    def orphans(self) -> Iterator[list[tuple[str, list[Path]]]]:
        """Journals whose process is gone, locked for this process while the caller replays them.

        Yields (instance, segment paths). The caller deletes what it replayed with :meth:`discard`.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        held: list[int] = []
        found: list[tuple[str, list[Path]]] = []
        try:
            for lock_path in sorted(self.directory.glob("*.lock")):
                instance = lock_path.name.removesuffix(".lock")
                if instance == self.instance:
                    continue
                try:
                    fd = os.open(lock_path, os.O_RDWR)
                except FileNotFoundError:
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)  # its process is alive
                    continue
                held.append(fd)
                segments = sorted(
                    self.directory.glob(f"{instance}-*.jsonl"),
                    key=lambda p: int(p.stem.rsplit("-", 1)[1]),
                )
                found.append((instance, segments))
            yield found
        finally:
            for fd in held:
                os.close(fd)

    def discard(self, instance: str, segments: list[Path]) -> None:
        for path in segments:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        with contextlib.suppress(FileNotFoundError):
            self._lock_path(instance).unlink()


def read_segment(path: Path) -> tuple[list[UsageRecord], int]:
    """The events in a segment, and how many lines were unreadable (a torn last line after a crash)."""
    records: list[UsageRecord] = []
    bad = 0
    with path.open("rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                records.append(decode(line))
            except (ValueError, TypeError, KeyError):
                bad += 1
    return records, bad
