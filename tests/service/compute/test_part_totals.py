"""A count, sum or ratio key result's stored part totals (``key_result_part_total``) after any sequence of
incremental swaps are exactly the totals a full recompute sums up from the evidence rows, and what a person adds up
from those rows by hand. Real SQLite and PostgreSQL; the swaps go through ``repository.swap_if_changed`` with the
rows a CRM change would select, the expectation is plain Python over the rows the test keeps."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Float, Select, String, cast, delete, false, literal, select, text, union_all
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.compute import repository as repo
from service.compute.models import KeyResultEvidence, KeyResultPartTotal
from service.kit.db import UtcDateTime, make_engine
from service.kit.migrate import alembic_config
from service.okrs import service as okrs
from service.sync.repository import get_or_create_connection

AT = datetime(2026, 8, 14, 9, 30, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parents[3] / "mappings" / "examples" / "customer-care.yaml"
RECORDS = [f"00T{n:015d}" for n in range(8)]
OWNERS = ["005A", "005B", None]
KR = "k"

# values as the CRM has them: amounts in cents, call durations in seconds, any float, and none (a sum of an empty
# field); halves of a millionth are where rounding would differ between two ways of summing
VALUES = st.one_of(
    st.integers(-(10**9), 10**9).map(lambda cents: cents / 100),
    st.integers(0, 86_400).map(float),
    st.floats(min_value=-1e7, max_value=1e7, allow_nan=False, allow_infinity=False),
    st.integers(-(10**6), 10**6).map(lambda n: n / 1_000_000 + 0.0000005),
    st.none(),
)
ROW = st.tuples(st.sampled_from(["counted", "numerator", "denominator"]), st.sampled_from(OWNERS), VALUES)
# one swap: some records, and for each the rows it has now (none: it stopped counting)
SWAP = st.dictionaries(st.sampled_from(RECORDS), st.lists(ROW, max_size=2), min_size=1, max_size=3)


@pytest.fixture
def mapping_id(engine: Engine) -> int:
    with Session(engine) as session:
        connection = get_or_create_connection(session, crm_name="salesforce", name="totals")
        mapping, _ = okrs.apply(session, okrs.load_path(EXAMPLE), connection=connection, author="test", now=AT)
        session.commit()
        assert mapping.id is not None
        return mapping.id


def _row(part: str, record: str, owner: str | None, value: float | None) -> Select[Any]:
    return select(
        literal(part).label("part"),
        literal(record).label("record_id"),
        cast(literal(owner, String), String).label("owner_id"),  # typed: PostgreSQL cannot guess a NULL's type
        cast(literal(value, Float), Float).label("value"),
        literal(AT, UtcDateTime).label("occurred_at"),
        cast(literal(None), String).label("related_id"),
    )


def _selected(rows: list[tuple[str, str, str | None, float | None]]) -> Select[Any]:
    """What an evidence query selects: (part, record, owner, value) rows as the part's SQL would give them."""
    if not rows:
        return _row("counted", "x", None, None).where(false())
    union = union_all(*(_row(*row) for row in rows)).subquery()
    return select(*union.c)


def _stored(session: Session, mapping_id: int, kr_key: str = KR) -> list[tuple[str, str, int, float]]:
    totals = repo.stored_part_totals(session, mapping_id=mapping_id, kr_key=kr_key)
    return sorted((t.part, t.owner_id or "", t.records, t.total) for t in totals)


def _by_hand(rows: dict[str, list[tuple[str, str | None, float | None]]]) -> dict[tuple[str, str], tuple[int, float]]:
    """Per (part, owner): how many rows, and the sum of their values (empty values left out), in plain Python."""
    found: dict[tuple[str, str], tuple[int, float]] = {}
    for record_rows in rows.values():
        for part, owner, value in record_rows:
            n, total = found.get((part, owner or ""), (0, 0.0))
            found[(part, owner or "")] = (n + 1, total + (value or 0.0))
    return found


