"""Send the outbox to the CRM: pending rows in batches, parents first, each answer recorded per record.

Rules:
- a row is marked sent only when the CRM acknowledged the values staged as its current ``seq``; a crash between
  send and acknowledgement leaves it pending, and sending it again is safe (upsert by okrsync id);
- transient per-record failures (a locked row) are retried by the connector; what is left, and permanent
  failures (a value too long, a deleted parent), are recorded with the CRM's message and the batch's other
  records land; failed rows wait for new values or ``okrsync writeback --retry-failed``;
- a call refused as a whole (a field or object missing, a scope missing) keeps the rows pending with the reason,
  skips that target for this run and goes on with the others; an authentication or API-limit error stops the run;
- nothing pending, nothing sent: a run after a computation that changed nothing makes no API call.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.errors import ConfigurationError, ConnectorError
from connectors.registry import adapter as crm_adapter
from connectors.writes import WRITE_ORDER, Target, Writer, WriteRequest, WriteResult
from service.crm.models import CrmConnection
from service.kit.db import utcnow
from service.kit.settings import Settings
from service.writeback import repository as repo
from service.writeback.models import OutboxRow
from service.writeback.staging import StageReport, stage

log = logging.getLogger(__name__)
CHUNK_ROWS = 10_000  # rows read and acknowledged per transaction; the writer splits them into API calls
PARENT = {Target.key_result: Target.objective, Target.contribution: Target.key_result}


@dataclass
class WritebackReport:
    """What a write-back run did, per target, and the API calls it took."""

    crm: str
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    deleted: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    retry_later: Counter[str] = field(default_factory=Counter)
    superseded: int = 0
    objects: dict[str, str] = field(default_factory=dict)  # target -> the CRM object it is written to
    api_calls: int = 0
    problems: list[str] = field(default_factory=list)
    stopped: str | None = None
    # okrsync records this database never wrote that the CRM already had (upserted, not created): another okrsync
    # deployment writing to the same org/portal, or a database recreated or restored
    already_there: Counter[str] = field(default_factory=Counter)

    @property
    def second_deployment_warning(self) -> str | None:
        count = sum(self.already_there.values())
        if not count:
            return None
        return (
            f"{count} okrsync record(s) already existed in {self.crm} though this database never wrote them: another"
            " okrsync deployment may be writing to the same org/portal, and two deployments overwrite each other's"
            " values — point only one deployment at it (if this database was recreated or restored, ignore this)"
        )

    @property
    def written(self) -> int:
        return sum(self.created.values()) + sum(self.updated.values()) + sum(self.deleted.values())

    def summary(self) -> str:
        """One line per target that was touched, then the API calls."""
        lines = []
        targets = sorted(set(self.created) | set(self.updated) | set(self.deleted) | set(self.failed))
        for target in targets:
            parts = [
                f"{self.created[target]} created" if self.created[target] else "",
                f"{self.updated[target]} updated" if self.updated[target] else "",
                f"{self.deleted[target]} deleted" if self.deleted[target] else "",
                f"{self.failed[target]} failed" if self.failed[target] else "",
                f"{self.retry_later[target]} to retry" if self.retry_later[target] else "",
            ]
            name = f"{target} ({self.objects[target]})" if target in self.objects else target
            lines.append(f"  {name:<40} {', '.join(p for p in parts if p)}")
        head = f"{self.crm} write-back: {self.written} record(s) written with {self.api_calls} API call(s)"
        if not lines:
            head += " — nothing had changed"
        warning = self.second_deployment_warning
        return "\n".join([head, *lines, *([f"warning: {warning}"] if warning else [])])


def _message(writer: Writer, target: Target, result: WriteResult) -> str:
    fields = f" field {', '.join(result.fields)}" if result.fields else ""
    name = writer.object_name(target)
    return f"{writer.crm} refused {name} {result.key}{fields}: {result.code}: {result.message}".strip()


def send(engine: Engine, writer: Writer, *, connection_id: int) -> WritebackReport:
    """Send every pending outbox row of the connection; see the module docstring for the rules."""
    report = WritebackReport(crm=writer.crm, objects={t.value: writer.object_name(t) for t in WRITE_ORDER})
    calls_before = writer.api_calls
    refused: set[Target] = set()
    try:
        for target in WRITE_ORDER:
            parent = PARENT.get(target)
            if parent in refused:
                # children name their parent by okrsync id: sent now they would fail one by one; keep them pending
                refused.add(target)
                continue
            if not _send_target(engine, writer, report, connection_id=connection_id, target=target, op="upsert"):
                refused.add(target)
        for target in reversed(WRITE_ORDER):
            _send_target(engine, writer, report, connection_id=connection_id, target=target, op="delete")
    except ConnectorError as exc:
        report.stopped = str(exc)
        log.error("write-back stopped: %s", exc)
    report.api_calls = writer.api_calls - calls_before
    if report.second_deployment_warning:
        log.warning("%s", report.second_deployment_warning)
    return report


def _send_target(
    engine: Engine, writer: Writer, report: WritebackReport, *, connection_id: int, target: Target, op: str
) -> bool:
    """Send the target's pending rows; False when the CRM refused the call as a whole."""
    after_id = 0
    while True:
        with Session(engine) as session:
            rows = repo.pending(
                session, connection_id=connection_id, target=target.value, op=op, limit=CHUNK_ROWS, after_id=after_id
            )
            if not rows:
                return True
            staged = {row.record_key: (row.id or 0, row.seq) for row in rows}
            never_written = {row.record_key for row in rows if row.crm_id is None and row.sent_at is None}
            requests = [WriteRequest(row.record_key, dict(row.payload), row.crm_id) for row in rows]
            after_id = max(row.id or 0 for row in rows)
        try:
            results = writer.upsert(target, requests) if op == "upsert" else writer.delete(target, requests)
        except ConfigurationError as exc:
            # refused as a whole: keep the rows pending for after the fix, go on with the other targets
            with Session(engine) as session:
                repo.note_error(session, row_ids=[i for i, _s in staged.values()], error_code="REFUSED", error=str(exc))
                session.commit()
            report.problems.append(str(exc))
            report.retry_later[target.value] += len(requests)
            return False
        _acknowledge(engine, writer, report, target, op, staged, results)
        if op == "upsert" and target in OBJECT_TARGETS:
            report.already_there[target.value] += sum(
                1 for r in results if r.ok and r.created is False and r.key in never_written
            )


