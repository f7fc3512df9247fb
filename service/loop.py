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
from service.compute.service import ComputeReport, changes_since_last
from service.compute.service import compute as compute_mapping
from service.crm.models import CrmConnection
from service.kit.settings import Settings
from service.okrs.models import OkrMapping
from service.sync.service import FetchConnector, PullConnector, SyncReport, refresh_records, run_sync
from service.writeback.service import WritebackReport, send, stage_connection
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
    if targets:
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
        for mapping in mappings:
            changes = None if full else changes_since_last(session, mapping)
            name = f"{mapping.team} / {mapping.cycle}"
            report.computed.append((name, compute_mapping(session, mapping=mapping, changes=changes)))
        report.staged = stage_connection(session, connection=connection, settings=settings)
        session.commit()
        connection_id = connection.id
    report.writeback = send(engine, writer, connection_id=connection_id)
    return report