@settings(
    max_examples=40,
    derandomize=True,  # the same sequences on every run and machine
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(swaps=st.lists(SWAP, min_size=1, max_size=6))
def test_stored_totals_after_swaps_equal_a_full_sum(
    engine: Engine, mapping_id: int, swaps: list[dict[str, list[tuple[str, str | None, float | None]]]]
) -> None:
    rows: dict[str, list[tuple[str, str | None, float | None]]] = {}
    with Session(engine) as session:
        for model in (KeyResultEvidence, KeyResultPartTotal):
            table = repo.table(model)
            session.execute(delete(table).where(table.c.mapping_id == mapping_id))
        repo.store_part_totals(session, mapping_id=mapping_id, kr_key=KR)
        for swap in swaps:
            records = sorted(swap)
            for part in ("counted", "numerator", "denominator"):  # _delta swaps each part of a key result
                now = [(p, record, owner, value) for record in records for p, owner, value in swap[record] if p == part]
                repo.swap_if_changed(
                    session, mapping_id=mapping_id, kr_key=KR, part=part, query=_selected(now), record_ids=records,
                    totals=True,
                )  # fmt: skip
            rows.update({record: swap[record] for record in records})
        incremental = _stored(session, mapping_id)
        repo.store_part_totals(session, mapping_id=mapping_id, kr_key=KR)  # what a full recompute stores
        assert incremental == _stored(session, mapping_id)
        grouped = sorted(
            (t.part, t.owner_id or "", t.records, t.total)
            for t in repo.part_totals(session, mapping_id=mapping_id, kr_key=KR)
        )
        assert incremental == grouped
        expected = _by_hand(rows)
        assert {(part, owner): n for part, owner, n, _total in incremental} == {k: n for k, (n, _t) in expected.items()}
        for part, owner, _n, total in incremental:  # each row rounded to a millionth: off by half of one per row
            assert total == pytest.approx(expected[(part, owner)][1], abs=1e-6 * expected[(part, owner)][0] + 1e-9)
        session.rollback()


@pytest.fixture
def at_0012(db_url: str) -> Iterator[Engine]:
    """An empty database brought to revision 0012, the one before stored part totals."""
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        command.upgrade(alembic_config(conn), "0012")
    yield engine
    engine.dispose()


def test_the_migration_sums_up_the_evidence_already_stored(at_0012: Engine) -> None:
    """A database computed before 0013 gets the totals of its count, sum and ratio key results' evidence, the same
    a full recompute would store, so its next incremental run finds them; response-time pairs and sprints (``~``
    keys) get none."""
    engine = at_0012
    with Session(engine) as session:
        connection = get_or_create_connection(session, crm_name="salesforce", name="before")
        mapping, _ = okrs.apply(session, okrs.load_path(EXAMPLE), connection=connection, author="test", now=AT)
        assert mapping.id is not None
        mapping_id = mapping.id
        evidence = [
            ("meetings", "counted", "005A", 1.0),
            ("meetings", "counted", "005A", 1.0),
            ("meetings", "counted", None, 1.0),
            ("talk", "counted", "005B", 12.345678),
            ("talk", "counted", "005B", 0.000002),
            ("talk", "counted", "005B", None),
            ("share", "numerator", "005A", 1.0),
            ("share", "denominator", "005A", 1.0),
            ("share", "denominator", "005B", 1.0),
            ("answered", "pair", "005A", 300.0),
            ("~sprint:s1", "counted", "005A", 1.0),
        ]
        for number, (kr, part, owner, value) in enumerate(evidence):
            session.add(
                KeyResultEvidence(
                    mapping_id=mapping_id, kr_key=kr, part=part, record_id=f"00T{number}", owner_id=owner,
                    value=value, occurred_at=AT,
                )
            )  # fmt: skip
        session.commit()
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    with Session(engine) as session:
        migrated = {kr: _stored(session, mapping_id, kr) for kr in ("meetings", "talk", "share", "answered")}
        assert migrated["answered"] == [] and _stored(session, mapping_id, "~sprint:s1") == []
        assert migrated["meetings"] == [("counted", "", 1, 1.0), ("counted", "005A", 2, 2.0)]
        assert migrated["talk"] == [("counted", "005B", 3, 12.34568)]  # 12,345,678 + 2 millionths; the empty one: 0
        assert migrated["share"] == [("denominator", "005A", 1, 1.0), ("denominator", "005B", 1, 1.0),
                                     ("numerator", "005A", 1, 1.0)]  # fmt: skip
        for kr in ("meetings", "talk", "share"):
            repo.store_part_totals(session, mapping_id=mapping_id, kr_key=kr)
            assert _stored(session, mapping_id, kr) == migrated[kr], kr
