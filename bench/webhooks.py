"""Sidecar benchmark: webhook acceptance rate, and the time from a HubSpot webhook to the write-back in the CRM.

Setup: the sandbox CRM (HubSpot portal, custom objects provisioned) and the sidecar (uvicorn, worker thread), both
in this process on loopback, SQLite in a temporary directory, the acquisition example applied.

- Acceptance: signed batches of 100 events posted back to back (1 client) and from 4 clients at once; every
  request is verified, parsed and stored before its 200. Figures: requests/s and events/s.
- Webhook → write-back: a rep logs a meeting in the portal, the signed webhook goes to the sidecar, and the clock
  stops when the key result's record in the portal counts it. Every CRM call (the sidecar's sync and write-back)
  gets ``latency`` seconds of injected latency. Figures: p50/p95 over ``samples`` meetings.

Portal size: ``sizes`` lists activity counts (``--webhook-activities 3000,1000000``); each gets a portal of its
own, scaled as bench/compute.py scales its org (opportunities = activities / 10, accounts = opportunities / 5, at
least 150 and 60). Per size, outside the timed part: generate the portal (the Salesforce generator's org, seeded into
the portal and freed as it goes; seconds and RSS after it), first-sync it over HTTP (seconds, records/s), apply the
mapping and run the full compute (seconds, as of the data's anchor day); then one untimed first meeting (the
worker's first pass of the day recomputes in full; reported apart) and the webhook → write-back samples through the
sidecar app with its worker on a real HTTP server; then one more meeting whose pass runs in the bench's thread,
plain and under cProfile, for where the time goes (CRM calls × latency, the targeted sync, the incremental compute,
staging, write-back).
Peak RSS is the process's VmHWM from /proc/self/status, reset at the start of each size (``clear_refs``), so it is
that size's own peak (ru_maxrss where /proc is missing). Acceptance is measured once, at the first size.

At a million activities the run takes about half an hour on 2 cores, most of it the first sync; the portal holds
about 3 GB.

    python -m bench webhooks --webhook-activities 3000,1000000 --samples 20
"""

from __future__ import annotations

import cProfile
import gc
import json
import pstats
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
        peak = _reset_peak()
        started = time.perf_counter()
        portal = _portal(activities=activities, opportunities=opportunities, accounts=accounts)
        figures["generate_seconds"] = round(time.perf_counter() - started, 2)
        figures["portal_rss_kb"] = _memory()["VmRSS"]
        # the bench reads HubSpot only: the server's Salesforce org is empty, so the generated org is freed
        server = stack.enter_context(SandboxServer(SandboxOrg(), portal=portal, cert_dir=Path(tmp) / "sandbox"))
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
            sync_seconds=round(seconds, 2), records_synced=synced, records_per_second=round(synced / seconds),
            sync_api_calls=report.api_calls, sync_rss_kb=_memory()["VmRSS"],
        )  # fmt: skip
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
            figures["compute_rss_kb"] = _memory()["VmRSS"]
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
            template = portal.get("meetings", counted or "")
            figures.update(_delays(base, engine, portal, template, samples, latency))
            figures["breakdown"] = _breakdown(base, app.state.worker, portal, template, latency, activities=activities)
        finally:
            http.stop()
            engine.dispose()
        figures["peak_rss_kb"], figures["peak_rss_source"] = _peak(peak)
    del portal, server
    gc.unfreeze()  # the portal's objects (frozen in _portal) can go now
    return figures, acceptance


def _portal(*, activities: int, opportunities: int, accounts: int) -> Any:
    """The HubSpot portal of one size, seeded from the Salesforce generator's org, which is then freed.

    Its objects are frozen out of the garbage collector's reach: at a million activities the portal holds millions
    of dicts, and every full collection would walk them all, pausing the sidecar in the same process for the sake
    of an emulator that a real portal does not put in okrsync's process."""
    data = generate_org(anchor=_anchor(), seed=7, accounts=accounts, opportunities=opportunities, activities=activities)
    portal, _ids = portal_from_org(data, consume=True)
    del data, _ids
    gc.collect()
    gc.freeze()
    return portal


def _memory() -> dict[str, int]:
    """VmRSS and VmHWM of this process in kB (Linux); the high-water mark from ru_maxrss elsewhere."""
    try:
        with open("/proc/self/status") as status:
            fields = dict(line.split(":", 1) for line in status if line.startswith(("VmRSS", "VmHWM")))
        return {name: int(value.split()[0]) for name, value in fields.items()}
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
        return {"VmRSS": peak, "VmHWM": peak}


