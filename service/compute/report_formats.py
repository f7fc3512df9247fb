"""The weekly check-in as Markdown and CSV, and key-result attainment per cycle as CSV (for incentive schemes).

``gather`` and ``attainment`` read what they need from a session; the ``render_*`` functions are pure: they take
that data and return text, so the dashboard and the benchmarks can reuse them. User text (KR titles, notes,
account names, improvement items) is never markup: Markdown cells are escaped so a pipe or a newline cannot break
a table and HTML comes out inert, and CSV cells that a spreadsheet would run as a formula get a leading apostrophe.
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

import sqlmodel
from sqlmodel import Session, col

from service.checkins import service as checkins
from service.compute import report as reports
from service.compute.models import KeyResultValue, ObjectiveValue
from service.crm.models import CrmConnection
from service.kit.db import utcnow
from service.okrs import service as okrs
from service.okrs.models import OkrMapping
from service.sprints import service as sprints

LANGUAGES = ("en", "de")


@dataclass(frozen=True)
class KeyResultFacts:
    """What the check-in lines do not carry: raw numbers for CSV, the 7-day change, the latest check-in's say."""

    baseline: float
    target: float
    weight: float
    as_of: datetime | None
    change_7d: float | None
    shown_change: str  # formatted like the KR's values: "+12", "−5%", "–"
    confidence: int | str | None  # at the latest frozen check-in
    note: str | None


@dataclass(frozen=True)
class FrozenLine:
    kr_key: str
    title: str
    shown_value: str
    status: str
    confidence: int | str | None
    note: str | None


@dataclass(frozen=True)
class LatestCheckIn:
    held_at: datetime
    author: str
    attendees: list[str]
    note: str | None
    hygiene_score: float | None
    key_results: list[FrozenLine]


@dataclass(frozen=True)
class WeeklyReport:
    check_in: reports.CheckIn
    connection: str  # crm/name
    key_results: dict[str, KeyResultFacts]
    sprint: sprints.SprintReview | None
    forecast: sprints.Forecast
    latest: LatestCheckIn | None


def gather(session: Session, mapping: OkrMapping, *, today: date | None = None, lang: str = "en") -> WeeklyReport:
    """Everything the weekly check-in report shows, read from the stored results (nothing is computed)."""
    today = today or utcnow().date()
    data = reports.check_in(session, mapping, lang=lang)  # hygiene sentences in the report's language
    config = okrs.current_config(session, mapping)
    connection = session.get(CrmConnection, mapping.connection_id)
    values = {
        v.kr_key: v
        for v in session.exec(sqlmodel.select(KeyResultValue).where(KeyResultValue.mapping_id == mapping.id)).all()
    }
    past = checkins.check_ins(session, mapping)
    frozen = past[0].key_results if past else {}
    metrics = {kr.key: kr.metric for _o, kr in config.key_results()}
    facts = {}
    for _objective, kr in config.key_results():
        trend = checkins.trend(session, mapping, kr.key)
        said = frozen.get(kr.key) or {}
        stored = values.get(kr.key)
        facts[kr.key] = KeyResultFacts(
            kr.baseline, kr.target, kr.weight, stored.as_of if stored else None, trend.change_7d,
            reports.format_change(kr.metric, trend.change_7d), said.get("confidence"), said.get("note"),
        )  # fmt: skip
    latest = None
    if past:
        row = past[0]
        lines = [
            FrozenLine(
                kr_key, said.get("title") or kr_key, _frozen_value(metrics.get(kr_key), said.get("value")),
                said.get("status") or "no_data", said.get("confidence"), said.get("note"),
            )
            for kr_key, said in row.key_results.items()
        ]  # fmt: skip
        latest = LatestCheckIn(row.held_at, row.author, list(row.attendees), row.note, row.hygiene_score, lines)
    all_reviews = sprints.reviews(session, mapping, today=today)
    return WeeklyReport(
        data,
        f"{connection.crm}/{connection.name}" if connection else str(mapping.connection_id),
        facts,
        sprints.current(all_reviews, today),
        sprints.forecast(all_reviews),
        latest,
    )


def _frozen_value(metric: Any, value: float | None) -> str:
    """A frozen value formatted like its key result's (one since removed from the mapping: plainly)."""
    if metric is not None:
        return reports.format_value(metric, value)
    return "–" if value is None else f"{value:g}"


