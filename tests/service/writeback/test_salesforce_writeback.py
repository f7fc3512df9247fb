"""Write-back to the sandbox Salesforce org, end to end: sync → compute → stage → simple-salesforce over HTTPS.

The org's custom objects come from deploy/salesforce; every value read back is compared with the computed tables.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import sqlmodel
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.writer import SalesforceWriter
from service.compute.models import (
    HygieneFinding,
    KamCriterionResult,
    KeyResultValue,
    ObjectiveValue,
)
from service.okrs import service as okrs
from service.sync.service import run_sync
from service.writeback.service import send
from service.writeback.staging import mapping_prefix
from tests.conftest import fast_config
from tests.service.writeback.world import (
    SalesforceWorld,
    apply_examples,
    connection,
    deployed_org,
    log_counted_meeting,
    recompute,
    start_salesforce,
)

pytestmark = pytest.mark.slow  # every test syncs, computes and writes back a sandbox org end to end

EXAMPLES = ("acquisition", "customer-care", "pipeline-hygiene")


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> Iterator[SalesforceWorld]:
    with ExitStack() as stack:
        yield start_salesforce(stack, engine, tmp_path, deployed_org(), fast_config)


def writer(world: SalesforceWorld, **options: object) -> SalesforceWriter:
    return SalesforceWriter(fast_config(world.server), **options)  # type: ignore[arg-type]


def by_key(world: SalesforceWorld, sobject: str) -> dict[str, dict]:
    rows = world.org.records(sobject)
    keys = Counter(r["Okrsync_Id__c"] for r in rows)
    assert not [k for k, n in keys.items() if n > 1], f"{sobject}: an okrsync id was written twice"
    return {r["Okrsync_Id__c"]: r for r in rows}


def conn_id(engine: Engine) -> int:
    with Session(engine) as session:
        return connection(session, "salesforce").id or 0


def test_the_org_holds_exactly_the_computed_values(world: SalesforceWorld) -> None:
    staged = apply_examples(world.engine, "salesforce", EXAMPLES)
    report = send(world.engine, writer(world), connection_id=conn_id(world.engine))
    assert not report.problems and report.stopped is None
    assert report.written == staged.total() and report.written > 300
    # 200 records per call at most: the calls are the minimum for the records written
    minimum = sum(-(-n // 200) for n in staged.staged.values())
    assert (
        report.api_calls == minimum == world.org.api_calls["composite_upsert"] + world.org.api_calls["composite_update"]
    )

    objectives = by_key(world, "OKR_Objective__c")
    krs = by_key(world, "OKR_Key_Result__c")
    with Session(world.engine) as session:
        mappings = {m.id: m for m in okrs.mappings(session)}
        for row in session.exec(sqlmodel.select(ObjectiveValue)).all():
            written = objectives[f"{mapping_prefix(mappings[row.mapping_id])}/{row.objective_key}"]
            assert written["Progress__c"] == round(row.progress * 100, 1)
            assert (written["Status__c"], written["Achieved__c"]) == (row.status, row.achieved)
        kr_values = list(session.exec(sqlmodel.select(KeyResultValue)).all())
        for row in kr_values:
            written = krs[f"{mapping_prefix(mappings[row.mapping_id])}/{row.kr_key}"]
            assert written["Value__c"] == (round(row.value, 4) if row.value is not None else None), row.kr_key
            assert written["Progress__c"] == (round(row.progress * 100, 1) if row.progress is not None else None)
            assert (written["Status__c"], written["Records__c"]) == (row.status, row.records)
            parent = objectives[f"{mapping_prefix(mappings[row.mapping_id])}/{row.objective_key}"]
            assert written["Objective__c"] == parent["Id"]  # the lookup resolved from the external id
        assert len(krs) == len(kr_values)

        # contributions: for a plain count, what the records contributed adds up to the team's value
        contributions = world.org.records("OKR_Contribution__c")
        kr_ids = {r["Id"]: key for key, r in krs.items()}
        per_kr = Counter()
        for row in contributions:
            per_kr[kr_ids[row["Key_Result__c"]]] += row["Records__c"]
            assert row["Opportunity__c"] or row["Account__c"]
        discovery = next(v for v in kr_values if v.kr_key == "discovery-meetings")
        assert per_kr[f"{mapping_prefix(mappings[discovery.mapping_id])}/discovery-meetings"] == discovery.records

        criteria = by_key(world, "KAM_Criterion__c")
        results = list(session.exec(sqlmodel.select(KamCriterionResult)).all())
        assert len(criteria) == len(results) > 0
        for result in results:
            written = criteria[
                f"{mapping_prefix(mappings[result.mapping_id])}/{result.account_id}/{result.criterion_key}"
            ]
            assert (written["Account__c"], written["Status__c"]) == (result.account_id, result.status)

        findings = Counter(f.opportunity_id for f in session.exec(sqlmodel.select(HygieneFinding)).all())
    flagged = {o["Id"]: o for o in world.org.records("Opportunity") if o.get("OKR_Hygiene_Checked__c")}
    assert findings and set(findings) <= set(flagged)
    for opportunity_id, opportunity in flagged.items():
        issues = opportunity["OKR_Hygiene_Issues__c"]
        assert len(issues.splitlines() if issues else []) == findings.get(opportunity_id, 0)
        assert (opportunity["OKR_Hygiene_Score__c"] == 100.0) == (opportunity_id not in findings)

    # nothing changed in the CRM: a second pass stages nothing and makes no call
    again = recompute(world.engine, "salesforce")
    calls = world.org.api_calls_total
    second = send(world.engine, writer(world), connection_id=conn_id(world.engine))
    assert again.total() == 0 and second.api_calls == 0 and world.org.api_calls_total == calls
    assert "nothing had changed" in second.summary()


def test_a_new_meeting_writes_only_what_it_changed(world: SalesforceWorld) -> None:
    apply_examples(world.engine, "salesforce", ("acquisition",))
    send(world.engine, writer(world), connection_id=conn_id(world.engine))
    before = by_key(world, "OKR_Key_Result__c")
    log_counted_meeting(world.engine, world.org)  # the rep logs one more
    run_sync(world.engine, SalesforceConnector(fast_config(world.server)), connection_name="sandbox")
    staged = recompute(world.engine, "salesforce")
    report = send(world.engine, writer(world), connection_id=conn_id(world.engine))
    # the key results the meeting counts for and the meeting's record's contribution to each: nothing else
    assert report.written == staged.total(), report.summary()
    assert 1 <= staged.staged["contribution"] <= staged.staged["key_result"] <= 3, staged
    assert set(staged.staged) <= {"objective", "key_result", "contribution"} and not staged.deletes
    assert report.api_calls == len(staged.staged)  # one call per object written
    after = by_key(world, "OKR_Key_Result__c")
    assert sum(1 for key in after if after[key]["Records__c"] != before[key]["Records__c"]) >= 1
