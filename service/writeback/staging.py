"""What the CRM should show, built from the stored computations, and its difference from what was staged before.

``desired()`` turns the computed tables of every mapping on a connection into neutral write targets
(``connectors.writes``): objectives, key results, each opportunity's or account's contribution to a key result,
KAM criteria, and okrsync's fields on opportunities (hygiene) and accounts (KAM score). ``stage()`` compares them
with the outbox and stages only records whose values changed (time stamps alone are no change), deletes records
that are no longer wanted, and clears okrsync's fields on records that left the team's scope.

After an incremental computation both can be narrowed to some CRM records (``only``, a ``repo.Records``): the
objectives and key results, which are few, are compared whole, and of the per-record targets (contributions, KAM
criteria, opportunity and account fields) only those of the named records, each built whole from every mapping.
What the computation did not touch comes out as staged before, so the narrowed staging stages exactly what the whole
one would (tests/service/writeback/test_narrowed_staging.py); at a million activities the whole one reads every
contribution (16 s), the narrowed one a few records.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlmodel import Session

from connectors.writes import FIELD_TARGETS, STAMP_FIELDS, Target
from mappings.config import (
    WAIT_METRICS,
    CountMetric,
    KeyResult,
    MappingConfig,
    RatioMetric,
    ResponseTimeMetric,
    SumMetric,
)
from mappings.hygiene import Finding, describe
from service.compute.models import KeyResultValue
from service.crm.models import Account, Opportunity
from service.kit.db import utcnow
from service.okrs.models import OkrMapping
from service.writeback import repository as repo
from service.writeback.models import OutboxRow

Key = tuple[Target, str]


@dataclass
class Desired:
    """Target values by (target, key), and the mapping each object target belongs to."""

    values: dict[Key, dict[str, Any]] = field(default_factory=dict)
    mapping_of: dict[Key, int] = field(default_factory=dict)


def slug(text: str, limit: int = 60) -> str:
    """A readable, stable piece of an okrsync id: lower case, runs of other characters as one '-'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "x"


def mapping_prefix(mapping: OkrMapping) -> str:
    return f"{slug(mapping.team)}/{slug(mapping.cycle)}"


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value - round(value)) < 0.005 else f"{value:,.2f}"


def _status(status: str) -> str:
    return status.replace("_", " ")


def digest(values: dict[str, Any]) -> str:
    """What 'changed' means: the values without time stamps, canonically serialised."""
    meaningful = {k: v for k, v in sorted(values.items()) if k not in STAMP_FIELDS}
    return hashlib.sha256(json.dumps(meaningful, sort_keys=True, default=str).encode()).hexdigest()


def desired(
    session: Session,
    *,
    connection_id: int,
    as_of: datetime | None = None,
    dashboard: str | None = None,
    only: repo.Records | None = None,
) -> Desired:
    """Every target the computed mappings of the connection want in the CRM as of ``as_of`` (default: now);
    ``dashboard``: okrsync's public URL, for each key result's link to its dashboard page; ``only``: of the
    per-record targets, only those of these CRM records."""
    want = Desired()
    opportunity_lines: dict[str, list[str]] = defaultdict(list)
    account_lines: dict[str, list[str]] = defaultdict(list)
    hygiene: dict[str, _HygieneTally] = defaultdict(_HygieneTally)
    mappings = [
        (mapping, MappingConfig.model_validate(version.config))
        for mapping, version in repo.computed_mappings(session, connection_id=connection_id)
    ]
    labels = _labels([mapping for mapping, _config in mappings])
    hygiene_of = _hygiene_mappings(
        [mapping for mapping, config in mappings if config.hygiene.rules], today=(as_of or utcnow()).date()
    )
    for mapping, config in mappings:
        assert mapping.id is not None
        _objectives(session, want, mapping, config)
        krs = _key_results(session, want, mapping, config, dashboard)
        _contributions(session, want, mapping, config, krs, opportunity_lines, account_lines, labels[mapping.id], only)
        _kam(session, want, mapping, config, only)
        if mapping.id in hygiene_of:
            _hygiene(session, mapping, config, hygiene, hygiene_of[mapping.id], only)
    for opportunity_id, tally in hygiene.items():
        want.values[(Target.opportunity, opportunity_id)] = {
            "hygiene_score": _round(1 - tally.failed / tally.checks) if tally.checks else None,
            "hygiene_issues": "\n".join(sorted(tally.issues)) or None,
            "hygiene_checked": tally.checked,
        }
    for opportunity_id, lines in opportunity_lines.items():
        want.values.setdefault((Target.opportunity, opportunity_id), {})["key_results"] = "\n".join(sorted(lines))
    for account_id, lines in account_lines.items():
        want.values.setdefault((Target.account, account_id), {})["key_results"] = "\n".join(sorted(lines))
    return want


