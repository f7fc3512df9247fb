"""The dashboard's pages as view models read from the database: plain functions taking a session and a mapping,
callable without HTTP (the benchmark times them), each with a fixed small number of queries however many key
results the mapping has (history is read in a few statements per page, never one per key result).

``render_check_in`` renders the weekly check-in as HTML for the dashboard and for ``okrsync report --format html``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlmodel
from markupsafe import Markup
from sqlalchemy import func, select, union_all
from sqlmodel import Session, col

from mappings.config import KeyResult, ManualMetric, MappingConfig
from service.checkins import service as checkins
from service.checkins.models import CheckIn
from service.compute import report as reports
from service.compute.models import (
    HygieneSummary,
    KeyResultContribution,
    KeyResultHistory,
    KeyResultValue,
)
from service.compute.repository import table
from service.crm.models import Account, CrmConnection
from service.dashboard import charts, i18n, me
from service.dashboard.links import RecordLink, RecordLinks
from service.kit.auth import Caller
from service.kit.db import utcnow
from service.okrs import service as okrs
from service.okrs.models import OkrMapping
from service.sprints import service as sprints

EVIDENCE_PAGE = 50
PAST_PAGE = 10  # past check-ins per page, newest first
HISTORY = table(KeyResultHistory)


class NotFoundError(LookupError):
    """No such mapping or key result: the message names what was asked for."""


@dataclass(frozen=True)
class MappingRow:
    id: int
    team: str
    cycle: str
    start: date
    end: date
    crm: str
    connection: str
    state: str  # planned | running | ended


def _state(start: date, end: date, today: date) -> str:
    return "planned" if today < start else "running" if today <= end else "ended"


def mapping_row(mapping: OkrMapping, connection: CrmConnection, today: date) -> MappingRow:
    return MappingRow(
        mapping.id or 0, mapping.team, mapping.cycle, mapping.cycle_start, mapping.cycle_end, connection.crm,
        connection.name, _state(mapping.cycle_start, mapping.cycle_end, today),
    )  # fmt: skip


def mapping_rows(session: Session, *, today: date) -> list[MappingRow]:
    """Every applied mapping with its CRM connection, newest cycle first."""
    rows = session.exec(
        sqlmodel.select(OkrMapping, CrmConnection)
        .join(CrmConnection, col(CrmConnection.id) == OkrMapping.connection_id)
        .where(OkrMapping.current_version > 0)
        .order_by(col(OkrMapping.cycle_start).desc(), OkrMapping.team, col(OkrMapping.id))
    ).all()
    return [mapping_row(m, c, today) for m, c in rows]


def load_mapping(session: Session, mapping_id: int) -> tuple[OkrMapping, CrmConnection]:
    mapping = session.get(OkrMapping, mapping_id)
    if mapping is None or mapping.current_version == 0:
        raise NotFoundError(f"no mapping {mapping_id}")
    connection = session.get(CrmConnection, mapping.connection_id)
    assert connection is not None
    return mapping, connection


def account_owner(session: Session, connection_id: int, account_id: str) -> str | None:
    account = session.get(Account, (connection_id, account_id))
    return account.owner_id if account is not None else None


def _expected(metric: Any, value: float | None) -> str:
    """Expected by now, formatted like the key result's values (a count expects whole records)."""
    if value is not None and metric.type in ("count", "sum"):
        value = float(round(value))
    elif value is not None and not reports.is_share(metric):  # a manual value: no more precise than people say
        value = round(value, 1)
    return reports.format_value(metric, value)


# -- trends -----------------------------------------------------------------------------------------------------


def trends(
    session: Session,
    mapping: OkrMapping,
    config: MappingConfig,
    values: dict[str, KeyResultValue],
    *,
    only: str | None = None,
) -> dict[str, checkins.Trend]:
    """``checkins.service.trend`` for every key result of ``config`` (or ``only`` one) at once: three queries that
    each read only the history index (points per key result, the latest row of each, the latest of each a week
    before that)."""
    krs = [kr for _o, kr in config.key_results() if only is None or kr.key == only]
    keys = [kr.key for kr in krs]
    points = dict(
        session.execute(
            select(HISTORY.c.kr_key, func.count())
            .where(HISTORY.c.mapping_id == mapping.id, HISTORY.c.kr_key.in_(keys))
            .group_by(HISTORY.c.kr_key)
        ).all()
    )
    latest = _latest_rows(session, mapping, [(k, None) for k in keys if k in points])
    week_ago = _latest_rows(session, mapping, [(k, at - timedelta(days=7)) for k, (at, _v) in latest.items()])
    out = {}
    for kr in krs:
        if kr.key not in latest:
            out[kr.key] = checkins.Trend(kr.key, None, None, None, 0)
            continue
        value, before = latest[kr.key][1], week_ago.get(kr.key, (None, None))[1]
        stored = values.get(kr.key)
        expected = kr.baseline + (kr.target - kr.baseline) * stored.expected if stored is not None else None
        change = value - before if value is not None and before is not None else None
        out[kr.key] = checkins.Trend(kr.key, value, expected, change, int(points[kr.key]))
    return out


