"""Sprints: commitment vs achieved, what each served key result gained, the retrospective's improvement item
carried into the next sprint, and the team's forecast accuracy over its ended sprints.

A sprint is defined in the mapping config (the file, or ``add_sprint`` through the API, which stores a new
mapping version); each computation writes what it achieved (``service.compute.service._sprints``); the team
records the retrospective here. Accuracy of a sprint = 1 − |achieved − committed| / committed (at least 0): 100 %
when the team did what it said, lower both when it over- and under-committed. "Say/do" = total achieved / total
committed. The suggested next commitment is what the last three sprints measured like the next one achieved per
sprint day, times the next sprint's days ("yesterday's weather"); none when no ended sprint was measured alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime

import sqlmodel
import yaml
from sqlmodel import Session

from mappings.config import MappingConfig, Sprint, check_references
from mappings.source import MappingFileError
from service.compute.report import format_change, format_value
from service.crm.models import CrmConnection
from service.kit.db import utcnow
from service.kit.errors import InvalidError
from service.okrs import service as okrs
from service.okrs.models import OkrMapping
from service.sprints.models import SprintResult, SprintRetrospective

SUGGESTION_WINDOW = 3


class SprintError(InvalidError, ValueError):
    """A sprint request that cannot be done: the message says what is wrong and where."""


class SprintNotFoundError(SprintError):
    """The request names a sprint the mapping does not have."""

    status = 404


@dataclass(frozen=True)
class KrGain:
    """What a key result the sprint serves gained during the sprint (value at its end minus at its start)."""

    kr_key: str
    title: str
    shown_gain: str  # formatted like the KR's values ("+42", "+5%", "–" when unknown)
    gain: float | None


@dataclass(frozen=True)
class Retrospective:
    improvement: str  # the one improvement item, carried into the next sprint
    went_well: str | None
    carried_done: bool | None  # was the previous sprint's improvement item done?
    note: str | None
    author: str
    recorded_at: datetime


@dataclass(frozen=True)
class SprintReview:
    key: str
    name: str
    goal: str | None
    start: date
    end: date
    days: int
    state: str  # planned | running | ended
    source: str  # config | api
    serves: list[KrGain] = field(default_factory=list)
    commitment: str | None = None  # "60 first calls to new prospects"
    committed: float | None = None
    achieved: float | None = None
    shown_committed: str = "–"
    shown_achieved: str = "–"
    achieved_share: float | None = None  # achieved / committed
    accuracy: float | None = None  # 1 − |achieved − committed| / committed, at least 0 (ended sprints)
    carried_improvement: str | None = None  # the previous sprint's improvement item
    retrospective: Retrospective | None = None
    measure: str | None = None  # the commitment's metric, canonical: only sprints measured alike are compared


@dataclass(frozen=True)
class Forecast:
    """How the team's commitments compared with what it achieved, over its ended sprints with a commitment; the
    suggestion compares like with like (sprints whose commitment is measured the same way as the next one's)."""

    sprints: int
    mean_accuracy: float | None
    say_do: float | None  # total achieved / total committed
    suggested_next: float | None  # achieved per sprint day over the last 3 sprints × the next sprint's days
    next_sprint: str | None


def _state(sprint: Sprint, today: date) -> str:
    return "planned" if today < sprint.start else "running" if today <= sprint.end else "ended"


def _latest_retrospectives(session: Session, mapping: OkrMapping) -> dict[str, SprintRetrospective]:
    rows = session.exec(
        sqlmodel.select(SprintRetrospective)
        .where(SprintRetrospective.mapping_id == mapping.id)
        .order_by(SprintRetrospective.recorded_at, SprintRetrospective.id)  # type: ignore[arg-type]
    ).all()
    return {row.sprint_key: row for row in rows}  # the newest wins


def reviews(session: Session, mapping: OkrMapping, *, today: date | None = None) -> list[SprintReview]:
    """Every sprint of the mapping's current version, by start: review, carried improvement, retrospective."""
    config = okrs.current_config(session, mapping)
    today = today or utcnow().date()
    results = {
        r.sprint_key: r
        for r in session.exec(sqlmodel.select(SprintResult).where(SprintResult.mapping_id == mapping.id)).all()
    }
    retros = _latest_retrospectives(session, mapping)
    krs = {kr.key: kr for _o, kr in config.key_results()}
    from_api = {
        change.removeprefix("sprint ").removesuffix(" added")
        for version in okrs.versions(session, mapping)
        if version.source_name == API_SOURCE
        for change in version.changes or []
        if change.startswith("sprint ") and change.endswith(" added")
    }
    out: list[SprintReview] = []
    carried: str | None = None
    for sprint in sorted(config.sprints, key=lambda s: s.start):
        result = results.get(sprint.key)
        state = _state(sprint, today)
        gains = [
            KrGain(
                key,
                krs[key].title,
                format_change(krs[key].metric, (result.gains.get(key) if result else None)),
                result.gains.get(key) if result else None,
            )
            for key in sprint.serves
            if key in krs
        ]
        commitment = sprint.commitment
        committed = commitment.target if commitment else None
        achieved = result.achieved if result and commitment else None
        share = accuracy = None
        if committed and achieved is not None:
            share = achieved / committed
            if state == "ended":
                accuracy = max(0.0, 1 - abs(achieved - committed) / abs(committed))
        retro = retros.get(sprint.key)
        out.append(
            SprintReview(
                key=sprint.key,
                name=sprint.name,
                goal=sprint.goal,
                start=sprint.start,
                end=sprint.end,
                days=sprint.days,
                state=state,
                source="api" if sprint.key in from_api else "config",
                serves=gains,
                commitment=commitment.title if commitment else None,
                committed=committed,
                achieved=achieved,
                shown_committed=format_value(commitment.metric, committed) if commitment else "–",
                shown_achieved=format_value(commitment.metric, achieved) if commitment else "–",
                achieved_share=share,
                accuracy=accuracy,
                carried_improvement=carried,
                measure=json.dumps(commitment.metric.model_dump(mode="json"), sort_keys=True) if commitment else None,
                retrospective=(
                    Retrospective(
                        retro.improvement,
                        retro.went_well,
                        retro.carried_done,
                        retro.note,
                        retro.author,
                        retro.recorded_at,
                    )  # fmt: skip
                    if retro
                    else None
                ),
            )
        )
        carried = retro.improvement if retro else None
    return out


def current(all_reviews: list[SprintReview], today: date) -> SprintReview | None:
    """The running sprint, else the latest ended one, else the next planned one."""
    running = [r for r in all_reviews if r.start <= today <= r.end]
    if running:
        return running[0]
    ended = [r for r in all_reviews if r.end < today]
    if ended:
        return ended[-1]
    return all_reviews[0] if all_reviews else None


def forecast(all_reviews: list[SprintReview]) -> Forecast:
    """Commitments against results over the ended sprints with a commitment, and a realistic next commitment."""
    done = [r for r in all_reviews if r.state == "ended" and r.committed and r.achieved is not None]
    upcoming = next((r for r in all_reviews if r.state != "ended"), None)
    if not done:
        return Forecast(0, None, None, None, upcoming.key if upcoming else None)
    accuracies = [r.accuracy for r in done if r.accuracy is not None]
    committed = sum(abs(r.committed or 0.0) for r in done)
    achieved = sum(r.achieved or 0.0 for r in done)
    alike = [r for r in done if upcoming is not None and r.measure == upcoming.measure][-SUGGESTION_WINDOW:]
    suggested = None
    if upcoming is not None and alike:
        per_day = sum((r.achieved or 0.0) / r.days for r in alike) / len(alike)
        suggested = round(per_day * upcoming.days, 1)
    return Forecast(
        len(done),
        sum(accuracies) / len(accuracies) if accuracies else None,
        achieved / committed if committed else None,
        suggested,
        upcoming.key if upcoming else None,
    )


def record_retrospective(
    session: Session,
    mapping: OkrMapping,
    sprint_key: str,
    *,
    improvement: str,
    went_well: str | None,
    carried_done: bool | None,
    note: str | None,
    author: str,
    at: datetime,
) -> SprintRetrospective:
    """Store the retrospective of a sprint that has started; its improvement item is carried into the next."""
    config = okrs.current_config(session, mapping)
    sprint = next((s for s in config.sprints if s.key == sprint_key), None)
    if sprint is None:
        keys = ", ".join(s.key for s in config.sprints) or "none defined"
        raise SprintNotFoundError(f"no sprint {sprint_key!r} in {mapping.team} / {mapping.cycle} (sprints: {keys})")
    if at.date() < sprint.start:
        raise SprintError(f"sprint {sprint_key} starts on {sprint.start}: its retrospective comes at its end")
    if not improvement.strip():
        raise SprintError("improvement: name the one improvement the team carries into the next sprint")
    row = SprintRetrospective(
        mapping_id=mapping.id or 0, sprint_key=sprint_key, improvement=improvement.strip(),
        went_well=(went_well or "").strip() or None, carried_done=carried_done, note=(note or "").strip() or None,
        author=author, recorded_at=at,
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row


API_SOURCE = "api:sprints"


def add_sprint(session: Session, mapping: OkrMapping, sprint: Sprint, *, author: str, now: datetime) -> int:
    """Add a sprint through the API: the mapping gets a new version with the sprint appended.

    Returns the new version. Raises SprintError naming each problem (unknown key results, overlap with another
    sprint of the team, outside the cycle, a key used twice, bad filters).
    """
    config = okrs.current_config(session, mapping)
    data = config.model_dump(mode="json")
    data["sprints"] = [*data["sprints"], sprint.model_dump(mode="json")]
    new = MappingConfig.model_validate(data)
    index = len(new.sprints) - 1
    problems = [
        f"{_where(loc[2:])}{message}" if len(loc) > 2 else message
        for loc, message in check_references(new)
        if loc[:2] == ("sprints", index)
    ]
    if problems:
        raise SprintError("; ".join(problems))
    connection = session.get(CrmConnection, mapping.connection_id)
    assert connection is not None
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    try:
        loaded = okrs.LoadedMapping(new, text, API_SOURCE, okrs.load(text, filename=API_SOURCE).locator)
        _mapping, version = okrs.apply(
            session, loaded, connection=connection, author=author, reason=f"sprint {sprint.key} added", now=now
        )
    except (MappingFileError, okrs.CycleRuleError) as exc:
        raise SprintError(str(exc)) from exc
    assert version is not None
    version.changes = [*version.changes, f"sprint {sprint.key} added"]
    session.add(version)
    session.flush()
    return version.version


def _where(loc: tuple[str | int, ...]) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[") + ": "