def _labels(mappings: list[OkrMapping]) -> dict[int, str]:
    """How a line written on a CRM record names the mapping it comes from, when several mappings of the connection
    write to the same records: nothing with one mapping, the team with several teams, team and cycle when a team
    has mappings for several cycles."""
    if len(mappings) < 2:
        return {mapping.id or 0: "" for mapping in mappings}
    teams = Counter(mapping.team for mapping in mappings)
    return {
        mapping.id or 0: f"{mapping.team} ({mapping.cycle}): " if teams[mapping.team] > 1 else f"{mapping.team}: "
        for mapping in mappings
    }


def _hygiene_mappings(mappings: list[OkrMapping], *, today: date) -> dict[int, str]:
    """The mappings whose hygiene rules are written on opportunities, with the label their lines carry.

    Hygiene judges the pipeline as it is now, so one team's mappings for two cycles would judge the same
    opportunities twice: per team, the mapping of the cycle that started last counts (next quarter's file, applied
    early, takes over when its cycle starts). Several teams each count, and their lines name the team."""
    current: dict[str, OkrMapping] = {}
    for mapping in mappings:
        held = current.get(mapping.team)
        started = mapping.cycle_start <= today
        if held is None or (started and (held.cycle_start > today or mapping.cycle_start > held.cycle_start)):
            current[mapping.team] = mapping
    return {mapping.id or 0: f"{team}: " if len(current) > 1 else "" for team, mapping in current.items()}


def _objectives(session: Session, want: Desired, mapping: OkrMapping, config: MappingConfig) -> None:
    titles = {o.key: o.title for o in config.objectives}
    for row in repo.objective_values(session, mapping_id=mapping.id or 0):
        key = (Target.objective, f"{mapping_prefix(mapping)}/{row.objective_key}")
        want.mapping_of[key] = mapping.id or 0
        want.values[key] = {
            "title": titles.get(row.objective_key, row.title),
            "team": mapping.team,
            "cycle": mapping.cycle,
            "objective_key": row.objective_key,
            "progress": _round(row.progress),
            "status": row.status,
            "achieved": row.achieved,
            "computed_at": row.computed_at.isoformat(),
        }


def _key_results(
    session: Session, want: Desired, mapping: OkrMapping, config: MappingConfig, dashboard: str | None = None
) -> dict[str, tuple[KeyResult, KeyResultValue]]:
    defined = {kr.key: kr for _o, kr in config.key_results()}
    found: dict[str, tuple[KeyResult, KeyResultValue]] = {}
    for row in repo.key_result_values(session, mapping_id=mapping.id or 0):
        kr = defined.get(row.kr_key)
        if kr is None:
            continue
        found[row.kr_key] = (kr, row)
        key = (Target.key_result, f"{mapping_prefix(mapping)}/{row.kr_key}")
        want.mapping_of[key] = mapping.id or 0
        want.values[key] = {
            "objective": f"{mapping_prefix(mapping)}/{row.objective_key}",
            "title": kr.title,
            "team": mapping.team,
            "cycle": mapping.cycle,
            "kr_key": row.kr_key,
            "metric": row.metric,
            "value": _round(row.value),
            "target": _round(kr.target),
            "progress": _round(row.progress),
            "expected": _round(row.expected),
            "grade": _round(row.grade, 2),
            "status": row.status,
            "achieved": row.achieved,
            "records": row.records,
            "computed_at": row.computed_at.isoformat(),
            "dashboard_url": f"{dashboard.rstrip('/')}/dashboard/{mapping.id}/kr/{row.kr_key}" if dashboard else None,
        }
    return found


