"""A real ``tokenboard serve`` process on a free loopback port, with its own fresh database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.databases import create_database, drop_database

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LiveServer:
    url: str
    database_url: str
    backend: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait(self, timeout: float) -> int:
        """The exit code once the server has stopped (e.g. after a signal the test sent)."""
        return self.process.wait(timeout=timeout)


def start_serve(
    env: dict[str, str], cwd: Path, log_path: Path, *args: str, within: float = 90
) -> subprocess.Popen[bytes]:
    """Start ``tokenboard serve ARGS`` (no migration) and wait until it answers /healthz on its port (a
    loaded machine, the suite on 2 cores, can take tens of seconds)."""
    with log_path.open("a") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tokenboard", "serve", "--no-migrate", *args],
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{env['TOKENBOARD_PORT']}"
    deadline = time.monotonic() + within
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"tokenboard serve did not start:\n{log_path.read_text()}")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(backend: str, tmp_dir: Path, *, seed_demo: bool = True) -> Iterator[LiveServer]:
    url, name = create_database(backend, tmp_dir, "live")
    port = free_port()
    env = {
        **os.environ,
        "TOKENBOARD_DATABASE_URL": url,
        "TOKENBOARD_SECRET_KEY": "live-server-test-secret",
        "TOKENBOARD_ENV": "testing",
        "TOKENBOARD_PORT": str(port),
        "TOKENBOARD_BASE_URL": f"http://127.0.0.1:{port}",
    }
    log_path = tmp_dir / f"server-{backend}-{port}.log"
    if seed_demo:
        subprocess.run(
            [sys.executable, "-m", "tokenboard", "demo"],
            env=env,
            cwd=tmp_dir,
            check=True,
            capture_output=True,
        )
    try:
        proc = start_serve(env, tmp_dir, log_path)
    except Exception:
        drop_database(backend, name)
        raise
    base = f"http://127.0.0.1:{port}"
    try:
        yield LiveServer(url=base, database_url=url, backend=backend, log_path=log_path, process=proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        drop_database(backend, name)