OBJECT_TARGETS = frozenset({Target.objective, Target.key_result, Target.contribution, Target.kam_criterion})


def _acknowledge(
    engine: Engine,
    writer: Writer,
    report: WritebackReport,
    target: Target,
    op: str,
    staged: dict[str, tuple[int, int]],
    results: list[WriteResult],
) -> None:
    now = utcnow()
    with Session(engine) as session:
        for result in results:
            row_id, seq = staged[result.key]
            if result.ok:
                fresh = repo.acknowledge(session, row_id=row_id, seq=seq, status="sent", crm_id=result.crm_id, now=now)
                counter = report.deleted if op == "delete" else report.created if result.created else report.updated
                counter[target.value] += 1
            elif result.retriable:
                fresh = repo.acknowledge(
                    session, row_id=row_id, seq=seq, status="pending", error_code=result.code,
                    error=_message(writer, target, result), now=now,
                )  # fmt: skip
                report.retry_later[target.value] += 1
            else:
                message = _message(writer, target, result)
                fresh = repo.acknowledge(
                    session, row_id=row_id, seq=seq, status="failed", error_code=result.code, error=message, now=now
                )
                report.failed[target.value] += 1
                report.problems.append(message)
                log.warning("%s", message)
            if not fresh:
                report.superseded += 1  # newer values were staged while these were in flight: they go next
        session.commit()


def status(session: Session, *, connection_id: int) -> dict[tuple[str, str, str], int]:
    """(target, op, status) -> outbox rows, for reports and metrics."""
    return repo.counts(session, connection_id=connection_id)


def recent_failures(session: Session, *, connection_id: int, limit: int = 20) -> list[OutboxRow]:
    return repo.failures(session, connection_id=connection_id, limit=limit)


def written_for(crm: str, connection_name: str, settings: Settings) -> dict[Target, frozenset[str]]:
    """What the writer of this connection writes (HubSpot: depends on the write-back mode setting)."""
    adapter = crm_adapter(crm)
    extra = settings.extra_connection(crm, connection_name)
    if extra is not None:
        config = extra.config
    elif connection_name == "sandbox":
        config = adapter.sandbox_config("https://127.0.0.1", "", settings.sandbox)  # no call is made
    else:
        config = getattr(settings, crm, None)
    return adapter.written_fields(config)


def stage_connection(
    session: Session,
    *,
    connection: CrmConnection,
    settings: Settings,
    as_of: datetime | None = None,
    only: repo.Records | None = None,
) -> StageReport:
    """Stage the connection's computed results into the outbox (call it in the computation's transaction);
    ``only``: the CRM records an incremental computation can have changed (``records_reached``)."""
    assert connection.id is not None
    written = written_for(connection.crm, connection.name, settings)
    return stage(
        session, connection_id=connection.id, written=written, as_of=as_of,
        dashboard=settings.webhooks.public_base_url, only=only,
    )  # fmt: skip


Links = dict[str, tuple[str | None, str | None]]


def activity_links(session: Session, *, connection_id: int, ids: set[str]) -> Links:
    """Where some activities are now (opportunity, account): read before a sync moves them."""
    return repo.activity_links(session, connection_id=connection_id, ids=ids)


def records_reached(
    session: Session,
    *,
    connection_id: int,
    activities: set[str],
    opportunities: set[str],
    accounts: set[str],
    before: Links,
) -> repo.Records:
    """The CRM records whose write-back targets can differ: the given opportunities and accounts, and the records
    the given activities count for (their opportunity, else their account) now and, per ``before``, before."""
    opportunity_ids, account_ids = set(opportunities), set(accounts)
    now = repo.activity_links(session, connection_id=connection_id, ids=activities)
    for activity_id in activities:
        for opportunity_id, account_id in (now.get(activity_id, (None, None)), before.get(activity_id, (None, None))):
            if opportunity_id is not None:
                opportunity_ids.add(opportunity_id)
            elif account_id is not None:
                account_ids.add(account_id)
    return repo.Records(frozenset(opportunity_ids), frozenset(account_ids))