def _contribution_value(kr: KeyResult, total: repo.ContributionTotal) -> tuple[float | None, str]:
    """What one record added to the key result's value, and the words for it."""
    metric = kr.metric
    if isinstance(metric, CountMetric):
        value = float(total.distinct_keys if metric.distinct else total.records)
        return value, f"{_number(value)} counted"
    if isinstance(metric, SumMetric):
        return _round(total.value_sum, 2), f"{_number(total.value_sum)} {metric.field}"
    if isinstance(metric, RatioMetric):
        return float(total.records), f"{total.records} of the {metric.numerator.of.value}"
    if isinstance(metric, WAIT_METRICS) and total.records:
        hours = (total.value_sum or 0) / total.records
        return _round(hours, 2), f"{total.records} answered, {hours:.1f} h on average"
    return None, f"{total.records} counted"


def _contributions(
    session: Session,
    want: Desired,
    mapping: OkrMapping,
    config: MappingConfig,
    krs: dict[str, tuple[KeyResult, KeyResultValue]],
    opportunity_lines: dict[str, list[str]],
    account_lines: dict[str, list[str]],
    label: str,
    only: repo.Records | None = None,
) -> None:
    activity_krs, opportunity_krs = [], []
    for kr_key, (kr, _row) in krs.items():
        metric = kr.metric
        counted = metric.numerator.of if isinstance(metric, RatioMetric) else getattr(metric, "of", None)
        if isinstance(metric, ResponseTimeMetric) or (counted is not None and counted.value == "activities"):
            activity_krs.append(kr_key)
        elif counted is not None and counted.value == "opportunities":
            opportunity_krs.append(kr_key)
    totals = repo.contributions(
        session,
        mapping_id=mapping.id or 0,
        connection_id=mapping.connection_id,
        activity_krs=activity_krs,
        opportunity_krs=opportunity_krs,
        only=only,
    )
    for total in totals:
        kr, row = krs[total.kr_key]
        value, words = _contribution_value(kr, total)
        # only this record's own part: the team's progress lives on the key result, so one rep's new meeting
        # rewrites that key result and one contribution, not every record that ever fed it
        summary = f"{words} → {kr.title}"
        record = total.opportunity_id or total.account_id or ""
        key = (Target.contribution, f"{mapping_prefix(mapping)}/{total.kr_key}/{record}")
        want.mapping_of[key] = mapping.id or 0
        want.values[key] = {
            "key_result": f"{mapping_prefix(mapping)}/{total.kr_key}",
            "opportunity_id": total.opportunity_id,
            "account_id": total.account_id,
            "records": total.records,
            "value": value,
            "summary": summary,
            "computed_at": row.computed_at.isoformat(),
        }
        line = f"{label}{kr.title}: {words}"
        if total.opportunity_id:
            opportunity_lines[total.opportunity_id].append(line)
        elif total.account_id:
            account_lines[total.account_id].append(line)


def _kam(
    session: Session, want: Desired, mapping: OkrMapping, config: MappingConfig, only: repo.Records | None = None
) -> None:
    titles = {c.key: c.title for c in config.kam.criteria} if config.kam else {}
    accounts = None if only is None else only.accounts
    criteria, scores = repo.kam_results(session, mapping_id=mapping.id or 0, accounts=accounts)
    score_of = {s.account_id: s for s in scores}
    lines: dict[str, list[str]] = defaultdict(list)
    for result in criteria:
        score = score_of.get(result.account_id)
        key = (Target.kam_criterion, f"{mapping_prefix(mapping)}/{result.account_id}/{result.criterion_key}")
        want.mapping_of[key] = mapping.id or 0
        title = titles.get(result.criterion_key, result.criterion_key)
        want.values[key] = {
            "account_id": result.account_id,
            "title": title,
            "criterion_key": result.criterion_key,
            "status": result.status,
            "source": result.source,
            "measured": result.measured,
            "comment": result.comment,
            "account_score": _round(score.score) if score else None,
            "computed_at": (score.computed_at if score else utcnow()).isoformat(),
        }
        measured = f", {result.measured}" if result.measured is not None else ""
        lines[result.account_id].append(f"{title}: {_status(result.status)} ({result.source}{measured})")
    for account_id, score in score_of.items():  # later cycles overwrite earlier ones: mappings come oldest first
        values = want.values.setdefault((Target.account, account_id), {})
        values["kam_score"] = _round(score.score)
        values["kam_criteria"] = "\n".join(sorted(lines.get(account_id, [])))


