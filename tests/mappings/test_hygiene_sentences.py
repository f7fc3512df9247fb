"""Every hygiene sentence states the numbers that decided it, with the precision that decided it (issue 19)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mappings.hygiene import Finding, beyond, describe
from mappings.hygiene_rules import CloseDatePushed, ProbabilityMismatch, StuckInStage

AS_OF = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "limit", "shown"),
    [
        (36.4, 30, ("36", "30")),  # whole days tell it
        (30.4, 30, ("30.4", "30.0")),  # 30 days is not more than 30: one decimal does
        (75.6, 30, ("75", "30")),  # cut, never rounded up: 75.6 days are 75 whole days
        (83.86, 83.84, ("83.86", "83.84")),  # 83.8 and 83.8 are equal: two decimals
        (10.0001, 10.0, ("10.000", "10.000")),  # beyond what three decimals show: three
    ],
)
def test_beyond_shows_the_value_past_the_limit(value: float, limit: float, shown: tuple[str, str]) -> None:
    assert beyond(value, limit) == shown


def test_a_stuck_finding_by_the_team_median_never_contradicts_itself() -> None:
    # 83.4 days against 2 × 41.9 = 83.8: not stuck; 84.2 days: stuck. Rounded to whole days, the old sentence read
    # "for 84 days, more than 2× the team's median of 42 days" (84 is not more than 84)
    rule = StuckInStage(median_factor=2)
    finding = Finding(opportunity_id="O1", rule_key="stuck_in_stage", detail_number=84.2, detail_text="Proposal")
    text = describe(rule, finding, as_of=AS_OF, stage_medians={"Proposal": 41.9})
    assert text == "In stage Proposal for 84.2 days, more than 83.8 days (2× the team's median of 41.90 days)"


def test_close_date_pushed_says_from_how_many_pushes_it_flags() -> None:
    rule = CloseDatePushed(times=3)
    finding = Finding(opportunity_id="O1", rule_key="close_date_pushed", detail_number=3)
    assert describe(rule, finding, as_of=AS_OF) == "Close date pushed 3 times (flagged from 3)"


def test_a_probability_mismatch_states_the_tolerance_that_decided_it() -> None:
    rule = ProbabilityMismatch(expected={"Proposal": 75}, tolerance=5)
    finding = Finding(opportunity_id="O1", rule_key="probability_mismatch", detail_number=60, detail_text="Proposal")
    assert (
        describe(rule, finding, as_of=AS_OF)
        == "Probability 60% does not match stage Proposal (75% ± 5 points expected)"
    )
    exact = ProbabilityMismatch(expected={"Proposal": 75})
    assert describe(exact, finding, as_of=AS_OF) == "Probability 60% does not match stage Proposal (75% expected)"
