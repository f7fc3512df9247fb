"""403 REQUEST_LIMIT_EXCEEDED is two limits: the concurrent one is retried, the daily one stops the run naming the
usage, any other refusal is named. Real simple-salesforce over HTTPS against the sandbox org, real database."""

from __future__ import annotations

import logging
import re
import threading
import time

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.errors import ApiLimitError, AuthenticationError, UnreachableError
from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.connector import SalesforceConnector
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from service.sync.models import SyncRun
from service.sync.service import SyncReport, run_sync
from tests.conftest import fast_config
from tests.service.sync.helpers import assert_local_equals_org, local_rows, minimum_query_calls

CONCURRENT = "ConcurrentPerOrgLongTxn Limit exceeded."


def sync(engine: Engine, config: SalesforceConfig) -> SyncReport:
    return run_sync(engine, SalesforceConnector(config), connection_name="sandbox")


def last_run(engine: Engine) -> SyncRun:
    with Session(engine) as session:
        run = session.execute(select(SyncRun).order_by(SyncRun.id.desc())).scalars().first()  # type: ignore[union-attr]
        assert run is not None
        return run


def test_a_concurrent_request_refusal_is_retried_and_the_run_completes(
    engine: Engine, org: SandboxOrg, config: SalesforceConfig, caplog: pytest.LogCaptureFixture
) -> None:
    org.api_usage_used = 80
    org.faults.add(
        "http", match="query_more", times=2, status=403, error_code="REQUEST_LIMIT_EXCEEDED", message=CONCURRENT
    )
    org.reset_stats()
    with caplog.at_level(logging.WARNING):
        report = sync(engine, config)
    assert report.status == "ok"
    assert org.api_calls_total == minimum_query_calls(org) + 2, "the two refused calls, then the same call again"
    assert_local_equals_org(engine, org, config)
    refusals = [r.getMessage() for r in caplog.records if "long-running requests" in r.getMessage()]
    # the usage the org reported with the refusal: 80 before the run plus the calls it had made by then
    assert len(refusals) == 2 and CONCURRENT in refusals[0] and re.search(r"daily used (8|9)\d of 100000", refusals[0])


@pytest.mark.slow  # waits out another client's 1.5 s request
def test_the_orgs_concurrent_limit_is_waited_out(engine: Engine, org: SandboxOrg, sandbox: SandboxServer) -> None:
    """Another client holds the org's only long-running slot when the sync starts; once it ends, the sync goes on."""
    org.concurrent_long_limit, org.long_request_seconds = 1, 0.1
    org.faults.add("latency", match="limits", seconds=1.5)
    other = sandbox.session()
    slow = threading.Thread(
        target=lambda: other.get(
            f"{sandbox.base_url}/services/data/v59.0/limits",
            headers={"Authorization": f"Bearer {org.static_access_token}"},
            timeout=10,
        )
    )
    slow.start()
    deadline = time.monotonic() + 5
    while org.long_requests_running() < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    config = fast_config(sandbox, max_attempts=12, retry_wait_base=0.2, retry_wait_max=1.0)
    report = sync(engine, config)
    slow.join()
    other.close()
    assert report.status == "ok" and org.api_calls_total > minimum_query_calls(org) + 1
    assert_local_equals_org(engine, org, config)


def test_the_daily_limit_stops_the_run_naming_the_usage_the_refusal_reports(
    engine: Engine, org: SandboxOrg, config: SalesforceConfig
) -> None:
    org.api_usage_used = 70_000  # other integrations used much of the allowance
    org.faults.add(
        "http",
        match="queryAll",
        after=2,
        status=403,
        error_code="REQUEST_LIMIT_EXCEEDED",
        message="TotalRequests Limit exceeded.",
    )
    with pytest.raises(ApiLimitError, match=r"daily API request limit exceeded \(used \d+ of 100000\)") as caught:
        sync(engine, config)
    assert (caught.value.used, caught.value.limit) == (org.api_usage_used, 100_000), "the refusal's own header"
    assert org.api_calls["queryAll"] == 3, "not retried"
    run = last_run(engine)
    assert run.status == "stopped" and f"used {org.api_usage_used} of 100000" in (run.error or "")
    assert local_rows(engine, "account"), "what was synced before the stop stays"


def test_another_limit_is_retried_then_named_and_nothing_is_lost(
    engine: Engine, org: SandboxOrg, config: SalesforceConfig, caplog: pytest.LogCaptureFixture
) -> None:
    message = "TooManyLocators Limit exceeded."
    org.faults.add(
        "http", match="query_more", times=100, status=403, error_code="REQUEST_LIMIT_EXCEEDED", message=message
    )
    with caplog.at_level(logging.WARNING), pytest.raises(UnreachableError) as caught:
        sync(engine, config)
    text = str(caught.value)
    assert message in text and "REQUEST_LIMIT_EXCEEDED" in text and "daily used" in text
    assert f"after {config.max_attempts} attempts" in text
    assert any(message in r.getMessage() and "other than the daily" in r.getMessage() for r in caplog.records)
    assert last_run(engine).status == "failed"
    org.faults.clear()
    assert sync(engine, config).status == "ok"
    assert_local_equals_org(engine, org, config)


def test_a_refusal_that_is_no_limit_names_the_error(
    engine: Engine, org: SandboxOrg, config: SalesforceConfig, caplog: pytest.LogCaptureFixture
) -> None:
    org.faults.add(
        "http",
        match="queryAll",
        status=403,
        error_code="INSUFFICIENT_ACCESS",
        message="insufficient access rights on object id",
    )
    with caplog.at_level(logging.ERROR), pytest.raises(AuthenticationError, match="INSUFFICIENT_ACCESS insufficient"):
        sync(engine, config)
    assert any("INSUFFICIENT_ACCESS" in r.getMessage() for r in caplog.records)
    assert org.api_calls["queryAll"] == 1
