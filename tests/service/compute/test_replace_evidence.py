"""A full compute makes a key result's evidence exactly the rows its queries select (``replace_evidence``), and
writes only the difference when rows are stored: the rows it keeps keep their ids. Expectations are the rows
written here, as plain tuples; real SQLite and PostgreSQL, one session, the temporary table used several times in
one transaction and again after a rollback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Float, String, cast, literal, select, union_all
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.compute import repository as repo
from service.compute.models import KeyResultEvidence
from service.kit.db import UtcDateTime
from tests.service.compute import world

AT = datetime(2026, 9, 1, 9, 30, 0, 125_000, tzinfo=UTC)

Row = tuple[str, str, str | None, float | None, datetime | None, str | None]  # part, record, owner, value, at, related

BEFORE: list[Row] = [
    ("counted", "00T1", "005A", 1.0, AT, None),
    ("counted", "00T2", "005A", 1.0, AT + timedelta(hours=1), None),
    ("counted", "00T3", "005B", 1.0, AT + timedelta(hours=2), None),  # loses its owner
    ("counted", "00T4", None, 1.0, AT + timedelta(hours=3), None),  # gains an owner
    ("numerator", "00T5", "005A", 90.0, AT, None),  # its value changes
    ("numerator", "00T6", "005A", None, None, None),  # NULLs everywhere: the same row again
    ("pair", "00T7", "005B", None, AT, None),  # answered now
    ("pair", "00T8", "005B", 60.5, AT, "00T9"),  # leaves
]
AFTER: list[Row] = [
    ("counted", "00T1", "005A", 1.0, AT, None),
    ("counted", "00T2", "005A", 1.0, AT + timedelta(hours=1), None),
    ("counted", "00T3", None, 1.0, AT + timedelta(hours=2), None),
    ("counted", "00T4", "005B", 1.0, AT + timedelta(hours=3), None),
    ("numerator", "00T5", "005A", 120.0, AT, None),
    ("numerator", "00T6", "005A", None, None, None),
    ("pair", "00T7", "005B", 3600.0, AT, "00TA"),
    ("denominator", "00TB", "005C", 1.0, AT, None),  # new
]
KEPT = {"00T1", "00T2", "00T6"}  # the same in both: never rewritten


def _query(rows: list[Row]) -> Any:
    """The rows as an evidence query (the columns a metric's evidence query selects)."""
    selects = [
        select(
            literal(part, String).label("part"),
            literal(record, String).label("record_id"),
            literal(owner, String).label("owner_id"),
            cast(literal(value, Float), Float).label("value"),
            literal(at, UtcDateTime).label("occurred_at"),
            literal(related, String).label("related_id"),
        )
        for part, record, owner, value, at, related in rows
    ]
    return union_all(*selects)


def _stored(session: Session, mapping_id: int, kr_key: str) -> dict[Row, int]:
    e = repo.EVIDENCE
    found = session.execute(
        select(e.c.id, *repo.ROW_COLUMNS).where(e.c.mapping_id == mapping_id, e.c.kr_key == kr_key)
    ).all()
    rows = {tuple(r[1:]): r[0] for r in found}
    assert len(rows) == len(found), "a row stored twice"
    return rows  # type: ignore[return-value]


@pytest.fixture
def mapping_id(engine: Engine) -> int:
    with Session(engine) as session:
        mapping_id = world.applied_example(session, connection_name="replace", example="customer-care.yaml", as_of=AT)
        session.add(KeyResultEvidence(mapping_id=mapping_id, kr_key="other", part="counted", record_id="00T1"))
        session.commit()
        return mapping_id


def test_the_evidence_becomes_the_selected_rows_and_unchanged_rows_keep_their_ids(
    engine: Engine, mapping_id: int
) -> None:
    with Session(engine) as session:
        repo.replace_evidence(
            session, mapping_id=mapping_id, kr_key="k", queries=[_query(BEFORE[:5]), _query(BEFORE[5:])]
        )
        first = _stored(session, mapping_id, "k")
        assert set(first) == set(BEFORE)
        repo.replace_evidence(session, mapping_id=mapping_id, kr_key="k", queries=[_query(AFTER)])
        second = _stored(session, mapping_id, "k")
        assert set(second) == set(AFTER)
        assert {row[1] for row, id_ in second.items() if first.get(row) == id_} == KEPT
        # the same rows again: nothing written, every id kept
        repo.replace_evidence(
            session, mapping_id=mapping_id, kr_key="k", queries=[_query(AFTER[:3]), _query(AFTER[3:])]
        )
        assert _stored(session, mapping_id, "k") == second
        session.commit()
    with Session(engine) as session:  # a rolled-back transaction, then the temporary table is used again
        repo.replace_evidence(session, mapping_id=mapping_id, kr_key="k", queries=[_query(BEFORE)])
        session.rollback()
        assert set(_stored(session, mapping_id, "k")) == set(AFTER)
        repo.replace_evidence(session, mapping_id=mapping_id, kr_key="k", queries=[_query(BEFORE)])
        assert set(_stored(session, mapping_id, "k")) == set(BEFORE)
        repo.replace_evidence(session, mapping_id=mapping_id, kr_key="k", queries=[])  # nothing selected now
        assert _stored(session, mapping_id, "k") == {}
        assert list(_stored(session, mapping_id, "other")) == [("counted", "00T1", None, None, None, None)]
        session.commit()
