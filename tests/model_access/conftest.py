"""A small slice of the catalog (three providers, about 120 models) and an organization with every role."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support.factories import Factory, OrgSetup
from tokenboard.catalog.service import catalog
from tokenboard.config import Settings, UpstreamConfig, UpstreamKind
from tokenboard.kit.jobs import run_after_commit
from tokenboard.members.roles import Role
from tokenboard.organizations.auth import OrgContext

T = TypeVar("T")
# deepseek trains on prompts (and the organization opts out by default); the others do not.
PROVIDERS = ["openai", "deepseek", "simulated"]


@pytest.fixture
def settings(settings: Settings) -> Settings:  # the gateway reaches the three providers (never called here)
    upstreams = {
        "openai": UpstreamConfig(kind=UpstreamKind.openai, base_url="http://127.0.0.1:9/v1", api_key="sk-x"),
        "deepseek": UpstreamConfig(
            kind=UpstreamKind.openai_compatible, base_url="http://127.0.0.1:9/v1", api_key="sk-y"
        ),
        "simulated": UpstreamConfig(kind=UpstreamKind.simulated),
    }
    return settings.model_copy(update={"upstreams": upstreams})


@pytest.fixture
async def setup(factory: Factory) -> OrgSetup:
    await factory.run(lambda s: catalog.sync(s, provider_ids=PROVIDERS))
    return await factory.org_with_roles("Models Inc")


async def as_role(
    factory: Factory,
    setup: OrgSetup,
    work: Callable[[AsyncSession, OrgContext], Awaitable[T]],
    role: Role = Role.admin,
) -> T:
    """Run a service call as ``role`` of the organization: commit, then the after-commit jobs."""
    async with factory.app.state.sessionmaker() as session:
        result = await work(
            session, await factory.org_context(session, setup.organization, setup.users[role])
        )
        await session.commit()
        await run_after_commit(session)
        return result