def _latest_rows(
    session: Session, mapping: OkrMapping, wanted: list[tuple[str, datetime | None]]
) -> dict[str, tuple[datetime, float | None]]:
    """Per key result its latest history row (at or before a moment): one statement of index lookups, the same
    row ``trend()`` takes (latest ``as_of``, then the latest id)."""
    selects = []
    for kr_key, until in wanted:
        query = select(HISTORY.c.kr_key, HISTORY.c.as_of, HISTORY.c.value).where(
            HISTORY.c.mapping_id == mapping.id, HISTORY.c.kr_key == kr_key
        )
        if until is not None:
            query = query.where(HISTORY.c.as_of <= until)
        selects.append(query.order_by(HISTORY.c.as_of.desc(), HISTORY.c.id.desc()).limit(1).subquery().select())
    if not selects:
        return {}
    statement = selects[0] if len(selects) == 1 else union_all(*selects)
    return {kr_key: (as_of, value) for kr_key, as_of, value in session.execute(statement).all()}


def _values(session: Session, mapping: OkrMapping) -> dict[str, KeyResultValue]:
    query = sqlmodel.select(KeyResultValue).where(KeyResultValue.mapping_id == mapping.id)
    return {v.kr_key: v for v in session.exec(query).all()}


# -- overview ---------------------------------------------------------------------------------------------------


@dataclass
class Overview:
    mapping: MappingRow
    report: reports.CheckIn
    sprint: sprints.SprintReview | None
    last_check_in: datetime | None
    kam_accounts: int
    has_hygiene: bool
    work: me.MyWork | None = None  # the signed-in person's own part
    hygiene_elsewhere: MappingRow | None = None  # no rules here: the cycle whose rules score this pipeline


def overview(
    session: Session, mapping: OkrMapping, *, today: date, caller: Caller | None = None, lang: str = "en"
) -> Overview:
    """Objectives and key results with progress, status and each member's contribution, the current sprint,
    hygiene score and the latest check-in; with ``caller`` (a ``Caller``), their own work first."""
    _mapping, connection = load_mapping(session, mapping.id or 0)
    report = reports.check_in(session, mapping, worst=0)
    config = okrs.current_config(session, mapping)
    last = session.execute(
        select(func.max(table(CheckIn).c.held_at)).where(table(CheckIn).c.mapping_id == mapping.id)
    ).scalar()
    source = me.hygiene_source(session, mapping, config, today)
    elsewhere = mapping_row(source, connection, today) if source is not None and source.id != mapping.id else None
    return Overview(
        mapping_row(mapping, connection, today), report,
        sprints.current(sprints.reviews(session, mapping, today=today), today) if config.sprints else None,
        last, len(report.kam_accounts), bool(config.hygiene.rules),
        me.my_work(session, mapping, me.who(session, connection.id or 0, caller), today=today, lang=lang)
        if caller is not None else None,
        elsewhere,
    )  # fmt: skip


# -- one key result ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvidenceRow:
    occurred_at: datetime | None
    part: str
    record: RecordLink
    related: RecordLink | None
    owner: str
    shown: str
    business: str = ""  # a response pair's wait in the team's open hours, for a KR measured in business hours


@dataclass
class KeyResultPage:
    mapping: MappingRow
    objective: str
    kr: KeyResult
    status: str
    progress: float | None
    expected: float
    shown_value: str
    shown_target: str
    shown_baseline: str
    shown_expected: str
    shown_change: str
    as_of: datetime | None
    window_start: datetime
    window_end: datetime
    chart: charts.BurnUp
    contributions: list[tuple[str, str]]
    evidence_kind: str  # records | hygiene | kam | manual
    shown_exact: str | None = None  # the exact figure behind a compact money value
    evidence_total: int = 0
    evidence_offset: int = 0
    evidence_limit: int = EVIDENCE_PAGE
    evidence: list[EvidenceRow] = field(default_factory=list)

    @property
    def last_day(self) -> date:
        """The window's last day (a window ending at midnight ends the day before)."""
        end = self.window_end
        return (end - timedelta(microseconds=1)).date() if end.time() == time(0) else end.date()


