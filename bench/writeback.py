"""Write-back benchmark: API calls per 10,000 changed values against the platform minimum, and throughput with
100 ms of latency on every CRM call.

Setup: an outbox of N changed key-result records (the same neutral values a computation stages) in SQLite, sent
by okrsync's writer (`service.writeback.service.send`) through the real client libraries over HTTPS to the
sandbox CRM on loopback, which runs in this process. Cases: Salesforce sObject Collections (bulk off), Salesforce
above the Bulk API 2.0 threshold, HubSpot custom objects (batch upsert), HubSpot properties mode (deal updates).
The platform minimum is N/200 calls for Salesforce collections and N/100 for HubSpot batches; a Bulk API 2.0 job
takes a fixed handful of calls whatever N (create, upload, close, poll, info, results).
"""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sqlmodel import Session

from connectors.hubspot.adapter import ADAPTER as HUBSPOT
from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.writer import HubSpotWriter
from connectors.salesforce.adapter import ADAPTER as SALESFORCE
from connectors.salesforce.writer import SalesforceWriter
from connectors.sandbox.hubspot_portal import HubSpotPortal
from connectors.sandbox.salesforce_metadata import DEFAULT_METADATA_DIR, load_metadata
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from connectors.writes import Target
from service.crm.models import CrmConnection
from service.kit.db import make_engine, utcnow
from service.kit.migrate import create_schema
from service.writeback.models import OutboxRow
from service.writeback.service import send
from service.writeback.staging import digest


def _values(number: int) -> dict[str, Any]:
    return {
        "objective": None,
        "title": f"Key result {number}",
        "team": "Bench team",
        "cycle": "Q4 2026",
        "kr_key": f"kr-{number}",
        "metric": "count",
        "value": float(number % 97),
        "target": 100.0,
        "progress": (number % 97) / 100,
        "expected": 0.5,
        "grade": round((number % 97) / 100, 1),
        "status": "at_risk",
        "achieved": False,
        "records": number % 97,
        "computed_at": utcnow().isoformat(),
    }


def _outbox(engine: Any, crm: str, target: Target, keys: list[str]) -> int:
    with Session(engine) as session:
        connection = CrmConnection(crm=crm, name="bench", created_at=utcnow())
        session.add(connection)
        session.flush()
        now = utcnow()
        for number, key in enumerate(keys):
            values = (
                _values(number)
                if target is Target.key_result
                else {"hygiene_score": 0.5, "hygiene_issues": f"No next step ({number})"}
            )
            session.add(
                OutboxRow(
                    connection_id=connection.id or 0,
                    target=target.value,
                    record_key=key,
                    payload=values,
                    digest=digest(values),
                    staged_at=now,
                    as_of=now,
                )  # fmt: skip
            )
        session.commit()
        return connection.id or 0


def _case(name: str, *, crm: str, records: int, latency: float, writer_for: Any, target: Target, keys: Any) -> dict:
    with tempfile.TemporaryDirectory(prefix="okrsync-bench-wb-") as tmp, ExitStack() as stack:
        org = SandboxOrg(data={}, metadata=load_metadata(DEFAULT_METADATA_DIR))
        portal = HubSpotPortal()
        server = stack.enter_context(SandboxServer(org, portal=portal, cert_dir=Path(tmp) / "sandbox"))
        writer = writer_for(server)
        if isinstance(writer, HubSpotWriter):
            writer.provision()
            writer = writer_for(server)  # count only the write-back's calls
        record_keys = keys(org, portal, records)
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        create_schema(engine)
        connection_id = _outbox(engine, crm, target, record_keys)
        if latency:
            (org if crm == "salesforce" else portal).faults.add("latency", seconds=latency, times=10**9)
        started = time.perf_counter()
        report = send(engine, writer, connection_id=connection_id)
        seconds = time.perf_counter() - started
        engine.dispose()
    assert not report.problems, report.problems[:3]
    minimum = -(-records // (200 if crm == "salesforce" else 100))
    return {
        "case": name,
        "records": records,
        "latency_ms": int(latency * 1000),
        "api_calls": report.api_calls,
        "calls_per_10k": round(report.api_calls * 10_000 / records, 1),
        "platform_minimum_per_10k": round(minimum * 10_000 / records, 1) if "bulk" not in name.lower() else None,
        "seconds": round(seconds, 2),
        "records_per_second": round(records / seconds),
    }


def _okrsync_ids(org: Any, portal: Any, records: int) -> list[str]:
    return [f"bench-team/q4-2026/kr-{n}" for n in range(records)]


def _opportunities(org: SandboxOrg, portal: Any, records: int) -> list[str]:
    return [org.insert("Opportunity", {"Name": f"Deal {n}", "StageName": "Prospecting"})["Id"] for n in range(records)]


def _deals(org: Any, portal: HubSpotPortal, records: int) -> list[str]:
    return [str(portal.insert("deals", {"dealname": f"Deal {n}"})["id"]) for n in range(records)]


def _sf(bulk: bool) -> Any:
    def build(server: SandboxServer) -> SalesforceWriter:
        config = SALESFORCE.sandbox_config(server.base_url, server.ca_path or "")
        return SalesforceWriter(config, bulk_threshold=2000 if bulk else 10**9, bulk_poll_seconds=0.05)

    return build


def _hs(mode: str) -> Any:
    def build(server: SandboxServer) -> HubSpotWriter:
        config = HUBSPOT.sandbox_config(server.base_url, server.ca_path or "")
        return HubSpotWriter(HubSpotConfig.model_validate({**config.model_dump(), "writeback_mode": mode}))

    return build


def run(*, records: int = 10_000, latency: float = 0.1) -> dict[str, Any]:
    cases = []
    for delay in (0.0, latency):
        cases += [
            _case("Salesforce collections, key results", crm="salesforce", records=records, latency=delay,
                  writer_for=_sf(False), target=Target.key_result, keys=_okrsync_ids),
            _case("Salesforce Bulk API 2.0, key results", crm="salesforce", records=records, latency=delay,
                  writer_for=_sf(True), target=Target.key_result, keys=_okrsync_ids),
            _case("Salesforce collections, opportunity fields", crm="salesforce", records=records, latency=delay,
                  writer_for=_sf(False), target=Target.opportunity, keys=_opportunities),
            _case("HubSpot custom objects, key results", crm="hubspot", records=records, latency=delay,
                  writer_for=_hs("custom_objects"), target=Target.key_result, keys=_okrsync_ids),
            _case("HubSpot properties, deal fields", crm="hubspot", records=records, latency=delay,
                  writer_for=_hs("properties"), target=Target.opportunity, keys=_deals),
        ]  # fmt: skip
    return {"records": records, "cases": cases}


def table(results: dict[str, Any]) -> str:
    lines = [
        f"## Write-back of {results['records']:,} changed records (sandbox in process, SQLite outbox)",
        "",
        "| case | latency per call | API calls | calls per 10,000 | platform minimum | seconds | records/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in results["cases"]:
        minimum = c["platform_minimum_per_10k"] if c["platform_minimum_per_10k"] is not None else "—"
        lines.append(
            f"| {c['case']} | {c['latency_ms']} ms | {c['api_calls']:,} | {c['calls_per_10k']} | {minimum} |"
            f" {c['seconds']} | {c['records_per_second']:,} |"
        )
    return "\n".join(lines)
