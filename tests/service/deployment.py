"""Real okrsync processes for tests: the sandbox CRM, sidecars and workers as subprocesses on loopback, sharing
one database; helpers to send signed HubSpot webhook bursts and to wait for the workers. ``add_hubspot_portal`` adds
a second sandbox CRM process as an extra HubSpot connection (OKRSYNC_CONNECTIONS) of the processes started after."""

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
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlmodel
import yaml
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from connectors.hubspot.adapter import ADAPTER as HUBSPOT
from connectors.hubspot.webhooks import sign_hubspot_v3
from service.crm.models import Activity, CrmConnection, Opportunity
from service.kit.db import make_engine
from service.kit.leases import WorkLease
from service.kit.migrate import create_schema
from service.kit.server import free_port
from service.sidecar import SANDBOX_HUBSPOT_CLIENT_SECRET
from service.webhooks.models import WebhookEvent
from tests import loopback

ROOT = Path(__file__).resolve().parents[2]
OKRSYNC = str(Path(sys.executable).parent / "okrsync")
PORTAL_ID = 145_000_001
AS_OF = "2026-09-30T18:00:00"


@dataclass
class ExtraPortal:
    """A sandbox CRM process serving one more HubSpot portal, configured as the extra connection ``name``."""

    name: str
    url: str
    ca: Path
    portal_id: int
    team: str  # the team of its copy of the examples
    env: dict[str, str]  # settings making this portal the default HubSpot connection of a CLI run (sync, writeback)
    connection: dict[str, Any]  # its OKRSYNC_CONNECTIONS entry (with the sandbox's demo token, not a secret)


