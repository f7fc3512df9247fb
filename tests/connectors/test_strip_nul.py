"""strip_nul (connectors.records): every NUL character is taken out of the text anywhere in a CRM row (values of
dicts and lists, nested), keys and other values untouched; a row without any NUL comes back as the same object.
The expectation is written here independently: a recursive replace that always copies."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.records import strip_nul

TEXT = st.text(st.sampled_from(["a", "é", "\x00", " ", "0", "\\", "x"]), max_size=6)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXT)
ROWS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=20,
)


def _reference(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {k: _reference(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_reference(v) for v in value]
    return value


@settings(max_examples=400, derandomize=True, database=None, deadline=None)
@given(row=ROWS)
def test_strip_nul_removes_every_nul_and_leaves_a_clean_row_as_it_is(row: Any) -> None:
    stripped = strip_nul(row)
    assert stripped == _reference(row)
    clean = not any("\x00" in text for text in _values(row))
    if clean and isinstance(row, dict | list):
        assert stripped is row, "a row without NUL was copied"


def _values(value: Any) -> list[Any]:
    """Every text value (not key) in the row."""
    if isinstance(value, dict):
        return [x for v in value.values() for x in _values(v)]
    if isinstance(value, list):
        return [x for v in value for x in _values(v)]
    return [value] if isinstance(value, str) else []


def test_a_nul_deep_in_a_row_is_found() -> None:
    row = {"Id": "00T1", "Who": {"records": [{"Name": "a\x00b", "n": 1}], "done": True}, "Subject": "call"}
    assert strip_nul(row) == {
        "Id": "00T1",
        "Who": {"records": [{"Name": "ab", "n": 1}], "done": True},
        "Subject": "call",
    }
    assert row["Who"]["records"][0]["Name"] == "a\x00b", "the CRM's row itself is not changed"
