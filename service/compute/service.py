"""Compute a mapping: key-result values with evidence, hygiene findings, KAM criteria, scores; full or incremental.

The work happens in the database (``INSERT … SELECT`` of evidence and findings, grouped aggregates); Python only
sees totals, response waits, medians and the small set of key accounts. An incremental run recomputes the key
results whose records changed (a changed record that counted before, or that matches now) and rechecks the
opportunities the changes touch; everything else keeps its stored value and is only re-scored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlmodel
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from connectors.records import ActivityKind
from connectors.registry import adapter as crm_adapter
from mappings import hygiene as hygiene_rules
from mappings import kam as kam_rules
from mappings import metrics, scoring
from mappings.config import (
    RECORD_OF,
    WAIT_METRICS,
    Counted,
    CountMetric,
    DateField,
    Distinct,
    HygieneScoreMetric,
    KamCriteriaMetric,
    KeyResult,
    ManualMetric,
    MappingConfig,
    RatioMetric,
    ResponseTimeMetric,
    SpeedToLeadMetric,
    Sprint,
    SprintWindow,
    Statistic,
    SumMetric,
    WaitMetric,
    metric_filters,
)
from mappings.fields import RecordType, resolve
from mappings.filters import FollowedByCondition, conditions_fields
from mappings.hygiene_rules import CustomRule, NoActivity, StuckInStage
from mappings.query import (
    NARROWED_IDS,
    NARROWED_KEYS,
    metric_evidence,
    part_evidence,
    response_evidence,
    speed_to_lead_evidence,
)
from mappings.sql import Scope, Tables
from service.compute import repository as repo
from service.compute.models import (
    Computation,
    HygieneFinding,
    HygieneHistory,
    HygieneSummary,
    KeyResultEvidence,
    KeyResultHistory,
    KeyResultValue,
    ObjectiveValue,
)
from service.crm.models import Activity, ActivityContact, CrmConnection, Lead, Opportunity, OpportunityContact
from service.kit.db import utcnow, vacuum
from service.okrs.models import OkrMapping, OkrMappingVersion
from service.sprints.models import SprintResult

log = logging.getLogger(__name__)
RECORD_METRICS = (CountMetric, SumMetric, RatioMetric, ResponseTimeMetric, SpeedToLeadMetric)
# What a computation stores beside the values for the next incremental run to start from (2: the key account each
# activity was measured on; 3: a wall-clock wait's answered counts in key_result_part_total; 4: hygiene's days in stage
# counted to the day's start, not to the computation's time). A run after an upgrade that changed it is full.
STORED_STATE = 4
# evidence rows of a mapping from which a full computation refreshes the planner's statistics (the sync's threshold)
ANALYZE_AFTER_ROWS = 5_000


@dataclass
class ChangeSet:
    """Records that changed since the last computation, by kind (ids as in the CRM)."""

    activity: set[str] = field(default_factory=set)
    opportunity: set[str] = field(default_factory=set)
    account: set[str] = field(default_factory=set)
    contact: set[str] = field(default_factory=set)
    opportunity_contact: set[str] = field(default_factory=set)  # ids of the opportunities whose contacts changed
    lead: set[str] = field(default_factory=set)

    def kinds(self) -> set[str]:
        return {k for k in CHANGE_KINDS if getattr(self, k)}


CHANGE_KINDS = ("activity", "opportunity", "account", "contact", "opportunity_contact", "lead")


@dataclass
class Touched:
    """What an incremental computation changed that the CRM shows per record (the write-back stages only these):
    the activities and opportunities whose evidence rows changed, the opportunities whose hygiene was rechecked
    and the key accounts re-measured. A full computation, or a part recomputed whole, has none (``None``)."""

    activities: set[str] = field(default_factory=set)
    opportunities: set[str] = field(default_factory=set)
    accounts: set[str] = field(default_factory=set)


def changes_since_last(session: Session, mapping: OkrMapping) -> ChangeSet | None:
    """What syncs wrote since the mapping's last computation started (None: never computed).

    A sync stamps a record's ``synced_at`` when it writes it and commits later (a page at a time). A computation
    that started in between, in another process (the API's apply, a KAM assessment, another worker's mapping),
    did not see that record, and its stamp is earlier than the computation's start: "since" therefore reaches
    back to the start of any sync run of the connection that was still running when the last computation started
    (``repo.open_sync_start``). Records that run had committed before are read again; that only widens the
    recompute."""
    last = session.exec(
        sqlmodel.select(Computation).where(Computation.mapping_id == mapping.id).order_by(col(Computation.id).desc())
    ).first()
    if last is None:
        return None
    since = last.started_at
    running = repo.open_sync_start(session, connection_id=mapping.connection_id, at=since)
    if running is not None:
        since = min(since, running)
    return ChangeSet(**repo.changed_since(session, connection_id=mapping.connection_id, since=since))


@dataclass
class ComputeReport:
    computation_id: int
    kind: str
    recomputed: list[str]
    opportunities_rechecked: int | None
    seconds: float
    missing_members: list[str]
    # seconds spent per part: "hygiene", "kam", "sprints", and each key result's value by its key
    timings: dict[str, float] = field(default_factory=dict)
    touched: Touched | None = None  # see Touched; None: any record's contributions, hygiene or KAM may have changed


# session.info keys: this transaction ran a full compute and is settled when it commits; the listeners that do it are
# on the session; the seconds settling took (the bench reports them beside the compute's)
SETTLE_ON_COMMIT = "okrsync.settle_on_commit"
_SETTLE_LISTENING = "okrsync.settle_listening"
SETTLED_SECONDS = "okrsync.settled_seconds"


def settle_on_commit(session: Session) -> None:
    """Once per transaction that ran a full compute: when it has committed, ``settle_after_full``; when it rolls
    back (a preview, a failed request), nothing. ``compute`` calls it, so every caller that commits a full compute
    (the loop, ``okrsync compute``, the API's apply, a KAM assessment, a check-in) leaves the evidence settled; two
    mappings computed in one transaction are settled once."""
    session.info[SETTLE_ON_COMMIT] = True
    if not session.info.get(_SETTLE_LISTENING):  # listeners stay for the session's life (none is removed while the
        session.info[_SETTLE_LISTENING] = True  # session dispatches its events: SQLAlchemy refuses that)
        event.listen(session, "after_commit", _settle_committed)
        event.listen(session, "after_rollback", _settle_rolled_back)


def _settle_committed(session: Session) -> None:
    if not session.info.pop(SETTLE_ON_COMMIT, False):
        return
    bind = session.get_bind()
    started = time.perf_counter()
    settle_after_full(bind if isinstance(bind, Engine) else bind.engine)
    session.info[SETTLED_SECONDS] = session.info.get(SETTLED_SECONDS, 0.0) + time.perf_counter() - started


def _settle_rolled_back(session: Session) -> None:
    session.info.pop(SETTLE_ON_COMMIT, None)


def settle_after_full(engine: Engine) -> None:
    """Let the database catch up on the millions of evidence rows a full compute wrote anew (``kit.db.vacuum``:
    PostgreSQL's evidence pages are then index-only walks). About 10 s at a million activities on PostgreSQL,
    nothing on SQLite."""
    vacuum(engine, [repo.table(KeyResultEvidence).name, repo.table(HygieneFinding).name])


def compute(
    session: Session, *, mapping: OkrMapping, as_of: datetime | None = None, changes: ChangeSet | None = None
) -> ComputeReport:
    """Compute ``mapping`` as of ``as_of`` (default now). With ``changes``, recompute only what they touch when
    the last computation used the same mapping version on the same day (hygiene counts days to the day's start;
    records dated since the last computation are taken in as changes: ``_take_in_passed_dates``)."""
    started = time.perf_counter()
    as_of = as_of or utcnow()
    assert mapping.id is not None
    version = session.get(OkrMappingVersion, (mapping.id, mapping.current_version))
    if version is None:
        raise LookupError(f"mapping {mapping.team} / {mapping.cycle} has no applied version")
    config = MappingConfig.model_validate(version.config)
    connection = session.get(CrmConnection, mapping.connection_id)
    assert connection is not None and connection.id is not None
    emails = [m.email for m in config.team.members]
    found = repo.owner_ids_by_email(session, connection_id=connection.id, emails=emails)
    missing = [e for e in emails if e.lower() not in found]
    owners = tuple(sorted(found.values())) or ("",)
    last = session.exec(
        sqlmodel.select(Computation).where(Computation.mapping_id == mapping.id).order_by(col(Computation.id).desc())
    ).first()
    incremental = (
        changes is not None
        and last is not None
        and last.version == version.version
        and last.as_of.date() == as_of.date()
        and last.detail.get("owners") == list(owners)  # team membership resolved the same way
        and last.detail.get("state") == STORED_STATE  # what it stored is what this engine's increments start from
    )
    run = Computation(
        mapping_id=mapping.id,
        version=version.version,
        kind="incremental" if incremental else "full",
        as_of=as_of,
        started_at=utcnow(),
    )
    session.add(run)
    session.flush()
    ctx = _Context(
        session=session,
        mapping_id=mapping.id,
        config=config,
        tables=repo.local_tables(),
        cycle=Scope.for_window(
            connection_id=connection.id,
            crm=connection.crm,
            owner_ids=owners,
            first_day=config.cycle.start,
            last_day=config.cycle.end,
            as_of=as_of,
            raw_prefix=crm_adapter(connection.crm).raw_prefix,
        ),
        changes=changes if incremental else None,
        version=version.version,
        run_id=run.id or 0,
        same_version=last is not None and last.version == version.version,
    )
    with repo.compute_cache(session):
        clock = time.perf_counter()
        if ctx.changes is not None and last is not None and last.as_of != as_of:
            _take_in_passed_dates(ctx, since=last.as_of)
            ctx.timings["passed_dates"], clock = time.perf_counter() - clock, time.perf_counter()
        rechecked = _hygiene(ctx)
        ctx.timings["hygiene"], clock = time.perf_counter() - clock, time.perf_counter()
        ctx.kam_values = _stored_kam(ctx) if _kam_untouched(ctx) else _kam(ctx)
        ctx.timings["kam"], clock = time.perf_counter() - clock, time.perf_counter()
        # each key result's value and history row are flushed once, together, after the loop: with autoflush every
        # query of the next key result flushed the last one's two rows first (45 flushes an incremental run)
        with session.no_autoflush:
            recomputed = _key_results(ctx, run_id=run.id or 0)
        clock = time.perf_counter()
        sprints = _sprints(ctx)
        ctx.timings["sprints"] = time.perf_counter() - clock
        _store_failing(ctx)
        if ctx.changes is None and repo.has_evidence_rows(session, mapping_id=mapping.id, at_least=ANALYZE_AFTER_ROWS):
            repo.analyze_results(session)
    if not incremental:  # an incremental run has the last run's version: the same key results and sprints
        repo.delete_results_not_in(
            session,
            mapping_id=mapping.id,
            kr_keys=[kr.key for _o, kr in config.key_results()]
            + [sprint_evidence_key(s.key) for s in config.sprints]
            + [KAM_EVIDENCE_KEY],
        )
    run.finished_at = utcnow()
    run.key_results = len(recomputed)
    run.opportunities = rechecked
    run.detail = {
        "missing_members": missing,
        "recomputed": recomputed,
        "owners": list(owners),
        "sprints": sprints,
        "state": STORED_STATE,
    }
    session.add(run)
    session.flush()
    if not incremental:
        settle_on_commit(session)
    seconds = time.perf_counter() - started
    log.info(
        "computed %s/%s (%s): %d key results in %.2f s", mapping.team, mapping.cycle, run.kind, len(recomputed), seconds
    )
    return ComputeReport(
        run.id or 0, run.kind, recomputed, rechecked, seconds, missing, ctx.timings,
        touched=ctx.touched if incremental else None,
    )  # fmt: skip


def _take_in_passed_dates(ctx: _Context, *, since: datetime) -> None:
    """Time is a change too. Between the last computation (as of ``since``) and this one, 'now' moved: records
    dated in between start to count without any sync writing them (a meeting planned for the afternoon, synced in
    the morning), and a KAM criterion's last N days move along. They are added to the run's changes as if synced:
    the activities, opportunities and leads dated in between (the dates the windows, answers and following
    opportunities are compared with 'now' on), and for KAM the activities whose date left a criterion's last N days.
    Hygiene counts days up to the day's start, the same all day (``hygiene.day_start``); an activity dated in between
    can end a no-activity finding and is among the changed activities. The caller's change set is left as it was."""
    changes = ctx.changes
    assert changes is not None
    session, connection_id = ctx.session, ctx.cycle.connection_id
    lo, hi = sorted((since, ctx.cycle.as_of))
    ctx.as_of_moved = True
    ctx.changes = changes = ChangeSet(**{kind: set(getattr(changes, kind)) for kind in CHANGE_KINDS})
    kinds = [k.value for k in ActivityKind]

    def dated(model: Any, column: str, first: datetime, last: datetime, **kw: Any) -> set[str]:
        return repo.dated_between(
            session, model=model, connection_id=connection_id, column=column, since=first, until=last, **kw
        )

    for column in sorted(_activity_date_columns(ctx.config)):
        changes.activity |= dated(Activity, column, lo, hi, kinds=kinds if column == "occurred_at" else ())
    changes.opportunity |= dated(Opportunity, "created_at", lo, hi)
    changes.lead |= dated(Lead, "created_at", lo, hi)
    kam = ctx.config.kam
    spans: set[int] = {days for c in kam.criteria if (days := getattr(c, "days", None))} if kam else set()
    for days in sorted(spans):
        span = timedelta(days=days)
        ctx.kam_passed |= dated(Activity, "occurred_at", lo - span, hi - span, kinds=kinds)


def _activity_date_columns(config: MappingConfig) -> set[str]:
    """The activity timestamps the mapping's windows compare with 'now': when it happened (counts, response times,
    KAM, hygiene), and created_at or completed_at where a count or sum of activities is dated by them."""
    columns = {"occurred_at"}
    metrics_ = [kr.metric for _o, kr in config.key_results()]
    metrics_ += [s.commitment.metric for s in config.sprints if s.commitment is not None]
    for metric in metrics_:
        parts = [metric.numerator, metric.denominator] if isinstance(metric, RatioMetric) else [metric]
        for part in parts:
            if (
                isinstance(part, CountMetric | SumMetric)
                and part.of == Counted.activities
                and part.date_field in (DateField.created_at, DateField.completed_at)
            ):
                columns.add(part.date_field.value)
    return columns


# an incremental run's update of a response time's inquiries: the KR brought up to date first, the inquiries whose
# rows differ, and the pair rows taken out and put in (the KRs of one inquiry key apply them to their own counts)
_InquiryUpdate = tuple[str, list[str], set[repo.EvidenceRow], set[repo.EvidenceRow]]


@dataclass
class _Context:
    session: Session
    mapping_id: int
    config: MappingConfig
    tables: Tables
    cycle: Scope
    changes: ChangeSet | None
    version: int
    run_id: int = 0
    same_version: bool = False  # the last computation used this mapping version
    kam_values: dict[str, tuple[str | None, float | None]] = field(default_factory=dict)
    # response-time KRs with the same inquiries and window share one evidence query (median, p90, share_within…)
    inquiries_done: dict[str, str] = field(default_factory=dict)
    # an incremental run's response-time update per inquiry key (``_InquiryUpdate``) when the first KR's evidence
    # changed, None when it came out as stored. The KRs of one key hold the same rows (copied in a full run, updated
    # alike since), so the others take the first one's rows of the inquiries that differ without comparing.
    response_updates: dict[str, _InquiryUpdate | None] = field(default_factory=dict)
    # hygiene-score values by the rules they judge: several KRs and sprints over the same rules read them once
    hygiene_values: dict[tuple[str, ...], metrics.MetricValue] = field(default_factory=dict)
    # the unanswered inquiries' (owner, arrival) per inquiry key, read by the first percentile KR of the key: the
    # KRs of one key hold the same rows (above), and a median and a p90 each read all ~2,800 of them at a million
    # activities (about 10 ms a read on SQLite)
    arrivals: dict[str, list[tuple[str, datetime]]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # ComputeReport.timings
    open_by_owner: dict[str, int] = field(default_factory=dict)  # the team's open opportunities (set by _hygiene)
    # owner → opportunities with a finding among a set of rules (key: the rule keys joined by "|"), this run's;
    # stored with the summary for the next incremental run, which applies the rechecked opportunities' difference
    failing: dict[str, dict[str, int]] = field(default_factory=dict)
    failing_stored: dict[str, dict[str, int]] = field(default_factory=dict)
    # the rechecked opportunities' findings (opportunity, owner, rule) before and after this run; None: no difference
    # can be applied (a full recheck, or the stage medians moved and a stuck-in-stage rule was recomputed whole)
    failing_delta: tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]] | None = None
    touched: Touched | None = field(default_factory=Touched)  # ComputeReport.touched
    # an incremental run's reached records per (key result, part) (``_reached``), and, for the count and sum parts
    # whose reached records are one chunk, their evidence rows before and after as read for all of them at once
    # (``_prefetch``): (the reached ids in order, stored rows, rows selected now)
    reached: dict[tuple[str, str], set[str] | None] = field(default_factory=dict)
    prefetched: dict[tuple[str, str], tuple[list[str], set[repo.EvidenceRow], set[repo.EvidenceRow]]] = field(
        default_factory=dict
    )
    # an incremental run later than the last computation (``_take_in_passed_dates``): 'now' moved, and with it the
    # activities a KAM criterion's last N days hold
    as_of_moved: bool = False
    kam_passed: set[str] = field(default_factory=set)

    def touch(self, kind: str, ids: set[str] | Sequence[str]) -> None:
        """Note records whose evidence, findings or KAM results this run changed (``kind``: a Touched field)."""
        if self.touched is not None:
            getattr(self.touched, kind).update(ids)

    def scope_for(self, kr: KeyResult) -> Scope:
        if not isinstance(kr.window, SprintWindow):
            return self.cycle
        return self.sprint_scope(next(s for s in self.config.sprints if s.key == kr.window.sprint))

    def sprint_scope(self, sprint: Sprint) -> Scope:
        """The cycle's scope narrowed to a sprint's days."""
        return Scope.for_window(
            connection_id=self.cycle.connection_id,
            crm=self.cycle.crm,
            owner_ids=self.cycle.owner_ids,
            first_day=sprint.start,
            last_day=sprint.end,
            as_of=self.cycle.as_of,
            raw_prefix=self.cycle.raw_prefix,
        )


# ---------------------------------------------------------------------------------------------------- hygiene


def _stage_medians(ctx: _Context) -> dict[str, float]:
    """The median days in stage per stage ("" for none) of the team's open opportunities, from each stage's one or
    two middle ages (``stage_middle``)."""
    medians: dict[str, float] = {}
    for stage, count in repo.rows(ctx.session, hygiene_rules.stage_counts(ctx.tables, ctx.cycle)):
        query = hygiene_rules.stage_middle(ctx.tables, ctx.cycle, stage, int(count))
        middle = [float(days) for (days,) in repo.rows(ctx.session, query)]
        medians[stage] = round(hygiene_rules.median(middle), 6)
    return medians


def _touched_opportunities(ctx: _Context) -> list[str]:
    assert ctx.changes is not None
    touched = set(ctx.changes.opportunity) | set(ctx.changes.opportunity_contact)
    ids = sorted(ctx.changes.activity)
    for chunk in repo.chunks(ids):
        query = select(col(Activity.opportunity_id)).where(
            col(Activity.connection_id) == ctx.cycle.connection_id,
            col(Activity.external_id).in_(list(chunk)),
            col(Activity.opportunity_id).is_not(None),
        )
        touched.update(row[0] for row in repo.rows(ctx.session, query))
    return sorted(touched)


def _hygiene(ctx: _Context) -> int | None:
    """Findings per open opportunity and the team summary; returns how many opportunities were rechecked."""
    rules = ctx.config.hygiene.rules
    session, mapping_id = ctx.session, ctx.mapping_id
    needs_medians = any(isinstance(r, StuckInStage) and r.median_factor for r in rules)
    stored = repo.stored_summary(session, mapping_id=mapping_id, rule_key="*")
    # no opportunity changed: the open opportunities per owner and the stage medians are what the last run found
    # (both depend on opportunities only; ages count to the day's start, and an incremental run is one of that day)
    same_opportunities = (
        ctx.changes is not None
        and not ctx.changes.opportunity
        and stored is not None
        and "open_by_owner" in stored.detail
        and (not needs_medians or "stage_medians" in stored.detail)
    )
    if same_opportunities:
        assert stored is not None
        medians = dict(stored.detail.get("stage_medians", {})) if needs_medians else {}
        ctx.open_by_owner = {owner: int(n) for owner, n in stored.detail["open_by_owner"].items()}
    else:
        medians = _stage_medians(ctx) if needs_medians else {}
        ctx.open_by_owner = _open_by_owner(ctx)
    related_custom = any(
        isinstance(r, CustomRule)
        and any(resolve(c.field, RecordType.opportunity, ctx.config.custom()).via for c in conditions_fields(r.where))
        for r in rules
    )
    changes = ctx.changes
    full = changes is None or stored is None or (related_custom and bool(changes.account or changes.contact))
    stages = ctx.config.hygiene.stages
    custom = ctx.config.custom()

    def violations(rule: Any, ids: Sequence[str] | None, stage_medians: dict[str, float] | None = None) -> Any:
        return hygiene_rules.violations(
            rule, tables=ctx.tables, scope=ctx.cycle, custom=custom, stages=stages, ids=ids,
            stage_medians=medians if stage_medians is None else stage_medians,
        )  # fmt: skip

    rechecked: int | None = None
    if full:
        if rules:
            ctx.touched = None
        repo.delete_findings(session, mapping_id=mapping_id)
        for rule in rules:
            repo.insert_findings(session, mapping_id=mapping_id, query=violations(rule, None))
    else:
        touched = _touched_opportunities(ctx)
        rechecked = len(touched)
        old_medians = stored.detail.get("stage_medians", {}) if stored is not None else {}
        moved = sorted(s for s in {*old_medians, *medians} if old_medians.get(s) != medians.get(s))
        ctx.touch("opportunities", touched)
        # when only activities changed, the opportunities they are on can only gain or lose a finding of a rule
        # that reads activities (no_activity): every other rule reads the opportunity and its contacts, account
        # and owner, none of which changed. The others' findings stay (10 statements built and run for nothing
        # on every logged call otherwise).
        activities_only = changes is not None and changes.kinds() <= {"activity"}
        recheck = [rule for rule in rules if isinstance(rule, NoActivity) or not activities_only]
        # The stages whose median moved are rechecked by a "stuck vs the team's median" rule: any of their
        # opportunities may be stuck now, or no longer, and a stuck one's sentence names its stage's median, so
        # those stuck before or now are touched. Only the findings of the opportunities that cross the limit move:
        # the violations of the moved stages are selected (ids only) and compared with the findings stored, and
        # the few that differ are deleted or inserted (deleting and inserting every stuck opportunity of two stages,
        # thousands at a million activities, was most of an incremental run after a stage change). In every other
        # stage only the touched opportunities are checked, against their own stage's unmoved median.
        by_median = [r for r in recheck if isinstance(r, StuckInStage) and r.median_factor] if moved else []
        in_moved = {s: m for s, m in medians.items() if s in moved}
        prior = {
            r.rule_key: repo.rule_opportunities(session, mapping_id=mapping_id, rule_key=r.rule_key, stages=moved)
            for r in by_median
        }
        stuck = {r.rule_key: repo.violating(session, violations(r, None, in_moved)) for r in by_median}
        rechecked_ids = set(touched)  # rechecked below whatever their limits
        lost = {key: prior[key] - stuck[key] - rechecked_ids for key in prior}
        gained = {key: stuck[key] - prior[key] - rechecked_ids for key in prior}
        crossing = set().union(*lost.values(), *gained.values())
        # every opportunity whose findings can differ after this run: the touched ones and those crossing a limit
        # (one stuck before and now keeps the same finding row: its age and stage did not change)
        moving = sorted({*touched, *crossing})
        before = repo.findings_of(session, mapping_id=mapping_id, opportunity_ids=moving)
        for chunk in repo.chunks(touched):
            repo.delete_findings(
                session, mapping_id=mapping_id, opportunity_ids=chunk, rule_keys=[r.rule_key for r in recheck]
            )
        for rule in recheck:
            key = rule.rule_key
            if key in prior:
                ctx.touch("opportunities", prior[key])
                ctx.touch("opportunities", stuck[key])
                for chunk in repo.chunks(sorted(lost[key])):
                    repo.delete_findings(session, mapping_id=mapping_id, opportunity_ids=chunk, rule_keys=[key])
                for chunk in repo.chunks(sorted(gained[key])):
                    repo.insert_findings(session, mapping_id=mapping_id, query=violations(rule, chunk, in_moved))
            for chunk in repo.chunks(touched):
                repo.insert_findings(session, mapping_id=mapping_id, query=violations(rule, chunk))
        if stored is not None and "failing" in stored.detail:
            # the difference to apply to the last run's counts (``_failing``, ``_findings_per_rule``)
            after = repo.findings_of(session, mapping_id=mapping_id, opportunity_ids=moving)
            ctx.failing_stored = stored.detail["failing"]
            ctx.failing_delta = (before, after)
    open_count = sum(ctx.open_by_owner.values())
    per_rule = _findings_per_rule(ctx, [r.rule_key for r in rules])
    now = utcnow()
    failing = sum(_failing(ctx, [r.rule_key for r in rules]).values())
    summaries = [
        HygieneSummary(
            mapping_id=mapping_id,
            rule_key=rule.rule_key,
            violations=per_rule.get(rule.rule_key, 0),
            open_opportunities=open_count,
            score=(open_count - per_rule.get(rule.rule_key, 0)) / open_count if open_count else None,
            computed_at=now,
        )
        for rule in rules
    ]
    summaries.append(
        HygieneSummary(
            mapping_id=mapping_id,
            rule_key="*",
            violations=failing,
            open_opportunities=open_count,
            score=(open_count - failing) / open_count if open_count else None,
            detail={
                "stage_medians": medians,
                "as_of": ctx.cycle.as_of.isoformat(),
                "open_by_owner": ctx.open_by_owner,
            },
            computed_at=now,
        )
    )
    repo.put_all(session, summaries)
    session.add(
        HygieneHistory(
            mapping_id=mapping_id,
            computation_id=ctx.run_id,
            as_of=ctx.cycle.as_of,
            violations=failing,
            open_opportunities=open_count,
            score=(open_count - failing) / open_count if open_count else None,
        )
    )
    return rechecked


def _failing(ctx: _Context, rule_keys: Sequence[str]) -> dict[str, int]:
    """Owner ("" for none) → open opportunities with at least one finding among ``rule_keys``.

    An incremental run takes the last run's figures and applies the difference of the opportunities it rechecked
    (the findings of the others did not change): a distinct count over every finding took 50 ms a rule set at a
    million activities."""
    key = "|".join(sorted(rule_keys))
    if key in ctx.failing:
        return ctx.failing[key]
    stored = ctx.failing_stored.get(key)
    if ctx.failing_delta is None or stored is None:
        result = repo.opportunities_with_findings(ctx.session, mapping_id=ctx.mapping_id, rule_keys=rule_keys)
    else:
        wanted = set(rule_keys)
        result = {owner: int(n) for owner, n in stored.items()}
        for rows, sign in zip(ctx.failing_delta, (-1, 1), strict=True):
            for _opportunity, owner in {(o, owner) for o, owner, rule in rows if rule in wanted}:
                result[owner] = result.get(owner, 0) + sign
        result = {owner: n for owner, n in result.items() if n}
    ctx.failing[key] = result
    return result


def _findings_per_rule(ctx: _Context, rule_keys: Sequence[str]) -> dict[str, int]:
    """Findings per rule. An incremental run whose findings changed only on the rechecked opportunities takes the
    last run's counts (the rules' summaries) and applies the difference: counting all findings per rule took 13 ms
    of a 90 ms incremental run at a million activities."""
    stored = repo.stored_violations(ctx.session, mapping_id=ctx.mapping_id) if ctx.failing_delta is not None else {}
    if ctx.failing_delta is None or not set(rule_keys) <= set(stored):
        return repo.findings_per_rule(ctx.session, mapping_id=ctx.mapping_id)
    counts = {rule: stored[rule] for rule in rule_keys}
    for rows, sign in zip(ctx.failing_delta, (-1, 1), strict=True):
        for _opportunity, _owner, rule in rows:
            if rule in counts:
                counts[rule] += sign
    return {rule: n for rule, n in counts.items() if n}


def _store_failing(ctx: _Context) -> None:
    """Keep this run's failing opportunities per rule set with the team summary (``_failing``)."""
    summary = ctx.session.get(HygieneSummary, (ctx.mapping_id, "*"))
    if summary is not None and ctx.failing:
        summary.detail = {**summary.detail, "failing": ctx.failing}
        ctx.session.add(summary)


def _open_by_owner(ctx: _Context) -> dict[str, int]:
    """The team's open opportunities per owner ("" for none)."""
    opp = ctx.tables.opportunity
    per_owner = (
        select(opp.c.owner_id, func.count())
        .where(*hygiene_rules.open_opportunity_clauses(opp, ctx.cycle))
        .group_by(opp.c.owner_id)
    )
    return {owner or "": int(n) for owner, n in repo.rows(ctx.session, per_owner)}


def _hygiene_value(ctx: _Context, metric: HygieneScoreMetric) -> metrics.MetricValue:
    rule_keys = metric.rules or [r.rule_key for r in ctx.config.hygiene.rules]
    cached = ctx.hygiene_values.get(tuple(sorted(rule_keys)))
    if cached is not None:  # the findings do not change between the KRs of one run
        return cached
    open_by_owner = ctx.open_by_owner
    failing = _failing(ctx, rule_keys)
    total, bad = sum(open_by_owner.values()), sum(failing.values())
    contributions = {o: (n - failing.get(o, 0)) / n for o, n in open_by_owner.items() if n}
    value = metrics.MetricValue(
        (total - bad) / total if total else None, total, contributions, numerator=total - bad, denominator=total
    )
    ctx.hygiene_values[tuple(sorted(rule_keys))] = value
    return value


# -------------------------------------------------------------------------------------------------------- KAM


KAM_EVIDENCE_KEY = "~kam"  # which key account each activity was measured on (kam_rules.linked_activities)


def _kam(ctx: _Context) -> dict[str, tuple[str | None, float | None]]:
    """Account id → (owner, score) of every key account; stores criteria results and scores.

    An incremental run whose changes are activities only re-measures the key accounts those activities are on now
    or were measured on before (stored under ``KAM_EVIDENCE_KEY``); a changed account or contact (a new key account,
    a merge, a contact's account) or a criterion that looks at a changed opportunity re-measures them all."""
    kam = ctx.config.kam
    session, mapping_id = ctx.session, ctx.mapping_id
    if kam is None:
        repo.replace_kam(session, mapping_id=mapping_id, criteria=[], scores=[])
        return {}
    custom = ctx.config.custom()
    key_accounts = kam_rules.key_accounts(kam, tables=ctx.tables, scope=ctx.cycle, custom=custom)
    changes = ctx.changes
    if (
        changes is not None
        and not (changes.account or changes.contact)
        and not (changes.opportunity and _kam_reads_opportunities(ctx))
        and repo.has_kam_scores(session, mapping_id=mapping_id)
    ):
        changed = sorted(changes.activity | ctx.kam_passed)
        before: set[str | None] = set()
        # only the key accounts the changed activities are on now can hold them now (the key-account query alone
        # reads every account's raw payload)
        now_on = repo.ids_where(
            session, model=Activity, connection_id=ctx.cycle.connection_id, column="external_id", values=changed,
            select_column="account_id",
        )  # fmt: skip
        candidates = kam_rules.only_accounts(key_accounts, sorted(now_on))
        for chunk in repo.chunks(changed):
            before |= repo.evidence_keys(
                session, mapping_id=mapping_id, kr_key=KAM_EVIDENCE_KEY, part="activity", record_ids=chunk
            )
            repo.delete_evidence(
                session, mapping_id=mapping_id, kr_key=KAM_EVIDENCE_KEY, part="activity", record_ids=chunk
            )
            linked = kam_rules.linked_activities(
                kam, accounts=candidates, scope=ctx.cycle, tables=ctx.tables, only_ids=chunk
            )
            before |= {row[5] for row in repo.selected_evidence(session, linked)}
            repo.insert_evidence(session, mapping_id=mapping_id, kr_key=KAM_EVIDENCE_KEY, query=linked)
        reached = sorted(a for a in before if a is not None)
        ctx.touch("accounts", reached)
        for chunk in repo.chunks(reached):
            _measure_kam(ctx, kam_rules.only_accounts(key_accounts, chunk), replace=chunk)
        return _stored_kam(ctx)
    # every key account is re-measured: those measured before or now are touched
    stored = set(_stored_kam(ctx)) if ctx.touched is not None and ctx.changes is not None else set()
    repo.replace_evidence(
        session,
        mapping_id=mapping_id,
        kr_key=KAM_EVIDENCE_KEY,
        queries=[kam_rules.linked_activities(kam, accounts=key_accounts, scope=ctx.cycle, tables=ctx.tables)],
    )
    measured = _measure_kam(ctx, key_accounts, replace=None)
    ctx.touch("accounts", stored | set(measured))
    return measured


def _measure_kam(
    ctx: _Context, key_accounts: Any, *, replace: Sequence[str] | None
) -> dict[str, tuple[str | None, float | None]]:
    """Measure the criteria of the key accounts ``key_accounts`` selects and store their results: all of the
    mapping's (``replace`` None) or those of the accounts ``replace`` names (which may have stopped being key)."""
    kam = ctx.config.kam
    assert kam is not None
    custom = ctx.config.custom()
    accounts = repo.rows(ctx.session, key_accounts)
    assessments = repo.latest_assessments(ctx.session, mapping_id=ctx.mapping_id, as_of=ctx.cycle.as_of)
    measured: dict[str, dict[str, int]] = {}
    for criterion in kam.criteria:
        query = kam_rules.measure(
            criterion, accounts=key_accounts, tables=ctx.tables, scope=ctx.cycle, custom=custom, account_ids=replace
        )
        rows = repo.rows(ctx.session, query) if query is not None else []
        measured[criterion.key] = {account_id: int(n) for account_id, n in rows}
    now = utcnow()
    criteria_rows: list[dict[str, Any]] = []
    score_rows: list[dict[str, Any]] = []
    result: dict[str, tuple[str | None, float | None]] = {}
    for account in accounts:
        statuses = []
        for criterion in kam.criteria:
            row: dict[str, Any] = {
                "mapping_id": ctx.mapping_id,
                "account_id": account.account_id,
                "criterion_key": criterion.key,
                "owner_id": account.owner_id,
                "measured": None,
                "comment": None,
                "assessed_by": None,
                "assessed_at": None,
            }
            if criterion.type == "assessed":
                assessment = assessments.get((account.account_id, criterion.key))
                status = assessment.status if assessment else kam_rules.NOT_ASSESSED
                if assessment:
                    row.update(
                        comment=assessment.comment, assessed_by=assessment.author, assessed_at=assessment.assessed_at
                    )
                row.update(status=status, source="assessed")
            else:
                value = measured[criterion.key].get(account.account_id, 0)
                status = kam_rules.derived_status(criterion, value)
                row.update(status=status, source="derived", measured=value)
            statuses.append(status)
            criteria_rows.append(row)
        score = kam_rules.account_score(statuses)
        result[account.account_id] = (account.owner_id, score)
        score_rows.append(
            {
                "mapping_id": ctx.mapping_id,
                "account_id": account.account_id,
                "owner_id": account.owner_id,
                "name": account.name,
                "score": score,
                "covered": kam_rules.covered(statuses),
                "criteria": len(statuses),
                "computed_at": now,
            }
        )
    repo.replace_kam(
        ctx.session, mapping_id=ctx.mapping_id, criteria=criteria_rows, scores=score_rows, accounts=replace
    )
    return result


def _kam_reads_opportunities(ctx: _Context) -> bool:
    custom = ctx.config.custom()
    kam = ctx.config.kam
    assert kam is not None
    return any(
        resolve(condition.field, RecordType.activity, custom).via == RecordType.opportunity
        for criterion in kam.criteria
        for condition in conditions_fields(getattr(criterion, "where", []) or [])
    )


def _kam_untouched(ctx: _Context) -> bool:
    """An incremental run whose changes cannot move a KAM criterion: no activity, account or contact changed and no
    criterion looks at opportunities (criteria count activities on key accounts)."""
    changes, kam = ctx.changes, ctx.config.kam
    if changes is None or kam is None or changes.activity or ctx.kam_passed or changes.account or changes.contact:
        return False
    return not (changes.opportunity and _kam_reads_opportunities(ctx))


def _stored_kam(ctx: _Context) -> dict[str, tuple[str | None, float | None]]:
    return repo.kam_scores(ctx.session, mapping_id=ctx.mapping_id)


def _kam_value(metric: KamCriteriaMetric, accounts: dict[str, tuple[str | None, float | None]]) -> metrics.MetricValue:
    by_owner: dict[str, list[bool]] = {}
    for owner, score in accounts.values():
        # an account with no score yet (no criterion covered) does not meet them
        by_owner.setdefault(owner or "", []).append(score is not None and score >= metric.min_score - 1e-9)
    met = sum(sum(flags) for flags in by_owner.values())
    total = len(accounts)
    contributions = {o: sum(flags) / len(flags) for o, flags in by_owner.items()}
    return metrics.MetricValue(met / total if total else None, total, contributions, numerator=met, denominator=total)


# ------------------------------------------------------------------------------------------------ key results


def _kinds(kr: KeyResult, custom: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The record kinds a KR counts, and the other kinds its filters look at (related records)."""
    metric = kr.metric
    parts = [metric.numerator, metric.denominator] if isinstance(metric, RatioMetric) else [metric]
    # a response time is made of activities; speed to lead of leads and the activities that answer them
    bases = {RECORD_OF[p.of].value if isinstance(p, CountMetric | SumMetric) else "activity" for p in parts}
    if isinstance(metric, SpeedToLeadMetric):
        bases.add("lead")
    related: set[str] = set()
    for record, where, _loc in metric_filters(metric):
        for condition in conditions_fields(where):
            via = resolve(condition.field, record, custom).via
            if via is not None:
                related.add(via.value)
            if via == RecordType.contact and record == RecordType.opportunity:
                related.add("opportunity_contact")  # a contact role added or removed changes who is involved
        if any(isinstance(c, FollowedByCondition) for c in where):
            related.add("opportunity")
    for part in parts:
        if isinstance(part, CountMetric) and part.distinct == Distinct.contacts:
            related.add("opportunity_contact" if part.of == Counted.opportunities else "contact")
    return bases, related - bases


def _delta(ctx: _Context, kr: KeyResult, scope: Scope) -> bool | None:
    """Bring a KR's evidence up to date for the records the changes reach only.

    Returns False when no change concerns it (keep the stored value), True when its evidence was updated (the
    value is re-aggregated from it), None when it must be recomputed whole. A count or sum swaps the evidence rows
    of the records the changes reach (``_reached``: the changed records, and those whose filters look at a changed
    account, opportunity or contact); a distinct count recomputes the keys (accounts, contacts, opportunities) those
    records had before or have now, so credit stays with whoever came first. A response time matched by account
    recomputes the inquiries of the accounts the changed activities are on or were on (a wait depends on its
    account's activities); one matched by contact, or whose inbound filter looks at a changed record, is recomputed
    whole.
    """
    changes = ctx.changes
    assert changes is not None
    metric = kr.metric
    custom = ctx.config.custom()
    if isinstance(metric, SpeedToLeadMetric):
        bases, related = _kinds(kr, custom)
        kinds = changes.kinds()
        if not (bases | related | {"contact", "account"}) & kinds:
            return False
        # a contact or an account (a merge moves activities to another account without re-stamping them), or a
        # related record its filters read, can change the answers of any lead: recomputed whole
        if kinds & ({"contact", "account"} | (related - {"activity", "lead"})):
            return None
        return _lead_delta(ctx, kr, metric, scope)
    if isinstance(metric, ResponseTimeMetric):
        _bases, related = _kinds(kr, custom)
        if related & changes.kinds():
            return None  # e.g. an account's type changed: every inquiry on it may count or stop counting
        if not changes.activity:
            return False
        if metric.match != "account":
            return None  # a contact's inquiries span accounts
        return _response_delta(ctx, kr, metric, scope, sorted(changes.activity))
    assert isinstance(metric, CountMetric | SumMetric | RatioMetric)  # _value handles the others before
    parts = _parts(metric)
    reached_by_part: list[tuple[str, Any, list[str]]] = []
    for name, part in parts:
        assert isinstance(part, CountMetric | SumMetric)
        reached = ctx.reached[(kr.key, name)] if (kr.key, name) in ctx.reached else _reached(ctx, kr.key, name, part)
        if reached is None:
            return None
        reached_by_part.append((name, part, sorted(reached)))
    # A chunk whose evidence rows are the same before and after (the changed record did not count and does not
    # count now, or counts exactly as before) is left alone; a KR none of whose chunks changed keeps its value.
    touched = False
    session, mapping_id = ctx.session, ctx.mapping_id
    for name, part, changed in reached_by_part:
        if not changed:
            continue
        kind = {RecordType.activity: "activities", RecordType.opportunity: "opportunities"}.get(RECORD_OF[part.of])

        def evidence(name: str = name, part: Any = part, **narrowing: bool) -> Any:
            return part_evidence(part, part=name, tables=ctx.tables, scope=scope, custom=custom, **narrowing)

        if isinstance(part, CountMetric) and part.distinct is not None:
            keys = repo.evidence_keys(session, mapping_id=mapping_id, kr_key=kr.key, part=name, record_ids=changed)
            of_records = evidence(narrowed=True)
            for chunk in repo.chunks(changed):
                keys.update(row.related_id for row in repo.rows(session, of_records, {NARROWED_IDS: list(chunk)}))
            ordered = sorted(k for k in keys if k is not None)
            of_keys = evidence(by_keys=True)
            for chunk in repo.chunks(ordered):
                differ = repo.swap_if_changed(
                    session, mapping_id=mapping_id, kr_key=kr.key, part=name, query=of_keys,
                    params={NARROWED_KEYS: list(chunk)}, related_ids=chunk, totals=True,
                )  # fmt: skip
                touched |= bool(differ)
                if kind:
                    ctx.touch(kind, differ)
        else:
            prefetched = ctx.prefetched.get((kr.key, name))
            known = prefetched[1:] if prefetched is not None and prefetched[0] == changed else None
            if known is not None and known[0] == known[1]:
                continue  # read with the other parts: the same rows before and after
            of_records = evidence(narrowed=True)
            for chunk in repo.chunks(changed):
                differ = repo.swap_if_changed(
                    session, mapping_id=mapping_id, kr_key=kr.key, part=name, query=of_records,
                    params={NARROWED_IDS: list(chunk)}, record_ids=chunk, totals=True, known=known,
                )  # fmt: skip
                touched |= bool(differ)
                if kind:
                    ctx.touch(kind, differ)
    return touched


def _parts(metric: CountMetric | SumMetric | RatioMetric) -> list[tuple[str, Any]]:
    """A count or sum is one part, "counted"; a ratio two, its numerator and denominator."""
    if isinstance(metric, RatioMetric):
        return [("numerator", metric.numerator), ("denominator", metric.denominator)]
    return [("counted", metric)]


def _prefetch(ctx: _Context, stored_values: dict[str, KeyResultValue]) -> None:
    """Evaluate the filters of every count and sum part on the changed records at once, before the key results are
    brought up to date one by one (``_delta``).

    Most key results do not count a changed record, before or after: each compared its stored rows and its narrowed
    query's rows with two statements of its own (about 2 ms a key result, most of an incremental run). Here the
    parts whose reached records are one chunk (``_reached``) are read together: their stored rows in one SELECT,
    and what their queries select now in one UNION ALL, executed with the ids once (the narrowed CTE of each record
    kind is materialized once for all). Distinct counts (reached through their keys) are left to ``_delta``."""
    changes = ctx.changes
    assert changes is not None
    session, custom = ctx.session, ctx.config.custom()
    groups: dict[tuple[str, ...], list[tuple[str, str, Any, Scope]]] = {}
    for _objective, kr in ctx.config.key_results():
        stored = stored_values.get(kr.key)
        metric = kr.metric
        if (
            stored is None
            or stored.version != ctx.version
            or not isinstance(metric, CountMetric | SumMetric | RatioMetric)
        ):
            continue
        for name, part in _parts(metric):
            reached = ctx.reached[(kr.key, name)] = _reached(ctx, kr.key, name, part)
            if reached is None:
                break  # the key result is recomputed whole
            if not reached or len(reached) > repo.ID_CHUNK or (isinstance(part, CountMetric) and part.distinct):
                continue
            groups.setdefault(tuple(sorted(reached)), []).append((kr.key, name, part, ctx.scope_for(kr)))
    for ids, members in groups.items():
        queries = [
            (key, part_evidence(part, part=name, tables=ctx.tables, scope=scope, custom=custom, narrowed=True))
            for key, name, part, scope in members
        ]
        before = repo.stored_parts_of(
            session, mapping_id=ctx.mapping_id, parts={(key, name) for key, name, _p, _s in members}, record_ids=ids
        )
        after = repo.selected_parts(session, queries, {NARROWED_IDS: list(ids)})
        for key, name, _part, _scope in members:
            ctx.prefetched[(key, name)] = (list(ids), before.get((key, name), set()), after.get((key, name), set()))


def _reached(ctx: _Context, kr_key: str, name: str, part: CountMetric | SumMetric) -> set[str] | None:
    """Ids of the part's records (activities or opportunities) whose evidence the changes can alter; None when
    that cannot be told from the changed ids (then the KR is recomputed whole).

    The changed records themselves; the records on a changed account or opportunity (``account.…`` /
    ``opportunity.…`` filters), or linked to a changed contact; for ``followed_by``, the activities the changed
    opportunities were credited to and those on their accounts now (an opportunity that moves or changes stage
    can only follow activities of the account it is on).
    """
    changes = ctx.changes
    assert changes is not None
    custom, session, connection_id = ctx.config.custom(), ctx.session, ctx.cycle.connection_id
    activities = part.of == Counted.activities
    record = RECORD_OF[part.of]
    base_model = {RecordType.activity: Activity, RecordType.opportunity: Opportunity, RecordType.lead: Lead}[record]
    reached = set(getattr(changes, record.value))
    vias = {
        via.value
        for condition in conditions_fields(part.where)
        if (via := resolve(condition.field, record, custom).via) is not None
    }
    if isinstance(part, CountMetric) and part.distinct == Distinct.contacts:
        vias.add("contact" if activities else "opportunity_contact")
    for kind in sorted(vias & changes.kinds()):
        if kind == "account" or (kind == "opportunity" and activities):  # the records on it
            values = changes.account if kind == "account" else changes.opportunity
            reached |= repo.ids_where(
                session, model=base_model, connection_id=connection_id, column=f"{kind}_id", values=values
            )
        elif kind == "contact":
            link = ActivityContact if activities else OpportunityContact
            reached |= repo.ids_where(
                session, model=link, connection_id=connection_id, column="contact_id", values=changes.contact,
                select_column="activity_id" if activities else "opportunity_id",
            )  # fmt: skip
        elif kind == "opportunity_contact" and not activities:
            reached |= changes.opportunity_contact
        else:
            return None
    follows = [c for c in part.where if isinstance(c, FollowedByCondition)]
    if not follows:
        return reached
    inner = {
        via.value
        for c in follows
        for condition in conditions_fields(c.followed_by.where)
        if (via := resolve(condition.field, RecordType.opportunity, custom).via) is not None
    }
    if inner & changes.kinds():
        return None  # e.g. the account or the contacts of a following opportunity changed
    if changes.opportunity:
        if isinstance(part, CountMetric) and part.distinct is not None:
            return None  # the evidence's related_id holds the distinct key, not the following opportunity
        reached |= repo.evidence_records(
            session, mapping_id=ctx.mapping_id, kr_key=kr_key, part=name, related_ids=changes.opportunity
        )
        accounts = repo.ids_where(
            session, model=Opportunity, connection_id=connection_id, column="external_id",
            values=changes.opportunity, select_column="account_id",
        )  # fmt: skip
        reached |= repo.ids_where(
            session, model=Activity, connection_id=connection_id, column="account_id", values=accounts
        )
    return reached


def _lead_delta(ctx: _Context, kr: KeyResult, metric: SpeedToLeadMetric, scope: Scope) -> bool:
    """Recompute the leads the changed leads and activities can reach: the changed leads; the leads an activity is
    logged on, or whose contact or account it is on, now; and those it was the first answer of before (an activity
    that was a later candidate only, and left, changes no lead's first answer)."""
    changes, session, connection_id = ctx.changes, ctx.session, scope.connection_id
    assert changes is not None
    leads = set(changes.lead)
    acts = sorted(changes.activity)
    if acts:

        def of_activities(model: Any, column: str, select_column: str) -> set[str]:
            return repo.ids_where(
                session, model=model, connection_id=connection_id, column=column, values=acts,
                select_column=select_column,
            )  # fmt: skip

        leads |= of_activities(Activity, "external_id", "lead_id")
        accounts = of_activities(Activity, "external_id", "account_id")
        contacts = of_activities(ActivityContact, "activity_id", "contact_id")
        leads |= repo.ids_where(session, model=Lead, connection_id=connection_id, column="account_id", values=accounts)
        leads |= repo.ids_where(session, model=Lead, connection_id=connection_id, column="contact_id", values=contacts)
        leads |= repo.evidence_records(session, mapping_id=ctx.mapping_id, kr_key=kr.key, part="pair", related_ids=acts)
    touched = False
    custom = ctx.config.custom()
    for chunk in repo.chunks(sorted(leads)):
        query = speed_to_lead_evidence(metric, tables=ctx.tables, scope=scope, custom=custom, only_leads=chunk)
        changed = repo.swap_if_changed(
            session, mapping_id=ctx.mapping_id, kr_key=kr.key, part="pair", query=query, record_ids=chunk,
            waits=_wait_totals(metric),
        )  # fmt: skip
        touched |= bool(changed)
    return touched


def _inquiry_key(metric: ResponseTimeMetric, scope: Scope) -> str:
    """What a response time's evidence depends on: everything but the statistic, its limit, its percentile and the
    hours it is measured in (the evidence holds wall-clock waits; business hours are applied to them afterwards)."""
    definition = metric.model_dump(mode="json", exclude={"statistic", "within_hours", "percentile", "hours"})
    return f"{definition}|{scope.start.isoformat()}|{scope.end.isoformat()}"


def _response_delta(ctx: _Context, kr: KeyResult, metric: ResponseTimeMetric, scope: Scope, changed: list[str]) -> bool:
    """Recompute the inquiries of the accounts a change can reach: where the changed activities are now, and where
    the inquiries they were (or answered) are. A wait only depends on activities of its own account.

    Returns False, writing nothing, when those inquiries and their first responses come out exactly as stored (a
    changed activity that neither is nor answers an inquiry first): the KR keeps its value. Otherwise only the rows
    of the inquiries whose row differs are replaced: the query runs once, into a temporary table, and the first KR
    of the inquiry key takes its rows of those inquiries from there; the KRs after it copy them from the first."""
    session, mapping_id = ctx.session, ctx.mapping_id
    key = _inquiry_key(metric, scope)
    if key in ctx.response_updates:
        update = ctx.response_updates[key]
        if update is None:
            return False
        _swap_inquiries(ctx, kr.key, metric, update)
        return True
    accounts = repo.ids_where(
        session, model=Activity, connection_id=scope.connection_id, column="external_id", values=changed,
        select_column="account_id",
    )  # fmt: skip
    accounts |= repo.response_accounts(
        session, mapping_id=mapping_id, kr_key=kr.key, connection_id=scope.connection_id, activity_ids=changed
    )
    before: set[repo.EvidenceRow] = set()
    for chunk in repo.chunks(changed):
        before |= repo.stored_evidence(session, mapping_id=mapping_id, kr_key=kr.key, part="pair", record_ids=chunk)
    queries = []
    for chunk in repo.chunks(sorted(accounts)):
        before |= repo.stored_inquiries_on(
            session, mapping_id=mapping_id, kr_key=kr.key, connection_id=scope.connection_id, accounts=chunk
        )
        queries.append(
            response_evidence(metric, tables=ctx.tables, scope=scope, custom=ctx.config.custom(), only_accounts=chunk)
        )
    after = repo.select_into_fresh(session, queries)
    if before == after:
        repo.empty_fresh(session)
        ctx.response_updates[key] = None
        return False
    records = sorted({row[1] for row in before ^ after})  # the inquiries (and former ones) whose rows differ
    ctx.touch("activities", records)  # the inquiries' rows (the KRs of a key share them)
    repo.put_fresh_records(session, mapping_id=mapping_id, kr_key=kr.key, part="pair", record_ids=records)
    repo.empty_fresh(session)
    update = ctx.response_updates[key] = (kr.key, records, before, after)
    _swap_inquiries(ctx, kr.key, metric, update)
    return True


def _swap_inquiries(ctx: _Context, kr_key: str, metric: ResponseTimeMetric, update: _InquiryUpdate) -> None:
    """Apply the difference of the inquiries whose rows differ to a response time's stored answered counts, and
    give a KR after the first of its inquiry key the rows the first one got for them."""
    session, mapping_id = ctx.session, ctx.mapping_id
    source, records, before, after = update
    waits = _wait_totals(metric)
    if waits is not None:
        repo.adjust_wait_totals(
            session, mapping_id=mapping_id, kr_key=kr_key, waits=waits, removed=before - after, added=after - before
        )
    if kr_key != source:
        repo.copy_records(session, mapping_id=mapping_id, source=source, target=kr_key, part="pair", record_ids=records)


def _key_results(ctx: _Context, *, run_id: int) -> list[str]:
    session, config = ctx.session, ctx.config
    recomputed: list[str] = []
    objectives: list[ObjectiveValue] = []
    contributions: dict[str, dict[str, float]] = {}
    history: list[dict[str, Any]] = []
    now = utcnow()
    # the stored values in one statement, held here: the session's identity map holds unchanged rows weakly, so
    # a session.get per key result found them collected and read each again (150 SELECTs, each flushing the last
    # key result's writes first: 40 ms of a 230 ms incremental run at a million activities)
    stored_values = {
        row.kr_key: row
        for row in session.exec(sqlmodel.select(KeyResultValue).where(KeyResultValue.mapping_id == ctx.mapping_id))
    }
    if ctx.changes is not None:
        clock = time.perf_counter()
        _prefetch(ctx, stored_values)
        ctx.timings["prefetch"] = time.perf_counter() - clock
    for objective in config.objectives:
        scores: list[tuple[scoring.Score, float]] = []
        for kr in objective.key_results:
            scope = ctx.scope_for(kr)
            stored = stored_values.get(kr.key)
            clock = time.perf_counter()
            value = _value(ctx, kr, scope, stored)
            ctx.timings[kr.key] = time.perf_counter() - clock
            if value is not None:
                recomputed.append(kr.key)
                contributions[kr.key] = value.contributions
            elif stored is not None:
                value = metrics.MetricValue(
                    stored.value,
                    stored.records,
                    numerator=stored.numerator,
                    denominator=stored.denominator,
                    detail=stored.detail,
                )
            assert value is not None
            result = scoring.score(
                value.value,
                baseline=kr.baseline,
                target=kr.target,
                window_start=scope.start,
                window_end=scope.window_end,
                as_of=scope.as_of,
                scoring=config.scoring,
            )
            scores.append((result, kr.weight))
            repo.put_value(
                session,
                stored,
                KeyResultValue(
                    mapping_id=ctx.mapping_id,
                    kr_key=kr.key,
                    objective_key=objective.key,
                    metric=kr.metric.type,
                    value=result.value,
                    progress=result.progress,
                    grade=result.grade,
                    expected=result.expected,
                    status=result.status,
                    achieved=result.achieved,
                    records=value.records,
                    numerator=value.numerator,
                    denominator=value.denominator,
                    detail=dict(value.detail),
                    window_start=scope.start,
                    window_end=scope.end,
                    version=ctx.version,
                    as_of=scope.as_of,
                    computed_at=now,
                ),
            )
            history.append(
                {
                    "mapping_id": ctx.mapping_id,
                    "kr_key": kr.key,
                    "computation_id": run_id,
                    "as_of": scope.as_of,
                    "value": result.value,
                    "progress": result.progress,
                    "grade": result.grade,
                    "status": result.status,
                }
            )
        objectives.append(
            ObjectiveValue(
                mapping_id=ctx.mapping_id,
                objective_key=objective.key,
                title=objective.title,
                progress=scoring.objective_progress(scores),
                status=scoring.objective_status([s for s, _w in scores]),
                achieved=all(s.achieved for s, _w in scores),
                computed_at=now,
            )
        )
    repo.replace_contributions(session, mapping_id=ctx.mapping_id, values=contributions)
    repo.add_history(session, history)
    repo.put_all(session, objectives)
    return recomputed


# ---------------------------------------------------------------------------------------------------- sprints


def sprint_evidence_key(sprint_key: str) -> str:
    """The evidence rows of a sprint's commitment sit beside the KRs' under a key no KR can have (no ``~``)."""
    return f"~sprint:{sprint_key}"


LATE_ENTRIES = timedelta(days=14)  # activities logged late still count for a sprint that ended this recently


def _sprints(ctx: _Context) -> list[str]:
    """Each started sprint's commitment over its days and what each key result it serves gained during it.

    Record metrics are recounted while the sprint runs and for two weeks after (activities logged late), then
    once more and frozen, full and incremental runs alike (an account changing type in November must not change
    what an August sprint achieved); a hygiene score commitment is a state, so it is taken while the sprint runs
    and kept once it has ended.
    """
    done: list[str] = []
    today = ctx.cycle.as_of.date()
    for sprint in ctx.config.sprints:
        if sprint.start > today:
            continue
        ended = sprint.end < today
        stored = ctx.session.get(SprintResult, (ctx.mapping_id, sprint.key))
        if ended and ctx.same_version and stored is not None and stored.as_of - _day_end(sprint.end) > LATE_ENTRIES:
            continue  # counted once after its late entries closed: frozen (a new mapping version recounts it)
        scope = ctx.sprint_scope(sprint)
        achieved, records = (stored.achieved, stored.records) if stored else (None, 0)
        commitment = sprint.commitment
        if commitment is not None:
            metric = commitment.metric
            if isinstance(metric, HygieneScoreMetric):
                if not ended or stored is None:
                    value = _hygiene_value(ctx, metric)
                    achieved, records = value.value, value.records
            else:
                key = sprint_evidence_key(sprint.key)
                queries = metric_evidence(metric, tables=ctx.tables, scope=scope, custom=ctx.config.custom())
                repo.replace_evidence(ctx.session, mapping_id=ctx.mapping_id, kr_key=key, queries=queries)
                if isinstance(metric, WAIT_METRICS):
                    value = _wait_value(ctx, key, metric, scope.as_of)
                else:
                    value = _from_totals(metric, repo.part_totals(ctx.session, mapping_id=ctx.mapping_id, kr_key=key))
                achieved, records = value.value, value.records
        gains = {key: _gain(ctx, key, sprint.start, sprint.end, ended) for key in sprint.serves}
        ctx.session.merge(
            SprintResult(
                mapping_id=ctx.mapping_id,
                sprint_key=sprint.key,
                achieved=achieved,
                records=records,
                gains=gains,
                as_of=ctx.cycle.as_of,
                computed_at=utcnow(),
            )
        )
        done.append(sprint.key)
    ctx.session.flush()
    return done


def _day_end(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


def _from_totals(metric: CountMetric | SumMetric | RatioMetric, totals: list[metrics.PartTotal]) -> metrics.MetricValue:
    return metrics.ratio(metric, totals) if isinstance(metric, RatioMetric) else metrics.count_or_sum(metric, totals)


def _gain(ctx: _Context, kr_key: str, first: date, last: date, ended: bool) -> float | None:
    """What a key result gained from the sprint's first day to its last (or to now while it runs).

    Counts and sums: the evidence dated inside the sprint. Ratios: the ratio over the evidence dated up to the
    sprint's end minus up to its start. Response times, hygiene, KAM and manual values are states: the value the
    key result showed at the sprint's end (now while it runs) minus the last one before it started (history).
    """
    kr = ctx.config.key_result(kr_key)
    metric = kr.metric
    start, end = _day_end(first - timedelta(days=1)), _day_end(last)
    if isinstance(metric, CountMetric | SumMetric):
        totals = repo.part_totals(ctx.session, mapping_id=ctx.mapping_id, kr_key=kr_key, between=(start, end))
        return metrics.count_or_sum(metric, totals).value
    if isinstance(metric, RatioMetric):
        after = _from_totals(
            metric, repo.part_totals(ctx.session, mapping_id=ctx.mapping_id, kr_key=kr_key, between=(None, end))
        ).value
        before = _from_totals(
            metric, repo.part_totals(ctx.session, mapping_id=ctx.mapping_id, kr_key=kr_key, between=(None, start))
        ).value
        return None if after is None else after - (before if before is not None else kr.baseline)
    history = ctx.session.exec(
        sqlmodel.select(KeyResultHistory.as_of, KeyResultHistory.value)
        .where(
            KeyResultHistory.mapping_id == ctx.mapping_id,
            KeyResultHistory.kr_key == kr_key,
            KeyResultHistory.as_of < (end if ended else ctx.cycle.as_of + timedelta(seconds=1)),
        )
        .order_by(col(KeyResultHistory.as_of))
    ).all()
    earlier = [v for at, v in history if at < start and v is not None]
    later = [v for _at, v in history if v is not None]
    if not later:
        return None
    return later[-1] - (earlier[-1] if earlier else kr.baseline)


def _wait_totals(metric: WaitMetric) -> repo.WaitTotals | None:
    """What a wait key result keeps counted between runs: its answered inquiries per owner and those within its
    limit, for wall-clock hours (business hours read every wait) and any statistic but ``max`` (which needs the
    longest wait: read from the evidence)."""
    if metric.hours == "business" or metric.statistic == Statistic.max:
        return None
    return repo.WaitTotals(metric.within_hours * 3600 if metric.within_hours else None)


def _wait_value(
    ctx: _Context,
    kr_key: str,
    metric: WaitMetric,
    as_of: datetime,
    *,
    stored: bool = False,
    shared: str = "",
    last: KeyResultValue | None = None,
) -> metrics.MetricValue:
    """A response time or speed to lead from its stored waits. Business hours need every wait's own arrival time
    (read them all); wall-clock hours are summed up in the database and only the waits a percentile needs are
    fetched (``metrics.indexed_response_time``): at a million activities reading 100,000 waits per key result was
    most of an incremental run. ``last``: the KR's stored value; a percentile takes it and the stored contributions
    as hints where to fetch (any hint gives the same value)."""
    session, mapping_id = ctx.session, ctx.mapping_id
    if metric.hours == "business":
        waits = repo.waits(session, mapping_id=mapping_id, kr_key=kr_key)
        return metrics.response_time(metric, waits, as_of, ctx.config.team.calendar)
    limit = metric.within_hours * 3600 if metric.within_hours else None

    def waits_slice(owner: str | None, offset: int, count: int, total: int) -> list[float]:
        return repo.waits_slice(
            session, mapping_id=mapping_id, kr_key=kr_key, owner=owner, offset=offset, count=count, total=total
        )

    if metrics.needs_late_waits(metric):  # a percentile: every late wait, from each unanswered arrival
        arrivals = ctx.arrivals.get(shared) if shared else None
        if arrivals is None:
            arrivals = repo.unanswered_arrivals(session, mapping_id=mapping_id, kr_key=kr_key)
            if shared:
                ctx.arrivals[shared] = arrivals
        unanswered = metrics.unanswered_summary(arrivals, as_of=as_of, limit=limit, with_waits=True)
    else:
        unanswered = repo.unanswered_waits(
            session, mapping_id=mapping_id, kr_key=kr_key, as_of=as_of, limit=limit, with_waits=False
        )
    # a key result's counts are stored (``_wait_totals``): grouping all its answered waits again took 28 ms per
    # key result at a million activities; a sprint's commitment is counted afresh
    answered = (
        repo.stored_answered(session, mapping_id=mapping_id, kr_key=kr_key)
        if stored and _wait_totals(metric) is not None
        else repo.answered_waits(session, mapping_id=mapping_id, kr_key=kr_key, limit=limit)
    )
    hints: dict[str | None, float] | None = None
    if last is not None and last.value is not None and metrics.needs_late_waits(metric):
        hints = {None: last.value, **repo.stored_contributions(session, mapping_id=mapping_id, kr_key=kr_key)}
    return metrics.indexed_response_time(
        metric,
        answered=answered,
        unanswered=unanswered,
        waits_slice=waits_slice,
        hints=hints,
    )


def _without_contributions(kr: KeyResult) -> bool:
    """A KR whose evidence no CRM record shows as its contribution (the write-back credits activities and
    opportunities only): a speed to lead, or a count or sum of leads."""
    metric = kr.metric
    if isinstance(metric, SpeedToLeadMetric):
        return True
    parts = [metric.numerator, metric.denominator] if isinstance(metric, RatioMetric) else [metric]
    return all(isinstance(p, CountMetric | SumMetric) and RECORD_OF[p.of] == RecordType.lead for p in parts)


def _value(ctx: _Context, kr: KeyResult, scope: Scope, stored: KeyResultValue | None) -> metrics.MetricValue | None:
    """The KR's value, recomputed; None when an incremental run may keep the stored one."""
    metric, session = kr.metric, ctx.session
    if isinstance(metric, HygieneScoreMetric):
        return _hygiene_value(ctx, metric)
    if isinstance(metric, KamCriteriaMetric):
        return _kam_value(metric, ctx.kam_values)
    if isinstance(metric, ManualMetric):
        entry = repo.latest_manual_value(session, mapping_id=ctx.mapping_id, kr_key=kr.key, as_of=scope.as_of)
        detail: dict[str, Any] = {"entered_by": entry.author, "note": entry.note} if entry else {}
        return metrics.MetricValue(entry.value if entry else None, 1 if entry else 0, detail=detail)
    delta = _delta(ctx, kr, scope) if ctx.changes is not None and stored and stored.version == ctx.version else None
    if delta is False and not (ctx.as_of_moved and isinstance(metric, WAIT_METRICS)):
        return None  # (an unanswered inquiry's or lead's wait grows with 'now': a wait is read again when it moved)
    if delta is None:
        if not _without_contributions(kr):
            ctx.touched = None
        same = _inquiry_key(metric, scope) if isinstance(metric, ResponseTimeMetric) else None
        if same is not None and same in ctx.inquiries_done:
            repo.copy_evidence(session, mapping_id=ctx.mapping_id, source=ctx.inquiries_done[same], target=kr.key)
        else:
            queries = metric_evidence(metric, tables=ctx.tables, scope=scope, custom=ctx.config.custom())
            repo.replace_evidence(session, mapping_id=ctx.mapping_id, kr_key=kr.key, queries=queries)
            if same is not None:
                ctx.inquiries_done[same] = kr.key
        if not isinstance(metric, WAIT_METRICS):
            repo.store_part_totals(session, mapping_id=ctx.mapping_id, kr_key=kr.key)
        elif (waits := _wait_totals(metric)) is not None:
            repo.store_wait_totals(session, mapping_id=ctx.mapping_id, kr_key=kr.key, waits=waits)
        else:  # none kept (business hours, max)
            repo.delete_part_totals(session, mapping_id=ctx.mapping_id, kr_key=kr.key)
    if isinstance(metric, WAIT_METRICS):
        shared = _inquiry_key(metric, scope) if isinstance(metric, ResponseTimeMetric) else ""
        return _wait_value(ctx, kr.key, metric, scope.as_of, stored=True, shared=shared, last=stored)
    # the totals the full recompute stored, or that ``_delta``'s swaps brought up to date
    totals = repo.stored_part_totals(session, mapping_id=ctx.mapping_id, kr_key=kr.key)
    if isinstance(metric, RatioMetric):
        return metrics.ratio(metric, totals)
    assert isinstance(metric, CountMetric | SumMetric)
    return metrics.count_or_sum(metric, totals)
