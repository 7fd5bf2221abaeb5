"""The ``tokenboard`` command: run the server, migrate, seed the demo, manage users and orgs."""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from tokenboard.config import Environment, Settings, get_settings
from tokenboard.kit.runtime import tune_gc

if TYPE_CHECKING:
    from redis.asyncio import Redis

app = typer.Typer(
    help="Tokenboard: self-hostable AI usage, cost and governance for teams.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


def _settings() -> Settings:
    return get_settings()


def _fail(message: str) -> typer.Exit:
    # Plain text: messages may quote what the operator gave (a file's columns, a URL), brackets included.
    console.print(f"[red]Error:[/red] {escape(message)}", highlight=False)
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

    from tokenboard.kit.access_log import uvicorn_log_config

    ensure_dev_secret()
    settings = _settings()
    if settings.redis_url:
        from tokenboard.kit.redis_check import RedisUnavailable, check_url

        try:
            asyncio.run(check_url(settings.redis_url))
        except RedisUnavailable as exc:
            raise _fail(str(exc)) from None
    if migrate_first:
        from tokenboard.migrations import upgrade

        upgrade(settings.database_url)
    bind_host, bind_port = host or settings.host, port or settings.port
    console.print(f"Tokenboard on [bold]http://{bind_host}:{bind_port}[/bold] ({_describe_db(settings)})")
    proxies = settings.trusted_proxies
    if proxies:
        trusted = "any address" if proxies == ["*"] else ", ".join(proxies)
        console.print(f"Client addresses from X-Forwarded-For when the connection comes from {trusted}")
    uvicorn.run(
        "tokenboard.app:create_app",
        factory=True,
        host=bind_host,
        port=bind_port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        # Behind a load balancer, the client's address comes from its X-Forwarded-For, and only from the
        # proxies listed in TOKENBOARD_FORWARDED_ALLOW_IPS; without them the header is ignored (a client
        # cannot choose the address its failed logins are counted against). Each worker gets this config.
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        log_level="info",
        # The application writes the access log itself, after each response (kit/access_log.py).
        access_log=False,
        log_config=uvicorn_log_config(),
    )


@app.command()
def demo(
    serve_after: Annotated[bool, typer.Option("--serve", help="Start the server afterwards.")] = False,
    events: Annotated[
        int | None,
        typer.Option(
            "--events", min=0, help="Usage events over the past year, default 20000 (a new demo only)."
        ),
    ] = None,
) -> None:
    """Create the demo organization (members in every role, teams, workspaces, a year of usage)."""
    from rich.progress import Progress

    from tokenboard.demo import DEMO_EVENTS, DEMO_PASSWORD, seed_demo
    from tokenboard.kit.uow import run_in_unit_of_work
    from tokenboard.migrations import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    if settings.gc_tuning:
        tune_gc()
    count = DEMO_EVENTS if events is None else events
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("Seeding the demo organization and its usage", total=count)

        async def work(session):  # type: ignore[no-untyped-def]
            return await seed_demo(session, events=count, progress=lambda n: progress.advance(task, n))

        result = asyncio.run(run_in_unit_of_work(settings, work))
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
    if not result.created and events is not None:
        console.print(
            f"[yellow]The demo organization already exists, so --events {events} was not applied[/yellow] "
            "(usage is seeded only when the demo is created). To start afresh, point TOKENBOARD_DATABASE_URL "
            f"at a new database (such as sqlite+aiosqlite:///./demo-new.db) and run `tokenboard demo "
            f"--events {events}` again.",
            highlight=False,
        )
    console.print(f"Gateway key for the demo owner (shown once): [bold]{result.api_key}[/bold]")
    console.print("Try the gateway (simulated provider) with:")
    body = '{"model": "simulated/fast", "messages": [{"role": "user", "content": "Hello"}]}'
    print(
        f"curl {url}/v1/chat/completions -H 'Authorization: Bearer {result.api_key}' "
        f"-H 'content-type: application/json' -d '{body}'"
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


credits_app = typer.Typer(help="Credits: grant and inspect an organization's balance.", no_args_is_help=True)
app.add_typer(credits_app, name="credits")


def _org_id(org: str) -> uuid.UUID:
    try:
        return uuid.UUID(org)
    except ValueError as exc:
        raise _fail(f"{org!r} is not an organization id.") from exc


@credits_app.command("grant")
def credits_grant(
    org: Annotated[str, typer.Option("--org", help="Organization id.")],
    amount: Annotated[str, typer.Option(help="Amount in USD, e.g. 25 or 12.50.")],
    memo: Annotated[str, typer.Option(help="Why the credits were granted.")] = "operator grant",
) -> None:
    """Grant credits to an organization (purchases come with billing)."""
    from tokenboard.billing.endpoints import MAX_AMOUNT_NANOUSD, usd
    from tokenboard.kit.errors import BadRequest, NotFound, TokenboardError
    from tokenboard.kit.money import format_usd
    from tokenboard.kit.uow import run_in_unit_of_work
    from tokenboard.ledger.service import EntryKind, ledger
    from tokenboard.organizations import repository as org_repository

    org_id = _org_id(org)
    try:
        nanousd = usd(amount)  # the bound and messages of the billing commands and API
    except BadRequest as exc:
        limit = f" A grant is at most {format_usd(MAX_AMOUNT_NANOUSD)}." if "too large" in exc.message else ""
        raise _fail(exc.message + limit) from exc
    if nanousd <= 0:
        raise _fail("The amount must be more than zero.")

    async def work(session):  # type: ignore[no-untyped-def]
        if await org_repository.get(session, org_id) is None:
            raise NotFound(f"No organization {org_id}.")
        # The ledger refuses a grant past the most a balance may hold (BalanceLimitExceeded).
        await ledger.post(
            session, org_id, kind=EntryKind.grant, amount_nanousd=nanousd, memo=memo, actor_label="cli"
        )
        return await ledger.balance(session, org_id)

    try:
        balance = asyncio.run(run_in_unit_of_work(_settings(), work))
    except TokenboardError as exc:
        raise _fail(exc.message) from exc
    console.print(
        f"[green]Granted {format_usd(nanousd)}[/green]; balance {format_usd(balance.balance_nanousd)}, "
        f"available {format_usd(balance.available_nanousd)}"
    )


@credits_app.command("balance")
def credits_balance(org: Annotated[str, typer.Option("--org", help="Organization id.")]) -> None:
    """Show an organization's balance, reserved and available credits."""
    from tokenboard.kit.errors import NotFound, TokenboardError
    from tokenboard.kit.money import format_usd
    from tokenboard.kit.uow import run_in_unit_of_work
    from tokenboard.ledger.service import ledger
    from tokenboard.organizations import repository as org_repository

    org_id = _org_id(org)

    async def work(session):  # type: ignore[no-untyped-def]
        if await org_repository.get(session, org_id) is None:
            raise NotFound(f"No organization {org_id}.")
        return await ledger.balance(session, org_id)

    try:
        balance = asyncio.run(run_in_unit_of_work(_settings(), work))
    except TokenboardError as exc:
        raise _fail(exc.message) from exc
    console.print(
        f"balance {format_usd(balance.balance_nanousd)}, reserved {format_usd(balance.reserved_nanousd)}, "
        f"available {format_usd(balance.available_nanousd)}"
    )


from tokenboard.billing.cli import billing_app  # noqa: E402

app.add_typer(billing_app, name="billing")

catalog_app = typer.Typer(help="Model catalog: prices and facts of every model.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")


def _price_spec(
    input_: str, output: str, cached: str | None, write_5m: str | None, write_1h: str | None
) -> dict[str, str]:
    optional = {"cached_input_read": cached, "cache_write_5m": write_5m, "cache_write_1h": write_1h}
    return {"input": input_, "output": output} | {k: v for k, v in optional.items() if v is not None}


def _catalog_prices(spec: dict[str, str]):  # type: ignore[no-untyped-def]
    from decimal import InvalidOperation

    from tokenboard.catalog.reference import prices_from_spec

    try:
        return prices_from_spec(spec)
    except (InvalidOperation, ValueError) as exc:
        raise _fail("Prices are USD per million tokens, such as 2.50 or 0.075, never negative.") from exc


@catalog_app.command("sync")
def catalog_sync() -> None:
    """Load or refresh the catalog from genai-prices and the curated facts (safe to run again)."""
    from tokenboard.catalog.service import catalog
    from tokenboard.kit.uow import run_in_unit_of_work

    with console.status("Syncing the model catalog…"):
        report = asyncio.run(run_in_unit_of_work(_settings(), catalog.sync))
    console.print(
        f"[green]Catalog synced[/green] from genai-prices {report.genai_prices_version}: "
        f"{report.models_added} models added, {report.models_updated} updated, "
        f"{report.prices_added} prices added, {report.scheduled_prices_removed} scheduled prices withdrawn"
    )


@catalog_app.command("set-price")
def catalog_set_price(
    model: Annotated[str, typer.Argument(help="provider/model, e.g. openai/gpt-4o.")],
    input_: Annotated[str, typer.Option("--input", help="USD per million input tokens.")],
    output: Annotated[str, typer.Option("--output", help="USD per million output tokens.")],
    cached: Annotated[
        str | None, typer.Option("--cached", help="USD per million cached input tokens.")
    ] = None,
    cache_write_5m: Annotated[
        str | None, typer.Option("--cache-write-5m", help="USD per million 5-minute cache-write tokens.")
    ] = None,
    cache_write_1h: Annotated[
        str | None, typer.Option("--cache-write-1h", help="USD per million 1-hour cache-write tokens.")
    ] = None,
    reasoning: Annotated[
        str | None, typer.Option("--reasoning", help="USD per million reasoning tokens.")
    ] = None,
    input_audio: Annotated[
        str | None, typer.Option("--input-audio", help="USD per million audio input tokens.")
    ] = None,
    output_audio: Annotated[
        str | None, typer.Option("--output-audio", help="USD per million audio output tokens.")
    ] = None,
    per_request: Annotated[str | None, typer.Option("--per-request", help="USD per request.")] = None,
    per_web_search: Annotated[
        str | None, typer.Option("--per-web-search", help="USD per server-side web search (e.g. 0.01).")
    ] = None,
    from_date: Annotated[
        str | None, typer.Option("--from", help="First day (YYYY-MM-DD, UTC) the price applies; default now.")
    ] = None,
    note: Annotated[str | None, typer.Option(help="Why (a contract, a discount).")] = None,
) -> None:
    """Override a model's price from now (or a future day); past prices never change.

    Kinds not given (cache prices, reasoning, audio, the request and web search fees, long-context tiers) keep
    the model's price in force when the override starts."""
    from datetime import UTC, datetime
    from decimal import Decimal, InvalidOperation

    from tokenboard.catalog.service import INHERITABLE, catalog
    from tokenboard.kit.db import utcnow
    from tokenboard.kit.errors import TokenboardError
    from tokenboard.kit.uow import run_in_unit_of_work

    spec = _price_spec(input_, output, cached, cache_write_5m, cache_write_1h)
    optional = {"reasoning": reasoning, "input_audio": input_audio, "output_audio": output_audio}
    spec |= {kind: value for kind, value in optional.items() if value is not None}
    prices = _catalog_prices(spec)
    fees = {"per_request": per_request, "per_web_search": per_web_search}
    for kind, text in fees.items():
        if text is None:
            continue
        try:
            fee = Decimal(text)
            if not fee.is_finite() or fee < 0:
                raise InvalidOperation
        except InvalidOperation as exc:
            raise _fail(f"{text!r} is not a fee in USD such as 0.01.") from exc
        prices = replace(prices, **{kind: fee})
    keep = INHERITABLE - set(spec) - {kind for kind, text in fees.items() if text is not None}
    start = None
    if from_date is not None:
        try:
            start = datetime.strptime(from_date, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError as exc:
            raise _fail(f"{from_date!r} is not a date such as 2026-12-01.") from exc
        if start <= utcnow():
            start = None  # today or a past day means now: the service takes its own "now"

    async def work(session):  # type: ignore[no-untyped-def]
        return await catalog.set_price(session, model, prices, effective_from=start, note=note, keep=keep)

    try:
        row = asyncio.run(run_in_unit_of_work(_settings(), work))
    except TokenboardError as exc:
        raise _fail(exc.message) from exc
    console.print(f"[green]Price set[/green] for {model} from {row.effective_from:%Y-%m-%d %H:%M} UTC")
    kept = ", ".join(sorted(kind.replace("_", " ") for kind in keep))
    console.print(f"Kept from the price in force then: {kept}.", highlight=False)


# A model's maximum output, as add-model and update-model take it (an operator's value: syncs keep it).
MaxOutput = Annotated[
    int | None,
    typer.Option(
        "--max-output",
        min=1,
        max=100_000_000,
        help="Most output tokens of one reply; the gateway clamps max_tokens to it (without it, to the "
        "context window). Kept by later syncs.",
    ),
]


@catalog_app.command("prices")
def catalog_prices(
    model: Annotated[str, typer.Argument(help="provider/model, e.g. openai/gpt-4o.")],
) -> None:
    """A model's prices: every stored row (reference prices and overrides, past and scheduled) and the one in
    force now, which the gateway bills."""
    from rich.table import Table

    from tokenboard.catalog.schemas import PricesOut
    from tokenboard.catalog.service import catalog, prices_of_row
    from tokenboard.kit.db import utcnow
    from tokenboard.kit.errors import TokenboardError
    from tokenboard.kit.uow import run_in_unit_of_work

    now = utcnow()

    async def work(session):  # type: ignore[no-untyped-def]
        return await catalog.price_history(session, model), await catalog.prices_at(session, model, now)

    try:
        rows, current = asyncio.run(run_in_unit_of_work(_settings(), work))
    except TokenboardError as exc:
        raise _fail(exc.message) from exc
    if not rows:
        console.print(
            f"{model} has no price: the gateway refuses it until one is set (tokenboard catalog set-price).",
            highlight=False,
        )
        return

    def kinds(out: PricesOut) -> list[str]:
        def per_m(value: str | None, like: str) -> str:
            return value if value is not None else f"as {like}"

        return [
            out.input_per_mtok,
            out.output_per_mtok,
            per_m(out.cached_input_read_per_mtok, "input"),
            per_m(out.reasoning_per_mtok, "output"),
            f"{per_m(out.input_audio_per_mtok, 'input')} / {per_m(out.output_audio_per_mtok, 'output')}",
            f"{out.per_request_usd} / {out.per_web_search_usd}",
            str(len(out.tiers)) if out.tiers else "",
        ]

    table = Table(title=f"{model}: USD per million tokens (fees in USD)")
    for header in ("From (UTC)", "Source", "Input", "Output", "Cached read", "Reasoning", "Audio in / out"):
        table.add_column(header)
    table.add_column("Per request / search")
    table.add_column("Tiers")
    table.add_column("Note")
    for row in rows:
        start = row.effective_from.strftime("%Y-%m-%d %H:%M")
        scheduled = " (scheduled)" if row.effective_from > now else ""
        table.add_row(start + scheduled, row.source, *kinds(PricesOut.of(prices_of_row(row))), row.note or "")
    console.print(table)
    if current is None:
        console.print("No price is in force now: the gateway refuses the model.", highlight=False)
    else:
        out = PricesOut.of(current)
        audio = (
            f" (audio input {out.input_audio_per_mtok or out.input_per_mtok}, "
            f"output {out.output_audio_per_mtok or out.output_per_mtok})"
            if out.input_audio_per_mtok or out.output_audio_per_mtok
            else ""
        )
        console.print(
            f"In force now: input {out.input_per_mtok}, output {out.output_per_mtok} per million tokens"
            f"{audio}; {out.per_request_usd} per request, {out.per_web_search_usd} per web search.",
            highlight=False,
        )


@catalog_app.command("add-model")
def catalog_add_model(
    model: Annotated[str, typer.Argument(help="provider/model, e.g. local/llama-3.3-70b.")],
    input_: Annotated[str | None, typer.Option("--input", help="USD per million input tokens.")] = None,
    output: Annotated[str | None, typer.Option("--output", help="USD per million output tokens.")] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    context_length: Annotated[int | None, typer.Option(help="Context window in tokens.")] = None,
    max_output: MaxOutput = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Add it switched off.")] = False,
) -> None:
    """Add a model the reference lacks (self-hosted, new); give --input and --output to price it."""
    from tokenboard.catalog.service import catalog
    from tokenboard.kit.errors import TokenboardError
    from tokenboard.kit.uow import run_in_unit_of_work

    if (input_ is None) != (output is None):
        raise _fail("Give both --input and --output, or neither (the gateway refuses unpriced models).")
    prices = _catalog_prices(_price_spec(input_, output, None, None, None)) if input_ and output else None

    async def work(session):  # type: ignore[no-untyped-def]
        return await catalog.add_model(
            session,
            model,
            name=name,
            context_length=context_length,
            max_output_tokens=max_output,
            enabled=not disabled,
            prices=prices,
        )

    try:
        asyncio.run(run_in_unit_of_work(_settings(), work))
    except TokenboardError as exc:
        raise _fail(exc.message) from exc
    console.print(f"[green]Added[/green] {model}{'' if prices else ' (unpriced)'}")


@catalog_app.command("update-model")
def catalog_update_model(
    model: Annotated[str, typer.Argument(help="provider/model, e.g. openai/gpt-4o.")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    context_length: Annotated[
        int | None, typer.Option(min=1, max=100_000_000, help="Context window in tokens.")
    ] = None,
    max_output: MaxOutput = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Switch the model on or off for everyone.")
    ] = None,
) -> None:
    """Change a model of the catalog (a reference model or your own); running servers pick it up within
    seconds."""
    from tokenboard.catalog.service import catalog
    from tokenboard.kit.errors import TokenboardError
    from tokenboard.kit.uow import run_in_unit_of_work

    if name is None and context_length is None and max_output is None and enabled is None:
        raise _fail("Nothing to change: give --name, --context-length, --max-output, --enable or --disable.")

    async def work(session):  # type: ignore[no-untyped-def]
        return await catalog.update_model(
            session,
            model,
            enabled=enabled,
            name=name,
            context_length=context_length,
            max_output_tokens=max_output,
        )

    try:
        row = asyncio.run(run_in_unit_of_work(_settings(), work))
    except TokenboardError as exc:
        raise _fail(exc.message) from exc
    facts = [
        f"context {row.context_length:,}" if row.context_length else "context unknown",
        f"max output {row.max_output_tokens:,}" if row.max_output_tokens else "max output unknown",
        "enabled" if row.enabled else "disabled",
    ]
    console.print(f"[green]Updated[/green] {row.id} ({row.name}): {', '.join(facts)}", highlight=False)


@app.command("import")
def import_usage(
    file: Annotated[Path, typer.Argument(help="A CSV or JSON Lines file of usage events.", exists=True)],
    org: Annotated[str, typer.Option("--org", help="Organization id or exact name.")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or jsonl (default: from the file extension).")
    ] = None,
) -> None:
    """Import usage recorded elsewhere (same checks and pipeline as the API; never debits credits)."""
    from rich.progress import Progress

    from tokenboard.kit.db import create_engine, create_sessionmaker
    from tokenboard.kit.errors import TokenboardError
    from tokenboard.kit.live import LiveHub
    from tokenboard.usage.importer import FORMATS, ImportReport, count_lines, import_file

    if fmt is not None and fmt not in FORMATS:
        raise _fail(f"Unknown format {fmt!r}; use csv or jsonl.")
    total = count_lines(file)
    settings = _settings()

    async def work() -> ImportReport:
        engine = create_engine(settings.database_url)
        redis = await _redis_for_live_updates(settings)
        live = LiveHub(redis) if redis is not None else None
        try:
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task(f"Importing {file.name}", total=total)
                return await import_file(
                    create_sessionmaker(engine),
                    file,
                    org,
                    fmt=fmt,
                    progress=lambda n: progress.advance(task, n),
                    live=live,
                )
        finally:
            if live is not None:
                await live.drain()  # the last batches' announcement, before the process exits
                await live.stop()
            if redis is not None:
                await redis.aclose()
            await engine.dispose()

    if settings.gc_tuning:
        tune_gc()
    try:
        report = asyncio.run(work())
    except TokenboardError as exc:
        raise _fail(exc.message) from exc
    console.print(
        f"[green]{report.accepted} accepted[/green], {report.duplicates} duplicates, "
        f"[{'red' if report.rejected else 'green'}]{len(report.rejected)} rejected[/]"
    )
    for line, message in report.rejected[:50]:
        console.print(f"  line {line}: {message}", markup=False, highlight=False)
    if len(report.rejected) > 50:
        console.print(f"  … and {len(report.rejected) - 50} more")
    if report.rejected:
        raise typer.Exit(code=2)


async def _redis_for_live_updates(settings: Settings) -> Redis | None:
    """The Redis through which a command announces new usage to the open pages of every server instance, or
    None: without Redis nothing reaches them (only a server's own hub does, and this process is not one)."""
    if not settings.redis_url:
        return None
    from redis.asyncio import Redis

    from tokenboard.kit.redis_check import RedisUnavailable, check_url

    try:
        await check_url(settings.redis_url)
    except RedisUnavailable as exc:
        message = f"[yellow]Warning:[/yellow] {escape(str(exc))} Open pages will not hear of this import."
        console.print(message, highlight=False)
        return None
    return Redis.from_url(settings.redis_url)


rollups_app = typer.Typer(help="Usage rollups: the tables the usage pages read.", no_args_is_help=True)
app.add_typer(rollups_app, name="rollups")


@rollups_app.command("rebuild")
def rollups_rebuild(
    org: Annotated[
        str | None, typer.Option("--org", help="Organization id or exact name (default: every one).")
    ] = None,
) -> None:
    """Recompute the usage rollups from the raw usage events (ingestion waits until it is done)."""
    from rich.progress import Progress

    from tokenboard.kit.errors import TokenboardError
    from tokenboard.kit.uow import run_in_unit_of_work
    from tokenboard.usage.importer import resolve_org
    from tokenboard.usage.rollups import count_events, rebuild

    async def work(session):  # type: ignore[no-untyped-def]
        org_id = (await resolve_org(session, org)).id if org is not None else None
        total = await count_events(session, org_id)
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("Rebuilding rollups", total=total)
            return await rebuild(session, org_id, progress=lambda n: progress.advance(task, n))

    try:
        applied = asyncio.run(run_in_unit_of_work(_settings(), work))
    except TokenboardError as exc:
        raise _fail(exc.message) from exc
    console.print(f"[green]Rollups rebuilt[/green] from {applied} usage events")


def _describe_db(settings: Settings) -> str:
    if settings.is_sqlite:
        return f"SQLite at {settings.sqlite_path()}"
    return "PostgreSQL" if "postgresql" in settings.database_url else settings.database_url.split(":", 1)[0]


def main() -> None:
    app()
