"""CRM ingest (Salesforce and HubSpot): records/s and API calls into SQLite and PostgreSQL, and peak memory as
the data grows.

The sandbox CRM runs in its own process (`okrsync sandbox`, zero latency, TLS on loopback) so that the sync
process's figures are its own: wall time, records stored per second and peak RSS (from wait4's rusage of the sync
process). The memory series syncs growing orgs into SQLite; flat peak RSS means pages are streamed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_DB = "okrsync_bench"
PAGE_MINIMUM = {"salesforce": 5, "hubspot": 100}  # API calls per 10,000 records read at the largest page size


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fresh_postgres() -> str:
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    return f"postgresql://postgres@127.0.0.1:5432/{BENCH_DB}"


class Sandbox:
    """`okrsync sandbox` in a child process."""

    def __init__(self, data_dir: Path, activities: int) -> None:
        self.port = _free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "OKRSYNC_DATA_DIR": str(data_dir),
            "OKRSYNC_LOG_LEVEL": "WARNING",
            "OKRSYNC_SANDBOX__ACTIVITIES": str(activities),
            "OKRSYNC_SANDBOX__ACCOUNTS": "2000",
            "OKRSYNC_SANDBOX__OPPORTUNITIES": "5000",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "sandbox", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 300
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the sandbox CRM did not start") from None
                time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _sync(crm: str, data_dir: Path, database_url: str, sandbox_url: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "OKRSYNC_DATA_DIR": str(data_dir),
        "OKRSYNC_DATABASE_URL": database_url,
        "OKRSYNC_LOG_LEVEL": "WARNING",
    }
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "sync", crm, "--sandbox-url", sandbox_url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    out = process.stdout.read() if process.stdout else ""
    err = process.stderr.read() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"sync failed: {err[-2000:]}")
    summary = out.strip()
    calls = int(summary.split(" API calls")[0].split(";")[-1].strip())
    return {
        "seconds": round(seconds, 2),
        # CPU seconds of the sync process: on a shared machine, wall time also measures the neighbours
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "api_calls": calls,
        "summary": summary,
    }


def _records(summary: str) -> int:
    # "written/fetched: User 11/11, Account 30/30, …" → total written
    part = summary.split("written/fetched:")[1].split(";")[0]
    return sum(int(item.strip().split()[-1].split("/")[0]) for item in part.split(","))


def run(
    *,
    activities: int,
    memory_steps: list[int],
    crms: tuple[str, ...] = ("salesforce", "hubspot"),
    databases: tuple[str, ...] = ("sqlite", "postgresql"),
) -> dict:
    results: dict[str, Any] = {"activities": activities, "runs": [], "memory": []}
    with tempfile.TemporaryDirectory(prefix="okrsync-bench-") as tmp:
        data_dir = Path(tmp)
        sandbox = Sandbox(data_dir, activities)
        try:
            for crm in crms:
                for name in databases:
                    url = f"sqlite:///{data_dir / f'{crm}.db'}" if name == "sqlite" else _fresh_postgres()
                    figures = _sync(crm, data_dir, url, sandbox.url)
                    records = _records(figures["summary"])
                    figures.update(
                        crm=crm, database=name, records=records, records_per_second=round(records / figures["seconds"])
                    )
                    results["runs"].append(figures)
                    print(f"ingest {crm} {name}: {records} records in {figures['seconds']} s", file=sys.stderr)
        finally:
            sandbox.stop()
        for step in memory_steps:
            step_dir = data_dir / f"mem-{step}"
            step_dir.mkdir()
            sandbox = Sandbox(step_dir, step)
            try:
                for crm in crms:
                    figures = _sync(crm, step_dir, f"sqlite:///{step_dir / f'{crm}.db'}", sandbox.url)
                    results["memory"].append(
                        {
                            "crm": crm,
                            "activities": step,
                            "peak_rss_mb": figures["peak_rss_mb"],
                            "seconds": figures["seconds"],
                        }
                    )
                    print(f"memory {crm} {step}: {figures['peak_rss_mb']} MB", file=sys.stderr)
            finally:
                sandbox.stop()
    return results


def table(results: dict[str, Any]) -> str:
    lines = [
        f"## First sync of {results['activities']:,} activities (engagements), sandbox in its own process,"
        " zero latency, 2 cores shared by sandbox, sync and database",
        "",
        "| CRM | database | records | seconds | records/s | sync CPU (s) | API calls | calls per 10,000 records |"
        " platform minimum per 10,000 | peak RSS (MB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in results["runs"]:
        per_10k = round(f["api_calls"] * 10_000 / f["records"], 1) if f["records"] else 0
        lines.append(
            f"| {f['crm']} | {f['database']} | {f['records']:,} | {f['seconds']} | "
            f"{f['records_per_second']:,} | {f.get('cpu_seconds', '–')} | {f['api_calls']:,} | {per_10k} |"
            f" {PAGE_MINIMUM[f['crm']]} |"
            f" {f['peak_rss_mb']} |"
        )
    lines += [
        "",
        "Platform minimum: one call per full page — Salesforce's query returns up to 2,000 records a call (5 per"
        " 10,000), HubSpot's list endpoints 100 (100 per 10,000). HubSpot's first sync reads associations inline"
        " with the list pages (a v4 batch read only for a record with more than 100 entries of one type); owners,"
        " pipelines, a property check and the account details add 5 calls. Records counts the records written"
        " (deal↔contact links and leads derived from contacts not included). Sync CPU: user + system seconds of the"
        " sync process; wall time also shows the other processes sharing the 2 cores.",
    ]
    lines += [
        "",
        "## Peak memory of the sync process (SQLite) as the data grows",
        "",
        "| CRM | activities | peak RSS (MB) | seconds |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {m['crm']} | {m['activities']:,} | {m['peak_rss_mb']} | {m['seconds']} |" for m in results["memory"]]
    return "\n".join(lines)
