"""An incremental recompute after a CRM change gives exactly what a full recompute gives.

The sandbox org is synced for real; a record is changed in the CRM, the incremental sync brings it over, and the
three example mappings are recomputed from what the sync wrote — then once more in full, and the stored results
(values, contributions, evidence, hygiene findings, KAM criteria) must be identical.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.connector import SalesforceConnector
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from service.compute.models import (
    HygieneFinding,
    HygieneSummary,
    KamAccountScore,
    KamCriterionResult,
    KeyResultContribution,
    KeyResultEvidence,
    KeyResultValue,
    ObjectiveValue,
)
from service.compute.service import KAM_EVIDENCE_KEY, changes_since_last, compute
from service.kit.db import make_engine
from service.kit.migrate import create_schema
from service.okrs import service as okrs
from service.okrs.models import OkrMapping
from service.sync.service import run_sync
from tests.conftest import ANCHOR, fast_config, small_org

pytestmark = pytest.mark.slow  # 22 cases, each syncs a sandbox org twice and computes every example twice

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "mappings" / "examples").glob("*.yaml"))
# beside the examples: response times whose inbound filter looks at the account, a count filtered by contact title
MAPPINGS = [*EXAMPLES, Path(__file__).with_name("inbound-customers.yaml")]


def _sync(engine: Engine, config: SalesforceConfig) -> None:
    run_sync(engine, SalesforceConnector(config), connection_name="sandbox", full=False)


def snapshot(session: Session, mapping_id: int) -> dict[str, Any]:
    def rows(model: Any, *fields: str) -> list[tuple[Any, ...]]:
        found = session.exec(select(model).where(model.mapping_id == mapping_id)).all()
        return sorted((tuple(getattr(r, f) for f in fields) for r in found), key=repr)

    return {
        "values": rows(KeyResultValue, "kr_key", "value", "records", "numerator", "denominator", "status", "detail"),
        "objectives": rows(ObjectiveValue, "objective_key", "progress", "status", "achieved"),
        "contributions": rows(KeyResultContribution, "kr_key", "owner_id", "value"),
        "evidence": rows(
            KeyResultEvidence, "kr_key", "part", "record_id", "related_id", "owner_id", "value", "occurred_at"
        ),
        "findings": rows(
            HygieneFinding, "opportunity_id", "rule_key", "detail_number", "detail_date", "detail_at", "detail_text"
        ),
        "summary": rows(HygieneSummary, "rule_key", "violations", "open_opportunities", "score"),
        "kam": rows(KamCriterionResult, "account_id", "criterion_key", "status", "measured"),
        "kam_scores": rows(KamAccountScore, "account_id", "score"),
    }


def _assert_same(incremental: dict[str, Any], full: dict[str, Any], where: str) -> None:
    """Every stored part of an incremental run equals the full recompute's, with the first differences named."""
    for part, rows in full.items():
        got = incremental[part]
        extra = [r for r in got if r not in rows][:3] + [r for r in rows if r not in got][:3]
        assert got == rows, f"{where}: {part} differ (first differences: {extra})"


def _compute_incrementally(engine: Engine, ids: list[int], as_of: datetime) -> None:
    """Each mapping computed from what the syncs wrote since its last computation, as the loop does, in one
    transaction: incremental, never full."""
    with Session(engine) as session:
        for mapping_id in ids:
            mapping = session.get(OkrMapping, mapping_id)
            assert mapping is not None
            changes = changes_since_last(session, mapping)
            assert changes is not None
            assert compute(session, mapping=mapping, as_of=as_of, changes=changes).kind == "incremental"
        session.commit()


