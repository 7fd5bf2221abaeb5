"""The usage journal on its own: events survive in files until committed, dead journals are found."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tokenboard.gateway import journal
from tokenboard.gateway.journal import UsageJournal, _encode_plainly, decode, encode, read_segment
from tokenboard.gateway.metering import UsageRecord
from tokenboard.kit.db import HashedUUID


def _record(n: int) -> UsageRecord:
    return UsageRecord(
        organization_id=uuid.uuid4(),
        request_id=f"req-{n}",
        provider_id="openai",
        model_id="openai/gpt-4o-mini",
        route="chat",
        stream=n % 2 == 0,
        status_code=200,
        user_id=uuid.uuid4(),
        lease_id="lease:abc:1",
        cost_nanousd=1234 + n,
        attachments=[{"type": "image_url", "bytes": 10, "estimated_tokens": 2}],
        conversation_id="conv-1",
    )


def test_a_record_survives_the_round_trip() -> None:
    record = _record(1)
    again = decode(encode(record))
    assert again == record


def test_a_record_orjson_cannot_write_takes_the_plain_encoding_and_survives() -> None:
    """Attachments come from the client's body, which ``json.loads`` read: a lone surrogate or an integer
    beyond 64 bits can be in them. orjson refuses both; the line is then written by the standard encoder."""
    for odd in ("name-\ud800", 2**70):
        record = _record(2)
        record.attachments = [{"type": "file", "name": odd, "bytes": 3}]
        line = encode(record)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert decode(line) == record


def test_the_gateways_records_take_the_fast_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway's ids are ``HashedUUID`` (its key cache): orjson does not know that subclass, so without
    help every line would fail there first and be written again the slow way."""

    def refuse(record: UsageRecord) -> bytes:
        raise AssertionError("took the plain encoding")

    record = _record(6)
    record.organization_id, record.api_key_id = HashedUUID(uuid.uuid4()), HashedUUID(uuid.uuid4())
    monkeypatch.setattr(journal, "_encode_plainly", refuse)
    line = encode(record)
    assert decode(line) == record
    assert f'"organization_id":"{record.organization_id}"'.encode() in line


def test_a_line_is_what_the_plain_encoding_would_write() -> None:
    """The fast encoding reads back to the same record and the same values as the plain one (which was the
    only one before: journals left by an older process are read the same way)."""
    record = _record(4)
    record.team_id, record.gateway_overhead_ms, record.time_to_first_token_ms = uuid.uuid4(), 0.157, 12
    fast, plain = json.loads(encode(record)), json.loads(_encode_plainly(record))
    assert fast.pop("journal_segment") is None
    assert fast == plain
    assert decode(encode(record)) == decode(_encode_plainly(record)) == record


def test_segments_are_deleted_once_committed_and_rotated(tmp_path: Path) -> None:
    journal = UsageJournal(tmp_path, "inst-a")
    journal.open()
    records = [_record(n) for n in range(5)]
    for record in records:
        journal.append(record)
    first = tmp_path / "inst-a-1.jsonl"
    assert len(read_segment(first)[0]) == 5
    journal.committed(records[:3])
    assert first.exists()  # two events are not in the database yet
    journal.append(later := _record(9))
    journal.committed([*records[3:], later])
    assert not first.exists() and (tmp_path / "inst-a-2.jsonl").exists()
    journal.close()
    assert list(tmp_path.iterdir()) == []


def test_a_journal_is_an_orphan_only_once_its_process_let_go(tmp_path: Path) -> None:
    dead = UsageJournal(tmp_path, "dead")
    dead.open()
    dead.append(_record(1))
    live = UsageJournal(tmp_path, "live")
    live.open()
    with live.orphans() as found:
        assert found == []  # "dead" still holds its lock: its process is alive
    # The process dies without closing anything: the kernel drops its lock, the files stay.
    import os

    assert dead._lock_fd is not None and dead._fd is not None
    os.close(dead._lock_fd)
    os.close(dead._fd)
    with live.orphans() as found:
        assert [(instance, [p.name for p in paths]) for instance, paths in found] == [
            ("dead", ["dead-1.jsonl"])
        ]
        records, bad = read_segment(found[0][1][0])
        assert [r.request_id for r in records] == ["req-1"] and bad == 0
        live.discard(*found[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live-1.jsonl", "live.lock"]


def test_a_torn_last_line_is_counted_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "x-1.jsonl"
    path.write_bytes(encode(_record(1)) + encode(_record(2))[:40])
    records, bad = read_segment(path)
    assert [r.request_id for r in records] == ["req-1"] and bad == 1
