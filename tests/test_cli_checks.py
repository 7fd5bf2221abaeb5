"""Operator commands at their edges: amounts and organizations the credits verbs refuse, a price
override from a past day, ``serve`` behind a proxy and with Redis gone, ``import`` of spreadsheet CSV files
and its live announcement. The verbs run as subprocesses against the test database, as people run them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support.databases import create_database, drop_database
from tests.support.factories import Factory
from tests.support.live_server import free_port, start_serve
from tokenboard.catalog import repository as catalog_repository
from tokenboard.catalog.reference import SOURCE_OVERRIDE
from tokenboard.catalog.service import CatalogCache, catalog
from tokenboard.config import Settings
from tokenboard.kit.cache_bus import CacheBus
from tokenboard.kit.errors import BadRequest
from tokenboard.kit.live import LiveHub
from tokenboard.kit.redis_check import RedisUnavailable, redacted_url
from tokenboard.ledger.service import MAX_BALANCE_NANOUSD, EntryKind, ledger
from tokenboard.models import CreditAccount, CreditEntry, CreditPromotion, Organization
from tokenboard.usage.importer import import_file

REDIS_URL = "redis://127.0.0.1:6379/0"
# The proxy test's login failure counters: a database of their own, so no other test's logins meet them.
COUNTERS_REDIS_URL = "redis://127.0.0.1:6379/9"


def run_cli(settings: Settings, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "TOKENBOARD_DATABASE_URL": settings.database_url, "COLUMNS": "200", **env}
    return subprocess.run(
        [sys.executable, "-m", "tokenboard", *args], env=environ, cwd=cwd, text=True, capture_output=True
    )


async def new_org(factory: Factory, name: str) -> Organization:
    return await factory.org(await factory.user(), name=name)


# -- credits --------------------------------------------------------------------------------------------


async def test_credits_grant_keeps_amounts_and_balances_within_bounds(
    factory: Factory, settings: Settings, tmp_path: Path, db: AsyncSession
) -> None:
    org = await new_org(factory, "Credit Co")
    oid = str(org.id)

    huge = run_cli(settings, tmp_path, "credits", "grant", "--org", oid, "--amount", "99999999999999")
    assert huge.returncode == 1, huge.stdout + huge.stderr
    assert "The amount is too large. A grant is at most $1,000,000,000.00." in huge.stdout
    assert "Traceback" not in huge.stderr

    # Half a billion short of the most a balance may hold: another billion must not fit.
    start = MAX_BALANCE_NANOUSD - 500_000_000 * 10**9
    await factory.run(lambda s: ledger.post(s, org.id, kind=EntryKind.grant, amount_nanousd=start))
    over = run_cli(settings, tmp_path, "credits", "grant", "--org", oid, "--amount", "1000000000")
    assert over.returncode == 1, over.stdout + over.stderr
    assert "The balance would be $9,500,000,000.00, more than the $9,000,000,000.00" in over.stdout
    assert "nothing was granted" in over.stdout

    shown = run_cli(settings, tmp_path, "credits", "balance", "--org", oid)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "balance $8,500,000,000.00" in shown.stdout
    stored = await db.scalar(
        select(CreditAccount.balance_nanousd).where(CreditAccount.organization_id == org.id)
    )
    assert type(stored) is int and stored == start  # never a float (SQLite's REAL past 64 bits)

    nobody = str(uuid.uuid4())
    unknown = run_cli(settings, tmp_path, "credits", "balance", "--org", nobody)
    assert unknown.returncode == 1, unknown.stdout + unknown.stderr
    assert f"No organization {nobody}." in unknown.stdout and "$0.00" not in unknown.stdout


async def test_billing_adjustments_and_promotions_keep_balances_within_bounds(
    factory: Factory, settings: Settings, tmp_path: Path, db: AsyncSession
) -> None:
    """The bound is the ledger's: the billing verbs, which post their own entries, are refused by it too."""
    org = await new_org(factory, "Adjust Co")
    oid = str(org.id)
    start = MAX_BALANCE_NANOUSD - 500_000 * 10**9  # $500,000 short: an adjustment of a million cannot fit
    await factory.run(lambda s: ledger.post(s, org.id, kind=EntryKind.grant, amount_nanousd=start))

    up = run_cli(
        settings, tmp_path, "billing", "adjust", "--org", oid, "--amount", "1000000", "--reason", "x"
    )
    assert up.returncode == 1, up.stdout + up.stderr
    assert "The balance would be $9,000,500,000.00, more than the $9,000,000,000.00" in up.stdout
    assert "nothing was adjusted" in up.stdout and "Traceback" not in up.stdout + up.stderr
    promote = ("billing", "promote", "--org", oid, "--amount", "1000000", "--expires", "2099-12-31")
    promo = run_cli(settings, tmp_path, *promote)
    assert promo.returncode == 1, promo.stdout + promo.stderr
    assert "more than the $9,000,000,000.00" in promo.stdout and "nothing was granted" in promo.stdout
    assert "Traceback" not in promo.stderr

    stored = await db.scalar(
        select(CreditAccount.balance_nanousd).where(CreditAccount.organization_id == org.id)
    )
    assert type(stored) is int and stored == start
    entries = await db.scalar(
        select(func.count()).select_from(CreditEntry).where(CreditEntry.organization_id == org.id)
    )
    promotions = await db.scalar(
        select(func.count()).select_from(CreditPromotion).where(CreditPromotion.organization_id == org.id)
    )
    assert (entries, promotions) == (1, 0)  # the refused promotion's row went with it

    fits = run_cli(
        settings, tmp_path, "billing", "adjust", "--org", oid, "--amount", "500000", "--reason", "x"
    )
    assert fits.returncode == 0, fits.stdout + fits.stderr


