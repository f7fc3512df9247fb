"""mappings.source: strict YAML loading and file:line:column problems for sales-ops mapping files."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mappings.source import Locator, MappingFileError, Problem, load_file, load_yaml, problems_from_validation

VALID = """\
version: 1
team: emea-enterprise
cycle:
  start: 2026-07-01
  end: 2026-09-30
objectives:
  - name: Grow pipeline
    key_results:
      - type: count
        activity: meetings
        target: 40
      - type: amount
        target: 250000
"""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CountKR(_Strict):
    type: Literal["count"]
    activity: str
    target: int


class AmountKR(_Strict):
    type: Literal["amount"]
    target: float


class Objective(_Strict):
    name: str
    key_results: list[Annotated[CountKR | AmountKR, Field(discriminator="type")]]


class Cycle(_Strict):
    start: datetime.date
    end: datetime.date


class MappingFile(_Strict):
    version: int
    team: str
    cycle: Cycle
    objectives: list[Objective]


def _problems(text: str) -> list[Problem]:
    with pytest.raises(MappingFileError) as info:
        load_yaml(text, filename="m.yaml")
    return info.value.problems


def _validate(text: str) -> list[Problem]:
    data, locator = load_yaml(text, filename="m.yaml")
    with pytest.raises(ValidationError) as info:
        MappingFile.model_validate(data)
    return problems_from_validation(info.value, locator, filename="m.yaml")


def test_valid_file_loads_and_validates() -> None:
    data, _ = load_yaml(VALID, filename="m.yaml")
    assert data["cycle"]["start"] == datetime.date(2026, 7, 1)
    assert MappingFile.model_validate(data).objectives[0].key_results[1].target == 250000


def test_locate_prefers_the_key_and_skips_union_tags_and_validator_names() -> None:
    _, locator = load_yaml(VALID, filename="m.yaml")
    assert locator.locate(()) == (1, 1)
    assert locator.locate(("cycle", "end")) == (5, 3)
    assert locator.locate(("objectives", 0)) == (7, 5)
    assert locator.locate(("objectives", 0, "key_results", 0, "count", "target")) == (11, 9)
    assert locator.locate(("objectives", 0, "key_results", 1, "function-after[check()]", "target")) == (13, 9)
    # a missing key is reported where its mapping starts
    assert locator.locate(("objectives", 0, "key_results", 1, "amount", "currency")) == (12, 9)
    assert locator.locate(("nowhere",)) == (1, 1)


def test_locate_on_an_empty_locator() -> None:
    assert Locator().locate(("anything",)) == (None, None)


def test_invalid_yaml_reports_the_parser_mark_and_problem() -> None:
    [problem] = _problems("team: a\ncycle: start: 2026-07-01\n")
    assert (problem.line, problem.column) == (2, 13)
    assert "mapping values are not allowed here" in problem.message
    assert str(problem).startswith("m.yaml:2:13: mapping values are not allowed here")


def test_control_characters_are_located() -> None:
    [problem] = _problems("version: 1\nteam: x\x00\n")
    assert (problem.line, problem.column) == (2, 8)
    assert "special characters are not allowed" in problem.message


def test_second_document_is_refused() -> None:
    [problem] = _problems("version: 1\n---\nteam: x\n")
    assert problem.line == 2
    assert problem.message == "expected a single document in the stream, but found another document"


def test_impossible_date_is_a_located_problem() -> None:
    [problem] = _problems("version: 1\nstart: 2026-13-01\n")
    assert (problem.line, problem.column) == (2, 8)
    assert 'invalid date "2026-13-01"' in problem.message


def test_unsafe_tags_are_refused() -> None:
    [problem] = _problems("team: !!python/object/apply:os.system ['true']\n")
    assert problem.line == 1
    assert "could not determine a constructor" in problem.message


@pytest.mark.parametrize("text", ["", "# only a comment\n", "~\n"])
def test_empty_file(text: str) -> None:
    [problem] = _problems(text)
    assert problem.message == "the file is empty: expected a mapping with version, team, cycle, objectives"


def test_top_level_list_names_what_was_found() -> None:
    [problem] = _problems("\n- version: 1\n")
    assert (problem.line, problem.column) == (2, 1)
    assert problem.message.endswith("found a list")


def test_every_duplicate_key_is_reported_at_the_duplicate() -> None:
    text = VALID.replace("        target: 40\n", "        target: 40\n        target: 45\n") + "team: other\n"
    problems = _problems(text)
    assert [(p.line, p.column, p.message) for p in problems] == [
        (12, 9, 'duplicate key "target" (first defined on line 11)'),
        (15, 1, 'duplicate key "team" (first defined on line 2)'),
    ]


@pytest.mark.parametrize(("key", "found"), [("1", "a number"), ("yes", "a boolean"), ("on", "a boolean")])
def test_keys_must_be_text(key: str, found: str) -> None:
    [problem] = _problems(f"team: a\n{key}: x\n")
    assert (problem.line, problem.column) == (2, 1)
    assert problem.message.startswith(f'keys must be text, found {found} ("{key}")')
    assert f'quote it ("{key}")' in problem.message


def test_yes_no_values_keep_pyyaml_behaviour_and_quoted_keys_are_text() -> None:
    data, _ = load_yaml('"yes": on\n"1": no\n', filename="m.yaml")
    assert data == {"yes": True, "1": False}


def test_merge_keys_are_rejected() -> None:
    [problem] = _problems("base: &base\n  target: 1\nkr:\n  <<: *base\n  type: count\n")
    assert (problem.line, problem.column) == (4, 3)
    assert "merge keys" in problem.message


def test_wrong_type_points_at_the_key_with_a_dotted_path_and_the_input() -> None:
    [problem] = _validate(VALID.replace("target: 40", "target: forty"))
    assert (problem.line, problem.column) == (11, 9)
    assert problem.message == (
        "objectives[0].key_results[0].target: Input should be a valid integer, "
        'unable to parse string as an integer (got "forty")'
    )


def test_long_inputs_are_truncated() -> None:
    [problem] = _validate(VALID.replace("target: 40", "target: " + "x" * 100))
    shown = problem.message.split("(got ", 1)[1].rstrip(")")
    assert len(shown) == 60 and shown.endswith("…")


def test_missing_key_points_at_its_mapping() -> None:
    [problem] = _validate(VALID.replace("        activity: meetings\n", ""))
    assert (problem.line, problem.column) == (9, 9)
    assert problem.message == 'objectives[0].key_results[0]: missing required key "activity"'


def test_unknown_key_points_at_the_key() -> None:
    problems = _validate(VALID.replace("  end: 2026-09-30\n", "  end: 2026-09-30\n  ends: 2026-10-01\n") + "owner: x\n")
    assert [(p.line, p.column, p.message) for p in problems] == [
        (6, 3, 'cycle: unknown key "ends"'),
        (15, 1, 'unknown key "owner"'),
    ]


def test_unknown_union_tag_points_at_the_discriminator() -> None:
    [problem] = _validate(VALID.replace("type: amount", "type: percent"))
    assert (problem.line, problem.column) == (12, 9)
    assert problem.message.startswith("objectives[0].key_results[1]: Input tag 'percent' found using 'type'")
    assert "'count', 'amount'" in problem.message


def test_problems_are_sorted_by_line_and_str_joins_them() -> None:
    text = VALID.replace("target: 250000", "target: lots").replace("version: 1", "version: one")
    problems = _validate(text)
    assert [p.line for p in problems] == [1, 13]
    joined = str(MappingFileError(problems)).splitlines()
    assert joined[0].startswith("m.yaml:1:1: version: Input should be a valid integer")


def test_problem_str_omits_unknown_positions() -> None:
    assert str(Problem("m.yaml", None, None, "boom")) == "m.yaml: boom"
    assert str(Problem("m.yaml", 3, None, "boom")) == "m.yaml:3: boom"


def test_load_file_reads_utf8(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(VALID.replace("emea-enterprise", "région-sud"), encoding="utf-8")
    data, locator = load_file(path)
    assert data["team"] == "région-sud"
    assert locator.locate(("team",)) == (2, 1)


def test_load_file_missing_path_names_it(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(MappingFileError) as info:
        load_file(path)
    [problem] = info.value.problems
    assert problem.file == str(path)
    assert str(path) in problem.message and "no such file" in problem.message


def test_load_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(b"version: 1\nteam: r\xe9gion\n")
    with pytest.raises(MappingFileError) as info:
        load_file(path)
    [problem] = info.value.problems
    assert problem.line == 2 and "not UTF-8" in problem.message
