"""The sync engine: streams a connector's pages into the local model.

Rules it keeps, whatever the CRM:
- one transaction per page: the page's rows, its skipped records and the moved cursor commit together, so a crash
  (even kill -9) at any point leaves the cursor at stored data only, and the next run resumes from there;
- upserts are idempotent and keyed by (connection, external id); a row is written only when the CRM's change
  stamp is newer than the stored one, so re-reading the look-back window costs no writes;
- the cursor never moves backwards; each run re-reads ``lookback`` before it, because long CRM transactions
  commit records with a change stamp behind a cursor that already passed;
- a full sync (first run or ``--full``) marks every row it sees and, at the end of each object, marks rows the
  CRM no longer lists as deleted; incremental runs learn deletions from the connector (soft deletes in the pages,
  hard deletes from ``deleted()``).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from connectors.errors import ApiLimitError, ConnectorError
from connectors.records import CanonicalRecord, Deletion, SkippedRecord
from service.kit.db import analyze, utcnow, vacuum
from service.sync import repository
from service.sync.models import SyncRun, SyncState
from service.sync.read_ahead import read_ahead

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]


class PageLike(Protocol):
    records: list[CanonicalRecord]
    skipped: list[SkippedRecord]
    cursor: tuple[datetime, str] | None
    total_size: int


class DeletedLike(Protocol):
    deletions: list[Deletion]
    earliest_available: datetime | None
    latest_covered: datetime | None


class PullConnector(Protocol):
    """What the sync engine needs from a CRM connector."""

    crm: str
    streams: tuple[str, ...]
    api_calls: int

    @property
    def lookback(self) -> timedelta: ...

    def kind_of(self, stream: str) -> str: ...
    def instance_url(self, known: str | None = None) -> str | None: ...
    def pages(self, stream: str, *, since: datetime | None) -> Iterator[PageLike]: ...
    def supports_deleted(self, stream: str) -> bool: ...
    def deleted(self, stream: str, *, start: datetime, end: datetime) -> DeletedLike: ...
    def usage_text(self) -> str | None: ...


@dataclass
class StreamCounts:
    fetched: int = 0
    written: int = 0
    deleted: int = 0
    skipped: int = 0


@dataclass
class SyncReport:
    run_id: int
    crm: str
    full: bool
    status: str = "running"
    counts: dict[str, StreamCounts] = field(default_factory=dict)
    api_calls: int = 0
    api_usage: str | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    revived: dict[str, set[str]] = field(default_factory=dict)  # stream → records restored in the CRM (read again)

    def summary(self) -> str:
        per_stream = ", ".join(f"{name} {c.written}/{c.fetched}" for name, c in self.counts.items())
        deleted = sum(c.deleted for c in self.counts.values())
        skipped = sum(c.skipped for c in self.counts.values())
        usage = f" (daily usage {self.api_usage})" if self.api_usage else ""
        text = (
            f"{self.crm} {'full' if self.full else 'incremental'} sync {self.status} in {self.seconds:.1f} s —"
            f" written/fetched: {per_stream}; {deleted} deleted; {skipped} skipped;"
            f" {self.api_calls} API calls{usage}"
        )
        return text + (f"\nerror: {self.error}" if self.error else "")


# a sync that wrote this many rows refreshes the planner statistics (compute queries depend on them)
ANALYZE_AFTER_ROWS = 5_000


@contextmanager
def _recorded_run(
    engine: Engine, connector: FetchConnector | PullConnector, *, connection_name: str, full: bool
) -> Iterator[tuple[int, SyncReport]]:
    """Open a sync_run row for the connection, yield (connection id, report), and record how it ended: ok, stopped
    (API allowance), or failed with the error; the connector's errors pass through."""
    started = time.monotonic()
    calls_before = connector.api_calls
    with Session(engine, expire_on_commit=False) as session:
        connection = repository.get_or_create_connection(session, crm_name=connector.crm, name=connection_name)
        repository.set_instance_url(connection, connector.instance_url(known=connection.instance_url))
        connection_id = int(connection.id)  # type: ignore[arg-type]  # id is set: the row was flushed
        _close_interrupted_runs(session, connection_id)
        run = repository.start_run(session, connection_id=connection_id, full=full)
        session.commit()
        report = SyncReport(run_id=int(run.id), crm=connector.crm, full=full)  # type: ignore[arg-type]  # id is set: the row was flushed
    try:
        yield connection_id, report
        report.status = "ok"
    except ApiLimitError as exc:
        report.status, report.error = "stopped", str(exc)
        raise
    except ConnectorError as exc:
        report.status, report.error = "failed", str(exc)
        raise
    except BaseException as exc:
        report.status, report.error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        report.api_calls = connector.api_calls - calls_before
        report.api_usage = connector.usage_text()
        report.seconds = time.monotonic() - started
        _finish_run(engine, report)


