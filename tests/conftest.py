"""Every test that touches storage runs twice: on SQLite and on the local PostgreSQL."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support.databases import BACKENDS, create_database, drop_database
from tests.support.factories import Factory
from tokenboard.app import create_app
from tokenboard.config import Environment, Settings
from tokenboard.models import Base

TEST_SECRET = "test-secret-key-not-for-production"

# The modules that take longest, longest first (seconds for both engines on 2 cores, `--durations=0`,
# 2026-12-07): schemathesis 358, gateway 171, bench smoke 108, roles 97, the billing CLI 58, the CLI 53,
# durability 50, the browser's usage page 48, flows 43, billing 41. `make test` hands whole modules to its
# workers in collection order (xdist's own order, by number of tests, is turned off there): these go first,
# so that none of them starts after the others are done and leaves one worker running alone for minutes.
SLOW_MODULES = (
    "tests/test_schemathesis.py",
    "tests/gateway/test_gateway.py",
    "tests/test_bench_smoke.py",
    "tests/test_roles.py",
    "tests/billing/test_cli.py",
    "tests/test_cli.py",
    "tests/test_cli_checks.py",
    "tests/gateway/test_durability.py",
    "tests/browser/test_usage.py",
    "tests/browser/test_flows.py",
    "tests/browser/test_billing.py",
)


@pytest.hookimpl(trylast=True)  # after pytest's own order (tests sharing a fixture kept together)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow modules first, then the others by number of tests (most first); within a module the order
    stays as it was."""
    modules = [item.nodeid.split("::", 1)[0] for item in items]
    sizes = Counter(modules)
    first_seen = {module: i for i, module in enumerate(dict.fromkeys(modules))}
    slow = {module: i for i, module in enumerate(SLOW_MODULES)}

    def rank(pair: tuple[str, pytest.Item]) -> tuple[int, int, int]:
        module = pair[0]
        return (slow.get(module, len(SLOW_MODULES)), -sizes[module], first_seen[module])

    items[:] = [item for _, item in sorted(zip(modules, items, strict=True), key=rank)]


@pytest.fixture(scope="session", params=BACKENDS)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    backend = request.param
    url, name = create_database(backend, tmp_path_factory.mktemp("db"), "test")
    yield backend, url
    drop_database(backend, name)


@pytest.fixture
def backend(database: tuple[str, str]) -> str:
    return database[0]


@pytest.fixture
def settings(database: tuple[str, str], tmp_path: Path) -> Settings:
    return Settings(
        journal_dir=tmp_path / "journal",
        env=Environment.testing,
        database_url=database[1],
        secret_key=TEST_SECRET,
        base_url="http://testserver",
        default_seats=10,
        gc_tuning=False,  # many apps in one process: frozen objects would never be collected
    )


async def _truncate(app_session: AsyncSession, backend: str) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    if backend == "postgresql":
        await app_session.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))
    else:
        for table in tables:
            await app_session.execute(text(f'DELETE FROM "{table}"'))
    await app_session.commit()


@pytest.fixture
async def app(settings: Settings, backend: str) -> AsyncIterator[object]:
    application = create_app(settings)
    async with application.state.sessionmaker() as session:
        await _truncate(session, backend)
    yield application
    await application.state.engine.dispose()


@pytest.fixture
async def db(app: object) -> AsyncIterator[AsyncSession]:
    async with app.state.sessionmaker() as session:  # type: ignore[attr-defined]
        yield session


@pytest.fixture
async def client(app: object) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as c:  # type: ignore[arg-type]
        yield c


@pytest.fixture
def factory(app: object) -> Factory:
    return Factory(app)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A live ``tokenboard serve`` with the demo organization, once per module and database engine."""
    from tests.support.live_server import live_server

    with live_server(request.param, tmp_path_factory.mktemp("live")) as live:
        yield live
