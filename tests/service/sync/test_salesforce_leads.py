"""Salesforce leads: synced with their conversion, the activities logged on them keep the lead, a change or a
delete reaches the copy, and an org that does not let okrsync read Lead is said so once, with what to grant, while
everything else is synced (issue 19)."""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.salesforce.connector import SalesforceConnector
from connectors.sandbox.generator import generate_org
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from service.crm.models import Activity, Lead
from service.sync.service import run_sync
from tests.conftest import ANCHOR, fast_config

SIZES = {"seed": 5, "accounts": 20, "opportunities": 40, "activities": 1200}


def _leads(engine: Engine) -> dict[str, Lead]:
    with Session(engine) as session:
        return {row.external_id: row for row in session.exec(select(Lead)).all()}


def test_leads_their_conversion_and_their_activities_are_synced_and_follow_changes(
    engine: Engine, tmp_path: Path
) -> None:
    org = SandboxOrg(generate_org(anchor=ANCHOR, **SIZES))
    with SandboxServer(org, cert_dir=tmp_path / "org") as server:
        config = fast_config(server)
        assert run_sync(engine, SalesforceConnector(config), connection_name="org").status == "ok"
        stored = _leads(engine)
        assert set(stored) == {lead["Id"] for lead in org.records("Lead")}
        for row in org.records("Lead"):
            lead = stored[row["Id"]]
            assert lead.created_at == datetime.fromisoformat(row["CreatedDate"])
            assert (lead.name, lead.status, lead.source, lead.owner_id, lead.is_converted) == (
                row["Name"], row["Status"], row["LeadSource"], row["OwnerId"], row["IsConverted"],
            )  # fmt: skip
            assert (lead.contact_id, lead.account_id, lead.opportunity_id) == (
                row["ConvertedContactId"], row["ConvertedAccountId"], row["ConvertedOpportunityId"],
            )  # fmt: skip
            assert lead.converted_on == (date.fromisoformat(row["ConvertedDate"]) if row["ConvertedDate"] else None)
        on_leads = {t["Id"]: t["WhoId"] for t in org.records("Task") if (t["WhoId"] or "").startswith("00Q")}
        with Session(engine) as session:
            kept = {a.external_id: a.lead_id for a in session.exec(select(Activity)).all() if a.lead_id}
        assert on_leads and kept == on_leads  # a task on a lead keeps it (WhoId 00Q is no contact)

        open_lead = next(row for row in org.records("Lead") if not row["IsConverted"])
        org.update("Lead", open_lead["Id"], {"Status": "Closed - Not Converted"})
        gone = next(row for row in org.records("Lead") if row["Id"] != open_lead["Id"])
        org.delete("Lead", gone["Id"])
        assert run_sync(engine, SalesforceConnector(config), connection_name="org").status == "ok"
        after = _leads(engine)
        assert after[open_lead["Id"]].status == "Closed - Not Converted"
        assert after[gone["Id"]].is_deleted


def test_an_org_that_hides_leads_is_said_so_once_and_the_rest_is_synced(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    org = SandboxOrg(generate_org(anchor=ANCHOR, **SIZES), leads=False)
    with SandboxServer(org, cert_dir=tmp_path / "hidden") as server, caplog.at_level(logging.WARNING):
        first = run_sync(engine, SalesforceConnector(fast_config(server)), connection_name="org")
        second = run_sync(engine, SalesforceConnector(fast_config(server)), connection_name="org")
    assert first.status == second.status == "ok"
    said = [r.getMessage() for r in caplog.records if "read Lead" in r.getMessage()]
    assert len(said) == 2  # once per run, not once per call
    assert "Read on Lead" in said[0] and "OKRSYNC_SALESFORCE__LEADS=false" in said[0]
    assert _leads(engine) == {}
    assert first.counts["Task"].written == len(org.records("Task"))  # nothing else lost
