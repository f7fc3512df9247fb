"""One pass of the loop okrsync runs for a CRM connection: sync, recompute what changed, stage, write back.

``okrsync run`` runs it once; the sidecar's worker runs it after webhooks and on a timer. Each step commits at its
own boundary (the sync per page, the computation with its staging, the write-back per batch), so a crash at any
point resumes from stored state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import sqlmodel
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.writer import HubSpotWriter
from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.writer import SalesforceWriter
from service.compute.service import ComputeReport, changes_since_last
from service.compute.service import compute as compute_mapping
from service.crm.models import CrmConnection
from service.kit.settings import Settings
from service.okrs.models import OkrMapping
from service.sync.service import SyncReport, refresh_records, run_sync
from service.writeback.service import WritebackReport, send, stage_connection
from service.writeback.staging import StageReport

log = logging.getLogger(__name__)


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
    connector: SalesforceConnector | HubSpotConnector,
    writer: SalesforceWriter | HubSpotWriter,
    connection_name: str,
    settings: Settings,
    full: bool = False,
    targets: dict[str, set[str]] | None = None,
) -> PassReport:
    """Sync (incremental unless ``full``; with ``targets`` — stream → ids — fetch just those records), recompute
    the connection's mappings, stage and send what changed."""
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
