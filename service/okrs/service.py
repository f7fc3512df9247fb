"""Applying a mapping file: checks against the synced CRM data, versioning, and the cycle rules of the method.

Within a running (or finished) cycle a key result's definition may change, with who, when and why recorded and
the values recomputed; an objective may not: the team committed to it for the cycle, so a different objective
means a new cycle. Before the cycle starts everything may still change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlmodel
from sqlalchemy import func, select
from sqlmodel import Session, col

from connectors.adapter import raw_path
from connectors.registry import adapter as crm_adapter
from mappings.config import Loc, ManualMetric, MappingConfig, metric_filters
from mappings.fields import RecordType, resolve
from mappings.filters import conditions_fields
from mappings.kam import ASSESSMENTS
from mappings.source import Locator, MappingFileError, Problem
from mappings.validate import from_data, located
from service.compute.models import Computation, KamAccountScore
from service.compute.repository import owner_ids_by_email, table
from service.crm.models import Account, Activity, Contact, CrmConnection, Lead, Opportunity, Owner
from service.goals import repository as goals_repo
from service.kit import errors
from service.kit.db import utcnow
from service.kit.errors import ConflictError
from service.okrs.models import KamAssessment, ManualValue, OkrMapping, OkrMappingVersion

MODELS: dict[RecordType, Any] = {
    RecordType.activity: Activity,
    RecordType.opportunity: Opportunity,
    RecordType.account: Account,
    RecordType.contact: Contact,
    RecordType.owner: Owner,
    RecordType.lead: Lead,
}


class CycleRuleError(ConflictError, ValueError):
    """The change breaks a rule of the OKR cycle (an objective changed mid-cycle, a KR edit without reason)."""


class ManualValueError(errors.InvalidError, ValueError):
    """A manual key result's value that it cannot take: not finite, or outside its min…max."""


class NotFoundError(errors.NotFoundError, LookupError):
    """A mapping, key result or record the request names does not exist."""


@dataclass(frozen=True)
class LoadedMapping:
    config: MappingConfig
    source: str
    source_name: str
    locator: Locator


def load(text: str, *, filename: str) -> LoadedMapping:
    from mappings.source import load_yaml

    data, locator = load_yaml(text, filename=filename)
    return LoadedMapping(from_data(data, locator, filename=filename), text, filename, locator)


def load_path(path: Path) -> LoadedMapping:
    from mappings.source import load_file

    data, locator = load_file(path)
    text = path.read_text(encoding="utf-8")
    return LoadedMapping(from_data(data, locator, filename=str(path)), text, str(path), locator)


def resolve_connection(session: Session, name: str | None) -> CrmConnection:
    """``crm/name`` or ``name``; without a name, the only connection there is."""
    connections = list(session.exec(sqlmodel.select(CrmConnection)).all())
    if name is None:
        if len(connections) == 1:
            return connections[0]
        if not connections:
            raise NotFoundError("no CRM data yet: run `okrsync sync salesforce` or `okrsync sync hubspot` first")
        names = ", ".join(f"{c.crm}/{c.name}" for c in connections)
        raise NotFoundError(f"several CRM connections ({names}): choose one with --connection")
    crm, _, short = name.rpartition("/")
    for c in connections:
        if c.name == short and (not crm or c.crm == crm):
            return c
    names = ", ".join(f"{c.crm}/{c.name}" for c in connections) or "none"
    raise NotFoundError(f"no CRM connection {name!r} (known: {names})")


def check_against_crm(session: Session, loaded: LoadedMapping, connection: CrmConnection) -> list[Problem]:
    """Team members and CRM fields named by the file must exist in what has been synced from this connection, and
    the company goals its objectives serve must exist (``mappings/`` cannot know either: it has no database)."""
    config = loaded.config
    problems: list[tuple[Loc, str]] = check_goals(session, config)
    assert connection.id is not None
    emails = [m.email for m in config.team.members]
    found = owner_ids_by_email(session, connection_id=connection.id, emails=emails)
    owners_synced = _has_rows(session, Owner, connection.id)
    for n, member in enumerate(config.team.members):
        if owners_synced and member.email.lower() not in found:
            problems.append(
                (
                    ("team", "members", n, "email"),
                    f"no CRM user with e-mail {member.email} in {connection.crm}/{connection.name}",
                )
            )
    crm = connection.crm
    for name, spec in config.custom_fields.items():
        crm_name = spec.name_in(crm)
        model = MODELS[spec.record]
        if not crm_name:
            problems.append(((("custom_fields", name)), f"no {crm} name given, but the connection is {crm}"))
        elif _has_rows(session, model, connection.id) and not _raw_present(session, model, connection, crm_name):
            problems.append(
                (
                    ("custom_fields", name, crm),
                    f"no synced {spec.record.value} carries {crm} field {crm_name!r}: check the name, and for "
                    f"Salesforce list it in OKRSYNC_SALESFORCE__CUSTOM_FIELDS, then sync again",
                )
            )
    custom = config.custom()
    for i, objective in enumerate(config.objectives):
        for j, kr in enumerate(objective.key_results):
            for record, where, sub in metric_filters(kr.metric):
                for n, condition in enumerate(where):
                    for inner in conditions_fields([condition]):
                        field = resolve(inner.field, record, custom)
                        model = MODELS[field.record]
                        if (
                            field.kind == "raw"
                            and _has_rows(session, model, connection.id)
                            and not _raw_present(session, model, connection, field.name)
                        ):
                            problems.append(
                                (
                                    ("objectives", i, "key_results", j, "metric", *sub, n),
                                    f"no synced {field.record.value} carries {crm} field {field.name!r}",
                                )
                            )
    return located(problems, loaded.locator, filename=loaded.source_name)


