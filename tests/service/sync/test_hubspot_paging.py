"""HubSpot incremental search paging: a change while the sync pages hides no record, and a bulk update is read
(and associated) once — the real hubspot-api-client over HTTPS on loopback → sandbox portal, real database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from connectors.hubspot import mapping as hs_mapping
from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.connector import HubSpotConnector
from connectors.sandbox.generator import generate_org
from connectors.sandbox.hubspot_portal import HubSpotPortal
from connectors.sandbox.hubspot_seed import portal_from_org
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from service.sync.service import SyncReport, run_sync
from tests.conftest import ANCHOR
from tests.service.sync.helpers import local_rows


def _stamp(value: Any) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[HubSpotPortal, SandboxServer]]:
    data = generate_org(anchor=ANCHOR, seed=7, accounts=10, opportunities=10, activities=200)
    portal, _ids = portal_from_org(data, search_per_second=50)
    with SandboxServer(SandboxOrg(data), portal=portal, cert_dir=tmp_path / "sandbox") as server:
        yield portal, server


def _config(portal: HubSpotPortal, server: SandboxServer, **overrides: Any) -> HubSpotConfig:
    values: dict[str, Any] = {
        "access_token": portal.access_token,
        "host": server.base_url,
        "ca_bundle": server.ca_path,
        "retry_wait_base": 0.01,
        "retry_wait_max": 0.05,
        "max_attempts": 4,
        "timeout_seconds": 10,
        "search_per_second": 5,
        **overrides,
    }
    return HubSpotConfig(**values)


def _sync(engine: Engine, connector: HubSpotConnector) -> SyncReport:
    report = run_sync(engine, connector, connection_name="sandbox")
    assert report.status == "ok"
    return report


def test_records_changed_between_search_pages_are_all_stored(engine: Engine, sandbox: Any) -> None:
    portal, server = sandbox
    config = _config(portal, server)
    _sync(engine, HubSpotConnector(config))  # first sync: the list API
    start = portal.now() - timedelta(seconds=60)  # inside the next run's window
    calls = [
        portal.insert(
            "calls",
            {
                "hs_timestamp": "2026-09-01T10:00:00.000Z",
                "hs_call_title": f"window {index}",
                "hs_lastmodifieddate": _stamp(start + timedelta(milliseconds=index)),
            },
        )["id"]
        for index in range(600)
    ]
    connector = HubSpotConnector(config)
    search = connector._search
    original = search.do_search_with_http_info
    requests: list[dict[str, Any]] = []

    def search_then_change(object_type: str, body: dict[str, Any], **kwargs: Any) -> Any:
        if object_type == "calls":
            requests.append(body)
            if len(requests) == 2:
                # between page 1 and page 2: five records page 1 held change, and move to the end of the window.
                # Offset paging would now skip the five records that page 2 should have begun with.
                for index, call in enumerate(calls[:5]):
                    portal.update("calls", call, {"hs_call_title": f"changed {index}"})
        return original(object_type, body, **kwargs)

    search.do_search_with_http_info = search_then_change
    report = _sync(engine, connector)

    stored = local_rows(engine, "activity", crm="hubspot")
    missing = [call for call in calls if call not in stored]
    assert missing == [], f"records hidden by a change during paging: {missing}"
    assert [stored[call].subject for call in calls[:5]] == [f"changed {i}" for i in range(5)]
    assert all(stored[call].subject == f"window {i}" for i, call in enumerate(calls) if i >= 5)
    # the five changed ones are read again at their new stamp, once each
    assert (report.counts["calls"].fetched, report.counts["calls"].written) == (600 + 5, 600)
    assert all(str(body.get("after") or "0") == "0" for body in requests), "no offset paging"


def _bulk_deals(portal: HubSpotPortal, count: int) -> list[str]:
    template = {
        k: v
        for k, v in portal.records("deals")[0]["properties"].items()
        if k not in ("hs_object_id", "hs_lastmodifieddate", "createdate", "hs_createdate")
    }
    bulk = _stamp(portal.now())
    return [
        portal.insert("deals", {**template, "dealname": f"bulk {index}", "hs_lastmodifieddate": bulk})["id"]
        for index in range(count)
    ]


def _minimum_incremental(deals: int) -> int:
    # one search per object (200 per page for the deals), the deals' association reads (companies, contacts: one
    # per 1,000), the archived listing per object, owners (active and archived listings), pipelines
    objects = len(hs_mapping.OBJECT_STREAMS)
    searches = objects - 1 + max(1, -(-deals // 200))
    associations = len(hs_mapping.ASSOCIATIONS["deals"]) * -(-deals // 1000)
    return searches + associations + objects + 2 + 1


@pytest.mark.slow  # sleeps 3.5 s past the look-back
def test_a_bulk_update_of_10500_deals_is_read_once_and_a_quiet_run_costs_the_minimum(
    engine: Engine, sandbox: Any
) -> None:
    portal, server = sandbox
    # a look-back of 2 s stands for "the next run starts more than the look-back after the bulk update"
    config = _config(portal, server, lookback_seconds=2)
    _sync(engine, HubSpotConnector(config))
    deals = _bulk_deals(portal, 10_500)
    time.sleep(3.5)  # the read that finds them begins more than the look-back after their stamp

    portal.reset_stats()
    first = _sync(engine, HubSpotConnector(config))
    assert first.counts["deals"].written == 10_500
    stored = local_rows(engine, "opportunity", crm="hubspot")
    assert all(deal in stored for deal in deals)
    minimum = _minimum_incremental(10_500)
    # the deals alone: 53 searches and 22 association reads at least; one search more to learn that one timestamp
    # fills a page (read again by id), one to see that nothing comes after it
    deal_calls = (
        portal.api_calls["search"] - (len(hs_mapping.OBJECT_STREAMS) - 1) + portal.api_calls["assoc_batch_read"]
    )
    assert deal_calls <= 1.1 * (53 + 22), portal.api_calls
    assert first.api_calls == portal.api_calls_total <= 1.1 * minimum, (first.api_calls, minimum, portal.api_calls)

    portal.reset_stats()
    quiet = _sync(engine, HubSpotConnector(config))
    assert sum(c.fetched for c in quiet.counts.values() if c is not quiet.counts["owners"]) == 0
    assert quiet.api_calls == portal.api_calls_total == _minimum_incremental(0)
    assert "assoc_batch_read" not in portal.api_calls
