"""A key result's evidence pages (``report.evidence``: the API, the dashboard and ``okrsync explain`` read them) list
every row once, in the written order: part, newest first, then record id; of all owners or of some. The page's ids
are found in an index first and only those rows read; the expectation here is the rows sorted by hand. Real SQLite
and PostgreSQL, Hypothesis-generated rows with equal times, equal records, rows without a time, and owners."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from service.compute import report
from service.compute.models import KeyResultEvidence
from service.okrs import service as okrs
from service.okrs.models import OkrMapping
from service.sync.repository import get_or_create_connection

AT = datetime(2026, 9, 30, 18, 0, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parents[3] / "mappings" / "examples" / "customer-care.yaml"

# (part, record, owner, minutes before AT or None for no time): few records and times, so that equal keys are common
ROW = st.tuples(
    st.sampled_from(["counted", "numerator", "denominator", "pair"]),
    st.sampled_from([f"00T{n:015d}" for n in range(6)]),
    st.sampled_from(["005A", "005B", None]),
    st.one_of(st.none(), st.integers(0, 4)),
)


def _by_hand(rows: list[Any], owners: list[str] | None, dialect: str) -> list[tuple[Any, ...]]:
    """Part ascending, time descending (without a time: last on SQLite, first on PostgreSQL, as each sorts NULL
    in a descending order), record id ascending."""
    kept = [r for r in rows if owners is None or r[2] in owners]
    none_first = dialect == "postgresql"

    def key(row: Any) -> tuple[Any, ...]:
        part, record, _owner, minutes = row
        no_time = minutes is None
        # newest first: fewer minutes before AT first
        return (part, not no_time if none_first else no_time, minutes if minutes is not None else 0, record)

    return [(part, record, owner, minutes) for part, record, owner, minutes in sorted(kept, key=key)]


@settings(max_examples=25, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(ROW, max_size=40), limit=st.sampled_from([1, 3, 7, 50]))
def test_pages_list_every_row_once_in_the_written_order(engine: Engine, rows: list[Any], limit: int) -> None:
    with Session(engine) as session:
        mapping = session.exec(select(OkrMapping)).first()
        if mapping is None:
            connection = get_or_create_connection(session, crm_name="salesforce", name="pages")
            mapping, _ = okrs.apply(session, okrs.load_path(EXAMPLE), connection=connection, author="t", now=AT)
        session.execute(delete(KeyResultEvidence))
        for part, record, owner, minutes in rows:
            at = None if minutes is None else AT - timedelta(minutes=minutes)
            session.add(
                KeyResultEvidence(
                    mapping_id=mapping.id, kr_key="k", part=part, record_id=record, owner_id=owner, occurred_at=at
                )
            )
        session.commit()
        for owners in (None, ["005A"], ["005A", "005B"]):
            listed: list[KeyResultEvidence] = []
            while True:
                total, page = report.evidence(session, mapping, "k", limit=limit, offset=len(listed), owner_ids=owners)
                assert len(page) <= limit
                if not page:
                    break
                listed += page
            assert total == len(listed)
            assert len({row.id for row in listed}) == len(listed)  # every row once
            got = [
                (
                    r.part,
                    r.record_id,
                    r.owner_id,
                    None if r.occurred_at is None else (AT - r.occurred_at) // timedelta(minutes=1),
                )
                for r in listed
            ]
            # rows equal in part, time and record may come in either order: compare what sorts
            expected = _by_hand(rows, owners, engine.dialect.name)
            assert [g[:2] + g[3:] for g in got] == [e[:2] + e[3:] for e in expected], owners
            assert sorted(got, key=repr) == sorted(expected, key=repr), owners
