"""The unanswered inquiries of a response time, summed up per owner in the database (``unanswered_waits``), equal
what a person counts from the evidence rows: how many; how many are late (waited longer than the limit by the
moment of computing, so one that has waited exactly the limit is not); the longest late wait; and, for a
percentile, every late wait. Real SQLite and PostgreSQL; the expectations are plain Python over the rows written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.compute import repository as repo
from service.compute.models import KeyResultEvidence
from tests.service.compute import world

AS_OF = datetime(2026, 9, 30, 18, 0, 0, 250_000, tzinfo=UTC)
LIMIT = 4 * 3600.0

# (owner, seconds waited by AS_OF) of unanswered inquiries: around the limit to the microsecond, and far from it
UNANSWERED = [
    ("005A", LIMIT),  # exactly the limit: not late
    ("005A", LIMIT + 0.000001),  # a microsecond more: late
    ("005A", 3 * 86400 + 0.5),
    ("005B", 60.0),
    ("005B", LIMIT - 0.000001),
    (None, 10 * 86400.0),
    (None, LIMIT + 1),
]
ANSWERED = [("005A", 120.0), ("005B", 20000.0), ("005C", 30.0)]


@pytest.fixture
def mapping_id(engine: Engine) -> int:
    with Session(engine) as session:
        mapping_id = world.applied_example(session, connection_name="sums", example="customer-care.yaml", as_of=AS_OF)
        rows = [(owner, AS_OF - timedelta(seconds=s), None) for owner, s in UNANSWERED]
        rows += [(owner, AS_OF - timedelta(days=20), s) for owner, s in ANSWERED]
        for number, (owner, arrived, wait) in enumerate(rows):
            session.add(
                KeyResultEvidence(
                    mapping_id=mapping_id, kr_key="k", part="pair", record_id=f"00T{number:015d}",
                    owner_id=owner, value=wait, occurred_at=arrived,
                )
            )  # fmt: skip
        # rows that are not this key result's unanswered pairs: never counted
        session.add(
            KeyResultEvidence(
                mapping_id=mapping_id, kr_key="other", part="pair", record_id="00T1", owner_id="005A",
                occurred_at=AS_OF - timedelta(days=9),
            )
        )  # fmt: skip
        session.commit()
        return mapping_id


def _by_hand(limit: float | None) -> dict[str, tuple[int, int, float | None, list[float]]]:
    out: dict[str, tuple[int, int, float | None, list[float]]] = {}
    for owner in {o or "" for o, _s in UNANSWERED}:
        waits = [s for o, s in UNANSWERED if (o or "") == owner]
        late = [s for s in waits if limit is None or s > limit]
        out[owner] = (len(waits), len(late), max(late) if late else None, sorted(late))
    return out


@pytest.mark.parametrize("limit", [LIMIT, None])
@pytest.mark.parametrize("with_waits", [True, False])
def test_unanswered_sums_equal_a_count_by_hand(
    engine: Engine, mapping_id: int, limit: float | None, with_waits: bool
) -> None:
    with Session(engine) as session:
        got = repo.unanswered_waits(
            session, mapping_id=mapping_id, kr_key="k", as_of=AS_OF, limit=limit, with_waits=with_waits
        )
    expected = _by_hand(limit)
    assert set(got) == set(expected)
    for owner, (count, late, longest, waits) in expected.items():
        summed = got[owner]
        assert (summed.count, summed.late) == (count, late), owner
        assert summed.longest == pytest.approx(longest, abs=1e-6) if longest is not None else summed.longest is None
        if with_waits:
            assert summed.late_waits is not None
            assert sorted(summed.late_waits) == pytest.approx(waits, abs=1e-6)
        else:
            assert summed.late_waits is None
    if limit is not None:
        assert got["005A"].late == 2 and got["005B"].late == 0  # the limit itself is not late, a microsecond more is
