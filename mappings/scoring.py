"""Scores from plain numbers: progress, grade, expected-by-now and status of a key result; objective roll-up.

- progress: 0–1 from baseline to target, clamped, direction-aware (lower-is-better targets lie below the baseline);
- grade: progress rounded to one decimal, the 0.0–1.0 OKR grade;
- expected: the share of the KR's window elapsed (linear path from baseline to target);
- status: on_track when progress ≥ on_track × expected, at_risk when ≥ at_risk × expected, else off_track;
  ``not_started`` before the window opens, ``no_data`` when there is no value yet. In the first tenth of a
  window a KR is not judged (one day into a quarter, nothing is late yet): ``too_early`` while it has made no
  progress, ``on_track`` once it has made some. Once the window has ended a KR is no longer on its way:
  ``achieved`` when it reached its target, ``missed`` when it did not (``no_data`` without a value).
- an objective's status is the worst of its key results' (``missed`` worst, ``achieved`` best, so it is
  ``achieved`` only when all its key results are); it is achieved only when all its key results are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from mappings.config import Scoring

ON_TRACK, AT_RISK, OFF_TRACK, NOT_STARTED, NO_DATA = "on_track", "at_risk", "off_track", "not_started", "no_data"
TOO_EARLY = "too_early"  # the first tenth of the window, and no progress yet: not judged
ACHIEVED, MISSED = "achieved", "missed"  # the window has ended: the target was reached, or not
STATUS_ORDER = [MISSED, OFF_TRACK, AT_RISK, NO_DATA, ON_TRACK, TOO_EARLY, NOT_STARTED, ACHIEVED]  # worst first
EARLY = 0.1


@dataclass(frozen=True)
class Score:
    value: float | None
    progress: float | None
    grade: float | None
    expected: float
    status: str
    achieved: bool


def progress(value: float | None, *, baseline: float, target: float) -> float | None:
    """0–1 from baseline to target; works for both directions because target − baseline carries the sign."""
    if value is None:
        return None
    if target == baseline:
        raise ValueError("target equals baseline")
    return min(1.0, max(0.0, (value - baseline) / (target - baseline)))


def grade(progress_value: float | None) -> float | None:
    if progress_value is None:
        return None
    return math.floor(progress_value * 10 + 0.5 + 1e-9) / 10


def elapsed_share(start: datetime, end: datetime, as_of: datetime) -> float:
    """Share of [start, end) that lies before ``as_of``, 0–1."""
    total = (end - start).total_seconds()
    if total <= 0:
        return 1.0
    return min(1.0, max(0.0, (as_of - start).total_seconds() / total))


def status(
    progress_value: float | None, expected: float, scoring: Scoring, *, started: bool, ended: bool = False
) -> str:
    if not started:
        return NOT_STARTED
    if progress_value is None:
        return NO_DATA
    if ended:  # the window is over: nothing is "on track" or "at risk" any more
        return ACHIEVED if progress_value >= 1.0 else MISSED
    if progress_value < 1.0 and expected < EARLY:  # too early to judge: nothing is late yet
        return ON_TRACK if progress_value > 0 else TOO_EARLY
    if progress_value >= 1.0 or progress_value >= scoring.on_track * expected:
        return ON_TRACK
    if progress_value >= scoring.at_risk * expected:
        return AT_RISK
    return OFF_TRACK


def score(
    value: float | None,
    *,
    baseline: float,
    target: float,
    window_start: datetime,
    window_end: datetime,
    as_of: datetime,
    scoring: Scoring,
) -> Score:
    """Everything the check-in shows for one key result."""
    # direction needs no argument: the sign of target − baseline encodes it (the config checks they agree)
    p = progress(value, baseline=baseline, target=target)
    expected = elapsed_share(window_start, window_end, as_of)
    started, ended = as_of >= window_start, as_of >= window_end
    judged = status(p, expected, scoring, started=started, ended=ended)
    return Score(value, p, grade(p), expected, judged, p is not None and p >= 1)


def objective_progress(scores: list[tuple[Score, float]]) -> float:
    """Weighted mean of the key results' progress; a KR without data counts as 0."""
    total = sum(weight for _score, weight in scores)
    return sum((s.progress or 0.0) * w for s, w in scores) / total if total else 0.0


def objective_status(scores: list[Score]) -> str:
    """The worst status of its key results: the check-in starts where the objective is weakest (``achieved`` only
    when every key result is)."""
    return min((s.status for s in scores), key=STATUS_ORDER.index)
