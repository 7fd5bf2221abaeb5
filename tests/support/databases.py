"""Real databases for the suite: a SQLite file and a fresh PostgreSQL database per run, dropped after."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import asyncpg

from tokenboard.migrations import upgrade

PG_ADMIN_DSN = os.environ.get("TOKENBOARD_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ("sqlite", "postgresql")


def run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion from sync code, even when called while an event loop runs."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(coro)
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


async def _admin(sql: str) -> None:
    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    except Exception as exc:  # the suite must fail loudly, never skip, without PostgreSQL
        raise RuntimeError(
            f"PostgreSQL is required by the test suite and is not reachable at {PG_ADMIN_DSN}: {exc}"
        ) from exc
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_url(name: str) -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


def create_database(backend: str, tmp_dir: Path, label: str) -> tuple[str, str]:
    """Create and migrate a fresh database; returns (url, name)."""
    name = f"tokenboard_{label}_{uuid.uuid4().hex[:10]}"
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_dir / (name + '.db')}"
    else:
        run_sync(_admin(f'CREATE DATABASE "{name}"'))
        url = pg_url(name)
    upgrade(url)
    return url, name


def drop_database(backend: str, name: str) -> None:
    if backend == "postgresql":
        run_sync(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
