"""A synced, computed okrsync on the sandbox CRM, ready to write back: the examples applied as of the quarter's end."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlmodel
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.salesforce.connector import SalesforceConnector
from connectors.sandbox.salesforce_metadata import DEFAULT_METADATA_DIR, load_metadata
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from service.compute.service import changes_since_last, compute
from service.crm.models import CrmConnection
from service.kit.settings import Settings
from service.okrs import service as okrs
from service.okrs.models import OkrMapping
from service.sync.service import run_sync
from service.writeback.models import OutboxRow
from service.writeback.service import stage_connection
from service.writeback.staging import StageReport
from tests.conftest import ANCHOR, small_org

EXAMPLES = Path(__file__).resolve().parents[3] / "mappings" / "examples"
SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]


def deployed_org(**sizes: int) -> SandboxOrg:
    """A small sandbox org with okrsync's metadata deployed (as an admin would with `sf project deploy`)."""
    org = small_org(**sizes)
    org.deploy_metadata(load_metadata(DEFAULT_METADATA_DIR))
    return org


def connection(session: Session, crm: str) -> CrmConnection:
    found = session.exec(
        sqlmodel.select(CrmConnection).where(CrmConnection.crm == crm, CrmConnection.name == "sandbox")
    ).one()
    return found


def apply_examples(
    engine: Engine, crm: str, examples: tuple[str, ...], *, as_of: datetime = ANCHOR, settings: Settings = SETTINGS
) -> StageReport:
    """Apply and compute the example mappings, then stage their results, in one transaction (as the CLI does)."""
    with Session(engine) as session:
        conn = connection(session, crm)
        for example in examples:
            loaded = okrs.load_path(EXAMPLES / f"{example}.yaml")
            mapping, _version = okrs.apply(session, loaded, connection=conn, author="test", reason="test", now=as_of)
            compute(session, mapping=mapping, as_of=as_of)
        report = stage_connection(session, connection=conn, settings=settings, as_of=as_of)
        session.commit()
        return report


def recompute(engine: Engine, crm: str, *, as_of: datetime = ANCHOR, settings: Settings = SETTINGS) -> StageReport:
    """Incremental compute of every mapping, then staging (what `okrsync run` does after a sync)."""
    with Session(engine) as session:
        conn = connection(session, crm)
        for mapping in session.exec(sqlmodel.select(OkrMapping).where(OkrMapping.connection_id == conn.id)).all():
            compute(session, mapping=mapping, as_of=as_of, changes=changes_since_last(session, mapping))
        report = stage_connection(session, connection=conn, settings=settings, as_of=as_of)
        session.commit()
        return report


def outbox(engine: Engine, **where: Any) -> list[OutboxRow]:
    with Session(engine) as session:
        query = sqlmodel.select(OutboxRow)
        for name, value in where.items():
            query = query.where(getattr(OutboxRow, name) == value)
        return list(session.exec(query).all())


@dataclass
class SalesforceWorld:
    org: SandboxOrg
    server: SandboxServer
    engine: Engine


def start_salesforce(stack: ExitStack, engine: Engine, tmp_path: Path, org: SandboxOrg, config: Any) -> SalesforceWorld:
    server = stack.enter_context(SandboxServer(org, cert_dir=tmp_path / "sandbox"))
    run_sync(engine, SalesforceConnector(config(server)), connection_name="sandbox")
    return SalesforceWorld(org, server, engine)


def log_counted_meeting(engine: Engine, org: SandboxOrg, *, kr_key: str = "discovery-meetings") -> dict[str, Any]:
    """A rep logs one more meeting like one that counts for ``kr_key`` (a copy of its Event) in the sandbox org."""
    from service.compute.models import KeyResultEvidence

    with Session(engine) as session:
        counted = session.exec(
            sqlmodel.select(KeyResultEvidence.record_id).where(
                KeyResultEvidence.kr_key == kr_key, KeyResultEvidence.part == "counted"
            )
        ).first()
    meeting = org.get("Event", counted or "")
    assert meeting is not None, f"no Event counts for {kr_key}"
    audit = ("Id", "CreatedDate", "LastModifiedDate", "SystemModstamp")
    return org.insert("Event", {k: v for k, v in meeting.items() if k not in audit})
