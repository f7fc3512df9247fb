"""Scoring edges: direction, clamping, no data, windows not started or over, thresholds, objective roll-up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mappings.config import Scoring
from mappings.scoring import (
    ACHIEVED,
    AT_RISK,
    MISSED,
    NO_DATA,
    NOT_STARTED,
    OFF_TRACK,
    ON_TRACK,
    TOO_EARLY,
    Score,
    grade,
    objective_progress,
    objective_status,
    progress,
    score,
)

START = datetime(2026, 7, 1, tzinfo=UTC)
END = datetime(2026, 10, 1, tzinfo=UTC)
HALF = START + (END - START) / 2


@pytest.mark.parametrize(
    ("value", "baseline", "target", "expected"),
    [
        (20, 0, 40, 0.5),
        (50, 0, 40, 1.0),  # above target: clamped
        (-5, 0, 40, 0.0),  # below baseline: clamped
        (36, 72, 24, 0.75),  # lower is better: 72 h → 24 h, now 36 h
        (80, 72, 24, 0.0),  # worse than the baseline
        (12, 72, 24, 1.0),  # better than the target
        (0.5, 0.2, 0.6, 0.75),
        (None, 0, 40, None),  # no data yet
    ],
    ids=["half", "over", "under", "lower-better", "lower-worse", "lower-beyond", "fractions", "no-data"],
)
def test_progress(value: float | None, baseline: float, target: float, expected: float | None) -> None:
    assert progress(value, baseline=baseline, target=target) == (None if expected is None else pytest.approx(expected))


def test_zero_width_range_is_refused() -> None:
    with pytest.raises(ValueError, match="target equals baseline"):
        progress(5, baseline=10, target=10)


@pytest.mark.parametrize(
    ("p", "g"), [(0.0, 0.0), (0.04, 0.0), (0.05, 0.1), (0.649, 0.6), (0.65, 0.7), (1.0, 1.0), (None, None)]
)
def test_grade_rounds_to_one_decimal(p: float | None, g: float | None) -> None:
    assert grade(p) == g


def _score(value: float | None, as_of: datetime, *, baseline: float = 0, target: float = 100) -> Score:
    return score(
        value,
        baseline=baseline,
        target=target,
        window_start=START,
        window_end=END,
        as_of=as_of,
        scoring=Scoring(on_track=0.9, at_risk=0.6),
    )


@pytest.mark.parametrize(
    ("value", "as_of", "status", "expected"),
    [
        (50, HALF, ON_TRACK, 0.5),
        (45, HALF, ON_TRACK, 0.5),  # 0.45 ≥ 0.9 × 0.5
        (44, HALF, AT_RISK, 0.5),
        (30, HALF, AT_RISK, 0.5),  # 0.30 = 0.6 × 0.5
        (29, HALF, OFF_TRACK, 0.5),
        (0, START.replace(day=5), TOO_EARLY, None),  # the first tenth, nothing yet: not judged, not "on track"
        (3, START.replace(day=5), ON_TRACK, None),  # the first tenth with some progress: on track, never late
        (10, datetime(2026, 6, 15, tzinfo=UTC), NOT_STARTED, 0.0),  # cycle not started
        (None, HALF, NO_DATA, 0.5),
        (95, datetime(2026, 12, 1, tzinfo=UTC), MISSED, 1.0),  # cycle over: 95 of 100 is missed, not "on track"
        (50, datetime(2026, 12, 1, tzinfo=UTC), MISSED, 1.0),
        (100, datetime(2026, 12, 1, tzinfo=UTC), ACHIEVED, 1.0),
        (100, END, ACHIEVED, 1.0),  # the first moment after the window
        (95, END - timedelta(seconds=1), ON_TRACK, None),  # its last second: still on its way
        (120, datetime(2026, 7, 20, tzinfo=UTC), ON_TRACK, None),  # achieved early
    ],
    ids=[
        "on",
        "on-edge",
        "risk",
        "risk-edge",
        "off",
        "too-early",
        "early-progress",
        "not-started",
        "no-data",
        "over-almost",
        "over-off",
        "over-achieved",
        "at-the-end",
        "last-second",
        "achieved",
    ],
)
def test_status(value: float | None, as_of: datetime, status: str, expected: float | None) -> None:
    result = _score(value, as_of)
    assert result.status == status
    if expected is not None:
        assert result.expected == pytest.approx(expected)


def test_status_lower_is_better() -> None:
    assert _score(48, HALF, baseline=72, target=24).status == ON_TRACK  # progress 0.5
    assert _score(60, HALF, baseline=72, target=24).status == OFF_TRACK  # progress 0.25
    assert _score(20, HALF, baseline=72, target=24).achieved


def test_objective_achieved_only_when_every_key_result_is() -> None:
    done = _score(100, HALF)
    half = _score(50, HALF)
    none = _score(None, HALF)
    assert objective_progress([(done, 1), (half, 1)]) == pytest.approx(0.75)
    assert objective_progress([(done, 3), (half, 1)]) == pytest.approx(0.875)  # weights
    assert objective_progress([(done, 1), (none, 1)]) == pytest.approx(0.5)  # no data counts as 0
    assert all(s.achieved for s in (done,)) and not half.achieved
    assert objective_status([done, half, _score(10, HALF)]) == OFF_TRACK  # the weakest key result leads


def test_after_the_window_an_objective_is_achieved_only_when_every_key_result_is_and_a_miss_leads() -> None:
    after = datetime(2026, 10, 2, tzinfo=UTC)
    done, missed, running = _score(100, after), _score(99, after), _score(50, HALF)
    assert (done.status, missed.status) == (ACHIEVED, MISSED)
    assert objective_status([done, done]) == ACHIEVED
    assert objective_status([done, missed]) == MISSED
    assert objective_status([done, running]) == ON_TRACK  # a sprint's KR achieved, the cycle's still running
    assert objective_status([missed, running]) == MISSED
    assert _score(None, after).status == NO_DATA  # no value at all: no data, not a miss
