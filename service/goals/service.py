"""Company goals and how the teams' objectives serve them.

A goal is entered by sales ops or an admin: a stable ``key`` (the slug a mapping file names in an objective's
``serves:``), a title, an owner, a measure, and a period (a year, ``2026``, or a half of it, ``2026-H1``). The
company view puts every team's objectives (their current mapping version) under the goal they serve, with the
progress last computed, and lists the goals nobody serves.

Bad input and conflicts, each with a message that names the field or the goal and says what to do:

- a missing or malformed field, a key already taken: ``GoalError`` (422);
- an edit (or delete) made from an older version than the stored one: ``GoalConflictError`` (409) naming who changed
  the goal and when — the edit is not applied, the stored goal stays as it is;
- deleting a goal that objectives serve: ``GoalConflictError`` (409) naming each team, cycle and objective. There is
  no forced delete: the objectives would point at nothing. Remove their ``serves:`` first (applying the mapping
  again; while its cycle runs, with a reason), then delete the goal.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from service.goals import repository
from service.goals.models import CompanyGoal
from service.kit.errors import ConflictError, InvalidError, NotFoundError
from service.okrs import service as okrs

KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
PERIOD = re.compile(r"(\d{4})(?:-(H[12]))?")
LIMITS = {"title": 200, "owner": 320, "measure": 2_000}
FIRST_YEAR, LAST_YEAR = 2000, 2100


class GoalError(InvalidError, ValueError):
    """A goal's field is missing or malformed, or its key is taken: the message starts with the field."""


class GoalNotFoundError(NotFoundError, LookupError):
    """No company goal has this key."""


class GoalConflictError(ConflictError):
    """The goal changed since the caller read it, or objectives still serve it."""


@dataclass(frozen=True)
class GoalFields:
    """A goal's editable fields as typed (the key only when creating)."""

    title: str
    owner: str
    measure: str
    period: str


@dataclass(frozen=True)
class ServingObjective:
    """One objective of a team's current mapping version, with the progress its last computation stored."""

    mapping_id: int
    team: str
    cycle: str
    connection: str  # crm/name
    objective_key: str
    title: str
    serves: str | None
    progress: float | None
    status: str | None  # None: not computed yet
    achieved: bool


@dataclass(frozen=True)
class GoalView:
    goal: CompanyGoal
    objectives: list[ServingObjective] = field(default_factory=list)

    @property
    def teams(self) -> list[str]:
        return sorted({o.team for o in self.objectives})


@dataclass(frozen=True)
class CompanyView:
    goals: list[GoalView]  # every goal, served or not, in period order
    unserved: list[CompanyGoal]  # the goals no objective serves
    unlinked: list[ServingObjective]  # objectives that serve no company goal
    unknown: list[ServingObjective]  # objectives naming a goal that does not exist (applied before it was deleted)


def period_text(goal: CompanyGoal) -> str:
    return f"{goal.year}-{goal.half}" if goal.half else str(goal.year)


def parse_period(text: str) -> tuple[int, str | None]:
    """``2026`` → (2026, None); ``2026-H1`` → (2026, "H1"); anything else is a GoalError naming the field."""
    found = PERIOD.fullmatch(text.strip().upper())
    if found is None or not FIRST_YEAR <= int(found.group(1)) <= LAST_YEAR:
        raise GoalError(
            f"period: {text.strip()[:40]!r} is not a year ({FIRST_YEAR}–{LAST_YEAR}, e.g. 2026) or a half-year"
            " (2026-H1, 2026-H2)"
        )
    return int(found.group(1)), found.group(2)


@dataclass(frozen=True)
class CheckedGoal:
    """A goal's fields as stored: trimmed, the period split into year and half."""

    title: str
    owner: str
    measure: str
    year: int
    half: str | None


def _checked(fields: GoalFields) -> CheckedGoal:
    """The fields as stored, or a GoalError naming every field that is wrong."""
    problems = []
    texts: dict[str, str] = {}
    for name in ("title", "owner", "measure"):
        text = getattr(fields, name).strip()
        if not text:
            problems.append(f"{name}: must not be empty")
        elif len(text) > LIMITS[name]:
            problems.append(f"{name}: at most {LIMITS[name]} characters (this one has {len(text)})")
        elif any(ord(c) < 0x20 and c not in "\n\t" for c in text) or "\x7f" in text:
            problems.append(f"{name}: control characters are not allowed")
        texts[name] = text
    year, half = 0, None
    try:
        year, half = parse_period(fields.period)
    except GoalError as exc:
        problems.append(str(exc))
    if problems:
        raise GoalError("; ".join(problems))
    return CheckedGoal(texts["title"], texts["owner"], texts["measure"], year, half)


def check_key(key: str) -> str:
    key = key.strip()
    if not KEY.fullmatch(key):
        raise GoalError(
            f"key: {key[:70]!r} is not a key: lower-case letters, digits, - and _ (at most 64, starting with a"
            " letter or digit), e.g. new-business-2026"
        )
    return key


