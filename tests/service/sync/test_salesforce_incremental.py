"""Incremental Salesforce runs cost what changed: the look-back is measured from when the last read began, deletions
are counted only when a live row becomes deleted, an undeleted record stays, and a record stamped in the future
does not stall its stream. Real simple-salesforce over HTTPS against the sandbox org, real database."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.salesforce import mapping
from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.connector import SalesforceConnector
from connectors.sandbox.store import SandboxOrg
from service.sync.models import SyncState
from service.sync.service import SyncReport, run_sync
from tests.conftest import small_org
from tests.service.sync.helpers import assert_local_equals_org, local_rows

pytestmark = pytest.mark.slow  # every test syncs a sandbox org of thousands of records several times

DELETABLE = sum(1 for s in mapping.OBJECTS if mapping.has_is_deleted(s))
QUIET_RUN_CALLS = len(mapping.OBJECTS) + len(mapping.RELATION_STREAMS) + 1 + DELETABLE  # + the EmailMessage stream


def sync(engine: Engine, config: SalesforceConfig, *, full: bool = False) -> SyncReport:
    return run_sync(engine, SalesforceConnector(config), connection_name="sandbox", full=full)


def fetched(report: SyncReport) -> int:
    return sum(c.fetched for c in report.counts.values())


@pytest.fixture
def org() -> SandboxOrg:
    return small_org(activities=3500)  # about 2,800 tasks


def test_a_quiet_run_after_a_mass_update_reads_nothing_again(
    engine: Engine, org: SandboxOrg, config: SalesforceConfig
) -> None:
    sync(engine, config)
    # A mass update 11 minutes before the next run (the look-back is 10): nothing can still be committing.
    stamp = org.now() - timedelta(minutes=11)
    for task in org.records("Task")[:2749]:
        org.update("Task", task["Id"], {"Status": "Completed"}, modstamp=stamp)
    org.reset_stats()
    reading = sync(engine, config)
    assert reading.counts["Task"].written == reading.counts["Task"].fetched == 2749
    for _quiet in range(2):
        org.reset_stats()
        quiet = sync(engine, config)
        assert fetched(quiet) == 0, "a record whose id and SystemModstamp are stored costs nothing after its read"
        assert org.api_calls_total == quiet.api_calls == QUIET_RUN_CALLS
        # query: User (no IsDeleted); queryAll: the others, EmailMessage too (a deleted e-mail without a task is an
        # activity of its own, marked deleted)
        assert dict(org.api_calls) == {
            "query": 1,
            "queryAll": len(mapping.OBJECTS) + len(mapping.RELATION_STREAMS),
            "getDeleted": DELETABLE,
        }
    assert_local_equals_org(engine, org, config)


def test_a_record_stamped_in_the_future_does_not_stall_its_stream(
    engine: Engine, org: SandboxOrg, config: SalesforceConfig, caplog: pytest.LogCaptureFixture
) -> None:
    sync(engine, config)
    account = org.records("Account")[0]
    future = org.insert(
        "Task",
        {
            "Subject": "clock skew",
            "TaskSubtype": "Task",
            "Status": "Completed",
            "IsClosed": True,
            "AccountId": account["Id"],
            "SystemModstamp": org.now() + timedelta(days=1),
        },
    )
    with caplog.at_level(logging.WARNING):
        first = sync(engine, config)
    assert first.counts["Task"].written == 1 and future["Id"] in local_rows(engine, "activity")
    assert any("ahead of Salesforce's clock" in r.getMessage() for r in caplog.records)
    with Session(engine) as session:
        state = session.get(SyncState, (1, "Task"))
        assert state is not None and state.cursor_at is not None
        assert state.cursor_at <= org.now() + timedelta(seconds=3), "the cursor stays at the org's time"

    task = org.records("Task")[10]
    org.update("Task", task["Id"], {"Subject": "changed after the bad record"})
    later = sync(engine, config)
    assert later.counts["Task"].written == 1
    assert local_rows(engine, "activity")[task["Id"]].subject == "changed after the bad record"
    assert_local_equals_org(engine, org, config)


def test_deleted_counts_only_rows_this_run_deleted(engine: Engine, org: SandboxOrg, config: SalesforceConfig) -> None:
    sync(engine, config)
    gone = [o["Id"] for o in org.records("Opportunity")[:3]]
    for opportunity_id in gone:
        org.delete("Opportunity", opportunity_id)
    first = sync(engine, config)
    assert first.counts["Opportunity"].deleted == 3 and "; 3 deleted;" in first.summary()
    again = sync(engine, config)  # the deleted rows are read again within the look-back: no news
    assert sum(c.deleted for c in again.counts.values()) == 0 and "; 0 deleted;" in again.summary()
    full = sync(engine, config, full=True)  # queryAll lists them once more: still no news
    assert full.counts["Opportunity"].deleted == 0
    assert all(local_rows(engine, "opportunity")[i].is_deleted for i in gone)


def test_a_deletion_older_than_the_stored_version_does_not_delete_it(
    engine: Engine, org: SandboxOrg, config: SalesforceConfig
) -> None:
    sync(engine, config)
    opportunity = org.records("Opportunity")[5]
    org.delete("Opportunity", opportunity["Id"])
    time.sleep(0.01)  # a later millisecond: SystemModstamp has millisecond precision
    org.undelete("Opportunity", opportunity["Id"])  # restored from the recycle bin; getDeleted still lists it
    org.update("Opportunity", opportunity["Id"], {"NextStep": "Restored and moving"})
    report = sync(engine, config)
    stored = local_rows(engine, "opportunity")[opportunity["Id"]]
    assert not stored.is_deleted and stored.next_step == "Restored and moving"
    assert report.counts["Opportunity"].deleted == 0
    assert_local_equals_org(engine, org, config)