# -- Markdown ------------------------------------------------------------------------------------------------------

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Weekly check-in", "as_of": "as of", "to": "to", "progress": "Progress", "achieved": "achieved",
        "key_result": "Key result", "value": "Value", "target": "Target", "expected": "Expected by now",
        "status": "Status", "change_7d": "Change (7 days)", "contributors": "Top contributors",
        "hygiene": "Pipeline hygiene", "hygiene_score": "{score} of {open} open opportunities pass every rule",
        "rule": "Rule", "violations": "Violations", "worst": "Opportunities with the most problems",
        "opportunity": "Opportunity", "owner": "Owner", "problems": "Problems",
        "kam": "Key accounts", "kam_met": "{met} of {total} key accounts meet all criteria", "account": "Account",
        "kam_owner": "KAM", "score": "Score",
        "sprint": "Sprint", "no_sprint": "No sprint in this cycle.", "goal": "Goal", "dates": "Dates",
        "state": "State", "commitment": "Commitment", "committed": "Committed", "sprint_achieved": "Achieved",
        "share": "Achieved of committed",
        "accuracy": "Accuracy", "gain": "Gain during the sprint", "carried": "Improvement carried in",
        "retrospective": "Retrospective improvement", "went_well": "Went well",
        "forecast": "Forecast accuracy: {accuracy} on average over {sprints} ended sprint(s); say/do {say_do}",
        "suggested": "suggested next commitment: {value} ({sprint})",
        "no_forecast": "Forecast accuracy: no ended sprint with a commitment yet",
        "latest": "Latest check-in", "no_check_in": "No check-in recorded yet.", "held": "Held",
        "by": "by", "attendees": "Attendees", "note": "Note", "confidence": "Confidence",
        "state_planned": "planned", "state_running": "running", "state_ended": "ended",
        "status_on_track": "on track", "status_at_risk": "at risk", "status_off_track": "off track",
        "status_not_started": "not started", "status_too_early": "too early to tell", "status_no_data": "no data",
        "status_achieved": "achieved", "status_missed": "missed",
        "status_not_computed": "not computed",
    },
    "de": {
        "title": "Wöchentlicher Check-in", "as_of": "Stand", "to": "bis", "progress": "Fortschritt",
        "achieved": "erreicht", "key_result": "Key Result", "value": "Wert", "target": "Ziel",
        "expected": "Soll bis heute", "status": "Status", "change_7d": "Veränderung (7 Tage)",
        "contributors": "Größte Beiträge", "hygiene": "Pipeline-Hygiene",
        "hygiene_score": "{score} von {open} offenen Opportunities erfüllen alle Regeln", "rule": "Regel",
        "violations": "Verstöße", "worst": "Opportunities mit den meisten Problemen", "opportunity": "Opportunity",
        "owner": "Verantwortlich", "problems": "Probleme", "kam": "Key Accounts",
        "kam_met": "{met} von {total} Key Accounts erfüllen alle Kriterien", "account": "Account",
        "kam_owner": "KAM", "score": "Erfüllung",
        "sprint": "Sprint", "no_sprint": "Kein Sprint in diesem Zyklus.", "goal": "Ziel", "dates": "Zeitraum",
        "state": "Stand", "commitment": "Zusage", "committed": "Zugesagt", "sprint_achieved": "Erreicht",
        "share": "Erreicht von zugesagt",
        "accuracy": "Treffsicherheit", "gain": "Zuwachs im Sprint", "carried": "Übernommene Verbesserung",
        "retrospective": "Verbesserung aus der Retrospektive", "went_well": "Lief gut",
        "forecast": "Prognosegenauigkeit: im Mittel {accuracy} über {sprints} beendete(n) Sprint(s); "
        "Say/Do {say_do}",
        "suggested": "empfohlene nächste Zusage: {value} ({sprint})",
        "no_forecast": "Prognosegenauigkeit: noch kein beendeter Sprint mit Zusage",
        "latest": "Letzter Check-in", "no_check_in": "Noch kein Check-in erfasst.", "held": "Am",
        "by": "von", "attendees": "Teilnehmende", "note": "Notiz", "confidence": "Zuversicht",
        "state_planned": "geplant", "state_running": "läuft", "state_ended": "beendet",
        "status_on_track": "im Plan", "status_at_risk": "gefährdet", "status_off_track": "nicht im Plan",
        "status_not_started": "nicht begonnen", "status_too_early": "noch zu früh", "status_no_data": "keine Daten",
        "status_achieved": "erreicht", "status_missed": "verfehlt",
        "status_not_computed": "nicht berechnet",
    },
}  # fmt: skip