# -- catalog set-price --------------------------------------------------------------------------------------


async def test_set_price_from_today_or_a_past_day_starts_now(
    factory: Factory, settings: Settings, tmp_path: Path, db: AsyncSession
) -> None:
    await factory.run(lambda s: catalog.sync(s, provider_ids=["simulated"]))
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    for day, output in (("2020-01-01", "2"), (today, "3")):
        done = run_cli(
            settings, tmp_path, "catalog", "set-price", "simulated/echo", "--input", "1", "--output", output,
            "--from", day,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Price set for simulated/echo from" in done.stdout
    overrides = [
        row
        for row in await catalog_repository.prices_of(db, "simulated/echo")
        if row.source == SOURCE_OVERRIDE
    ]
    assert len(overrides) == 2
    now = datetime.now(UTC)
    for row in overrides:
        start = row.effective_from if row.effective_from.tzinfo else row.effective_from.replace(tzinfo=UTC)
        assert now - timedelta(minutes=5) < start <= now  # now, not the day given (and never the past)


async def test_set_price_keeps_the_kinds_it_does_not_give(
    factory: Factory, settings: Settings, tmp_path: Path, db: AsyncSession
) -> None:
    """Sonnet 4.5 from the CLI with a new input and output price: its cache prices and 200k-token tier stay;
    --reasoning and --per-request set theirs."""
    from dataclasses import replace
    from decimal import Decimal

    from tokenboard.catalog.reference import per_token
    from tokenboard.catalog.service import catalog as catalog_service

    sonnet = "anthropic/claude-sonnet-4-5"
    await factory.run(lambda s: catalog.sync(s, provider_ids=["anthropic"]))
    before = await factory.run(lambda s: catalog_service.prices_at(s, sonnet, datetime.now(UTC)))
    assert before is not None and before.tiers and before.cache_write_1h is not None
    done = run_cli(
        settings, tmp_path, "catalog", "set-price", sonnet, "--input", "2.4", "--output", "12",
        "--reasoning", "13", "--per-request", "0.01",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    kept = (
        "cache write 1h, cache write 5m, cached input read, input audio, output audio, per web search, tiers."
    )
    assert f"Kept from the price in force then: {kept}" in done.stdout.replace("\n", " ")
    after = await factory.run(lambda s: catalog_service.prices_at(s, sonnet, datetime.now(UTC)))
    assert after == replace(
        before,
        input=per_token(Decimal("2.4")),
        output=per_token(Decimal("12")),
        reasoning=per_token(Decimal("13")),
        per_request=Decimal("0.01"),
    )
    bad = run_cli(
        settings,
        tmp_path,
        "catalog",
        "set-price",
        sonnet,
        "--input",
        "1",
        "--output",
        "1",
        "--per-request",
        "-1",
    )
    assert bad.returncode == 1 and "is not a fee in USD" in bad.stdout
    later = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    searches = run_cli(
        settings, tmp_path, "catalog", "set-price", sonnet, "--input", "2.4", "--output", "12",
        "--per-web-search", "0.008", "--input-audio", "30", "--from", later,
    )  # fmt: skip
    assert searches.returncode == 0, searches.stdout + searches.stderr
    tomorrow = datetime.strptime(later, "%Y-%m-%d").replace(tzinfo=UTC)
    priced = await factory.run(lambda s: catalog_service.prices_at(s, sonnet, tomorrow))
    assert priced is not None and priced.per_web_search == Decimal("0.008")
    assert priced.per_request == Decimal("0.01")  # kept from the override before it
    assert (priced.input_audio, priced.output_audio) == (per_token(Decimal("30")), before.output_audio)
    nan = run_cli(settings, tmp_path, "catalog", "set-price", sonnet, "--input", "1", "--output", "1",
                  "--per-web-search", "NaN")  # fmt: skip
    assert nan.returncode == 1 and "is not a fee in USD" in nan.stdout


async def test_prices_shows_every_row_and_the_price_in_force(
    factory: Factory, settings: Settings, tmp_path: Path
) -> None:
    """Sonnet 4.5's reference price (with its web search fee and 200k-token tier), a scheduled override, the
    price in force now; an unknown model is a clean refusal."""
    sonnet = "anthropic/claude-sonnet-4-5"
    await factory.run(lambda s: catalog.sync(s, provider_ids=["anthropic"]))
    later = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%d")
    scheduled = run_cli(
        settings, tmp_path, "catalog", "set-price", sonnet, "--input", "2.4", "--output", "12",
        "--from", later, "--note", "2027 contract",
    )  # fmt: skip
    assert scheduled.returncode == 0, scheduled.stdout + scheduled.stderr
    shown = run_cli(settings, tmp_path, "catalog", "prices", sonnet)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    lines = shown.stdout.splitlines()
    reference = next(line for line in lines if "genai-prices" in line)
    assert " 3 " in reference and " 15 " in reference and "0.01" in reference and "as input" in reference
    override = next(line for line in lines if "operator override" in line)
    assert f"{later} 00:00 (scheduled)" in override and "2.4" in override and "2027 contract" in override
    assert "In force now: input 3, output 15 per million tokens; 0 per request, 0.01 per web search." in (
        " ".join(shown.stdout.split())
    )
    await factory.run(lambda s: catalog.sync(s, provider_ids=["openai"]))
    audio = run_cli(settings, tmp_path, "catalog", "prices", "openai/gpt-audio")
    assert "32 / 64" in audio.stdout
    assert "per million tokens (audio input 32, output 64);" in " ".join(audio.stdout.split())
    unknown = run_cli(settings, tmp_path, "catalog", "prices", "nobody/nothing")
    assert (
        unknown.returncode == 1 and "nobody/nothing" in unknown.stdout and "Traceback" not in unknown.stderr
    )


# -- catalog add-model ------------------------------------------------------------------------------------


async def test_add_model_sets_the_maximum_output_the_gateway_clamps_to(
    factory: Factory, settings: Settings, tmp_path: Path, db: AsyncSession
) -> None:
    done = run_cli(
        settings, tmp_path, "catalog", "add-model", "local/qwen-3-32b", "--input", "0.1", "--output", "0.3",
        "--context-length", "32768", "--max-output", "8192",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Added local/qwen-3-32b" in done.stdout
    model = await catalog_repository.get_model(db, "local/qwen-3-32b")
    assert model is not None and (model.context_length, model.max_output_tokens) == (32_768, 8_192)
    cache = CatalogCache()
    await cache.load(db)
    entry = cache.get("local/qwen-3-32b")
    assert entry is not None and entry.max_output_tokens == 8_192
    zero = run_cli(settings, tmp_path, "catalog", "add-model", "local/other", "--max-output", "0")
    assert zero.returncode == 2 and "--max-output" in zero.stdout + zero.stderr
    assert await catalog_repository.get_model(db, "local/other") is None


async def test_update_model_changes_a_model_and_a_sync_keeps_the_operators_maximum(
    factory: Factory, settings: Settings, tmp_path: Path, db: AsyncSession
) -> None:
    added = run_cli(
        settings, tmp_path, "catalog", "add-model", "local/mistral-7b", "--context-length", "32768"
    )
    assert added.returncode == 0, added.stdout + added.stderr
    done = run_cli(
        settings, tmp_path, "catalog", "update-model", "local/mistral-7b", "--max-output", "4096",
        "--name", "Mistral 7B (ours)", "--disable",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "Updated local/mistral-7b (Mistral 7B (ours)): context 32,768, max output 4,096, disabled"
        in done.stdout
    )
    model = await catalog_repository.get_model(db, "local/mistral-7b")
    assert model is not None and (model.name, model.max_output_tokens, model.enabled) == (
        "Mistral 7B (ours)",
        4096,
        False,
    )
    synced = run_cli(settings, tmp_path, "catalog", "sync")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    # A reference model's maximum set by the operator is the operator's: the next sync keeps it.
    reference = run_cli(
        settings, tmp_path, "catalog", "update-model", "openai/gpt-4o", "--max-output", "8000"
    )
    assert reference.returncode == 0, reference.stdout + reference.stderr
    again = run_cli(settings, tmp_path, "catalog", "sync")
    assert again.returncode == 0, again.stdout + again.stderr
    db.expire_all()
    gpt = await catalog_repository.get_model(db, "openai/gpt-4o")
    assert gpt is not None and gpt.max_output_tokens == 8000

    nothing = run_cli(settings, tmp_path, "catalog", "update-model", "local/mistral-7b")
    assert nothing.returncode == 1 and "Nothing to change" in nothing.stdout
    unknown = run_cli(settings, tmp_path, "catalog", "update-model", "local/none", "--enable")
    assert unknown.returncode == 1 and "No model 'local/none' in the catalog." in unknown.stdout
    assert "Traceback" not in nothing.stderr + unknown.stderr


# -- serve: Redis absent, proxies -----------------------------------------------------------------------


async def test_the_listeners_refuse_to_start_without_redis_and_say_where() -> None:
    port = free_port()
    client = Redis.from_url(f"redis://:hunter2@127.0.0.1:{port}/0")
    try:
        for start in (CacheBus(lambda message: None, client).start, LiveHub(client).start):
            began = time.monotonic()
            with pytest.raises(RedisUnavailable) as caught:
                await start()
            assert time.monotonic() - began < 5
            message = str(caught.value)
            assert f"Cannot reach Redis at redis://127.0.0.1:{port}/0 (TOKENBOARD_REDIS_URL)" in message
            assert "Start Redis there or correct TOKENBOARD_REDIS_URL" in message and "hunter2" not in message
    finally:
        await client.aclose()


def test_redacted_urls_keep_no_password() -> None:
    assert redacted_url("redis://user:pw@cache:6379/2") == "redis://user:***@cache:6379/2"
    assert redacted_url("redis://:pw@cache:6379/0") == "redis://***@cache:6379/0"
    assert redacted_url("rediss://cache.internal:6380/0") == "rediss://cache.internal:6380/0"
    assert (
        redacted_url("unix:///run/redis.sock?db=1&password=pw") == "unix:///run/redis.sock?db=1&password=***"
    )


def test_serve_names_the_unreachable_redis_and_stops(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "TOKENBOARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/never.db",
        "TOKENBOARD_REDIS_URL": f"redis://ops:hunter2@127.0.0.1:{port}/0",
        "TOKENBOARD_PORT": str(free_port()),
        "COLUMNS": "300",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tokenboard", "serve"],
        env=env,
        cwd=tmp_path,
        text=True,
        capture_output=True,
        timeout=60,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert f"Error: Cannot reach Redis at redis://ops:***@127.0.0.1:{port}/0 (TOKENBOARD_REDIS_URL)" in output
    assert "hunter2" not in output and "Traceback" not in output
    assert not (tmp_path / "never.db").exists()  # it stopped before migrating anything


@contextmanager
def serving(tmp_path: Path, database_url: str, *args: str, **settings: str) -> Iterator[tuple[str, Path]]:
    """``tokenboard serve ARGS`` on a free loopback port; yields its URL and log file."""
    port = free_port()
    env = {
        **os.environ,
        "TOKENBOARD_DATABASE_URL": database_url,
        "TOKENBOARD_SECRET_KEY": "proxy-test-secret",
        "TOKENBOARD_ENV": "testing",
        "TOKENBOARD_PORT": str(port),
        **settings,
    }
    log_path = tmp_path / f"serve-{port}.log"
    proc = start_serve(env, tmp_path, log_path, *args, within=120)
    base = f"http://127.0.0.1:{port}"
    try:
        yield base, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def failed_login(browser: httpx.Client, address: str) -> int:
    """A wrong password for a new email from ``address`` (as a proxy would forward it); the status code."""
    headers = {"X-Forwarded-For": address}
    page = browser.get("/login", headers=headers, follow_redirects=True).text
    headers["X-CSRF-Token"] = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    body = {"email": f"{uuid.uuid4().hex}@example.com", "password": "not the password"}
    return browser.post("/api/v1/auth/login", json=body, headers=headers).status_code


def test_serve_takes_client_addresses_from_trusted_proxies_only(tmp_path: Path) -> None:
    url, name = create_database("sqlite", tmp_path, "proxy")
    # Fresh addresses every run: the first server's failure counters outlive it in Redis (for the window).
    first, second = (f"2001:db8::{uuid.uuid4().hex[:4]}:{n}" for n in (1, 2))
    try:
        # Two workers behind a trusted proxy (this test): each forwarded address has its own failures.
        with (
            serving(
                tmp_path, url, "--workers", "2",
                TOKENBOARD_FORWARDED_ALLOW_IPS="127.0.0.1",
                TOKENBOARD_REDIS_URL=COUNTERS_REDIS_URL,  # failure counters shared by the workers
                TOKENBOARD_LOGIN_MAX_FAILURES_PER_ADDRESS="2",
            ) as (base, log),
            httpx.Client(base_url=base, timeout=30) as browser,
        ):  # fmt: skip
            assert [failed_login(browser, first) for _ in range(3)] == [401, 401, 429]
            assert failed_login(browser, second) == 401  # another client, behind the same proxy
            time.sleep(0.5)  # the access log is written once the response has gone out
            assert f'{first}:0 - "POST /api/v1/auth/login HTTP/1.1" 401' in log.read_text()
        # Without TOKENBOARD_FORWARDED_ALLOW_IPS the header is ignored: a client cannot pick its address.
        with (
            serving(tmp_path, url, TOKENBOARD_LOGIN_MAX_FAILURES_PER_ADDRESS="2") as (base, log),
            httpx.Client(base_url=base, timeout=30) as browser,
        ):
            spoofed = [failed_login(browser, f"198.51.100.{n}") for n in range(3)]
            assert spoofed == [401, 401, 429]  # all three counted against the connection's address
            time.sleep(0.5)
            text_ = log.read_text()
            assert "127.0.0.1:" in text_ and "198.51.100." not in text_
    finally:
        drop_database("sqlite", name)


# -- import ---------------------------------------------------------------------------------------------


async def test_import_reads_excel_csv_and_announces_it_to_open_pages(
    factory: Factory, settings: Settings, tmp_path: Path
) -> None:
    await factory.run(lambda s: catalog.sync(s, provider_ids=["simulated"]))
    org = await new_org(factory, "Excel Co")
    path = tmp_path / "usage.csv"
    rows = "".join(f"x{i},2026-01-05T09:0{i}:00Z,simulated/echo,{10 * i},{i}\r\n" for i in range(1, 4))
    # Excel's "CSV UTF-8": a byte order mark, then CRLF lines.
    path.write_text("id,timestamp,model,input_tokens,output_tokens\r\n" + rows, encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")

    client = Redis.from_url(REDIS_URL)
    listener = LiveHub(client)  # another instance: it hears what the import publishes through Redis
    try:
        await listener.start()
        with listener.subscribe(org.id) as page:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tokenboard", "import", str(path), "--org", str(org.id),
                env={
                    **os.environ,
                    "TOKENBOARD_DATABASE_URL": settings.database_url,
                    "TOKENBOARD_REDIS_URL": REDIS_URL,
                    "COLUMNS": "200",
                },
                cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await proc.communicate()
            output = out.decode() + err.decode()
            assert proc.returncode == 0, output
            assert "3 accepted" in output and "0 rejected" in output
            message = await page.next(within=5)
            assert message is not None, "the import announced nothing through Redis"
            assert message.event == "usage" and message.data["requests"] == 3
            assert message.data["cost_nanousd"] > 0
    finally:
        await listener.stop()
        await client.aclose()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            "id;timestamp;model;input_tokens",
            [
                "The CSV header row lacks the required columns id, timestamp, model",
                "columns found: 'id;timestamp;model;input_tokens'",
                "It contains ';': separate the columns with commas",
            ],
        ),
        (
            "request_id,time,model,tokens",
            [
                "The CSV header row lacks the required columns id, timestamp and names unknown columns "
                "'request_id', 'time', 'tokens'",
                "columns found: 'request_id', 'time', 'model', 'tokens'",
                "The first line must name the columns, separated by commas: id, timestamp, model",
            ],
        ),
    ],
)
async def test_import_refuses_a_wrong_header_once_and_says_why(
    factory: Factory, app: object, tmp_path: Path, header: str, expected: list[str]
) -> None:
    org = await new_org(factory, "Header Co")
    path = tmp_path / "usage.csv"
    path.write_text(header + "\n" + "a;2026-01-05T09:00:00Z;openai/gpt-4o;1\n" * 3)
    with pytest.raises(BadRequest) as caught:
        await import_file(app.state.sessionmaker, path, str(org.id))  # type: ignore[attr-defined]
    for part in expected:
        assert part in caught.value.message


async def test_the_import_command_reports_a_wrong_separator_once(
    factory: Factory, settings: Settings, tmp_path: Path
) -> None:
    org = await new_org(factory, "Semicolon Co")
    path = tmp_path / "usage.csv"
    path.write_text("id;timestamp;model\n" + "a;2026-01-05T09:00:00Z;openai/gpt-4o\n" * 3)
    done = run_cli(settings, tmp_path, "import", str(path), "--org", str(org.id))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Error: The CSV header row lacks the required columns id, timestamp, model" in done.stdout
    assert (
        "It contains ';'" in done.stdout
        and "line 2" not in done.stdout
        and "Field required" not in done.stdout
    )
