"""HubSpot merges end to end (hubspot-api-client over HTTPS to the sandbox portal, real database): a merge gives the
result a new id, the old ids stop existing everywhere (not even in the archived listing), and the associations of
both move to the result without re-stamping the associated records. The local copy must follow in the incremental
run that reads the result, and in the targeted refresh after a merge webhook (issue 18, item 4)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.connector import HubSpotConnector
from connectors.sandbox.generator import generate_org
from connectors.sandbox.hubspot_portal import HubSpotPortal
from connectors.sandbox.hubspot_seed import portal_from_org
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from service.sync.service import SyncReport, refresh_records, run_sync
from tests.conftest import ANCHOR
from tests.service.sync.helpers import local_rows
from tests.service.sync.hubspot_truth import differences

pytestmark = pytest.mark.slow  # every test syncs a sandbox portal of thousands of records several times

SIZES = {"seed": 11, "accounts": 14, "opportunities": 40, "activities": 600}


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[tuple[HubSpotPortal, HubSpotConfig]]:
    data = generate_org(anchor=ANCHOR, **SIZES)
    portal, _ids = portal_from_org(data)
    with SandboxServer(SandboxOrg(data), portal=portal, cert_dir=tmp_path / "sandbox") as server:
        config = HubSpotConfig(
            access_token=portal.access_token,
            host=server.base_url,
            ca_bundle=server.ca_path,
            retry_wait_base=0.01,
            retry_wait_max=0.05,
            max_attempts=4,
            timeout_seconds=5,
        )
        yield portal, config


def sync(engine: Engine, config: HubSpotConfig, *, full: bool = False) -> SyncReport:
    report = run_sync(engine, HubSpotConnector(config), connection_name="sandbox", full=full)
    assert report.status == "ok", report.error
    return report


def _busiest(portal: HubSpotPortal, kind: str, linked: str, count: int = 2) -> list[str]:
    """The ``count`` records of ``kind`` with the most associations to ``linked``: merging them moves many links."""
    ranked = sorted(portal.snapshot(kind), key=lambda r: -len(portal.associations(kind, r["id"], linked)))
    return [str(r["id"]) for r in ranked[:count]]


def _merge_some(portal: HubSpotPortal) -> dict[str, tuple[list[str], str]]:
    """Merge two contacts, two companies and two deals; kind → (old ids, new id)."""
    merged = {}
    for kind, linked in (("contacts", "calls"), ("companies", "deals"), ("deals", "contacts")):
        old = _busiest(portal, kind, linked)
        merged[kind] = (old, str(portal.merge(kind, old[0], old[1])["id"]))
    return merged


def test_an_incremental_run_retires_merged_ids_and_moves_their_links(
    engine: Engine, portal: tuple[HubSpotPortal, HubSpotConfig]
) -> None:
    hs, config = portal
    sync(engine, config)
    assert differences(engine, hs) == []
    merged = _merge_some(hs)
    # what makes it hard: the old ids are in no listing, archived included, and no associated record is re-stamped
    for kind, (old, _new) in merged.items():
        assert not {r["id"] for r in hs.records(kind, archived=True)} & set(old)
        assert set(old) < set(local_rows(engine, {"contacts": "contact", "companies": "account",
                                                  "deals": "opportunity"}[kind], crm="hubspot"))  # fmt: skip
    assert differences(engine, hs), "the merges must make a difference the sync has to repair"

    report = sync(engine, config)
    assert differences(engine, hs) == []
    for kind, table in (("contacts", "contact"), ("companies", "account"), ("deals", "opportunity")):
        old, new = merged[kind]
        rows = local_rows(engine, table, crm="hubspot")
        assert all(rows[i].is_deleted for i in old) and not rows[new].is_deleted
        assert report.counts[kind].deleted == 2 and report.counts[kind].written == 1
    # only the merged records were read: the records whose links moved cost nothing
    assert sum(report.counts[e].written for e in ("calls", "emails", "meetings", "notes", "tasks")) == 0

    # a quiet run and a full run change nothing more
    sync(engine, config)
    assert differences(engine, hs) == []
    sync(engine, config, full=True)
    assert differences(engine, hs) == []


def test_merging_a_merged_record_again_retires_every_id(
    engine: Engine, portal: tuple[HubSpotPortal, HubSpotConfig]
) -> None:
    hs, config = portal
    sync(engine, config)
    first, second, third = _busiest(hs, "contacts", "calls", 3)
    between = str(hs.merge("contacts", first, second)["id"])
    sync(engine, config)
    last = str(hs.merge("contacts", third, between)["id"])
    sync(engine, config)
    assert differences(engine, hs) == []
    rows = local_rows(engine, "contact", crm="hubspot")
    assert [rows[i].is_deleted for i in (first, second, third, between, last)] == [True, True, True, True, False]


def test_a_merge_webhooks_refresh_retires_the_old_ids_at_once(
    engine: Engine, portal: tuple[HubSpotPortal, HubSpotConfig]
) -> None:
    """What the worker reads after a ``contact.merge`` event (service.webhooks.tasks: every id the event names):
    reading a merged-away id answers the record it became, so the old ids are retired and their links move."""
    hs, config = portal
    sync(engine, config)
    old = _busiest(hs, "contacts", "calls")
    new = str(hs.merge("contacts", old[0], old[1])["id"])
    report = refresh_records(
        engine, HubSpotConnector(config), connection_name="sandbox", targets={"contacts": {*old, new}}
    )
    assert report.status == "ok"
    assert report.counts["contacts"].deleted == 2 and report.counts["contacts"].written == 1
    assert differences(engine, hs) == []


def test_a_merge_webhook_for_records_okrsync_never_stored_changes_nothing(
    engine: Engine, portal: tuple[HubSpotPortal, HubSpotConfig], caplog: pytest.LogCaptureFixture
) -> None:
    hs, config = portal
    caplog.set_level(logging.INFO, logger="service.sync.service")
    sync(engine, config)
    before = {r.external_id: r.is_deleted for r in local_rows(engine, "contact", crm="hubspot").values()}
    report = refresh_records(
        engine, HubSpotConnector(config), connection_name="sandbox", targets={"contacts": {"999999991", "999999992"}}
    )
    assert report.status == "ok" and report.counts["contacts"].deleted == 0
    assert {r.external_id: r.is_deleted for r in local_rows(engine, "contact", crm="hubspot").values()} == before
    assert "2 of the records a webhook named are not in the CRM" in caplog.text and "999999991" in caplog.text