def check_goals(session: Session, config: MappingConfig) -> list[tuple[Loc, str]]:
    """An objective's ``serves`` must name a company goal that exists (sales ops enter them first)."""
    named = {o.serves for o in config.objectives if o.serves}
    found = goals_repo.existing_keys(session, named)
    return [
        (
            ("objectives", i, "serves"),
            f"objective {objective.key} ({objective.title!r}) serves company goal {objective.serves!r}, which does not"
            " exist: create it first (dashboard: Company goals; API: POST /api/v1/goals) or correct the key",
        )
        for i, objective in enumerate(config.objectives)
        if objective.serves and objective.serves not in found
    ]


def _has_rows(session: Session, model: Any, connection_id: int) -> bool:
    t = table(model)
    return (
        session.execute(select(t.c.external_id).where(t.c.connection_id == connection_id).limit(1)).first() is not None
    )


def _raw_present(session: Session, model: Any, connection: CrmConnection, name: str) -> bool:
    t = table(model)
    path = raw_path(crm_adapter(connection.crm), name)
    query = select(func.count()).where(t.c.connection_id == connection.id, t.c.raw[path].as_string().is_not(None))
    return bool(session.execute(query.limit(1)).scalar())


def _objectives(config: dict[str, Any]) -> list[tuple[str, str]]:
    return [(o["key"], o["title"]) for o in config["objectives"]]


def _key_results(config: dict[str, Any]) -> dict[str, Any]:
    return {kr["key"]: kr for o in config["objectives"] for kr in o["key_results"]}