def run_sync(
    engine: Engine,
    connector: PullConnector,
    *,
    connection_name: str,
    full: bool = False,
    progress: ProgressCallback | None = None,
) -> SyncReport:
    """Sync every stream of ``connector`` into the local model. Raises the connector's FatalError after logging
    the run; whatever was committed before stays committed and the next run resumes from it."""
    repository.restore_indexes(engine)  # a first sync killed while its indexes were deferred left them dropped
    with (
        _rare_collections(),
        _recorded_run(engine, connector, connection_name=connection_name, full=full) as (
            connection_id,
            report,
        ),
    ):
        deferred = repository.defer_indexes(engine)
        objects = _StoredObjects(connection_id)
        try:
            for stream in connector.streams:
                report.counts[stream] = _sync_stream(
                    engine,
                    connector,
                    connection_id=connection_id,
                    stream=stream,
                    full=full,
                    run=report,
                    progress=progress,
                    objects=objects,
                )
        finally:
            if deferred:
                repository.restore_indexes(engine)
        # a --full run re-reads every record, the linked ones too; a resumed full read of one stream (which sets
        # report.full) does not, so the records linked to what it restored are still read again
        if not full:
            _relink_restored(engine, connector, connection_id=connection_id, report=report)
        if sum(c.written for c in report.counts.values()) >= ANALYZE_AFTER_ROWS:
            settle_loaded_tables(engine)
    return report


def settle_loaded_tables(engine: Engine) -> None:
    """After a sync that wrote ANALYZE_AFTER_ROWS rows or more: the planner's statistics refreshed, and on
    PostgreSQL the new rows' pages marked all-visible, or every index-only scan over them (the stage medians, open
    opportunities per owner) visits each row until autovacuum comes by, which is off on this machine and in CI: at
    100,000 opportunities one changed opportunity's compute took 0.33 s unvacuumed and 0.19 s vacuumed (the stage
    medians' queries 108 ms against 12 ms). SQLite: nothing to vacuum, and only the tables a sync writes are
    analyzed (in full: ``kit.db.full_statistics``; 1.0 s for them at a million activities, the whole file 4.7 s)."""
    loaded = [model.__table__.name for model in repository.LOADED_TABLES]  # type: ignore[attr-defined]
    analyze(engine, loaded if engine.dialect.name == "sqlite" else None)
    vacuum(engine, loaded)


class _Collections:
    """Syncs running in this process, and the garbage collector's thresholds before the first of them."""

    lock = threading.Lock()
    running = 0
    before: tuple[int, int, int] = (700, 10, 10)


GC_FIRST_GENERATION = 100_000  # allocations between young-generation collections while a sync runs (Python: 700)