@dataclass
class Deployment:
    tmp: Path
    engine: Engine
    sandbox_url: str
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    portals: dict[str, ExtraPortal] = field(default_factory=dict)

    def start(self, name: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("wb")
        process = subprocess.Popen([OKRSYNC, *args], env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def run(self, *args: str, **env: str) -> str:
        done = subprocess.run([OKRSYNC, *args], env={**self.env, **env}, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"okrsync {' '.join(args)}: {done.stderr[-2000:]}"
        return done.stdout

    def add_hubspot_portal(
        self, name: str, *, seed: int, portal_id: int, examples: tuple[str, ...] = ("acquisition",)
    ) -> ExtraPortal:
        """Start a second sandbox CRM (``seed``, ``portal_id``) and make its portal the extra HubSpot connection
        ``name``: synced (filed under hubspot/``name``), the examples applied under another team name, provisioned
        and written back, the periodic sync marked done; sidecars and workers started after this have it in
        OKRSYNC_CONNECTIONS."""
        port = free_port()
        data = self.tmp / f"data-{name}"
        self.start(f"sandbox-{name}", "sandbox", "--port", str(port), OKRSYNC_DATA_DIR=str(data),
                   OKRSYNC_SANDBOX__SEED=str(seed), OKRSYNC_SANDBOX__PORTAL_ID=str(portal_id))  # fmt: skip
        wait_for(lambda: listening(port), f"the sandbox CRM of {name}")
        url, ca = f"https://127.0.0.1:{port}", data / "sandbox" / "ca.pem"
        config = HUBSPOT.sandbox_config(url, str(ca))
        fields = {**config.model_dump(mode="json", exclude_defaults=True),
                  "access_token": config.access_token.get_secret_value()}  # fmt: skip
        env = {
            f"OKRSYNC_HUBSPOT__{key.upper()}": v if isinstance(v, str) else json.dumps(v) for key, v in fields.items()
        }
        env.update(OKRSYNC_CONNECTION_NAME=name, OKRSYNC_CONNECTIONS="[]")
        teams = []
        self.run("sync", "hubspot", **env)
        for example in examples:
            source = (ROOT / f"mappings/examples/{example}.yaml").read_text()
            team = yaml.safe_load(source)["team"]["name"]
            teams.append(f"{team} {name}")
            copy = self.tmp / f"{example}-{name}.yaml"
            copy.write_text(source.replace(f"name: {team}", f"name: {team} {name}", 1))
            self.run("mappings", "apply", str(copy), "--connection", f"hubspot/{name}", "--as-of", AS_OF,
                     "--author", "test", "--reason", "test")  # fmt: skip
        self.run("provision", "hubspot", **env)
        self.run("writeback", "hubspot", **env)
        with self.engine.begin() as conn:  # the periodic sync just ran (the sync above): workers only handle events
            conn.execute(
                sqlmodel.insert(WorkLease).values(name=f"crm:hubspot/{name}", last_sync_at=sqlmodel.func.now())
            )
        connection = {"name": name, "hubspot": fields, "hubspot_portal_id": portal_id}
        portal = ExtraPortal(name, url, ca, portal_id, teams[0] if teams else "", env, connection)
        self.portals[name] = portal
        self.env["OKRSYNC_CONNECTIONS"] = json.dumps([p.connection for p in self.portals.values()])
        return portal

    def sidecar(self) -> str:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        self.start(f"sidecar-{port}", "serve", "--sandbox-url", self.sandbox_url, "--no-worker", "--port", str(port),
                   OKRSYNC_WEBHOOKS__PUBLIC_BASE_URL=base)  # fmt: skip
        wait_for(lambda: loopback.get(f"{base}/healthz", timeout=1).status_code == 200, f"sidecar on {base}")
        return base

    def worker(self, **env: str) -> subprocess.Popen[bytes]:
        return self.start(f"worker-{len(self.processes)}", "worker", "--sandbox-url", self.sandbox_url, **env)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(self.tmp.glob("*.log")))


def wait_for(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def fresh_database(url: str) -> Engine:
    """An empty okrsync schema at ``url`` (tables dropped first)."""
    engine = make_engine(url)
    import service.models  # noqa: F401

    SQLModel.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text("drop table if exists alembic_version"))
    create_schema(engine)
    return engine


@contextmanager
def deployed(
    tmp_path: Path,
    url: str,
    *,
    latency: float = 0,
    crm: str = "hubspot",
    examples: tuple[str, ...] = ("acquisition",),
    write_back: bool = True,
) -> Iterator[Deployment]:
    """A database at ``url``, the sandbox CRM in its own process, ``crm`` synced, the ``examples`` applied (and
    written back unless told not to, with the periodic sync marked done); every CRM answer takes ``latency``
    seconds. Processes started through it are stopped after."""
    engine = fresh_database(url)
    tmp_path.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "OKRSYNC_DATA_DIR": str(tmp_path / "data"),
        "OKRSYNC_DATABASE_URL": url,
        "OKRSYNC_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        "OKRSYNC_SANDBOX__ANCHOR": "2026-09-30T18:00:00Z",
        "OKRSYNC_SANDBOX__ACCOUNTS": "40",
        "OKRSYNC_SANDBOX__OPPORTUNITIES": "120",
        "OKRSYNC_SANDBOX__ACTIVITIES": "3000",
        "OKRSYNC_SERVE__SYNC_INTERVAL_SECONDS": "3600",
        "OKRSYNC_SERVE__COALESCE_SECONDS": "0.3",
        "OKRSYNC_SERVE__WORKER_POLL_SECONDS": "0.1",
        "OKRSYNC_SERVE__LEASE_SECONDS": "3",
        "OKRSYNC_SANDBOX__LATENCY_SECONDS": str(latency),
    }
    world = Deployment(tmp_path, engine, f"https://127.0.0.1:{port}", env)
    try:
        world.start("sandbox", "sandbox", "--port", str(port))
        wait_for(lambda: listening(port), "the sandbox CRM")
        world.run("sync", crm, "--sandbox-url", world.sandbox_url)
        for name in examples:
            example = str(ROOT / f"mappings/examples/{name}.yaml")
            world.run("mappings", "apply", example, "--connection", f"{crm}/sandbox", "--as-of", AS_OF,
                      "--author", "test", "--reason", "test")  # fmt: skip
        if crm == "hubspot":
            world.run("provision", "hubspot", "--sandbox-url", world.sandbox_url)
        if write_back:
            world.run("writeback", crm, "--sandbox-url", world.sandbox_url)
            # the periodic sync just ran (the sync above): workers only handle events
            with engine.begin() as conn:
                conn.execute(
                    sqlmodel.insert(WorkLease).values(name=f"crm:{crm}/sandbox", last_sync_at=sqlmodel.func.now())
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


def burst(
    engine: Engine, count: int, seed: int, *, connection: str = "sandbox", portal_id: int = PORTAL_ID
) -> list[dict[str, Any]]:
    """HubSpot events about the portal's real deals and meetings (as synced into ``connection``)."""
    with Session(engine) as session:
        hubspot = session.exec(
            sqlmodel.select(CrmConnection).where(CrmConnection.crm == "hubspot", CrmConnection.name == connection)
        ).one()
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
            "eventId": seed * 100_000 + number, "subscriptionId": 3 if deal else 4, "portalId": portal_id,
            "occurredAt": int(time.time() * 1000) - rng.randint(0, 60_000),
            "subscriptionType": "deal.propertyChange" if deal else "object.propertyChange",
            **({} if deal else {"objectTypeId": "0-47"}),
            "objectId": int(rng.choice(deals if deal else meetings)),
            "propertyName": "amount" if deal else "hs_meeting_outcome", "propertyValue": str(number),
        })  # fmt: skip
    return events


def post(base: str, events: list[dict[str, Any]]) -> dict[str, int]:
    body = json.dumps(events).encode()
    stamp = str(int(time.time() * 1000))
    uri = f"{base}/webhooks/hubspot"
    signature = sign_hubspot_v3(
        client_secret=SANDBOX_HUBSPOT_CLIENT_SECRET, method="POST", uri=uri, body=body, timestamp=stamp
    )
    headers = {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": stamp,
               "Content-Type": "application/json"}  # fmt: skip
    answer = loopback.post(uri, content=body, headers=headers, timeout=30)
    assert answer.status_code == 200, f"{answer.status_code} {answer.text}"
    return answer.json()  # type: ignore[no-any-return]


def deliver(sidecars: list[str], deliveries: list[dict[str, Any]]) -> Counter[str]:
    batches = [deliveries[n : n + 100] for n in range(0, len(deliveries), 100)]
    answers: Counter[str] = Counter()
    with ThreadPoolExecutor(4) as pool:  # four senders, batches spread over the sidecars
        for answer in pool.map(lambda nb: post(sidecars[nb[0] % len(sidecars)], nb[1]), enumerate(batches)):
            answers.update(answer)
    return answers


def events(engine: Engine) -> list[WebhookEvent]:
    with Session(engine) as session:
        return list(session.exec(sqlmodel.select(WebhookEvent)).all())


def settled(engine: Engine) -> bool:
    return not any(e.status == "pending" for e in events(engine))
