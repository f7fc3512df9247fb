"""Faults, with real processes on real PostgreSQL.

- ``kill -9`` of the worker at random points of its pass (full sync, compute, write-back), several times, then a
  worker that runs to the end: the local model and the CRM are the same as after a clean run without kills, and no
  record was created twice in the CRM.
- The same, with CRM faults injected throughout on the killed side (503s on reads, a write applied but its answer
  lost, a record locked once): nothing lost, nothing written twice.
- PostgreSQL restarted under load (a private cluster started by the test, so the suite's database is untouched):
  the sidecar and the worker recover without anyone touching them, and every webhook event is processed.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlmodel
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.compute.models import HygieneSummary, KeyResultValue
from service.crm.models import Account, Activity, Opportunity
from service.kit.db import make_engine
from service.kit.leases import WorkLease
from service.kit.server import free_port
from service.okrs.models import OkrMapping
from service.writeback.models import OutboxRow
from tests import loopback
from tests.conftest import BASE_POSTGRES_URL, POSTGRES_URL, _postgres_engine
from tests.service.deployment import Deployment, burst, deliver, deployed, events, post, settled, wait_for

pytestmark = pytest.mark.slow  # a deployment of okrsync processes, killed and restarted

EXAMPLES = ("acquisition", "customer-care", "pipeline-hygiene")
LEASE = "crm:salesforce/sandbox"
CRM_FIELDS = {  # what okrsync writes, without the time stamps (the two runs compute at different moments)
    "OKR_Objective__c": ("Okrsync_Id__c", "Progress__c", "Status__c", "Achieved__c"),
    "OKR_Key_Result__c": ("Okrsync_Id__c", "Value__c", "Progress__c", "Status__c", "Records__c"),
    "OKR_Contribution__c": ("Okrsync_Id__c", "Value__c", "Records__c"),
    "KAM_Criterion__c": ("Okrsync_Id__c", "Status__c", "Measured__c"),
    "Opportunity": ("Id", "OKR_Hygiene_Score__c", "OKR_Hygiene_Issues__c"),
}


def _second_database(name: str) -> str:
    """Another database beside this xdist worker's, for the clean run."""
    admin = make_engine(BASE_POSTGRES_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("select 1 from pg_database where datname = :n"), {"n": name}).first():
            conn.execute(text(f'create database "{name}"'))
    admin.dispose()
    return f"{BASE_POSTGRES_URL.rsplit('/', 1)[0]}/{name}"


def _force_full_pass(engine: Engine) -> None:
    """Make the worker's next pass heavy: a full re-read of the CRM (no sync cursors), a recompute of everything
    it touches, and the whole write-back (nothing sent yet)."""
    with engine.begin() as conn:
        conn.execute(text("delete from sync_state"))
        conn.execute(text("delete from work_lease"))


def _pass_done(engine: Engine) -> bool:
    with Session(engine) as session:
        lease = session.get(WorkLease, LEASE)
        pending = session.exec(sqlmodel.select(OutboxRow).where(OutboxRow.status == "pending")).first()
        return lease is not None and lease.passes >= 1 and lease.holder is None and pending is None


def _local(engine: Engine) -> dict[str, Any]:
    with Session(engine) as session:
        names = {m.id: f"{m.team}/{m.cycle}" for m in session.exec(sqlmodel.select(OkrMapping))}
        return {
            "key_results": sorted(
                (names[v.mapping_id], v.kr_key, v.value, v.records, v.status)
                for v in session.exec(sqlmodel.select(KeyResultValue))
            ),
            "hygiene": sorted(
                (names[h.mapping_id], h.rule_key, h.violations, h.score)
                for h in session.exec(sqlmodel.select(HygieneSummary))
            ),
            "records": [
                len(session.exec(sqlmodel.select(model.external_id)).all())  # type: ignore[attr-defined]
                for model in (Account, Opportunity, Activity)
            ],
            "outbox": sorted((r.target, r.record_key, r.status) for r in session.exec(sqlmodel.select(OutboxRow))),
        }


_STUCK_DAYS = re.compile(r"(In stage [^\n]*? for )\d+ days")


