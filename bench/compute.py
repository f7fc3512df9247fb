"""Compute: 50 key results and the full hygiene rule set over a large CRM, on SQLite and PostgreSQL; full and
incremental.

The data is the sandbox generator's Salesforce org (seed 42; 1,000,000 activities, 100,000 opportunities and 20,000
accounts by default), mapped with the Salesforce connector's ``to_record`` and stored with the sync's
``upsert_records`` in transactions of 5,000 records, without HTTP (ingest is measured by bench/ingest.py). Rows are
trimmed to the fields the connector selects, plus the custom fields Key_Account__c, Tier__c and Segment__c.

A mapping holds at most 5 objectives x 5 key results, so the 50 key results are two mappings of the same team (the
8 reps and 2 KAMs), computed one after the other and timed together:

* ``growth``: activity counts with filters, distinct accounts and contacts, sums, ratios (one with followed_by),
  response times (median, p90, share_within) and key-account criteria (the KAM section of customer-care.yaml);
* ``pipeline``: opportunity counts, sums and ratios, hygiene scores and the 10 hygiene rules of
  pipeline-hygiene.yaml.

Measured per database: the full compute of both mappings (wall time including the commit) on the empty result
tables, the first computation after a mapping is applied; the same again in a fresh process (its peak RSS), with
every key result's evidence stored, as the first computation of each day finds it (it writes only the rows that
differ, ``repository.replace_evidence``); then an incremental
compute after one changed activity (an outbound call re-logged as an inbound one, written as a sync writes it) and
after one changed opportunity (next step removed, stage and probability changed). Every SQL statement is timed; the
slowest ones are reported with their plans (EXPLAIN). Key-result values and findings are compared between SQLite and
PostgreSQL.

Planner statistics: a sync that wrote 5,000 rows or more runs ANALYZE (``service.kit.db.analyze``); the load here
does the same after storing, unless ``--no-analyze`` (then SQLite has no statistics at all and PostgreSQL only what
autovacuum gathered). ``--contact-match`` adds a response time matched by contact (p90-response-contact instead of
p90-response). It is left out by default: its plan depends on statistics more than any other query (without them,
at 20,000 activities: 171 s on SQLite and 151 s on PostgreSQL at engine ae4ab70, over 13 minutes on PostgreSQL at
410d352; with them well under a second).

    python -m bench compute                                    # 1,000,000 activities, 100,000 opportunities
    python -m bench compute --activities 100000 --opportunities 10000 --verify
"""

from __future__ import annotations

import copy
import gc
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Index, MetaData, Table, event, func, insert, select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bench.ingest import _fresh_postgres
from connectors.records import CanonicalRecord
from connectors.registry import adapter as crm_adapter
from connectors.salesforce.mapping import OBJECTS, select_fields, to_record
from connectors.sandbox.generator import generate_org
from mappings import hygiene as hygiene_rules
from mappings import kam as kam_rules
from mappings.config import WAIT_METRICS, CountMetric, KeyResult, MappingConfig, SprintWindow
from mappings.query import metric_evidence
from mappings.sql import Scope
from service.compute import repository
from service.compute.models import HygieneFinding, KamAccountScore, KeyResultEvidence, KeyResultValue
from service.compute.report import evidence as evidence_page
from service.compute.repository import local_tables
from service.compute.repository import table as core_table
from service.compute.service import SETTLED_SECONDS, ChangeSet, compute
from service.crm.models import Activity, Opportunity
from service.kit.db import analyze as analyze_tables
from service.kit.db import make_engine, utcnow
from service.kit.migrate import create_schema
from service.okrs.models import OkrMapping, OkrMappingVersion
from service.okrs.service import apply, load
from service.sync.repository import get_or_create_connection, upsert_records
from service.sync.service import ANALYZE_AFTER_ROWS, settle_loaded_tables

ANCHOR = datetime(2026, 9, 30, 18, 0, tzinfo=UTC)  # end of the generated quarter and "now" of every compute
APPLIED_AT = datetime(2026, 6, 25, 9, 0, tzinfo=UTC)  # mappings applied before the cycle starts
CHANGED_AT = "2026-09-30T17:59:59.000+0000"  # SystemModstamp of the changed records: newer than any generated one
BATCH = 5_000
CUSTOM = {"Account": ["Key_Account__c", "Tier__c"], "Opportunity": ["Segment__c"]}
CYCLE = {"name": "Q3 2026", "start": "2026-07-01", "end": "2026-09-30"}
TOP_STATEMENTS = 5
CHANGES = 20  # changed activities, then changed opportunities, each computed incrementally: p50/p95 over them
EXPLAINED = 3


# ------------------------------------------------------------------------------------------------ the mappings


def _count(of: str, *where: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "count", "of": of, "where": list(where), **extra}


def _kr(key: str, title: str, metric: dict[str, Any], target: float, **extra: Any) -> dict[str, Any]:
    return {"key": key, "title": title, "metric": metric, "target": target, **extra}


def _f(field_: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"field": field_, "op": op} if value is None else {"field": field_, "op": op, "value": value}


MEETING = _f("activity_kind", "eq", "meeting")
CALL = _f("activity_kind", "eq", "call")
PROSPECT = _f("account.account_type", "eq", "Prospect")
KEY_ACCOUNT = _f("account.custom.key_account", "is_true")
OPEN = _f("is_closed", "is_false")
WON = _f("is_won", "is_true")
NOW = {"date_field": "none"}
CLOSING = {"date_field": "close_date"}