@contextmanager
def _rare_collections() -> Iterator[None]:
    """Fewer cyclic garbage collections while a sync runs. A page makes hundreds of thousands of short-lived objects
    (JSON, records, row dicts) that reference counting frees, yet each 700 allocations start a collection that walks
    the young ones, and the older generations are walked again and again as the objects a sync keeps grow. With a
    first-generation threshold of 100,000 a 126,072-record Salesforce sync into SQLite took 15.5 / 14.3 s instead of
    16.6 / 16.8 s (user CPU 14.2 / 13.2 s against 15.9 / 16.1 s). Process-wide: the first sync to start sets it, the
    last to end puts the thresholds back."""
    with _Collections.lock:
        if _Collections.running == 0:
            _Collections.before = gc.get_threshold()
            gc.set_threshold(GC_FIRST_GENERATION, _Collections.before[1], _Collections.before[2])
        _Collections.running += 1
    try:
        yield
    finally:
        with _Collections.lock:
            _Collections.running -= 1
            if _Collections.running == 0:
                gc.set_threshold(*_Collections.before)


def _sync_stream(
    engine: Engine,
    connector: PullConnector,
    *,
    connection_id: int,
    stream: str,
    full: bool,
    run: SyncReport,
    progress: ProgressCallback | None,
    objects: _StoredObjects,
) -> StreamCounts:
    counts = StreamCounts()
    kind = connector.kind_of(stream)
    detach = _detaches(connector)
    with Session(engine, expire_on_commit=False) as session:
        state = repository.get_state(session, connection_id=connection_id, stream=stream)
        # a full read that an earlier run began and did not finish (killed, stopped by a limit) goes on from where it
        # got; what it had read and the CRM deleted since is found through the CRM's deleted listing at its end
        resumed = not full and state.full_started_at is not None
        if full or state.cursor_at is None and state.full_started_at is None:
            state.full_started_at, state.cursor_at, state.cursor_id = utcnow(), None, None
        session.commit()
        full_started_at = state.full_started_at
        since = _since(connector, state)

    began: datetime | None = None  # the CRM's time this read began, when the connector says (Page.began_at)
    with closing(read_ahead(connector.pages(stream, since=since), name=f"okrsync-read-{stream}")) as pages:
        for page in pages:
            began = began or getattr(page, "began_at", None)
            with Session(engine, expire_on_commit=False) as session:
                written, deleted, back = _store_page(
                    session,
                    page,
                    kind=kind,
                    connection_id=connection_id,
                    seen_at=full_started_at,
                    run_id=run.run_id,
                    # a page may bring records of another CRM object (Salesforce: activities whose relations changed)
                    stream=getattr(page, "crm_object", None) or stream,
                    detach=detach,
                )
                state = repository.get_state(session, connection_id=connection_id, stream=stream)
                if page.cursor and (state.cursor_at is None or page.cursor > (state.cursor_at, state.cursor_id or "")):
                    state.cursor_at, state.cursor_id = page.cursor
                state.updated_at = utcnow()
                session.commit()
            objects.written(page.records, getattr(page, "crm_object", None) or stream, seen_at=full_started_at)
            if back:
                run.revived.setdefault(stream, set()).update(back)
            counts.fetched += len(page.records) + len(page.skipped)
            counts.written += written
            counts.skipped += len(page.skipped)
            counts.deleted += deleted
            if progress:
                progress(stream, counts.fetched, max(page.total_size, counts.fetched))

    with Session(engine, expire_on_commit=False) as session:
        state = repository.get_state(session, connection_id=connection_id, stream=stream)
        if state.full_started_at is not None:
            sweep = objects.kinds_to_sweep(session, stream, full_started_at=state.full_started_at)
            for swept_kind in sweep:  # deals fill two tables: deals, contact links
                swept = repository.sweep_unseen(
                    session,
                    swept_kind,
                    connection_id=connection_id,
                    crm_object=stream,
                    full_started_at=state.full_started_at,
                    detach=detach,
                )
                counts.deleted += swept if swept_kind == kind else 0
            if resumed and connector.supports_deleted(stream):
                window = connector.deleted(stream, start=state.full_started_at - connector.lookback, end=utcnow())
                counts.deleted += repository.mark_deleted(
                    session, kind, connection_id=connection_id, deletions=window.deletions, detach=detach
                )
            run.full = True
            state.deleted_checked_at, state.full_started_at = began or state.full_started_at, None
        elif connector.supports_deleted(stream) and state.deleted_checked_at is not None:
            window = connector.deleted(stream, start=state.deleted_checked_at - connector.lookback, end=utcnow())
            if window.earliest_available and window.earliest_available > state.deleted_checked_at:
                run.warnings.append(
                    f"{stream}: hard deletes before {window.earliest_available:%Y-%m-%d %H:%M} UTC can no longer"
                    f" be listed by the CRM; run the sync with --full once to sweep them"
                )
            counts.deleted += repository.mark_deleted(
                session, kind, connection_id=connection_id, deletions=window.deletions, detach=detach
            )
            state.deleted_checked_at = began or window.latest_covered or utcnow()
        elif began is not None:
            state.deleted_checked_at = began
        state.updated_at = utcnow()
        session.commit()
    return counts


