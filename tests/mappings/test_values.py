"""mappings.values and mappings.limits: a filter's value is checked against its field's type by the function that
later makes the SQL parameter, and every number, date, list and filter of the file stays within the limits."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pytest

from mappings.config import Sprint
from mappings.fields import CustomField, FieldType, RecordType, resolve
from mappings.filters import FieldCondition, Op
from mappings.limits import MAX_CONDITIONS, MAX_VALUES
from mappings.source import MappingFileError
from mappings.validate import parse
from mappings.values import compared_type, sql_value, value_problem

CUSTOM = {
    "key_account": CustomField(RecordType.account, FieldType.boolean, "Key_Account__c", "key_account"),
    "renewal": CustomField(RecordType.account, FieldType.date, "Renewal__c", "renewal"),
    "score": CustomField(RecordType.account, FieldType.number, "Score__c", "score"),
}


def _problem(field: str, op: str, value: Any, record: RecordType = RecordType.activity) -> str | None:
    condition = FieldCondition(field=field, op=Op(op), value=value)
    return value_problem(condition, resolve(field, record, CUSTOM))


@pytest.mark.parametrize(
    ("field", "op", "value", "problem"),
    [
        ("occurred_at", "gt", "notadate", 'occurred_at is a date-and-time field: "notadate" is not a date'),
        ("occurred_at", "gt", "2026-07-01", None),
        ("occurred_at", "gt", "2026-07-01T09:30:00Z", None),
        ("occurred_at", "gt", date(2026, 7, 1), None),
        ("occurred_at", "gt", 20260701, "occurred_at is a date-and-time field: 20260701 is not a date"),
        ("occurred_at", "in", [date(2026, 7, 1), "x"], 'occurred_at is a date-and-time field: "x" is not a date'),
        ("created_at", "in", [1, "x"], "created_at is a date-and-time field: 1 is not a date"),
        ("account.last_activity_date", "lt", "2026-07-01T10:00", 'is a date field: "2026-07-01T10:00" is not a date'),
        ("duration_seconds", "gt", "abc", 'duration_seconds is a number field: "abc" is not a number'),
        ("duration_seconds", "gt", True, "duration_seconds is a number field: true is not a number"),
        ("duration_seconds", "gt", 3600, None),
        ("opportunity.is_won", "eq", "yes", 'opportunity.is_won is a true/false field: "yes" is not true or false'),
        ("opportunity.is_won", "ne", False, None),
        ("subject", "eq", 42, None),  # text compares with the text of anything
        ("subject", "contains", "Demo", None),  # contains & co. take text, checked by the operator
        ("account.custom.key_account", "eq", "true", "is a true/false field"),
        ("account.custom.renewal", "gte", "soon", 'account.custom.renewal is a date field: "soon" is not a date'),
        ("account.custom.renewal", "gte", "2026-10-01", None),
        ("account.custom.score", "gt", "high", "account.custom.score is a number field"),
        ("raw.Amount__c", "gt", 5, None),  # raw fields: a number asks for a numeric comparison
        ("raw.Amount__c", "gt", "5", None),  # and text for a text one
        ("raw.Amount__c", "is_true", None, None),
    ],
)
def test_a_value_is_checked_against_the_type_its_field_is_compared_in(
    field: str, op: str, value: Any, problem: str | None
) -> None:
    found = _problem(field, op, value)
    assert (found is None) == (problem is None), found
    assert problem is None or (found is not None and problem in found)


@pytest.mark.parametrize(
    ("value", "ftype", "expected"),
    [
        ("2026-07-01T09:30:00", FieldType.datetime, datetime(2026, 7, 1, 9, 30, tzinfo=UTC)),  # no offset: UTC
        ("2026-07-01T09:30:00+02:00", FieldType.datetime, datetime(2026, 7, 1, 7, 30, tzinfo=UTC)),
        (date(2026, 7, 1), FieldType.datetime, datetime(2026, 7, 1, tzinfo=UTC)),  # a date: midnight UTC
        ("2026-07-01", FieldType.date, date(2026, 7, 1)),
        (7, FieldType.number, 7.0),
        ([True, False], FieldType.boolean, [True, False]),
        (date(2026, 7, 1), FieldType.text, "2026-07-01"),
    ],
)
def test_the_sql_value_is_the_checked_value(value: Any, ftype: FieldType, expected: Any) -> None:
    assert sql_value(value, ftype) == expected


def test_raw_and_custom_fields_compare_as_their_declared_or_asked_type() -> None:
    def kind(field: str, op: str, value: Any) -> FieldType:
        condition = FieldCondition(field=field, op=Op(op), value=value)
        return compared_type(resolve(field, RecordType.account, CUSTOM), condition)

    assert kind("raw.Type", "eq", "x") == FieldType.text
    assert kind("raw.Type", "gt", 5) == FieldType.number
    assert kind("raw.Type", "gt", True) == FieldType.text
    assert kind("custom.key_account", "eq", True) == FieldType.boolean
    assert kind("custom.renewal", "gt", "2026-10-01") == FieldType.text  # the payload's text, cut to the date
    assert kind("employees", "gt", 5) == FieldType.number


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([["call"], "email"], "a list inside a list"),
        ([{"a": 1}], "a mapping is not a value"),
        ({"a": 1}, "a mapping is not a value"),
        (["call", None], "an empty item"),
        (float("nan"), "nan is not a number that can be compared"),
        (float("inf"), "inf is not a number that can be compared"),
        (10**15 + 1, "1000000000000001 is out of range: numbers lie between -10^15 and 10^15"),
        (10**400, "a number of more than 20 digits is out of range"),
        (date(1, 1, 1), "0001-01-01 is out of range: dates lie between 1900-01-01 and 2999-12-31"),
        (datetime(9999, 12, 31, 23, 0), "9999-12-31 is out of range"),
        (b"bytes", "bytes is not a value"),
    ],
)
def test_a_value_is_one_plain_scalar_or_a_flat_list_of_them(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        FieldCondition(field="subject", op=Op.in_ if isinstance(value, list) else Op.eq, value=value)


@pytest.mark.parametrize("field", ["sub\u202eject", "a\x00b", "tab\there", "\u200b"])
def test_a_field_name_is_printable(field: str) -> None:
    with pytest.raises(ValueError, match="a field name is printable text"):
        FieldCondition(field=field, op=Op.is_set)


@pytest.mark.parametrize("name", ['a"b', "a{b}", "a..b", "a.", "a b", "a,b", "ü", "a\nb"])
def test_a_raw_field_is_a_crm_field_name(name: str) -> None:
    with pytest.raises(ValueError, match="is not a CRM field name"):
        resolve(f"raw.{name}", RecordType.activity, {})
    assert resolve("raw.Owner.Email__c", RecordType.activity, {}).name == "Owner.Email__c"


FILE = """\
version: 1
team: {name: Team, members: [{email: anna@example.com}]}
cycle: {name: Q3, start: 2026-07-01, end: 2026-09-30}
objectives:
  - key: o1
    title: Objective
    key_results:
      - key: kr
        title: Key result
        metric:
          type: count
          of: activities
          where: WHERE
        target: 40
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(MappingFileError) as info:
        parse(text, filename="m.yaml")
    return [str(p) for p in info.value.problems]


