"""A slice of a key result's answered waits in ascending order (``repository.waits_slice``: what a percentile's
neighbours are read with) equals the same slice of the waits sorted in plain Python, for every offset and length,
one owner's, nobody's and the whole team's, whether the database walks the index from the bottom or from the top
(an upper-half slice). Real SQLite and PostgreSQL; ties, unanswered inquiries (NULL) and another key result's rows
are in the table to be left out."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.compute import repository as repo
from service.compute.models import KeyResultEvidence
from tests.service.compute import world

AS_OF = datetime(2026, 9, 30, 18, tzinfo=UTC)
OWNERS = ["005A", "005B", None]


def _waits() -> list[tuple[str | None, float | None]]:
    """(owner, seconds or None while unanswered): 23 for 005A, 9 for 005B, 4 for nobody, ties among them."""
    pick = random.Random(7)
    rows: list[tuple[str | None, float | None]] = []
    for owner, n in (("005A", 23), ("005B", 9), (None, 4)):
        rows += [(owner, float(pick.choice([60, 61, 3600, 7200.5]) + pick.randrange(0, 5))) for _ in range(n)]
        rows.append((owner, None))
    return rows


@pytest.fixture
def mapping_id(engine: Engine) -> int:
    with Session(engine) as session:
        mapping_id = world.applied_example(session, connection_name="slices", example="customer-care.yaml", as_of=AS_OF)
        for number, (owner, wait) in enumerate(_waits()):
            session.add(
                KeyResultEvidence(
                    mapping_id=mapping_id, kr_key="k", part="pair", record_id=f"00T{number:015d}",
                    owner_id=owner, value=wait, occurred_at=AS_OF - timedelta(days=3, minutes=number),
                )
            )  # fmt: skip
        # another key result's waits, smaller and larger than all of these: never in a slice
        for number, wait in enumerate([1.0, 10.0**7]):
            session.add(
                KeyResultEvidence(
                    mapping_id=mapping_id, kr_key="other", part="pair", record_id=f"00T9{number}",
                    owner_id="005A", value=wait, occurred_at=AS_OF - timedelta(days=1),
                )
            )  # fmt: skip
        session.commit()
        return mapping_id


@pytest.mark.parametrize("owner", [*OWNERS, "team"])
def test_every_slice_of_the_answered_waits_is_the_sorted_waits_slice(
    engine: Engine, mapping_id: int, owner: str | None
) -> None:
    who = None if owner == "team" else owner
    expected = sorted(w for o, w in _waits() if w is not None and (who is None and owner == "team" or o == who))
    total = len(expected)
    assert total in (36, 23, 9, 4)
    with Session(engine) as session:
        for offset in range(total):
            for count in range(1, total - offset + 1):
                got = repo.waits_slice(
                    session, mapping_id=mapping_id, kr_key="k", owner=None if owner == "team" else (owner or ""),
                    offset=offset, count=count, total=total,
                )  # fmt: skip
                assert got == expected[offset : offset + count], (offset, count)
