"""The daily stand-up of a running sprint: per team member what they logged since the last working day that counts
toward the sprint's commitment and the key results it serves, the commitment's burn-down, and their blocked or
overdue items (the hygiene findings on their open opportunities). One screen, for the dashboard and the API.

How each number comes about (docs/metrics.md, "The daily stand-up", says the same for people):

* The stand-up is held on ``day`` (today unless asked for another). The running sprint is the one with
  ``start <= day <= end``; with none the caller gets ``NoRunningSprintError`` naming the last and the next sprint.
* "Since the last working day": ``since`` is the working day before ``day`` by the team's calendar (its working
  days, public holidays and closed days), else Monday to Friday (``mappings.calendar.previous_working_day``). On a
  Monday that is Friday. The window is [00:00 UTC of ``since``, 00:00 UTC of the day after ``day``): days are UTC
  days, like the windows of key results and sprints.
* What counts: the stored evidence rows (``key_result_evidence``, written by the last computation) of the sprint's
  commitment and of the key results it serves, credited to one of the member's CRM users, with ``occurred_at``
  inside the window. Evidence without a date (metrics dated by close date, or undated) cannot be "since" anything
  and is left out. A record is listed once with every commitment or key result it counts for.
* Burn-down, for a commitment that is a count or a sum: done(d) = the commitment's evidence (count: rows; sum:
  their values) with ``occurred_at`` before 00:00 UTC of the day after d; remaining(d) = committed − done(d); ideal(d)
  = committed × (sprint days after d) ÷ sprint days. One point per sprint day from its start to ``day``.
* Hygiene: the findings of the mapping whose rules judge this team's pipeline (this one, else the running cycle
  with rules on the same CRM connection: ``me.hygiene_source``), on opportunities the member owns, worded as the
  hygiene page words them, as of the last computation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlmodel import Session

from mappings.calendar import previous_working_day
from mappings.config import CountMetric, MappingConfig, SumMetric
from mappings.limits import FIRST_DAY, LAST_DAY
from service.compute import report as reports
from service.compute.models import KeyResultEvidence
from service.compute.repository import last_computed_as_of, table
from service.compute.service import sprint_evidence_key
from service.crm.models import Activity, CrmConnection, Owner
from service.dashboard import me
from service.dashboard.links import RecordLink, RecordLinks
from service.dashboard.service import MappingRow, load_mapping, mapping_row
from service.kit.errors import ConflictError, InvalidError
from service.okrs import service as okrs
from service.okrs.models import OkrMapping
from service.sprints import service as sprints

COMMITMENT = "commitment"  # what a record counts for: the sprint's commitment, else a served key result's key


class NoRunningSprintError(ConflictError):
    """No sprint runs on the asked day: the message names the mapping, the day, and the last and next sprint."""

    def __init__(
        self, message: str, *, day: date, last: sprints.SprintReview | None, upcoming: sprints.SprintReview | None
    ) -> None:
        super().__init__(message)
        self.day, self.last, self.upcoming = day, last, upcoming


class BadDayError(InvalidError):
    """The asked day is outside the dates okrsync handles."""


@dataclass(frozen=True)
class Target:
    key: str  # COMMITMENT or a key result's key
    title: str


@dataclass(frozen=True)
class CountedRecord:
    record: RecordLink
    kind: str  # the activity's kind (call, meeting…) or the CRM object (Opportunity, deals…)
    occurred_at: datetime
    counts_for: tuple[str, ...]  # Target keys, the commitment first


@dataclass(frozen=True)
class Problem:
    record: RecordLink
    problems: list[tuple[str, str]]  # (rule key, sentence)


@dataclass
class MemberStandUp:
    name: str
    email: str
    owner_ids: list[str]  # the CRM users with the member's e-mail (none: the CRM has no such user)
    logged: list[CountedRecord] = field(default_factory=list)  # newest first
    counted: dict[str, int] = field(default_factory=dict)  # Target key -> records since the last working day
    sprint_done: float | None = None  # their part of the commitment over the sprint so far (counts and sums)
    shown_sprint_done: str = "–"
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class BurnDownDay:
    day: date
    done: float  # the commitment's value at the day's end, since the sprint's start
    remaining: float  # committed − done
    ideal: float  # committed × sprint days after this one ÷ sprint days
    shown_done: str
    shown_remaining: str


@dataclass
class StandUp:
    mapping: MappingRow
    sprint: sprints.SprintReview
    day: date
    since: date
    by_calendar: bool  # the team's calendar chose the last working day (else Monday to Friday)
    targets: list[Target]
    members: list[MemberStandUp]
    burn_down: list[BurnDownDay]  # empty: no commitment, or one that is not a count or a sum
    computed_as_of: datetime | None
    hygiene_mapping_id: int | None
    metric: CountMetric | SumMetric | None = None  # the commitment's, when it has a burn-down

    def shown(self, value: float) -> str:
        """A value formatted like the commitment's."""
        return reports.format_value(self.metric, value) if self.metric is not None else f"{value:g}"

    @property
    def logged_total(self) -> int:
        return sum(len(m.logged) for m in self.members)

    def title(self, key: str) -> str:
        return next((t.title for t in self.targets if t.key == key), key)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _running(session: Session, mapping: OkrMapping, day: date) -> sprints.SprintReview:
    all_reviews = sprints.reviews(session, mapping, today=day)
    running = next((r for r in all_reviews if r.start <= day <= r.end), None)
    if running is not None:
        return running
    last = next((r for r in reversed(all_reviews) if r.end < day), None)
    upcoming = next((r for r in all_reviews if r.start > day), None)
    parts = [f"no sprint of {mapping.team} / {mapping.cycle} (mapping {mapping.id}) runs on {day}"]
    if last is not None:
        parts.append(f"the last one was {last.name} ({last.key}, {last.start} – {last.end})")
    if upcoming is not None:
        parts.append(f"the next one is {upcoming.name} ({upcoming.key}, {upcoming.start} – {upcoming.end})")
    if not all_reviews:
        parts.append("the mapping has no sprints: add one under sprints in the mapping file or POST …/sprints")
    else:
        parts.append("pick a day inside a sprint with ?day=YYYY-MM-DD")
    raise NoRunningSprintError("; ".join(parts), day=day, last=last, upcoming=upcoming)


