"""Sidecar benchmark: webhook acceptance rate, and the time from a HubSpot webhook to the write-back in the CRM.

Setup: the sandbox CRM (HubSpot portal, custom objects provisioned) and the sidecar (uvicorn, worker thread), both
in this process on loopback, SQLite in a temporary directory, the acquisition example applied.

- Acceptance: signed batches of 100 events posted back to back (1 client) and from 4 clients at once; every
  request is verified, parsed and stored before its 200. Figures: requests/s and events/s.
- Webhook → write-back: a rep logs a meeting in the portal, the signed webhook goes to the sidecar, and the clock
  stops when the key result's record in the portal counts it. Every CRM call (the sidecar's sync and write-back)
  gets ``latency`` seconds of injected latency. Figures: p50/p95 over ``samples`` meetings.

Portal size: ``sizes`` lists activity counts (``--webhook-activities 3000,20000``); each gets a portal of its own,
scaled as bench/compute.py scales its org (opportunities = activities / 10, accounts = opportunities / 5, at least
150 and 60). Per size, outside the timed part: generate the portal, first-sync it over HTTP (seconds, records/s),
apply the mapping and run the full compute (seconds); then the webhook → write-back samples through the sidecar app
with its worker on a real HTTP server; then the process's peak RSS so far (ru_maxrss, so with sizes in increasing
order it is the peak of that size's run). Acceptance is measured once, at the first size.

    python -m bench webhooks --webhook-activities 3000,20000 --samples 5
"""

from __future__ import annotations

import gc
import json
import resource
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import sqlmodel
from pydantic import SecretStr
from sqlmodel import Session

from connectors.hubspot.adapter import ADAPTER as HUBSPOT
from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.webhooks import sign_hubspot_v3
from connectors.hubspot.writer import HubSpotWriter
from connectors.sandbox.generator import generate_org
from connectors.sandbox.hubspot_seed import portal_from_org
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from service.app import create_app
from service.compute.models import Computation, KeyResultEvidence
from service.compute.service import compute
from service.crm.clients import CrmAccess
from service.kit.db import make_engine, utcnow
from service.kit.migrate import create_schema
from service.kit.server import ThreadedServer, free_port
from service.kit.settings import ServeSettings, Settings, WebhookSettings
from service.loop import find_connection
from service.okrs import service as okrs
from service.sync.service import run_sync
from service.writeback.service import send, stage_connection

SECRET = "bench-client-secret"
ROOT = Path(__file__).resolve().parents[1]