GROWTH_OBJECTIVES: list[dict[str, Any]] = [
    {
        "key": "new-customers",
        "title": "We open doors to new customers",
        "key_results": [
            _kr("discovery-meetings", "Meetings with prospects", _count("activities", MEETING, PROSPECT), 15000),
            _kr(
                "prospects-contacted",
                "Prospect accounts contacted by phone or e-mail",
                _count(
                    "activities",
                    _f("activity_kind", "in", ["call", "email"]),
                    _f("direction", "ne", "inbound"),
                    PROSPECT,
                    distinct="accounts",
                ),
                5000,
            ),
            _kr(
                "meetings-to-opportunities",
                "Prospect meetings that turn into an opportunity within 60 days",
                {
                    "type": "ratio",
                    "numerator": _count("activities", MEETING, PROSPECT, {"followed_by": {"within_days": 60}}),
                    "denominator": _count("activities", MEETING, PROSPECT),
                },
                0.3,
                baseline=0.1,
            ),
            _kr(
                "new-pipeline",
                "New pipeline created",
                {"type": "sum", "of": "opportunities", "field": "amount", "date_field": "created_at"},
                600_000_000,
                weight=2,
            ),
            _kr(
                "sprint-first-calls",
                "Outbound calls in acquisition sprint 1",
                _count("activities", CALL, _f("direction", "eq", "outbound")),
                15000,
                window={"sprint": "acquisition-sprint-1"},
            ),
        ],
    },
    {
        "key": "conversations",
        "title": "We talk to the people who decide",
        "key_results": [
            _kr(
                "discovery-calls",
                "Discovery calls",
                _count("activities", CALL, _f("subject", "contains", "discovery")),
                9000,
            ),
            _kr(
                "executive-meetings",
                "Meetings with a CEO, CFO or CTO",
                _count("activities", MEETING, _f("contact.title", "in", ["CEO", "CFO", "CTO"])),
                8000,
            ),
            _kr("contacts-met", "Distinct contacts met", _count("activities", MEETING, distinct="contacts"), 20000),
            _kr(
                "connected-calls",
                "Share of calls that became a conversation (2 minutes or more)",
                {
                    "type": "ratio",
                    "numerator": _count("activities", CALL, _f("duration_seconds", "gte", 120)),
                    "denominator": _count("activities", CALL),
                },
                0.8,
                baseline=0.5,
            ),
            _kr(
                "talk-time",
                "Seconds on the phone",
                {"type": "sum", "of": "activities", "field": "duration_seconds", "where": [CALL]},
                500_000_000,
            ),
        ],
    },
    {
        "key": "customers-recommend-us",
        "title": "Our customers recommend us",
        "key_results": [
            _kr(
                "answered-within-4h",
                "Customer inquiries answered within 4 hours",
                {"type": "response_time", "statistic": "share_within", "within_hours": 4, "match": "account"},
                0.6,
                baseline=0.2,
            ),
            _kr(
                "median-response",
                "Median response time (hours)",
                {"type": "response_time", "statistic": "median"},
                24,
                baseline=72,
                direction="lower",
            ),
            _kr(
                "p90-response",
                "90th percentile of the response time (hours)",
                {"type": "response_time", "statistic": "p90", "match": "account"},
                72,
                baseline=240,
                direction="lower",
            ),
            _kr(
                "customers-answered-1h",
                "Inquiries of existing customers answered within 1 hour",
                {
                    "type": "response_time",
                    "statistic": "share_within",
                    "within_hours": 1,
                    "inbound": [_f("account.account_type", "starts_with", "Customer")],
                    "response_kinds": ["call", "email"],
                },
                0.5,
                baseline=0.1,
            ),
            _kr("key-accounts-healthy", "Key accounts meeting all criteria", {"type": "kam_criteria"}, 0.5),
        ],
    },
    {
        "key": "key-accounts",
        "title": "Our key accounts grow with us",
        "key_results": [
            _kr(
                "key-accounts-mostly",
                "Key accounts meeting 3 of 4 criteria",
                {"type": "kam_criteria", "min_score": 0.75},
                0.8,
            ),
            _kr("key-account-meetings", "Meetings on key accounts", _count("activities", MEETING, KEY_ACCOUNT), 10000),
            _kr(
                "key-accounts-touched",
                "Key accounts with a call or meeting",
                _count("activities", _f("activity_kind", "in", ["call", "meeting"]), KEY_ACCOUNT, distinct="accounts"),
                2000,
            ),
            _kr(
                "qbr-decks",
                "QBR decks prepared",
                _count(
                    "activities",
                    _f("activity_kind", "eq", "task"),
                    _f("subject", "eq", "Prepare QBR deck"),
                    date_field="completed_at",
                ),
                5000,
            ),
            _kr(
                "tier-a-coverage",
                "Tier A accounts met",
                _count("activities", MEETING, _f("account.custom.tier", "eq", "A"), distinct="accounts"),
                3000,
            ),
        ],
    },
    {
        "key": "discipline",
        "title": "We do what we say",
        "key_results": [
            _kr(
                "open-tasks",
                "Open tasks",
                _count(
                    "activities",
                    _f("activity_kind", "eq", "task"),
                    _f("status", "in", ["Not Started", "In Progress"]),
                    **NOW,
                ),
                1000,
                baseline=30000,
                direction="lower",
            ),
            _kr(
                "inbound-calls",
                "Inbound calls taken",
                _count("activities", CALL, _f("direction", "eq", "inbound")),
                20000,
            ),
            _kr(
                "proposals-sent",
                "Proposal e-mails",
                _count(
                    "activities", _f("activity_kind", "eq", "email"), _f("subject", "starts_with", "Email: Proposal")
                ),
                10000,
            ),
            _kr(
                "meetings-on-open-deals",
                "Meetings on open deals",
                _count("activities", MEETING, _f("opportunity.is_closed", "is_false")),
                20000,
            ),
            _kr(
                "enterprise-workshops",
                "Workshops and demos on enterprise deals",
                _count(
                    "activities",
                    MEETING,
                    {"any_of": [_f("subject", "contains", "workshop"), _f("subject", "contains", "demo")]},
                    _f("opportunity.custom.segment", "eq", "Enterprise"),
                ),
                3000,
            ),
        ],
    },
]

