"""Several processes on one PostgreSQL: two sidecars take a webhook burst, two `okrsync worker` processes handle it.

Everything is a real process (`okrsync sandbox`, `okrsync serve --no-worker`, `okrsync worker`) and talks over
loopback; the test counts: every distinct event is stored once (repeats counted on it), finished exactly once
(``attempts`` 1, one worker named in ``processed_by``), and a worker killed with SIGKILL in the middle of a pass
leaves its work to the other, which takes it over once the lease expires.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlmodel
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from service.crm.models import Activity, CrmConnection, Opportunity
from service.kit.db import create_schema
from service.kit.leases import WorkLease
from service.kit.server import free_port
from service.sidecar import SANDBOX_HUBSPOT_CLIENT_SECRET
from service.webhooks.models import WebhookEvent
from service.webhooks.verify import sign_hubspot_v3
from tests.conftest import POSTGRES_URL, _postgres_engine

ROOT = Path(__file__).resolve().parents[2]
OKRSYNC = str(Path(sys.executable).parent / "okrsync")
PORTAL_ID = 145_000_001


@dataclass
class Deployment:
    tmp: Path
    engine: Engine
    sandbox_url: str
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, name: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("wb")
        process = subprocess.Popen([OKRSYNC, *args], env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def run(self, *args: str) -> str:
        done = subprocess.run([OKRSYNC, *args], env=self.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"okrsync {' '.join(args)}: {done.stderr[-2000:]}"
        return done.stdout

    def sidecar(self) -> str:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        self.start(f"sidecar-{port}", "serve", "--sandbox-url", self.sandbox_url, "--no-worker", "--port", str(port),
                   OKRSYNC_WEBHOOKS__PUBLIC_BASE_URL=base)  # fmt: skip
        _wait_for(lambda: httpx.get(f"{base}/healthz", timeout=1).status_code == 200, f"sidecar on {base}")
        return base

    def worker(self, **env: str) -> subprocess.Popen[bytes]:
        return self.start(f"worker-{len(self.processes)}", "worker", "--sandbox-url", self.sandbox_url, **env)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(self.tmp.glob("*.log")))


def _wait_for(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    """PostgreSQL, the sandbox CRM in its own process, HubSpot synced and the acquisition OKRs applied and written.
    An indirect parameter sets the sandbox's latency per CRM call (seconds)."""
    engine = _postgres_engine()
    import service.models  # noqa: F401

    SQLModel.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text("drop table if exists alembic_version"))
    create_schema(engine)
    port = free_port()
    env = {
        **os.environ,
        "OKRSYNC_DATA_DIR": str(tmp_path / "data"),
        "OKRSYNC_DATABASE_URL": POSTGRES_URL,
        "OKRSYNC_LOG_LEVEL": "WARNING",
        "OKRSYNC_SANDBOX__ANCHOR": "2026-09-30T18:00:00Z",
        "OKRSYNC_SANDBOX__ACCOUNTS": "40",
        "OKRSYNC_SANDBOX__OPPORTUNITIES": "120",
        "OKRSYNC_SANDBOX__ACTIVITIES": "3000",
        "OKRSYNC_SERVE__SYNC_INTERVAL_SECONDS": "3600",
        "OKRSYNC_SERVE__COALESCE_SECONDS": "0.3",
        "OKRSYNC_SERVE__WORKER_POLL_SECONDS": "0.1",
        "OKRSYNC_SERVE__LEASE_SECONDS": "3",
        "OKRSYNC_SANDBOX__LATENCY_SECONDS": str(getattr(request, "param", 0)),
    }
    world = Deployment(tmp_path, engine, f"https://127.0.0.1:{port}", env)
    try:
        world.start("sandbox", "sandbox", "--port", str(port))
        _wait_for(lambda: _listening(port), "the sandbox CRM")
        world.run("sync", "hubspot", "--sandbox-url", world.sandbox_url)
        example = str(ROOT / "mappings/examples/acquisition.yaml")
        world.run("mappings", "apply", example, "--connection", "hubspot/sandbox", "--as-of", "2026-09-30T18:00:00",
                  "--author", "test", "--reason", "test")  # fmt: skip
        world.run("provision", "hubspot", "--sandbox-url", world.sandbox_url)
        world.run("writeback", "hubspot", "--sandbox-url", world.sandbox_url)
        # the periodic sync just ran (the sync above): workers only handle events in these tests
        with engine.begin() as conn:
            conn.execute(
                sqlmodel.insert(WorkLease).values(name="crm:hubspot/sandbox", last_sync_at=sqlmodel.func.now())
            )
        yield world
    finally:
        for process in world.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in world.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        engine.dispose()


