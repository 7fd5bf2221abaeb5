"""One unit of work per request: a session opened for the request and committed once, before the response."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from tokenboard.kit.jobs import discard_after_commit, run_after_commit


class UnitOfWorkRoute(APIRoute):
    """Opens a session for the request, commits it if the endpoint returned, rolls back if it raised.

    Committing here (not in a ``yield`` dependency) guarantees the commit happens before the response is
    sent, so a client never sees success for a change that failed to commit.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run_in_unit_of_work(request: Request) -> Response:
            async with request.app.state.sessionmaker() as session:
                request.state.db = session
                session.info["app_state"] = request.app.state
                try:
                    response = await handler(request)
                except BaseException:
                    discard_after_commit(session)
                    await session.rollback()
                    raise
                await session.commit()
                await run_after_commit(session)
                return response

        return run_in_unit_of_work


def make_router(**kwargs: Any) -> APIRouter:
    return APIRouter(route_class=UnitOfWorkRoute, **kwargs)


def get_db(request: Request) -> AsyncSession:
    """The request's session; services flush, the route class commits."""
    session: AsyncSession = request.state.db
    return session
