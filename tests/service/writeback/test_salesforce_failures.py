"""Write-back to Salesforce when things go wrong: per-record errors, locked rows, deleted parents, a field deleted in
the org, a value too long, a lost answer, and the Bulk API 2.0 path."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.salesforce.writer import SalesforceWriter
from connectors.sandbox.salesforce_metadata import DEFAULT_METADATA_DIR, load_metadata
from service.compute.service import compute
from service.okrs import service as okrs
from service.writeback import repository as repo
from service.writeback.service import send, stage_connection
from tests.conftest import ANCHOR, fast_config, small_org
from tests.service.writeback.world import (
    SETTINGS,
    SalesforceWorld,
    apply_examples,
    connection,
    deployed_org,
    outbox,
    start_salesforce,
)

pytestmark = pytest.mark.slow  # every test syncs, computes and writes back a sandbox org end to end


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> Iterator[SalesforceWorld]:
    with ExitStack() as stack:
        world = start_salesforce(stack, engine, tmp_path, deployed_org(), fast_config)
        apply_examples(engine, "salesforce", ("acquisition", "customer-care"))
        yield world


def writer(world: SalesforceWorld, **options: object) -> SalesforceWriter:
    return SalesforceWriter(fast_config(world.server), **options)  # type: ignore[arg-type]


def conn_id(engine: Engine) -> int:
    with Session(engine) as session:
        return connection(session, "salesforce").id or 0


def test_one_invalid_record_of_a_batch_fails_alone_and_waits_for_a_retry(world: SalesforceWorld) -> None:
    contributions = outbox(world.engine, target="contribution")
    assert len(contributions) > 200  # more than one call's worth
    victim = contributions[250].record_key  # in the second call of contributions
    world.org.faults.add(
        "record_error",
        match="composite_upsert",
        external_id=victim,
        error_code="FIELD_CUSTOM_VALIDATION_EXCEPTION",
        message="Contributions need an account",
    )
    report = send(world.engine, writer(world), connection_id=conn_id(world.engine))
    assert sum(report.failed.values()) == 1
    [failed] = outbox(world.engine, status="failed")
    assert failed.error is not None and failed.error_code == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert failed.record_key in failed.error and "Contributions need an account" in failed.error
    assert "salesforce refused OKR_" in failed.error  # names the object and the record
    written = {r["Okrsync_Id__c"] for r in world.org.records("OKR_Contribution__c")}
    assert failed.record_key == victim and victim not in written
    assert len(written) == len(contributions) - 1  # the other 199 of its call landed

    # nothing new: the failed row waits; --retry-failed sends it once the cause is fixed
    calls = world.org.api_calls_total
    assert send(world.engine, writer(world), connection_id=conn_id(world.engine)).api_calls == 0
    with Session(world.engine) as session:
        assert repo.retry_failed(session, connection_id=conn_id(world.engine)) == 1
        session.commit()
    again = send(world.engine, writer(world), connection_id=conn_id(world.engine))
    assert again.written == 1 and not again.problems and world.org.api_calls_total == calls + 1
    assert not outbox(world.engine, status="failed") and not outbox(world.engine, status="pending")


def test_a_locked_row_is_sent_again_and_lands(world: SalesforceWorld) -> None:
    world.org.faults.add("record_error", match="composite_upsert", index=3, error_code="UNABLE_TO_LOCK_ROW", times=1)
    report = send(world.engine, writer(world), connection_id=conn_id(world.engine))
    assert not report.problems and not report.failed and not report.retry_later
    assert not outbox(world.engine, status="pending")
    # the retry re-sent the locked record alone, not its batch
    staged = len(outbox(world.engine))
    assert report.written == staged


def test_a_deleted_opportunity_fails_its_own_records_only(world: SalesforceWorld) -> None:
    hit = next(r for r in outbox(world.engine, target="contribution") if r.payload.get("opportunity_id"))
    gone = hit.payload["opportunity_id"]
    world.org.delete("Opportunity", gone)  # deleted in Salesforce after okrsync computed
    report = send(world.engine, writer(world), connection_id=conn_id(world.engine))
    failed = outbox(world.engine, status="failed")
    assert failed and all(gone in (row.payload.get("opportunity_id"), row.record_key) for row in failed)
    assert all(row.error_code == "ENTITY_IS_DELETED" for row in failed)
    assert report.written == len(outbox(world.engine)) - len(failed)


def test_a_field_deleted_in_the_org_keeps_the_writes_until_it_is_back(world: SalesforceWorld) -> None:
    world.org.remove_field("OKR_Key_Result__c", "Grade__c")
    report = send(world.engine, writer(world), connection_id=conn_id(world.engine))
    [problem] = [p for p in report.problems if "OKR_Key_Result__c" in p]
    assert "Grade__c" in problem and "deploy/salesforce" in problem
    krs = outbox(world.engine, target="key_result")
    assert krs and all(r.status == "pending" and r.error_code == "REFUSED" for r in krs)
    # contributions name their key result: they wait too instead of failing one by one
    assert all(r.status == "pending" for r in outbox(world.engine, target="contribution"))
    assert world.org.records("OKR_Objective__c") and not world.org.records("OKR_Contribution__c")

    world.org.deploy_metadata(load_metadata(DEFAULT_METADATA_DIR))  # the admin deploys the field again
    fixed = send(world.engine, writer(world), connection_id=conn_id(world.engine))
    assert not fixed.problems and not outbox(world.engine, status="pending")
    assert len(world.org.records("OKR_Key_Result__c")) == len(krs)


def test_a_value_too_long_names_object_field_and_record(world: SalesforceWorld) -> None:
    send(world.engine, writer(world), connection_id=conn_id(world.engine))
    account = next(r.payload["account_id"] for r in outbox(world.engine, target="kam_criterion"))
    with Session(world.engine) as session:
        mapping = okrs.find_mapping(session, "Key Accounts / Q3 2026")
        okrs.assess(
            session, mapping, account_id=account, criterion_key="strategic-relationship", status="partly",
            comment="Sehr gut. " * 4000, evidence_url=None, author="kam", at=ANCHOR,
        )  # fmt: skip
        compute(session, mapping=mapping, as_of=ANCHOR + timedelta(minutes=1))
        stage_connection(
            session,
            connection=connection(session, "salesforce"),
            settings=SETTINGS,
            as_of=ANCHOR + timedelta(minutes=1),
        )
        session.commit()
    report = send(world.engine, writer(world), connection_id=conn_id(world.engine))
    [failed] = outbox(world.engine, status="failed")
    assert failed.error_code == "STRING_TOO_LONG" and failed.target == "kam_criterion"
    assert "KAM_Criterion__c" in failed.error and "Comment__c" in failed.error and account in failed.error
    assert report.failed["kam_criterion"] == 1


def test_a_lost_answer_is_replayed_without_duplicates(world: SalesforceWorld) -> None:
    # Salesforce applied the upsert, then the connection broke before the answer arrived
    world.org.faults.add("drop", match="composite_upsert", times=2)
    report = send(world.engine, writer(world), connection_id=conn_id(world.engine))
    assert not report.problems and not outbox(world.engine, status="pending")
    for sobject, target in (("OKR_Key_Result__c", "key_result"), ("OKR_Contribution__c", "contribution")):
        ids = [r["Okrsync_Id__c"] for r in world.org.records(sobject)]
        assert len(ids) == len(set(ids)) == len(outbox(world.engine, target=target))
    assert sum(report.updated.values()) >= 1  # the replayed records were found by external id, not created again


def test_bulk_api_above_the_threshold(world: SalesforceWorld) -> None:
    contributions = outbox(world.engine, target="contribution")
    world.org.faults.add("record_error", match="bulk2_ingest", index=7, error_code="FIELD_INTEGRITY_EXCEPTION", times=1)
    report = send(
        world.engine, writer(world, bulk_threshold=100, bulk_poll_seconds=0.01), connection_id=conn_id(world.engine)
    )
    assert world.org.api_calls["bulk2_ingest"] >= 5  # create, upload, close, poll, results
    assert world.org.api_calls["composite_upsert"] <= 3  # the small targets still go through collections
    written = world.org.records("OKR_Contribution__c")
    failed = outbox(world.engine, status="failed")
    assert len(failed) == 1 and failed[0].error_code == "FIELD_INTEGRITY_EXCEPTION"
    assert len(written) + 1 == len(contributions) and report.created["contribution"] == len(written)


def test_older_values_never_replace_newer_ones(world: SalesforceWorld) -> None:
    send(world.engine, writer(world), connection_id=conn_id(world.engine))
    with Session(world.engine) as session:
        mapping = okrs.find_mapping(session, "Vertrieb DACH / Q3 2026")
        compute(session, mapping=mapping, as_of=ANCHOR - timedelta(days=20))  # a late backfill of an earlier date
        report = stage_connection(
            session, connection=connection(session, "salesforce"), settings=SETTINGS, as_of=ANCHOR - timedelta(days=20)
        )
        session.commit()
    assert report.total() == 0 and report.unchanged > 0
    # a write in flight whose row got newer values meanwhile is not marked sent
    row = outbox(world.engine, target="key_result")[0]
    with Session(world.engine) as session:
        assert not repo.acknowledge(session, row_id=row.id or 0, seq=row.seq - 1, status="sent", now=ANCHOR)
        assert repo.acknowledge(session, row_id=row.id or 0, seq=row.seq, status="sent", now=ANCHOR)
        session.rollback()


def test_an_org_without_okrsync_metadata_is_told_what_to_deploy(engine: Engine, tmp_path: Path) -> None:
    with ExitStack() as stack:
        # the integration user without the permission set sees no okrsync object: the same as not deployed
        world = start_salesforce(stack, engine, tmp_path, small_org(), fast_config)
        apply_examples(engine, "salesforce", ("acquisition", "pipeline-hygiene"))
        report = send(world.engine, writer(world), connection_id=conn_id(world.engine))
        [objects, fields] = report.problems
        assert "OKR_Objective__c" in objects and "okrsync integration" in objects and "deploy/salesforce" in objects
        assert "Opportunity" in fields and "No such column 'OKR_Hygiene_" in fields
        assert {r.status for r in outbox(engine)} == {"pending"}  # every write kept for after the deploy
        world.org.deploy_metadata(load_metadata(DEFAULT_METADATA_DIR))
        fixed = send(world.engine, writer(world), connection_id=conn_id(world.engine))
        assert not fixed.problems and fixed.written == len(outbox(engine))
