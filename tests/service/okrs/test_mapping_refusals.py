"""Issue 17: files that `validate` used to accept and `preview`/`apply` then crashed on (a traceback on the command
line, a 500 over the API), and files that took seconds and hundreds of MB before failing. Each is now refused by
`validate`, `preview` and `apply` alike, as ``file:line:column: what is wrong``, through the real command line and
the real HTTP API, on SQLite and PostgreSQL; and a filter at the limits still computes on both.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session
from typer.testing import CliRunner, Result

from mappings.limits import MAX_CONDITIONS, MAX_FILE_BYTES, MAX_NODES, MAX_VALUES
from service.app import create_app
from service.cli import app
from service.kit.auth import Role, create_token
from service.kit.db import make_engine
from service.kit.migrate import create_schema
from service.kit.server import ThreadedServer
from service.kit.settings import Settings, get_settings
from tests import loopback
from tests.service.compute import world

EXAMPLES = Path(__file__).resolve().parents[3] / "mappings" / "examples"
AS_OF = "2026-08-15T12:00:00"  # world.AS_OF


def _acquisition() -> str:
    """The shipped acquisition example, its team swapped for the world's members (lines shift, nothing else)."""
    text = (EXAMPLES / "acquisition.yaml").read_text(encoding="utf-8")
    start, end = text.index("  members:"), text.index("\ncycle:")
    members = "  members:\n    - {email: anna@example.com}\n    - {email: ben@example.com}\n"
    return text[:start] + members + text[end:]


BASE = _acquisition()
# the filter of the first key result (discovery-meetings); each case puts its own conditions there
FILTER = (
    "            - {field: activity_kind, op: eq, value: meeting}\n"
    "            - {field: account.account_type, op: eq, value: Prospect}   # the activity's account\n"
)


def _line(text: str, marker: str) -> int:
    return text[: text.index(marker)].count("\n") + 1


FILTER_LINE = _line(BASE, FILTER)
TARGET_LINE = _line(BASE, "        target: 150\n")
TITLE_LINE = _line(BASE, "        title: 150 meetings with prospects\n")
COUNTED = "          of: activities\n"  # first in the first sprint's commitment


def _where(*conditions: str) -> str:
    return BASE.replace(FILTER, "".join(f"            - {c}\n" for c in conditions), 1)


def _laughs() -> str:
    """The issue's "billion laughs" filter: nine levels of aliases, each repeating the one below ten times."""
    levels = ["{field: activity_kind, op: in, value: &a0 [call, call, call, call, call, call, call, call, call, call]}"]
    levels += [f"{{field: subject, op: not_in, value: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]}}" for n in range(1, 9)]
    return _where(*levels)


@dataclass(frozen=True)
class Refused:
    text: str
    line: int  # where the problem is reported
    says: str  # a part of the message