def _post(base: str, events: list[dict[str, Any]]) -> int:
    body = json.dumps(events).encode()
    stamp = str(int(time.time() * 1000))
    uri = f"{base}/webhooks/hubspot"
    signature = sign_hubspot_v3(client_secret=SECRET, method="POST", uri=uri, body=body, timestamp=stamp)
    headers = {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": stamp}
    return httpx.post(uri, content=body, headers=headers, timeout=30).status_code


def _events(portal_id: int, start: int, count: int) -> list[dict[str, Any]]:
    now = int(time.time() * 1000)
    return [
        {
            "eventId": n,
            "subscriptionId": 1,
            "portalId": portal_id,
            "occurredAt": now,
            "objectId": 100 + n % 50,
            "subscriptionType": "ticket.propertyChange",
            "propertyName": "x",
            "propertyValue": str(n),
        }
        for n in range(start, start + count)
    ]  # fmt: skip  (ticket events: stored, not tracked, so the worker has nothing to refresh)


def run(
    *, requests: int = 200, samples: int = 15, latency: float = 0.1, sizes: tuple[int, ...] = (3000,)
) -> dict[str, Any]:
    acceptance: list[dict[str, Any]] = []
    portals = []
    for number, activities in enumerate(sizes):
        figures, measured = _run_portal(
            activities=activities, requests=requests if number == 0 else 0, samples=samples, latency=latency
        )
        acceptance = acceptance or measured
        portals.append(figures)
        gc.collect()  # the next size starts without this one's portal and database
    return {"acceptance": acceptance, "portals": portals}


def portal_size(activities: int) -> tuple[int, int]:
    """Opportunities and accounts for a portal of ``activities``, scaled as bench/compute.py scales its org."""
    opportunities = max(150, activities // 10)
    return opportunities, max(60, opportunities // 5)


def _run_portal(
    *, activities: int, requests: int, samples: int, latency: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    opportunities, accounts = portal_size(activities)
    figures: dict[str, Any] = {"activities": activities, "opportunities": opportunities, "accounts": accounts}
    acceptance: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="okrsync-bench-wh-") as tmp, ExitStack() as stack:
        started = time.perf_counter()
        data = generate_org(
            anchor=_anchor(), seed=7, accounts=accounts, opportunities=opportunities, activities=activities
        )
        portal, _ids = portal_from_org(data)
        server = stack.enter_context(SandboxServer(SandboxOrg(data), portal=portal, cert_dir=Path(tmp) / "sandbox"))
        figures["generate_seconds"] = round(time.perf_counter() - started, 2)
        config = HubSpotConfig.model_validate(
            {**HUBSPOT.sandbox_config(server.base_url, server.ca_path or "").model_dump(), "retry_wait_base": 0.05}
        )
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        create_schema(engine)
        HubSpotWriter(config).provision()
        started = time.perf_counter()
        report = run_sync(engine, HubSpotConnector(config), connection_name="sandbox")
        seconds = time.perf_counter() - started
        synced = sum(c.fetched for c in report.counts.values())
        figures.update(
            sync_seconds=round(seconds, 2), records_synced=synced, records_per_second=round(synced / seconds)
        )
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            webhooks=WebhookSettings(hubspot_client_secret=SecretStr(SECRET)),
            serve=ServeSettings(sync_interval_seconds=3600, worker_poll_seconds=0.02, coalesce_seconds=0.05),
        )
        with Session(engine) as session:
            connection = find_connection(session, crm="hubspot", name="sandbox")
            assert connection is not None
            loaded = okrs.load_path(ROOT / "mappings" / "examples" / "acquisition.yaml")
            mapping, _v = okrs.apply(
                session, loaded, connection=connection, author="bench", reason="bench", now=_anchor()
            )
            session.commit()
            started = time.perf_counter()
            compute(session, mapping=mapping, as_of=_anchor())
            session.commit()
            figures["compute_seconds"] = round(time.perf_counter() - started, 2)
            stage_connection(session, connection=connection, settings=settings, as_of=_anchor())
            session.commit()
            connection_id = connection.id or 0
        send(engine, HubSpotWriter(config), connection_id=connection_id)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        settings.webhooks.public_base_url = base
        app = create_app(settings=settings, engine=engine, crms={"hubspot": CrmAccess("hubspot", "sandbox", config)})
        app.state.worker.last_sync["hubspot"] = time.monotonic()
        http = ThreadedServer(app, port=port).start()
        try:
            if requests:
                acceptance = _acceptance(base, portal.portal_id, requests)
            with Session(engine) as session:
                counted = session.exec(
                    sqlmodel.select(KeyResultEvidence.record_id).where(
                        KeyResultEvidence.kr_key == "discovery-meetings", KeyResultEvidence.part == "counted"
                    )
                ).first()
            since = utcnow()
            figures.update(_delays(base, portal, portal.get("meetings", counted or ""), samples, latency))
            figures.update(_pass_computes(engine, since))
        finally:
            http.stop()
            engine.dispose()
        figures["peak_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux
    return figures, acceptance


def _pass_computes(engine: Any, since: Any) -> dict[str, Any]:
    """How long the computes of the worker's passes took during the samples: the part of webhook → CRM that grows
    with the portal, apart from the CRM calls."""
    with Session(engine) as session:
        runs = session.exec(sqlmodel.select(Computation).where(Computation.started_at >= since)).all()
    seconds = sorted((r.finished_at - r.started_at).total_seconds() for r in runs if r.finished_at is not None)
    return {
        "pass_computes": len(seconds),
        "pass_compute_kinds": sorted({r.kind for r in runs}),
        "pass_compute_p50_seconds": round(statistics.median(seconds), 2) if seconds else None,
        "pass_compute_max_seconds": round(seconds[-1], 2) if seconds else None,
    }


def _anchor() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 9, 30, 18, 0, tzinfo=UTC)


def _acceptance(base: str, portal_id: int, requests: int) -> list[dict[str, Any]]:
    figures = []
    for clients in (1, 4):
        started = time.perf_counter()
        offset = clients * 1_000_000
        with ThreadPoolExecutor(clients) as pool:
            starts = [offset + n * 100 for n in range(requests)]
            codes = list(pool.map(lambda start: _post(base, _events(portal_id, start, 100)), starts))
        seconds = time.perf_counter() - started
        assert set(codes) == {200}, set(codes)
        figures.append({
            "clients": clients, "requests": requests, "events": requests * 100, "seconds": round(seconds, 2),
            "requests_per_second": round(requests / seconds, 1), "events_per_second": round(requests * 100 / seconds),
        })  # fmt: skip
    return figures


def _delays(base: str, portal: Any, template: dict[str, Any] | None, samples: int, latency: float) -> dict[str, Any]:
    def records() -> int:
        kr = next(r for r in portal.records("okr_key_result") if r["properties"]["kr_key"] == "discovery-meetings")
        return int(kr["properties"]["records"])

    assert template is not None, "no meeting counts for discovery-meetings"
    links = [
        (kind, to)
        for kind in ("deals", "companies", "contacts")
        for to, _t in portal.associations("meetings", template["id"], kind)
    ]
    portal.faults.add("latency", seconds=latency, times=10**9)
    times = []
    for number in range(samples):
        before = records()
        skip = {"hs_object_id", "hs_createdate", "hs_lastmodifieddate"}
        meeting = portal.insert(
            "meetings", {k: v for k, v in template["properties"].items() if k not in skip}, associations=links
        )
        started = time.perf_counter()
        event = {"eventId": 9_000_000 + number, "subscriptionId": 2, "portalId": portal.portal_id,
                 "occurredAt": int(time.time() * 1000), "subscriptionType": "object.creation", "objectTypeId": "0-47",
                 "objectId": int(meeting["id"])}  # fmt: skip
        assert _post(base, [event]) == 200
        deadline = time.monotonic() + 60
        while records() == before:
            if time.monotonic() > deadline:
                raise RuntimeError("the meeting never reached the key result: does the template meeting count?")
            time.sleep(0.01)
        times.append(time.perf_counter() - started)
    portal.faults.clear()
    ordered = sorted(times)
    return {
        "samples": samples,
        "latency_ms": int(latency * 1000),
        "p50_seconds": round(statistics.median(ordered), 2),
        "p95_seconds": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
        "max_seconds": round(ordered[-1], 2),
    }


def table(results: dict[str, Any]) -> str:
    lines = [
        "## Webhook acceptance (signed batches of 100 HubSpot events, verified, parsed and stored before the 200)",
        "",
        "| clients | requests | events | seconds | requests/s | events/s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for a in results["acceptance"]:
        lines.append(
            f"| {a['clients']} | {a['requests']:,} | {a['events']:,} | {a['seconds']} | {a['requests_per_second']}"
            f" | {a['events_per_second']:,} |"
        )
    portals = results["portals"]
    lines += [
        "",
        f"## HubSpot webhook → key result updated in the CRM ({portals[0]['latency_ms']} ms latency on every CRM"
        " call), by portal size",
        "",
        "First sync over HTTP and full compute (SQLite) are set-up, outside the timed part; compute in the pass: the"
        " worker's computes during the samples (part of p50/p95); peak RSS: the process's ru_maxrss after that size.",
        "",
        "| activities | opportunities | accounts | first sync (s) | records/s | full compute (s) | samples"
        " | p50 (s) | p95 (s) | max (s) | compute in the pass, p50 / max (s) | peak RSS (MB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for d in portals:
        lines.append(
            f"| {d['activities']:,} | {d['opportunities']:,} | {d['accounts']:,} | {d['sync_seconds']}"
            f" | {d['records_per_second']:,} | {d['compute_seconds']} | {d['samples']} | {d['p50_seconds']}"
            f" | {d['p95_seconds']} | {d['max_seconds']}"
            f" | {d.get('pass_compute_p50_seconds')} / {d.get('pass_compute_max_seconds')}"
            f" | {round(d['peak_rss_kb'] / 1024):,} |"
        )
    return "\n".join(lines)