def _burst(engine: Engine, count: int, seed: int) -> list[dict[str, Any]]:
    """HubSpot events about the portal's real deals and meetings (as synced), some of them repeated."""
    with Session(engine) as session:
        hubspot = session.exec(sqlmodel.select(CrmConnection).where(CrmConnection.crm == "hubspot")).one()
        deals = session.exec(
            sqlmodel.select(Opportunity.external_id).where(Opportunity.connection_id == hubspot.id).limit(50)
        ).all()
        meetings = session.exec(
            sqlmodel.select(Activity.external_id)
            .where(Activity.connection_id == hubspot.id, Activity.activity_kind == "meeting")
            .limit(300)
        ).all()
    rng = random.Random(seed)
    events = []
    for number in range(count):
        deal = number % 3 == 0
        events.append({
            "eventId": seed * 100_000 + number, "subscriptionId": 3 if deal else 4, "portalId": PORTAL_ID,
            "occurredAt": int(time.time() * 1000) - rng.randint(0, 60_000),
            "subscriptionType": "deal.propertyChange" if deal else "object.propertyChange",
            **({} if deal else {"objectTypeId": "0-47"}),
            "objectId": int(rng.choice(deals if deal else meetings)),
            "propertyName": "amount" if deal else "hs_meeting_outcome", "propertyValue": str(number),
        })  # fmt: skip
    return events


def _post(base: str, events: list[dict[str, Any]]) -> dict[str, int]:
    body = json.dumps(events).encode()
    stamp = str(int(time.time() * 1000))
    uri = f"{base}/webhooks/hubspot"
    signature = sign_hubspot_v3(
        client_secret=SANDBOX_HUBSPOT_CLIENT_SECRET, method="POST", uri=uri, body=body, timestamp=stamp
    )
    headers = {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": stamp,
               "Content-Type": "application/json"}  # fmt: skip
    answer = httpx.post(uri, content=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _deliver(sidecars: list[str], deliveries: list[dict[str, Any]]) -> Counter[str]:
    batches = [deliveries[n : n + 100] for n in range(0, len(deliveries), 100)]
    answers: Counter[str] = Counter()
    with ThreadPoolExecutor(4) as pool:  # four senders, batches spread over the sidecars
        for answer in pool.map(lambda nb: _post(sidecars[nb[0] % len(sidecars)], nb[1]), enumerate(batches)):
            answers.update(answer)
    return answers


def _events(engine: Engine) -> list[WebhookEvent]:
    with Session(engine) as session:
        return list(session.exec(sqlmodel.select(WebhookEvent)).all())


def _settled(engine: Engine) -> bool:
    return not any(e.status == "pending" for e in _events(engine))


@pytest.mark.parametrize("deployment", [0.05], indirect=True, ids=["50ms-crm"])
def test_two_sidecars_and_two_workers_process_every_event_exactly_once(deployment: Deployment) -> None:
    # CRM calls take 50 ms: passes last long enough that two workers without leases would overlap (and finish the
    # same events twice: attempts 2)
    sidecars = [deployment.sidecar(), deployment.sidecar()]
    deployment.worker()
    deployment.worker()
    events = _burst(deployment.engine, 3000, seed=1)
    rng = random.Random(2)
    deliveries = events + rng.sample(events, 300)  # HubSpot delivers some twice, to either sidecar
    rng.shuffle(deliveries)
    answers = _deliver(sidecars, deliveries)
    assert answers["accepted"] + answers["duplicates"] == 3300
    try:
        _wait_for(lambda: _settled(deployment.engine), "the workers to finish the burst", timeout=120)
    except AssertionError:
        raise AssertionError(deployment.logs()) from None
    stored = _events(deployment.engine)
    assert len(stored) == 3000 and sum(e.duplicates for e in stored) == 300  # every delivery accounted for
    assert Counter(e.status for e in stored) == {"processed": 3000}, deployment.logs()
    assert Counter(e.attempts for e in stored) == {1: 3000}  # each finished exactly once
    assert all(e.processed_by for e in stored)
    with Session(deployment.engine) as session:
        lease = session.get(WorkLease, "crm:hubspot/sandbox")
    assert lease is not None and lease.holder is None and 1 <= lease.passes <= 30, lease


@pytest.mark.parametrize("deployment", [0.1], indirect=True, ids=["100ms-crm"])
def test_a_worker_killed_mid_pass_leaves_its_events_to_another(deployment: Deployment) -> None:
    sidecar = deployment.sidecar()
    # every CRM call takes 100 ms, so the first worker's pass lasts seconds: it is killed in the middle of it
    first = deployment.worker()
    events = _burst(deployment.engine, 400, seed=3)
    _deliver([sidecar], events)

    def holds_lease() -> bool:
        with Session(deployment.engine) as session:
            lease = session.get(WorkLease, "crm:hubspot/sandbox")
            return lease is not None and lease.holder is not None and f":{first.pid}:" in lease.holder

    _wait_for(holds_lease, "the first worker to take the lease", timeout=30)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    pending_after_kill = sum(1 for e in _events(deployment.engine) if e.status == "pending")
    second = deployment.worker()
    try:
        _wait_for(lambda: _settled(deployment.engine), "the second worker to take over", timeout=120)
    except AssertionError:
        raise AssertionError(deployment.logs()) from None
    stored = _events(deployment.engine)
    assert Counter(e.status for e in stored) == {"processed": 400}
    assert Counter(e.attempts for e in stored) == {1: 400}  # the killed worker finished none it did not record
    by = Counter((e.processed_by or "").split(":")[1] for e in stored)
    assert by[str(second.pid)] >= pending_after_kill > 0, (by, pending_after_kill)
