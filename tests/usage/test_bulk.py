"""The pipeline's shortcuts store exactly what SQLAlchemy would, and refuse what it would refuse."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy.dialects import sqlite

from tokenboard.kit import bulk
from tokenboard.kit.db import uuid7_many
from tokenboard.kit.errors import BadRequest
from tokenboard.models import UsageEvent
from tokenboard.usage.ingest import COLUMNS, _complete_all, complete


class _Bind:
    dialect = sqlite.dialect()


class _Session:
    def get_bind(self) -> _Bind:
        return _Bind()


def _value(rnd: random.Random, kind: str) -> Any:
    if kind == "uuid":
        return uuid.UUID(int=rnd.getrandbits(128))
    if kind == "bool":
        return rnd.random() < 0.5
    offset = timezone(timedelta(minutes=rnd.randrange(-14 * 60, 14 * 60 + 1, 15)))
    micro = 0 if rnd.random() < 0.3 else rnd.randrange(1_000_000)
    year = rnd.choice([2, 999, 2026, 2026, 9998])
    return datetime(
        year, rnd.randrange(1, 13), rnd.randrange(1, 29), rnd.randrange(24), 59, 59, micro, offset
    )


KINDS = {"organization_id": "uuid", "id": "uuid", "user_id": "uuid", "created_at": "time", "stream": "bool"}


def test_fast_converters_store_what_sqlalchemy_stores() -> None:
    table = UsageEvent.__table__
    names = list(KINDS)
    fast = bulk.sqlite_converters(table, names, _Session())  # type: ignore[arg-type]
    dialect = sqlite.dialect()
    # SQLAlchemy's own chain: a TypeDecorator's process_bind_param, then its implementation's processor.
    reference = [table.c[name].type._cached_bind_processor(dialect) for name in names]
    rnd = random.Random(7)
    for _ in range(3000):
        record = tuple(
            None if n == "user_id" and rnd.random() < 0.2 else _value(rnd, KINDS[n]) for n in names
        )
        stored = bulk.to_storage([record], fast)[0]
        for name, value, got, process in zip(names, record, stored, reference, strict=True):
            expected = value if value is None or process is None else process(value)
            assert got == expected, (name, value, got, expected)


def test_fast_converter_refuses_naive_timestamps() -> None:
    fast = bulk.sqlite_converters(UsageEvent.__table__, ["created_at"], _Session())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="naive"):
        bulk.to_storage([(datetime(2026, 1, 1),)], fast)


def test_uuid7_many_are_distinct_version_7_and_of_this_millisecond() -> None:
    ids = uuid7_many(10_000)
    assert len(set(ids)) == 10_000
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert all(uuid.UUID(str(i)) == i and hash(uuid.UUID(i.hex)) == hash(i) for i in ids[:100])
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    assert {i.int >> 80 for i in ids} <= set(range(now_ms - 5_000, now_ms + 1))


ORG = uuid.uuid4()
BASE = {"organization_id": ORG, "request_id": "r1", "provider_id": "openai", "model_id": "openai/gpt-4o"}


def test_completion_fills_defaults_and_keeps_given_values() -> None:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    rows = _complete_all([BASE, {**BASE, "request_id": "r2", "created_at": at, "user_id": None}])
    first, second = (dict(zip(COLUMNS, r, strict=True)) for r in rows)
    assert first["id"].version == 7 and first["created_at"].tzinfo is not None
    assert first["status_code"] == 200 and first["source"] == "gateway" and first["attachments"] is None
    assert second["id"] != first["id"] and second["created_at"] == at and second["user_id"] is None
    assert complete(BASE)["request_id"] == "r1"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{**BASE, "colour": "blue"}], "not columns of usage_events"),
        ([{**BASE, "id": uuid.uuid4()}], "ids are made by the pipeline"),
        ([{k: v for k, v in BASE.items() if k != "model_id"}], "without model_id"),
        ([BASE, {k: v for k, v in BASE.items() if k != "provider_id"}], "without provider_id"),
        ([{**BASE, "organization_id": None}], "without organization_id"),
        ([{**BASE, "created_at": datetime(2026, 1, 1)}], "timezone-aware"),
    ],
)
def test_completion_refuses_bad_rows(rows: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _complete_all(rows)


@pytest.mark.parametrize("column", ["request_id", "feature", "conversation_id"])
def test_nul_characters_are_refused_in_any_text_column(column: str) -> None:
    with pytest.raises(BadRequest, match="NUL"):
        _complete_all([BASE, {**BASE, "request_id": "r2", column: "a\x00b"}])
