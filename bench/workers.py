"""Throughput with 1, 2 and 4 workers on PostgreSQL.

Setup: four HubSpot portals (four `okrsync sandbox` processes, different seeds and portal ids, every API answer
50 ms late) are four CRM connections of one deployment: the first is the default connection (`--sandbox-url`),
the other three come from ``OKRSYNC_CONNECTIONS``. Each is synced, gets the acquisition example (its own team) and
is written back, in this process. Then for each worker count: one sidecar (`okrsync serve --no-worker`) and N
`okrsync worker` processes; a burst of 400 signed webhook events per portal (1,600, about real deals and meetings)
is posted from four threads; the clock runs from the first post until every event is processed. A worker holds one
connection at a time (its lease), so more workers help as long as there are connections to spread over.
Figures: seconds, events/s, passes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlmodel
from sqlalchemy import text
from sqlmodel import Session

from bench.ingest import _fresh_postgres
from connectors.hubspot.adapter import ADAPTER as HUBSPOT
from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.webhooks import sign_hubspot_v3
from connectors.hubspot.writer import HubSpotWriter
from service.compute.service import compute
from service.crm.models import Activity, CrmConnection, Opportunity
from service.kit.db import make_engine
from service.kit.leases import WorkLease
from service.kit.migrate import create_schema
from service.loop import find_connection
from service.okrs import service as okrs
from service.sidecar import SANDBOX_HUBSPOT_CLIENT_SECRET
from service.sync.service import run_sync
from service.webhooks.models import WebhookEvent
from service.writeback.service import send, stage_connection

ROOT = Path(__file__).resolve().parents[1]
OKRSYNC = str(Path(sys.executable).parent / "okrsync")
ANCHOR = datetime(2026, 9, 30, 18, 0, tzinfo=UTC)
PORTAL = 145_000_001


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(check: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _hubspot_json(config: Any) -> dict[str, Any]:
    data = config.model_dump(mode="json")
    data["access_token"] = config.access_token.get_secret_value()
    return data  # type: ignore[no-any-return]


def run(
    *, portals: int = 4, events_per_portal: int = 400, counts: tuple[int, ...] = (1, 2, 4), latency: float = 0.05
) -> dict[str, Any]:
    url = _fresh_postgres()
    engine = make_engine(url)
    create_schema(engine)
    processes: list[subprocess.Popen[bytes]] = []
    results: dict[str, Any] = {
        "portals": portals,
        "events_per_portal": events_per_portal,
        "latency_ms": latency * 1000,
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="okrsync-bench-workers-") as tmp:
        work = Path(tmp)
        base_env = {
            **os.environ,
            "OKRSYNC_LOG_LEVEL": "WARNING",
            "OKRSYNC_DATABASE_URL": url,
            "OKRSYNC_SANDBOX__ANCHOR": ANCHOR.isoformat(),
            "OKRSYNC_SANDBOX__ACCOUNTS": "60",
            "OKRSYNC_SANDBOX__OPPORTUNITIES": "150",
            "OKRSYNC_SANDBOX__ACTIVITIES": "4000",
        }
        try:
            urls, configs = [], []
            for i in range(portals):
                port = _port()
                env = {
                    **base_env,
                    "OKRSYNC_DATA_DIR": str(work / f"crm{i}"),
                    "OKRSYNC_SANDBOX__SEED": str(42 + i),
                    "OKRSYNC_SANDBOX__PORTAL_ID": str(PORTAL + i),
                    "OKRSYNC_SANDBOX__LATENCY_SECONDS": str(latency),
                }
                log = (work / f"sandbox{i}.log").open("wb")
                processes.append(
                    subprocess.Popen(
                        [OKRSYNC, "sandbox", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
                    )
                )
                _wait(lambda p=port: _listening(p), f"sandbox {i}")
                base = f"https://127.0.0.1:{port}"
                urls.append(base)
                configs.append(HUBSPOT.sandbox_config(base, str(work / f"crm{i}" / "sandbox" / "ca.pem")))
            names = ["sandbox"] + [f"c{i}" for i in range(1, portals)]
            started = time.perf_counter()
            for i, (name, config) in enumerate(zip(names, configs, strict=True)):
                run_sync(engine, HubSpotConnector(config), connection_name=name)
                HubSpotWriter(config).provision()
                text_ = (ROOT / "mappings/examples/acquisition.yaml").read_text()
                text_ = text_.replace("name: Vertrieb DACH", f"name: Team {i + 1}", 1)
                with Session(engine) as session:
                    connection = find_connection(session, crm="hubspot", name=name)
                    assert connection is not None
                    loaded = okrs.load(text_, filename=f"team{i}.yaml")
                    mapping, _v = okrs.apply(
                        session, loaded, connection=connection, author="bench", reason="bench", now=ANCHOR
                    )
                    compute(session, mapping=mapping, as_of=ANCHOR)
                    stage_connection(session, connection=connection, settings=_settings(), as_of=ANCHOR)
                    session.commit()
                    connection_id = connection.id or 0
                send(engine, HubSpotWriter(config), connection_id=connection_id)
                _synced_now(engine, f"crm:hubspot/{name}")  # no periodic sync during the measurement
            results["setup_seconds"] = round(time.perf_counter() - started, 1)
            extra = [
                {"name": name, "hubspot": _hubspot_json(config), "hubspot_portal_id": PORTAL + i}
                for i, (name, config) in enumerate(zip(names, configs, strict=True))
                if i > 0
            ]
            env = {
                **base_env,
                "OKRSYNC_DATA_DIR": str(work / "crm0"),
                "OKRSYNC_CONNECTIONS": json.dumps(extra),
                "OKRSYNC_SERVE__SYNC_INTERVAL_SECONDS": "36000",
                "OKRSYNC_SERVE__COALESCE_SECONDS": "0.5",
                "OKRSYNC_SERVE__WORKER_POLL_SECONDS": "0.1",
            }
            _synced_now(engine, "crm:salesforce/sandbox")  # the default sandbox's Salesforce side: none either
            port = _port()
            sidecar = f"http://127.0.0.1:{port}"
            log = (work / "sidecar.log").open("wb")
            processes.append(
                subprocess.Popen(
                    [OKRSYNC, "serve", "--sandbox-url", urls[0], "--no-worker", "--port", str(port)],
                    env={**env, "OKRSYNC_WEBHOOKS__PUBLIC_BASE_URL": sidecar},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            _wait(lambda: httpx.get(f"{sidecar}/healthz", timeout=1).status_code == 200, "the sidecar")
            ids = _record_ids(engine, names)
            for n, count in enumerate(counts):
                workers = []
                for w in range(count):
                    wlog = work / f"worker-{count}-{w}.log"
                    workers.append(
                        subprocess.Popen(
                            [OKRSYNC, "worker", "--sandbox-url", urls[0]],
                            env=env,
                            stdout=wlog.open("wb"),
                            stderr=subprocess.STDOUT,
                        )
                    )
                    _wait(lambda f=wlog: "worker " in f.read_text(), "a worker to start")
                passes_before = _passes(engine)
                burst = _burst(ids, events_per_portal, seed=n)
                started = time.perf_counter()
                _deliver(sidecar, burst)
                _wait(lambda: _pending(engine) == 0, f"{count} workers to finish the burst", timeout=900)
                seconds = time.perf_counter() - started
                for process in workers:
                    process.send_signal(signal.SIGTERM)
                for process in workers:
                    process.wait(timeout=60)
                run_ = {
                    "workers": count,
                    "events": len(burst),
                    "seconds": round(seconds, 2),
                    "events_per_second": round(len(burst) / seconds, 1),
                    "passes": _passes(engine) - passes_before,
                }
                results["runs"].append(run_)
                print(f"workers {count}: {run_}", file=sys.stderr)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
            engine.dispose()
    return results


def _synced_now(engine: Any, lease: str) -> None:
    with engine.begin() as conn:
        conn.execute(sqlmodel.insert(WorkLease).values(name=lease, last_sync_at=datetime.now(UTC)))


def _settings() -> Any:
    from service.kit.settings import Settings

    return Settings(_env_file=None)  # type: ignore[call-arg]


def _record_ids(engine: Any, names: list[str]) -> list[tuple[list[str], list[str]]]:
    out = []
    with Session(engine) as session:
        for name in names:
            connection = session.exec(
                sqlmodel.select(CrmConnection).where(CrmConnection.crm == "hubspot", CrmConnection.name == name)
            ).one()
            deals = session.exec(
                sqlmodel.select(Opportunity.external_id).where(Opportunity.connection_id == connection.id).limit(60)
            ).all()
            meetings = session.exec(
                sqlmodel.select(Activity.external_id)
                .where(Activity.connection_id == connection.id, Activity.activity_kind == "meeting")
                .limit(300)
            ).all()
            out.append((list(deals), list(meetings)))
    return out


def _burst(ids: list[tuple[list[str], list[str]]], per_portal: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    events = []
    for i, (deals, meetings) in enumerate(ids):
        for number in range(per_portal):
            deal = number % 3 == 0
            events.append(
                {
                    "eventId": (seed * 10 + i) * 100_000 + number,
                    "subscriptionId": 3 if deal else 4,
                    "portalId": PORTAL + i,
                    "occurredAt": int(time.time() * 1000),
                    "subscriptionType": "deal.propertyChange" if deal else "object.propertyChange",
                    **({} if deal else {"objectTypeId": "0-47"}),
                    "objectId": int(rng.choice(deals if deal else meetings)),
                    "propertyName": "amount" if deal else "hs_meeting_outcome",
                    "propertyValue": str(number),
                }
            )
    rng.shuffle(events)
    return events


def _deliver(sidecar: str, events: list[dict[str, Any]]) -> None:
    def post(batch: list[dict[str, Any]]) -> None:
        body = json.dumps(batch).encode()
        stamp = str(int(time.time() * 1000))
        uri = f"{sidecar}/webhooks/hubspot"
        signature = sign_hubspot_v3(
            client_secret=SANDBOX_HUBSPOT_CLIENT_SECRET, method="POST", uri=uri, body=body, timestamp=stamp
        )
        headers = {
            "X-HubSpot-Signature-v3": signature,
            "X-HubSpot-Request-Timestamp": stamp,
            "Content-Type": "application/json",
        }
        answer = httpx.post(uri, content=body, headers=headers, timeout=60)
        answer.raise_for_status()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(post, [events[n : n + 100] for n in range(0, len(events), 100)]))


def _pending(engine: Any) -> int:
    with Session(engine) as session:
        return len(session.exec(sqlmodel.select(WebhookEvent.id).where(WebhookEvent.status == "pending")).all())


def _passes(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("select coalesce(sum(passes), 0) from work_lease")).scalar() or 0)


def table(results: dict[str, Any]) -> str:
    lines = [
        f"## Workers on PostgreSQL: {results['portals']} HubSpot connections, a burst of"
        f" {results['events_per_portal']} webhook events per connection, {results['latency_ms']:.0f} ms per CRM call",
        "",
        "| workers | events | seconds | events/s | passes |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['workers']} | {r['events']:,} | {r['seconds']} | {r['events_per_second']} | {r['passes']} |"
        for r in results["runs"]
    ]
    return "\n".join(lines)