PIPELINE_OBJECTIVES: list[dict[str, Any]] = [
    {
        "key": "reliable-forecast",
        "title": "Our pipeline is a forecast we can trust",
        "key_results": [
            _kr(
                "next-step-set",
                "Open opportunities with a next step",
                {
                    "type": "ratio",
                    "numerator": _count("opportunities", OPEN, _f("next_step", "is_set"), **NOW),
                    "denominator": _count("opportunities", OPEN, **NOW),
                },
                0.9,
                baseline=0.6,
            ),
            _kr("hygiene-score", "Open opportunities passing every hygiene rule", {"type": "hygiene_score"}, 0.4),
            _kr(
                "no-overdue-close-dates",
                "Open opportunities with a close date in the future",
                {"type": "hygiene_score", "rules": ["close_date_past"]},
                0.95,
                baseline=0.7,
            ),
            _kr(
                "hygiene-sprint-updates",
                "Opportunity updates in the hygiene sprint",
                _count("activities", _f("activity_kind", "eq", "task"), _f("subject", "eq", "Update opportunity")),
                4000,
                window={"sprint": "hygiene-sprint"},
            ),
            _kr(
                "amount-set",
                "Open opportunities with an amount",
                {
                    "type": "ratio",
                    "numerator": _count("opportunities", OPEN, _f("amount", "is_set"), **NOW),
                    "denominator": _count("opportunities", OPEN, **NOW),
                },
                0.99,
                baseline=0.9,
            ),
        ],
    },
    {
        "key": "clean-pipeline",
        "title": "Every open deal is alive and well kept",
        "key_results": [
            _kr(
                "recent-activity",
                "Open deals with activity in 21 days",
                {"type": "hygiene_score", "rules": ["no_activity"]},
                0.9,
            ),
            _kr(
                "moving",
                "Open deals not stuck in their stage",
                {"type": "hygiene_score", "rules": ["stuck_in_stage", "stuck-vs-team"]},
                0.9,
            ),
            _kr(
                "multi-threaded",
                "Open deals with 2 or more contacts",
                {"type": "hygiene_score", "rules": ["single_threaded"]},
                0.8,
            ),
            _kr(
                "probability-right",
                "Open deals with the stage's probability",
                {"type": "hygiene_score", "rules": ["probability_mismatch"]},
                0.95,
            ),
            _kr(
                "enterprise-in-shape",
                "Open deals without amount, push or early-stage enterprise findings",
                {"type": "hygiene_score", "rules": ["enterprise-early-stage", "missing_amount", "close_date_pushed"]},
                0.9,
            ),
        ],
    },
    {
        "key": "win",
        "title": "We win the deals we work on",
        "key_results": [
            _kr(
                "won-revenue",
                "Revenue won",
                {"type": "sum", "of": "opportunities", "field": "amount", "where": [WON], **CLOSING},
                400_000_000,
            ),
            _kr("won-deals", "Deals won", _count("opportunities", WON, **CLOSING), 4000),
            _kr(
                "win-rate",
                "Win rate of closed deals",
                {
                    "type": "ratio",
                    "numerator": _count("opportunities", WON, **CLOSING),
                    "denominator": _count("opportunities", _f("is_closed", "is_true"), **CLOSING),
                },
                0.6,
                baseline=0.4,
            ),
            _kr(
                "enterprise-won",
                "Enterprise revenue won",
                {
                    "type": "sum",
                    "of": "opportunities",
                    "field": "amount",
                    "where": [WON, _f("custom.segment", "eq", "Enterprise")],
                    **CLOSING,
                },
                300_000_000,
            ),
            _kr(
                "lost-deals",
                "Deals lost",
                _count("opportunities", _f("is_closed", "is_true"), _f("is_won", "is_false"), **CLOSING),
                1000,
                baseline=5000,
                direction="lower",
            ),
        ],
    },
    {
        "key": "pipeline-generation",
        "title": "We build next quarter's pipeline now",
        "key_results": [
            _kr("new-opportunities", "Opportunities created", _count("opportunities"), 12000),
            _kr(
                "financial-services",
                "Opportunities created in banking and insurance",
                _count("opportunities", _f("account.industry", "in", ["Banking", "Insurance"])),
                3000,
            ),
            _kr(
                "accounts-with-pipeline",
                "Accounts with new pipeline",
                _count("opportunities", distinct="accounts"),
                8000,
            ),
            _kr(
                "commit-pipeline",
                "Open pipeline in commit",
                {
                    "type": "sum",
                    "of": "opportunities",
                    "field": "amount",
                    "where": [OPEN, _f("forecast_category", "eq", "Commit")],
                    **NOW,
                },
                200_000_000,
            ),
            _kr(
                "meetings-to-qualified",
                "Meetings followed by a qualified opportunity within 30 days",
                {
                    "type": "ratio",
                    "numerator": _count(
                        "activities",
                        MEETING,
                        {
                            "followed_by": {
                                "within_days": 30,
                                "where": [
                                    _f("stage", "in", ["Needs Analysis", "Proposal/Price Quote", "Negotiation/Review"])
                                ],
                            }
                        },
                    ),
                    "denominator": _count("activities", MEETING),
                },
                0.2,
                baseline=0.05,
            ),
        ],
    },
    {
        "key": "work-the-deals",
        "title": "We work the deals, not just the calendar",
        "key_results": [
            _kr(
                "calls-on-deals",
                "Calls logged on opportunities",
                _count("activities", CALL, _f("opportunity_id", "is_set")),
                30000,
            ),
            _kr(
                "deals-touched",
                "Opportunities with an activity",
                _count("activities", _f("opportunity_id", "is_set"), distinct="opportunities"),
                30000,
            ),
            _kr(
                "contacts-on-open-deals",
                "Contacts on open opportunities",
                _count("opportunities", OPEN, distinct="contacts", **NOW),
                40000,
            ),
            _kr("follow-ups", "Follow-ups done", _count("activities", _f("subject", "contains", "follow")), 60000),
            _kr(
                "big-deal-demos",
                "Demos on deals of 100k or more",
                _count("activities", MEETING, _f("subject", "eq", "Demo"), _f("opportunity.amount", "gte", 100000)),
                5000,
            ),
        ],
    },
]

HYGIENE: dict[str, Any] = {  # mappings/examples/pipeline-hygiene.yaml
    "stages": ["Prospecting", "Qualification", "Needs Analysis", "Proposal/Price Quote", "Negotiation/Review"],
    "rules": [
        {"type": "close_date_past"},
        {"type": "no_next_step"},
        {"type": "no_activity", "days": 21},
        {"type": "stuck_in_stage", "days": 60},
        {"type": "stuck_in_stage", "name": "stuck-vs-team", "median_factor": 2},
        {"type": "close_date_pushed", "times": 3},
        {"type": "missing_amount", "from_stage": "Needs Analysis"},
        {"type": "single_threaded", "min_contacts": 2},
        {
            "type": "probability_mismatch",
            "expected": {
                "Prospecting": 10,
                "Qualification": 10,
                "Needs Analysis": 20,
                "Proposal/Price Quote": 75,
                "Negotiation/Review": 90,
            },
            "tolerance": 5,
        },
        {
            "type": "custom",
            "name": "enterprise-early-stage",
            "message": "Enterprise deal still in an early stage",
            "where": [_f("custom.segment", "eq", "Enterprise"), _f("stage", "in", ["Prospecting", "Qualification"])],
        },
    ],
}

KAM: dict[str, Any] = {  # mappings/examples/customer-care.yaml
    "accounts": {"where": [_f("custom.key_account", "is_true")]},
    "criteria": [
        {
            "key": "three-contacts",
            "title": "Met at least 3 distinct contacts in the last 90 days",
            "type": "distinct_contacts",
            "min": 3,
            "days": 90,
            "kinds": ["meeting", "call"],
        },
        {
            "key": "executive-meeting",
            "title": "Executive meeting this quarter",
            "type": "activity",
            "where": [MEETING, _f("contact.title", "in", ["CEO", "CFO", "CTO"])],
        },
        {
            "key": "account-plan-reviewed",
            "title": "QBR deck prepared this quarter",
            "type": "task_completed",
            "subject": "Prepare QBR deck",
        },
        {"key": "strategic-relationship", "title": "Relationship at board level", "type": "assessed"},
    ],
}


CONTACT_MATCH_KR = _kr(
    "p90-response-contact",
    "90th percentile of the response to the same contact (hours)",
    {"type": "response_time", "statistic": "p90", "match": "contact"},
    72,
    baseline=240,
    direction="lower",
)


def mapping_configs(members: list[dict[str, str]], *, contact_match: bool = False) -> dict[str, dict[str, Any]]:
    """The two mapping files (as data) of one team: name → config.

    ``contact_match``: the p90 response time matches responses by contact instead of account (see the module doc)."""
    team = {"name": "Vertrieb DACH", "members": members}
    objectives = copy.deepcopy(GROWTH_OBJECTIVES)
    if contact_match:
        for objective in objectives:
            objective["key_results"] = [
                CONTACT_MATCH_KR if kr["key"] == "p90-response" else kr for kr in objective["key_results"]
            ]
    growth = {
        "version": 1,
        "team": team,
        "cycle": {**CYCLE, "name": "Q3 2026 growth"},
        "custom_fields": {
            "key_account": {"record": "account", "type": "boolean", "salesforce": "Key_Account__c"},
            "tier": {"record": "account", "salesforce": "Tier__c"},
            "segment": {"record": "opportunity", "salesforce": "Segment__c"},
        },
        "sprints": [
            {"key": "acquisition-sprint-1", "name": "Acquisition sprint 1", "start": "2026-08-03", "end": "2026-08-14"}
        ],
        "objectives": objectives,
        "kam": KAM,
    }
    pipeline = {
        "version": 1,
        "team": team,
        "cycle": {**CYCLE, "name": "Q3 2026 pipeline"},
        "custom_fields": {"segment": {"record": "opportunity", "salesforce": "Segment__c"}},
        "sprints": [
            {"key": "hygiene-sprint", "name": "Pipeline-hygiene sprint", "start": "2026-09-14", "end": "2026-09-25"}
        ],
        "objectives": PIPELINE_OBJECTIVES,
        "hygiene": HYGIENE,
    }
    return {"growth": growth, "pipeline": pipeline}


# --------------------------------------------------------------------------------------------- statement timing