def _crm(world: Deployment) -> dict[str, list[tuple[Any, ...]]]:
    """What okrsync wrote into the sandbox org (its own process), read through the sandbox's control API."""
    ca = ssl.create_default_context(cafile=Path(world.env["OKRSYNC_DATA_DIR"]) / "sandbox" / "ca.pem")
    out: dict[str, list[tuple[Any, ...]]] = {}
    for sobject, fields in CRM_FIELDS.items():
        answer = loopback.get(f"{world.sandbox_url}/__sandbox/records/{sobject}", verify=ca, timeout=30)
        assert answer.status_code == 200, answer.text
        rows = [tuple(r.get(f) for f in fields) for r in answer.json()]
        if sobject == "Opportunity":
            # the days in a stage are counted to the instant of computing (mappings.hygiene.days_in_stage), so two
            # deployments computing minutes apart may say 131 and 132 days: compare the sentences without that count
            rows = [tuple(_STUCK_DAYS.sub(r"\1# days", v) if isinstance(v, str) else v for v in r) for r in rows]
            rows = [r for r in rows if r[1] is not None]
        out[sobject] = sorted(rows, key=repr)
    return out


@pytest.fixture
def clean_and_killed(tmp_path: Path) -> Iterator[tuple[Deployment, Deployment]]:
    _postgres_engine().dispose()
    clean_url = _second_database(POSTGRES_URL.rsplit("/", 1)[1] + "_clean")
    with (
        deployed(tmp_path / "clean", clean_url, crm="salesforce", examples=EXAMPLES, write_back=False,
                 latency=0.01) as clean,
        deployed(tmp_path / "killed", POSTGRES_URL, crm="salesforce", examples=EXAMPLES, write_back=False,
                 latency=0.01) as killed,
    ):  # fmt: skip
        yield clean, killed


def test_kill_9_at_random_points_ends_like_a_clean_run(clean_and_killed: tuple[Deployment, Deployment]) -> None:
    clean, killed = clean_and_killed
    for world in (clean, killed):
        _force_full_pass(world.engine)
    # the clean run: one worker, one pass, to the end; its length sets where the kills fall
    worker = clean.worker()
    wait_for(lambda: _holder_pid(clean.engine) == worker.pid, "the clean worker to start its pass", timeout=60)
    started = time.monotonic()
    wait_for(lambda: _pass_done(clean.engine), "the clean pass", timeout=180)
    pass_seconds = time.monotonic() - started
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=30)
    # the same work, with CRM faults throughout and the worker killed up to three times at random points of its
    # pass (seeded: replayable)
    _inject_faults(killed)
    seed = int(os.environ.get("OKRSYNC_FAULT_SEED", random.randrange(10**6)))
    rng = random.Random(seed)
    kills: list[str] = []
    scale = 1.0
    for _ in range(6):
        if len(kills) == 3:
            break
        victim = killed.worker()
        wait_for(
            lambda v=victim: _holder_pid(killed.engine) == v.pid or _pass_done(killed.engine),
            "a worker to start its pass",
            timeout=60,
        )
        time.sleep(rng.uniform(0.05, 0.8) * pass_seconds * scale)
        if _pass_done(killed.engine):  # this one got to the end first: nothing left to interrupt
            victim.send_signal(signal.SIGTERM)
            victim.wait(timeout=30)
            if kills:
                break
            # not one kill yet: the clean pass was timed on a busier machine (CI runs 4 test processes on 2 cores;
            # seed 418812 once slept 3.1 s into a pass timed at 4.0 s that then took less). The same heavy pass
            # again, killed sooner.
            _force_full_pass(killed.engine)
            scale /= 2
            continue
        kills.append(_phase(killed))
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
    assert kills, f"no worker was killed mid-pass (seed {seed}, clean pass {pass_seconds:.1f} s)"
    survivor = killed.worker()
    wait_for(lambda: _pass_done(killed.engine), f"the pass after the kills (seed {seed}, {kills})", timeout=180)
    survivor.send_signal(signal.SIGTERM)
    survivor.wait(timeout=30)
    faults = _stats(killed)["faults"]
    assert all(f["fired"] == f["times"] for f in faults if f["kind"] != "latency"), str(faults)  # each happened

    assert _local(killed.engine) == _local(clean.engine), f"seed {seed}, killed during {kills}"
    crm_clean, crm_killed = _crm(clean), _crm(killed)
    assert crm_killed == crm_clean, f"seed {seed}, killed during {kills}"
    assert crm_clean["OKR_Key_Result__c"] and crm_clean["Opportunity"]  # something was written
    for sobject in ("OKR_Objective__c", "OKR_Key_Result__c", "OKR_Contribution__c", "KAM_Criterion__c"):
        ids = [row[0] for row in crm_killed[sobject]]
        assert len(ids) == len(set(ids)), f"{sobject}: a record was created twice (seed {seed})"