def chart_svg(page: KeyResultPage, *, title: str, legend: dict[str, str], lang: str, now: datetime) -> Markup:
    """The page's burn-up chart as SVG, its values formatted like the key result's in ``lang``."""
    return charts.svg(
        page.chart, title=title, legend=legend, now=now,
        shown=lambda value: i18n.localize_number(reports.format_value(page.kr.metric, value), lang),
    )  # fmt: skip


def _evidence_value(part: str, value: float | None) -> str:
    """What a row adds to the value: a response pair's wall-clock wait in hours, a sum's amount; nothing for a row
    that counts 1."""
    if part == "pair":
        return _hours(value)
    return "" if value in (None, 1.0) else f"{value:,.2f}".rstrip("0").rstrip(".")


def _hours(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds / 3600:,.2f} h"


def key_result_page(
    session: Session, mapping: OkrMapping, kr_key: str, *, today: date, offset: int = 0, limit: int = EVIDENCE_PAGE,
    owner_ids: set[str] | None = None,
) -> KeyResultPage:  # fmt: skip
    """Value, trend, burn-up chart (one history query), contributions and a page of the records that counted
    (``owner_ids``: only those of these CRM users)."""
    _mapping, connection = load_mapping(session, mapping.id or 0)
    config = okrs.current_config(session, mapping)
    found = next(((o, kr) for o, kr in config.key_results() if kr.key == kr_key), None)
    if found is None:
        raise NotFoundError(f"no key result {kr_key!r} in {mapping.team} / {mapping.cycle}")
    objective, kr = found
    stored = session.get(KeyResultValue, (mapping.id, kr_key))
    values = {kr_key: stored} if stored is not None else {}
    trend = trends(session, mapping, config, values, only=kr_key)[kr_key]
    start, end = _window(mapping, config, kr)
    history = session.execute(
        select(HISTORY.c.as_of, HISTORY.c.value)
        .where(HISTORY.c.mapping_id == mapping.id, HISTORY.c.kr_key == kr_key, HISTORY.c.as_of >= start)
        .order_by(HISTORY.c.as_of, HISTORY.c.id)
    ).all()
    chart = charts.burn_up(
        [charts.Point(at, value) for at, value in history if value is not None],
        window_start=start, window_end=end, baseline=kr.baseline, target=kr.target,
    )  # fmt: skip
    names = reports.owner_names(session, connection.id or 0)
    contributions = sorted(
        session.exec(
            sqlmodel.select(KeyResultContribution).where(
                KeyResultContribution.mapping_id == mapping.id, KeyResultContribution.kr_key == kr_key
            )
        ).all(),
        key=lambda c: c.value if kr.direction.value == "lower" else -c.value,
    )
    kind = {"hygiene_score": "hygiene", "kam_criteria": "kam", "manual": "manual"}.get(kr.metric.type, "records")
    page = KeyResultPage(
        mapping=mapping_row(mapping, connection, today), objective=objective.title, kr=kr,
        status=stored.status if stored else "no_data", progress=stored.progress if stored else None,
        expected=stored.expected if stored else 0.0,
        shown_value=reports.format_value(kr.metric, stored.value if stored else None),
        shown_target=reports.format_value(kr.metric, kr.target),
        shown_baseline=reports.format_value(kr.metric, kr.baseline),
        shown_expected=_expected(kr.metric, trend.expected_value),
        shown_change=reports.format_change(kr.metric, trend.change_7d), as_of=stored.as_of if stored else None,
        window_start=start, window_end=end, chart=chart,
        contributions=[(names.get(c.owner_id, c.owner_id), reports.format_value(kr.metric, c.value))
                       for c in contributions],
        evidence_kind=kind, evidence_offset=offset, evidence_limit=limit,
        shown_exact=reports.format_exact(kr.metric, stored.value if stored else None),
    )  # fmt: skip
    if kind == "records":
        total, rows = reports.evidence(session, mapping, kr_key, limit=limit, offset=offset, owner_ids=owner_ids)
        links = RecordLinks(session, connection)
        links.load([r.record_id for r in rows] + [r.related_id for r in rows if r.related_id])
        page.evidence_total = total
        page.evidence = [
            EvidenceRow(
                r.occurred_at, r.part, links.link(r.record_id),
                links.link(r.related_id) if r.related_id else None, names.get(r.owner_id or "", r.owner_id or ""),
                _evidence_value(r.part, r.value),
                _hours(reports.business_wait(config, kr.metric, r.occurred_at, r.value)),
            )
            for r in rows
        ]  # fmt: skip
    return page