@dataclass
class _Statement:
    count: int = 0
    seconds: float = 0.0
    slowest: float = 0.0
    parameters: Any = None


@dataclass
class StatementTimer:
    """Times every SQL statement of an engine while ``active`` (grouped by statement text)."""

    engine: Engine
    active: bool = False
    statements: dict[str, _Statement] = field(default_factory=dict)

    def __post_init__(self) -> None:
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, _cursor: Any, _statement: str, _parameters: Any, _context: Any, _many: bool) -> None:
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def _after(self, conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        elapsed = time.perf_counter() - conn.info["bench_started"].pop()
        if not self.active:
            return
        entry = self.statements.setdefault(statement, _Statement())
        entry.count += 1
        entry.seconds += elapsed
        if elapsed >= entry.slowest:
            entry.slowest = elapsed
            entry.parameters = None if many else parameters

    def reset(self) -> None:
        self.statements.clear()

    def total(self) -> float:
        return sum(s.seconds for s in self.statements.values())

    def top(self, n: int) -> list[tuple[str, _Statement]]:
        return sorted(self.statements.items(), key=lambda item: -item[1].seconds)[:n]


def _label(parameters: Any, keys: set[str]) -> str:
    """The key result or hygiene rule a statement belongs to, from its bound values."""
    values = parameters.values() if isinstance(parameters, dict) else parameters or ()
    found = sorted({v for v in values if isinstance(v, str) and v in keys})
    return ", ".join(found)


def _explain(engine: Engine, statement: str, parameters: Any) -> list[str]:
    if parameters is None:
        return ["(executemany: not explained)"]
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            rows = conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).all()
            return [str(r[0]) for r in rows]
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
        depth: dict[int, int] = {0: -1}
        lines = []
        for node, parent, _unused, detail in rows:
            depth[node] = depth.get(parent, -1) + 1
            lines.append("  " * depth[node] + str(detail))
        return lines


# ------------------------------------------------------------------------------------------------ floors

FLOOR_TABLE = "floor_activity"


def _kind(kr: KeyResult) -> str:
    """The kind a key result is reported under beside its floor."""
    metric = kr.metric
    if isinstance(metric, CountMetric) and metric.distinct is not None:
        return "count distinct"
    if isinstance(metric, WAIT_METRICS):
        return metric.type
    return metric.type


def _narrow_activity(target: Target) -> Any:
    """A copy of the activity table without the raw CRM payload (every other column, the same indexes): what
    "over just the columns it needs" means for a row store. Made once per database."""
    source = core_table(Activity)
    metadata = MetaData()
    narrow = Table(FLOOR_TABLE, metadata, *[c._copy() for c in source.columns if c.name != "raw"])
    for index in source.indexes:
        Index(f"floor_{index.name}", *[narrow.c[c.name] for c in index.columns])
    with target.engine.begin() as conn:
        narrow.drop(conn, checkfirst=True)
        narrow.create(conn)
        names = [c.name for c in narrow.columns]
        conn.execute(insert(narrow).from_select(names, select(*[source.c[n] for n in names])))
    analyze_tables(target.engine)
    return narrow


def _floors(target: Target) -> dict[str, Any]:
    """Per key result, hygiene rule and KAM criterion: the bare aggregate that gives only its number (grouped per
    part and owner; no evidence written, no bookkeeping), from the same SQL okrsync builds, over the narrow activity
    copy. Seconds each, measured in this run before okrsync's full compute."""
    narrow = _narrow_activity(target)
    tables = replace(local_tables(), activity=narrow)
    out: dict[str, Any] = {"key_results": {}, "hygiene": 0.0, "kam": 0.0}
    with Session(target.engine) as session:
        for mapping_id in target.mappings.values():
            mapping = session.get(OkrMapping, mapping_id)
            assert mapping is not None
            version = session.get(OkrMappingVersion, (mapping_id, mapping.current_version))
            assert version is not None
            config = MappingConfig.model_validate(version.config)
            scope = _scope(session, mapping, config)
            custom = config.custom()
            for _objective, kr in config.key_results():
                queries = metric_evidence(kr.metric, tables=tables, scope=_kr_scope(scope, config, kr), custom=custom)
                if not queries:
                    continue
                started = time.perf_counter()
                for query in queries:
                    sq = query.subquery("floor")
                    session.execute(
                        select(sq.c.part, sq.c.owner_id, func.count(), func.sum(sq.c.value)).group_by(
                            sq.c.part, sq.c.owner_id
                        )
                    ).all()
                out["key_results"][kr.key] = {"kind": _kind(kr), "seconds": round(time.perf_counter() - started, 4)}
            started = time.perf_counter()
            medians: dict[str, float] = {}
            for rule in config.hygiene.rules:
                if getattr(rule, "median_factor", None) and not medians:
                    for stage, n in session.execute(hygiene_rules.stage_counts(tables, scope)).all():
                        middle = session.execute(hygiene_rules.stage_middle(tables, scope, stage, n)).all()
                        medians[stage] = float(middle[0][0])  # the queries' cost, not the value
                violations = hygiene_rules.violations(
                    rule, tables=tables, scope=scope, custom=custom, stages=config.hygiene.stages,
                    stage_medians=medians,
                ).subquery("floor")  # fmt: skip
                session.execute(select(func.count()).select_from(violations)).all()
            out["hygiene"] += time.perf_counter() - started
            if config.kam is not None:
                started = time.perf_counter()
                accounts = kam_rules.key_accounts(config.kam, tables=tables, scope=scope, custom=custom)
                session.execute(accounts).all()
                for criterion in config.kam.criteria:
                    measured = kam_rules.measure(
                        criterion, accounts=accounts, tables=tables, scope=scope, custom=custom
                    )
                    if measured is not None:
                        session.execute(measured).all()
                out["kam"] += time.perf_counter() - started
    with target.engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {FLOOR_TABLE}"))
    out["hygiene"], out["kam"] = round(out["hygiene"], 4), round(out["kam"], 4)
    return out


def _scope(session: Session, mapping: OkrMapping, config: MappingConfig) -> Scope:
    emails = [m.email for m in config.team.members]
    owners = repository.owner_ids_by_email(session, connection_id=mapping.connection_id, emails=emails)
    return Scope.for_window(
        connection_id=mapping.connection_id, crm="salesforce", owner_ids=tuple(sorted(owners.values())) or ("",),
        first_day=config.cycle.start, last_day=config.cycle.end, as_of=ANCHOR,
        raw_prefix=crm_adapter("salesforce").raw_prefix,
    )  # fmt: skip


def _kr_scope(cycle: Scope, config: MappingConfig, kr: KeyResult) -> Scope:
    if not isinstance(kr.window, SprintWindow):
        return cycle
    sprint = next(s for s in config.sprints if s.key == kr.window.sprint)
    return Scope.for_window(
        connection_id=cycle.connection_id, crm=cycle.crm, owner_ids=cycle.owner_ids, first_day=sprint.start,
        last_day=sprint.end, as_of=cycle.as_of, raw_prefix=cycle.raw_prefix,
    )  # fmt: skip


