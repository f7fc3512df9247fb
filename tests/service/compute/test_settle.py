"""After a transaction that ran a full compute has committed, the service lets the database catch up on the
evidence rows it wrote (``compute.service.settle_on_commit``, registered by ``compute`` itself so that every caller
gets it: the loop, ``okrsync compute``, the API's apply, a KAM assessment, a check-in). On PostgreSQL that is a
VACUUM (ANALYZE) of the evidence and findings tables: their pages become all-visible, which is what makes an
evidence page an index-only walk. Once per transaction, however many mappings it computed in full; never after an
incremental compute; never when the transaction rolls back (a preview). SQLite has no visibility map: nothing to do,
and nothing fails. Real SQLite and PostgreSQL; the VACUUMs are counted by PostgreSQL's own statistics
(``pg_stat_user_tables.vacuum_count``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.compute.models import KeyResultEvidence
from service.compute.service import ChangeSet, compute
from service.okrs import service as okrs
from service.okrs.models import OkrMapping
from service.sync.repository import get_or_create_connection

AT = datetime(2026, 9, 30, 18, 0, tzinfo=UTC)
EXAMPLES = Path(__file__).resolve().parents[3] / "mappings" / "examples"


def _vacuums(engine: Engine) -> tuple[int, int]:
    """How often PostgreSQL has vacuumed the evidence table, and how many of its pages are all-visible."""
    with engine.connect() as conn:  # a new connection: statistics are read once per transaction
        row = conn.execute(
            text(
                "SELECT s.vacuum_count, c.relallvisible FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
                " WHERE s.relname = 'key_result_evidence' AND s.schemaname = current_schema()"
            )
        ).one()
        return int(row[0]), int(row[1])


def _mappings(engine: Engine) -> list[int]:
    with Session(engine) as session:
        connection = get_or_create_connection(session, crm_name="salesforce", name="settle")
        ids = []
        for name in ("customer-care", "acquisition", "pipeline-hygiene"):
            mapping, _ = okrs.apply(
                session, okrs.load_path(EXAMPLES / f"{name}.yaml"), connection=connection, author="t", now=AT
            )
            ids.append(mapping.id or 0)
        session.add_all(  # rows of a mapping never computed here: a vacuumed page of them stays all-visible
            KeyResultEvidence(mapping_id=ids[2], kr_key="k", part="counted", record_id=f"00T{n:015d}", value=1.0)
            for n in range(2000)
        )
        session.commit()
    return ids[:2]


def _compute(engine: Engine, ids: list[int], *, changes: ChangeSet | None, commit: bool) -> list[str]:
    with Session(engine) as session:
        kinds = [
            compute(session, mapping=session.get(OkrMapping, i), as_of=AT, changes=changes).kind  # type: ignore[arg-type]
            for i in ids
        ]
        if commit:
            session.commit()
        else:
            session.rollback()
        session.commit()  # a later commit in the same session: nothing left to settle
    return kinds


def test_a_committed_full_compute_is_settled_once_and_nothing_else_is(engine: Engine) -> None:
    ids = _mappings(engine)
    if engine.dialect.name != "postgresql":
        assert _compute(engine, ids, changes=None, commit=True) == ["full", "full"]  # nothing to do; must not fail
        return
    before, visible = _vacuums(engine)
    assert visible == 0  # written, never vacuumed: an index walk must visit every row

    assert _compute(engine, ids, changes=None, commit=False) == ["full", "full"]  # a preview
    assert _vacuums(engine) == (before, 0)

    assert _compute(engine, ids, changes=None, commit=True) == ["full", "full"]
    after, visible = _vacuums(engine)
    assert after == before + 1  # two mappings, one transaction: one VACUUM
    assert visible > 0

    assert _compute(engine, ids, changes=ChangeSet(activity={"00T000000000000001"}), commit=True) == [
        "incremental",
        "incremental",
    ]
    assert _vacuums(engine)[0] == after

    assert _compute(engine, ids[:1], changes=None, commit=True) == ["full"]
    assert _vacuums(engine)[0] == after + 1
