"""The CRM search request of the sandbox HubSpot portal: filters, sorts and the matching of property values.

https://developers.hubspot.com/docs/guides/api/crm/search
Values compare as HubSpot compares them by property type: timestamps as instants (a filter may give epoch
milliseconds or ISO 8601), numbers as numbers, everything else as case-insensitive text.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

DATETIME_PROPERTIES = frozenset(
    {
        "createdate",
        "hs_createdate",
        "hs_lastmodifieddate",
        "lastmodifieddate",
        "closedate",
        "hs_timestamp",
        "notes_last_updated",
        "hs_meeting_start_time",
        "hs_meeting_end_time",
    }
)
OPERATORS = ("EQ", "NEQ", "GT", "GTE", "LT", "LTE", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY", "BETWEEN")


class SearchError(ValueError):
    """A search request HubSpot would refuse with 400 VALIDATION_ERROR."""


def _epoch_ms(value: str) -> float:
    text = value.strip()
    if text.lstrip("-").isdigit():
        return float(text)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp() * 1000


def comparable(name: str, value: Any) -> Any:
    """A value of property `name` in a form that orders like HubSpot orders it; None stays None."""
    if value is None:
        return None
    text = str(value)
    if name in DATETIME_PROPERTIES:
        try:
            return _epoch_ms(text)
        except ValueError:
            return text
    try:
        return float(text)
    except ValueError:
        return text.lower()


def _same_kind(left: Any, right: Any) -> bool:
    return isinstance(left, float) == isinstance(right, float)


def _filter(spec: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    name, operator = spec.get("propertyName"), str(spec.get("operator", "EQ")).upper()
    if not name or operator not in OPERATORS:
        raise SearchError(f"Invalid filter: propertyName and one of the operators {', '.join(OPERATORS)} needed")
    if operator == "HAS_PROPERTY":
        return lambda props: props.get(name) not in (None, "")
    if operator == "NOT_HAS_PROPERTY":
        return lambda props: props.get(name) in (None, "")
    if operator in ("IN", "NOT_IN"):
        wanted = {comparable(name, item) for item in spec.get("values") or []}
        inside = operator == "IN"
        return lambda props: (comparable(name, props.get(name)) in wanted) == inside
    if spec.get("value") is None:
        raise SearchError(f"Filter on {name} with operator {operator} needs a value")
    low = comparable(name, spec["value"])
    if operator == "BETWEEN":
        if spec.get("highValue") is None:
            raise SearchError(f"Filter on {name} with operator BETWEEN needs a highValue")
        high = comparable(name, spec["highValue"])

        def between(props: dict[str, Any]) -> bool:
            value = comparable(name, props.get(name))
            return value is not None and _same_kind(value, low) and low <= value <= high

        return between
    if operator == "NEQ":
        return lambda props: comparable(name, props.get(name)) != low
    tests: dict[str, Callable[[Any], bool]] = {
        "EQ": lambda value: value == low,
        "GT": lambda value: value > low,
        "GTE": lambda value: value >= low,
        "LT": lambda value: value < low,
        "LTE": lambda value: value <= low,
    }
    test = tests[operator]

    def compare(props: dict[str, Any]) -> bool:
        value = comparable(name, props.get(name))
        return value is not None and _same_kind(value, low) and test(value)

    return compare


def matcher(filter_groups: list[dict[str, Any]]) -> Callable[[dict[str, Any]], bool]:
    """A predicate over property dicts: any group matches when all its filters do (no groups: everything)."""
    if len(filter_groups) > 5:
        raise SearchError("Too many filter groups: at most 5 are allowed")
    groups = [[_filter(spec) for spec in group.get("filters") or []] for group in filter_groups]
    if not groups:
        return lambda props: True
    return lambda props: any(all(test(props) for test in group) for group in groups)


def sort_keys(sorts: list[Any]) -> list[tuple[str, bool]]:
    """(property, descending) pairs from sorts given as objects or as strings ("-createdate", "createdate")."""
    keys = []
    for sort in sorts:
        if isinstance(sort, str):
            keys.append((sort.lstrip("-"), sort.startswith("-")))
        else:
            keys.append((sort["propertyName"], str(sort.get("direction", "ASCENDING")).upper() == "DESCENDING"))
    return keys


def ordered(rows: list[dict[str, Any]], sorts: list[Any]) -> list[dict[str, Any]]:
    """Rows sorted as asked (missing values last), ties broken by id ascending. HubSpot honours one sort.

    https://developers.hubspot.com/docs/guides/api/crm/search ("Sorting": one sort rule per request, by any
    property, ascending or descending). The tie order is not documented: clients must not rely on it (the
    connector reads a timestamp shared by a whole page again by ``hs_object_id``). The route sorts the records as
    they are at each page request, so paging by offset (``after``) over a window whose records change moves them
    between slots — https://developers.hubspot.com/docs/guides/api/crm/search ("Paging through results": ``after``
    is the offset of the next page, at most 10,000 results per query)."""
    result = sorted(rows, key=lambda row: int(row["id"]))
    keys = sort_keys(sorts)
    if not keys:
        return result
    name, descending = keys[0]
    valued = [(comparable(name, row["properties"].get(name)), row) for row in result]
    present = [(value, row) for value, row in valued if value is not None]
    missing = [row for value, row in valued if value is None]
    # sort() is stable even with reverse=True, so ties keep the ascending id order
    present.sort(key=lambda pair: (0, pair[0]) if isinstance(pair[0], float) else (1, pair[0]), reverse=descending)
    return [row for _value, row in present] + missing
