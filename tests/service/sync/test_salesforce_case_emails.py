"""Salesforce e-mails without a task (Email-to-Case: ActivityId empty, ParentId the case) are synced as e-mail
activities of their own: direction from Incoming, sender and recipients, the case's account and contact, the sender
of an answer or the case's owner of an inquiry as owner; a new one arrives incrementally, a deleted one is marked
deleted; an org that does not let okrsync read Case is said so once per run, naming the permission, and the rest is
synced; a quiet run costs what it cost before (issue 19, item 1). Real HTTPS to the sandbox org on 127.0.0.1."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.salesforce import mapping
from connectors.salesforce.connector import SalesforceConnector
from connectors.sandbox.generator import generate_org
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from service.crm.models import Activity, ActivityContact
from service.sync.service import run_sync
from tests.conftest import ANCHOR, fast_config
from tests.service.sync.test_salesforce_incremental import QUIET_RUN_CALLS

SIZES = {"seed": 13, "accounts": 20, "opportunities": 40, "activities": 1200}


def _stored(engine: Engine) -> dict[str, Activity]:
    """The activities stored from EmailMessage (the e-mails without a task), by EmailMessage id."""
    with Session(engine) as session:
        rows = session.exec(select(Activity).where(Activity.crm_object == mapping.EMAIL_STREAM)).all()
        return {row.external_id: row for row in rows}


def _contacts(engine: Engine, activity_id: str) -> set[str]:
    with Session(engine) as session:
        rows = session.exec(select(ActivityContact.contact_id).where(ActivityContact.activity_id == activity_id))
        return set(rows.all())


def _taskless(org: SandboxOrg) -> list[dict[str, Any]]:
    return [e for e in org.records(mapping.EMAIL_STREAM) if not e["ActivityId"]]


def _sync(engine: Engine, server: SandboxServer, *, full: bool = False) -> Any:
    # a look-back of one second: a run three seconds after new e-mails reads them, the run after it none again
    config = fast_config(server, lookback_seconds=1)
    report = run_sync(engine, SalesforceConnector(config), connection_name="org", full=full)
    assert report.status == "ok"
    return report


def test_case_emails_are_activities_with_their_case_and_follow_changes(engine: Engine, tmp_path: Path) -> None:
    org = SandboxOrg(generate_org(anchor=ANCHOR, **SIZES))
    cases = {c["Id"]: c for c in org.records("Case")}
    emails = _taskless(org)
    assert {e["Incoming"] for e in emails} == {True, False}
    with SandboxServer(org, cert_dir=tmp_path / "org") as server:
        first = _sync(engine, server)
        stored = _stored(engine)
        assert set(stored) == {e["Id"] for e in emails}
        assert first.counts[mapping.EMAIL_STREAM].written == len(emails)
        for email in emails:
            activity, case = stored[email["Id"]], cases[email["ParentId"]]
            assert activity.activity_kind == "email" and not activity.is_deleted
            assert activity.direction == ("inbound" if email["Incoming"] else "outbound")
            assert (activity.email_from, activity.email_to) == (email["FromAddress"], email["ToAddress"])
            assert activity.occurred_at == mapping.parse_datetime(email["MessageDate"])
            assert (activity.account_id, activity.opportunity_id) == (case["AccountId"], None)
            assert _contacts(engine, email["Id"]) == {case["ContactId"]}
            # an inquiry belongs to the case's owner; an answer to who sent it (the generator: the case's owner too)
            assert activity.owner_id == (case["OwnerId"] if email["Incoming"] else email["CreatedById"])
            assert activity.subject == email["Subject"]

        # an answer sent by someone else than the case owner is theirs; an inquiry stays the case owner's
        case = next(iter(cases.values()))
        other = next(u["Id"] for u in org.records("User") if u["Id"] != case["OwnerId"])
        answer = org.insert(
            mapping.EMAIL_STREAM,
            {
                "ParentId": case["Id"], "RelatedToId": case["Id"], "Incoming": False, "Status": "3",
                "MessageDate": org.now(), "FromAddress": "someone@sandbox.okrsync.dev", "ToAddress": "a@example.com",
                "CcAddress": "b@example.com", "Subject": "Re: your case", "CreatedById": other,
            },
        )  # fmt: skip
        inquiry = org.insert(
            mapping.EMAIL_STREAM,
            {
                "ParentId": case["Id"], "RelatedToId": case["Id"], "Incoming": True, "Status": "0",
                "MessageDate": org.now(), "FromAddress": "a@example.com", "ToAddress": "support@example.com",
                "Subject": "Still waiting", "CreatedById": other,
            },
        )  # fmt: skip
        # on an account directly (no case): related through RelatedToId; on nothing okrsync syncs: left out
        account = org.records("Account")[0]["Id"]
        direct = org.insert(
            mapping.EMAIL_STREAM,
            {"RelatedToId": account, "Incoming": True, "MessageDate": org.now(), "FromAddress": "c@example.com"},
        )
        nowhere = org.insert(
            mapping.EMAIL_STREAM, {"Incoming": True, "MessageDate": org.now(), "FromAddress": "d@example.com"}
        )
        gone = emails[0]["Id"]
        org.delete(mapping.EMAIL_STREAM, gone)
        # older than the look-back (and the Date header's one-second resolution) when the next run begins: the run
        # after it reads them no more
        time.sleep(3)
        org.reset_stats()
        again = _sync(engine, server)
        stored = _stored(engine)
        assert (
            stored[answer["Id"]].owner_id == other and stored[answer["Id"]].email_to == "a@example.com; b@example.com"
        )
        assert stored[inquiry["Id"]].owner_id == case["OwnerId"] and stored[inquiry["Id"]].direction == "inbound"
        assert (stored[direct["Id"]].account_id, stored[direct["Id"]].owner_id) == (account, None)
        assert nowhere["Id"] not in stored, "an e-mail related to nothing okrsync syncs is skipped"
        assert stored[gone].is_deleted and again.counts[mapping.EMAIL_STREAM].deleted == 1
        assert again.counts[mapping.EMAIL_STREAM].skipped == 0
        # the one query the stream always makes (queryAll: the delete arrives), and one Case look-up for its page
        assert org.api_calls_total == QUIET_RUN_CALLS + 1

        # a quiet run afterwards: exactly what it cost before e-mails without a task were read
        org.reset_stats()
        quiet = _sync(engine, server)
        assert quiet.api_calls == org.api_calls_total == QUIET_RUN_CALLS
        assert quiet.counts[mapping.EMAIL_STREAM].fetched == 0

        # a full sync reads them all again, the deleted one as deleted, and keeps the same activities
        _sync(engine, server, full=True)
        assert set(_stored(engine)) == set(stored)
        assert _stored(engine)[gone].is_deleted and not _stored(engine)[answer["Id"]].is_deleted


def test_without_read_on_case_the_run_says_so_once_and_the_rest_is_synced(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    org = SandboxOrg(generate_org(anchor=ANCHOR, **SIZES), cases=False)
    # an e-mail on an account, not on a case (Salesforce shows it to the user without Read on Case)
    account = org.records("Account")[1]["Id"]
    direct = org.insert(
        mapping.EMAIL_STREAM,
        {"RelatedToId": account, "Incoming": True, "MessageDate": org.now(), "FromAddress": "c@example.com"},
    )
    with SandboxServer(org, cert_dir=tmp_path / "org") as server, caplog.at_level(logging.WARNING):
        report = _sync(engine, server)
    # the full read found no case to look up (the case e-mails are hidden from this user): it asked Case once
    said = [r.getMessage() for r in caplog.records if "read Case" in r.getMessage()]
    assert len(said) == 1 and "Read on Case" in said[0] and "okrsync_integration" in said[0]
    stored = _stored(engine)
    assert set(stored) == {direct["Id"]} and stored[direct["Id"]].account_id == account
    # everything else is synced
    assert report.status == "ok" and report.counts["Task"].written == len(org.records("Task"))


def test_an_incremental_run_that_names_cases_without_read_on_case_says_so_once(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """E-mails whose RelatedToId is a case but whose ParentId is not (so the user sees them) make the connector ask
    Case, which it may not read: said once in the run, and the e-mails, related to nothing else, are left out."""
    org = SandboxOrg(generate_org(anchor=ANCHOR, **SIZES), cases=False)
    with SandboxServer(org, cert_dir=tmp_path / "org") as server:
        _sync(engine, server)
        case_id = "5005g0000000001AAA"
        added = [
            org.insert(
                mapping.EMAIL_STREAM,
                {"RelatedToId": case_id, "Incoming": True, "MessageDate": org.now(), "FromAddress": "x@example.com"},
            )
            for _ in range(3)
        ]
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            _sync(engine, server)
        said = [r.getMessage() for r in caplog.records if "read Case" in r.getMessage()]
        assert len(said) == 1 and "Read on Case" in said[0]
        assert not {e["Id"] for e in added} & set(_stored(engine))
