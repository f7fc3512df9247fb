"""The median days in stage per stage (hygiene's stuck-in-stage rule against the team median) taken from each
stage's one or two middle ages (``hygiene.stage_counts`` and ``hygiene.stage_middle``, an index walk) equal the
median of all the stage's ages: exactly the median of the ages ``hygiene.stage_ages`` gives, and to the microsecond
what a person works out from the opportunities' entry times. Real SQLite and PostgreSQL, Hypothesis-generated
pipelines with ties, odd and even counts, stages without a name or named "", closed, deleted and other owners'
opportunities."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session

from mappings import hygiene
from mappings.sql import Scope
from service.compute.repository import local_tables
from service.crm.models import Opportunity
from service.sync.repository import get_or_create_connection

AS_OF = datetime(2026, 9, 30, 18, 0, 0, 250_000, tzinfo=UTC)
DAY_START = datetime(2026, 9, 30, tzinfo=UTC)  # hygiene counts days in stage to the start of the day
TEAM = ("005A", "005B")
STAGES = ["Prospecting", "Negotiation", None, ""]  # no stage and "" are one stage, ""

# (owner, stage, minutes in stage or None for no entry time, closed, deleted); minutes from a small range so that
# equal entry times (equal ages) are common, with a fraction of a second now and then
OPPORTUNITY = st.tuples(
    st.sampled_from([*TEAM, "005X"]),
    st.sampled_from(STAGES),
    st.one_of(st.none(), st.integers(0, 40).map(lambda m: m * 1440.0), st.floats(0, 60_000).map(lambda m: round(m, 4))),
    st.booleans(),
    st.booleans(),
)


def _medians_from_middles(session: Session, scope: Scope) -> dict[str, float]:
    tables = local_tables()
    out: dict[str, float] = {}
    for stage, count in session.execute(hygiene.stage_counts(tables, scope)).all():
        middle = [float(d) for (d,) in session.execute(hygiene.stage_middle(tables, scope, stage, int(count)))]
        out[stage] = hygiene.median(middle)
    return out


def _medians_from_all_ages(session: Session, scope: Scope) -> dict[str, float]:
    ages: dict[str, list[float]] = {}
    for stage, days in session.execute(hygiene.stage_ages(local_tables(), scope)).all():
        ages.setdefault(stage or "", []).append(float(days))
    return {stage: hygiene.median(values) for stage, values in ages.items()}


@settings(max_examples=40, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pipeline=st.lists(OPPORTUNITY, max_size=30))
# opportunities without a stage and in one named "": four ages of stage "", an even count
@example(
    pipeline=[
        ("005A", "", 10.0, False, False),
        ("005B", None, 20.0, False, False),
        ("005A", None, 5.0, False, False),
        ("005A", "", 7.5, False, False),
    ]
)
def test_stage_medians_from_the_middle_equal_the_median_of_all_ages(engine: Engine, pipeline: list[Any]) -> None:
    with Session(engine) as session:
        connection = get_or_create_connection(session, crm_name="salesforce", name="medians")
        assert connection.id is not None
        session.execute(delete(Opportunity))
        for number, (owner, stage, minutes, closed, deleted) in enumerate(pipeline):
            session.add(
                Opportunity(
                    connection_id=connection.id, external_id=f"006{number:015d}", crm_object="Opportunity",
                    modified_at=AS_OF, synced_at=AS_OF, owner_id=owner, stage=stage, is_closed=closed,
                    is_deleted=deleted,
                    stage_entered_at=None if minutes is None else AS_OF - timedelta(minutes=minutes),
                )
            )  # fmt: skip
        session.commit()
        scope = Scope.for_window(
            connection_id=connection.id, crm="salesforce", owner_ids=TEAM, first_day=AS_OF.date() - timedelta(days=90),
            last_day=AS_OF.date(), as_of=AS_OF, raw_prefix="",
        )  # fmt: skip
        got = _medians_from_middles(session, scope)
        assert got == _medians_from_all_ages(session, scope)  # exactly: the same values of the same SQL
    # by hand: per stage, the ages of the team's open opportunities with an entry time, in days up to the start of
    # the computation's day (00:00 UTC; entries later that day have negative ages)
    by_hand: dict[str, list[float]] = {}
    for owner, stage, minutes, closed, deleted in pipeline:
        if owner in TEAM and minutes is not None and not closed and not deleted:
            entered = AS_OF - timedelta(minutes=minutes)
            by_hand.setdefault(stage or "", []).append((DAY_START - entered).total_seconds() / 86400)
    assert set(got) == set(by_hand)
    for stage, ages in by_hand.items():
        assert got[stage] == pytest.approx(statistics.median(ages), abs=1e-9), stage
