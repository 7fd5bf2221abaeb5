"""``tokenboard billing`` verbs, run as an operator would: subprocesses against a real database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.databases import BACKENDS, create_database, drop_database


def _run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenboard", *args], env=env, cwd=cwd, text=True, capture_output=True
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_operator_verbs(backend: str, tmp_path: Path) -> None:
    url, name = create_database(backend, tmp_path, "billingcli")
    env = {**os.environ, "TOKENBOARD_DATABASE_URL": url, "COLUMNS": "200"}
    try:
        made = _run(
            env,
            tmp_path,
            "create-user",
            "--email",
            "b@example.com",
            "--name",
            "B",
            "--password",
            "a long password",
        )
        assert made.returncode == 0, made.stdout
        org = _run(env, tmp_path, "create-org", "--name", "Cli Billing", "--owner-email", "b@example.com")
        org_id = re.search(r"\(([0-9a-f-]{36})\)", org.stdout)
        assert org_id, org.stdout
        oid = org_id.group(1)
        adjusted = _run(
            env, tmp_path, "billing", "adjust", "--org", oid, "--amount", "12.50", "--reason", "credit note"
        )
        assert adjusted.returncode == 0 and "$12.50" in adjusted.stdout, adjusted.stdout
        down = _run(
            env, tmp_path, "billing", "adjust", "--org", oid, "--amount=-2.50", "--reason", "correction"
        )
        assert down.returncode == 0, down.stdout
        promo = _run(
            env,
            tmp_path,
            "billing",
            "promote",
            "--org",
            oid,
            "--amount",
            "5",
            "--expires",
            "2099-12-31",
            "--reason",
            "launch",
        )
        assert promo.returncode == 0 and "until 2099-12-31" in promo.stdout, promo.stdout
        no_reason = _run(env, tmp_path, "billing", "adjust", "--org", oid, "--amount", "1", "--reason", " ")
        assert no_reason.returncode == 1 and "reason" in no_reason.stdout
        shown = _run(env, tmp_path, "billing", "show", "--org", oid)
        assert shown.returncode == 0 and "balance $15.00" in shown.stdout, shown.stdout
        missing = _run(
            env,
            tmp_path,
            "billing",
            "record-payment",
            "--org",
            oid,
            "--purchase",
            str(uuid.uuid4()),
            "--reference",
            "x",
        )
        assert missing.returncode == 1 and "No such purchase" in missing.stdout
        job = _run(env, tmp_path, "billing", "run")
        assert job.returncode == 0 and "periods renewed" in job.stdout, job.stdout + job.stderr
        expired = _run(env, tmp_path, "billing", "expire-promotions")
        assert expired.returncode == 0 and "Expired $0.00" in expired.stdout
    finally:
        drop_database(backend, name)
