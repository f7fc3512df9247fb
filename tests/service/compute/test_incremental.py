"""An incremental recompute after a CRM change gives exactly what a full recompute gives.

The sandbox org is synced for real; a record is changed in the CRM, the incremental sync brings it over, and the
three example mappings are recomputed from what the sync wrote — then once more in full, and the stored results
(values, contributions, evidence, hygiene findings, KAM criteria) must be identical.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.salesforce.config import SalesforceConfig
from connectors.salesforce.connector import SalesforceConnector
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
from service.compute.service import changes_since_last, compute
from service.okrs import service as okrs
from service.okrs.models import OkrMapping
from service.sync.service import run_sync
from tests.conftest import ANCHOR

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "mappings" / "examples").glob("*.yaml"))


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


def _first(org: SandboxOrg, sobject: str, test: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    return next(r for r in org.records(sobject) if test(r))


def _open_opportunity(org: SandboxOrg) -> dict[str, Any]:
    return _first(org, "Opportunity", lambda r: not r["IsClosed"] and r["NextStep"])


def change_meeting(org: SandboxOrg) -> None:
    """A meeting moves to another account's open opportunity (counts, followed_by, no-activity rule)."""
    opp = _open_opportunity(org)
    meeting = _first(org, "Event", lambda r: r["AccountId"] != opp["AccountId"])
    org.update("Event", meeting["Id"], {"WhatId": opp["Id"], "AccountId": opp["AccountId"]})


def change_call_direction(org: SandboxOrg) -> None:
    """An outbound call turns out to have been an inbound inquiry (response times, contacted accounts)."""
    call = _first(org, "Task", lambda r: r["CallType"] == "Outbound")
    org.update("Task", call["Id"], {"CallType": "Inbound"})


def move_call(org: SandboxOrg) -> None:
    """An outbound call moves to another prospect account and to the quarter's first day: the credit for a
    distinct account moves to whoever called first now, on both accounts involved."""
    prospects = {a["Id"] for a in org.records("Account") if a["Type"] == "Prospect"}
    call = _first(org, "Task", lambda r: r["CallType"] == "Outbound" and r["AccountId"] in prospects)
    other = next(p for p in sorted(prospects) if p != call["AccountId"])
    stamp = "2026-07-01T19:00:00.000+0000"
    org.update("Task", call["Id"], {"AccountId": other, "WhatId": other, "CompletedDateTime": stamp})


def delete_task(org: SandboxOrg) -> None:
    task = _first(org, "Task", lambda r: r["Subject"] == "Update opportunity" and r["IsClosed"])
    org.delete("Task", task["Id"])


def change_opportunity(org: SandboxOrg) -> None:
    """Next step cleared and amount changed on a rep's open opportunity of this quarter (ratio, sum, hygiene)."""
    reps = {u["Id"] for u in org.records("User") if u["Title"] == "Account Executive"}
    opp = _first(
        org,
        "Opportunity",
        lambda r: not r["IsClosed"] and r["NextStep"] and r["OwnerId"] in reps and r["CreatedDate"] >= "2026-07-02",
    )
    org.update("Opportunity", opp["Id"], {"NextStep": None, "Amount": 123456.0, "PushCount": 5})


def insert_meeting(org: SandboxOrg) -> None:
    """A new prospect meeting, logged late for an earlier day (counts, followed_by, KAM contacts)."""
    event = _first(org, "Event", lambda r: True)
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


def remove_contact_role(org: SandboxOrg) -> None:
    role = _first(org, "OpportunityContactRole", lambda r: True)
    org.delete("OpportunityContactRole", role["Id"])


CHANGES = [
    change_meeting,
    change_call_direction,
    move_call,
    delete_task,
    change_opportunity,
    insert_meeting,
    remove_contact_role,
]


@pytest.mark.parametrize("change", CHANGES, ids=[c.__name__ for c in CHANGES])
def test_incremental_equals_full(
    engine: Engine, org: SandboxOrg, config: SalesforceConfig, change: Callable[[SandboxOrg], None]
) -> None:
    _sync(engine, config)
    mappings: list[OkrMapping] = []
    with Session(engine) as session:
        connection = okrs.resolve_connection(session, "salesforce/sandbox")
        for path in EXAMPLES:
            mapping, _ = okrs.apply(session, okrs.load_path(path), connection=connection, author="test", now=ANCHOR)
            compute(session, mapping=mapping, as_of=ANCHOR)
            mappings.append(mapping)
        session.commit()
        ids = [m.id for m in mappings]

    change(org)
    _sync(engine, config)

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
    with Session(engine) as session:
        for mapping_id in ids:
            mapping = session.get(OkrMapping, mapping_id)
            assert mapping is not None
            assert compute(session, mapping=mapping, as_of=ANCHOR).kind == "full"
            full = snapshot(session, mapping_id)
            for part, rows in full.items():
                assert incremental[mapping_id][part] == rows, f"{mapping.team} / {mapping.cycle}: {part} differ"
    if change is change_opportunity:
        # an opportunity change leaves activity-only key results alone
        assert "discovery-meetings" not in recomputed["Vertrieb DACHQ3 2026"]
        assert "new-pipeline" in recomputed["Vertrieb DACHQ3 2026"]
