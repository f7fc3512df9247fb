"""The sidecar's background worker: turns stored webhook events into one refresh per CRM connection, and syncs on a
timer.

Everything is per connection, named by its key (``hubspot`` for the default HubSpot connection, ``hubspot/west`` for
an extra one, see ``service.crm.clients.connection_key``): pending events, the lease (``crm:hubspot/west``), the
connector and writer, failures and backoff. A pass of one connection reads and writes that connection's rows only
(everything below ``run_pass`` is scoped by its ``connection_id``), and one connection failing or backing off never
holds up another. An event for a connection this worker has not got is marked failed, saying how to configure it.

A refresh is one pass of the loop (``service.loop.run_pass``): the records the events name are fetched
by id through the connector (with their associations; a record the CRM no longer has is marked deleted), then the
affected key results are recomputed and what changed is written back. An event that names no record the connector
reads by id falls back to an incremental sync. A burst of events is coalesced: the worker waits
``coalesce_seconds`` after the oldest pending event, then handles every pending event of that connection with one
refresh (one batch read per 100 records), so 5,000 events cost a few passes, not 5,000 fetches. Because the refresh
reads the CRM's current state, events arriving late or out of order change nothing: the newest state wins whatever
order ``occurredAt`` says they happened in.

An event whose refresh fails stays pending with the error and is tried again after a pause that doubles with each
failed pass (1 s, 2 s, 4 s … at most 5 minutes); after ``MAX_ATTEMPTS`` it is marked failed, error kept (never
dropped). A periodic incremental sync runs every ``sync_interval_seconds`` even without
events, because webhooks can be lost, and at the first poll of each UTC day: a new day moves every key result's
window and every hygiene age, so that pass computes the mappings in full; run then, it spares the day's first
webhook that wait (25 s at a million activities, bench/REFERENCE.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial

from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.errors import ConnectorError
from connectors.registry import adapter as crm_adapter
from service.compute.models import Computation
from service.crm.clients import CrmAccess, connection_key, event_connection
from service.kit import leases
from service.kit.db import retry_on_conflict, utcnow
from service.kit.metrics import Metrics
from service.kit.settings import Settings
from service.loop import PassReport, run_pass
from service.notifications.service import Notifier, latest_status_changes, status_change_lines
from service.webhooks import repository as repo
from service.webhooks.models import WebhookEvent

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5


@dataclass
class WorkReport:
    events: int = 0
    refreshes: dict[str, PassReport] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


class Worker:
    """Processes stored webhook events and periodic syncs for the configured CRM connections (``crms``, keyed by
    connection key)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        crms: dict[str, CrmAccess],
        metrics: Metrics,
        *,
        notifier: Notifier | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.clock = clock  # the UTC time (a test moves it past midnight)
        self.notifier = notifier
        self.settings = settings
        self.crms = crms
        self.metrics = metrics
        # one connector and writer per connection for the worker's life: they keep their session and rate state
        self.connectors = {key: access.connector() for key, access in crms.items()}
        self.writers = {key: access.writer() for key, access in crms.items()}
        self.last_sync: dict[str, float] = {}
        self.synced_on: dict[str, date] = {}  # the UTC day of this worker's last periodic sync per connection
        self.refreshes = 0  # passes run (for metrics and tests: a burst of events should cost a few)
        self.failures: dict[str, int] = {}  # consecutive failed passes per connection
        self.backoff_until: dict[str, float] = {}  # after a failure, wait before trying that connection again
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lock = threading.Lock()  # one pass at a time (the thread, or a test calling run_once)
        self.holder = leases.worker_id()  # leases: one worker per CRM connection across processes

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="okrsync-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 — the worker must outlive any one failure; the events keep the error
                log.exception("worker pass failed")
            self._stop.wait(self.settings.serve.worker_poll_seconds)

    # -- one pass --------------------------------------------------------------------------------------------
    def run_once(self, *, wait_for_burst: bool = True) -> WorkReport:
        """Handle pending events (after the coalescing wait) and due periodic syncs."""
        with self.lock:
            return self._run_once(wait_for_burst=wait_for_burst)

    def _run_once(self, *, wait_for_burst: bool) -> WorkReport:
        report = WorkReport()
        with Session(self.engine) as session:
            waiting = {connection_key(*pair): oldest for pair, oldest in repo.pending_connections(session).items()}
        for key in sorted(set(waiting) - set(self.crms)):
            crm, connection = event_connection(key)
            with Session(self.engine) as session:
                ids = [e.id or 0 for e in repo.pending(session, crm=crm, connection=connection)]
            self._finish(ids, "failed", _missing(crm, connection))
        for key in sorted(self.crms):
            if time.monotonic() < self.backoff_until.get(key, 0.0):
                continue  # the last pass failed: give the CRM (or the person fixing it) a moment
            oldest = waiting.get(key)
            ripe = oldest is not None and (
                not wait_for_burst or utcnow() - oldest >= timedelta(seconds=self.settings.serve.coalesce_seconds)
            )
            if not ripe and not self._sync_due(key):
                continue
            lease = self.lease_name(key)
            if not leases.acquire(self.engine, lease, self.holder, ttl=self.settings.serve.lease_seconds):
                continue  # another worker is on this connection now; its pass takes these events too
            try:
                self._pass(key, lease, report, ripe=ripe)
            finally:
                leases.release(self.engine, lease, self.holder)  # no-op when _pass released it already
        return report

    def lease_name(self, key: str) -> str:
        """``crm:hubspot/sandbox``: one lease per connection, named by its CRM and the name its rows are filed under."""
        return f"crm:{self.crms[key].crm}/{self.crms[key].connection_name}"

    def _sync_due(self, key: str) -> bool:
        """A periodic sync is due when neither this worker nor any other finished one within the interval, or none
        has finished one on this UTC day (the day's full computation, see the module docstring)."""
        interval = self.settings.serve.sync_interval_seconds
        now = self.clock()
        new_day = key in self.synced_on and self.synced_on[key] < now.date()
        if not new_day and time.monotonic() - self.last_sync.get(key, float("-inf")) < interval:
            return False
        done = leases.last_sync(self.engine, self.lease_name(key))
        if done is not None and new_day and done.date() >= now.date():
            self.synced_on[key] = done.date()  # another worker has had today's pass
        return done is None or done.date() < now.date() or (now - done).total_seconds() >= interval

    def _pass(self, key: str, lease: str, report: WorkReport, *, ripe: bool) -> None:
        """One refresh of the connection ``key`` under its lease: its pending events (read now that no other worker
        can take them), or the periodic incremental sync when it is due."""
        targets: dict[str, set[str]] | None = {}
        ids: list[int] = []
        if ripe:
            crm, connection = event_connection(key)
            with Session(self.engine) as session:
                for event in repo.pending(session, crm=crm, connection=connection):
                    ids.append(event.id or 0)
                    targets = self._target(event, targets)
        periodic = self._sync_due(key)
        if not ids and not periodic:
            return
        started = time.perf_counter()
        ttl = self.settings.serve.lease_seconds
        try:
            with leases.held(self.engine, lease, self.holder, ttl=ttl) as lost:
                result = run_pass(
                    self.engine,
                    connector=self.connectors[key],
                    writer=self.writers[key],
                    connection_name=self.crms[key].connection_name,
                    settings=self.settings,
                    targets=None if periodic else targets,
                )
            if lost.is_set():
                raise RuntimeError(f"lost the lease on {lease} during the pass (the database was unreachable)")
        except (ConnectorError, Exception) as exc:  # noqa: BLE001 — kept on the events, retried later
            message = f"{type(exc).__name__}: {exc}"
            log.warning("refresh of %s failed: %s", key, message)
            report.failures[key] = message
            self.failures[key] = self.failures.get(key, 0) + 1
            self.backoff_until[key] = time.monotonic() + min(300.0, 2.0 ** (self.failures[key] - 1))
            retry_on_conflict(partial(self._retry_later, ids, message))
            self.metrics.events_processed.labels("retry").inc(len(ids))
            return
        self.failures.pop(key, None)
        synced = periodic or not targets
        if synced:
            self.last_sync[key] = time.monotonic()
            self.synced_on[key] = self.clock().date()
        self.refreshes += 1
        # metrics are labelled by connection key: "hubspot" as with one portal, "hubspot/west" for an extra one
        self.metrics.refresh_seconds.labels(key).observe(time.perf_counter() - started)
        self.metrics.sync_lag.labels(key).set(0)
        self.metrics.api_calls.labels(key, "sync").inc(result.sync.api_calls)
        if result.writeback is not None:
            self.metrics.api_calls.labels(key, "writeback").inc(result.writeback.api_calls)
        for _name, computed in result.computed:
            self.metrics.compute_seconds.observe(computed.seconds)
        self._finish(ids, "processed", None)
        leases.release(self.engine, lease, self.holder, synced=synced, passed=True)
        self._announce(result)
        report.refreshes[key] = result
        report.events += len(ids)

    def _target(self, event: WebhookEvent, so_far: dict[str, set[str]] | None) -> dict[str, set[str]] | None:
        """Add the records an event names to its connection's targets; None: some event needs a full incremental
        sync."""
        if so_far is None:
            return None
        streams = getattr(self.connectors.get(connection_key(event.crm, event.connection)), "streams", ())
        stream = event.object_type
        if stream is None or stream not in streams or not event.object_id:
            return None  # an object type the connector reads as a whole (or no id): sync incrementally instead
        targets = dict(so_far)
        ids = set(targets.get(stream, set()))
        # the adapter knows what else an event names (a HubSpot merge: every id of the merge)
        ids |= crm_adapter(event.crm).records_named(event.kind, event.object_id, event.payload)
        targets[stream] = ids
        return targets

    def _announce(self, result: PassReport) -> None:
        """Post the key results this pass moved to another status (on track → at risk …) to the team chat; the
        message goes out in the background."""
        if self.notifier is None:
            return
        with Session(self.engine) as session:
            for name, computed in result.computed:
                run = session.get(Computation, computed.computation_id)
                changes = latest_status_changes(session, mapping_id=run.mapping_id) if run else []
                if changes:
                    before, after = {k: b for k, b, _a in changes}, {k: a for k, _b, a in changes}
                    self.notifier.post(f"{name}: key results changed status", status_change_lines(before, after, {}))

    def _retry_later(self, ids: list[int], message: str) -> None:
        with Session(self.engine) as session:
            repo.retry_later(session, ids=sorted(ids), error=message, max_attempts=MAX_ATTEMPTS)
            session.commit()

    def _finish(self, ids: list[int], status: str, error: str | None) -> None:
        if not ids:
            return

        def once() -> None:
            with Session(self.engine) as session:
                repo.finish(session, ids=sorted(ids), status=status, now=utcnow(), error=error, by=self.holder)
                session.commit()

        retry_on_conflict(once)  # a webhook counting a repeat may hold the same rows: PostgreSQL aborts one side
        self.metrics.events_processed.labels(status).inc(len(ids))


def _missing(crm: str, connection: str | None) -> str:
    """Why an event was failed: its connection is not configured in this worker, and how to configure it."""
    if connection is None:
        return f"no {crm} connection is configured: set OKRSYNC_{crm.upper()}__…"
    routed_by = crm_adapter(crm).routing_setting
    return (
        f"no {crm} connection {connection!r} is configured in this worker: add"
        f' {{"name": "{connection}", "{crm}": {{…}}, "{routed_by}": …}} to OKRSYNC_CONNECTIONS'
        " (the same value in every sidecar and worker)"
    )
