"""Incremental sync benchmark: API calls of incremental runs against the minimum the CRM's API allows, and the rows
they fetch.

Setup: the sandbox CRM in this process on loopback over TLS, okrsync's connectors through the real client libraries
(hubspot-api-client, simple-salesforce), ``run_sync`` from ``service.sync.service`` into a SQLite file in a temporary
directory. Each CRM gets a first (full) sync, a bulk change, an incremental run that reads it, and a quiet run in
which nothing changed. The sandbox counts every API call by name; the connector's own count must agree.

- HubSpot: ``deals`` deals inserted with one ``hs_lastmodifieddate`` (a bulk update). The read begins more than the
  look-back after that instant (look-back 2 s, 3.5 s of waiting), as a scheduled run would. Connector settings as in
  tests/service/sync/test_hubspot_paging.py: no custom properties, so no properties check is counted.
- Salesforce: 2,749 tasks updated at one SystemModstamp 11 minutes before the next run (the look-back is 10), as in
  tests/service/sync/test_salesforce_incremental.py; the sandbox's demo settings (``sandbox_config``).

Minimums (see bench/REFERENCE.md): one call per full page of what changed, per object, plus the calls a run makes
whatever changed. Wall seconds are reported beside the quiet run's (the floor of a run); nothing is asserted on
time.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from connectors.hubspot import mapping as hs_mapping
from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.connector import HubSpotConnector
from connectors.salesforce import mapping as sf_mapping
from connectors.salesforce.adapter import ADAPTER as SALESFORCE
from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.connector import SalesforceConnector
from connectors.sandbox.generator import generate_org
from connectors.sandbox.hubspot_portal import HubSpotPortal
from connectors.sandbox.hubspot_seed import portal_from_org
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from service.kit.db import make_engine
from service.kit.migrate import create_schema
from service.sync.service import PullConnector, SyncReport, run_sync

ANCHOR = datetime(2026, 9, 30, 18, 0, tzinfo=UTC)  # the generated orgs' "today", as in tests/conftest.py
HUBSPOT_SEARCH_PAGE = 200  # records per search request
HUBSPOT_ASSOCIATION_BATCH = 1_000  # ids per association batch read
HUBSPOT_LOOKBACK_SECONDS = 2  # stands for "the next run starts more than the look-back after the bulk update"
SALESFORCE_TASKS = 2_749
SALESFORCE_ACTIVITIES = 3_500  # about 2,800 tasks in the generated org


def _pages(records: int, size: int) -> int:
    return -(-records // size)


def hubspot_minimum(deals: int) -> int:
    """Calls of an incremental HubSpot run in which ``deals`` deals (and nothing else) changed: one search per object
    (200 deals a page), the deals' association reads (companies, contacts: 1,000 ids a call), one archived listing per
    object, owners (active and archived listings) and pipelines."""
    objects = len(hs_mapping.OBJECT_STREAMS)
    searches = objects - 1 + max(1, _pages(deals, HUBSPOT_SEARCH_PAGE))
    return searches + hubspot_deal_associations(deals) + objects + 2 + 1


def hubspot_deal_associations(deals: int) -> int:
    return len(hs_mapping.ASSOCIATIONS["deals"]) * _pages(deals, HUBSPOT_ASSOCIATION_BATCH)


def salesforce_minimum(changed: dict[str, int], config: SalesforceConfig, *, email_lookups: int = 0) -> int:
    """Calls of an incremental Salesforce run in which ``changed`` records of each object changed: one query (or
    queryAll) per object and a queryMore per further page, one query per Shared Activities relation object, one
    query for the EmailMessage stream and ``email_lookups`` EmailMessage look-ups (one per 300 e-mail tasks of a
    page of changed tasks: their directions), and one getDeleted per object that can be deleted. No e-mail without a
    task changes here, so no Case look-up (one per 300 cases of a page of such e-mails)."""
    queries = sum(max(1, _pages(changed.get(s, 0), config.page_size)) for s in sf_mapping.OBJECTS)
    relations = len(sf_mapping.RELATION_STREAMS) if config.shared_activities else 0
    emails = 1 + email_lookups if config.email_messages else 0
    deletable = sum(1 for s in sf_mapping.OBJECTS if sf_mapping.has_is_deleted(s))
    return queries + relations + emails + deletable


def _timed_sync(engine: Engine, connector: PullConnector) -> tuple[SyncReport, float]:
    started = time.perf_counter()
    report = run_sync(engine, connector, connection_name="bench")
    seconds = time.perf_counter() - started
    if report.status != "ok":
        raise RuntimeError(f"the sync did not finish: {report.summary()}")
    return report, seconds


def _figures(report: SyncReport, seconds: float, calls: dict[str, int], *, minimum: int, skip: tuple = ()) -> dict:
    if report.api_calls != sum(calls.values()):
        raise RuntimeError(f"the connector counted {report.api_calls} calls, the sandbox {dict(calls)}")
    return {
        "api_calls": report.api_calls,
        "minimum": minimum,
        "ratio": round(report.api_calls / minimum, 2),
        "fetched": sum(c.fetched for name, c in report.counts.items() if name not in skip),
        "written": sum(c.written for name, c in report.counts.items() if name not in skip),
        "seconds": round(seconds, 2),
        "calls_by_name": dict(sorted(calls.items())),
    }


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _bulk_deals(portal: HubSpotPortal, count: int) -> None:
    template = {
        k: v
        for k, v in portal.records("deals")[0]["properties"].items()
        if k not in ("hs_object_id", "hs_lastmodifieddate", "createdate", "hs_createdate")
    }
    bulk = _stamp(portal.now())
    for index in range(count):
        portal.insert("deals", {**template, "dealname": f"bulk {index}", "hs_lastmodifieddate": bulk})


def _hubspot(tmp: Path, deals: int) -> dict[str, Any]:
    data = generate_org(anchor=ANCHOR, seed=7, accounts=10, opportunities=10, activities=200)
    portal, _ids = portal_from_org(data)
    with SandboxServer(SandboxOrg(data), portal=portal, cert_dir=tmp / "hubspot-sandbox") as server:
        config = HubSpotConfig.model_validate(
            {
                "access_token": portal.access_token,
                "host": server.base_url,
                "ca_bundle": server.ca_path,
                "lookback_seconds": HUBSPOT_LOOKBACK_SECONDS,
            }
        )
        engine = make_engine(f"sqlite:///{tmp / 'hubspot.db'}")
        create_schema(engine)
        try:
            _timed_sync(engine, HubSpotConnector(config))
            _bulk_deals(portal, deals)
            time.sleep(HUBSPOT_LOOKBACK_SECONDS + 1.5)  # the read begins more than the look-back after the stamp

            portal.reset_stats()
            report, seconds = _timed_sync(engine, HubSpotConnector(config))
            bulk = _figures(report, seconds, portal.api_calls, minimum=hubspot_minimum(deals), skip=("owners",))
            other_searches = len(hs_mapping.OBJECT_STREAMS) - 1
            deal_searches = portal.api_calls["search"] - other_searches
            deal_associations = portal.api_calls["assoc_batch_read"]
            minimum_searches = _pages(deals, HUBSPOT_SEARCH_PAGE)
            minimum_associations = hubspot_deal_associations(deals)
            bulk.update(
                deals_written=report.counts["deals"].written,
                deal_calls=deal_searches + deal_associations,
                deal_calls_minimum=minimum_searches + minimum_associations,
                deal_searches=deal_searches,
                deal_searches_minimum=minimum_searches,
                deal_association_reads=deal_associations,
                deal_association_reads_minimum=minimum_associations,
            )
            bulk["deal_ratio"] = round(bulk["deal_calls"] / bulk["deal_calls_minimum"], 2)
            print(f"sync-calls hubspot: bulk run {bulk['api_calls']} calls in {bulk['seconds']} s", file=sys.stderr)

            portal.reset_stats()
            report, seconds = _timed_sync(engine, HubSpotConnector(config))
            quiet = _figures(report, seconds, portal.api_calls, minimum=hubspot_minimum(0), skip=("owners",))
            quiet["owners_fetched"] = report.counts["owners"].fetched
        finally:
            engine.dispose()
    change = f"bulk update of {deals:,} deals"
    objects = len(hs_mapping.OBJECT_STREAMS)
    return {"crm": "hubspot", "changed": deals, "change": change, "object_types": objects, "bulk": bulk, "quiet": quiet}


def _salesforce(tmp: Path) -> dict[str, Any]:
    org = SandboxOrg(
        generate_org(anchor=ANCHOR, seed=7, accounts=30, opportunities=80, activities=SALESFORCE_ACTIVITIES)
    )
    with SandboxServer(org, cert_dir=tmp / "salesforce-sandbox") as server:
        config = SALESFORCE.sandbox_config(server.base_url, server.ca_path or "")
        engine = make_engine(f"sqlite:///{tmp / 'salesforce.db'}")
        create_schema(engine)
        try:
            _timed_sync(engine, SalesforceConnector(config))
            # a mass update 11 minutes before the next run (the look-back is 10): nothing can still be committing
            stamp = org.now() - timedelta(minutes=11)
            tasks = org.records("Task")[:SALESFORCE_TASKS]
            for task in tasks:
                org.update("Task", task["Id"], {"Status": "Completed"}, modstamp=stamp)

            org.reset_stats()
            report, seconds = _timed_sync(engine, SalesforceConnector(config))
            emails = [t["TaskSubtype"] in sf_mapping.EMAIL_SUBTYPES for t in tasks]  # one stamp: read in this order
            lookups = sum(
                -(-sum(emails[start : start + config.page_size]) // 300)
                for start in range(0, len(emails), config.page_size)
            )
            minimum = salesforce_minimum({"Task": len(tasks)}, config, email_lookups=lookups)
            bulk = _figures(report, seconds, org.api_calls, minimum=minimum)
            bulk["tasks_written"] = report.counts["Task"].written
            print(f"sync-calls salesforce: mass update run {bulk['api_calls']} calls", file=sys.stderr)

            org.reset_stats()
            report, seconds = _timed_sync(engine, SalesforceConnector(config))
            quiet = _figures(report, seconds, org.api_calls, minimum=salesforce_minimum({}, config))
        finally:
            engine.dispose()
    change = f"mass update of {len(tasks):,} tasks"
    return {"crm": "salesforce", "changed": len(tasks), "change": change, "bulk": bulk, "quiet": quiet}


def run(*, deals: int = 10_500) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="okrsync-bench-calls-") as tmp:
        return {"scenarios": [_hubspot(Path(tmp), deals), _salesforce(Path(tmp))]}


def _calls(figures: dict[str, Any]) -> str:
    return ", ".join(f"{name} {count}" for name, count in figures["calls_by_name"].items())


def table(results: dict[str, Any]) -> str:
    lines = [
        "## API calls of incremental syncs against their minimum (real clients over HTTPS on loopback, sandbox in"
        " process, SQLite)",
        "",
        "| CRM | run | API calls | minimum | × minimum | rows fetched | minimum rows | seconds | quiet-run seconds |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes = []
    objects = next((s["object_types"] for s in results["scenarios"] if "object_types" in s), "o")
    for s in results["scenarios"]:
        bulk, quiet = s["bulk"], s["quiet"]
        floor = quiet["seconds"]
        lines.append(
            f"| {s['crm']} | {s['change']} | {bulk['api_calls']:,} | {bulk['minimum']:,} | {bulk['ratio']:.2f}× |"
            f" {bulk['fetched']:,} | {s['changed']:,} | {bulk['seconds']} | {floor} |"
        )
        if "deal_calls" in bulk:
            lines.append(
                f"| {s['crm']} | the deals alone: searches + association reads | {bulk['deal_calls']:,} |"
                f" {bulk['deal_calls_minimum']:,} | {bulk['deal_ratio']:.2f}× | | | | |"
            )
            notes.append(
                f"{s['crm']} deals: {bulk['deal_searches']} searches (minimum {bulk['deal_searches_minimum']}),"
                f" {bulk['deal_association_reads']} association reads"
                f" (minimum {bulk['deal_association_reads_minimum']})"
            )
        lines.append(
            f"| {s['crm']} | quiet (nothing changed) | {quiet['api_calls']:,} | {quiet['minimum']:,} |"
            f" {quiet['ratio']:.2f}× | {quiet['fetched']:,} | 0 | {floor} | {floor} |"
        )
        notes.append(f"{s['crm']} calls by name, {s['change']}: {_calls(bulk)}; quiet: {_calls(quiet)}")
    lines += [
        "",
        f"Minimum (HubSpot, d deals changed, o = {objects} object types): searches (o − 1) + ⌈d/200⌉, association reads"
        " 2·⌈d/1,000⌉, archived listings o, owners 2, pipelines 1. Minimum (Salesforce, one page = 2,000 records): per"
        " object max(1, ⌈changed/2,000⌉) queries, 1 query per Shared Activities relation object, 1 query for"
        " EmailMessage and 1 look-up per 300 e-mail tasks of a page of changed tasks (their directions), 1 getDeleted"
        " per deletable object. HubSpot rows fetched leave out owners, which every run lists in full.",
        "",
        *(f"- {note}" for note in notes),
    ]
    return "\n".join(lines)