def _members(session: Session, connection_id: int, config: MappingConfig) -> list[MemberStandUp]:
    emails = [m.email.lower() for m in config.team.members]
    owners: dict[str, list[str]] = {}
    for external_id, email in session.execute(
        select(table(Owner).c.external_id, func.lower(table(Owner).c.email)).where(
            table(Owner).c.connection_id == connection_id, func.lower(table(Owner).c.email).in_(emails)
        )
    ).all():
        owners.setdefault(email, []).append(external_id)
    return [
        MemberStandUp(m.name or m.email, m.email, sorted(owners.get(m.email.lower(), []))) for m in config.team.members
    ]


def stand_up(session: Session, mapping: OkrMapping, *, day: date, lang: str = "en") -> StandUp:
    """The stand-up of the sprint running on ``day`` (see the module's doc for every number); raises
    ``NoRunningSprintError`` when none runs then, ``BadDayError`` for a day outside 1900–2999."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise BadDayError(f"day: {day} is out of range: pick a day between {FIRST_DAY} and {LAST_DAY}")
    _mapping, connection = load_mapping(session, mapping.id or 0)
    config = okrs.current_config(session, mapping)
    sprint = _running(session, mapping, day)
    definition = next(s for s in config.sprints if s.key == sprint.key)
    krs = {kr.key: kr for _o, kr in config.key_results()}
    targets = [Target(COMMITMENT, sprint.commitment)] if sprint.commitment else []
    targets += [Target(key, krs[key].title) for key in definition.serves if key in krs]
    evidence_keys = {sprint_evidence_key(sprint.key): COMMITMENT} if sprint.commitment else {}
    evidence_keys |= {key: key for key in definition.serves if key in krs}
    since = previous_working_day(config.team.calendar, day)
    members = _members(session, connection.id or 0, config)
    by_owner = {owner: member for member in members for owner in member.owner_ids}
    start, end = _midnight(since), _midnight(day + timedelta(days=1))
    if by_owner and evidence_keys:
        _logged(session, mapping, connection, by_owner, evidence_keys, start, end)
    metric = definition.commitment.metric if definition.commitment else None
    burn_down: list[BurnDownDay] = []
    if definition.commitment is not None and isinstance(metric, CountMetric | SumMetric):
        burn_down = _burn_down(session, mapping, sprint, metric, committed=definition.commitment.target, day=day)
        _sprint_done(session, mapping, sprint, metric, by_owner, end=min(end, _midnight(sprint.end + timedelta(1))))
    source = me.hygiene_source(session, mapping, config, day)
    if source is not None and by_owner:
        _problems(session, source, connection, by_owner, lang=lang)
    return StandUp(
        mapping_row(mapping, connection, day), sprint, day, since, config.team.calendar is not None, targets, members,
        burn_down, last_computed_as_of(session, mapping_id=mapping.id or 0), source.id if source else None,
        metric if isinstance(metric, CountMetric | SumMetric) else None,
    )  # fmt: skip


def _logged(
    session: Session,
    mapping: OkrMapping,
    connection: CrmConnection,
    by_owner: dict[str, MemberStandUp],
    evidence_keys: dict[str, str],
    start: datetime,
    end: datetime,
) -> None:
    """Each member's evidence rows of the commitment and the served key results dated in [start, end)."""
    evidence, activity = table(KeyResultEvidence), table(Activity)
    rows = session.execute(
        select(
            evidence.c.kr_key,
            evidence.c.record_id,
            evidence.c.owner_id,
            evidence.c.occurred_at,
            activity.c.activity_kind,
        )
        .select_from(
            evidence.outerjoin(
                activity,
                (activity.c.connection_id == connection.id) & (activity.c.external_id == evidence.c.record_id),
            )
        )
        .where(
            evidence.c.mapping_id == mapping.id,
            evidence.c.kr_key.in_(list(evidence_keys)),
            evidence.c.owner_id.in_(list(by_owner)),
            evidence.c.occurred_at >= start,
            evidence.c.occurred_at < end,
        )
    ).all()
    order = list(dict.fromkeys(evidence_keys.values()))
    found: dict[tuple[str, str], tuple[datetime, str | None, set[str]]] = {}
    for kr_key, record_id, owner_id, occurred_at, kind in rows:
        at, _kind, keys = found.setdefault((owner_id, record_id), (occurred_at, kind, set()))
        keys.add(evidence_keys[kr_key])
    links = RecordLinks(session, connection)
    links.load(record_id for _owner, record_id in found)
    for (owner_id, record_id), (at, kind, keys) in found.items():
        member = by_owner[owner_id]
        link = links.link(record_id)
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        member.logged.append(CountedRecord(link, kind or link.kind, at, tuple(k for k in order if k in keys)))
        for key in keys:
            member.counted[key] = member.counted.get(key, 0) + 1
    for member in by_owner.values():
        member.logged.sort(key=lambda r: (r.occurred_at, r.record.id), reverse=True)


