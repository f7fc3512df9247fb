"""The Salesforce sync end to end: real simple-salesforce over HTTPS on loopback → sandbox CRM, real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.errors import ApiLimitError, AuthenticationError, FatalError
from connectors.salesforce import mapping
from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.connector import SalesforceConnector
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from service.sync.models import SyncRun, SyncState
from service.sync.service import run_sync
from tests.conftest import fast_config
from tests.service.sync.helpers import assert_local_equals_org, local_rows, minimum_query_calls

pytestmark = pytest.mark.slow  # every test syncs a sandbox org of thousands of records, most of them several times

DELETABLE = sum(1 for s in mapping.OBJECTS if mapping.has_is_deleted(s))
# the record objects plus TaskRelation and EventRelation (Shared Activities) and EmailMessage (the e-mails'
# directions), which need no getDeleted
STREAMS = len(mapping.OBJECTS) + len(mapping.RELATION_STREAMS) + 1


def sync(engine: Engine, config: SalesforceConfig, *, full: bool = False):  # type: ignore[no-untyped-def]
    return run_sync(engine, SalesforceConnector(config), connection_name="sandbox", full=full)


def test_first_sync_copies_the_org_exactly_with_the_minimum_of_api_calls(
    engine: Engine, org: SandboxOrg, config: SalesforceConfig
) -> None:
    org.reset_stats()
    report = sync(engine, config)

    assert report.status == "ok"
    assert_local_equals_org(engine, org, config)
    assert report.counts["Task"].fetched > 2000, "the data set must need paging"
    expected_calls = minimum_query_calls(org)
    assert org.api_calls_total == expected_calls
    assert report.api_calls == expected_calls
    assert org.api_calls["query_more"] >= 1
    assert org.token_requests == 1


def test_second_run_fetches_only_what_changed(engine: Engine, org: SandboxOrg, config: SalesforceConfig) -> None:
    sync(engine, config)
    org.reset_stats()

    second = sync(engine, config)
    assert sum(c.written for c in second.counts.values()) == 0
    # one query per object plus one getDeleted per deletable object: the platform minimum for "nothing changed"
    assert org.api_calls_total == STREAMS + DELETABLE == second.api_calls
    assert sum(c.fetched for c in second.counts.values()) == 0, "what was read before costs nothing again"

    opportunity = org.records("Opportunity")[0]
    org.update("Opportunity", opportunity["Id"], {"StageName": "Negotiation/Review", "NextStep": "Send contract"})
    task = org.records("Task")[5]
    org.update("Task", task["Id"], {"Subject": "Follow-up call, rescheduled"})
    third = sync(engine, config)
    assert third.counts["Opportunity"].written == 1
    assert third.counts["Task"].written == 1
    assert sum(c.written for c in third.counts.values()) == 2
    stored = local_rows(engine, "opportunity")[opportunity["Id"]]
    assert (stored.stage, stored.next_step) == ("Negotiation/Review", "Send contract")
    assert_local_equals_org(engine, org, config)


def test_records_sharing_a_timestamp_across_a_page_boundary_survive_a_crash(
    engine: Engine, org: SandboxOrg, sandbox: SandboxServer
) -> None:
    config = fast_config(sandbox, lookback_seconds=0)
    sync(engine, config)
    # a whole second: a cursor never passes the org's clock as its Date header tells it (whole seconds), so a stamp
    # inside the current second would be cut back to the second's start
    stamp = org.now().replace(microsecond=0)
    tasks = org.records("Task")
    for task in tasks[:2300]:  # more than one page, all with the same SystemModstamp
        org.update("Task", task["Id"], {"Status": "Completed"}, modstamp=stamp)
    # The second page of Tasks fails for good: the run stops after the first page was committed.
    org.faults.add("http", match="query_more", status=400, error_code="MALFORMED_QUERY", message="boom", times=1)
    with pytest.raises(FatalError):
        sync(engine, config)
    with Session(engine) as session:
        state = session.get(SyncState, (1, "Task"))
        assert state is not None and state.cursor_at == stamp

    # A record committed late with the very same timestamp (behind the cursor's id) must not be lost either.
    org.update("Task", tasks[2400]["Id"], {"Subject": "late commit, same instant"}, modstamp=stamp)
    resumed = sync(engine, config)
    assert resumed.status == "ok"
    assert_local_equals_org(engine, org, config)
    stored = local_rows(engine, "activity")
    assert all(stored[t["Id"]].status == "Completed" for t in tasks[:2300])


def test_a_late_commit_behind_the_cursor_is_caught_by_the_look_back(
    engine: Engine, org: SandboxOrg, config: SalesforceConfig
) -> None:
    sync(engine, config)
    org.update("Opportunity", org.records("Opportunity")[0]["Id"], {"NextStep": "Call"})
    sync(engine, config)  # the cursor is now a moment ago
    with Session(engine) as session:
        state = session.get(SyncState, (1, "Opportunity"))
        assert state is not None and state.cursor_at and state.deleted_checked_at
        began = state.deleted_checked_at  # when that run's query began (the org's clock)
    opportunity = org.records("Opportunity")[3]
    # A long transaction commits now, stamped 4 minutes before the last run began: behind the cursor it passed.
    org.update("Opportunity", opportunity["Id"], {"Amount": 123456.0}, modstamp=began - timedelta(minutes=4))
    report = sync(engine, config)
    assert report.counts["Opportunity"].written == 1
    assert local_rows(engine, "opportunity")[opportunity["Id"]].amount == 123456.0


def test_soft_and_hard_deletes_are_captured(engine: Engine, org: SandboxOrg, config: SalesforceConfig) -> None:
    sync(engine, config)
    soft = org.records("Opportunity")[0]["Id"]
    hard = org.records("Task")[0]["Id"]
    org.delete("Opportunity", soft)
    org.purge("Task", hard)

    report = sync(engine, config)
    assert report.counts["Opportunity"].deleted == 1
    assert report.counts["Task"].deleted == 1
    opportunity = local_rows(engine, "opportunity")[soft]
    task = local_rows(engine, "activity")[hard]
    assert opportunity.is_deleted and opportunity.name, "the row is kept, marked deleted"
    assert task.is_deleted and task.deleted_at is not None
    assert_local_equals_org(engine, org, config)


def test_full_sync_sweeps_records_the_crm_no_longer_lists(
    engine: Engine, org: SandboxOrg, config: SalesforceConfig
) -> None:
    sync(engine, config)
    gone = org.records("Contact")[2]["Id"]
    org.purge("Contact", gone)
    report = sync(engine, config, full=True)
    assert report.full and report.counts["Contact"].deleted == 1
    assert local_rows(engine, "contact")[gone].is_deleted
    assert_local_equals_org(engine, org, config)


FAULTS = [
    pytest.param("http", {"status": 503, "error_code": "SERVER_UNAVAILABLE", "message": "down"}, id="503"),
    pytest.param("http", {"status": 429, "error_code": "REQUEST_LIMIT", "message": "slow down"}, id="429"),
    pytest.param(
        "http",
        {"status": 400, "error_code": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access"},
        id="UNABLE_TO_LOCK_ROW",
    ),
    pytest.param("drop", {}, id="dropped-connection"),
    pytest.param("latency", {"seconds": 1.5}, id="timeout", marks=pytest.mark.slow),  # waits out 1 s timeouts
    pytest.param("expire_session", {}, id="expired-session"),
]


@pytest.mark.parametrize(("kind", "params"), FAULTS)
def test_transient_faults_are_retried_and_the_sync_completes(
    engine: Engine, org: SandboxOrg, sandbox: SandboxServer, kind: str, params: dict
) -> None:
    config = fast_config(sandbox, timeout_seconds=1.0)
    org.faults.add(kind, match="query_more", times=2 if kind != "expire_session" else 1, **params)
    org.reset_stats()
    report = sync(engine, config)
    assert report.status == "ok"
    assert_local_equals_org(engine, org, config)
    if kind == "expire_session":
        assert org.token_requests == 2, "logged in again exactly once"
    else:
        assert org.api_calls_total >= minimum_query_calls(org) + 2 or kind == "latency"


def test_expired_access_token_that_cannot_be_renewed_says_what_to_do(
    engine: Engine, org: SandboxOrg, sandbox: SandboxServer
) -> None:
    config = SalesforceConfig(
        instance_url=sandbox.base_url,
        access_token=org.static_access_token,
        ca_bundle=sandbox.ca_path,
        retry_wait_base=0.01,
        max_attempts=2,
    )
    org.faults.add("expire_session", match="query")
    with pytest.raises(AuthenticationError, match="access token was configured"):
        sync(engine, config)


def test_request_limit_exceeded_stops_cleanly_and_resumes(
    engine: Engine, org: SandboxOrg, config: SalesforceConfig
) -> None:
    org.faults.add(
        "http",
        match="queryAll",
        after=3,
        times=1,
        status=403,
        error_code="REQUEST_LIMIT_EXCEEDED",
        message="TotalRequests Limit exceeded.",
    )
    with pytest.raises(ApiLimitError, match=r"daily API request limit exceeded \(used \d+ of 100000\)"):
        sync(engine, config)
    with Session(engine) as session:
        run = session.execute(select(SyncRun).order_by(SyncRun.id.desc())).scalars().first()  # type: ignore[union-attr]
        assert run is not None and run.status == "stopped" and "limit exceeded" in (run.error or "")
        assert local_rows(engine, "opportunity"), "what was synced before the stop stays"
    assert sync(engine, config).status == "ok"
    assert_local_equals_org(engine, org, config)


def test_the_sync_never_burns_past_its_share_of_the_daily_allowance(
    engine: Engine, org: SandboxOrg, sandbox: SandboxServer
) -> None:
    config = fast_config(sandbox, max_api_share=0.5)
    org.api_usage_used = 49_995  # of 100,000: five calls left under the 50 % share
    with pytest.raises(ApiLimitError, match=r"50000 of 100000 used.*50%") as caught:
        sync(engine, config)
    assert caught.value.used == 50_000
    assert org.api_usage_used == 50_000, "stopped at the share, not past it"
    org.api_usage_used = 0
    assert sync(engine, config).status == "ok"
    assert_local_equals_org(engine, org, config)


def test_records_changed_during_the_sync_are_picked_up_by_the_next_run(
    engine: Engine, org: SandboxOrg, config: SalesforceConfig
) -> None:
    org.faults.add("mutate", match="query_more", sobject="Task", count=7)
    sync(engine, config)
    org.faults.clear()
    report = sync(engine, config)
    assert report.counts["Task"].written >= 1
    assert_local_equals_org(engine, org, config)
