"""The ``tokenboard`` command: run the server, migrate, seed the demo, manage users and orgs."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from tokenboard.config import Environment, Settings, get_settings

app = typer.Typer(
    help="Tokenboard: self-hostable AI usage, cost and governance for teams.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


def _settings() -> Settings:
    return get_settings()


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]Error:[/red] {message}")
    return typer.Exit(code=1)


def ensure_dev_secret() -> None:
    """Outside production, keep one generated secret on disk so CSRF tokens survive restarts."""
    if os.environ.get("TOKENBOARD_SECRET_KEY"):
        return
    settings = get_settings()
    if settings.env == Environment.production:
        raise _fail("Set TOKENBOARD_SECRET_KEY in production.")
    path = Path(".tokenboard-secret")
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    os.environ["TOKENBOARD_SECRET_KEY"] = path.read_text().strip()
    get_settings.cache_clear()


@app.command()
def migrate(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply database migrations (creates the SQLite file if needed)."""
    from tokenboard.migrations import upgrade

    settings = _settings()
    upgrade(settings.database_url, revision)
    console.print(f"[green]Database is at {revision}[/green] ({_describe_db(settings)})")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
    migrate_first: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Apply migrations first.")
    ] = True,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Run the web server (dashboard, REST API)."""
    import uvicorn

    ensure_dev_secret()
    settings = _settings()
    if migrate_first:
        from tokenboard.migrations import upgrade

        upgrade(settings.database_url)
    bind_host, bind_port = host or settings.host, port or settings.port
    console.print(f"Tokenboard on [bold]http://{bind_host}:{bind_port}[/bold] ({_describe_db(settings)})")
    uvicorn.run(
        "tokenboard.app:create_app",
        factory=True,
        host=bind_host,
        port=bind_port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        proxy_headers=False,
        log_level="info",
    )


@app.command()
def demo(
    serve_after: Annotated[bool, typer.Option("--serve", help="Start the server afterwards.")] = False,
) -> None:
    """Create the demo organization (members in every role, teams, workspaces) and print the logins."""
    from tokenboard.demo import DEMO_PASSWORD, seed_demo
    from tokenboard.kit.uow import run_in_unit_of_work
    from tokenboard.migrations import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    with console.status("Seeding the demo organization…"):
        result = asyncio.run(run_in_unit_of_work(settings, seed_demo))
    table = Table(title=f"Demo logins for {result.organization.name} (password: {DEMO_PASSWORD})")
    table.add_column("Email")
    table.add_column("Role")
    for login in result.logins:
        table.add_row(login.email, login.role.label)
    console.print(table)
    url = f"http://{settings.host}:{settings.port}"
    console.print(
        Panel.fit(
            f"Open [bold]{url}/login[/bold]\nLog in as [bold]{result.logins[0].email}[/bold] "
            f"with password [bold]{DEMO_PASSWORD}[/bold]",
            title="Tokenboard demo" + ("" if result.created else " (already there; passwords reset)"),
        )
    )
    if serve_after:
        serve(host=None, port=None, migrate_first=False, workers=1)


@app.command("create-user")
def create_user(
    email: Annotated[str, typer.Option(help="Email address to log in with.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    password: Annotated[
        str,
        typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="At least 10 characters."),
    ],
    operator: Annotated[
        bool, typer.Option(help="May publish announcements and manage the installation.")
    ] = False,
) -> None:
    """Create a user account."""
    from tokenboard.accounts.service import accounts
    from tokenboard.kit.context import SYSTEM_CLIENT
    from tokenboard.kit.errors import TokenboardError
    from tokenboard.kit.uow import run_in_unit_of_work

    async def work(session):  # type: ignore[no-untyped-def]
        return await accounts.create_user(
            session, email=email, name=name, password=password, client=SYSTEM_CLIENT, is_operator=operator
        )

    try:
        user = asyncio.run(run_in_unit_of_work(_settings(), work))
    except TokenboardError as exc:
        raise _fail(exc.message) from exc
    console.print(f"[green]Created user[/green] {user.email} ({user.id}){' as operator' if operator else ''}")


@app.command("create-org")
def create_org(
    name: Annotated[str, typer.Option(help="Organization name.")],
    owner_email: Annotated[str, typer.Option(help="Email of an existing user who becomes the owner.")],
    seats: Annotated[int, typer.Option(help="Seats (how many members may join).")] = 10,
) -> None:
    """Create an organization owned by an existing user."""
    from tokenboard.accounts import repository as accounts_repository
    from tokenboard.audit.service import Actor
    from tokenboard.kit.context import SYSTEM_CLIENT
    from tokenboard.kit.errors import NotFound, TokenboardError
    from tokenboard.kit.uow import run_in_unit_of_work
    from tokenboard.organizations.service import organizations

    async def work(session):  # type: ignore[no-untyped-def]
        owner = await accounts_repository.get_user_by_email(session, owner_email.strip().lower())
        if owner is None:
            raise NotFound(
                f"No user with email {owner_email}. Create it with `tokenboard create-user` first."
            )
        return await organizations.create(
            session, name=name, owner=owner, actor=Actor.system(SYSTEM_CLIENT), seat_limit=seats
        )

    try:
        org = asyncio.run(run_in_unit_of_work(_settings(), work))
    except TokenboardError as exc:
        raise _fail(exc.message) from exc
    console.print(f"[green]Created organization[/green] {org.name} ({org.id}) with {seats} seats")


@app.command()
def announce(
    title: Annotated[str, typer.Option(help="Headline shown on every overview.")],
    body: Annotated[str, typer.Option(help="Details.")] = "",
    kind: Annotated[str, typer.Option(help="feature, release, maintenance or notice.")] = "notice",
) -> None:
    """Publish an announcement to every organization's overview."""
    from tokenboard.announcements.service import AnnouncementKind, announcements
    from tokenboard.kit.errors import TokenboardError
    from tokenboard.kit.uow import run_in_unit_of_work

    try:
        parsed = AnnouncementKind(kind)
    except ValueError as exc:
        raise _fail(f"Unknown kind {kind!r}; use feature, release, maintenance or notice.") from exc

    async def work(session):  # type: ignore[no-untyped-def]
        return await announcements.publish(session, kind=parsed, title=title, body=body, created_by=None)

    try:
        item = asyncio.run(run_in_unit_of_work(_settings(), work))
    except TokenboardError as exc:
        raise _fail(exc.message) from exc
    console.print(f"[green]Published[/green] {item.kind}: {item.title}")


def _describe_db(settings: Settings) -> str:
    if settings.is_sqlite:
        return f"SQLite at {settings.sqlite_path()}"
    return "PostgreSQL" if "postgresql" in settings.database_url else settings.database_url.split(":", 1)[0]


def main() -> None:
    app()
