"""Several processes on one PostgreSQL: two sidecars take a webhook burst, two `okrsync worker` processes handle it.

Everything is a real process (`okrsync sandbox`, `okrsync serve --no-worker`, `okrsync worker`) and talks over
loopback; the test counts: every distinct event is stored once (repeats counted on it), finished exactly once
(``attempts`` 1, one worker named in ``processed_by``), and a worker killed with SIGKILL in the middle of a pass
leaves its work to the other, which takes it over once the lease expires.
"""

from __future__ import annotations

import random
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session

from service.kit.leases import WorkLease
from tests.conftest import POSTGRES_URL, _postgres_engine
from tests.service.deployment import Deployment, burst, deliver, deployed, events, settled, wait_for

pytestmark = pytest.mark.slow  # a deployment of okrsync processes


@pytest.fixture
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    """PostgreSQL, the sandbox CRM in its own process, HubSpot synced, the acquisition OKRs applied and written back.
    The indirect parameter is the sandbox's latency per CRM call (seconds)."""
    _postgres_engine().dispose()  # creates this xdist worker's database, or fails saying PostgreSQL is down
    with deployed(tmp_path, POSTGRES_URL, latency=request.param) as world:
        yield world


@pytest.mark.parametrize("deployment", [0.05], indirect=True, ids=["50ms-crm"])
def test_two_sidecars_and_two_workers_process_every_event_exactly_once(deployment: Deployment) -> None:
    # CRM calls take 50 ms: passes last long enough that two workers without leases would overlap (and finish the
    # same events twice: attempts 2)
    sidecars = [deployment.sidecar(), deployment.sidecar()]
    deployment.worker()
    deployment.worker()
    sent = burst(deployment.engine, 3000, seed=1)
    rng = random.Random(2)
    deliveries = sent + rng.sample(sent, 300)  # HubSpot delivers some twice, to either sidecar
    rng.shuffle(deliveries)
    answers = deliver(sidecars, deliveries)
    assert answers["accepted"] + answers["duplicates"] == 3300
    try:
        wait_for(lambda: settled(deployment.engine), "the workers to finish the burst", timeout=120)
    except AssertionError:
        raise AssertionError(deployment.logs()) from None
    stored = events(deployment.engine)
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
    sent = burst(deployment.engine, 400, seed=3)
    deliver([sidecar], sent)

    def holds_lease() -> bool:
        with Session(deployment.engine) as session:
            lease = session.get(WorkLease, "crm:hubspot/sandbox")
            return lease is not None and lease.holder is not None and f":{first.pid}:" in lease.holder

    wait_for(holds_lease, "the first worker to take the lease", timeout=30)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    pending_after_kill = sum(1 for e in events(deployment.engine) if e.status == "pending")
    second = deployment.worker()
    try:
        wait_for(lambda: settled(deployment.engine), "the second worker to take over", timeout=120)
    except AssertionError:
        raise AssertionError(deployment.logs()) from None
    stored = events(deployment.engine)
    assert Counter(e.status for e in stored) == {"processed": 400}
    assert Counter(e.attempts for e in stored) == {1: 400}  # the killed worker finished none it did not record
    by = Counter((e.processed_by or "").split(":")[1] for e in stored)
    assert by[str(second.pid)] >= pending_after_kill > 0, (by, pending_after_kill)


@pytest.mark.parametrize("deployment", [0], indirect=True, ids=["no-latency"])
def test_periodic_syncs_run_once_per_interval_whatever_the_number_of_workers(deployment: Deployment) -> None:
    from datetime import timedelta

    import sqlmodel

    from service.crm.models import CrmConnection
    from service.kit.db import utcnow
    from service.sync.models import SyncRun

    with Session(deployment.engine) as session:
        hubspot = session.exec(sqlmodel.select(CrmConnection).where(CrmConnection.crm == "hubspot")).one()
        before = len(session.exec(sqlmodel.select(SyncRun).where(SyncRun.connection_id == hubspot.id)).all())
    interval, window = 2.0, 16.0
    workers = [deployment.worker(OKRSYNC_SERVE__SYNC_INTERVAL_SECONDS=str(interval)) for _ in range(3)]
    logs = [deployment.tmp / f"worker-{n}.log" for n in range(len(deployment.processes) - 3, len(deployment.processes))]
    wait_for(lambda: all("worker " in log.read_text() for log in logs), "the workers to start")
    started = utcnow()
    wait_for(lambda: started + timedelta(seconds=window) < utcnow(), "the window to pass", timeout=window + 5)
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait(timeout=30)
    with Session(deployment.engine) as session:
        runs = session.exec(
            sqlmodel.select(SyncRun).where(SyncRun.connection_id == hubspot.id).order_by(SyncRun.started_at)  # type: ignore[arg-type]
        ).all()[before:]
    # three workers each syncing on their own would make ~3 × 16 / 2 = 24 runs; shared, at most one per interval
    assert 2 <= len(runs) <= window / interval + 2, [r.started_at for r in runs]
    gaps = [
        (b.started_at - a.finished_at).total_seconds() for a, b in zip(runs, runs[1:], strict=False) if a.finished_at
    ]  # type: ignore[operator]
    assert all(gap >= interval - 0.5 for gap in gaps), gaps  # never two syncs of one connection at once or too soon
