from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.support.databases import create_database, drop_database
from tokenboard.kit.db import uuid7
from tokenboard.migrations import downgrade, upgrade


def test_uuid7_sorts_by_creation_time() -> None:
    ids = []
    for _ in range(5):
        ids.append(uuid7())
        time.sleep(0.002)
    assert ids == sorted(ids)
    assert all(i.version == 7 for i in ids)


async def test_timestamps_come_back_timezone_aware(factory: object) -> None:
    user = await factory.user()  # type: ignore[attr-defined]
    from tokenboard.accounts import repository

    loaded = await factory.run(lambda s: repository.get_user(s, user.id))  # type: ignore[attr-defined]
    assert loaded.created_at.tzinfo is not None
    assert abs(loaded.created_at - datetime.now(UTC)) < timedelta(minutes=1)


async def test_naive_datetimes_are_refused(factory: object) -> None:
    from tokenboard.kit.db import UTCDateTime

    with pytest.raises(ValueError):
        UTCDateTime().process_bind_param(datetime(2026, 1, 1), None)  # type: ignore[arg-type]
    shifted = UTCDateTime().process_bind_param(
        datetime(2026, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))), _Dialect()
    )
    assert shifted == datetime(2026, 1, 1, 0, tzinfo=UTC)


class _Dialect:
    name = "postgresql"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_go_down_and_up_again(backend: str, tmp_path: object) -> None:
    url, name = create_database(backend, tmp_path, "migrate")  # type: ignore[arg-type]
    try:
        downgrade(url, "base")
        upgrade(url)
    finally:
        drop_database(backend, name)