def _first(org: SandboxOrg, sobject: str, test: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    return next(r for r in org.records(sobject) if test(r))


# Each change is picked so that it moves something okrsync computes (the test checks that it did): a record of a
# team member, inside the quarter, on the kind of account the key results look at.
CARE = ("anna.berger", "david.garcia", "katrin.lindqvist", "tobias.marchetti")  # the Key Accounts team


def _users(org: SandboxOrg, title: str | None = None, names: tuple[str, ...] = ()) -> set[str]:
    return {
        u["Id"]
        for u in org.records("User")
        if (title is None or u["Title"] == title) and (not names or u["Email"].split("@")[0] in names)
    }


def _prospects(org: SandboxOrg) -> set[str]:
    return {a["Id"] for a in org.records("Account") if a["Type"] == "Prospect"}


def _in_quarter(stamp: str | None) -> bool:
    return stamp is not None and "2026-07-01" <= stamp[:10] <= "2026-09-30"


def _open_opportunity(org: SandboxOrg, test: Callable[[dict[str, Any]], bool] = lambda r: True) -> dict[str, Any]:
    return _first(org, "Opportunity", lambda r: not r["IsClosed"] and r["NextStep"] and test(r))


def change_meeting(org: SandboxOrg) -> None:
    """A rep's prospect meeting moves to a customer's open opportunity (counts, followed_by, no-activity rule)."""
    prospects, reps = _prospects(org), _users(org, "Account Executive")
    opp = _open_opportunity(org, lambda r: r["AccountId"] not in prospects)
    meeting = _first(
        org,
        "Event",
        lambda r: r["AccountId"] in prospects and r["OwnerId"] in reps and _in_quarter(r["StartDateTime"]),
    )
    org.update("Event", meeting["Id"], {"WhatId": opp["Id"], "AccountId": opp["AccountId"]})


def change_call_direction(org: SandboxOrg) -> None:
    """An outbound call turns out to have been an inbound inquiry (response times, contacted accounts)."""
    care = _users(org, names=CARE)
    call = _first(
        org, "Task", lambda r: r["CallType"] == "Outbound" and r["OwnerId"] in care and _in_quarter(r["ActivityDate"])
    )
    org.update("Task", call["Id"], {"CallType": "Inbound"})


def move_call(org: SandboxOrg) -> None:
    """An outbound call moves to another prospect account and to the quarter's first day: the credit for a
    distinct account moves to whoever called first now, on both accounts involved."""
    prospects, reps = _prospects(org), _users(org, "Account Executive")
    call = _first(
        org,
        "Task",
        lambda r: r["CallType"] == "Outbound" and r["AccountId"] in prospects and r["OwnerId"] in reps
        and _in_quarter(r["ActivityDate"]),
    )  # fmt: skip
    other = next(p for p in sorted(prospects) if p != call["AccountId"])
    stamp = "2026-07-01T00:00:01.000+0000"  # before any other activity of the quarter
    org.update("Task", call["Id"], {"AccountId": other, "WhatId": other, "CompletedDateTime": stamp})


def delete_task(org: SandboxOrg) -> None:
    """An opportunity update logged in the hygiene sprint is deleted (a sprint-window count)."""
    reps = _users(org, "Account Executive")
    task = _first(
        org,
        "Task",
        lambda r: r["Subject"] == "Update opportunity" and r["IsClosed"] and r["OwnerId"] in reps
        and "2026-09-14" <= (r["ActivityDate"] or "") <= "2026-09-25",
    )  # fmt: skip
    org.delete("Task", task["Id"])


def change_opportunity(org: SandboxOrg) -> None:
    """Next step cleared and amount changed on a rep's open opportunity of this quarter (ratio, sum, hygiene)."""
    reps = _users(org, "Account Executive")
    opp = _open_opportunity(org, lambda r: r["OwnerId"] in reps and r["CreatedDate"] >= "2026-07-02")
    org.update("Opportunity", opp["Id"], {"NextStep": None, "Amount": 123456.0, "PushCount": 5})


def insert_meeting(org: SandboxOrg) -> None:
    """A new prospect meeting, logged late for an earlier day (counts, followed_by, KAM contacts)."""
    prospects, reps = _prospects(org), _users(org, "Account Executive")
    event = _first(org, "Event", lambda r: r["AccountId"] in prospects and r["OwnerId"] in reps)
    start = "2026-09-10T09:00:00.000+0000"
    org.insert(
        "Event",
        {
            **{k: event[k] for k in ("OwnerId", "WhoId", "WhatId", "AccountId", "Type", "EventSubtype")},
            "Subject": "Discovery meeting",
            "StartDateTime": start,
            "ActivityDateTime": start,
            "EndDateTime": "2026-09-10T10:00:00.000+0000",
            "DurationInMinutes": 60,
        },
    )


QUIET_SINCE = "2026-09-09"  # ANCHOR's day minus the pipeline-hygiene example's 21 days of no_activity


def call_on_a_quiet_opportunity(org: SandboxOrg) -> None:
    """A rep logs a call on an open opportunity nobody touched for 21 days: its no-activity finding goes. Only an
    activity changed, so only the rules that read activities are rechecked; the opportunity's other findings stay."""
    reps = _users(org, "Account Executive")
    recent = {
        r["WhatId"]
        for sobject in ("Task", "Event")
        for r in org.records(sobject)
        if (r.get("ActivityDate") or r.get("StartDateTime") or "")[:10] >= QUIET_SINCE
    }
    opp = _first(
        org,
        "Opportunity",
        lambda r: not r["IsClosed"] and r["OwnerId"] in reps and r["Id"] not in recent
        and (r["LastActivityDate"] or "") < QUIET_SINCE,
    )  # fmt: skip
    stamp = "2026-09-28T14:00:00.000+0000"
    org.insert(
        "Task",
        {
            "OwnerId": opp["OwnerId"], "WhatId": opp["Id"], "AccountId": opp["AccountId"], "WhoId": None,
            "Subject": "Follow-up call", "TaskSubtype": "Call", "Type": "Call", "CallType": "Outbound",
            "CallDisposition": "Connected", "CallDurationInSeconds": 300, "ActivityDate": "2026-09-28",
            "CompletedDateTime": stamp, "Status": "Completed", "IsClosed": True, "Priority": "Normal",
            "Description": None,
        },
    )  # fmt: skip


def prospect_becomes_customer(org: SandboxOrg) -> None:
    """A prospect with an inbound inquiry becomes a customer: its inquiries now count for the customer response
    times (an account change alone, no activity changed)."""
    prospects, care = _prospects(org), _users(org, names=CARE)
    call = _first(
        org,
        "Task",
        lambda r: r["CallType"] == "Inbound" and r["AccountId"] in prospects and r["OwnerId"] in care
        and _in_quarter(r["ActivityDate"]),
    )  # fmt: skip
    org.update("Account", call["AccountId"], {"Type": "Customer - Direct"})


def inquiry_moves_to_a_customer(org: SandboxOrg) -> None:
    """An inbound call on a prospect was really from a customer: it moves accounts (the inquiries of both accounts
    change; the response times are recomputed for those two accounts only)."""
    accounts = {a["Id"]: a["Type"] for a in org.records("Account")}
    care = _users(org, names=CARE)
    call = _first(
        org,
        "Task",
        lambda r: r["CallType"] == "Inbound" and accounts.get(r["AccountId"]) == "Prospect" and r["OwnerId"] in care
        and _in_quarter(r["ActivityDate"]),
    )  # fmt: skip
    customer = next(a for a, kind in sorted(accounts.items()) if kind.startswith("Customer"))
    org.update("Task", call["Id"], {"AccountId": customer, "WhatId": customer})


def contact_promoted(org: SandboxOrg) -> None:
    """The contact of a call by the Key Accounts team becomes CFO (calls and meetings with executives: a contact
    change reaches the activities linked to the contact only)."""
    executives, care = {"CEO", "CFO", "CTO"}, _users(org, names=CARE)
    titles = {c["Id"]: c["Title"] for c in org.records("Contact")}
    call = _first(
        org,
        "Task",
        lambda r: r["TaskSubtype"] == "Call" and r["OwnerId"] in care and _in_quarter(r["ActivityDate"])
        and r["WhoId"] in titles and titles[r["WhoId"]] not in executives,
    )  # fmt: skip
    org.update("Contact", call["WhoId"], {"Title": "CFO"})


def opportunity_moves_account(org: SandboxOrg) -> None:
    """An opportunity that followed prospect meetings moves to another prospect account with meetings: the meetings
    it followed lose it (credit to a later opportunity or none), those of the new account may gain it."""
    prospects = _prospects(org)
    meetings: dict[str, list[str]] = {}
    for event in org.records("Event"):
        meetings.setdefault(event["AccountId"], []).append(event["StartDateTime"])

    def followed(opp: dict[str, Any]) -> bool:  # a meeting on its account in the 60 days before it was created
        created = opp["CreatedDate"]
        return any("2026-07-01" <= m < created and m[:10] >= "2026-07-01" for m in meetings.get(opp["AccountId"], []))

    opp = _first(
        org, "Opportunity", lambda r: r["AccountId"] in prospects and _in_quarter(r["CreatedDate"]) and followed(r)
    )
    target = next(a for a in sorted(prospects) if a != opp["AccountId"] and meetings.get(a))
    org.update("Opportunity", opp["Id"], {"AccountId": target, "StageName": "Needs Analysis"})


def remove_contact_role(org: SandboxOrg) -> None:
    """A contact role leaves a rep's open opportunity (multi-threading rule, contacts on open deals)."""
    reps = _users(org, "Account Executive")
    open_opps = {o["Id"] for o in org.records("Opportunity") if not o["IsClosed"] and o["OwnerId"] in reps}
    role = _first(org, "OpportunityContactRole", lambda r: r["OpportunityId"] in open_opps)
    org.delete("OpportunityContactRole", role["Id"])


def lead_answered(org: SandboxOrg) -> None:
    """A rep calls a lead nobody had answered yet (speed to lead)."""
    answered = {t["WhoId"] for t in org.records("Task") if (t["WhoId"] or "").startswith("00Q")}
    lead = _first(
        org, "Lead", lambda r: not r["IsConverted"] and r["Id"] not in answered and _in_quarter(r["CreatedDate"])
    )
    org.insert(
        "Task",
        {
            "Subject": "First call", "TaskSubtype": "Call", "Type": "Call", "CallType": "Outbound",
            "Status": "Completed", "IsClosed": True, "OwnerId": lead["OwnerId"], "WhoId": lead["Id"],
            "ActivityDate": "2026-09-29", "CompletedDateTime": "2026-09-29T09:00:00.000+0000",
            "CallDurationInSeconds": 300,
        },
    )  # fmt: skip


def lead_converted(org: SandboxOrg) -> None:
    """An open lead is converted into a contact of an account with activities (speed to lead, leads converted)."""
    lead = _first(org, "Lead", lambda r: not r["IsConverted"] and _in_quarter(r["CreatedDate"]))
    contact = _first(org, "Contact", lambda r: bool(r["AccountId"]))
    org.update(
        "Lead",
        lead["Id"],
        {
            "IsConverted": True, "Status": "Closed - Converted", "ConvertedDate": "2026-09-29",
            "ConvertedContactId": contact["Id"], "ConvertedAccountId": contact["AccountId"],
        },
    )  # fmt: skip


HYGIENE_TEAM = ("anna.berger", "david.garcia", "greta.lang", "jonas.quinn", "mia.vogel", "paul.costa",
                "tara.hoffmann", "wim.moreau")  # pipeline-hygiene.yaml's team  # fmt: skip
DAY_START = datetime.combine(ANCHOR.date(), time.min, tzinfo=UTC)  # hygiene counts days in stage up to it
MOVED_AT = "2026-09-29T09:00:00.000+0000"  # a stage change of yesterday: 0.625 days in the new stage then


def _sf_time(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z")


def stage_ages(org: SandboxOrg) -> dict[str, dict[str, float]]:
    """By hand: days in stage at ANCHOR's day start of the hygiene team's open opportunities, by stage and id."""
    team = _users(org, names=HYGIENE_TEAM)
    ages: dict[str, dict[str, float]] = {}
    for r in org.records("Opportunity"):
        if not r["IsClosed"] and r["OwnerId"] in team and r["LastStageChangeDate"]:
            days = (DAY_START - _sf_time(r["LastStageChangeDate"])).total_seconds() / 86400
            ages.setdefault(r["StageName"] or "", {})[r["Id"]] = days
    return ages


def stuck_beside_a_stage_change(org: SandboxOrg) -> str:
    """An opportunity moves from one stage to another (both stages' medians move), and in the same sync another,
    in a third stage, turns out to have entered it long ago: older than twice its stage's median, which it does not
    move (it was above the middle before). The stuck-vs-team rule rechecks the two moved stages whole, must still
    see the third stage's changed opportunity, and must keep the findings of stages it did not recheck: the two
    stages are picked among those without a stuck opportunity where the data allow. Returns the id of the one that
    becomes stuck."""
    ages = stage_ages(org)
    medians = {stage: statistics.median(by_id.values()) for stage, by_id in ages.items()}
    stuck_ids = _stuck(ages)
    stuck = {stage: bool(stuck_ids & set(by_id)) for stage, by_id in ages.items()}
    by_size = sorted(ages, key=lambda s: (-len(ages[s]), s))
    for third in by_size:
        ordered = sorted(ages[third].items(), key=lambda item: (item[1], item[0]))
        above = [i for i, d in ordered[len(ordered) // 2 + 1 :] if d <= 2 * medians[third]]  # not stuck yet
        if above:
            stuck_id = above[0]
            break
    else:
        raise AssertionError("no stage has an opportunity above its median and not yet stuck")
    entered = DAY_START - timedelta(days=2 * medians[third] + 5)
    org.update("Opportunity", stuck_id, {"LastStageChangeDate": entered.strftime("%Y-%m-%dT%H:%M:%S.000+0000")})
    pairs = [
        (source, target)
        for source in sorted(by_size, key=lambda s: stuck[s])  # stable: the stages without a stuck one first
        for target in sorted(by_size, key=lambda s: stuck[s])
        if len({source, target, third}) == 3 and source and target and len(ages[source]) > 1
    ]
    moved_age = (DAY_START - _sf_time(MOVED_AT)).total_seconds() / 86400
    for source, target in pairs:
        mover = min(ages[source], key=lambda i: (ages[source][i], i))  # the youngest
        rest = [d for i, d in ages[source].items() if i != mover]
        if (
            statistics.median(rest) != medians[source]
            and statistics.median([*ages[target].values(), moved_age]) != medians[target]
        ):
            org.update("Opportunity", mover, {"StageName": target, "LastStageChangeDate": MOVED_AT})
            return stuck_id
    raise AssertionError("no move of one opportunity moves the medians of two stages")


def _stuck(ages: dict[str, dict[str, float]]) -> set[str]:
    """By hand: the opportunities older in their stage than twice its median (the stuck-vs-team rule)."""
    out: set[str] = set()
    for by_id in ages.values():
        limit = 2 * statistics.median(by_id.values())
        out |= {i for i, days in by_id.items() if days > limit}
    return out


def young_deals_join_a_stage(org: SandboxOrg) -> set[str]:
    """The youngest opportunities of other stages move into a stage that has a stuck opportunity, until its median
    falls so far that opportunities nobody touched are stuck now (the median's recheck must find them; the one stuck
    before stays stuck). Returns the ids moved."""
    ages = stage_ages(org)
    stuck = _stuck(ages)
    stage = max((s for s in ages if s and stuck & set(ages[s])), key=lambda s: (len(ages[s]), s))
    moved: set[str] = set()
    while not (_stuck(ages) - stuck - moved) & set(ages[stage]):
        source = min((s for s in ages if s != stage and len(ages[s]) > 1), key=lambda s: (min(ages[s].values()), s))
        mover = min(ages[source], key=lambda i: (ages[source][i], i))
        org.update("Opportunity", mover, {"StageName": stage, "LastStageChangeDate": MOVED_AT})
        moved.add(mover)
        ages = stage_ages(org)
        assert len(moved) <= 5, "five young opportunities did not pull the median down far enough"
    return moved


def young_deals_leave_a_stage(org: SandboxOrg) -> set[str]:
    """The youngest opportunities of a stage with a stuck opportunity move to another stage, until its median rises
    so far that a stuck opportunity nobody touched is stuck no longer. Returns the ids moved."""
    ages = stage_ages(org)
    stuck = _stuck(ages)
    stage = max((s for s in ages if s and stuck & set(ages[s])), key=lambda s: (len(ages[s]), s))
    target = max((s for s in ages if s and s != stage), key=lambda s: (len(ages[s]), s))
    moved: set[str] = set()
    while not stuck & set(ages[stage]) - _stuck(ages):
        mover = min(ages[stage], key=lambda i: (ages[stage][i], i))
        assert mover not in stuck and len(moved) < 5, "the stage's young opportunities ran out"
        org.update("Opportunity", mover, {"StageName": target, "LastStageChangeDate": MOVED_AT})
        moved.add(mover)
        ages = stage_ages(org)
    return moved


def _moved_medians(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> set[str]:
    """By hand: the stages whose median days in stage differ (a stage with no opportunity left has none)."""

    def median(ages: dict[str, dict[str, float]], stage: str) -> float | None:
        return statistics.median(ages[stage].values()) if ages.get(stage) else None

    return {s for s in {*before, *after} if median(before, s) != median(after, s)}


CHANGES = [
    lead_answered,
    lead_converted,
    change_meeting,
    change_call_direction,
    move_call,
    delete_task,
    change_opportunity,
    insert_meeting,
    call_on_a_quiet_opportunity,
    remove_contact_role,
    prospect_becomes_customer,
    inquiry_moves_to_a_customer,
    contact_promoted,
    opportunity_moves_account,
    stuck_beside_a_stage_change,
    young_deals_join_a_stage,
    young_deals_leave_a_stage,
]


@pytest.mark.parametrize("change", CHANGES, ids=[c.__name__ for c in CHANGES])
def test_incremental_equals_full(
    engine: Engine, org: SandboxOrg, config: SalesforceConfig, change: Callable[[SandboxOrg], object]
) -> None:
    _sync(engine, config)
    mappings: list[OkrMapping] = []
    with Session(engine) as session:
        connection = okrs.resolve_connection(session, "salesforce/sandbox")
        for path in MAPPINGS:
            mapping, _ = okrs.apply(session, okrs.load_path(path), connection=connection, author="test", now=ANCHOR)
            compute(session, mapping=mapping, as_of=ANCHOR)
            mappings.append(mapping)
        session.commit()
        ids = [m.id for m in mappings]
        before = {mapping_id: snapshot(session, mapping_id) for mapping_id in ids if mapping_id is not None}

    ages = stage_ages(org)
    changed = change(org)
    _sync(engine, config)
    if change is stuck_beside_a_stage_change:  # two stages' medians moved, not the stuck one's
        moved = _moved_medians(ages, stage_ages(org))
        stage = next(s for s, by_id in ages.items() if changed in by_id)
        assert len(moved) == 2 and stage not in moved, (moved, stage)

    recomputed: dict[str, list[str]] = {}
    with Session(engine) as session:
        incremental = {}
        for mapping_id in ids:
            mapping = session.get(OkrMapping, mapping_id)
            assert mapping is not None
            changes = changes_since_last(session, mapping)
            assert changes is not None and changes.kinds(), "the sync wrote something"
            report = compute(session, mapping=mapping, as_of=ANCHOR, changes=changes)
            assert report.kind == "incremental"
            recomputed[mapping.team + mapping.cycle] = report.recomputed
            incremental[mapping_id] = snapshot(session, mapping_id)
        session.commit()
    assert any(  # the change moved some evidence, finding or KAM result: the comparison below is not vacuous
        incremental[i][part] != before[i][part] for i in before for part in ("evidence", "findings", "kam")
    ), "the change altered nothing okrsync computes"
    with Session(engine) as session:
        for mapping_id in ids:
            mapping = session.get(OkrMapping, mapping_id)
            assert mapping is not None
            assert compute(session, mapping=mapping, as_of=ANCHOR).kind == "full"
            _assert_same(incremental[mapping_id], snapshot(session, mapping_id), f"{mapping.team} / {mapping.cycle}")
    if change is call_on_a_quiet_opportunity:  # the case this change is for: a finding moved on an activity alone
        assert any(incremental[i]["findings"] != before[i]["findings"] for i in before), "no finding moved"
    if change is stuck_beside_a_stage_change:  # the opportunity in the stage whose median stayed is stuck now
        stuck = [f for i in before for f in incremental[i]["findings"] if f[:2] == (changed, "stuck-vs-team")]
        assert stuck and not [f for i in before for f in before[i]["findings"] if f[:2] == (changed, "stuck-vs-team")]
        # and findings in stages whose median stayed were there to keep (detail_text: the stage)
        assert [f for i in before for f in before[i]["findings"] if f[1] == "stuck-vs-team" and f[-1] not in moved]
    if change in (young_deals_join_a_stage, young_deals_leave_a_stage):  # untouched ones move with the median

        def stuck(snapshots: dict[int, dict[str, Any]]) -> set[str]:
            return {f[0] for i in before for f in snapshots[i]["findings"] if f[1] == "stuck-vs-team"}

        assert (stuck(incremental) - stuck(before) if change is young_deals_join_a_stage else
                stuck(before) - stuck(incremental)) - changed  # fmt: skip
    if change is prospect_becomes_customer:  # the account's type is what the inbound filters look at
        assert {"customers-answered-4h", "customer-p90"} <= set(recomputed["Customer InquiriesQ3 2026"])
    if change is change_opportunity:
        # an opportunity change leaves activity-only key results alone
        assert "discovery-meetings" not in recomputed["Vertrieb DACHQ3 2026"]
        assert "new-pipeline" in recomputed["Vertrieb DACHQ3 2026"]


# ------------------------------------------------------------------------------------- later the same day

MORNING = ANCHOR.replace(hour=0, minute=5)  # the day's first computation; the org's records run up to ANCHOR (18:00)
LATER = [ANCHOR.replace(hour=11, minute=30), ANCHOR.replace(hour=15, minute=5), ANCHOR]


def _dated_after_morning(org: SandboxOrg) -> int:
    """Activities dated between the morning's computation and the evening (a meeting planned for the afternoon)."""
    stamp = MORNING.strftime("%Y-%m-%dT%H:%M")
    end = ANCHOR.strftime("%Y-%m-%dT%H:%M")
    dated = [r.get("StartDateTime") or r.get("CompletedDateTime") for s in ("Event", "Task") for r in org.records(s)]
    return sum(1 for d in dated if d and stamp < d[:16] <= end)


def meeting_on_the_kam_days_edge(org: SandboxOrg) -> None:
    """A key-account manager's meeting with a new contact of a key account, 90 days before 16:00 of the evening
    (the customer-care example's three-contacts criterion counts the last 90 days): inside those days at 11:30
    and 15:05, outside at 18:00."""
    account = _first(org, "Account", lambda r: bool(r["Key_Account__c"]))
    owner = next(iter(sorted(_users(org, names=CARE))))
    contact = org.insert(
        "Contact",
        {"FirstName": "Edge", "LastName": "Case", "Name": "Edge Case", "Email": "edge.case@example.com",
         "Title": "CFO", "AccountId": account["Id"], "OwnerId": owner},
    )  # fmt: skip
    start = (ANCHOR.replace(hour=16) - timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    end = (ANCHOR.replace(hour=17) - timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    org.insert(
        "Event",
        {"OwnerId": owner, "WhoId": contact["Id"], "WhatId": account["Id"], "AccountId": account["Id"],
         "Type": "Meeting", "EventSubtype": "Event", "Subject": "Account review", "StartDateTime": start,
         "ActivityDateTime": start, "EndDateTime": end, "DurationInMinutes": 60},
    )  # fmt: skip


def records_dated_this_afternoon(org: SandboxOrg) -> None:
    """An opportunity and a lead imported with their creation at 14:00 and 14:30 (a migration that sets the audit
    fields): synced before 11:30, they count from the 15:05 run on (new opportunities, pipeline, speed to lead). And
    a meeting planned from 14:30 to 16:30: counted by its end (a test mapping's meetings-ended), from 18:00 on."""
    care = sorted(_users(org, names=CARE))
    account = _first(org, "Account", lambda r: bool(r["Key_Account__c"]))
    org.insert(
        "Event",
        {"OwnerId": care[0], "WhatId": account["Id"], "AccountId": account["Id"], "Type": "Meeting",
         "EventSubtype": "Event", "Subject": "Workshop", "StartDateTime": "2026-09-30T14:30:00.000+0000",
         "ActivityDateTime": "2026-09-30T14:30:00.000+0000", "EndDateTime": "2026-09-30T16:30:00.000+0000",
         "DurationInMinutes": 120},
    )  # fmt: skip
    reps = sorted(_users(org, "Account Executive"))
    opp = _open_opportunity(org, lambda r: r["OwnerId"] in reps and r["CreatedDate"] >= "2026-07-02")
    org.insert(
        "Opportunity",
        {**{k: opp[k] for k in ("AccountId", "OwnerId", "StageName", "CloseDate", "Amount", "Probability")},
         "Name": "Imported this afternoon", "NextStep": "Call back", "CreatedDate": "2026-09-30T14:00:00.000+0000"},
    )  # fmt: skip
    org.insert(
        "Lead",
        {"FirstName": "Late", "LastName": "Lead", "Name": "Late Lead", "Email": "late.lead@example.org",
         "Company": "Afternoon GmbH", "Status": "Open - Not Contacted", "LeadSource": "Web", "OwnerId": reps[0],
         "IsConverted": False, "CreatedDate": "2026-09-30T14:30:00.000+0000"},
    )  # fmt: skip


def opportunity_reaches_its_stage_days(org: SandboxOrg) -> None:
    """An open opportunity entered its stage on 1 August at 13:00: 60 days in it by the clock from 13:00 on the
    30th, but hygiene counts days to the day's start (59.46 days): stuck on no run of the day, the full one at 18:00
    included (the pipeline-hygiene example's 60 days)."""
    reps = _users(org, "Account Executive")
    opp = _open_opportunity(org, lambda r: r["OwnerId"] in reps)
    org.update("Opportunity", opp["Id"], {"LastStageChangeDate": "2026-08-01T13:00:00.000+0000"})


@pytest.mark.parametrize(
    "change",
    [
        None,
        change_meeting,
        change_opportunity,
        meeting_on_the_kam_days_edge,
        records_dated_this_afternoon,
        opportunity_reaches_its_stage_days,
    ],
    ids=["time only", "meeting", "opp", "kam edge", "dated this afternoon", "stage days"],
)
def test_incremental_later_that_day_equals_full(
    engine: Engine, org: SandboxOrg, config: SalesforceConfig, change: Callable[[SandboxOrg], None] | None
) -> None:
    """The day's first computation runs at 00:05; incremental ones follow at 11:30, 15:05 and 18:00 (a webhook
    each, ``change`` synced before the first of them): what they leave equals a full computation at 18:00. Records
    dated in between start to count, unanswered inquiries wait longer and a KAM criterion's last N days move on,
    without any sync writing a record; hygiene, counted to the day's start, stays as it was."""
    assert _dated_after_morning(org) > 0, "the org has activities dated after the morning: the case is not vacuous"
    _sync(engine, config)
    with Session(engine) as session:
        connection = okrs.resolve_connection(session, "salesforce/sandbox")
        ids: list[int] = []
        for path in MAPPINGS:
            mapping, _ = okrs.apply(session, okrs.load_path(path), connection=connection, author="test", now=MORNING)
            assert compute(session, mapping=mapping, as_of=MORNING).kind == "full"
            assert mapping.id is not None
            ids.append(mapping.id)
        session.commit()
        morning = {i: snapshot(session, i) for i in ids}
    if change is not None:
        change(org)
        _sync(engine, config)
    for as_of in LATER:
        _compute_incrementally(engine, ids, as_of)
    with Session(engine) as session:
        incremental = {i: snapshot(session, i) for i in ids}
        for part in ("values", "evidence"):  # time alone moved each of them
            assert any(incremental[i][part] != morning[i][part] for i in ids), f"nothing in {part} moved"
        if change is None:  # hygiene counts days to the day's start: time alone moves no finding within the day
            assert all(incremental[i]["findings"] == morning[i]["findings"] for i in ids)
        kam_rows = [
            {r for i in ids for r in snap[i]["evidence"] if r[0] == KAM_EVIDENCE_KEY} for snap in (morning, incremental)
        ]
        assert kam_rows[0] != kam_rows[1], "no activity entered or left a KAM criterion's days"
        for mapping_id in ids:
            mapping = session.get(OkrMapping, mapping_id)
            assert mapping is not None
            assert compute(session, mapping=mapping, as_of=ANCHOR).kind == "full"
            _assert_same(incremental[mapping_id], snapshot(session, mapping_id), f"{mapping.team} at 18:00")


# ------------------------------------------------------------------------------- random sequences of changes

SEQUENCE_START = ANCHOR.replace(hour=9)  # the first computation; the steps follow it by minutes, within the day
SEQUENCE_EXAMPLES = 6  # each example syncs a fresh org and computes every mapping once per step: ~10 s each


@settings(
    max_examples=SEQUENCE_EXAMPLES,
    derandomize=True,  # the same sequences on every run and machine
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    steps=st.lists(st.tuples(st.sampled_from(CHANGES), st.integers(min_value=0, max_value=150)), min_size=2, max_size=4)
)
def test_incremental_equals_full_after_a_sequence_of_changes(
    steps: list[tuple[Callable[[SandboxOrg], None], int]],
) -> None:
    """Several changes, each synced and followed by an incremental compute on top of the last incremental one
    (as webhooks bring them), each some minutes after the last (0 to 150, from 09:00 on, the same day), then a full
    recompute at the last one's time: the stored results must be identical. A change that finds no record left to
    change (e.g. the second conversion of the only open lead) is skipped."""
    as_of = SEQUENCE_START
    with tempfile.TemporaryDirectory(prefix="okrsync-sequence-") as tmp:
        org = small_org()
        engine = make_engine(f"sqlite:///{Path(tmp) / 'okrsync.db'}")
        create_schema(engine)
        try:
            with SandboxServer(org, cert_dir=Path(tmp) / "sandbox") as server:
                config = fast_config(server)
                _sync(engine, config)
                with Session(engine) as session:
                    connection = okrs.resolve_connection(session, "salesforce/sandbox")
                    ids: list[int] = []
                    for path in MAPPINGS:
                        loaded = okrs.load_path(path)
                        mapping, _ = okrs.apply(session, loaded, connection=connection, author="test", now=ANCHOR)
                        compute(session, mapping=mapping, as_of=as_of)
                        assert mapping.id is not None
                        ids.append(mapping.id)
                    session.commit()
                for step, minutes in steps:
                    as_of += timedelta(minutes=minutes)
                    try:
                        step(org)
                    except StopIteration:
                        continue
                    _sync(engine, config)
                    _compute_incrementally(engine, ids, as_of)
            with Session(engine) as session:
                incremental = {i: snapshot(session, i) for i in ids}
                for mapping_id in ids:
                    mapping = session.get(OkrMapping, mapping_id)
                    assert mapping is not None
                    assert compute(session, mapping=mapping, as_of=as_of).kind == "full"
                    names = [(s.__name__, m) for s, m in steps]
                    _assert_same(
                        incremental[mapping_id], snapshot(session, mapping_id), f"after {names}: {mapping.team}"
                    )
        finally:
            engine.dispose()