DIGITS_400 = "9" * 400
CASES: dict[str, Refused] = {
    "datetime-value-not-a-date": Refused(
        _where("{field: occurred_at, op: gt, value: notadate}"),
        FILTER_LINE,
        'occurred_at is a date-and-time field: "notadate" is not a date',
    ),
    "number-value-not-a-number": Refused(
        _where("{field: duration_seconds, op: gt, value: abc}"),
        FILTER_LINE,
        'duration_seconds is a number field: "abc" is not a number',
    ),
    "in-list-of-the-wrong-type": Refused(
        _where("{field: created_at, op: in, value: [1, x]}"), FILTER_LINE, "created_at is a date-and-time field: 1 is"
    ),
    "boolean-compared-with-text": Refused(
        _where("{field: opportunity.is_won, op: eq, value: 'yes'}"),
        FILTER_LINE,
        'opportunity.is_won is a true/false field: "yes" is not true or false',
    ),
    "value-of-400-digits": Refused(
        _where(f"{{field: duration_seconds, op: gt, value: {DIGITS_400}}}"),
        FILTER_LINE,
        "a number of 400 characters is out of range: numbers lie between -10^15 and 10^15",
    ),
    "value-of-25-digits": Refused(
        _where(f"{{field: duration_seconds, op: gt, value: {10**25}}}"),
        FILTER_LINE,
        "a number of more than 20 digits is out of range",
    ),
    "target-of-400-digits": Refused(
        BASE.replace("        target: 150\n", f"        target: {DIGITS_400}\n", 1),
        TARGET_LINE,
        "a number of 400 characters is out of range",
    ),
    "baseline-of-400-digits": Refused(
        BASE.replace("        baseline: 0\n", f"        baseline: -{DIGITS_400}\n", 1),
        TARGET_LINE - 1,
        "a number of 401 characters is out of range",
    ),
    "target-not-a-number": Refused(
        BASE.replace("        target: 150\n", "        target: .nan\n", 1), TARGET_LINE, "finite number"
    ),
    "date-beyond-the-calendar": Refused(
        _where("{field: occurred_at, op: gt, value: 0001-01-01T00:00:00+14:00}"),
        FILTER_LINE,
        "0001-01-01 is out of range: dates lie between 1900-01-01 and 2999-12-31",
    ),
    "list-inside-an-in-list": Refused(
        _where("{field: activity_kind, op: in, value: [[call], email]}"), FILTER_LINE, "a list inside a list"
    ),
    "raw-field-with-nul": Refused(
        _where('{field: "raw.Sub\\0ject", op: eq, value: x}'), FILTER_LINE, "control characters: U+0000"
    ),
    "raw-field-with-bell": Refused(
        _where('{field: "raw.Sub\\aject", op: eq, value: x}'), FILTER_LINE, "control characters: U+0007"
    ),
    "raw-field-with-rtl-override": Refused(
        _where('{field: "raw.Subject\\u202e", op: eq, value: x}'), FILTER_LINE, "printable text; this one contains"
    ),
    "raw-field-with-a-quote": Refused(
        _where("{field: 'raw.Sub\"ject', op: eq, value: x}"), FILTER_LINE, "is not a CRM field name"
    ),
    "date-field-the-records-lack": Refused(
        BASE.replace(COUNTED, f"{COUNTED}          date_field: close_date\n", 1),
        _line(BASE, COUNTED) + 1,
        "activities have no close_date; date_field is one of",
    ),
    "followed-by-for-ever": Refused(
        _where("{followed_by: {within_days: 10000000}}"), FILTER_LINE, "less than or equal to 36500"
    ),
    "in-list-over-the-filter-limit": Refused(
        _where(f"{{field: subject, op: not_in, value: [{', '.join(f's{n}' for n in range(MAX_VALUES + 1))}]}}"),
        FILTER_LINE,
        f"a filter has at most {MAX_VALUES:,} values",
    ),
    "in-list-of-40000-values": Refused(
        _where(f"{{field: subject, op: not_in, value: [{', '.join(f's{n}' for n in range(40_000))}]}}"),
        FILTER_LINE,
        f"the file has more than {MAX_NODES:,} values, lists and mappings",
    ),
    "team-name-too-long": Refused(
        BASE.replace("  name: Vertrieb DACH ", f"  name: {'V' * 300} ", 1), 9, "at most 200 characters"
    ),
    "billion-laughs": Refused(
        _laughs(), FILTER_LINE + 4, f"the file stands for more than {MAX_NODES:,} values, lists and mappings"
    ),
    "recursive-alias": Refused(
        _where("{field: activity_kind, op: in, value: &loop [call, *loop]}"),
        FILTER_LINE,
        "alias *loop refers to a list or mapping that contains it",
    ),
    "nested-5000-deep": Refused(
        _where("{field: activity_kind, op: in, value: " + "[" * 5000 + "call" + "]" * 5000 + "}"),
        FILTER_LINE,
        "nested more than 64 levels deep",
    ),
    "binary-text": Refused(
        BASE.replace("title: 150 meetings with prospects", "title: !!binary AAAA", 1),
        TITLE_LINE,
        "!!binary is not supported",
    ),
    "larger-than-1-mib": Refused(
        BASE + "# " + "x" * MAX_FILE_BYTES + "\n", BASE.count("\n") + 1, "larger than 1,048,576 bytes"
    ),
}


def test_the_bomb_is_small() -> None:
    bomb = _laughs()[len(BASE[: BASE.index(FILTER)]) :].split("\n        baseline")[0]
    assert len(bomb.encode()) < 1_000  # about the 845 bytes; what it stands for is 10^10 values


# --- the command line ---------------------------------------------------------------------------------------------