def changes_between(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable list of what changed between two mapping versions."""
    out: list[str] = []
    old_krs, new_krs = _key_results(old), _key_results(new)
    out += [f"key result {k} added" for k in new_krs if k not in old_krs]
    out += [f"key result {k} removed" for k in old_krs if k not in new_krs]
    out += [f"key result {k} changed" for k in new_krs if k in old_krs and old_krs[k] != new_krs[k]]
    if _objectives(old) != _objectives(new):
        out.append("objectives changed")
    else:  # which company goal an objective serves is a link, not the team's commitment: it may change mid-cycle
        served = {o["key"]: o.get("serves") for o in old["objectives"]}
        out += [
            f"objective {o['key']} serves {o.get('serves') or 'no company goal'}"
            for o in new["objectives"]
            if o.get("serves") != served.get(o["key"])
        ]
    for section in ("team", "cycle", "scoring", "custom_fields", "sprints", "hygiene", "kam"):
        if old.get(section) != new.get(section):
            out.append(f"{section} changed")
    return out


def apply(
    session: Session,
    loaded: LoadedMapping,
    *,
    connection: CrmConnection,
    author: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> tuple[OkrMapping, OkrMappingVersion | None]:
    """Store the file as the mapping's next version; returns (mapping, new version or None if unchanged).

    Raises CycleRuleError when the change is not allowed at this point of the cycle, MappingFileError when the
    file does not fit the synced CRM data. Nothing is stored in either case.
    """
    problems = check_against_crm(session, loaded, connection)
    if problems:
        raise MappingFileError(problems)
    now = now or utcnow()
    config = loaded.config
    data = config.model_dump(mode="json")
    mapping = session.exec(
        sqlmodel.select(OkrMapping).where(
            OkrMapping.connection_id == connection.id,
            OkrMapping.team == config.team.name,
            OkrMapping.cycle == config.cycle.name,
        )
    ).first()
    if mapping is None:
        assert connection.id is not None
        mapping = OkrMapping(
            connection_id=connection.id,
            team=config.team.name,
            cycle=config.cycle.name,
            cycle_start=config.cycle.start,
            cycle_end=config.cycle.end,
            created_at=now,
        )
        session.add(mapping)
        session.flush()
        changes = ["first version"]
    else:
        current = session.get(OkrMappingVersion, (mapping.id, mapping.current_version))
        assert current is not None
        changes = changes_between(current.config, data)
        if not changes:
            return mapping, None
        started = now.date() >= mapping.cycle_start
        if started:
            if "objectives changed" in changes:
                raise CycleRuleError(
                    f"cycle {mapping.cycle} is running since {mapping.cycle_start}: its objectives cannot change. "
                    "Change the key results (with a reason), or start a new cycle with a new cycle name"
                )
            if "cycle changed" in changes:
                raise CycleRuleError(
                    f"cycle {mapping.cycle} is running: its dates cannot change; start a new cycle instead"
                )
            if not reason:
                raise CycleRuleError(
                    f"cycle {mapping.cycle} is running: say why the definition changes (--reason); "
                    f"changes: {', '.join(changes)}"
                )
    assert mapping.id is not None
    mapping.current_version += 1
    mapping.cycle_start, mapping.cycle_end = config.cycle.start, config.cycle.end
    version = OkrMappingVersion(
        mapping_id=mapping.id,
        version=mapping.current_version,
        config=data,
        source=loaded.source,
        source_name=loaded.source_name,
        author=author,
        reason=reason,
        changes=changes,
        applied_at=now,
    )
    session.add(mapping)
    session.add(version)
    session.flush()
    return mapping, version


def mappings(session: Session) -> list[OkrMapping]:
    return list(session.exec(sqlmodel.select(OkrMapping).order_by(col(OkrMapping.id))).all())


def find_mapping(session: Session, name: str | None) -> OkrMapping:
    """A mapping by ``team / cycle``, by cycle name or team name; without a name, the only (or latest) one."""
    all_mappings = mappings(session)
    if not all_mappings:
        raise NotFoundError("no mapping applied yet: run `okrsync mappings apply FILE`")
    if name is None:
        return all_mappings[-1]
    for m in all_mappings:
        if name in (f"{m.team} / {m.cycle}", m.cycle, m.team, str(m.id)):
            return m
    known = "; ".join(f"{m.id}: {m.team} / {m.cycle}" for m in all_mappings)
    raise NotFoundError(f"no mapping {name!r} (known: {known})")


def current_config(session: Session, mapping: OkrMapping) -> MappingConfig:
    version = session.get(OkrMappingVersion, (mapping.id, mapping.current_version))
    assert version is not None
    return MappingConfig.model_validate(version.config)


def versions(session: Session, mapping: OkrMapping) -> list[OkrMappingVersion]:
    return list(
        session.exec(
            sqlmodel.select(OkrMappingVersion)
            .where(OkrMappingVersion.mapping_id == mapping.id)
            .order_by(col(OkrMappingVersion.version))
        ).all()
    )


def set_manual_value(
    session: Session, mapping: OkrMapping, *, kr_key: str, value: float, author: str, note: str | None, at: datetime
) -> ManualValue:
    config = current_config(session, mapping)
    try:
        kr = config.key_result(kr_key)
    except KeyError:
        raise NotFoundError(f"no key result {kr_key!r} in {mapping.team} / {mapping.cycle}") from None
    if kr.metric.type != "manual":
        raise CycleRuleError(
            f"key result {kr_key} is computed from the CRM ({kr.metric.type}); only manual ones take values"
        )
    problem = kr.metric.out_of_range(value) if isinstance(kr.metric, ManualMetric) else None
    if problem is not None:
        raise ManualValueError(f"the value for {kr_key} ({kr.title}): {problem}")
    assert mapping.id is not None
    entry = ManualValue(mapping_id=mapping.id, kr_key=kr_key, value=value, note=note, author=author, entered_at=at)
    session.add(entry)
    session.flush()
    return entry


def assess(
    session: Session,
    mapping: OkrMapping,
    *,
    account_id: str,
    criterion_key: str,
    status: str,
    author: str,
    comment: str | None,
    evidence_url: str | None,
    at: datetime,
) -> KamAssessment:
    config = current_config(session, mapping)
    if config.kam is None:
        raise NotFoundError(f"{mapping.team} / {mapping.cycle} has no kam section")
    criterion = next((c for c in config.kam.criteria if c.key == criterion_key), None)
    if criterion is None:
        keys = ", ".join(c.key for c in config.kam.criteria)
        raise NotFoundError(f"no KAM criterion {criterion_key!r} (criteria: {keys})")
    if criterion.type != "assessed":
        raise CycleRuleError(f"criterion {criterion_key} is derived from activities ({criterion.type}), not assessed")
    if status not in ASSESSMENTS:
        raise ValueError(f"status must be one of {', '.join(ASSESSMENTS)}, not {status!r}")
    account = session.get(Account, (mapping.connection_id, account_id))
    if account is None:
        raise NotFoundError(f"no synced account {account_id!r}")
    assert mapping.id is not None
    # the key accounts as last computed (names, ids or a filter, evaluated by the computation); a mapping never
    # computed yet (apply computes at once, so only inside a transaction like the tests') has no list to check
    computed = session.exec(sqlmodel.select(Computation.id).where(Computation.mapping_id == mapping.id)).first()
    if computed is not None and session.get(KamAccountScore, (mapping.id, account_id)) is None:
        raise NotFoundError(
            f"account {account_id} ({account.name}) is not a key account of {mapping.team} / {mapping.cycle}: the"
            " file's kam.accounts names them (GET /api/v1/mappings/{id}/kam-assessments shows those assessed)"
        )
    entry = KamAssessment(
        mapping_id=mapping.id,
        account_id=account_id,
        criterion_key=criterion_key,
        status=status,
        comment=comment,
        evidence_url=evidence_url,
        author=author,
        assessed_at=at,
    )
    session.add(entry)
    session.flush()
    return entry


Loc_ = Loc  # re-exported for callers building their own located problems
