"""Key results that will read every activity of the team in their window: warnings for ``mappings validate``.

The activity table is searched by (connection, owner, activity kind, time): a count, sum or ratio part over
activities with an ``activity_kind`` eq/in condition reads only those kinds of the
members' activities in the window; one without it reads all of them and tests the rest of its filter on each. That
is correct, only slow at scale: at 1,000,000 activities a full compute reads the cycle's whole activity history once
for such a key result (``python -m bench compute`` shows what each costs). Conditions no index can answer
(``contains``/``not_contains``/``starts_with`` on text, custom and raw CRM fields, fields of related records) are
named in the warning, since those are what it then evaluates on every activity it reads.
"""

from __future__ import annotations

from mappings.config import (
    Counted,
    CountMetric,
    DateField,
    MappingConfig,
    RatioMetric,
    SumMetric,
)
from mappings.filters import TEXT_OPS, AnyOf, Condition, FieldCondition, Op

Loc = tuple[str | int, ...]
NARROWING_OPS = {Op.eq, Op.in_}


def _narrowed(where: list[Condition]) -> bool:
    """Whether a top-level condition restricts the activity kinds (what the index can seek on)."""
    return any(isinstance(c, FieldCondition) and c.field == "activity_kind" and c.op in NARROWING_OPS for c in where)


def _unindexed(where: list[Condition]) -> list[str]:
    """The conditions evaluated on each activity read: text searches and fields outside the activity row."""
    found: list[str] = []
    for condition in where:
        alternatives = condition.any_of if isinstance(condition, AnyOf) else [condition]
        for c in alternatives:
            if not isinstance(c, FieldCondition):
                continue
            if c.op in TEXT_OPS or "." in c.field:
                found.append(f"{c.field} {c.op.value}")
    return found


def _activity_filters(metric: object) -> list[tuple[Loc, list[Condition]]]:
    """The filters of ``metric`` that select activities from the activity table, with where each sits."""
    if isinstance(metric, CountMetric | SumMetric):
        return [(("where",), metric.where)] if metric.of == Counted.activities else []
    if isinstance(metric, RatioMetric):
        return [
            ((name, "where"), part.where)
            for name, part in (("numerator", metric.numerator), ("denominator", metric.denominator))
            if part.of == Counted.activities
        ]
    return []  # a response time's inquiries are searched by their kinds (inquiry_kinds) already


def _by_creation(metric: object) -> list[Loc]:
    """Where ``metric`` counts activities by their creation time (``date_field: created_at``)."""
    parts: list[tuple[Loc, object]] = [((), metric)]
    if isinstance(metric, RatioMetric):
        parts = [(("numerator",), metric.numerator), (("denominator",), metric.denominator)]
    return [
        (*loc, "date_field")
        for loc, part in parts
        if isinstance(part, CountMetric | SumMetric)
        and part.of == Counted.activities
        and part.date_field == DateField.created_at
    ]


def scan_warnings(config: MappingConfig) -> list[tuple[Loc, str]]:
    """(location, message) for each filter that will read every team activity in its key result's window, and each
    key result that counts activities by their creation time (no index finds the ones created since the last
    computation: an incremental computation later in the day reads every activity's ``created_at``)."""
    warnings: list[tuple[Loc, str]] = []
    for oi, objective in enumerate(config.objectives):
        for ki, kr in enumerate(objective.key_results):
            for loc in _by_creation(kr.metric):
                warnings.append(
                    (
                        ("objectives", oi, "key_results", ki, "metric", *loc),
                        f"key result {kr.key} counts activities by created_at: every incremental computation later "
                        "in the day reads all activities' creation times to find those created since the last one "
                        "(about 0.6 s at a million activities on SQLite). It computes correctly. occurred_at and "
                        "completed_at are indexed.",
                    )
                )
            for loc, where in _activity_filters(kr.metric):
                if _narrowed(where):
                    continue
                tested = _unindexed(where)
                then = f", and tests {', '.join(tested)} on each" if tested else ""
                warnings.append(
                    (
                        ("objectives", oi, "key_results", ki, "metric", *loc),
                        f"key result {kr.key} reads every activity of the team in its window{then}: no "
                        "activity_kind eq/in condition narrows it. It computes correctly; at a million activities "
                        "each full compute pays for it. Add {field: activity_kind, op: in, value: [...]} if only "
                        "some kinds count.",
                    )
                )
    return warnings