_UNSEEN = datetime.min.replace(tzinfo=UTC)


class _StoredObjects:
    """Which tables can hold rows a full read must sweep, for one run: the (kind, CRM object) pairs stored when the
    run's first sweep asks (one ``SELECT DISTINCT`` per table), and for the pairs the run's pages wrote after that,
    the earliest ``seen_at`` they were written with. A pair first written by this run, only with a ``seen_at`` no
    earlier than the full read's start, has no row the sweep could find (in a first sync: all but the first
    stream's). Sweeping every table for every stream read each table in full 11 times in a first Salesforce sync
    (its secondary indexes are deferred): 0.5-0.8 s of 12 s at 100,000 activities."""

    def __init__(self, connection_id: int) -> None:
        self.connection_id = connection_id
        self.stored: set[tuple[str, str]] | None = None
        self.earliest: dict[tuple[str, str], datetime] = {}  # a row written without seen_at: _UNSEEN

    def written(self, records: Sequence[CanonicalRecord], crm_object: str, *, seen_at: datetime | None) -> None:
        at = seen_at or _UNSEEN
        for pair in {(r.kind, crm_object) for r in records}:
            self.earliest[pair] = min(self.earliest.get(pair, at), at)

    def kinds_to_sweep(self, session: Session, crm_object: str, *, full_started_at: datetime) -> list[str]:
        if self.stored is None:
            self.stored = repository.stored_objects(session, connection_id=self.connection_id)
            self.earliest.clear()  # what was written so far is stored now
        kinds = []
        for kind in repository.TABLES:
            pair = (kind, crm_object)
            if pair in self.stored or self.earliest.get(pair, full_started_at) < full_started_at:
                kinds.append(kind)
        return kinds


def _detaches(connector: FetchConnector | PullConnector) -> bool:
    """Whether the sync itself must clear the references to a record it marks deleted: a connector whose CRM leaves
    linked records and their links in place when a record is deleted (HubSpot archiving a company) says so with
    ``links_outlive_deletes``; a CRM that deletes and reports them too (Salesforce's cascade) needs nothing."""
    return bool(getattr(connector, "links_outlive_deletes", False))


def _since(connector: PullConnector, state: SyncState) -> datetime | None:
    """Where this run's read of a stream starts: everything on a first or full sync; the cursor minus the look-back,
    or, for a connector that reports when each read began (Salesforce), where it says from the last complete
    read's start (kept in ``deleted_checked_at``), so what was read before costs nothing again."""
    if state.cursor_at is None:
        return None
    measure = getattr(connector, "incremental_since", None)
    if measure is not None and state.full_started_at is None and state.deleted_checked_at is not None:
        return measure(cursor_at=state.cursor_at, read_began_at=state.deleted_checked_at)
    return state.cursor_at - connector.lookback


