"""An incremental compute takes in what a sync committed after the last computation started, also when the sync
had stamped those records before that start because it was still running (in another process: the sidecar's
worker syncs while the API applies a mapping or records a KAM assessment, and each computes).

The race itself is timing; the test writes its outcome into the database as it would be: the sync run's start and
end around the computation's start, the records it wrote stamped before that start."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.connector import SalesforceConnector
from connectors.sandbox.store import SandboxOrg
from service.compute.models import Computation
from service.compute.service import changes_since_last, compute
from service.crm.models import Activity
from service.okrs import service as okrs
from service.okrs.models import OkrMapping
from service.sync.models import SyncRun
from service.sync.service import run_sync
from tests.conftest import ANCHOR
from tests.service.compute.test_incremental import _assert_same, change_meeting, snapshot

EXAMPLE = Path(__file__).resolve().parents[3] / "mappings" / "examples" / "acquisition.yaml"


@pytest.mark.parametrize("run_ended", ["after the computation started", "before it"])
def test_a_sync_still_running_when_the_last_computation_started_is_read_again(
    engine: Engine, org: SandboxOrg, config: SalesforceConfig, run_ended: str
) -> None:
    run_sync(engine, SalesforceConnector(config), connection_name="sandbox")
    with Session(engine) as session:
        connection = okrs.resolve_connection(session, "salesforce/sandbox")
        mapping, _ = okrs.apply(session, okrs.load_path(EXAMPLE), connection=connection, author="test", now=ANCHOR)
        compute(session, mapping=mapping, as_of=ANCHOR)
        session.commit()
        mapping_id = mapping.id
        last = session.exec(select(Computation).order_by(col(Computation.id).desc())).first()
        assert last is not None
        started = last.started_at
        before = snapshot(session, mapping_id)  # type: ignore[arg-type]

    change_meeting(org)  # a prospect meeting moves to a customer's opportunity
    report = run_sync(engine, SalesforceConnector(config), connection_name="sandbox")
    with Session(engine) as session:
        written = set(session.exec(select(Activity.external_id).where(Activity.synced_at > started)).all())
    assert written, "the sync wrote the changed meeting"
    # the run started 10 s before the computation, stamped its records 5 s before it, and ended 5 s after it (or,
    # in the other case, 1 s before it: the computation then saw everything it wrote)
    end = (
        started + timedelta(seconds=5)
        if run_ended == "after the computation started"
        else started - timedelta(seconds=1)
    )
    with engine.begin() as conn:
        conn.execute(
            update(SyncRun)
            .where(col(SyncRun.id) == report.run_id)
            .values(started_at=started - timedelta(seconds=10), finished_at=end)
        )
        conn.execute(
            update(Activity).where(col(Activity.synced_at) > started).values(synced_at=started - timedelta(seconds=5))
        )

    with Session(engine) as session:
        mapping = session.get(OkrMapping, mapping_id)
        assert mapping is not None
        changes = changes_since_last(session, mapping)
        assert changes is not None
        if run_ended == "before it":  # nothing widened: those records were there for the computation to see
            assert changes.activity == set()
            return
        assert written <= changes.activity
        assert compute(session, mapping=mapping, as_of=ANCHOR, changes=changes).kind == "incremental"
        session.commit()
        incremental = snapshot(session, mapping.id)  # type: ignore[arg-type]
    assert incremental["evidence"] != before["evidence"], "the change moved evidence: the comparison is not vacuous"
    with Session(engine) as session:
        mapping = session.get(OkrMapping, mapping_id)
        assert mapping is not None
        assert compute(session, mapping=mapping, as_of=ANCHOR).kind == "full"
        _assert_same(incremental, snapshot(session, mapping_id), "acquisition")  # type: ignore[arg-type]
