"""After a full compute that wrote many evidence rows the planner knows the evidence table's size.

A first full compute fills the evidence table from nothing; without fresh statistics PostgreSQL kept planning for an
empty table and walked a key result's every row per look-up (an incremental run took 8.9 s at a million
activities). A computation that writes 5,000 evidence rows or more (the sync's threshold) analyzes the tables it
filled.
"""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.salesforce.config import SalesforceConfig
from connectors.sandbox.store import SandboxOrg
from service.compute.models import KeyResultEvidence
from service.compute.service import compute
from service.okrs import service as okrs
from tests.conftest import ANCHOR, small_org
from tests.service.compute.test_incremental import MAPPINGS, _sync

pytestmark = pytest.mark.slow  # syncs an org of 16,000 activities


@pytest.fixture
def org() -> SandboxOrg:
    return small_org(activities=16_000, opportunities=300, accounts=60)


def _planned_rows(engine: Engine, table: str) -> int:
    """The row count the planner believes ``table`` has (SQLite: sqlite_stat1; PostgreSQL: pg_class.reltuples)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            if not conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").scalar():
                return 0  # nothing was ever analyzed
            stats = conn.exec_driver_sql("SELECT stat FROM sqlite_stat1 WHERE tbl = ?", (table,)).scalars().all()
            return max((int(str(stat).split()[0]) for stat in stats), default=0)
        found = conn.exec_driver_sql("SELECT reltuples FROM pg_class WHERE relname = %(t)s", {"t": table}).scalar()
        return max(0, int(found or 0))


def test_a_full_compute_that_writes_much_evidence_refreshes_the_planners_statistics(
    engine: Engine, config: SalesforceConfig
) -> None:
    _sync(engine, config)
    assert _planned_rows(engine, "key_result_evidence") == 0  # the sync analyzed it empty
    written = 0
    with Session(engine) as session:
        connection = okrs.resolve_connection(session, "salesforce/sandbox")
        for path in MAPPINGS:
            mapping, _ = okrs.apply(session, okrs.load_path(path), connection=connection, author="test", now=ANCHOR)
            compute(session, mapping=mapping, as_of=ANCHOR)
            written = max(
                written,
                len(session.exec(select(KeyResultEvidence).where(KeyResultEvidence.mapping_id == mapping.id)).all()),
            )
            session.commit()
            if written >= 5_000:
                break
    assert written >= 5_000, f"no example wrote 5,000 evidence rows ({written}): the test needs a larger org"
    assert _planned_rows(engine, "key_result_evidence") >= 5_000