def test_a_filter_at_the_limits_is_valid_and_one_more_is_located() -> None:
    conditions = [f"{{field: subject, op: ne, value: s{n}}}" for n in range(MAX_CONDITIONS)]
    parse(FILE.replace("WHERE", f"[{', '.join(conditions)}]"), filename="m.yaml")
    [problem] = _problems(FILE.replace("WHERE", f"[{', '.join([*conditions, '{field: subject, op: is_set}'])}]"))
    assert problem.startswith("m.yaml:13:") and problem.endswith(
        f": objectives[0].key_results[0].metric.where[{MAX_CONDITIONS}]: a filter has at most {MAX_CONDITIONS} "
        "conditions, counting any_of alternatives"
    )
    values = ", ".join(f"s{n}" for n in range(MAX_VALUES))
    parse(FILE.replace("WHERE", f"[{{field: subject, op: in, value: [{values}]}}]"), filename="m.yaml")
    many = FILE.replace(
        "WHERE", f"[{{field: subject, op: in, value: [{values}]}}, {{field: subject, op: eq, value: x}}]"
    )
    [problem] = _problems(many)
    assert problem.endswith(
        f"where[1]: a filter has at most {MAX_VALUES:,} values, counting each item of in/not_in lists"
    )


@pytest.mark.parametrize(
    ("before", "after", "says"),
    [
        ("target: 40", "target: 1e16", "target: Input should be less than or equal to 1000000000000000"),
        ("target: 40", "target: -.inf", "target: Input should be a finite number"),
        ("target: 40", "target: 40\n        weight: .inf", "weight: Input should be a finite number"),
        ("start: 2026-07-01", "start: 1899-12-31", "cycle.start: Input should be greater than or equal to 1900-01-01"),
        ("name: Team", f"name: {'T' * 201}", "team.name: String should have at most 200 characters"),
        ("where: WHERE", "where: [{followed_by: {within_days: 36501}}]", "less than or equal to 36500"),
        ("where: WHERE", "date_field: close_date", "activities have no close_date; date_field is one of"),
        ("where: WHERE", "where: [{field: raw.a-b, op: is_set}]", '"raw.a-b" is not a CRM field name'),
    ],
    ids=[
        "target-too-large",
        "target-infinite",
        "weight-infinite",
        "cycle-before-1900",
        "team-name-too-long",
        "within-days-too-long",
        "date-field-the-records-lack",
        "raw-name-not-a-crm-name",
    ],  # fmt: skip
)
def test_numbers_dates_and_names_out_of_range_are_located(before: str, after: str, says: str) -> None:
    text = FILE.replace(before, after, 1).replace("WHERE", "[]")
    problems = _problems(text)
    assert any(says in p and p.startswith("m.yaml:") and p.split(":")[1].isdigit() for p in problems), problems


@pytest.mark.parametrize(
    ("sprint", "says"),
    [
        ({"name": "Sprint \x07"}, "name: text may not contain control characters: U+0007"),
        ({"serves": ["kr\x00"]}, "serves: text may not contain control characters: U+0000"),
        ({"commitment": {"title": "60 calls", "target": 60, "metric": {"type": "count", "of": "activities",
          "where": [{"field": "subject", "op": "in", "value": ["Call", "\ud800"]}]}}}, "value: text may not contain"),
    ],
    ids=["name", "serves", "filter-value"],
)  # fmt: skip
def test_text_from_json_has_no_control_characters_either(sprint: dict[str, Any], says: str) -> None:
    """A sprint added through the API is a model built from JSON: the same text rule as the file's YAML."""
    base = {"key": "s1", "name": "Sprint 1", "start": "2026-08-03", "end": "2026-08-14"}
    with pytest.raises(ValueError, match=re.escape(says)):
        Sprint.model_validate({**base, **sprint})
    Sprint.model_validate({**base, "name": "Sprint 1 — שלום 😀\tand a tab"})
