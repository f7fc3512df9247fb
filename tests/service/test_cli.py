"""The okrsync command line: --help everywhere, and the README's main job on the embedded sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["sandbox"],
        ["sync"],
        ["sync", "salesforce"],
        ["sync", "hubspot"],
        ["mappings"],
        ["mappings", "validate"],
        ["mappings", "schema"],
        ["mappings", "apply"],
        ["mappings", "preview"],
        ["mappings", "history"],
        ["compute"],
        ["report"],
        ["explain"],
        ["kr", "set"],
        ["kam", "assess"],
        ["demo"],
    ],
    ids=lambda a: " ".join(a) or "okrsync",
)
def test_every_command_has_help(args: list[str]) -> None:
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


@pytest.mark.slow  # okrsync in a subprocess
def test_sync_without_configuration_says_how_to_configure(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    env.update(OKRSYNC_DATA_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "sync", "salesforce"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "OKRSYNC_SALESFORCE__INSTANCE_URL" in result.stderr and "--sandbox" in result.stderr


@pytest.mark.slow  # okrsync in a subprocess
def test_main_job_embedded_sandbox_full_then_incremental(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    env.update(
        OKRSYNC_DATA_DIR=str(tmp_path),
        OKRSYNC_SANDBOX__ACTIVITIES="2500",
        OKRSYNC_SANDBOX__ACCOUNTS="40",
        OKRSYNC_SANDBOX__OPPORTUNITIES="60",
        # a quarter that ended in the past: with the default (the first run's time) on a working day before 18:00
        # UTC, the day's working minutes are all stamped at the quarter's last minute, a minute before the first
        # sync, so the incremental sync's look-back re-reads them (20 calls instead of 18: this test failed every
        # such morning). This test is about a sync that finds nothing new.
        OKRSYNC_SANDBOX__ANCHOR="2026-09-30T18:00:00Z",
    )
    cmd = [sys.executable, "-m", "service.cli", "sync", "salesforce", "--sandbox"]
    first = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "salesforce full sync ok" in first.stdout and "Opportunity 60/60" in first.stdout
    second = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "salesforce incremental sync ok" in second.stdout and "Opportunity 0/" in second.stdout
    # 11 queries (the 8 objects, EmailMessage, TaskRelation, EventRelation) + 7 getDeleted: nothing changed, nothing
    # written
    assert "18 API calls" in second.stdout
    assert (tmp_path / "okrsync.db").exists()