def _reset_peak() -> bool:
    """Reset the process's VmHWM to its current RSS (Linux >= 4.0: 5 > /proc/self/clear_refs), so that each size
    reports its own peak; False when that is not possible (then the peak is the process's since it started)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def _peak(reset: bool) -> tuple[int, str]:
    """This size's peak RSS in kB and where it comes from."""
    if Path("/proc/self/status").exists():
        return _memory()["VmHWM"], "VmHWM of this size" if reset else "VmHWM of the process so far"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "ru_maxrss of the process so far"


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


def _counted(portal: Any) -> int:
    """What the portal's discovery-meetings key result record counts (the value the write-back sets)."""
    kr = next(r for r in portal.records("okr_key_result") if r["properties"]["kr_key"] == "discovery-meetings")
    return int(kr["properties"]["records"])


def _meeting_event(portal: Any, template: dict[str, Any] | None, number: int) -> dict[str, Any]:
    """A rep logs a meeting like ``template`` (same deal, company, contacts) in the portal; its creation webhook."""
    assert template is not None, "no meeting counts for discovery-meetings"
    links = [
        (kind, to)
        for kind in ("deals", "companies", "contacts")
        for to, _t in portal.associations("meetings", template["id"], kind)
    ]
    skip = {"hs_object_id", "hs_createdate", "hs_lastmodifieddate"}
    meeting = portal.insert(
        "meetings", {k: v for k, v in template["properties"].items() if k not in skip}, associations=links
    )
    return {"eventId": 9_000_000 + number, "subscriptionId": 2, "portalId": portal.portal_id,
            "occurredAt": int(time.time() * 1000), "subscriptionType": "object.creation", "objectTypeId": "0-47",
            "objectId": int(meeting["id"])}  # fmt: skip


def _sample(base: str, portal: Any, template: dict[str, Any] | None, number: int) -> float:
    """Seconds from one meeting's signed webhook to its key result's record in the portal counting it."""
    before = _counted(portal)
    event = _meeting_event(portal, template, number)
    started = time.perf_counter()
    assert _post(base, [event]) == 200
    deadline = time.monotonic() + 300
    while _counted(portal) == before:
        if time.monotonic() > deadline:
            raise RuntimeError("the meeting never reached the key result: does the template meeting count?")
        time.sleep(0.01)
    return time.perf_counter() - started


def _delays(
    base: str, engine: Any, portal: Any, template: dict[str, Any] | None, samples: int, latency: float
) -> dict[str, Any]:
    """The timed samples, after one untimed first meeting: the set-up computed as of the data's anchor day, so the
    worker's first pass recomputes in full (as a running sidecar's first pass of each day does, the compute being
    incremental within one day only); the samples then measure the steady state. The first one is reported apart."""
    portal.faults.add("latency", seconds=latency, times=10**9)
    since = utcnow()
    first = _sample(base, portal, template, samples)
    first_computes = _pass_computes(engine, since)
    since = utcnow()
    times = [_sample(base, portal, template, number) for number in range(samples)]
    portal.faults.clear()
    ordered = sorted(times)
    return {
        "samples": samples,
        "latency_ms": int(latency * 1000),
        "first_seconds": round(first, 2),
        "first_compute_kinds": first_computes["pass_compute_kinds"],
        "first_compute_seconds": first_computes["pass_compute_max_seconds"],
        "p50_seconds": round(statistics.median(ordered), 2),
        "p95_seconds": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
        "max_seconds": round(ordered[-1], 2),
        "sample_seconds": [round(t, 2) for t in times],
        **_pass_computes(engine, since),
    }


# where a pass spends its time: (label, module, function), each the cumulative time of its calls in the profile
_PHASES = (
    ("sync: fetch by id + store", "service/sync/service.py", "refresh_records"),
    ("incremental compute", "service/compute/service.py", "compute"),
    ("stage", "service/writeback/service.py", "stage_connection"),
    ("write-back", "service/writeback/service.py", "send"),
)


