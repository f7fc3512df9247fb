"""The write-back commands as a user runs them, each in its own process against an in-process sandbox CRM."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every test runs okrsync in a subprocess

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "mappings" / "examples"


def okrsync(path: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    env.update(
        OKRSYNC_DATA_DIR=str(path),
        OKRSYNC_SANDBOX__ACTIVITIES="3000",
        OKRSYNC_SANDBOX__ACCOUNTS="60",
        OKRSYNC_SANDBOX__OPPORTUNITIES="150",
        OKRSYNC_SANDBOX__ANCHOR="2026-09-30T18:00:00Z",
        COLUMNS="200",
        **env_extra,
    )
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args], env=env, cwd=path, capture_output=True, text=True, timeout=180
    )


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_run_twice_writes_once(tmp_path: Path, crm: str) -> None:
    first = okrsync(tmp_path, "sync", crm, "--sandbox")
    assert first.returncode == 0, first.stderr
    applied = okrsync(
        tmp_path, "mappings", "apply", str(EXAMPLES / "acquisition.yaml"), "--connection", f"{crm}/sandbox",
        "--as-of", "2026-09-30T18:00:00", "--author", "test", "--reason", "test",
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    run = okrsync(tmp_path, "run", crm, "--sandbox")
    assert run.returncode == 0, run.stderr
    assert f"{crm} write-back: " in run.stdout and "record(s) written" in run.stdout
    assert "key_result" in run.stdout and "contribution" in run.stdout
    again = okrsync(tmp_path, "run", crm, "--sandbox")
    assert again.returncode == 0, again.stderr
    assert "0 record(s) written with 0 API call(s) — nothing had changed" in again.stdout
    status = okrsync(tmp_path, "writeback", crm, "--sandbox", "--status")
    assert status.returncode == 0 and "contribution   upsert  sent" in status.stdout


def test_writeback_before_any_sync_says_what_to_do(tmp_path: Path) -> None:
    result = okrsync(tmp_path, "writeback", "salesforce", "--sandbox")
    assert result.returncode == 2
    assert "nothing synced from salesforce/sandbox yet" in result.stderr and "okrsync sync salesforce" in result.stderr


def test_writeback_without_a_configured_crm(tmp_path: Path) -> None:
    result = okrsync(tmp_path, "writeback", "hubspot")
    assert result.returncode == 2 and "OKRSYNC_HUBSPOT__ACCESS_TOKEN" in result.stderr


def test_provision_hubspot_reports_what_the_portal_supports(tmp_path: Path) -> None:
    result = okrsync(tmp_path, "provision", "hubspot", "--sandbox")
    assert result.returncode == 0, result.stderr
    assert "custom objects: supported" in result.stdout and "present custom object okr_key_result" in result.stdout
    properties = okrsync(
        tmp_path, "provision", "hubspot", "--sandbox", OKRSYNC_SANDBOX__HUBSPOT_WRITEBACK_MODE="properties"
    )
    assert properties.returncode == 0 and "write-back mode: properties" in properties.stdout