def _by_kind(target: Target, floors: dict[str, Any], full: dict[str, Any]) -> list[dict[str, Any]]:
    """Per kind of key result (and hygiene, KAM): the floors' sum, okrsync's time for the same in the full compute
    (ComputeReport.timings), and the ratio."""
    timings: dict[str, float] = {}
    for mapping in full["mappings"]:
        timings.update({f"{mapping['mapping']}:{k}": v for k, v in mapping["timings"].items()})
    kinds: dict[str, dict[str, float]] = {}
    for key, floor in floors["key_results"].items():
        spent = sum(v for k, v in timings.items() if k.endswith(f":{key}"))
        entry = kinds.setdefault(floor["kind"], {"key_results": 0, "floor": 0.0, "okrsync": 0.0})
        entry["key_results"] += 1
        entry["floor"] += floor["seconds"]
        entry["okrsync"] += spent
    for part in ("hygiene", "kam"):
        spent = sum(v for k, v in timings.items() if k.endswith(f":{part}"))
        kinds[part] = {"key_results": 0, "floor": floors[part], "okrsync": spent}
    return [
        {
            "kind": kind,
            "key_results": int(v["key_results"]),
            "floor_seconds": round(v["floor"], 3),
            "okrsync_seconds": round(v["okrsync"], 3),
            "ratio": round(v["okrsync"] / v["floor"], 1) if v["floor"] else None,
        }
        for kind, v in sorted(kinds.items())
    ]


CHILD = """
import json, resource, sys, time
from sqlmodel import Session
from service.compute.service import SETTLED_SECONDS, compute
from service.kit.db import make_engine
from service.okrs.models import OkrMapping, OkrMappingVersion
from bench.compute import ANCHOR
engine = make_engine(sys.argv[1])
started = time.perf_counter()
settled = 0.0
for mapping_id in json.loads(sys.argv[2]):
    with Session(engine, expire_on_commit=False) as session:
        compute(session, mapping=session.get(OkrMapping, mapping_id), as_of=ANCHOR)
        session.commit()  # PostgreSQL: the commit of a full compute settles it (VACUUM), timed apart
        settled += session.info.get(SETTLED_SECONDS, 0.0)
seconds = time.perf_counter() - started - settled
# VmHWM, this process's own high-water mark: ru_maxrss keeps the parent's across fork and exec (Linux), so it
# reported the generated org the bench holds (1,356 MB) as the compute's
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if "VmHWM" in status:
    peak = int(status["VmHWM"].split()[0]) / 1024
print(json.dumps({"seconds": round(seconds, 3), "settle_seconds": round(settled, 2), "peak_rss_mb": round(peak, 1)}))
"""


def _full_in_child(target: Target) -> dict[str, Any]:
    """The full compute of both mappings again, in a fresh process: its wall time and peak RSS (the compute's
    own memory, without the generated org this process holds)."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", CHILD, target.url, json.dumps(list(target.mappings.values()))],
        cwd=root, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# ------------------------------------------------------------------------------------------------ loading


def _trim(sobject: str, row: dict[str, Any]) -> dict[str, Any]:
    """The row as the Salesforce API returns it for the connector's SELECT (standard + custom fields)."""
    return {
        name: row.get(name) for name in select_fields(sobject, custom=CUSTOM.get(sobject, []), multi_currency=False)
    }


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), BATCH):
        yield rows[start : start + BATCH]


@dataclass
class Target:
    name: str
    url: str
    engine: Engine
    timer: StatementTimer
    connection_id: int = 0
    load_seconds: float = 0.0
    mappings: dict[str, int] = field(default_factory=dict)  # name → mapping id


def _open(name: str, url: str) -> Target:
    engine = make_engine(url)
    create_schema(engine)
    with Session(engine, expire_on_commit=False) as session:
        connection = get_or_create_connection(session, crm_name="salesforce", name="bench")
        session.commit()
        assert connection.id is not None
        return Target(name, url, engine, StatementTimer(engine), connection_id=connection.id)


def _load(targets: list[Target], org: dict[str, list[dict[str, Any]]]) -> float:
    """Map each batch once and store it in every database; returns the mapping seconds (shared)."""
    map_seconds = 0.0
    seen = utcnow()
    sessions = [Session(t.engine, expire_on_commit=False) for t in targets]
    try:
        for sobject in OBJECTS:
            for rows in _chunks(org[sobject]):
                started = time.perf_counter()
                records: list[CanonicalRecord] = [to_record(sobject, _trim(sobject, r), currency="EUR") for r in rows]
                map_seconds += time.perf_counter() - started
                for target, session in zip(targets, sessions, strict=True):
                    started = time.perf_counter()
                    upsert_records(
                        session, records, connection_id=target.connection_id, crm_object=sobject, seen_at=seen
                    )
                    session.commit()
                    target.load_seconds += time.perf_counter() - started
            print(f"compute: loaded {len(org[sobject]):,} {sobject}", file=sys.stderr)
    finally:
        for session in sessions:
            session.close()
    return map_seconds


def _write_changed(target: Target, sobject: str, row: dict[str, Any]) -> None:
    """Store one changed CRM row exactly as a sync stores it (upsert, links of a stored activity replaced)."""
    record = to_record(sobject, _trim(sobject, row), currency="EUR")
    with Session(target.engine, expire_on_commit=False) as session:
        upsert_records(
            session,
            [record],
            connection_id=target.connection_id,
            crm_object=sobject,
            seen_at=utcnow(),
            stored_ids={record.external_id},
        )
        session.commit()


# ------------------------------------------------------------------------------------------------ computing


def _apply_mappings(target: Target, configs: dict[str, dict[str, Any]]) -> None:
    with Session(target.engine, expire_on_commit=False) as session:
        connection = get_or_create_connection(session, crm_name="salesforce", name="bench")
        for name, config in configs.items():
            loaded = load(yaml.safe_dump(config, sort_keys=False), filename=f"bench-{name}.yaml")
            mapping, _version = apply(session, loaded, connection=connection, author="bench", now=APPLIED_AT)
            assert mapping.id is not None
            target.mappings[name] = mapping.id
        session.commit()


def _counts(session: Session, mapping_id: int) -> dict[str, int]:
    def n(model: Any) -> int:
        t = core_table(model)
        return int(
            session.execute(select(func.count()).select_from(t).where(t.c.mapping_id == mapping_id)).scalar() or 0
        )

    return {
        "evidence_rows": n(KeyResultEvidence),
        "hygiene_findings": n(HygieneFinding),
        "key_accounts": n(KamAccountScore),
    }


def _compute_all(target: Target, changes: ChangeSet | None, as_of: datetime = ANCHOR) -> dict[str, Any]:
    """Compute both mappings (each in its own transaction, as the service's job does); wall time with commits."""
    per_mapping: list[dict[str, Any]] = []
    for name, mapping_id in target.mappings.items():
        started = time.perf_counter()
        with Session(target.engine, expire_on_commit=False) as session:
            mapping = session.get(OkrMapping, mapping_id)
            assert mapping is not None
            report = compute(session, mapping=mapping, as_of=as_of, changes=changes)
            session.commit()  # PostgreSQL: the commit of a full compute settles it (VACUUM), timed apart
            settled = session.info.get(SETTLED_SECONDS, 0.0)
            seconds = time.perf_counter() - started - settled
            per_mapping.append(
                {
                    "mapping": name,
                    "kind": report.kind,
                    "seconds": round(seconds, 3),
                    "settle_seconds": round(settled, 2),
                    "recomputed": len(report.recomputed),
                    "recomputed_keys": report.recomputed,
                    "timings": {k: round(v, 4) for k, v in report.timings.items()},
                    "opportunities_rechecked": report.opportunities_rechecked,
                    "missing_members": report.missing_members,
                    **_counts(session, mapping_id),
                }
            )
    return {
        "seconds": round(sum(m["seconds"] for m in per_mapping), 3),  # without the row counts taken for the report
        "kind": "/".join(sorted({m["kind"] for m in per_mapping})),
        "recomputed": sum(m["recomputed"] for m in per_mapping),
        "evidence_rows": sum(m["evidence_rows"] for m in per_mapping),
        "hygiene_findings": sum(m["hygiene_findings"] for m in per_mapping),
        "mappings": per_mapping,
    }