def _day_totals(
    session: Session, mapping: OkrMapping, sprint: sprints.SprintReview, metric: CountMetric | SumMetric
) -> list[tuple[date, float]]:
    """The commitment's evidence per UTC day of the sprint: (day, count or sum)."""
    evidence = table(KeyResultEvidence)
    rows = session.execute(
        select(evidence.c.occurred_at, evidence.c.value).where(
            evidence.c.mapping_id == mapping.id,
            evidence.c.kr_key == sprint_evidence_key(sprint.key),
            evidence.c.occurred_at.is_not(None),
        )
    ).all()
    totals: dict[date, float] = {}
    for at, value in rows:
        moment = at if at.tzinfo else at.replace(tzinfo=UTC)
        day = moment.astimezone(UTC).date()
        totals[day] = totals.get(day, 0.0) + (1.0 if isinstance(metric, CountMetric) else float(value or 0.0))
    return sorted(totals.items())


def _burn_down(
    session: Session,
    mapping: OkrMapping,
    sprint: sprints.SprintReview,
    metric: CountMetric | SumMetric,
    *,
    committed: float,
    day: date,
) -> list[BurnDownDay]:
    totals = dict(_day_totals(session, mapping, sprint, metric))
    out: list[BurnDownDay] = []
    done = 0.0
    current = sprint.start
    while current <= min(day, sprint.end):
        done += totals.get(current, 0.0)
        after = (sprint.end - current).days
        out.append(
            BurnDownDay(
                current,
                done,
                committed - done,
                committed * after / sprint.days,
                reports.format_value(metric, done),
                reports.format_value(metric, committed - done),
            )  # fmt: skip
        )
        current += timedelta(days=1)
    return out


def _sprint_done(
    session: Session,
    mapping: OkrMapping,
    sprint: sprints.SprintReview,
    metric: CountMetric | SumMetric,
    by_owner: dict[str, MemberStandUp],
    *,
    end: datetime,
) -> None:
    """Each member's part of the commitment from the sprint's start to the stand-up day's end."""
    if not by_owner:
        return
    evidence = table(KeyResultEvidence)
    amount = func.count() if isinstance(metric, CountMetric) else func.coalesce(func.sum(evidence.c.value), 0.0)
    rows = session.execute(
        select(evidence.c.owner_id, amount)
        .where(
            evidence.c.mapping_id == mapping.id,
            evidence.c.kr_key == sprint_evidence_key(sprint.key),
            evidence.c.owner_id.in_(list(by_owner)),
            evidence.c.occurred_at >= _midnight(sprint.start),
            evidence.c.occurred_at < end,
        )
        .group_by(evidence.c.owner_id)
    ).all()
    done = {owner: float(value) for owner, value in rows}
    for member in {id(m): m for m in by_owner.values()}.values():
        value = sum(done.get(owner, 0.0) for owner in member.owner_ids)
        member.sprint_done, member.shown_sprint_done = value, reports.format_value(metric, value)


def _problems(
    session: Session,
    source: OkrMapping,
    connection: CrmConnection,
    by_owner: dict[str, MemberStandUp],
    *,
    lang: str,
) -> None:
    config = okrs.current_config(session, source)
    lines = reports.hygiene_by_opportunity(session, source, config, owner_ids=list(by_owner), lang=lang)
    links = RecordLinks(session, connection)
    links.load(line.opportunity_id for line in lines)
    for line in lines:  # most problems first; line.owner is the owner's id (no names given)
        member = by_owner.get(line.owner)
        if member is not None:
            member.problems.append(
                Problem(links.link(line.opportunity_id), list(zip(line.rules, line.problems, strict=True)))
            )