def _window(mapping: OkrMapping, config: MappingConfig, kr: KeyResult) -> tuple[datetime, datetime]:
    """The key result's whole window, start inclusive, end exclusive (the stored value's end stops at its as_of)."""
    first, last = mapping.cycle_start, mapping.cycle_end
    if not isinstance(kr.window, str):
        sprint = next((s for s in config.sprints if s.key == kr.window.sprint), None)
        if sprint is not None:
            first, last = sprint.start, sprint.end
    start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    return start, start + timedelta(days=(last - first).days + 1)


# -- the weekly check-in ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckInLine:
    key: str
    title: str
    objective: str
    status: str
    progress: float | None
    expected: float
    shown_value: str
    shown_target: str
    shown_expected: str
    shown_change: str
    manual: tuple[float | None, float | None] | None = None  # a manual KR: its (min, max) for the form's input
    last_confidence: int | str | None = None  # said at the last check-in before today
    last_held: datetime | None = None


@dataclass(frozen=True)
class FrozenLine:
    title: str
    status: str
    shown_value: str
    shown_target: str
    confidence: int | str | None
    note: str | None


@dataclass(frozen=True)
class PastCheckIn:
    id: int
    held_at: datetime
    author: str
    attendees: list[str]
    note: str | None
    hygiene_score: float | None
    lines: list[FrozenLine]
    corrects_id: int | None = None
    earlier: list[PastCheckIn] = field(default_factory=list)  # the versions this one corrected, newest first
    correctable: bool = False  # held today in a running cycle, and not corrected yet
    frozen: dict[str, Any] = field(default_factory=dict)  # kr key -> what was said (confidence, note)


@dataclass
class CheckInPage:
    mapping: MappingRow
    as_of: datetime | None
    lines: list[CheckInLine]
    members: list[str]
    past: list[PastCheckIn]
    hygiene_score: float | None
    is_open: bool  # the cycle runs: a check-in can be recorded
    past_total: int = 0
    past_offset: int = 0
    past_limit: int = PAST_PAGE
    correcting: PastCheckIn | None = None  # the check-in of today the form corrects


def members(session: Session, mapping: OkrMapping, config: MappingConfig) -> list[str]:
    """The team as people are called (see ``checkins.team_names``)."""
    return [name for name, _email in checkins.team_names(session, mapping, config)]


def check_in_page(
    session: Session, mapping: OkrMapping, *, today: date, past_offset: int = 0, past_limit: int = PAST_PAGE,
    correct: int | None = None,
) -> CheckInPage:  # fmt: skip
    """Every key result with value, expected by now, status, change over 7 days and the confidence said at the
    last check-in before today; the team; a page of the past check-ins, newest first, each correction in the place
    of what it corrected (kept below it); ``correct``: a check-in of today whose values fill the form."""
    _mapping, connection = load_mapping(session, mapping.id or 0)
    config = okrs.current_config(session, mapping)
    values = _values(session, mapping)
    found = trends(session, mapping, config, values)
    everything = checkins.check_ins(session, mapping)
    corrected_by = {row.corrects_id: row for row in everything if row.corrects_id is not None}
    held = [row for row in everything if row.id not in corrected_by]  # the versions that stand
    before_today = next((row for row in held if row.held_at.date() < today), None)
    lines = []
    for objective, kr in config.key_results():
        stored, trend = values.get(kr.key), found[kr.key]
        said = before_today.key_results.get(kr.key, {}) if before_today else {}
        lines.append(
            CheckInLine(
                kr.key, kr.title, objective.title, stored.status if stored else "no_data",
                stored.progress if stored else None, stored.expected if stored else 0.0,
                reports.format_value(kr.metric, stored.value if stored else None),
                reports.format_value(kr.metric, kr.target), _expected(kr.metric, trend.expected_value),
                reports.format_change(kr.metric, trend.change_7d),
                (kr.metric.min, kr.metric.max) if isinstance(kr.metric, ManualMetric) else None,
                said.get("confidence"), before_today.held_at if before_today and said.get("confidence") else None,
            )
        )  # fmt: skip
    metrics = {kr.key: kr.metric for _o, kr in config.key_results()}
    running = _state(mapping.cycle_start, mapping.cycle_end, today) == "running"
    by_id = {row.id: row for row in everything}

    def past_of(row: CheckIn, *, chain: bool) -> PastCheckIn:
        frozen = [
            FrozenLine(
                kr.get("title") or kr_key, kr.get("status") or "no_data",
                _frozen_value(metrics.get(kr_key), kr.get("value")),
                _frozen_value(metrics.get(kr_key), kr.get("target")), kr.get("confidence"), kr.get("note"),
            )
            for kr_key, kr in row.key_results.items()
        ]  # fmt: skip
        earlier: list[PastCheckIn] = []
        if chain:
            previous = by_id.get(row.corrects_id) if row.corrects_id else None
            while previous is not None:
                earlier.append(past_of(previous, chain=False))
                previous = by_id.get(previous.corrects_id) if previous.corrects_id else None
        return PastCheckIn(
            row.id or 0, row.held_at, row.author, list(row.attendees), row.note,
            row.hygiene_score if config.hygiene.rules else None, frozen, row.corrects_id, earlier,
            running and row.held_at.date() == today and row.id not in corrected_by, row.key_results,
        )  # fmt: skip

    past = [past_of(row, chain=True) for row in held[past_offset : past_offset + past_limit]]
    correcting = None
    if correct is not None:
        row = by_id.get(correct)
        if row is None or row.mapping_id != mapping.id:
            raise NotFoundError(f"no check-in {correct} of {mapping.team} / {mapping.cycle}")
        correcting = past_of(row, chain=False)
    hygiene = session.get(HygieneSummary, (mapping.id, "*"))
    return CheckInPage(
        mapping_row(mapping, connection, today), max((v.as_of for v in values.values()), default=None), lines,
        members(session, mapping, config), past, hygiene.score if hygiene and config.hygiene.rules else None, running,
        len(held), past_offset, past_limit, correcting,
    )  # fmt: skip