class FetchConnector(Protocol):
    crm: str
    api_calls: int

    def kind_of(self, stream: str) -> str: ...
    def instance_url(self, known: str | None = None) -> str | None: ...
    def usage_text(self) -> str | None: ...
    def fetch(self, stream: str, ids: list[str]) -> tuple[PageLike, list[Deletion]]: ...


def refresh_records(
    engine: Engine, connector: FetchConnector, *, connection_name: str, targets: dict[str, set[str]]
) -> SyncReport:
    """Fetch just these records (stream → ids) as they are now and store them: the targeted refresh after
    webhooks. Records the CRM no longer has are marked deleted. Cursors stay where they are, so the periodic
    incremental sync still reads everything that changed."""
    with _recorded_run(engine, connector, connection_name=connection_name, full=False) as (connection_id, report):
        report.revived = _refresh(engine, connector, connection_id=connection_id, report=report, targets=targets)
        _relink_restored(engine, connector, connection_id=connection_id, report=report)
    return report


def _relink_restored(engine: Engine, connector: Any, *, connection_id: int, report: SyncReport) -> None:
    """Records restored in the CRM (stored deleted, read live again: ``report.revived``): the records linked to them
    lost those links here when they were deleted, and the CRM re-stamps none of them (HubSpot), so they are read
    again now, through the connector's ``linked`` (a CRM without it, Salesforce, restores children with new stamps)."""
    linked = getattr(connector, "linked", None)
    if not report.revived or linked is None:
        return
    neighbours: dict[str, set[str]] = {}
    for stream, ids in sorted(report.revived.items()):
        for owner, owned in linked(stream, sorted(ids)).items():
            neighbours.setdefault(owner, set()).update(owned)
    log.info(
        "%s: %s restored; re-reading the records linked to them (%s)", connector.crm,
        ", ".join(f"{len(ids)} {stream}" for stream, ids in sorted(report.revived.items())),
        ", ".join(f"{len(ids)} {stream}" for stream, ids in sorted(neighbours.items())) or "none",
    )  # fmt: skip
    _refresh(engine, connector, connection_id=connection_id, report=report, targets=neighbours)


def _refresh(
    engine: Engine, connector: FetchConnector, *, connection_id: int, report: SyncReport, targets: dict[str, set[str]]
) -> dict[str, set[str]]:
    """One targeted read and store of ``targets``; returns the records stored as deleted that came back live
    (restored in the CRM), stream → ids."""
    revived: dict[str, set[str]] = {}
    for stream, ids in sorted(targets.items()):
        page, deletions = connector.fetch(stream, sorted(ids))
        counts = report.counts.setdefault(stream, StreamCounts())
        counts.fetched += len(page.records)
        counts.skipped += len(page.skipped)
        kind = connector.kind_of(stream)
        with Session(engine, expire_on_commit=False) as session:
            written, deleted, back = _store_page(
                session, page, kind=kind, connection_id=connection_id, seen_at=None, run_id=report.run_id,
                stream=stream, detach=_detaches(connector),
            )  # fmt: skip
            if back:
                revived[stream] = back
            counts.written += written
            counts.deleted += deleted
            if deletions:
                gone = repository.mark_deleted(
                    session, kind, connection_id=connection_id, deletions=deletions, detach=_detaches(connector)
                )
                counts.deleted += gone
                log.info(
                    "%s %s: %d of the records a webhook named are not in the CRM (archived, merged away or never"
                    " synced: %s); %d marked deleted now, the rest were deleted already or never stored here",
                    connector.crm, stream, len(deletions), ", ".join(d.external_id for d in deletions[:10]), gone,
                )  # fmt: skip
            session.commit()
    return revived


