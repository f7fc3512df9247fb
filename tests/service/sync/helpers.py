"""Assertions shared by the sync tests: the local model must equal the sandbox org, record by record."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.salesforce import mapping
from connectors.salesforce.config import SalesforceConfig
from connectors.sandbox.store import SandboxOrg
from service.crm.models import ActivityContact, CrmConnection
from service.sync.repository import TABLES


def local_rows(engine: Engine, kind: str, *, crm: str = "salesforce", name: str = "sandbox") -> dict[str, Any]:
    table: Any = TABLES[kind]
    with Session(engine) as session:
        connection = session.execute(
            select(CrmConnection).where(CrmConnection.crm == crm, CrmConnection.name == name)
        ).scalar_one()
        rows = session.execute(select(table).where(table.connection_id == connection.id)).scalars().all()
        return {row.external_id: row for row in rows}


def assert_local_equals_org(engine: Engine, org: SandboxOrg, config: SalesforceConfig) -> None:
    """Every live sandbox record is stored with exactly the fields pulled; every other stored row is deleted."""
    for sobject in mapping.OBJECTS:
        kind = mapping.KINDS[sobject]
        fields = mapping.select_fields(
            sobject, custom=config.custom_fields.get(sobject, []), multi_currency=config.multi_currency
        )
        expected = {r["Id"]: r for r in org.records(sobject)}
        stored = {
            i: row
            for i, row in local_rows(engine, kind).items()
            if not row.is_deleted and (kind != "activity" or _prefix_of(sobject, i))
        }
        missing = sorted(set(expected) - set(stored))
        extra = sorted(set(stored) - set(expected))
        assert not missing and not extra, f"{sobject}: missing {missing[:5]}, extra {extra[:5]}"
        emails = (
            {e["ActivityId"]: mapping.email_fields(e) for e in org.records(mapping.EMAIL_STREAM)}
            if (sobject == "Task" and config.email_messages and org.sobject(mapping.EMAIL_STREAM) is not None)
            else {}
        )
        for record_id, record in expected.items():
            want = {f: record.get(f) for f in fields}
            if record_id in emails and record.get("TaskSubtype") in mapping.EMAIL_SUBTYPES:
                want[mapping.EMAIL_KEY] = emails[record_id]  # its e-mail's direction and addresses, looked up
            assert stored[record_id].raw == want, f"{sobject} {record_id} differs"
    if config.email_messages and org.sobject(mapping.EMAIL_STREAM) is not None:
        # The e-mails without a task (Email-to-Case) the integration user may read and that relate to something
        # okrsync syncs (their case's account or contact, or what RelatedToId names) are live e-mail activities.
        cases = {c["Id"]: c for c in org.records(mapping.CASE_OBJECT)} if org.sobject(mapping.CASE_OBJECT) else {}
        wanted = set()
        for email in org.readable(mapping.EMAIL_STREAM, org.records(mapping.EMAIL_STREAM)):
            if email["ActivityId"]:
                continue
            case = cases.get(email.get("ParentId") or "") if org.cases else None
            related = str(email.get("RelatedToId") or "")
            if (case and (case.get("AccountId") or case.get("ContactId"))) or related[:3] in ("001", "003", "006"):
                wanted.add(email["Id"])
        stored_emails = {
            i for i, row in local_rows(engine, "activity").items()
            if row.crm_object == mapping.EMAIL_STREAM and not row.is_deleted
        }  # fmt: skip
        missing, extra = sorted(wanted - stored_emails), sorted(stored_emails - wanted)
        assert not missing and not extra, f"e-mails without a task: missing {missing[:5]}, extra {extra[:5]}"
    # Activity ↔ contact links equal the WhoIds of live activities.
    with Session(engine) as session:
        links = {(a, c) for a, c in session.execute(select(ActivityContact.activity_id, ActivityContact.contact_id))}
    want_links = {
        (r["Id"], r["WhoId"])
        for sobject in ("Task", "Event")
        for r in org.records(sobject, include_deleted=True)
        if (r.get("WhoId") or "").startswith("003")
    }
    assert want_links <= links


def _prefix_of(sobject: str, record_id: str) -> bool:
    return record_id.startswith({"Task": "00T", "Event": "00U"}[sobject])


def minimum_query_calls(org: SandboxOrg, *, page_size: int = 2000) -> int:
    """One query call per 2,000 records per object (at least one), counting soft-deleted records queryAll returns;
    plus, per page of tasks, one EmailMessage look-up per 300 e-mail tasks on it (their direction), when the org
    lets okrsync read EmailMessage. A first sync reads the e-mails without a task in the EmailMessage stream (one
    call per page of those it may see, at least one) and their cases (one call per 300 cases a page names; one call
    when none is named, to learn whether Case is readable: refused once when it is not)."""
    total = 0
    if org.sobject(mapping.EMAIL_STREAM) is not None:
        rows = org.readable(mapping.EMAIL_STREAM, org.records(mapping.EMAIL_STREAM, include_deleted=True))
        taskless = sorted((r for r in rows if not r["ActivityId"]), key=lambda r: (r["SystemModstamp"], r["Id"]))
        total += max(1, math.ceil(len(taskless) / page_size))
        lookups = 0
        for start in range(0, len(taskless), page_size):
            named = {i for r in taskless[start : start + page_size] for i in mapping.case_ids(r)}
            lookups += math.ceil(len(named) / 300)
        total += max(1, lookups) if org.sobject(mapping.CASE_OBJECT) is not None else 1
    for sobject in mapping.OBJECTS:
        rows = org.records(sobject, include_deleted=mapping.has_is_deleted(sobject))
        total += max(1, math.ceil(len(rows) / page_size))
        if sobject == "Task" and org.sobject(mapping.EMAIL_STREAM) is not None:
            ordered = sorted(rows, key=lambda r: (r["SystemModstamp"], r["Id"]))
            for start in range(0, len(ordered), page_size):
                emails = sum(
                    1 for r in ordered[start : start + page_size] if r.get("TaskSubtype") in mapping.EMAIL_SUBTYPES
                )
                total += math.ceil(emails / 300)
    return total
