"""``okrsync demo`` end to end: a real subprocess on a free loopback port with its own data dir. Its steps print what
they did, the sidecar's API shows the key result moving while the simulated rep logs meetings, it stops by itself
after --duration with exit code 0, and the user's own database is never created. A busy port is refused at once."""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.demo import EXAMPLES_DIR, move_to_quarter, quarter_of, write_moved_examples
from service.okrs import service as okrs
from tests import loopback

REP_LINE = re.compile(r"logged a meeting with .+ \((HubSpot|Salesforce)\) → discovery-meetings (\d+) → (\d+) \(")


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    env.update(OKRSYNC_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    return env


class Output:
    """The child's output, read line by line in a thread (a pipe left unread would block the child)."""

    def __init__(self, child: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._fresh: queue.Queue[str | None] = queue.Queue()
        assert child.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(child.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))
            self._fresh.put(line.rstrip("\n"))
        self._fresh.put(None)

    def wait_for(self, pattern: str, *, timeout: float) -> re.Match[str]:
        """The first line from now on matching ``pattern``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._fresh.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in time:\n" + "\n".join(self.lines)) from None
            if line is None:
                raise AssertionError(f"the demo ended without {pattern!r}:\n" + "\n".join(self.lines))
            found = re.search(pattern, line)
            if found:
                return found

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _discovery_meetings(base_url: str, token: str, mapping_ids: list[int]) -> float:
    total = 0.0
    for mapping_id in mapping_ids:
        answer = loopback.get(
            f"{base_url}/api/v1/mappings/{mapping_id}", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        [kr] = [kr for o in answer.json()["objectives"] for kr in o["key_results"] if kr["key"] == "discovery-meetings"]
        total += kr["value"]
    return total


@pytest.mark.slow  # okrsync in a subprocess
def test_the_demo_runs_the_loop_and_the_key_result_moves_live(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    command = [sys.executable, "-m", "service.cli", "demo", "--port", "0", "--duration", "40", "--every", "2"]
    child = subprocess.Popen(
        command, env=_env(data_dir), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output = Output(child)
    try:
        output.wait_for(r"^✔ sync Salesforce: [\d,]+ records .*Opportunity 200.*, \d+ API calls \(", timeout=90)
        output.wait_for(r"^✔ sync HubSpot: [\d,]+ records .*deals 200.*, \d+ API calls \(", timeout=60)
        okrs_line = output.wait_for(r"^✔ OKRs: .*Salesforce: acquisition \((\d+)\).*HubSpot: acquisition \((\d+)\)",
                                    timeout=60)  # fmt: skip
        output.wait_for(r"^✔ write-back Salesforce: [1-9][\d,]* records written with \d+ API calls", timeout=60)
        output.wait_for(r"^✔ write-back HubSpot: [1-9][\d,]* records written with \d+ API calls", timeout=60)
        base_url = output.wait_for(r"^dashboard: (http://127\.0\.0\.1:\d+)/dashboard ", timeout=60).group(1)
        token = output.wait_for(r"^token \(sales_ops, named demo.*: (okr_\S+)$", timeout=10).group(1)
        mapping_ids = [int(okrs_line.group(1)), int(okrs_line.group(2))]

        before = _discovery_meetings(base_url, token, mapping_ids)
        for _ in range(2):  # the rep logs one in each CRM, and each line waits for the sidecar to count it
            output.wait_for(REP_LINE.pattern, timeout=30)
        after = _discovery_meetings(base_url, token, mapping_ids)
        assert after > before

        assert child.wait(timeout=90) == 0, output.text
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    text = output.text
    current = quarter_of(datetime.now(UTC).date())
    assert f"Vertrieb DACH — {current[2]} ({current[0]} to {current[1]})" in text  # the report, moved to this quarter
    for title in ("150 meetings with prospects", "€6M new pipeline created", "outbound calls in acquisition sprint 1"):
        assert title in text
    assert "✔ sandbox CRM: " in text and "✔ provision HubSpot: " in text and "✔ sidecar: " in text
    moves = [REP_LINE.search(line) for line in output.lines]
    assert {m.group(1) for m in moves if m} == {"HubSpot", "Salesforce"}
    assert all(int(m.group(3)) == int(m.group(2)) + 1 for m in moves if m)
    assert "stopped: sidecar, worker and sandbox CRM" in text
    assert (data_dir / "demo" / "okrsync.db").exists()
    assert not (data_dir / "okrsync.db").exists()  # the user's own database: never touched


@pytest.mark.slow  # okrsync in a subprocess
def test_a_busy_port_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "service.cli", "demo", "--port", str(port)],
            env=_env(tmp_path / "data"), cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert f"port {port} on 127.0.0.1 is in use" in message and "--port 0" in message
    assert not (tmp_path / "data").exists()  # nothing started, nothing written


@pytest.mark.parametrize(
    ("today", "first", "last", "name"),
    [
        (date(2026, 11, 28), date(2026, 10, 1), date(2026, 12, 31), "Q4 2026"),
        (date(2027, 2, 14), date(2027, 1, 1), date(2027, 3, 31), "Q1 2027"),
        (date(2028, 2, 29), date(2028, 1, 1), date(2028, 3, 31), "Q1 2028"),
        (date(2026, 7, 1), date(2026, 7, 1), date(2026, 9, 30), "Q3 2026"),
    ],
    ids=str,
)
def test_the_examples_move_to_the_current_quarter(today: date, first: date, last: date, name: str) -> None:
    moved = move_to_quarter(yaml.safe_load((EXAMPLES_DIR / "acquisition.yaml").read_text()), today=today)
    assert (moved["cycle"]["name"], moved["cycle"]["start"], moved["cycle"]["end"]) == (name, first, last)
    shift = first - date(2026, 7, 1)
    assert [(s["start"], s["end"]) for s in moved["sprints"]] == [
        (date(2026, 8, 3) + shift, date(2026, 8, 14) + shift),
        (date(2026, 8, 24) + shift, date(2026, 9, 4) + shift),
        (date(2026, 9, 14) + shift, date(2026, 9, 25) + shift),
    ]


def test_a_sprint_leaving_the_quarter_is_dropped_with_its_key_results() -> None:
    config = yaml.safe_load((EXAMPLES_DIR / "acquisition.yaml").read_text())
    config["sprints"][0].update(start=date(2026, 9, 20), end=date(2026, 9, 30))  # 92 days: past a 90-day Q1
    moved = move_to_quarter(config, today=date(2027, 1, 5))
    assert [s["key"] for s in moved["sprints"]] == ["acquisition-sprint-2", "acquisition-sprint-3"]
    keys = [kr["key"] for o in moved["objectives"] for kr in o["key_results"]]
    assert "sprint-first-calls" not in keys and "discovery-meetings" in keys


def test_the_moved_files_are_valid_mapping_files(tmp_path: Path) -> None:
    files = write_moved_examples(tmp_path, today=date(2027, 5, 3))
    assert sorted(files) == ["acquisition", "customer-care", "pipeline-hygiene"]
    for path in files.values():
        loaded = okrs.load_path(path)
        assert (loaded.config.cycle.start, loaded.config.cycle.end) == (date(2027, 4, 1), date(2027, 6, 30))
        assert path.read_text().startswith("# okrsync demo:")
