"""Bottom-up planning: the team drafts its next cycle's OKRs, the lead reviews, approving applies the mapping.

The method okrsync serves sets OKRs bottom-up: the sellers derive their team's objectives and key results from the
company's strategy, the lead is a sparring partner who checks each one for feasibility, relevance and effort. So:

1. any team member (``rep`` and up) opens a draft for a team and cycle (``create``; or ``import_yaml`` from a
   mapping file) and edits it (``save``: the whole content, naming the revision it started from; a save over
   someone else's newer save is refused with who saved and when, so no edit silently overwrites another);
2. the draft goes to review when the mapping validation accepts it (``submit``);
3. the lead — a ``lead`` token of that team, or sales ops — rates each objective and key result (``review``:
   feasibility, relevance, effort, 1–5, and a comment), asks for changes (``request_changes``) or approves
   (``approve``), which applies the draft as the mapping's next version through ``okrs.apply``: the same validation
   and cycle rules as a file (objectives locked once the cycle runs, key-result changes with a reason).

The draft's content is the mapping file as data; ``export_yaml`` writes it, ``import_yaml`` reads it back to the same
content (comments in an imported file are not kept).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import yaml
from sqlmodel import Session

from mappings.validate import MappingFileError, Problem
from service.crm.models import CrmConnection
from service.kit.auth import Caller, Role
from service.kit.errors import ConflictError, InvalidError, NotFoundError
from service.okrs import service as okrs
from service.okrs.models import OkrMapping, OkrMappingVersion
from service.planning import repository as repo
from service.planning.models import DraftEvent, PlanDraft

RATINGS = range(1, 6)


class DraftNotFound(NotFoundError, LookupError):
    pass


class DraftConflict(ConflictError):
    pass


class DraftRefused(InvalidError, ValueError):
    pass


class NotYourTeam(ConflictError):
    status = 403


# ------------------------------------------------------------------------------------------------ the content


def export_yaml(content: dict[str, Any]) -> str:
    """The draft as the mapping file a sales-ops user would write (keys in the file's order)."""
    return yaml.safe_dump(content, sort_keys=False, allow_unicode=True, default_flow_style=False, width=120)


def content_of(text: str, *, filename: str = "draft.yaml") -> dict[str, Any]:
    """A mapping file's text as draft content (safe YAML: the loader the mapping files use)."""
    from mappings.source import load_yaml

    try:
        data, _locator = load_yaml(text, filename=filename)
    except MappingFileError as exc:
        raise DraftRefused("; ".join(str(p) for p in exc.problems)) from None
    if not isinstance(data, dict):
        raise DraftRefused(f"{filename}: a mapping file is a mapping of sections (team, cycle, objectives…)")
    return _plain(data)


def _plain(value: Any) -> Any:
    """YAML dates as ISO text, so the content is JSON as stored and compares equal after a round trip."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def problems(session: Session, draft: PlanDraft) -> list[Problem]:
    """What the mapping validation says about the draft now (located in its exported YAML), [] when it would apply."""
    connection = session.get(CrmConnection, draft.connection_id)
    assert connection is not None
    try:
        loaded = okrs.load(export_yaml(draft.content), filename="draft.yaml")
    except MappingFileError as exc:
        return list(exc.problems)
    return okrs.check_against_crm(session, loaded, connection)


# ---------------------------------------------------------------------------------------------------- drafting


def create(
    session: Session,
    *,
    connection: CrmConnection,
    team: str,
    cycle: str,
    start: date,
    end: date,
    author: str,
    now: datetime,
    members: list[dict[str, Any]] | None = None,
    caller: Caller | None = None,
) -> PlanDraft:
    """A new draft for a team's cycle. Team members, calendar, scoring and custom fields come from the team's latest
    mapping on the connection (``members`` when it has none); objectives start empty."""
    team, cycle = team.strip(), cycle.strip()
    if not team or not cycle:
        raise DraftRefused("a draft needs the team's name (team) and the cycle's name (cycle)")
    if end < start:
        raise DraftRefused(f"cycle {cycle!r} ends ({end}) before it starts ({start})")
    latest = repo.latest_mapping(session, connection_id=connection.id or 0, team=team)
    content: dict[str, Any] = {"version": 1, "team": {"name": team, "members": members or []}}
    if latest is not None:
        _mapping, version = latest
        for key in ("scoring", "custom_fields"):
            if version.config.get(key):
                content[key] = version.config[key]
        content["team"] = {k: v for k, v in version.config["team"].items() if v is not None}
        content["team"]["name"] = team
        if members:
            content["team"]["members"] = members
    content["cycle"] = {"name": cycle, "start": start.isoformat(), "end": end.isoformat()}
    content["objectives"] = []
    return _new(session, connection=connection, content=content, author=author, now=now, caller=caller)


def import_yaml(
    session: Session, *, connection: CrmConnection, text: str, author: str, now: datetime, caller: Caller | None = None
) -> PlanDraft:
    """A draft from a mapping file (as written: it may still be incomplete)."""
    content = content_of(text)
    team, cycle = content.get("team"), content.get("cycle")
    if not isinstance(team, dict) or not str(team.get("name") or "").strip():
        raise DraftRefused("the file names no team (team: {name: …, members: […]})")
    if not isinstance(cycle, dict) or not str(cycle.get("name") or "").strip():
        raise DraftRefused("the file names no cycle (cycle: {name: …, start: …, end: …})")
    return _new(session, connection=connection, content=content, author=author, now=now, caller=caller)


def _new(
    session: Session,
    *,
    connection: CrmConnection,
    content: dict[str, Any],
    author: str,
    now: datetime,
    caller: Caller | None = None,
) -> PlanDraft:
    team, cycle = str(content["team"]["name"]).strip(), str(content["cycle"]["name"]).strip()
    if caller is not None:
        _own_team(caller, team)
    assert connection.id is not None
    existing = repo.draft_for(session, connection_id=connection.id, team=team, cycle=cycle)
    if existing is not None:
        raise DraftConflict(
            f"team {team} has a draft for {cycle} already (draft {existing.id}, {existing.status}, last saved by "
            f"{existing.updated_by}): open it instead of starting another"
        )
    _check_overlap(session, connection_id=connection.id, team=team, cycle=cycle, content=content, now=now)
    draft = PlanDraft(
        connection_id=connection.id, team=team, cycle=cycle, content=content, created_by=author, created_at=now,
        updated_by=author, updated_at=now,
    )  # fmt: skip
    session.add(draft)
    session.flush()
    return draft


def _check_overlap(
    session: Session, *, connection_id: int, team: str, cycle: str, content: dict[str, Any], now: datetime
) -> None:
    """A draft's cycle may not overlap the team's running cycle (another cycle name whose days it shares)."""
    try:
        start = date.fromisoformat(str(content["cycle"]["start"]))
        end = date.fromisoformat(str(content["cycle"]["end"]))
    except (KeyError, TypeError, ValueError):
        return  # the validation names a missing or malformed date
    for mapping in repo.team_mappings(session, connection_id=connection_id, team=team):
        running = mapping.cycle_start <= now.date() <= mapping.cycle_end
        if mapping.cycle != cycle and running and start <= mapping.cycle_end and end >= mapping.cycle_start:
            raise DraftConflict(
                f"cycle {cycle} ({start} – {end}) overlaps team {team}'s running cycle {mapping.cycle} "
                f"({mapping.cycle_start} – {mapping.cycle_end}): start the next cycle on "
                f"{mapping.cycle_end + timedelta(days=1)} or later"
            )


def get(session: Session, draft_id: int) -> PlanDraft:
    draft = session.get(PlanDraft, draft_id)
    if draft is None:
        raise DraftNotFound(f"no planning draft {draft_id}: list them with GET /api/v1/planning/drafts")
    return draft


def save(
    session: Session, draft: PlanDraft, *, content: dict[str, Any], revision: int, caller: Caller, now: datetime
) -> PlanDraft:
    """Replace the draft's content. ``revision`` is the one the editor started from: if someone saved since, the save
    is refused (409) naming who and when, and nothing is overwritten."""
    _may_edit(draft, caller)
    if revision != draft.revision:
        raise DraftConflict(
            f"draft {draft.team} / {draft.cycle} was saved by {draft.updated_by} at {draft.updated_at:%Y-%m-%d %H:%M} "
            f"UTC (revision {draft.revision}) after you opened revision {revision}: reload it and make your change "
            "again — your text is not lost, copy it before reloading"
        )
    content = _plain(content)
    team, cycle = (content.get("team") or {}).get("name"), (content.get("cycle") or {}).get("name")
    if team != draft.team or cycle != draft.cycle:
        raise DraftRefused(
            f"team.name and cycle.name of a draft stay {draft.team!r} and {draft.cycle!r} (got {team!r}, {cycle!r}):"
            " start a new draft for another team or cycle"
        )
    _check_overlap(session, connection_id=draft.connection_id, team=draft.team, cycle=draft.cycle, content=content,
                   now=now)  # fmt: skip
    draft.content = content
    draft.revision += 1
    draft.updated_by, draft.updated_at = caller.name, now
    if draft.status in ("changes_requested", "in_review"):
        draft.status = "drafting"  # changed content goes to review again: nobody approves what they did not see
    session.add(draft)
    session.flush()
    return draft


def _own_team(caller: Caller, team: str) -> None:
    """A lead token acts for its own team only (reps and sales ops for any)."""
    if caller.role is Role.lead and caller.team != team:
        raise NotYourTeam(f"this lead token is for team {caller.team}, not {team}")


def _may_edit(draft: PlanDraft, caller: Caller) -> None:
    if not caller.may(Role.rep):
        raise NotYourTeam(f"editing a draft needs the role rep or higher (the token's role is {caller.role})")
    _own_team(caller, draft.team)
    if draft.status == "approved":
        raise DraftConflict(
            f"draft {draft.team} / {draft.cycle} was approved and applied as mapping version {draft.mapping_version}:"
            " change the mapping (with a reason), or start a draft for the next cycle"
        )


# ------------------------------------------------------------------------------------------------ conversation


def _event(session: Session, draft: PlanDraft, caller: Caller, kind: str, now: datetime, **values: Any) -> DraftEvent:
    event = DraftEvent(
        draft_id=draft.id or 0, kind=kind, author=caller.name, role=caller.role.value, at=now,
        revision=draft.revision, **values,
    )  # fmt: skip
    session.add(event)
    session.flush()
    return event


def items(content: dict[str, Any]) -> dict[str, str]:
    """The keys of the draft's objectives and key results, with their titles."""
    found: dict[str, str] = {}
    for objective in content.get("objectives") or []:
        if isinstance(objective, dict) and objective.get("key"):
            found[str(objective["key"])] = str(objective.get("title") or "")
            for kr in objective.get("key_results") or []:
                if isinstance(kr, dict) and kr.get("key"):
                    found[str(kr["key"])] = str(kr.get("title") or "")
    return found


def _item(draft: PlanDraft, item: str | None) -> str | None:
    if item is not None and item not in items(draft.content):
        known = ", ".join(sorted(items(draft.content))) or "none yet"
        raise DraftRefused(f"item {item!r} is no objective or key result of this draft (its keys: {known})")
    return item


def comment(
    session: Session, draft: PlanDraft, *, caller: Caller, body: str, item: str | None, now: datetime
) -> DraftEvent:
    if not caller.may(Role.rep):
        raise NotYourTeam(f"commenting needs the role rep or higher (the token's role is {caller.role})")
    _own_team(caller, draft.team)
    if not body.strip():
        raise DraftRefused("a comment needs some text (body)")
    return _event(session, draft, caller, "comment", now, item=_item(draft, item), body=body.strip())


def submit(session: Session, draft: PlanDraft, *, caller: Caller, now: datetime) -> PlanDraft:
    """Send the draft to the lead's review: only when the mapping validation accepts it."""
    _may_edit(draft, caller)
    found = problems(session, draft)
    if found:
        raise DraftRefused("the draft is not ready for review: " + "; ".join(str(p) for p in found))
    draft.status = "in_review"
    session.add(draft)
    _event(session, draft, caller, "submit", now)
    return draft


def _may_lead(draft: PlanDraft, caller: Caller) -> None:
    if not caller.leads(draft.team):
        why = (
            f"this lead token is for team {caller.team}"
            if caller.role is Role.lead
            else f"the token's role is {caller.role}"
        )
        raise NotYourTeam(f"reviewing team {draft.team}'s draft needs its lead or sales ops ({why})")


def review(
    session: Session,
    draft: PlanDraft,
    *,
    caller: Caller,
    item: str,
    feasibility: int,
    relevance: int,
    effort: int,
    body: str | None,
    now: datetime,
) -> DraftEvent:
    """The lead's rating of one objective or key result: feasibility, relevance and effort, 1 (poor) to 5 (good)."""
    _may_lead(draft, caller)
    for name, value in (("feasibility", feasibility), ("relevance", relevance), ("effort", effort)):
        if value not in RATINGS:
            raise DraftRefused(f"{name} is rated 1 (poor) to 5 (good), not {value}")
    return _event(
        session, draft, caller, "review", now, item=_item(draft, item), feasibility=feasibility, relevance=relevance,
        effort=effort, body=(body or "").strip() or None,
    )  # fmt: skip


def request_changes(session: Session, draft: PlanDraft, *, caller: Caller, body: str, now: datetime) -> PlanDraft:
    _may_lead(draft, caller)
    if draft.status != "in_review":
        raise DraftConflict(f"draft {draft.team} / {draft.cycle} is {draft.status}, not in review")
    if not body.strip():
        raise DraftRefused("say what should change (body)")
    draft.status = "changes_requested"
    session.add(draft)
    _event(session, draft, caller, "request_changes", now, body=body.strip())
    return draft


def approve(
    session: Session, draft: PlanDraft, *, caller: Caller, reason: str | None, now: datetime
) -> tuple[OkrMapping, OkrMappingVersion | None]:
    """Apply the draft as the team's mapping (okrs.apply: the same validation and cycle rules as a file)."""
    _may_lead(draft, caller)
    if draft.status != "in_review":
        raise DraftConflict(
            f"draft {draft.team} / {draft.cycle} is {draft.status}: only a draft in review can be approved"
            + (" (submit it first)" if draft.status in ("drafting", "changes_requested") else "")
        )
    connection = session.get(CrmConnection, draft.connection_id)
    assert connection is not None
    try:  # it was valid when submitted; what it names may have changed since (a company goal deleted, a field gone)
        loaded = okrs.load(export_yaml(draft.content), filename=f"draft-{draft.id}.yaml")
        mapping, version = okrs.apply(session, loaded, connection=connection, author=caller.name, reason=reason,
                                      now=now)  # fmt: skip
    except MappingFileError as exc:
        raise DraftRefused(
            f"draft {draft.team} / {draft.cycle} does not apply any more: "
            + "; ".join(str(p) for p in exc.problems)
            + " — correct the draft and send it to review again"
        ) from None
    draft.status = "approved"
    draft.mapping_id, draft.mapping_version = mapping.id, mapping.current_version
    session.add(draft)
    _event(session, draft, caller, "approve", now, body=(reason or "").strip() or None)
    return mapping, version


def events(session: Session, draft: PlanDraft) -> list[DraftEvent]:
    return repo.events(session, draft_id=draft.id or 0)


def drafts(session: Session) -> list[PlanDraft]:
    return repo.drafts(session)