def _stats(world: Deployment) -> dict[str, Any]:
    ca = ssl.create_default_context(cafile=Path(world.env["OKRSYNC_DATA_DIR"]) / "sandbox" / "ca.pem")
    return loopback.get(f"{world.sandbox_url}/__sandbox/stats", verify=ca, timeout=10).json()  # type: ignore[no-any-return]


def _inject_faults(world: Deployment) -> None:
    ca = ssl.create_default_context(cafile=Path(world.env["OKRSYNC_DATA_DIR"]) / "sandbox" / "ca.pem")
    for fault in (
        {"kind": "http", "status": 503, "after": 5, "times": 2},  # two calls (whichever come 6th and 7th) fail
        {"kind": "http", "status": 503, "match": "query_more", "after": 0, "times": 1},
        {"kind": "drop", "match": "composite_upsert", "after": 1, "times": 2},  # applied, the answer lost: replayed
        {"kind": "record_error", "match": "composite_upsert", "index": 3, "error_code": "UNABLE_TO_LOCK_ROW"},
    ):
        answer = loopback.post(f"{world.sandbox_url}/__sandbox/faults", json=fault, verify=ca, timeout=10)
        assert answer.status_code == 201, answer.text


def _holder_pid(engine: Engine) -> int | None:
    with Session(engine) as session:
        lease = session.get(WorkLease, LEASE)
        if lease is None or lease.holder is None or lease.expires_at is None:
            return None
        return int(lease.holder.split(":")[1])


def _phase(world: Deployment) -> str:
    """Where the pass is, roughly, from what the database shows (for the failure message)."""
    with Session(world.engine) as session:
        sent = session.exec(sqlmodel.select(OutboxRow).where(OutboxRow.status != "pending")).first()
        staged = session.exec(sqlmodel.select(OutboxRow)).first()
    return "write-back" if sent else "compute/staging" if staged else "sync"


# ------------------------------------------------------------------------------ PostgreSQL restarted under load


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (initdb in a temp dir, run as the postgres user on a free port)."""

    def __init__(self) -> None:
        bindir = Path(subprocess.check_output(["pg_config", "--bindir"], text=True).strip())
        if not (bindir / "initdb").exists():
            versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
            assert versions, "PostgreSQL server binaries (initdb) not found: apt-get install postgresql"
            bindir = versions[-1].parent
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="okrsync-pg-"))
        self.port = free_port()
        shutil.chown(self.dir, "postgres")
        self._as_postgres("initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._as_postgres("pg_ctl", "-D", str(self.dir / "data"), "-o", options, "-l", str(self.dir / "log"), "-w",
                          "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres("pg_ctl", "-D", str(self.dir / "data"), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.remove()


def _deliver_until_accepted(sidecar: str, batches: list[list[dict[str, Any]]]) -> int:
    """Send batches like HubSpot does: a batch answered with an error or not at all is sent again later."""
    retries = 0
    for batch in batches:
        for _attempt in range(200):
            try:
                deliver([sidecar], batch)
                break
            except (AssertionError, httpx.HTTPError):
                retries += 1
                time.sleep(0.25)
        else:
            raise AssertionError("a batch was never accepted")
    return retries


def test_postgres_restarted_under_load_recovers_without_manual_action(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    with deployed(tmp_path, private_postgres.url, latency=0.02) as world:
        sidecar = world.sidecar()
        world.worker()
        # the worker is up (a worker starting while the database is down exits 1, for its supervisor to restart)
        wait_for(lambda: "worker " in (world.tmp / "worker-2.log").read_text(), "the worker to start")
        batches = [burst(world.engine, 100, seed=10 + n) for n in range(12)]
        retries = _deliver_until_accepted(sidecar, batches[:4])
        private_postgres.stop("immediate")  # a crash, as if the database host went away
        with pytest.raises(AssertionError, match="500|503"):
            post(sidecar, batches[4])  # not accepted while the database is down (5xx): HubSpot sends it again
        ready = loopback.get(f"{sidecar}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["database"] != "ok"
        time.sleep(2)
        private_postgres.start()
        retries += _deliver_until_accepted(sidecar, batches[4:])
        try:
            wait_for(lambda: settled(world.engine), "the worker to process every event after the restart", 120)
        except AssertionError:
            raise AssertionError(world.logs()) from None
        stored = events(world.engine)
        assert len(stored) == 1200 and all(e.status == "processed" for e in stored), world.logs()
        assert loopback.get(f"{sidecar}/readyz", timeout=10).json()["database"] == "ok"
        assert all(p.poll() is None for p in world.processes), "a process died instead of recovering"
