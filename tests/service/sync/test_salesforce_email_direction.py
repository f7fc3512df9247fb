"""Salesforce e-mail tasks get their direction from their EmailMessage (Enhanced Email's Incoming), on a first sync
and when the e-mail changes later; an org that does not let okrsync read EmailMessage is said so once, with what to
grant, and everything else is synced (issue 19)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.salesforce import mapping
from connectors.salesforce.connector import SalesforceConnector
from connectors.sandbox.generator import generate_org
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from service.crm.models import Activity
from service.sync.service import run_sync
from tests.conftest import ANCHOR, fast_config

SIZES = {"seed": 11, "accounts": 20, "opportunities": 40, "activities": 1200}


def _directions(engine: Engine) -> dict[str, str | None]:
    """The e-mail tasks' directions (a task-less e-mail is an activity of its own: test_salesforce_case_emails)."""
    with Session(engine) as session:
        rows = session.exec(select(Activity).where(Activity.activity_kind == "email", Activity.crm_object == "Task"))
        return {row.external_id: row.direction for row in rows.all()}


def _task_emails(org: SandboxOrg) -> list[dict]:
    return [e for e in org.records(mapping.EMAIL_STREAM) if e["ActivityId"]]


def _org_directions(org: SandboxOrg) -> dict[str, str]:
    return {e["ActivityId"]: "inbound" if e["Incoming"] else "outbound" for e in _task_emails(org)}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SandboxServer]:
    with SandboxServer(SandboxOrg(generate_org(anchor=ANCHOR, **SIZES)), cert_dir=tmp_path / "org") as running:
        yield running


def test_every_email_task_has_its_emails_direction_and_follows_a_change(engine: Engine, server: SandboxServer) -> None:
    org = server.org
    config = fast_config(server)
    assert run_sync(engine, SalesforceConnector(config), connection_name="org").status == "ok"
    want = _org_directions(org)
    assert want and set(want.values()) == {"inbound", "outbound"}
    assert _directions(engine) == want  # every e-mail task, inbound or outbound as its e-mail says
    with Session(engine) as session:
        stored = {
            row.external_id: (row.email_from, row.email_to)
            for row in session.exec(
                select(Activity).where(Activity.activity_kind == "email", Activity.crm_object == "Task")
            ).all()
        }
    addresses = {
        e["ActivityId"]: (e["FromAddress"], "; ".join(a for a in (e["ToAddress"], e["CcAddress"]) if a) or None)
        for e in _task_emails(org)
    }
    assert stored == addresses and all(sender and to for sender, to in addresses.values())  # sender and recipients

    # the e-mail is corrected (logged as received after all): its task keeps its stamp, the e-mail stream brings it
    email = next(e for e in _task_emails(org) if not e["Incoming"])
    org.update(mapping.EMAIL_STREAM, email["Id"], {"Incoming": True})
    org.reset_stats()
    again = run_sync(engine, SalesforceConnector(config), connection_name="org")
    assert again.status == "ok" and again.counts[mapping.EMAIL_STREAM].fetched == 1
    assert _directions(engine)[email["ActivityId"]] == "inbound"
    # query: User's only (the e-mail stream reads with queryAll); the task is read again (queryAll) with the Incoming
    # the stream just read, not looked up a second time
    assert org.api_calls["query"] == 1

    # the e-mail goes to one more person (Cc): the task's recipients follow, though the task itself did not change
    copied = next(e for e in _task_emails(org) if e["Incoming"])
    org.update(mapping.EMAIL_STREAM, copied["Id"], {"CcAddress": "maria.schneider@sandbox.okrsync.dev"})
    assert run_sync(engine, SalesforceConnector(config), connection_name="org").status == "ok"
    with Session(engine) as session:
        task = session.exec(select(Activity).where(Activity.external_id == copied["ActivityId"])).one()
    assert task.email_to == f"{copied['ToAddress']}; maria.schneider@sandbox.okrsync.dev"


def test_an_org_that_hides_email_messages_is_said_so_once_and_the_rest_is_synced(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    org = SandboxOrg(generate_org(anchor=ANCHOR, **SIZES), email_messages=False)
    with SandboxServer(org, cert_dir=tmp_path / "hidden") as server, caplog.at_level(logging.WARNING):
        report = run_sync(engine, SalesforceConnector(fast_config(server)), connection_name="org")
    assert report.status == "ok"
    said = [r.getMessage() for r in caplog.records if "EmailMessage" in r.getMessage()]
    assert len(said) == 1 and "Access Activities" in said[0] and "EMAIL_MESSAGES=false" in said[0]
    directions = _directions(engine)
    assert directions and set(directions.values()) == {None}  # no direction, nothing else lost
    assert report.counts["Task"].written == len(org.records("Task"))
