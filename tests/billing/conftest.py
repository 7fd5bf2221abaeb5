from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from tests.support.factories import Factory
from tokenboard.audit.service import Actor
from tokenboard.kit.context import SYSTEM_CLIENT
from tokenboard.kit.jobs import run_after_commit
from tokenboard.members.roles import Role
from tokenboard.models import Organization, User

ACTOR = Actor.system(SYSTEM_CLIENT)
USD = 1_000_000_000


async def billing_org(factory: Factory, name: str = "Billing Co") -> tuple[Organization, User]:
    setup = await factory.org_with_roles(name)
    return setup.organization, setup.users[Role.owner]


T = TypeVar("T")


async def in_app(app: Any, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """One unit of work as a request runs it: the app's state reachable, after-commit jobs (emails) run."""
    async with app.state.sessionmaker() as session:
        session.info["app_state"] = app.state
        result = await work(session)
        await session.commit()
        await run_after_commit(session)
        return result
