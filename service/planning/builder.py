"""The key-result builder: what a rep can choose from, and a key result's live value before anyone applies it.

``options`` lists the metric types with their settings, and for each kind of counted record the fields a filter can
use — the record's own, and those of its account, opportunity, contact and owner — with the values actually present
in the synced CRM data for the fields that hold a few distinct values (activity kinds, directions, stages, account
types, titles, lead sources…). Everything it offers is something ``mappings validate`` accepts: canonical fields
always exist, and the values are read from the data the validation checks against.

``preview`` computes one key result as the compute would, twice: over the team's running cycle (its value so far)
and over the cycle before it (the same number of days just before; what the key result would have scored then, a
baseline to suggest). Nothing is stored: the temporary mapping and its results are rolled back. It stops after
``serve.preview_seconds`` with a message instead of holding the request.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from mappings.config import (
    CountMetric,
    HygieneScoreMetric,
    KamCriteriaMetric,
    ManualMetric,
    RatioMetric,
    ResponseTimeMetric,
    SpeedToLeadMetric,
    SumMetric,
)
from mappings.fields import CANONICAL, RELATIONS, FieldType, RecordType
from mappings.filters import LIST_OPS, NO_VALUE_OPS, TEXT_OPS, Op
from mappings.validate import MappingFileError
from service.compute.models import KeyResultValue
from service.compute.repository import table
from service.compute.service import compute as compute_mapping
from service.crm.models import CrmConnection
from service.kit.errors import InvalidError, ServiceError
from service.okrs import service as okrs
from service.planning import repository as repo
from service.planning.service import export_yaml

METRICS = (
    CountMetric,
    SumMetric,
    RatioMetric,
    ResponseTimeMetric,
    SpeedToLeadMetric,
    HygieneScoreMetric,
    KamCriteriaMetric,
    ManualMetric,
)
# the fields whose values the builder lists (few distinct values: picklists); others are typed in
PICKLISTS: dict[RecordType, tuple[str, ...]] = {
    RecordType.activity: ("activity_kind", "direction", "status"),
    RecordType.opportunity: ("stage", "forecast_category", "currency"),
    RecordType.account: ("account_type", "industry", "country"),
    RecordType.contact: ("title",),
    RecordType.owner: ("title", "name", "email"),  # who: the team members by name or e-mail
    RecordType.lead: ("status", "source"),
}
MAX_VALUES = 100  # a field with more distinct values than this is typed in, not picked
COUNTED = {"activities": RecordType.activity, "opportunities": RecordType.opportunity, "leads": RecordType.lead}
_OPS_BY_TYPE: dict[FieldType, list[Op]] = {
    FieldType.text: [Op.eq, Op.ne, Op.in_, Op.not_in, *TEXT_OPS, Op.is_set, Op.is_not_set],
    FieldType.number: [Op.eq, Op.ne, Op.gt, Op.gte, Op.lt, Op.lte, Op.is_set, Op.is_not_set],
    FieldType.boolean: [Op.is_true, Op.is_false],
    FieldType.date: [Op.eq, Op.gt, Op.gte, Op.lt, Op.lte, Op.is_set, Op.is_not_set],
    FieldType.datetime: [Op.gt, Op.gte, Op.lt, Op.lte, Op.is_set, Op.is_not_set],
}
_HIDDEN = {
    "external_id",
    "crm_object",
    "owner_id",
    "account_id",
    "opportunity_id",
    "lead_id",
    "contact_id",
    "parent_id",
}


class PreviewTimeout(ServiceError):
    status = 422


class PreviewRefused(InvalidError, ValueError):
    pass


def _metric(model: Any) -> dict[str, Any]:
    schema = model.model_json_schema()
    settings = {
        name: {
            "title": spec.get("title", name),
            "description": spec.get("description", ""),
            "required": name in schema.get("required", []),
            **({"choices": spec["enum"]} if "enum" in spec else {}),
            **({"default": spec["default"]} if "default" in spec else {}),
        }
        for name, spec in schema.get("properties", {}).items()
        if name != "type"
    }
    kind = model.model_fields["type"].default
    return {"type": kind, "title": (model.__doc__ or kind).strip().splitlines()[0], "settings": settings}


def _values(session: Session, connection_id: int, record: RecordType, name: str) -> list[str]:
    t = table(okrs.MODELS[record])  # the local model of each record type, as the validation reads it
    column = t.c[name]
    query = (
        select(column)
        .where(t.c.connection_id == connection_id, column.is_not(None), func.trim(column) != "")
        .group_by(column)
        .order_by(column)
        .limit(MAX_VALUES + 1)
    )
    found = [str(row[0]) for row in session.execute(query)]
    return [] if len(found) > MAX_VALUES else found


def _fields(session: Session, connection_id: int, record: RecordType, prefix: str = "") -> list[dict[str, Any]]:
    out = []
    picklists = PICKLISTS.get(record, ())
    for name, kind in CANONICAL[record].items():
        if name in _HIDDEN:
            continue
        entry: dict[str, Any] = {
            "field": prefix + name,
            "type": kind.value,
            "ops": [str(o) for o in _OPS_BY_TYPE[kind]],
        }
        if name in picklists:
            entry["values"] = _values(session, connection_id, record, name)
        out.append(entry)
    return out


def options(session: Session, connection: CrmConnection) -> dict[str, Any]:
    """What the builder offers for this connection (see the module docstring)."""
    assert connection.id is not None
    records: dict[str, list[dict[str, Any]]] = {}
    for counted, record in COUNTED.items():
        fields = _fields(session, connection.id, record)
        for related in RELATIONS[record]:
            fields += _fields(session, connection.id, related, prefix=f"{related.value}.")
        records[counted] = fields
    return {
        "connection": f"{connection.crm}/{connection.name}",
        "metrics": [_metric(m) for m in METRICS],
        "counted": records,
        "no_value_ops": sorted(o.value for o in NO_VALUE_OPS),
        "list_ops": sorted(o.value for o in LIST_OPS),
    }


# ------------------------------------------------------------------------------------------------------ preview


@dataclass(frozen=True)
class Window:
    name: str
    start: date
    end: date  # inclusive


@dataclass(frozen=True)
class PreviewValue:
    window: Window
    value: float | None
    records: int
    target: float | None
    progress: float | None
    status: str | None


def windows(session: Session, *, connection_id: int, team: str, length_days: int, today: date) -> tuple[Window, Window]:
    """The team's running cycle (its mapping whose cycle holds today; else the ``length_days`` up to today) and the
    cycle before it (as many days, just before)."""
    running = next(
        (
            Window(m.cycle, m.cycle_start, m.cycle_end)
            for m in repo.team_mappings(session, connection_id=connection_id, team=team)
            if m.cycle_start <= today <= m.cycle_end
        ),
        None,
    )
    if running is None:
        running = Window("the last days", today - timedelta(days=length_days - 1), today)
    days = (running.end - running.start).days + 1
    before = Window("the cycle before", running.start - timedelta(days=days), running.start - timedelta(days=1))
    return running, before


class _Deadline(Exception):
    """The preview's time is up (raised before the next statement)."""