@dataclass
class _HygieneTally:
    """One opportunity's hygiene over every mapping whose rules checked it: the score is the share of all checks
    passed, the issues name the team (``label``) when several mappings check the same opportunity."""

    checks: int = 0
    failed: int = 0
    issues: list[str] = field(default_factory=list)
    checked: str | None = None


def _hygiene(
    session: Session,
    mapping: OkrMapping,
    config: MappingConfig,
    hygiene: dict[str, _HygieneTally],
    label: str,
    only: repo.Records | None = None,
) -> None:
    rules = {r.rule_key: r for r in config.hygiene.rules}
    total = repo.hygiene_total(session, mapping_id=mapping.id or 0)
    if not rules or total is None or not total.detail.get("as_of"):
        return
    as_of = datetime.fromisoformat(total.detail["as_of"])
    medians = total.detail.get("stage_medians", {})
    owners = repo.last_owners(session, mapping_id=mapping.id or 0)
    checked: set[str] = set()
    opportunities = None if only is None else only.opportunities
    for opportunity_id in repo.open_opportunities(
        session, connection_id=mapping.connection_id, owner_ids=owners, only=opportunities
    ):
        tally = hygiene[opportunity_id]
        tally.checks += len(rules)
        tally.checked = max(tally.checked or "", total.computed_at.isoformat())
        checked.add(opportunity_id)
    for row in repo.findings(session, mapping_id=mapping.id or 0, only=opportunities):
        rule = rules.get(row.rule_key)
        if rule is None or row.opportunity_id not in checked:
            continue
        finding = Finding(
            row.opportunity_id, row.rule_key, row.detail_number, row.detail_date, row.detail_at, row.detail_text
        )
        hygiene[row.opportunity_id].failed += 1
        hygiene[row.opportunity_id].issues.append(label + describe(rule, finding, as_of=as_of, stage_medians=medians))


@dataclass
class StageReport:
    staged: Counter[str] = field(default_factory=Counter)  # target -> rows staged for upsert
    deletes: Counter[str] = field(default_factory=Counter)  # target -> rows staged for delete / clear
    unchanged: int = 0
    narrowed_to: int | None = None  # the CRM records a narrowed staging compared (None: it compared everything)

    def total(self) -> int:
        return sum(self.staged.values()) + sum(self.deletes.values())