def _breakdown(
    base: str, worker: Any, portal: Any, template: dict[str, Any] | None, latency: float, *, activities: int
) -> dict[str, Any]:
    """Where one webhook → CRM goes: the worker thread is stopped, one more meeting is posted, and its pass runs here,
    once as it is (seconds, CRM calls, the compute's own timings) and once more under cProfile (the phases'
    cumulative seconds, inflated by the profiler on Python code, and the slowest okrsync functions; the whole
    profile is kept in the temporary directory for ``python -m pstats``)."""
    worker.stop()
    portal.faults.add("latency", seconds=latency, times=10**9)
    runs: list[dict[str, Any]] = []
    for number, profiled in ((1, False), (2, True)):
        before, calls = _counted(portal), portal.api_calls_total
        started = time.perf_counter()
        assert _post(base, [_meeting_event(portal, template, 9_900_000 + number)]) == 200
        posted = time.perf_counter() - started
        profile = cProfile.Profile() if profiled else None
        started = time.perf_counter()
        if profile is not None:
            profile.enable()
        work = worker.run_once(wait_for_burst=False)
        if profile is not None:
            profile.disable()
        seconds = time.perf_counter() - started
        assert _counted(portal) != before, "the pass did not write the meeting's key result back"
        assert work.refreshes, f"the pass failed: {work.failures}"
        result = next(iter(work.refreshes.values()))
        computed = [report for _name, report in result.computed]
        run: dict[str, Any] = {
            "profiled": profiled,
            "webhook_seconds": round(posted, 3),
            "pass_seconds": round(seconds, 3),
            "crm_calls": portal.api_calls_total - calls,
            "crm_latency_seconds": round((portal.api_calls_total - calls) * latency, 2),
            "sync_seconds": round(result.sync.seconds, 3),
            "compute_seconds": round(sum(report.seconds for report in computed), 3),
            "recomputed": sorted(key for report in computed for key in report.recomputed),
            "slowest_compute_parts": sorted(
                ((part, round(t, 3)) for report in computed for part, t in report.timings.items()),
                key=lambda pair: -pair[1],
            )[:5],
            "writeback_calls": result.writeback.api_calls if result.writeback else 0,
        }
        if profile is not None:
            run["profile_path"] = str(Path(tempfile.gettempdir()) / f"okrsync-bench-webhooks-{activities}.prof")
            profile.dump_stats(run["profile_path"])
            stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
            run["phases"] = {
                label: round(sum(row[3] for key, row in stats.items() if key[0].endswith(path) and key[2] == name), 3)
                for label, path, name in _PHASES
            }
            own = [(key, row) for key, row in stats.items() if str(ROOT) in key[0] and ".venv" not in key[0]]
            run["slowest_functions"] = [
                f"{row[3]:.3f} s cumulative, {row[1]} calls: {Path(key[0]).relative_to(ROOT)}:{key[1]} {key[2]}"
                for key, row in sorted(own, key=lambda item: -item[1][3])[:15]
            ]
        runs.append(run)
    portal.faults.clear()
    return {"plain": runs[0], "profiled": runs[1]}


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
        "Set-up, outside the timed part: the portal generated in process (seconds; RSS after it, the generated"
        " Salesforce org freed), the first sync over HTTP (seconds, records/s) and the full compute (SQLite). First"
        " meeting: untimed in p50/p95, the worker's first pass of the day (its compute is full). Compute in the pass:"
        " the worker's computes during the samples (part of p50/p95). Peak RSS: the process's VmHWM during that size"
        " (reset at its start when Linux allows it).",
        "",
        "| activities | opportunities | accounts | portal (s) | RSS after portal (MB) | first sync (s) | records"
        " | records/s | full compute (s) | first meeting (s) | samples | p50 (s) | p95 (s) | max (s)"
        " | compute in the pass, p50 / max (s) | peak RSS (MB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for d in portals:
        lines.append(
            f"| {d['activities']:,} | {d['opportunities']:,} | {d['accounts']:,} | {d['generate_seconds']}"
            f" | {round(d['portal_rss_kb'] / 1024):,} | {d['sync_seconds']} | {d['records_synced']:,}"
            f" | {d['records_per_second']:,} | {d['compute_seconds']} | {d['first_seconds']}"
            f" | {d['samples']} | {d['p50_seconds']} | {d['p95_seconds']} | {d['max_seconds']}"
            f" | {d.get('pass_compute_p50_seconds')} / {d.get('pass_compute_max_seconds')}"
            f" | {round(d['peak_rss_kb'] / 1024):,} |"
        )
    lines += [
        "",
        "One more meeting per size, its pass run in the bench's thread (worker stopped): as it is, then under cProfile"
        " (phases: cumulative seconds, the profiler inflates Python code):",
        "",
        "| activities | pass (s) | CRM calls | CRM latency (s) | sync (s) | compute (s) | profiled pass (s)"
        " | " + " | ".join(f"{label} (s)" for label, _p, _n in _PHASES) + " |",
        "|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(_PHASES),
    ]
    for d in portals:
        plain, profiled = d["breakdown"]["plain"], d["breakdown"]["profiled"]
        lines.append(
            f"| {d['activities']:,} | {plain['pass_seconds']} | {plain['crm_calls']} | {plain['crm_latency_seconds']}"
            f" | {plain['sync_seconds']} | {plain['compute_seconds']} | {profiled['pass_seconds']} | "
            + " | ".join(str(profiled["phases"][label]) for label, _p, _n in _PHASES)
            + " |"
        )
    return "\n".join(lines)