# backslash-escaped so user text stays text: emphasis, code, links, strikethrough and the table's own pipes; an
# underscore inside a word (close_date_past) is no emphasis and stays as it is
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]|~]|(?<!\w)_|_(?!\w))")
_NEWLINE = re.compile(r"\r\n|\r|\n")


def md(text: object) -> str:
    """User text for a Markdown cell or line: HTML inert (``&lt;``), Markdown syntax escaped, newlines as <br>."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False))
    return _NEWLINE.sub("<br>", escaped)


def _table(header: list[str], rows: Iterable[list[Any]]) -> list[str]:
    """A Markdown table; every cell is escaped here, so every row has the header's number of columns."""
    lines = ["| " + " | ".join(md(h) for h in header) + " |", "|" + "|".join("---" for _h in header) + "|"]
    lines += ["| " + " | ".join(md("" if cell is None else cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def _pct(share: float | None, lang: str) -> str:
    if share is None:
        return "–"
    return f"{share * 100:.0f} %" if lang == "de" else f"{share:.0%}"


_DE_NUMBER = str.maketrans({",": ".", ".": ","})


def _n(shown: str, lang: str) -> str:
    """A number formatted by ``format_value`` in ``lang``: 12.548.800, 47,3 h, 79 % in German."""
    if lang != "de":
        return shown
    return re.sub(r"(\d)%", r"\1 %", shown.translate(_DE_NUMBER))


def _label(labels: dict[str, str], prefix: str, code: str) -> str:
    return labels.get(f"{prefix}_{code.replace(' ', '_')}", code.replace("_", " "))


def render_markdown(report: WeeklyReport, *, lang: str = "en") -> str:
    """The weekly check-in as Markdown, labels in ``lang`` (en or de)."""
    if lang not in LABELS:
        raise ValueError(f"language {lang!r}: use {' or '.join(LABELS)}")
    t = LABELS[lang]
    data = report.check_in
    when = f" · {t['as_of']} {data.as_of:%Y-%m-%d %H:%M} UTC" if data.as_of else ""
    lines = [f"# {t['title']}: {md(data.team)} — {md(data.cycle)}", ""]
    lines += [f"{data.start} {t['to']} {data.end}{when} · {md(report.connection)}", ""]
    for objective in data.objectives:
        mark = f" · {t['achieved']}" if objective.achieved else ""
        lines += [f"## {md(objective.title)}", ""]
        lines += [f"{t['progress']} {_pct(objective.progress, lang)} · {_label(t, 'status', objective.status)}{mark}"]
        lines.append("")
        header = [t[k] for k in ("key_result", "value", "target", "progress", "expected", "status", "change_7d")]
        rows = []
        for kr in objective.key_results:
            facts = report.key_results.get(kr.key)
            rows.append(
                [
                    kr.title, _n(kr.shown, lang), _n(kr.target, lang), _pct(kr.progress, lang),
                    _pct(kr.expected, lang), _label(t, "status", kr.status),
                    _n(facts.shown_change, lang) if facts else "–",
                    ", ".join(f"{name} {_n(value, lang)}" for name, value in kr.contributions[:3]),
                ]
            )  # fmt: skip
        lines += _table([*header, t["contributors"]], rows)
    lines += _hygiene_section(data, t, lang)
    lines += _kam_section(data, t, lang)
    lines += _sprint_section(report, t, lang)
    lines += _latest_section(report.latest, t, lang)
    return "\n".join(lines).rstrip() + "\n"


def _hygiene_section(data: reports.CheckIn, t: dict[str, str], lang: str) -> list[str]:
    if not data.hygiene_rules:
        return []
    score = t["hygiene_score"].format(score=_pct(data.hygiene_score, lang), open=data.hygiene_open)
    lines = [f"## {t['hygiene']}", "", score, ""]
    lines += _table([t["rule"], t["violations"]], [[rule, count] for rule, count in data.hygiene_rules])
    if data.worst_opportunities:
        lines += [f"### {t['worst']}", ""]
        lines += _table(
            [t["opportunity"], t["owner"], t["problems"]],
            [[line.opportunity_id, line.owner, "; ".join(line.problems)] for line in data.worst_opportunities],
        )
    return lines


def _kam_section(data: reports.CheckIn, t: dict[str, str], lang: str) -> list[str]:
    if not data.kam_accounts:
        return []
    met = sum(1 for _name, _owner, score in data.kam_accounts if score is not None and score >= 1)
    lines = [f"## {t['kam']}", "", t["kam_met"].format(met=met, total=len(data.kam_accounts)), ""]
    rows = [[name, owner, _pct(score, lang)] for name, owner, score in data.kam_accounts]  # lowest score first
    return lines + _table([t["account"], t["kam_owner"], t["score"]], rows)


def _sprint_section(report: WeeklyReport, t: dict[str, str], lang: str) -> list[str]:
    lines = [f"## {t['sprint']}", ""]
    sprint = report.sprint
    if sprint is None:
        return [*lines, t["no_sprint"], ""]
    lines += [f"### {md(sprint.name)}", ""]
    facts = [[t["goal"], sprint.goal or "–"], [t["dates"], f"{sprint.start} {t['to']} {sprint.end}"]]
    facts.append([t["state"], _label(t, "state", sprint.state)])
    if sprint.commitment:
        facts += [
            [t["commitment"], sprint.commitment], [t["committed"], _n(sprint.shown_committed, lang)],
            [t["sprint_achieved"], _n(sprint.shown_achieved, lang)], [t["share"], _pct(sprint.achieved_share, lang)],
        ]  # fmt: skip
        if sprint.accuracy is not None:
            facts.append([t["accuracy"], _pct(sprint.accuracy, lang)])
    facts.append([t["carried"], sprint.carried_improvement or "–"])
    retro = sprint.retrospective
    facts.append([t["retrospective"], retro.improvement if retro else "–"])
    if retro and retro.went_well:
        facts.append([t["went_well"], retro.went_well])
    lines += [f"- **{label}:** {md(text)}" for label, text in facts]
    lines.append("")
    if sprint.serves:
        lines += _table(
            [t["key_result"], t["gain"]], [[gain.title, _n(gain.shown_gain, lang)] for gain in sprint.serves]
        )
    lines += [_forecast_line(report.forecast, t, lang), ""]
    return lines


def _forecast_line(forecast: sprints.Forecast, t: dict[str, str], lang: str) -> str:
    if not forecast.sprints:
        return t["no_forecast"]
    line = t["forecast"].format(
        accuracy=_pct(forecast.mean_accuracy, lang), sprints=forecast.sprints, say_do=_pct(forecast.say_do, lang)
    )
    if forecast.suggested_next is not None:
        line += "; " + t["suggested"].format(
            value=_n(f"{forecast.suggested_next:,g}", lang), sprint=md(forecast.next_sprint)
        )
    return line


def _latest_section(latest: LatestCheckIn | None, t: dict[str, str], lang: str) -> list[str]:
    lines = [f"## {t['latest']}", ""]
    if latest is None:
        return [*lines, t["no_check_in"], ""]
    lines += [f"{t['held']} {latest.held_at:%Y-%m-%d %H:%M} UTC {t['by']} {md(latest.author)}", ""]
    lines += [f"{t['attendees']}: {md(', '.join(latest.attendees) or '–')}", ""]
    if latest.note:
        lines += [f"{t['note']}: {md(latest.note)}", ""]
    rows = [
        [
            line.title,
            _n(line.shown_value, lang),
            _label(t, "status", line.status),
            _label(t, "status", line.confidence) if isinstance(line.confidence, str) else line.confidence,
            line.note,
        ]  # fmt: skip
        for line in latest.key_results
    ]
    header = [t["key_result"], t["value"], t["status"], t["confidence"], t["note"]]
    return lines + _table(header, rows)


# -- CSV -----------------------------------------------------------------------------------------------------------

# a spreadsheet runs a cell starting with one of these as a formula (=HYPERLINK(…) sends data away)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """A CSV cell: numbers plainly, yes/no for flags, text with a leading apostrophe where it would be a formula.

    Numbers are ours and never a formula ("-3" is minus three), so only text is guarded."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() else repr(round(float(value), 6))
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value)
    return f"'{text}" if text.startswith(FORMULA_START) else text


def _csv(header: list[str], rows: Iterable[Iterable[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([csv_cell(cell) for cell in row] for row in rows)
    return buffer.getvalue()


REPORT_COLUMNS = [
    "team", "cycle", "objective_key", "objective_title", "kr_key", "kr_title", "metric", "value", "target",
    "progress", "grade", "expected", "status", "achieved", "as_of", "change_7d", "confidence", "note",
]  # fmt: skip


def render_csv(report: WeeklyReport) -> str:
    """One row per key result: the check-in's numbers, the 7-day change and the latest check-in's confidence/note."""
    data = report.check_in
    rows = []
    for objective in data.objectives:
        for kr in objective.key_results:
            facts = report.key_results[kr.key]
            rows.append(
                [
                    data.team, data.cycle, objective.key, objective.title, kr.key, kr.title, kr.metric, kr.value,
                    facts.target, kr.progress, kr.grade, kr.expected, kr.status, kr.achieved, facts.as_of,
                    facts.change_7d, facts.confidence, facts.note,
                ]
            )  # fmt: skip
    return _csv(REPORT_COLUMNS, rows)


# -- attainment ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttainmentRow:
    team: str
    cycle: str
    cycle_start: date
    cycle_end: date
    connection: str
    objective_key: str
    objective: str
    kr_key: str
    kr_title: str
    weight: float
    baseline: float
    target: float
    value: float | None  # final when the cycle is closed, else current
    progress: float | None
    grade: float | None
    achieved: bool
    status: str
    cycle_closed: bool
    objective_achieved: bool


ATTAINMENT_COLUMNS = [f.name for f in fields(AttainmentRow)]


def attainment(
    session: Session, *, team: str | None = None, connection: CrmConnection | None = None, today: date | None = None
) -> list[AttainmentRow]:
    """Every key result of every applied mapping (all cycles), by cycle start, team, cycle, connection and the
    order of key results. Raises ``okrs.NotFoundError`` when nothing matches, naming what there is."""
    today = today or utcnow().date()
    found = okrs.mappings(session)
    if not found:
        raise okrs.NotFoundError("no mapping applied yet: run `okrsync mappings apply FILE`")
    if team is not None:
        teams = sorted({m.team for m in found})
        found = [m for m in found if m.team == team]
        if not found:
            raise okrs.NotFoundError(f"no mapping for team {team!r} (teams: {', '.join(teams)})")
    if connection is not None:
        found = [m for m in found if m.connection_id == connection.id]
        if not found:
            raise okrs.NotFoundError(f"no mapping on {connection.crm}/{connection.name}")
    connections = {c.id: f"{c.crm}/{c.name}" for c in session.exec(sqlmodel.select(CrmConnection)).all()}
    ids = [m.id for m in found]
    values = {
        (v.mapping_id, v.kr_key): v
        for v in session.exec(sqlmodel.select(KeyResultValue).where(col(KeyResultValue.mapping_id).in_(ids))).all()
    }
    objectives = {
        (o.mapping_id, o.objective_key): o
        for o in session.exec(sqlmodel.select(ObjectiveValue).where(col(ObjectiveValue.mapping_id).in_(ids))).all()
    }
    rows = []
    for mapping in sorted(found, key=lambda m: (m.cycle_start, m.team, m.cycle, connections.get(m.connection_id, ""))):
        config = okrs.current_config(session, mapping)
        for objective, kr in config.key_results():
            stored = values.get((mapping.id or 0, kr.key))
            objective_value = objectives.get((mapping.id or 0, objective.key))
            rows.append(
                AttainmentRow(
                    mapping.team, mapping.cycle, mapping.cycle_start, mapping.cycle_end,
                    connections.get(mapping.connection_id, str(mapping.connection_id)), objective.key,
                    objective.title, kr.key, kr.title, kr.weight, kr.baseline, kr.target,
                    stored.value if stored else None, stored.progress if stored else None,
                    stored.grade if stored else None, bool(stored and stored.achieved),
                    stored.status if stored else "not computed", today > mapping.cycle_end,
                    bool(objective_value and objective_value.achieved),
                )
            )  # fmt: skip
    return rows


def render_attainment_csv(rows: list[AttainmentRow]) -> str:
    return _csv(ATTAINMENT_COLUMNS, ([getattr(row, name) for name in ATTAINMENT_COLUMNS] for row in rows))