@pytest.fixture
def okrsync(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., Result]]:
    """``okrsync("mappings", "validate", FILE)`` in this process, on the world synced into the data dir's SQLite."""
    data = tmp_path / "data"
    data.mkdir()
    engine = make_engine(f"sqlite:///{data / 'okrsync.db'}")
    create_schema(engine)
    world.build(engine)
    engine.dispose()
    for name in [n for n in os.environ if n.startswith("OKRSYNC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("OKRSYNC_DATA_DIR", str(data))
    get_settings.cache_clear()

    def run(*args: str) -> Result:
        return CliRunner().invoke(app, list(args))

    yield run
    get_settings.cache_clear()


def _refused(result: Result, path: Path, case: Refused) -> None:
    # refused by the command, not by an exception escaping it (CliRunner keeps a traceback in result.exception)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (result.output, result.exception)
    located = [line for line in result.stderr.splitlines() if re.match(rf"{re.escape(str(path))}:\d+:\d+: ", line)]
    assert located, result.stderr
    assert any(f"{path}:{case.line}:" in line and case.says in line for line in located), (case, result.stderr)


def test_the_command_line_validates_and_previews_the_base_file(okrsync: Callable[..., Result], tmp_path: Path) -> None:
    path = tmp_path / "base.yaml"
    path.write_text(BASE, encoding="utf-8")
    validated = okrsync("mappings", "validate", str(path))
    assert validated.exit_code == 0 and "valid — 2 objective(s), 7 key result(s)" in validated.stdout, validated.output
    previewed = okrsync("mappings", "preview", str(path), "--as-of", AS_OF)
    assert previewed.exit_code == 0 and "150 meetings with prospects" in previewed.stdout, previewed.output


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_the_command_line_refuses_with_the_line(okrsync: Callable[..., Result], tmp_path: Path, name: str) -> None:
    case = CASES[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(case.text, encoding="utf-8")
    _refused(okrsync("mappings", "validate", str(path)), path, case)
    previewed = okrsync("mappings", "preview", str(path), "--as-of", AS_OF)
    _refused(previewed, path, case)
    applied = okrsync("mappings", "apply", str(path), "--as-of", AS_OF)
    _refused(applied, path, case)
    assert "nothing was applied" in applied.stderr
    assert "no mapping applied yet" in okrsync("report").stderr


# --- the HTTP API -------------------------------------------------------------------------------------------------


@dataclass
class Api:
    base_url: str
    token: str

    def post(self, path: str, text: str) -> httpx.Response:
        body: dict[str, Any] = {"yaml": text, "connection": "salesforce/world"}
        headers = {"Authorization": f"Bearer {self.token}"}
        return loopback.post(f"{self.base_url}/api/v1/mappings/{path}", json=body, headers=headers, timeout=60)


@pytest.fixture
def api(engine: Engine) -> Iterator[Api]:
    world.build(engine)
    with Session(engine) as session:
        _row, token = create_token(session, name="sales ops", role=Role.sales_ops)
        session.commit()
    with ThreadedServer(create_app(settings=Settings(_env_file=None), engine=engine, worker=False)) as http:  # type: ignore[call-arg]
        yield Api(http.base_url, token)


@pytest.mark.slow  # serves the API on loopback and sends every refused case to three endpoints
def test_the_api_refuses_with_the_line_and_never_answers_500(api: Api) -> None:
    for name, case in CASES.items():
        validated = api.post("validate", case.text)
        assert validated.status_code == 200, (name, validated.text)
        problems = validated.json()["problems"]
        assert validated.json()["valid"] is False and problems, name
        assert all(p["line"] is not None and p["column"] is not None for p in problems), (name, problems)
        assert any(p["line"] == case.line and case.says in p["message"] for p in problems), (name, problems)
        for path in ("preview", "apply"):
            answer = api.post(path, case.text)
            assert answer.status_code == 422, (name, path, answer.text)
            assert answer.json()["error"] == "invalid", (name, path)
            assert f"mapping.yaml:{case.line}:" in answer.json()["detail"] and case.says in answer.json()["detail"]


def test_a_filter_at_the_limits_computes_on_every_database(api: Api) -> None:
    """MAX_CONDITIONS conditions and MAX_VALUES values in one filter: far below what SQLite and PostgreSQL take."""
    per_list = MAX_VALUES // MAX_CONDITIONS
    conditions = [
        "{field: subject, op: not_in, value: [" + ", ".join(f"s{c}-{v}" for v in range(per_list)) + "]}"
        for c in range(MAX_CONDITIONS - 2)
    ]
    # and the kinds of value the type checks let through, on the fields they check
    conditions += ["{field: occurred_at, op: gte, value: '2026-07-01T09:30:00+02:00'}"]
    conditions += ["{field: account.annual_revenue, op: not_in, value: [1, 2.5, 1000000000000000]}"]
    text = _where(*conditions)
    assert api.post("validate", text).json() == {"valid": True, "problems": []}
    previewed = api.post("preview", text)
    assert previewed.status_code == 200, previewed.text
    one_more = _where(*conditions, "{field: subject, op: ne, value: x}")
    problems = api.post("validate", one_more).json()["problems"]
    assert [p["message"] for p in problems] == [
        f"objectives[0].key_results[0].metric.where[{MAX_CONDITIONS}]: a filter has at most {MAX_CONDITIONS} "
        "conditions, counting any_of alternatives"
    ]