def _frozen_value(metric: Any, value: float | None) -> str:
    """A frozen value formatted like the key result's (a key result since removed: plainly)."""
    if metric is not None:
        return reports.format_value(metric, value)
    return "–" if value is None else f"{value:g}"


def render_check_in(session: Session, mapping: OkrMapping, *, lang: str = "en", standalone: bool = True) -> str:
    """The weekly check-in as HTML: ``standalone`` gives a whole document with the CSS inlined, no form and no
    navigation (``okrsync report --format html``); otherwise the page's content for the dashboard."""
    from service.dashboard.render import render

    page = check_in_page(session, mapping, today=utcnow().date())
    if standalone:
        return render(
            "check_in.html", lang=lang, standalone=True, page=page, mapping=page.mapping, generated_at=utcnow()
        )
    return render("_check_in_content.html", lang=lang, page=page, mapping=page.mapping, form=None)


# -- sprints ----------------------------------------------------------------------------------------------------


@dataclass
class SprintPage:
    mapping: MappingRow
    current: sprints.SprintReview | None
    reviews: list[sprints.SprintReview]
    forecast: sprints.Forecast
    shown_suggestion: str
    retrospective_for: list[sprints.SprintReview]  # sprints that have started: a retrospective may be recorded
    today_key: str | None = None  # the sprint the team is in (or last was, or next is)


def sprint_page(session: Session, mapping: OkrMapping, *, today: date, sprint: str = "") -> SprintPage:
    """The current sprint's review (or ``sprint``'s: any sprint, ended ones included), carried improvement and
    retrospective, and forecast accuracy over all."""
    _mapping, connection = load_mapping(session, mapping.id or 0)
    all_reviews = sprints.reviews(session, mapping, today=today)
    chosen = next((r for r in all_reviews if r.key == sprint), None) if sprint else None
    if sprint and chosen is None:
        known = ", ".join(r.key for r in all_reviews) or "none"
        raise NotFoundError(f"no sprint {sprint!r} in {mapping.team} / {mapping.cycle} (sprints: {known})")
    forecast = sprints.forecast(all_reviews)
    upcoming = next((r for r in all_reviews if r.key == forecast.next_sprint), None)
    config = okrs.current_config(session, mapping)
    commitment = next((s.commitment for s in config.sprints if upcoming and s.key == upcoming.key), None)
    suggestion = forecast.suggested_next
    shown = (
        "–" if suggestion is None else reports.format_value(commitment.metric, suggestion) if commitment
        else f"{suggestion:g}"
    )  # fmt: skip
    return SprintPage(
        mapping_row(mapping, connection, today),
        chosen or sprints.current(all_reviews, today),
        all_reviews,
        forecast,
        shown,
        [r for r in all_reviews if r.state != "planned"],
        (today_sprint.key if (today_sprint := sprints.current(all_reviews, today)) else None),
    )
