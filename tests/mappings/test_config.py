"""The mapping file: every shipped example loads; each kind of bad input gives one clear, located message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mappings.config import MappingConfig
from mappings.source import MappingFileError
from mappings.validate import json_schema, parse, parse_file

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "mappings" / "examples").glob("*.yaml"))

GOOD = """\
version: 1
team:
  name: Team
  members:
    - email: anna@example.com
cycle:
  name: Q3
  start: 2026-07-01
  end: 2026-09-30
objectives:
  - key: o1
    title: Customers recommend us
    key_results:
      - key: meetings
        title: 40 meetings
        metric:
          type: count
          of: activities
          where:
            - {field: activity_kind, op: eq, value: meeting}
        target: 40
"""


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_loads(path: Path) -> None:
    config, source = parse_file(path)
    assert isinstance(config, MappingConfig)
    assert source.startswith("#")  # examples explain themselves


def test_json_schema_is_published_with_titles() -> None:
    shipped = Path(__file__).resolve().parents[2] / "mappings" / "schema.json"
    assert shipped.read_text().strip() == json_schema().strip(), "run: okrsync mappings schema > mappings/schema.json"
    schema = json.loads(json_schema())
    assert schema["title"] == "MappingConfig"
    assert "count" in json.dumps(schema) and "response_time" in json.dumps(schema)


def test_good_file() -> None:
    config = parse(GOOD, filename="okrs.yaml")
    assert config.key_result("meetings").target == 40


BAD = [
    ("invalid-yaml", GOOD.replace("  name: Q3", "  name: Q3: x"), [(7, "mapping values are not allowed")]),
    ("wrong-type", GOOD.replace("target: 40", "target: forty"), [(21, "target: Input should be a valid number")]),
    (
        "unknown-metric",
        GOOD.replace("type: count", "type: counting"),
        [(17, "does not match any of the expected tags")],
    ),
    ("unknown-key", GOOD.replace("  name: Team", "  name: Team\n  colour: blue"), [(4, 'unknown key "colour"')]),
    (
        "unknown-field",
        GOOD.replace("field: activity_kind", "field: activity_type"),
        [(20, '"activity_type" is not a field on activity')],
    ),
    (
        "unknown-related-field",
        GOOD.replace("field: activity_kind", "field: account.revenue"),
        [(20, '"revenue" is not a field on account (reached from activity)')],
    ),
    (
        "undeclared-custom-field",
        GOOD.replace("field: activity_kind", "field: custom.tier"),
        [(20, 'custom field "tier" is not declared under custom_fields')],
    ),
    ("target-equals-baseline", GOOD.replace("target: 40", "target: 0"), [(14, "target equals baseline (0.0)")]),
    (
        "direction-contradicts-target",
        GOOD.replace("target: 40", "target: 40\n        direction: lower"),
        [(14, "direction is lower but the target (40.0) is above the baseline")],
    ),
    (
        "end-before-start",
        GOOD.replace("end: 2026-09-30", "end: 2026-06-30"),
        [(6, "cycle ends (2026-06-30) before it starts")],
    ),
    ("cycle-too-long", GOOD.replace("end: 2026-09-30", "end: 2026-12-31"), [(6, "a cycle lasts 1–3 months")]),
    (
        "duplicate-key",
        GOOD.replace("        target: 40", "        target: 40\n        target: 50"),
        [(22, 'duplicate key "target"')],
    ),
    (
        "operator-needs-list",
        GOOD.replace("op: eq, value: meeting", "op: in, value: meeting"),
        [(20, "operator in needs a list of values")],
    ),
    (
        "unknown-rule",
        GOOD + "hygiene:\n  rules:\n    - {type: no_next_stepp}\n",
        [(24, "does not match any of the expected tags")],
    ),
    (
        "undefined-sprint",
        GOOD.replace("target: 40", "target: 40\n        window: {sprint: s9}"),
        [(22, "sprint 's9' is not defined under sprints")],
    ),
    (
        "hygiene-metric-without-rules",
        GOOD.replace(
            "type: count\n          of: activities\n          where:\n"
            "            - {field: activity_kind, op: eq, value: meeting}",
            "type: hygiene_score",
        ),
        [(16, "hygiene_score needs rules under hygiene.rules")],
    ),
    (
        "duplicate-kr-key",
        GOOD + "      - {key: meetings, title: again, metric: {type: manual}, target: 3}\n",
        [(22, "key result key 'meetings' is used twice")],
    ),
    (
        "several-problems",
        GOOD.replace("target: 40", "target: forty").replace("  name: Team", "  name: Team\n  colour: blue"),
        [(4, 'unknown key "colour"'), (22, "target: Input should be a valid number")],
    ),
]


@pytest.mark.parametrize(("text", "problems"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_is_located(text: str, problems: list[tuple[int, str]]) -> None:
    with pytest.raises(MappingFileError) as caught:
        parse(text, filename="okrs.yaml")
    found = caught.value.problems
    assert len(found) == len(problems), [str(p) for p in found]
    for problem, (line, fragment) in zip(found, problems, strict=True):
        assert problem.file == "okrs.yaml"
        assert problem.line == line, str(problem)
        assert fragment in problem.message, str(problem)
