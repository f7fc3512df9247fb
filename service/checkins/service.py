"""Weekly check-ins and key-result trends.

A check-in freezes what the team looked at: every key result's value, progress, expected-by-now and status at
that moment, with who attended, the team's confidence per key result (1–10, or on_track / at_risk / off_track)
and notes. It is a copy, so later syncs and recomputes never change a past check-in.

The trend of a key result comes from its history (one row per computation): the change of its value over the
last seven days, and "expected by now" as a value: baseline + (target − baseline) × the share of the window
elapsed (the linear path the status compares against).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlmodel
from sqlalchemy import func, select
from sqlmodel import Session, col

from mappings.config import ManualMetric, MappingConfig
from service.checkins.models import CheckIn
from service.compute.models import HygieneSummary, KeyResultHistory, KeyResultValue
from service.compute.repository import last_computed_as_of, table
from service.compute.service import compute
from service.crm.models import Owner
from service.kit.errors import InvalidError
from service.okrs import service as okrs
from service.okrs.models import OkrMapping, OkrMappingVersion

CONFIDENCE_WORDS = ("on_track", "at_risk", "off_track")


class CheckInError(InvalidError, ValueError):
    """A check-in that cannot be recorded: the message says what is wrong."""


@dataclass(frozen=True)
class Trend:
    kr_key: str
    value: float | None
    expected_value: float | None
    change_7d: float | None
    points: int


def _config(session: Session, mapping: OkrMapping) -> MappingConfig:
    version = session.get(OkrMappingVersion, (mapping.id, mapping.current_version))
    assert version is not None
    return MappingConfig.model_validate(version.config)


def trend(session: Session, mapping: OkrMapping, kr_key: str, *, as_of: datetime | None = None) -> Trend:
    """Value now, value expected by now on the linear path, and the change over the 7 days before ``as_of``."""
    kr = _config(session, mapping).key_result(kr_key)
    query = sqlmodel.select(KeyResultHistory).where(
        KeyResultHistory.mapping_id == mapping.id, KeyResultHistory.kr_key == kr_key
    )
    if as_of is not None:
        query = query.where(KeyResultHistory.as_of <= as_of)
    history = list(session.exec(query.order_by(col(KeyResultHistory.as_of), col(KeyResultHistory.id))).all())
    if not history:
        return Trend(kr_key, None, None, None, 0)
    last = history[-1]
    week_ago = [h for h in history if h.as_of <= last.as_of - timedelta(days=7)]
    change = None
    if week_ago and last.value is not None and week_ago[-1].value is not None:
        change = last.value - week_ago[-1].value
    stored = session.get(KeyResultValue, (mapping.id, kr_key))
    share = stored.expected if stored is not None and as_of is None else None
    if share is None and stored is not None:
        span = (stored.window_end - stored.window_start).total_seconds()
        share = min(1.0, max(0.0, (last.as_of - stored.window_start).total_seconds() / span)) if span > 0 else 1.0
    expected_value = kr.baseline + (kr.target - kr.baseline) * share if share is not None else None
    return Trend(kr_key, last.value, expected_value, change, len(history))


def team_names(session: Session, mapping: OkrMapping, config: MappingConfig) -> list[tuple[str, str]]:
    """The team as people are called, with their e-mail: the file's name, else the CRM user's name, else the
    e-mail."""
    emails = [m.email.lower() for m in config.team.members]
    crm_names = {
        (email or "").lower(): name
        for email, name in session.execute(
            select(table(Owner).c.email, table(Owner).c.name).where(
                table(Owner).c.connection_id == mapping.connection_id, func.lower(table(Owner).c.email).in_(emails)
            )
        ).all()
    }
    return [(m.name or crm_names.get(m.email.lower()) or m.email, m.email) for m in config.team.members]


def freeze(
    session: Session,
    mapping: OkrMapping,
    *,
    author: str,
    attendees: list[str],
    confidence: dict[str, int | str],
    notes: dict[str, str],
    note: str | None,
    at: datetime,
    corrects: int | None = None,
) -> CheckIn:
    """Record the weekly check-in: a frozen copy of every key result as computed now, with confidence and notes.
    ``corrects``: the id of a check-in held the same day (UTC) that this one corrects; the earlier one is kept as it
    was (the audit trail) and the page shows the correction in its place."""
    if corrects is not None:
        earlier = session.get(CheckIn, corrects)
        if earlier is None or earlier.mapping_id != mapping.id:
            raise CheckInError(f"no check-in {corrects} of {mapping.team} / {mapping.cycle} to correct", status=404)
        if earlier.held_at.date() != at.date():
            raise CheckInError(
                f"check-in {corrects} was held on {earlier.held_at.date()}: a check-in can be corrected only on the"
                f" day it was held (today is {at.date()}, UTC); record this week's check-in instead",
                status=409,
            )
        later = session.exec(sqlmodel.select(CheckIn.id).where(CheckIn.corrects_id == corrects)).first()
        if later is not None:
            raise CheckInError(
                f"check-in {corrects} was already corrected by check-in {later}: correct that one", status=409
            )
    if at.date() > mapping.cycle_end:
        raise CheckInError(
            f"the cycle {mapping.cycle} ended on {mapping.cycle_end}: check-ins are for running cycles (the team's"
            " last check-in of it is the retrospective)",
            status=409,  # the request is fine; the cycle's state forbids it
        )
    config = _config(session, mapping)
    keys = [kr.key for _o, kr in config.key_results()]
    for kr_key in [*confidence, *notes]:
        if kr_key not in keys:
            raise CheckInError(
                f"no key result {kr_key!r} in {mapping.team} / {mapping.cycle} (keys: {', '.join(keys)})"
            )
    for kr_key, level in confidence.items():
        if isinstance(level, int) and not 1 <= level <= 10 or isinstance(level, str) and level not in CONFIDENCE_WORDS:
            shown = repr(level) if len(str(level)) <= 40 else f"{str(level)[:40]!r}…"
            raise CheckInError(f"confidence for {kr_key} is {shown}: use 1–10 or {', '.join(CONFIDENCE_WORDS)}")
    team = team_names(session, mapping, config)
    known = {name for name, _email in team} | {email.lower() for _name, email in team}
    strangers = [name for name in attendees if name not in known and name.lower() not in known]
    if strangers:
        raise CheckInError(
            f"not in the team {mapping.team}: {', '.join(repr(name[:200]) for name in strangers[:5])} — attendees are"
            f" team members by name or CRM e-mail ({', '.join(name for name, _email in team)})"
        )
    values = {
        v.kr_key: v
        for v in session.exec(sqlmodel.select(KeyResultValue).where(KeyResultValue.mapping_id == mapping.id))
    }
    frozen: dict[str, Any] = {}
    for objective, kr in config.key_results():
        value = values.get(kr.key)
        frozen[kr.key] = {
            "objective": objective.key, "title": kr.title, "target": kr.target,
            "value": value.value if value else None, "progress": value.progress if value else None,
            "expected": value.expected if value else None, "status": value.status if value else "no_data",
            "as_of": value.as_of.isoformat() if value else None,
            "confidence": confidence.get(kr.key), "note": notes.get(kr.key),
        }  # fmt: skip
    hygiene = session.get(HygieneSummary, (mapping.id, "*"))
    row = CheckIn(
        mapping_id=mapping.id or 0, held_at=at, author=author, attendees=sorted(set(attendees)), note=note,
        key_results=frozen, hygiene_score=hygiene.score if hygiene else None, corrects_id=corrects,
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row


def record(
    session: Session,
    mapping: OkrMapping,
    *,
    author: str,
    attendees: list[str],
    confidence: dict[str, int | str],
    notes: dict[str, str],
    note: str | None,
    values: dict[str, float],
    at: datetime,
    corrects: int | None = None,
) -> CheckIn:
    """The weekly check-in as the team holds it: first the manual key results' values said in the room (each
    checked against its key result before anything is stored), then a recomputation so the frozen copy shows them,
    then ``freeze``. The caller commits (and stages write-back)."""
    config = _config(session, mapping)
    manual = {kr.key: kr for _o, kr in config.key_results() if isinstance(kr.metric, ManualMetric)}
    for kr_key, value in values.items():
        kr = manual.get(kr_key)
        if kr is None or not isinstance(kr.metric, ManualMetric):
            known = ", ".join(manual) or "none in this mapping"
            raise CheckInError(f"{kr_key!r} is not a manual key result: values are entered for manual ones ({known})")
        problem = kr.metric.out_of_range(value)
        if problem is not None:
            raise CheckInError(f"the value for {kr.title}: {problem}")
    if values:
        for kr_key, value in values.items():
            okrs.set_manual_value(session, mapping, kr_key=kr_key, value=value, author=author, note=notes.get(kr_key),
                                  at=at)  # fmt: skip
        last = last_computed_as_of(session, mapping_id=mapping.id or 0)
        compute(session, mapping=mapping, as_of=max(at, last) if last is not None else at)
    return freeze(
        session, mapping, author=author, attendees=attendees, confidence=confidence, notes=notes, note=note, at=at,
        corrects=corrects,
    )  # fmt: skip


def check_ins(session: Session, mapping: OkrMapping, *, corrected: bool = True) -> list[CheckIn]:
    """Every check-in, newest first; ``corrected=False`` leaves out those a later one corrects."""
    query = sqlmodel.select(CheckIn).where(CheckIn.mapping_id == mapping.id)
    rows = list(session.exec(query.order_by(col(CheckIn.held_at).desc(), col(CheckIn.id).desc())).all())
    if corrected:
        return rows
    replaced = {row.corrects_id for row in rows if row.corrects_id is not None}
    return [row for row in rows if row.id not in replaced]