def stage(
    session: Session,
    *,
    connection_id: int,
    written: dict[Target, frozenset[str]],
    as_of: datetime | None = None,
    dashboard: str | None = None,
    only: repo.Records | None = None,
) -> StageReport:
    """Stage into the outbox what changed since the last staging. Call it in the transaction of the computation.

    ``written`` is what the connection's CRM writer writes (targets and neutral fields): values it would not
    send do not count as changes. Values staged by a computation with a later ``as_of`` are never replaced by
    older ones. ``only``: after an incremental computation, the CRM records whose per-record targets it can have
    changed (see the module docstring)."""
    now = utcnow()
    as_of = as_of or now
    want = desired(session, connection_id=connection_id, as_of=as_of, dashboard=dashboard, only=only)
    if only is None:
        rows = repo.outbox_rows(session, connection_id=connection_id)
    else:
        rows = repo.outbox_rows(
            session, connection_id=connection_id, whole=[Target.objective.value, Target.key_result.value],
            keys=_record_keys(session, connection_id, only),
        )  # fmt: skip
    existing = {(Target(row.target), row.record_key): row for row in rows}
    report = StageReport(narrowed_to=None if only is None else len(only.opportunities) + len(only.accounts))
    live = _live_field_records(session, connection_id, [*want.values, *existing])
    for key, all_values in want.values.items():
        target, record_key = key
        fields = written.get(target)
        if not fields or (target in FIELD_TARGETS and record_key not in live[target]):
            continue
        values = {name: all_values.get(name) for name in sorted(fields)}
        if all(values.get(name) is None for name in fields if name not in STAMP_FIELDS):
            continue  # nothing okrsync would write on this record
        row = existing.pop(key, None)
        _put(session, row, connection_id, target, record_key, want.mapping_of.get(key), values, now, as_of, report)
    for (target, record_key), row in existing.items():  # staged before, not wanted any more
        if row.op == "delete" or as_of < row.as_of:
            continue
        if target in FIELD_TARGETS:
            if record_key not in live[target]:  # deleted in the CRM (per the last sync): nothing to clear
                if row.status == "pending":
                    session.delete(row)
                continue
            cleared = {name: None for name in row.payload}
            if digest(cleared) != row.digest:
                _put(session, row, connection_id, target, record_key, row.mapping_id, cleared, now, as_of, report)
            continue
        if row.crm_id is None and row.attempts == 0:
            session.delete(row)  # never sent: nothing to undo in the CRM
            continue
        row.op, row.status, row.seq, row.staged_at, row.as_of = "delete", "pending", row.seq + 1, now, as_of
        row.error = row.error_code = None
        session.add(row)
        report.deletes[target.value] += 1
    session.flush()
    return report


def _record_keys(session: Session, connection_id: int, only: repo.Records) -> list[tuple[str, str]]:
    """The outbox keys a narrowed staging compares: the records' own fields, their contributions to every key result
    and their KAM criteria, for every mapping of the connection (as ``desired`` names them)."""
    keys = [(Target.opportunity.value, i) for i in only.opportunities]
    keys += [(Target.account.value, i) for i in only.accounts]
    records = sorted(only.opportunities | only.accounts)
    for mapping, version in repo.computed_mappings(session, connection_id=connection_id):
        config = MappingConfig.model_validate(version.config)
        prefix = mapping_prefix(mapping)
        for _objective, kr in config.key_results():
            keys += [(Target.contribution.value, f"{prefix}/{kr.key}/{record}") for record in records]
        for criterion in config.kam.criteria if config.kam else []:
            keys += [(Target.kam_criterion.value, f"{prefix}/{a}/{criterion.key}") for a in sorted(only.accounts)]
    return keys


def _live_field_records(session: Session, connection_id: int, keys: list[Key]) -> dict[Target, set[str]]:
    live: dict[Target, set[str]] = {}
    for target, model in ((Target.opportunity, Opportunity), (Target.account, Account)):
        ids = sorted({record_key for t, record_key in keys if t == target})
        live[target] = repo.live_records(session, connection_id=connection_id, model=model, ids=ids)
    return live


def _put(
    session: Session,
    row: OutboxRow | None,
    connection_id: int,
    target: Target,
    record_key: str,
    mapping_id: int | None,
    values: dict[str, Any],
    now: datetime,
    as_of: datetime,
    report: StageReport,
) -> None:
    new_digest = digest(values)
    if row is not None and (as_of < row.as_of or (row.digest == new_digest and row.op == "upsert")):
        report.unchanged += 1
        return
    if row is None:
        row = OutboxRow(
            connection_id=connection_id, target=target.value, record_key=record_key, digest=new_digest,
            staged_at=now, as_of=as_of, seq=0,
        )  # fmt: skip
    row.mapping_id, row.payload, row.digest, row.op = mapping_id, values, new_digest, "upsert"
    row.status, row.seq, row.staged_at, row.as_of = "pending", row.seq + 1, now, as_of
    row.error = row.error_code = None
    session.add(row)
    cleared = all(values.get(name) is None for name in values if name not in STAMP_FIELDS)
    (report.deletes if cleared else report.staged)[target.value] += 1


__all__ = ["Desired", "StageReport", "desired", "digest", "stage"]
