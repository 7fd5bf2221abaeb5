"""`tokenboard import` on CSV and JSON Lines: a subprocess against the test database, as people run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support.factories import Factory, OrgSetup
from tokenboard.catalog.service import catalog
from tokenboard.config import Settings
from tokenboard.members.roles import Role
from tokenboard.models import UsageEvent
from tokenboard.usage import repository


@pytest.fixture
async def setup(factory: Factory) -> OrgSetup:
    await factory.run(lambda s: catalog.sync(s, provider_ids=["openai"]))
    return await factory.org_with_roles("Import Co")


def run_cli(settings: Settings, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TOKENBOARD_DATABASE_URL": settings.database_url, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "tokenboard", *args],
        env=env,
        cwd=tmp_path,
        text=True,
        capture_output=True,
    )


async def events_of(db: AsyncSession, setup: OrgSetup) -> dict[str, UsageEvent]:
    rows = await db.scalars(select(UsageEvent).where(UsageEvent.organization_id == setup.id))
    return {e.request_id: e for e in rows}


async def test_import_csv(setup: OrgSetup, settings: Settings, tmp_path: Path, db: AsyncSession) -> None:
    member = setup.users[Role.member]
    path = tmp_path / "usage.csv"
    path.write_text(
        "id,timestamp,model,user_email,input_tokens,output_tokens,cost_usd,feature,conversation_id\n"
        f"a1,2026-01-05T09:00:00Z,openai/gpt-4o,{member.email},1000,200,,chat,c1\n"
        f"a2,2026-01-05 09:05:00,openai/gpt-4o,{member.email},10,20,0.25,chat,c1\n"
        "a3,2026-01-05T09:06:00Z,openai/nope,,1,1,,,\n"
        "a4,2026-01-05T09:07:00Z,openai/gpt-4o,stranger@example.com,1,1,,,\n"
        "a5,not-a-time,openai/gpt-4o,,1,1,,,\n"
        "a6,2026-01-06T10:00:00Z,openai/gpt-4o,,5,5,,,\n"
    )
    done = run_cli(settings, tmp_path, "import", str(path), "--org", str(setup.id))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "3 accepted" in done.stdout and "0 duplicates" in done.stdout and "3 rejected" in done.stdout
    assert "line 4: model 'openai/nope' is not in the catalog" in done.stdout
    assert "line 5: stranger@example.com is not a member" in done.stdout
    assert "line 6: timestamp" in done.stdout
    events = await events_of(db, setup)
    assert set(events) == {"a1", "a2", "a6"}
    assert events["a2"].cost_nanousd == 250_000_000 and events["a1"].cost_nanousd > 0
    assert events["a1"].user_id == member.id and events["a1"].source == "import"
    assert events["a6"].user_id is None and events["a2"].created_at.tzinfo is not None
    summary = await repository.summary(db, setup.id, None, None)
    assert summary.requests == 3 and summary.cost_nanousd == sum(e.cost_nanousd for e in events.values())

    again = run_cli(settings, tmp_path, "import", str(path), "--org", setup.organization.name.lower())
    assert "0 accepted" in again.stdout and "3 duplicates" in again.stdout, again.stdout
    db.expire_all()
    assert (await repository.summary(db, setup.id, None, None)).requests == 3

    rebuilt = run_cli(settings, tmp_path, "rollups", "rebuild", "--org", str(setup.id))
    assert rebuilt.returncode == 0 and "Rollups rebuilt from 3 usage events" in rebuilt.stdout, rebuilt.stdout
    db.expire_all()
    assert await repository.summary(db, setup.id, None, None) == summary


async def test_csv_cells_are_text_read_as_numbers_booleans_and_times(
    setup: OrgSetup, settings: Settings, tmp_path: Path, db: AsyncSession
) -> None:
    """The ingest API refuses numbers and booleans given as strings; a CSV file has nothing else."""
    path = tmp_path / "usage.csv"
    path.write_text(
        "id,timestamp,model,input_tokens,output_tokens,cost_usd,stream,cancelled,status_code,latency_ms\n"
        "t1,2026-01-05T09:30:00Z,openai/gpt-4o,1000,200,0.25,true,0,500,1200\n"
        # Unix seconds, and the exponent notation spreadsheets write small amounts in.
        "t2,1767605400,openai/gpt-4o, 12 ,3,1.5E-06,1,false,200,12.0\n"
        "t3,2026-01-05T09:30:00Z,openai/gpt-4o,12.5,3,,,,,\n"
    )
    done = run_cli(settings, tmp_path, "import", str(path), "--org", str(setup.id))
    assert "2 accepted" in done.stdout and "1 rejected" in done.stdout, done.stdout + done.stderr
    assert "line 4: input_tokens" in done.stdout
    events = await events_of(db, setup)
    t1, t2 = events["t1"], events["t2"]
    assert (t1.input_tokens, t1.output_tokens, t1.cost_nanousd) == (1000, 200, 250_000_000)
    assert (t1.stream, t1.cancelled, t1.status_code, t1.latency_ms) == (True, False, 500, 1200)
    assert (t2.input_tokens, t2.output_tokens, t2.cost_nanousd) == (12, 3, 1_500)
    assert (t2.stream, t2.cancelled, t2.status_code, t2.latency_ms) == (True, False, 200, 12)
    assert t1.created_at == t2.created_at == datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


async def test_import_jsonl(setup: OrgSetup, settings: Settings, tmp_path: Path, db: AsyncSession) -> None:
    lines: list[Any] = [
        {
            "id": f"j{i}",
            "timestamp": "2026-02-01T12:00:00+01:00",
            "model": "openai/gpt-4o-mini",
            "input_tokens": i,
        }
        for i in range(12)
    ]
    # A JSON object is checked as the ingest API checks it: a number given as a string is refused.
    strings = {"id": "s1", "timestamp": "2026-02-01T12:00:00Z", "model": "openai/gpt-4o-mini"}
    path = tmp_path / "usage.jsonl"
    path.write_text(
        "\n".join(json.dumps(line) for line in lines)
        + "\n\n{broken\n[1, 2]\n"
        + json.dumps({"id": "x"})
        + "\n"
        + json.dumps(strings | {"input_tokens": "12"})
        + "\n"
        + json.dumps(strings | {"id": "s2", "stream": "true"})
        + "\n"
        + json.dumps(strings | {"id": "s3", "timestamp": 1767605400})
        + "\n"
    )
    done = run_cli(settings, tmp_path, "import", str(path), "--org", str(setup.id))
    assert "12 accepted" in done.stdout and "6 rejected" in done.stdout, done.stdout + done.stderr
    assert "line 14: not JSON" in done.stdout and "line 15: not a JSON object" in done.stdout
    assert "line 16: timestamp: Field required" in done.stdout
    assert "line 17: input_tokens: Input should be a valid integer" in done.stdout
    assert "line 18: stream: Input should be a valid boolean" in done.stdout
    assert "line 19: timestamp: Input should be ISO 8601 text" in done.stdout
    events = await events_of(db, setup)
    assert len(events) == 12
    assert events["j0"].created_at.hour == 11  # stored in UTC


async def test_import_refuses_unknown_orgs_and_formats(
    setup: OrgSetup, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "u.jsonl"
    path.write_text("")
    missing = run_cli(settings, tmp_path, "import", str(path), "--org", "No Such Org")
    assert missing.returncode == 1 and "No organization" in missing.stdout
    bad = run_cli(settings, tmp_path, "import", str(path), "--org", str(setup.id), "--format", "xml")
    assert bad.returncode == 1 and "Unknown format" in bad.stdout