def _store_page(
    session: Session,
    page: PageLike,
    *,
    kind: str,
    connection_id: int,
    seen_at: datetime | None,
    run_id: int,
    stream: str,
    detach: bool = False,
) -> tuple[int, int, set[str]]:
    """Store one page; a page may carry records of several kinds (HubSpot deals bring their contact links).
    Returns (records written, stored live records now deleted, records stored deleted now live again: restored) of
    the stream's own kind: a deleted record read again, or first seen already deleted, is no deletion of this run.
    ``detach``: see ``_detaches``."""
    by_kind: dict[str, dict[str, CanonicalRecord]] = {}
    records = page.records
    if detach:  # the CRM may still list links to records stored as deleted
        records = repository.without_deleted_references(session, records, connection_id=connection_id)
    for record in records:
        newest = by_kind.setdefault(record.kind, {})
        kept = newest.get(record.external_id)
        if kept is None or record.modified_at >= kept.modified_at:
            newest[record.external_id] = record
    written = deleted = 0
    revived: set[str] = set()
    for record_kind, newest in by_kind.items():
        ids = list(newest)
        table = repository.TABLES[record_kind]
        stored = repository.stored_stamps(session, table, connection_id=connection_id, ids=ids)
        # A full sync rewrites records of the same version too: associations can change without a new change
        # stamp (HubSpot), and a full sync is the explicit way to refresh them.
        changed = [
            r
            for r in newest.values()
            if r.external_id not in stored
            or r.modified_at > stored[r.external_id][0]
            or (seen_at is not None and r.modified_at == stored[r.external_id][0])
            # stored deleted, read live at the same version: restored (HubSpot's restore keeps the stamp)
            or (r.modified_at == stored[r.external_id][0] and stored[r.external_id][1] and not r.is_deleted)
        ]
        repository.upsert_records(
            session, changed, connection_id=connection_id, crm_object=stream, seen_at=seen_at, stored_ids=stored.keys(),
            detach=detach,
        )  # fmt: skip
        merged = [r for r in changed if r.merged_ids and not r.is_deleted]
        retired = repository.retire_merged(session, record_kind, connection_id=connection_id, survivors=merged)
        changed_ids = {r.external_id for r in changed}
        # read again at the version stored: what changes without a new stamp (HubSpot associations) still applies
        same = [
            r
            for r in newest.values()
            if r.external_id not in changed_ids and stored.get(r.external_id) == (r.modified_at, False)
        ]
        repository.refresh_unstamped(session, same, connection_id=connection_id)
        if seen_at is not None:
            unchanged = [i for i in ids if i not in changed_ids]
            repository.mark_seen(session, record_kind, connection_id=connection_id, ids=unchanged, seen_at=seen_at)
        written += len(changed) if record_kind == kind else 0
        if record_kind == kind:
            deleted += sum(1 for r in changed if r.is_deleted and stored.get(r.external_id, (None, True))[1] is False)
            deleted += retired
            # stored deleted, now live: restored in the CRM
            revived |= {r.external_id for r in changed if not r.is_deleted and r.external_id in stored
                        and stored[r.external_id][1]}  # fmt: skip
    if page.skipped:
        repository.record_skips(session, page.skipped, connection_id=connection_id, stream=stream, run_id=run_id)
    return written, deleted, revived


def _close_interrupted_runs(session: Session, connection_id: int) -> None:
    session.execute(
        update(SyncRun)
        .where(col(SyncRun.connection_id) == connection_id, col(SyncRun.status) == "running")
        # its end is not known: now bounds it (an incremental compute reaches back to a run still open when the
        # computation before it started: compute.service.changes_since_last)
        .values(status="interrupted", error="the process ended before the run finished", finished_at=utcnow())
    )


def _finish_run(engine: Engine, report: SyncReport) -> None:
    counts: dict[str, Any] = {name: vars(c) for name, c in report.counts.items()}
    error = "\n".join(filter(None, [report.error, *report.warnings])) or None
    with Session(engine) as session:
        run = session.get(SyncRun, report.run_id)
        if run is not None:
            run.status, run.finished_at, run.counts = report.status, utcnow(), counts
            run.api_calls, run.api_usage, run.error = report.api_calls, report.api_usage, error
            session.commit()