def _profiled(
    target: Target, changes: ChangeSet | None, keys: set[str], explain: int, as_of: datetime = ANCHOR
) -> dict[str, Any]:
    target.timer.reset()
    target.timer.active = True
    try:
        result = _compute_all(target, changes, as_of)
    finally:
        target.timer.active = False
    result["sql_seconds"] = round(target.timer.total(), 3)
    result["statements"] = sum(s.count for s in target.timer.statements.values())
    slowest = []
    for n, (statement, stat) in enumerate(target.timer.top(TOP_STATEMENTS)):
        entry: dict[str, Any] = {
            "seconds": round(stat.seconds, 3),
            "runs": stat.count,
            "slowest_run": round(stat.slowest, 3),
            "label": _label(stat.parameters, keys),
            "sql": " ".join(statement.split())[:600],
        }
        if n < explain:
            try:
                entry["plan"] = _explain(target.engine, statement, stat.parameters)
            except Exception as exc:  # a plan is a diagnostic; never fail the benchmark on it
                entry["plan"] = [f"EXPLAIN failed: {exc}"]
        slowest.append(entry)
    result["slowest"] = slowest
    target.timer.reset()
    return result


def _snapshot(target: Target) -> dict[str, Any]:
    """Key-result values and findings per rule, keyed by mapping name, for comparing databases and runs."""
    out: dict[str, Any] = {}
    with Session(target.engine) as session:
        value, finding = core_table(KeyResultValue), core_table(HygieneFinding)
        for name, mapping_id in target.mappings.items():
            rows = session.execute(
                select(value.c.kr_key, value.c.value, value.c.records).where(value.c.mapping_id == mapping_id)
            ).all()
            for key, v, records in rows:
                out[f"{name}/{key}"] = (None if v is None else round(float(v), 6), records)
            for rule, n in session.execute(
                select(finding.c.rule_key, func.count())
                .where(finding.c.mapping_id == mapping_id)
                .group_by(finding.c.rule_key)
            ).all():
                out[f"{name}/finding/{rule}"] = n
    return out


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return [f"{k}: {a.get(k)} vs {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _changed_activities(org: dict[str, list[dict[str, Any]]], team: set[str], n: int) -> list[dict[str, Any]]:
    """``n`` different completed outbound calls of team members on opportunities, each re-logged as an inbound
    discovery call (a change that moves counts, ratios and response times alike)."""
    found = [
        {
            **row,
            "CallType": "Inbound",
            "Subject": "Discovery call",
            "LastModifiedDate": CHANGED_AT,
            "SystemModstamp": CHANGED_AT,
        }  # fmt: skip
        for row in org["Task"]
        if row["TaskSubtype"] == "Call"
        and row["CallType"] == "Outbound"
        and row["OwnerId"] in team
        and str(row["WhatId"]).startswith("006")
    ][:n]
    if not found:
        raise RuntimeError("no outbound call of the team on an opportunity")
    return found


def _changed_opportunities(org: dict[str, list[dict[str, Any]]], team: set[str], n: int) -> list[dict[str, Any]]:
    """``n`` different open opportunities of team members with a next step, in Prospecting: next step cleared,
    moved to negotiation at 50 %."""
    found = [
        {
            **row,
            "NextStep": None,
            "StageName": "Negotiation/Review",
            "Probability": 50.0,
            "LastStageChangeDate": CHANGED_AT,
            "LastModifiedDate": CHANGED_AT,
            "SystemModstamp": CHANGED_AT,
        }  # fmt: skip
        for row in org["Opportunity"]
        if not row["IsClosed"] and row["NextStep"] and row["OwnerId"] in team and row["StageName"] == "Prospecting"
    ][:n]
    if not found:
        raise RuntimeError("no open opportunity of the team in Prospecting")
    return found


def _percentile(values: list[float], share: float) -> float:
    """Nearest rank: the smallest value with at least ``share`` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


CHANGE_MINUTES = 2  # the incremental computes follow the full one (at ANCHOR) and each other by this much


def _change_time(number: int) -> datetime:
    """When the ``number``-th change (from 0, activities then opportunities) is computed: a few minutes after the
    last, as webhooks come, so each run also takes in the records dated since the last (on the same day)."""
    return ANCHOR + timedelta(minutes=CHANGE_MINUTES * (number + 1))


def _incremental_series(
    target: Target,
    sobject: str,
    rows: list[dict[str, Any]],
    kind: str,
    keys: set[str],
    explain: int,
    first_change: int = 0,
) -> dict[str, Any]:
    """Each changed row written as a sync writes it, then an incremental compute of both mappings (as of
    ``_change_time``): the first one profiled (slowest statements), every one timed. Figures: p50/p95/max over the
    changes."""
    first: dict[str, Any] = {}
    seconds: list[float] = []
    updated: list[int] = []
    for number, row in enumerate(rows):
        _write_changed(target, sobject, row)
        changes = ChangeSet(**{kind: {row["Id"]}})
        as_of = _change_time(first_change + number)
        result = (
            _profiled(target, changes, keys, explain, as_of) if number == 0 else _compute_all(target, changes, as_of)
        )
        if number == 0:
            first = result
        if result["kind"] != "incremental":
            raise RuntimeError(f"change {number} of {sobject} was computed {result['kind']}")
        seconds.append(result["seconds"])
        updated.append(result["recomputed"])
    return {
        **first,
        "changes": len(rows),
        "seconds_each": seconds,
        "p50_seconds": round(statistics.median(seconds), 3),
        "p95_seconds": round(_percentile(seconds, 0.95), 3),
        "max_seconds": round(max(seconds), 3),
        "recomputed_p50": statistics.median(updated),
        "recomputed_max": max(updated),
        "record": rows[0]["Id"],
    }


PAGE_ROUNDS = 5


def _evidence_pages(target: Target) -> list[dict[str, Any]]:
    """A page of 50 evidence rows as the API and the dashboard ask for it (``report.evidence``: the count, then the
    page, newest first), for the key result with the most rows and one of median size: first page, middle page and
    last page of all owners' rows and of one owner's (a rep's own view); the p50 and the slowest of PAGE_ROUNDS
    rounds each."""
    measured: list[dict[str, Any]] = []
    with Session(target.engine) as session:
        counts = session.execute(
            select(core_table(KeyResultEvidence).c.mapping_id, core_table(KeyResultEvidence).c.kr_key, func.count())
            .where(~core_table(KeyResultEvidence).c.kr_key.startswith("~"))
            .group_by(core_table(KeyResultEvidence).c.mapping_id, core_table(KeyResultEvidence).c.kr_key)
        ).all()
        ranked = sorted(counts, key=lambda row: -row[2])
        if not ranked:
            return measured
        for mapping_id, kr_key, rows in (ranked[0], ranked[len(ranked) // 2]):
            mapping = session.get(OkrMapping, mapping_id)
            assert mapping is not None
            owner = session.execute(
                select(core_table(KeyResultEvidence).c.owner_id)
                .where(
                    core_table(KeyResultEvidence).c.mapping_id == mapping_id,
                    core_table(KeyResultEvidence).c.kr_key == kr_key,
                )
                .limit(1)
            ).scalar()
            one: list[str] = [owner or ""]
            for who, owners in (("all", None), ("one owner", one)):
                size = evidence_page(session, mapping, kr_key, limit=1, owner_ids=owners)[0]
                for where, offset in (("first", 0), ("middle", size // 2), ("last", max(0, size - 50))):
                    seconds = []
                    for _ in range(PAGE_ROUNDS):
                        started = time.perf_counter()
                        total, page = evidence_page(session, mapping, kr_key, offset=offset, owner_ids=owners)
                        seconds.append(time.perf_counter() - started)
                    measured.append(
                        {
                            "kr": kr_key, "rows": rows, "owners": who, "page": where, "total": total,
                            "returned": len(page), "p50_ms": round(statistics.median(seconds) * 1000, 1),
                            "max_ms": round(max(seconds) * 1000, 1),
                        }
                    )  # fmt: skip
    return measured


def _rows(target: Target) -> dict[str, int]:
    with Session(target.engine) as session:
        return {
            name: int(session.execute(select(func.count()).select_from(core_table(model))).scalar() or 0)
            for name, model in (("activities", Activity), ("opportunities", Opportunity))
        }


def _commit() -> str:
    """The engine's git commit (and whether the working tree differs), since the figures belong to one version."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "service", "mappings", "connectors"],
            cwd=root,
            capture_output=True,
            text=True,
        )
    except OSError:
        return "unknown"
    return head.stdout.strip() + (" (modified)" if dirty.stdout.strip() else "")


def _statistics(target: Target) -> str:
    """Whether the planner has table statistics (nothing in okrsync runs ANALYZE; PostgreSQL's autovacuum may)."""
    with target.engine.connect() as conn:
        if target.engine.dialect.name == "postgresql":
            row = conn.exec_driver_sql(
                "SELECT last_analyze, last_autoanalyze FROM pg_stat_user_tables WHERE relname = 'activity'"
            ).first()
            if row is None or (row[0] is None and row[1] is None):
                return "activity not analyzed"
            return "activity analyzed" if row[0] is not None else "activity analyzed by autovacuum"
        found = conn.exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'").scalar()
        return "sqlite_stat1 present" if found else "no sqlite_stat1 (never analyzed)"


def run(
    *,
    activities: int,
    opportunities: int,
    accounts: int | None = None,
    verify: bool = False,
    contact_match: bool = False,
    analyze: bool = True,
    databases: tuple[str, ...] = ("sqlite", "postgresql"),
    explain: int = EXPLAINED,
    changes: int = CHANGES,
    floors: bool = True,
) -> dict[str, Any]:
    """Load the org into SQLite and PostgreSQL, then time full and incremental computes on each.

    ``verify``: after the incremental runs, run a full compute and report any value it changes (there should be
    none). ``contact_match``: include the response-time KR matched by contact (see the module doc). ``analyze``:
    run ANALYZE after the load, as a sync does after writing ANALYZE_AFTER_ROWS rows or more."""
    accounts = accounts or max(100, opportunities // 5)
    results: dict[str, Any] = {
        "activities": activities,
        "opportunities": opportunities,
        "accounts": accounts,
        "batch": BATCH,
        "as_of": ANCHOR.isoformat(),
        "commit": _commit(),
        "databases": [],
    }
    started = time.perf_counter()
    org = generate_org(seed=42, accounts=accounts, opportunities=opportunities, activities=activities, anchor=ANCHOR)
    results["generate_seconds"] = round(time.perf_counter() - started, 2)
    results["records"] = {sobject: len(org[sobject]) for sobject in OBJECTS}
    results["records_total"] = sum(results["records"].values())
    members = [{"email": u["Email"], "name": u["Name"]} for u in org["User"][1:]]  # 8 reps and 2 KAMs, not the head
    team = {u["Id"] for u in org["User"][1:]}
    configs = mapping_configs(members, contact_match=contact_match)
    results["contact_match"] = contact_match
    keys = {kr["key"] for c in configs.values() for o in c["objectives"] for kr in o["key_results"]}
    keys |= {r.get("name") or r["type"] for r in HYGIENE["rules"]} | {c["key"] for c in KAM["criteria"]}
    results["key_results"] = {name: sum(len(o["key_results"]) for o in c["objectives"]) for name, c in configs.items()}
    results["hygiene_rules"] = len(HYGIENE["rules"])
    results["kam_criteria"] = len(KAM["criteria"])
    changed_activities = _changed_activities(org, team, changes)
    changed_opportunities = _changed_opportunities(org, team, changes)
    print(
        f"compute: generated {results['records_total']:,} records in {results['generate_seconds']} s", file=sys.stderr
    )

    with tempfile.TemporaryDirectory(prefix="okrsync-bench-compute-") as tmp:
        urls = {"sqlite": f"sqlite:///{Path(tmp) / 'compute.db'}", "postgresql": ""}
        targets = [_open(name, urls[name] or _fresh_postgres()) for name in databases]
        try:
            results["map_seconds"] = round(_load(targets, org), 2)
            del org
            gc.collect()
            snapshots: dict[str, dict[str, Any]] = {}
            for target in targets:
                figures: dict[str, Any] = {
                    "database": target.name,
                    "load_seconds": round(target.load_seconds, 2),
                    "rows": _rows(target),
                }
                if analyze and results["records_total"] >= ANALYZE_AFTER_ROWS:
                    started = time.perf_counter()
                    settle_loaded_tables(target.engine)  # what run_sync does after a sync that wrote this much
                    figures["analyze_seconds"] = round(time.perf_counter() - started, 2)
                figures["statistics"] = _statistics(target)
                _apply_mappings(target, configs)
                if floors:
                    print(f"compute {target.name}: floors …", file=sys.stderr)
                    figures["floors"] = _floors(target)
                print(f"compute {target.name}: full …", file=sys.stderr)
                figures["full"] = _profiled(target, None, keys, explain)
                print(f"compute {target.name}: full in {figures['full']['seconds']} s", file=sys.stderr)
                if floors:
                    figures["by_kind"] = _by_kind(target, figures["floors"], figures["full"])
                figures["full_in_own_process"] = _full_in_child(target)
                # what the commit of a full compute does after it (PostgreSQL: VACUUM, so that the evidence pages
                # measured below are the index-only walks users get), timed by the child whose compute wrote every
                # evidence row anew
                figures["settle_seconds"] = figures["full_in_own_process"]["settle_seconds"]
                print(
                    f"compute {target.name}: full in its own process in {figures['full_in_own_process']['seconds']} s,"
                    f" peak RSS {figures['full_in_own_process']['peak_rss_mb']} MB",
                    file=sys.stderr,
                )
                snapshots[target.name] = _snapshot(target)
                figures["evidence_pages"] = _evidence_pages(target)
                figures["incremental_activity"] = _incremental_series(
                    target, "Task", changed_activities, "activity", keys, explain
                )
                print(
                    f"compute {target.name}: {len(changed_activities)} changed activities, p50"
                    f" {figures['incremental_activity']['p50_seconds']} s",
                    file=sys.stderr,
                )
                figures["incremental_opportunity"] = _incremental_series(
                    target, "Opportunity", changed_opportunities, "opportunity", keys, explain,
                    first_change=len(changed_activities),
                )  # fmt: skip
                print(
                    f"compute {target.name}: {len(changed_opportunities)} changed opportunities, p50"
                    f" {figures['incremental_opportunity']['p50_seconds']} s",
                    file=sys.stderr,
                )
                after = _snapshot(target)
                snapshots[f"{target.name}-incremental"] = after
                figures["changed_by_the_changes"] = _differences(snapshots[target.name], after)
                if verify:  # a full compute now must give what the two incremental ones left behind
                    last = _change_time(len(changed_activities) + len(changed_opportunities) - 1)
                    figures["verify_full"] = _profiled(target, None, keys, 0, last)
                    figures["incremental_differs_from_full"] = _differences(after, _snapshot(target))
                results["databases"].append(figures)
        finally:
            for target in targets:
                target.engine.dispose()
    if len(databases) == 2:
        results["sqlite_vs_postgresql"] = {
            "full": _differences(snapshots["sqlite"], snapshots["postgresql"]),
            "after_incremental": _differences(snapshots["sqlite-incremental"], snapshots["postgresql-incremental"]),
        }
    return results


def table(results: dict[str, Any]) -> str:
    krs = " + ".join(str(n) for n in results["key_results"].values())
    total = sum(results["key_results"].values())
    lines = [
        f"## Compute of {sum(results['key_results'].values())} key results ({krs} in two mappings, timed together),"
        f" {results['hygiene_rules']} hygiene rules and {results['kam_criteria']} KAM criteria over"
        f" {results['activities']:,} activities, {results['opportunities']:,} opportunities and"
        f" {results['accounts']:,} accounts (as of {results['as_of']}; engine {results.get('commit', '?')})",
        "",
        f"Load (not HTTP; mapping {results['map_seconds']} s shared, then `upsert_records` in transactions of"
        f" {results['batch']:,}): {results['records_total']:,} records. Wall times include the commits."
        " KRs updated: the compute report's `recomputed` (whole, or only the evidence of the changed records).",
        "",
        "| database | load (s) | first full compute (s) | SQL share | then settled (s) |"
        " full again, evidence stored, own process (s) |"
        " peak RSS (MB) | evidence rows | hygiene findings |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for d in results["databases"]:
        full = d["full"]
        share = f"{full['sql_seconds'] / full['seconds']:.0%}" if full["seconds"] else "-"
        child = d.get("full_in_own_process", {})
        lines.append(
            f"| {d['database']} | {d['load_seconds']} | {full['seconds']} | {share} | {d.get('settle_seconds', '-')} |"
            f" {child.get('seconds', '-')} | {child.get('peak_rss_mb', '-')} | {full['evidence_rows']:,} |"
            f" {full['hygiene_findings']:,} |"
        )
    lines += [
        "",
        "Incremental compute of both mappings after each of N different changes, one at a time, each written as a"
        " sync writes it (seconds; KRs updated: the compute report's `recomputed`, p50 and max):",
        "",
        "| database | change | N | p50 (s) | p95 (s) | max (s) | KRs updated p50 / max |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for d in results["databases"]:
        for label, key in (("activity", "incremental_activity"), ("opportunity", "incremental_opportunity")):
            inc = d[key]
            lines.append(
                f"| {d['database']} | {label} | {inc.get('changes', 1)} | {inc.get('p50_seconds', inc['seconds'])} |"
                f" {inc.get('p95_seconds', '-')} | {inc.get('max_seconds', '-')} |"
                f" {inc.get('recomputed_p50', inc['recomputed'])} / {inc.get('recomputed_max', '-')} of {total} |"
            )
    if any("by_kind" in d for d in results["databases"]):
        lines += [
            "",
            "Floor beside okrsync, same run: per kind, the bare aggregates that give only the numbers (the same SQL,"
            " grouped per owner, no evidence written) over a copy of the activity table without the raw CRM payload,"
            " and okrsync's time for the same key results (or hygiene rules, KAM criteria) in the full compute:",
            "",
            "| database | kind | key results | floor (s) | okrsync (s) | okrsync / floor |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for d in results["databases"]:
            for k in d.get("by_kind", []):
                lines.append(
                    f"| {d['database']} | {k['kind']} | {k['key_results'] or '-'} | {k['floor_seconds']} |"
                    f" {k['okrsync_seconds']} | {k['ratio'] if k['ratio'] is not None else '-'} |"
                )
            floor = sum(k["floor_seconds"] for k in d.get("by_kind", []))
            okr = sum(k["okrsync_seconds"] for k in d.get("by_kind", []))
            if floor:
                lines.append(f"| {d['database']} | **all** | | {floor:.3f} | {okr:.3f} | {okr / floor:.1f} |")
    if any(d.get("evidence_pages") for d in results["databases"]):
        lines += [
            "",
            f"A page of 50 evidence rows as the API and the dashboard ask for it (`report.evidence`: count + page,"
            f" newest first), p50 / slowest of {PAGE_ROUNDS} rounds (ms):",
            "",
            "| database | key result | rows | owners | page | returned | p50 (ms) | max (ms) |",
            "|---|---|---:|---|---|---:|---:|---:|",
        ]
        for d in results["databases"]:
            for e in d.get("evidence_pages", []):
                lines.append(
                    f"| {d['database']} | {e['kr']} | {e['total']:,} | {e['owners']} | {e['page']} | {e['returned']} |"
                    f" {e['p50_ms']} | {e['max_ms']} |"
                )
    per_mapping = "; ".join(
        f"{d['database']}: " + ", ".join(f"{m['mapping']} {m['seconds']} s" for m in d["full"]["mappings"])
        for d in results["databases"]
    )
    lines += [
        "",
        f"Full compute per mapping (growth: activities, response times, KAM; pipeline: hygiene): {per_mapping}.",
    ]
    lines += ["", "Slowest statements of the full compute (total seconds, runs, key result or rule):", ""]
    for d in results["databases"]:
        for s in d["full"]["slowest"]:
            lines.append(
                f"- {d['database']}: {s['seconds']} s, {s['runs']} runs, {s['label'] or '-'}: `{s['sql'][:110]}…`"
            )
    same = results.get("sqlite_vs_postgresql")
    lines += [
        "",
        (
            f"SQLite vs PostgreSQL: {len(same['full'])} differing values after the full compute,"
            f" {len(same['after_incremental'])} after the incremental ones."
            if same
            else "One database only: not compared."
        )
        + "".join(
            f" {d['database']}: a full compute after the incremental ones changed"
            f" {len(d['incremental_differs_from_full'])} values."
            for d in results["databases"]
            if "incremental_differs_from_full" in d
        ),
        "",
        "Planner statistics at the start: "
        + "; ".join(
            f"{d['database']}: {d['statistics']}"
            + (
                f" (ANALYZE after the load, as a sync runs it: {d['analyze_seconds']} s)"
                if "analyze_seconds" in d
                else ""
            )
            for d in results["databases"]
        ),
        "Response time matched by contact: "
        + ("included (p90-response-contact)" if results.get("contact_match") else "left out (p90 matched by account)"),
    ]
    return "\n".join(lines)
