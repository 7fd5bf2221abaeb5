"""Killing the gateway loses no acknowledged usage and bills nothing twice after a restart."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
from sqlalchemy import func, select

from tests.gateway.conftest import USD, seed, wait_for_events
from tests.support.factories import Factory
from tests.support.live_server import free_port, start_serve
from tokenboard.config import Settings
from tokenboard.ledger.service import ledger
from tokenboard.models import CreditEntry, UsageEvent

# uvicorn shuts down gracefully on SIGTERM, then lets the signal end the process as the default would.
CLEAN_EXIT = (0, -signal.SIGTERM)
BODY = {"model": "simulated/fast", "messages": [{"role": "user", "content": "hello there"}]}


def _env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("TOKENBOARD_")},
        "TOKENBOARD_DATABASE_URL": settings.database_url,
        "TOKENBOARD_SECRET_KEY": "durability-test-secret",
        "TOKENBOARD_ENV": "testing",
        "TOKENBOARD_PORT": str(free_port()),
        "TOKENBOARD_JOURNAL_DIR": str(tmp_path / "journal"),
        # Events wait a minute in memory before their batch is written: a kill meanwhile must lose nothing.
        "TOKENBOARD_USAGE_BATCH_DELAY_MS": "60000",
        "TOKENBOARD_UPSTREAMS": json.dumps({"simulated": {"kind": "simulated", "latency_scale": 0}}),
    }


async def _count(factory: Factory, model: type, org_id: object) -> int:
    return int(
        await factory.run(
            lambda s: s.scalar(
                select(func.count()).select_from(model).where(model.organization_id == org_id)  # type: ignore[attr-defined]
            )
        )
    )


async def test_sigkill_loses_no_acknowledged_usage_and_a_restart_bills_once(
    factory: Factory, settings: Settings, tmp_path: Path
) -> None:
    tenant = await seed(factory)
    org = tenant.setup.id
    env = _env(settings, tmp_path)
    log = tmp_path / "serve.log"
    url = f"http://127.0.0.1:{env['TOKENBOARD_PORT']}"
    proc = start_serve(env, tmp_path, log)
    try:
        request_ids = []
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            for n in range(12):
                r = await http.post(
                    "/v1/chat/completions",
                    json={**BODY, "stream": n % 3 == 0},
                    headers={"authorization": f"Bearer {tenant.key}"},
                )
                assert r.status_code == 200, r.text
                request_ids.append(r.headers["x-tokenboard-request-id"])
        assert await _count(factory, UsageEvent, org) == 0  # acknowledged, still only in memory and journal
        leased = (await factory.run(lambda s: ledger.balance(s, org))).reserved_nanousd
        assert leased > 0
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert await _count(factory, UsageEvent, org) == 0

    # The next process on this host writes the dead one's journal before it serves, and frees its lease.
    proc = start_serve(env, tmp_path, log)
    try:
        events = await wait_for_events(factory, org, 12, within=5)
        assert sorted(e.request_id for e in events) == sorted(request_ids)
        assert all(e.cost_nanousd > 0 for e in events)
        balance = await factory.run(lambda s: ledger.balance(s, org))
        assert balance.balance_nanousd == 100 * USD - sum(e.cost_nanousd for e in events)
        assert balance.reserved_nanousd == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) in CLEAN_EXIT

    # Starting again changes nothing: every event and every charge applied once.
    proc = start_serve(env, tmp_path, log)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) in CLEAN_EXIT
    assert await _count(factory, UsageEvent, org) == 12
    assert await _count(factory, CreditEntry, org) == 1 + 12  # the grant, then one charge per request
    await factory.run(lambda s: ledger.check_invariants(s, org))
    assert list((tmp_path / "journal").iterdir()) == []


async def test_sigterm_drains_in_flight_usage(factory: Factory, settings: Settings, tmp_path: Path) -> None:
    tenant = await seed(factory)
    env = _env(settings, tmp_path)
    url = f"http://127.0.0.1:{env['TOKENBOARD_PORT']}"
    proc = start_serve(env, tmp_path, tmp_path / "serve.log")
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for _ in range(5):
            r = await http.post(
                "/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {tenant.key}"}
            )
            assert r.status_code == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) in CLEAN_EXIT
    # Written at shutdown, not left to a journal: the batch delay of a minute did not hold the exit.
    assert await _count(factory, UsageEvent, tenant.setup.id) == 5
    assert (await factory.run(lambda s: ledger.balance(s, tenant.setup.id))).reserved_nanousd == 0
    assert list((tmp_path / "journal").iterdir()) == []
