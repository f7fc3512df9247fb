"""mappings.source: strict YAML loading and file:line:column problems for sales-ops mapping files."""

from __future__ import annotations

import datetime
import tracemalloc
from pathlib import Path
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mappings.limits import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES
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


# --- limits: size, nesting, aliases, text and numbers the schema never needs (mappings.limits) ---------------------


def _fast_problem(text: str) -> Problem:
    """The one problem of ``text``, found in a few MB: nothing expanded, nothing read to the end.

    Memory, not time, is what the test measures: the peak is the same on a busy CI machine as on a quiet one, and
    an expanded alias bomb or a fully composed oversized file would need hundreds of MB.
    """
    tracemalloc.start()
    try:
        [problem] = _problems(text)
        assert tracemalloc.get_traced_memory()[1] < 20_000_000
    finally:
        tracemalloc.stop()
    return problem


def test_the_shipped_examples_are_far_inside_the_limits() -> None:
    for path in sorted((Path(__file__).resolve().parents[2] / "mappings" / "examples").glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        assert len(text.encode()) < MAX_FILE_BYTES / 100
        load_yaml(text, filename=path.name)


def test_a_file_over_the_size_limit_is_refused_where_it_crosses_it(tmp_path: Path) -> None:
    text = "version: 1\nteam: " + "x" * MAX_FILE_BYTES + "\n"
    problem = _fast_problem(text)
    assert (problem.line, problem.column) == (2, MAX_FILE_BYTES - len("version: 1\n") + 1)
    assert problem.message == "the file is larger than 1,048,576 bytes (1 MiB), the limit for a mapping file"
    path = tmp_path / "big.yaml"
    path.write_text(text + "# and much more\n" * 100_000, encoding="utf-8")
    with pytest.raises(MappingFileError) as info:
        load_file(path)
    assert [(p.line, p.column) for p in info.value.problems] == [(problem.line, problem.column)]
    load_yaml("version: 1\nteam: " + "é" * ((MAX_FILE_BYTES - 20) // 2) + "\n", filename="m.yaml")  # bytes, not chars


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("team: " + "[" * 100_000 + "]" * 100_000 + "\n", 1),  # the scanner would read ahead quadratically
        ("team: " + "{a: " * 100_000 + "\n", 1),
        ("team:\n" + "- " * 100_000 + "x\n", 2),
        ("".join(" " * n + f"k{n}:\n" for n in range(200)), 65),
        ("team:\n" + "".join(" " * (n + 1) + f"k{n}:\n" for n in range(40)) + " " * 41 + "[" * 40, 42),  # both
    ],
    ids=["flow-lists", "flow-mappings", "block-lists", "block-mappings", "mixed"],
)
def test_nesting_beyond_the_limit_is_refused_at_once(text: str, line: int) -> None:
    problem = _fast_problem(text)
    assert problem.line == line and problem.column is not None
    assert (
        problem.message == f"lists and mappings nested more than {MAX_DEPTH} levels deep, the limit for a mapping file"
    )


def test_nesting_up_to_the_limit_loads() -> None:
    data, _ = load_yaml("team: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n", filename="m.yaml")
    depth = 1
    while data and isinstance(data, (dict, list)):
        data, depth = (data["team"] if isinstance(data, dict) else data[0]), depth + 1
    assert depth == MAX_DEPTH


def test_nesting_counts_through_aliases() -> None:
    deep = "[" * 40 + "x" + "]" * 40
    text = f"a: &deep {deep}\nb: [[[[[[[[[[[[[[[[[[[[[[[[[[*deep]]]]]]]]]]]]]]]]]]]]]]]]]\n"
    problem = _fast_problem(text)
    assert (problem.line, problem.column) == (2, 30)
    assert problem.message.startswith("alias *deep puts lists and mappings nested more than 64 levels deep")


def test_an_alias_bomb_is_refused_at_the_alias_that_crosses_the_node_limit() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 10)]  # stands for 10^10 values
    problem = _fast_problem("\n".join(lines) + "\n")
    assert problem.line == 5  # a4's first alias: 11 + 111 + 1,111 + 11,111 nodes so far, + 11,111 passes 20,000
    assert problem.message == (
        f"with alias *a3 the file stands for more than {MAX_NODES:,} values, lists and mappings, the limit for a "
        "mapping file: repeat less through aliases"
    )


def test_aliases_within_the_limit_load_as_shared_values() -> None:
    data, _ = load_yaml("a: &kinds [call, email]\nb: *kinds\nc: {x: *kinds}\n", filename="m.yaml")
    assert data == {"a": ["call", "email"], "b": ["call", "email"], "c": {"x": ["call", "email"]}}


def test_a_file_of_too_many_plain_values_is_refused() -> None:
    problem = _fast_problem("a: [" + ", ".join(["1"] * MAX_NODES) + "]\n")
    assert problem.line == 1 and problem.message.startswith(f"the file has more than {MAX_NODES:,} values")


def test_a_recursive_alias_is_refused() -> None:
    problem = _fast_problem("a: &loop [x, *loop]\n")
    assert (problem.line, problem.column) == (1, 14)
    assert problem.message == "alias *loop refers to a list or mapping that contains it"


@pytest.mark.parametrize(
    ("escape", "code"),
    [("\\0", "0000"), ("\\a", "0007"), ("\\e", "001B"), ("\\x7f", "007F"), ("\\x9b", "009B"), ("\\ud800", "D800")],
)
def test_control_characters_written_as_escapes_are_refused(escape: str, code: str) -> None:
    problems = _problems(f'team: "a{escape}b"\n"k{escape}": x\n')
    assert [(p.line, p.column) for p in problems] == [(1, 7), (2, 1)]
    assert problems[0].message == f"text may not contain control characters: U+{code} (an escape in quotes); remove it"


def test_tabs_newlines_and_any_printable_unicode_stay_text() -> None:
    data, _ = load_yaml('team: "a\\tb\\nc \\u202e שלום 😀 \\x85"\n', filename="m.yaml")
    assert data["team"] == "a\tb\nc \u202e שלום 😀 \x85"


@pytest.mark.parametrize("tag", ["!!binary AAAA", "!!set {a}", "!!omap [a: 1]", "!!pairs [a: 1]"])
def test_tags_beyond_plain_yaml_are_refused(tag: str) -> None:
    [problem] = _problems(f"version: 1\nteam: {tag}\n")
    assert (problem.line, problem.column) == (2, 7)
    assert problem.message.endswith("is not supported: write plain text, numbers, lists")


@pytest.mark.parametrize("number", ["9" * 400, "9" * 5_000, "-" + "1" * 200, "1" + ":0" * 300, "1." + "0" * 200])
def test_numbers_too_long_to_be_in_range_are_refused_before_conversion(number: str) -> None:
    problem = _fast_problem(f"version: 1\ntarget: {number}\n")
    assert (problem.line, problem.column) == (2, 9)
    assert problem.message == (
        f"a number of {len(number)} characters is out of range: numbers lie between -10^15 and 10^15"
    )
