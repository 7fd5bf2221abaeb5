"""A unit of work outside a request: for the CLI and background jobs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from tokenboard.config import Settings
from tokenboard.kit.db import create_engine, create_sessionmaker
from tokenboard.kit.jobs import discard_after_commit, run_after_commit

T = TypeVar("T")


async def run_in_unit_of_work(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    engine = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            try:
                result = await work(session)
            except BaseException:
                discard_after_commit(session)
                await session.rollback()
                raise
            await session.commit()
            await run_after_commit(session)
            return result
    finally:
        await engine.dispose()
