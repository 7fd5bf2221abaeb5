"""The CLI verbs, run as a person would: as a subprocess against a real database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.databases import BACKENDS, create_database, drop_database


def _run(
    env: dict[str, str], cwd: Path, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenboard", *args],
        env=env,
        cwd=cwd,
        input=input,
        text=True,
        capture_output=True,
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_cli_verbs(backend: str, tmp_path: Path) -> None:
    url, name = create_database(backend, tmp_path, "cli")
    env = {**os.environ, "TOKENBOARD_DATABASE_URL": url, "COLUMNS": "200"}
    try:
        help_text = _run(env, tmp_path, "--help")
        assert help_text.returncode == 0
        for verb in ("serve", "migrate", "demo", "create-user", "create-org", "announce"):
            assert verb in help_text.stdout
        assert _run(env, tmp_path, "migrate").returncode == 0
        demo = _run(env, tmp_path, "demo")
        assert demo.returncode == 0, demo.stderr
        assert "owner@demo.tokenboard.dev" in demo.stdout and "tokenboard-demo" in demo.stdout
        again = _run(env, tmp_path, "demo", "--events", "50")
        assert again.returncode == 0 and "already there" in again.stdout
        # Nothing is seeded into an existing demo, and the command says so rather than nothing.
        assert "The demo organization already exists, so --events 50 was not applied" in again.stdout
        assert "not applied" not in demo.stdout
        user = _run(
            env,
            tmp_path,
            "create-user",
            "--email",
            "ops@example.com",
            "--name",
            "Ops",
            "--operator",
            input="a long password\na long password\n",
        )
        assert user.returncode == 0, user.stdout + user.stderr
        dup = _run(
            env,
            tmp_path,
            "create-user",
            "--email",
            "ops@example.com",
            "--name",
            "Ops",
            "--password",
            "a long password",
        )
        assert dup.returncode == 1 and "already exists" in dup.stdout
        org = _run(
            env,
            tmp_path,
            "create-org",
            "--name",
            "Ops Co",
            "--owner-email",
            "ops@example.com",
            "--seats",
            "5",
        )
        assert org.returncode == 0 and "Ops Co" in org.stdout
        missing = _run(env, tmp_path, "create-org", "--name", "X", "--owner-email", "nobody@example.com")
        assert missing.returncode == 1 and "No user" in missing.stdout
        news = _run(env, tmp_path, "announce", "--title", "v2 is out", "--kind", "release")
        assert news.returncode == 0
        bad = _run(env, tmp_path, "announce", "--title", "x", "--kind", "gossip")
        assert bad.returncode == 1 and "Unknown kind" in bad.stdout
    finally:
        drop_database(backend, name)
