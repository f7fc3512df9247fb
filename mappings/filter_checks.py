"""A filter checked without a database: each condition's field against the field catalogue (canonical, custom or
``raw.``), its operator and value against the field's type, and the filter's size against the limits.

``mappings.config`` checks the filters of metrics, sprints and the key-account scope with it; a hygiene rule or KAM
criterion that carries a filter (``hygiene_rules.CustomRule``, ``kam_criteria.ActivityOnAccount``) checks its own,
so this module sits below all three and imports none of them.
"""

from __future__ import annotations

from mappings.fields import CustomField, FieldType, RecordType, UnknownField, resolve
from mappings.filters import AnyOf, Condition, FieldCondition, FollowedByCondition, conditions_fields
from mappings.limits import MAX_CONDITIONS, MAX_VALUES
from mappings.values import value_problem


def check_filter(where: list[Condition], record: RecordType, custom: dict[str, CustomField]) -> list[tuple[int, str]]:
    """Problems of a filter against the field catalogue and the limits, each with the index of its condition."""
    problems: list[tuple[int, str]] = []
    conditions = values = 0
    for n, condition in enumerate(where):
        inners = [(inner, record) for inner in conditions_fields([condition])]
        if isinstance(condition, FollowedByCondition):
            if record != RecordType.activity:
                problems.append((n, "followed_by applies to activities only"))
            inners += [(inner, RecordType.opportunity) for inner in condition.followed_by.where]
        for inner, on in inners:
            problems.extend((n, p) for p in _check_field(inner, on, custom))
        before = conditions, values
        conditions += len(inners) + isinstance(condition, AnyOf | FollowedByCondition)
        values += sum(len(c.value) if isinstance(c.value, list) else 1 for c, _on in inners)
        if conditions > MAX_CONDITIONS >= before[0]:
            problems.append((n, f"a filter has at most {MAX_CONDITIONS} conditions, counting any_of alternatives"))
        if values > MAX_VALUES >= before[1]:
            problems.append((n, f"a filter has at most {MAX_VALUES:,} values, counting each item of in/not_in lists"))
    return problems


def _check_field(condition: FieldCondition, record: RecordType, custom: dict[str, CustomField]) -> list[str]:
    try:
        resolved = resolve(condition.field, record, custom)
    except UnknownField as exc:
        return [str(exc)]
    ordered = condition.op.value in {"gt", "gte", "lt", "lte"}
    if ordered and resolved.kind == "canonical" and resolved.type in (FieldType.text, FieldType.boolean):
        return [f"{condition.field} is {resolved.type.value}; {condition.op.value} needs a number or date field"]
    if condition.op.value in ("is_true", "is_false") and resolved.type != FieldType.boolean and resolved.kind != "raw":
        return [f"{condition.field} is {resolved.type.value}; {condition.op.value} needs a boolean field"]
    problem = value_problem(condition, resolved)
    return [problem] if problem else []
