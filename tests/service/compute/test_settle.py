"""After a full compute has committed, the service lets the database catch up on the evidence rows it wrote
(``compute.service.settle``): on PostgreSQL their pages are then all-visible (VACUUM), which is what makes an
evidence page an index-only walk; after an incremental compute nothing is done. SQLite has no visibility map: nothing
to do, and nothing fails. Real SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.compute.models import KeyResultEvidence
from service.compute.service import ComputeReport, settle
from service.okrs import service as okrs
from service.sync.repository import get_or_create_connection

AT = datetime(2026, 9, 30, 18, 0, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parents[3] / "mappings" / "examples" / "customer-care.yaml"


def _report(kind: str) -> ComputeReport:
    return ComputeReport(
        computation_id=1, kind=kind, recomputed=[], opportunities_rechecked=None, seconds=0.0, missing_members=[]
    )


def _all_visible_pages(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(text("SELECT relallvisible FROM pg_class WHERE relname = 'key_result_evidence'")).scalar()
        )


def test_a_full_compute_is_settled_an_incremental_one_is_not(engine: Engine) -> None:
    with Session(engine) as session:
        connection = get_or_create_connection(session, crm_name="salesforce", name="settle")
        mapping, _ = okrs.apply(session, okrs.load_path(EXAMPLE), connection=connection, author="t", now=AT)
        session.add_all(
            KeyResultEvidence(mapping_id=mapping.id, kr_key="k", part="counted", record_id=f"00T{n:015d}", value=1.0)
            for n in range(2000)
        )
        session.commit()
    if engine.dialect.name != "postgresql":
        settle(engine, [_report("full")])  # nothing to do on SQLite, and it must not fail
        return
    settle(engine, [_report("incremental")])
    assert _all_visible_pages(engine) == 0  # written, never vacuumed: an index walk must visit every row
    settle(engine, [_report("incremental"), _report("full")])
    assert _all_visible_pages(engine) > 0