def listed(session: Session) -> list[CompanyGoal]:
    """Every goal, by period."""
    return repository.goals(session)


def get(session: Session, key: str) -> CompanyGoal:
    goal = repository.goal(session, key)
    if goal is None:
        raise GoalNotFoundError(f"no company goal {key!r}: GET /api/v1/goals lists them")
    return goal


def create(session: Session, *, key: str, fields: GoalFields, by: str, at: datetime) -> CompanyGoal:
    """Store a new goal at version 1, or a GoalError naming every field that is wrong (the key included)."""
    problems = []
    try:
        key = check_key(key)
    except GoalError as exc:
        problems.append(str(exc))
    values: CheckedGoal | None = None
    try:
        values = _checked(fields)
    except GoalError as exc:
        problems.append(str(exc))
    if problems or values is None:
        raise GoalError("; ".join(problems))
    taken = repository.goal(session, key)
    if taken is not None:
        raise GoalError(f"key: a company goal {key!r} exists already ({taken.title!r}): choose another key")
    goal = CompanyGoal(
        key=key, title=values.title, owner=values.owner, measure=values.measure, year=values.year, half=values.half,
        version=1, created_by=by, created_at=at, updated_by=by, updated_at=at,
    )  # fmt: skip
    session.add(goal)
    try:
        session.flush()
    except IntegrityError:  # the same key created by someone else a moment ago
        raise GoalError(f"key: a company goal {key!r} exists already: choose another key") from None
    return goal


def _stale(goal: CompanyGoal, version: int, doing: str) -> GoalConflictError:
    return GoalConflictError(
        f"company goal {goal.key} ({goal.title!r}) was changed by {goal.updated_by} at"
        f" {goal.updated_at:%Y-%m-%d %H:%M} UTC (it is at version {goal.version}; your {doing} started from version"
        f" {version}): nothing was saved — reload the goal and make your change again"
    )


def update(session: Session, key: str, *, version: int, fields: GoalFields, by: str, at: datetime) -> CompanyGoal:
    """Replace the goal's fields if it is still at ``version`` (the one the caller read); the key never changes."""
    values = _checked(fields)
    current = get(session, key)
    if current.version != version or not repository.update_if_version(
        session, key=key, version=version, values=asdict(values), by=by, at=at
    ):
        session.expire(current)
        raise _stale(get(session, key), version, "edit")
    session.expire(current)
    return get(session, key)


def serving(session: Session) -> list[ServingObjective]:
    """Every objective of every mapping's current version, with its stored progress, in mapping order."""
    mappings = [m for m in okrs.mappings(session) if m.current_version]
    values = repository.objective_values(session, [m.id or 0 for m in mappings])
    connections = repository.connections(session)
    out = []
    for mapping in mappings:
        connection = connections.get(mapping.connection_id)
        where = f"{connection.crm}/{connection.name}" if connection else "?"
        for objective in okrs.current_config(session, mapping).objectives:
            value = values.get((mapping.id or 0, objective.key))
            out.append(
                ServingObjective(
                    mapping_id=mapping.id or 0, team=mapping.team, cycle=mapping.cycle, connection=where,
                    objective_key=objective.key, title=objective.title, serves=objective.serves,
                    progress=value.progress if value else None, status=value.status if value else None,
                    achieved=value.achieved if value else False,
                )
            )  # fmt: skip
    return out


def delete(session: Session, key: str, *, version: int | None = None) -> None:
    """Delete the goal, unless objectives serve it (409 naming them) or it changed since ``version`` (409). The goal
    is locked before the objectives are looked at: a mapping being applied that serves it holds it share-locked until
    it is committed, and is then seen (PostgreSQL; see ``repository.existing_keys``)."""
    goal = repository.goal(session, key, lock=True)
    if goal is None:
        raise GoalNotFoundError(f"no company goal {key!r}: GET /api/v1/goals lists them")
    served_by = [o for o in serving(session) if o.serves == key]
    if served_by:
        names = "; ".join(f"{o.team} / {o.cycle}: objective {o.objective_key} ({o.title!r})" for o in served_by)
        raise GoalConflictError(
            f"company goal {key} ({goal.title!r}) is served by {len(served_by)} objective(s) — {names}. Nothing was"
            f" deleted: remove `serves: {key}` from them (apply each mapping again; while its cycle runs, with a"
            " reason), then delete the goal"
        )
    if version is not None and goal.version != version:
        raise _stale(goal, version, "delete")
    if not repository.delete_if_version(session, key=key, version=goal.version):
        session.expire(goal)
        raise _stale(get(session, key), goal.version, "delete")
    session.expunge(goal)


def company(session: Session) -> CompanyView:
    goals = repository.goals(session)
    objectives = serving(session)
    keys = {g.key for g in goals}
    views = [GoalView(g, [o for o in objectives if o.serves == g.key]) for g in goals]
    return CompanyView(
        goals=views,
        unserved=[v.goal for v in views if not v.objectives],
        unlinked=[o for o in objectives if o.serves is None],
        unknown=[o for o in objectives if o.serves is not None and o.serves not in keys],
    )
