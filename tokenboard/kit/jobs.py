"""Work queued during a unit of work and run only after it commits (emails, notifications)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger("tokenboard.jobs")

Job = Callable[[], Awaitable[None]]


def after_commit(session: AsyncSession, job: Job) -> None:
    session.info.setdefault("after_commit", []).append(job)


async def run_after_commit(session: AsyncSession) -> None:
    jobs: list[Job] = session.info.pop("after_commit", [])
    for job in jobs:
        try:
            await job()
        except Exception:  # a failed email must not turn a committed change into an error
            log.exception("after-commit job failed")


def discard_after_commit(session: AsyncSession) -> None:
    session.info.pop("after_commit", None)
