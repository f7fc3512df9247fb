"""A real ``okrsync serve --sandbox`` in a subprocess on a free loopback port, with its own data dir (SQLite, sandbox
certificates), ready once its worker has synced the sandbox org; and the ``okrsync`` CLI against the same data."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from service.kit.server import free_port
from tests import loopback


@dataclass
class ServedSidecar:
    base_url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path  # the child's stdout and stderr

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``okrsync ARGS`` with the sidecar's settings (same database)."""
        return subprocess.run(
            [sys.executable, "-m", "service.cli", *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def token(self, *, name: str, role: str, email: str | None = None, team: str | None = None) -> str:
        """A new API token (``okrsync token create``; ``team`` for a lead), printed once on stdout, never on stderr."""
        created = self.cli(
            "token", "create", "--name", name, "--role", role, *(("--email", email) if email else ()),
            *(("--team", team) if team else ()),
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        token = created.stdout.strip()
        assert token.startswith("okr_") and token not in created.stderr
        return token


@contextmanager
def okrsync_serve(
    data_dir: Path,
    *,
    anchor: str = "2026-09-30T18:00:00Z",
    accounts: int = 20,
    opportunities: int = 40,
    activities: int = 500,
    timeout: float = 60,
    extra_env: dict[str, str] | None = None,
) -> Iterator[ServedSidecar]:
    """Start ``okrsync serve --sandbox`` and wait until the worker has synced the sandbox's Salesforce org."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    env.update(
        OKRSYNC_DATA_DIR=str(data_dir), OKRSYNC_SANDBOX__ACTIVITIES=str(activities),
        OKRSYNC_SANDBOX__ACCOUNTS=str(accounts), OKRSYNC_SANDBOX__OPPORTUNITIES=str(opportunities),
        OKRSYNC_SANDBOX__ANCHOR=anchor,
    )  # fmt: skip
    env.update(extra_env or {})
    log = data_dir / "serve.log"  # a file, not a pipe: a long-running child must never block on a full pipe
    with log.open("wb") as output:
        child = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--sandbox", "--port", str(port)],
            env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert child.poll() is None, log.read_text(errors="replace")[-2000:]
            try:
                ready = loopback.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200 and ready.json()["last_sync_age_seconds"].get("salesforce") is not None:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"okrsync serve did not become ready: {log.read_text()[-2000:]}"
            time.sleep(0.2)
        yield ServedSidecar(f"http://127.0.0.1:{port}", env, child, log)
    finally:
        child.terminate()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)
