"""The OKR commands as a user runs them: validate, apply, preview, report, explain, compute, kr set, kam assess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every test runs okrsync in a subprocess

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "mappings" / "examples"
AS_OF = "2026-09-30T18:00:00"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("okrsync")
    result = okrsync(path, "sync", "salesforce", "--sandbox")
    assert result.returncode == 0, result.stderr
    return path


def okrsync(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    env.update(
        OKRSYNC_DATA_DIR=str(path),
        OKRSYNC_SANDBOX__ACTIVITIES="3000",
        OKRSYNC_SANDBOX__ACCOUNTS="60",
        OKRSYNC_SANDBOX__OPPORTUNITIES="150",
        OKRSYNC_SANDBOX__ANCHOR="2026-09-30T18:00:00Z",
        COLUMNS="200",
    )
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args], env=env, cwd=path, capture_output=True, text=True, timeout=120
    )


def test_validate_reports_each_problem_with_its_line(workdir: Path) -> None:
    good = okrsync(workdir, "mappings", "validate", str(EXAMPLES / "pipeline-hygiene.yaml"))
    assert good.returncode == 0, good.stderr
    assert "valid — 1 objective(s), 4 key result(s), 10 hygiene rule(s)" in good.stdout
    bad = workdir / "bad.yaml"
    bad.write_text(
        (EXAMPLES / "acquisition.yaml")
        .read_text()
        .replace("target: 150\n", "target: lots\n", 1)
        .replace(
            "    title: We open doors to new customers\n",
            "    title: We open doors to new customers\n    owner: Maria\n",
            1,
        )
    )
    result = okrsync(workdir, "mappings", "validate", str(bad))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith(str(bad))]
    assert len(lines) == 2, result.stderr
    assert 'objectives[0]: unknown key "owner"' in lines[0]
    assert "target: Input should be a valid number" in lines[1] and '(got "lots")' in lines[1]
    typo = workdir / "typo.yaml"
    typo.write_text(
        (EXAMPLES / "acquisition.yaml").read_text().replace("account.account_type", "account.acount_type", 1)
    )
    result = okrsync(workdir, "mappings", "validate", str(typo))
    assert result.returncode == 1 and '"acount_type" is not a field on account' in result.stderr
    assert "nothing was applied" in result.stderr


def test_validate_warns_about_a_key_result_that_reads_every_activity(workdir: Path) -> None:
    """A count without an activity_kind condition is valid (exit 0) but warned about, at its line."""
    text = (EXAMPLES / "acquisition.yaml").read_text()
    kinds = "            - {field: activity_kind, op: eq, value: meeting}\n"
    assert text.count(kinds) >= 1
    wide = workdir / "wide.yaml"
    wide.write_text(text.replace(kinds, "            - {field: subject, op: contains, value: Discovery}\n", 1))
    result = okrsync(workdir, "mappings", "validate", str(wide))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if ": warning: " in line]
    assert len(warnings) == 1, result.stderr
    line = next(n for n, row in enumerate(wide.read_text().splitlines(), 1) if "key: discovery-meetings" in row)
    assert warnings[0].startswith(f"{wide}:{line + 5}:"), warnings  # its where:
    assert "discovery-meetings reads every activity of the team in its window" in warnings[0]
    assert "tests subject contains, account.account_type eq on each" in warnings[0]
    assert "valid —" in result.stdout


def test_validate_warns_about_a_key_result_that_counts_activities_by_creation(workdir: Path) -> None:
    """Activities counted by created_at are valid (exit 0) but warned about at their date_field: no index finds the
    ones created since the last computation."""
    text = (EXAMPLES / "acquisition.yaml").read_text()
    counted = (
        "          of: activities\n          where:\n            - {field: activity_kind, op: eq, value: meeting}\n"
    )
    assert counted in text
    dated = workdir / "dated.yaml"
    dated.write_text(
        text.replace(
            counted, counted.replace("          where:", "          date_field: created_at\n          where:"), 1
        )
    )
    result = okrsync(workdir, "mappings", "validate", str(dated))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if ": warning: " in line]
    assert len(warnings) == 1, result.stderr
    rows = dated.read_text().splitlines()
    key = next(n for n, row in enumerate(rows, 1) if "key: discovery-meetings" in row)
    line = next(n for n, row in enumerate(rows, 1) if n > key and "date_field: created_at" in row)
    assert warnings[0].startswith(f"{dated}:{line}:"), warnings
    assert "discovery-meetings counts activities by created_at" in warnings[0]


def test_apply_report_explain_and_manual_values(workdir: Path) -> None:
    care = str(EXAMPLES / "customer-care.yaml")
    preview = okrsync(workdir, "mappings", "preview", care, "--as-of", AS_OF)
    assert preview.returncode == 0, preview.stderr
    assert "Our customers recommend us" in preview.stdout and "nothing was stored" in preview.stderr
    assert "no mapping applied yet" in okrsync(workdir, "report").stderr  # the preview stored nothing

    applied = okrsync(workdir, "mappings", "apply", care, "--as-of", AS_OF, "--author", "sales-ops")
    assert applied.returncode == 0, applied.stderr
    assert "Key Accounts / Q3 2026: version 1 — first version" in applied.stdout
    again = okrsync(workdir, "mappings", "apply", care, "--as-of", AS_OF)
    assert "unchanged (version 1)" in again.stdout

    report = okrsync(workdir, "report")
    assert report.returncode == 0, report.stderr
    assert "Key Accounts — Q3 2026" in report.stdout and "Median response time below 24 hours" in report.stdout
    assert "Key accounts:" in report.stdout

    explain = okrsync(workdir, "explain", "answered-within-4h", "--limit", "3")
    assert explain.returncode == 0, explain.stderr
    assert "record(s) counted; showing 3" in explain.stdout and explain.stdout.count("pair") == 3
    # measured in business hours (team.calendar): each answered pair shows both waits, an open one says so
    pairs = okrsync(workdir, "explain", "answered-within-4h", "--limit", "60").stdout.splitlines()
    answered = [line for line in pairs if "pair" in line and "waited" in line]
    assert answered and all(re.search(r"waited [\d.]+ h \([\d.]+ business h\)", line) for line in answered)
    assert all("waited" in line or "not answered yet" in line for line in pairs if "pair" in line)
    kam = okrsync(workdir, "explain", "key-accounts-healthy", "--limit", "4")
    assert kam.returncode == 0, kam.stderr
    assert "criterion result(s) on key accounts" in kam.stdout and "three-contacts" in kam.stdout
    unknown = okrsync(workdir, "explain", "no-such-kr")
    assert unknown.returncode == 1 and "no key result 'no-such-kr'" in unknown.stderr

    manual = okrsync(workdir, "kr", "set", "nps", "35", "--note", "survey 2026-09-15", "--author", "maria")
    assert manual.returncode == 0, manual.stderr
    refused = okrsync(workdir, "kr", "set", "median-response", "3")
    assert refused.returncode == 1 and "only manual ones take values" in refused.stderr
    history = okrsync(workdir, "mappings", "history")
    assert "v1" in history.stdout and "sales-ops" in history.stdout


def test_compute_after_sync_is_incremental(workdir: Path) -> None:
    okrsync(workdir, "mappings", "apply", str(EXAMPLES / "acquisition.yaml"), "--as-of", AS_OF)
    assert okrsync(workdir, "sync", "salesforce", "--sandbox").returncode == 0
    result = okrsync(workdir, "compute", "--mapping", "Vertrieb DACH / Q3 2026", "--as-of", AS_OF)
    assert result.returncode == 0, result.stderr
    assert "Vertrieb DACH / Q3 2026: incremental" in result.stdout
    full = okrsync(workdir, "compute", "--mapping", "Vertrieb DACH / Q3 2026", "--as-of", AS_OF, "--full")
    assert "full, 7 key result(s) recomputed" in full.stdout