@contextmanager
def _time_limit(session: Session, seconds: float) -> Iterator[None]:
    """Stop the session's work after ``seconds``: no statement starts after the deadline, and a statement running
    then is interrupted (SQLite: a progress handler; PostgreSQL: a local statement timeout, undone with the
    transaction)."""
    connection = session.connection()
    deadline = time.monotonic() + seconds

    def before(*_args: Any) -> None:
        if time.monotonic() > deadline:
            raise _Deadline

    event.listen(connection, "before_cursor_execute", before)
    postgres = connection.dialect.name == "postgresql"
    raw = None if postgres else connection.connection.driver_connection
    try:
        if postgres:
            connection.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(seconds * 1000))}")
        else:
            raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 1_000)  # type: ignore[union-attr]
        yield
    finally:
        event.remove(connection, "before_cursor_execute", before)
        if raw is not None:
            raw.set_progress_handler(None, 0)  # type: ignore[union-attr]


def preview(
    session: Session,
    *,
    connection: CrmConnection,
    content: dict[str, Any],
    key_result: dict[str, Any],
    today: date,
    now: datetime,
    seconds: float,
) -> list[PreviewValue]:
    """One key result of a draft (``key_result``, as in the file) computed over the running cycle and the one before;
    nothing is stored (the session is rolled back)."""
    team = (content.get("team") or {}).get("name") or "draft"
    cycle = content.get("cycle") or {}
    try:
        length = (date.fromisoformat(str(cycle["end"])) - date.fromisoformat(str(cycle["start"]))).days + 1
    except (KeyError, TypeError, ValueError):
        length = 90
    window = (key_result.get("window") or {}) if isinstance(key_result, dict) else {}
    if isinstance(window, dict) and window.get("sprint"):
        raise PreviewRefused("a key result counted over a sprint is previewed once the sprint is applied")
    running, before = windows(
        session, connection_id=connection.id or 0, team=team, length_days=max(1, min(length, 93)), today=today
    )
    values = []
    try:
        for spot in (running, before):
            values.append(_one(session, connection, content, key_result, spot, now, seconds))
    finally:
        session.rollback()
    return values


def _one(
    session: Session,
    connection: CrmConnection,
    content: dict[str, Any],
    key_result: dict[str, Any],
    spot: Window,
    now: datetime,
    seconds: float,
) -> PreviewValue:
    kr = {**key_result, "key": "preview"}
    kr.pop("window", None)
    trial = {
        **{k: v for k, v in content.items() if k not in ("sprints", "objectives", "cycle")},
        "team": {
            **(content.get("team") or {}),
            "name": f"{(content.get('team') or {}).get('name')} (preview {spot.start})",
        },
        "cycle": {"name": f"preview {spot.start}", "start": spot.start.isoformat(), "end": spot.end.isoformat()},
        "objectives": [{"key": "preview", "title": "Preview", "key_results": [kr]}],
    }
    try:
        loaded = okrs.load(export_yaml(trial), filename="preview.yaml")
        mapping, _version = okrs.apply(session, loaded, connection=connection, author="preview", now=now)
    except MappingFileError as exc:
        raise PreviewRefused(
            "the key result cannot be computed yet: " + "; ".join(p.message for p in exc.problems)
        ) from None
    as_of = min(now, datetime.combine(spot.end, datetime.max.time(), tzinfo=now.tzinfo))
    try:
        with _time_limit(session, seconds):
            compute_mapping(session, mapping=mapping, as_of=as_of)
    except (OperationalError, _Deadline) as exc:
        session.rollback()
        words = str(exc).lower()
        if isinstance(exc, _Deadline) or "interrupt" in words or "statement timeout" in words or "cancel" in words:
            raise PreviewTimeout(
                f"the preview over {spot.start} – {spot.end} took longer than {seconds:g} s: narrow the key result's"
                " filters (an activity kind, an account type), or approve the draft and let okrsync compute it in the"
                " background"
            ) from None
        raise
    stored = session.get(KeyResultValue, (mapping.id, "preview"))
    assert stored is not None
    return PreviewValue(spot, stored.value, stored.records, kr.get("target"), stored.progress, stored.status)
