"""The loop okrsync runs for each CRM connection — the product's spine. One pass:

1. **Sync** (``service.sync``): pull what changed in the CRM into the local model, incrementally from the stored
   cursors (``full``: everything, sweeping what the CRM no longer has); after webhooks, just the records they name
   (``targets``: stream → ids, a targeted refresh). Each page commits on its own, so a crash resumes from the last
   committed page.
2. **Recompute** (``service.compute`` over the pure engine in ``mappings/``): every applied mapping of the
   connection, incrementally from the records the sync changed (``full``: from scratch).
3. **Stage** (``service.writeback.staging``): the results that changed go to the outbox, in the computation's
   transaction, so a result is never computed without being staged.
4. **Write back** (``service.writeback.service.send``): the outbox goes to the CRM's custom objects and fields
   through the CRM adapter's writer, per batch, so reps see key-result progress in the records they work in.

Data flows one way: CRM → connectors → local model → mappings → outbox → CRM. The CRM-specific parts (connector and
writer) come from the connection's adapter (``connectors.registry``); nothing here names a CRM.

Who runs it: ``okrsync run`` once (``service/writeback/commands.py``), the sidecar's worker after webhooks and on a
timer (``service/webhooks/tasks.py``), ``okrsync demo`` and the benches.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

import sqlmodel
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.writes import Writer
from service.compute.service import ChangeSet, ComputeReport, changes_since_last
from service.compute.service import compute as compute_mapping
from service.crm.models import CrmConnection
from service.kit.settings import Settings
from service.okrs.models import OkrMapping
from service.sync.service import FetchConnector, PullConnector, SyncReport, refresh_records, run_sync
from service.writeback.repository import Records
from service.writeback.service import Links, WritebackReport, activity_links, records_reached, send, stage_connection
from service.writeback.staging import StageReport

log = logging.getLogger(__name__)


class LoopConnector(PullConnector, FetchConnector, Protocol):
    """A connector that pulls streams and fetches records by id (every CRM adapter's connector)."""


@dataclass
class PassReport:
    sync: SyncReport
    computed: list[tuple[str, ComputeReport]] = field(default_factory=list)  # ('team / cycle', report)
    staged: StageReport | None = None
    writeback: WritebackReport | None = None


def find_connection(session: Session, *, crm: str, name: str) -> CrmConnection | None:
    return session.exec(
        sqlmodel.select(CrmConnection).where(CrmConnection.crm == crm, CrmConnection.name == name)
    ).first()


def run_pass(
    engine: Engine,
    *,
    connector: LoopConnector,
    writer: Writer,
    connection_name: str,
    settings: Settings,
    full: bool = False,
    targets: dict[str, set[str]] | None = None,
) -> PassReport:
    """One pass (see the module docstring): sync (incremental unless ``full``; with ``targets`` just those
    records), recompute the connection's mappings, stage and send what changed."""
    before: Links | None = None
    if targets:
        before = _links_before(engine, connector, connection_name, targets)
        synced = refresh_records(engine, connector, connection_name=connection_name, targets=targets)
    else:
        synced = run_sync(engine, connector, connection_name=connection_name, full=full)
    report = PassReport(sync=synced)
    with Session(engine) as session:
        connection = find_connection(session, crm=connector.crm, name=connection_name)
        assert connection is not None and connection.id is not None  # the sync created it
        mappings = session.exec(
            sqlmodel.select(OkrMapping).where(OkrMapping.connection_id == connection.id, OkrMapping.current_version > 0)
        ).all()
        changed: list[ChangeSet | None] = []
        for mapping in mappings:
            changes = None if full else changes_since_last(session, mapping)
            changed.append(changes)
            name = f"{mapping.team} / {mapping.cycle}"
            report.computed.append((name, compute_mapping(session, mapping=mapping, changes=changes)))
        only = _narrowing(session, connection.id, before, changed, [r for _n, r in report.computed])
        report.staged = stage_connection(session, connection=connection, settings=settings, only=only)
        session.commit()
        connection_id = connection.id
    report.writeback = send(engine, writer, connection_id=connection_id)
    return report


def _links_before(
    engine: Engine, connector: LoopConnector, connection_name: str, targets: dict[str, set[str]]
) -> Links:
    """Where the activities a targeted refresh will re-read are now: a contribution they leave must be restaged."""
    ids = {i for stream, stream_ids in targets.items() if connector.kind_of(stream) == "activity" for i in stream_ids}
    with Session(engine) as session:
        connection = find_connection(session, crm=connector.crm, name=connection_name)
        if connection is None or connection.id is None:
            return {i: (None, None) for i in ids}
        links = activity_links(session, connection_id=connection.id, ids=ids)
    return {i: links.get(i, (None, None)) for i in ids}  # an activity not stored yet was nowhere


def _narrowing(
    session: Session,
    connection_id: int,
    before: Links | None,
    changed: list[ChangeSet | None],
    computed: list[ComputeReport],
) -> Records | None:
    """The CRM records a targeted pass's staging can be narrowed to, or None (stage everything): every mapping was
    computed incrementally with what it touched known, and every changed activity's earlier place was read before
    the refresh (an activity re-read for another reason, e.g. an account restored, may have left a record unseen)."""
    if before is None or not computed:
        return None
    touched = [r.touched for r in computed]
    if any(t is None for t in touched) or any(c is None for c in changed):
        return None
    activities = {i for c in changed if c is not None for i in c.activity}
    if activities - set(before):
        return None
    return records_reached(
        session,
        connection_id=connection_id,
        activities=activities | {i for t in touched if t is not None for i in t.activities},
        opportunities={i for c in changed if c is not None for i in c.opportunity}
        | {i for t in touched if t is not None for i in t.opportunities},
        accounts={i for c in changed if c is not None for i in c.account}
        | {i for t in touched if t is not None for i in t.accounts},
        before=before,
    )
