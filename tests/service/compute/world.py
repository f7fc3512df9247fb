"""A small, hand-made local model whose every key-result value can be worked out on paper.

Cycle Q3 2026 (Jul 1 – Sep 30), computed as of 2026-08-15 12:00 UTC. Team: Anna (u1) and Ben (u2); Olaf (u9) is
not in the team. Accounts A1 (prospect, key account), A2 (customer), A3 (prospect). The comments on each record
say which key results it feeds.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors import records as crm
from service.compute.service import ChangeSet, ComputeReport, compute
from service.okrs import service as okrs
from service.okrs.models import OkrMapping
from service.sync.repository import get_or_create_connection, upsert_records

AS_OF = datetime(2026, 8, 15, 12, 0, tzinfo=UTC)
STAMP = datetime(2026, 6, 1, tzinfo=UTC)


def at(month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def _activity(
    id_: str,
    kind: str,
    when: datetime | None,
    owner: str,
    account: str | None,
    contacts: tuple[str, ...] = (),
    **extra: Any,
) -> crm.Activity:
    return crm.Activity(
        external_id=id_,
        modified_at=STAMP,
        created_at=when or STAMP,
        activity_kind=kind,
        occurred_at=when,
        owner_id=owner,
        account_id=account,
        contact_ids=contacts,
        **extra,
    )


OWNERS = [
    crm.Owner(external_id="u1", modified_at=STAMP, name="Anna", email="anna@example.com"),
    crm.Owner(external_id="u2", modified_at=STAMP, name="Ben", email="ben@example.com"),
    crm.Owner(external_id="u9", modified_at=STAMP, name="Olaf", email="olaf@example.com"),
]
ACCOUNTS = [
    crm.Account(
        external_id="A1",
        modified_at=STAMP,
        name="Alpha",
        owner_id="u1",
        account_type="Prospect",
        raw={"Key_Account__c": True},
    ),
    crm.Account(
        external_id="A2",
        modified_at=STAMP,
        name="Beta",
        owner_id="u2",
        account_type="Customer - Direct",
        raw={"Key_Account__c": False},
    ),
    crm.Account(
        external_id="A3",
        modified_at=STAMP,
        name="Gamma",
        owner_id="u1",
        account_type="Prospect",
        raw={"Key_Account__c": False},
    ),
]
CONTACTS = [
    crm.Contact(external_id="C1", modified_at=STAMP, account_id="A1", title="CEO"),
    crm.Contact(external_id="C2", modified_at=STAMP, account_id="A1", title="CTO"),
    crm.Contact(external_id="C3", modified_at=STAMP, account_id="A2", title="Buyer"),
    crm.Contact(external_id="C4", modified_at=STAMP, account_id="A3", title="CEO"),
]
OPPORTUNITIES = [
    # open, close date in the past, two contacts, stage entered 36.5 days before as_of
    crm.Opportunity(
        external_id="O1",
        modified_at=STAMP,
        created_at=at(7, 10, 0),
        account_id="A1",
        owner_id="u1",
        stage="Qualification",
        amount=1000,
        probability=10,
        close_date=date(2026, 8, 1),
        next_step="Call CFO",
        stage_entered_at=at(7, 10, 0),
        close_date_pushes=0,
    ),
    # open, created before the cycle, no next step, no amount, pushed 3 times, probability off, one contact
    crm.Opportunity(
        external_id="O2",
        modified_at=STAMP,
        created_at=at(6, 1, 0),
        account_id="A2",
        owner_id="u2",
        stage="Proposal/Price Quote",
        amount=None,
        probability=50,
        close_date=date(2026, 9, 30),
        next_step=None,
        stage_entered_at=at(6, 1, 0),
        close_date_pushes=3,
    ),
    crm.Opportunity(
        external_id="O3",
        modified_at=STAMP,
        created_at=at(8, 1, 0),
        account_id="A3",
        owner_id="u1",
        stage="Closed Won",
        amount=5000,
        probability=100,
        close_date=date(2026, 8, 10),
        is_closed=True,
        is_won=True,
        stage_entered_at=at(8, 10, 0),
    ),
    # not the team's
    crm.Opportunity(
        external_id="O4",
        modified_at=STAMP,
        created_at=at(7, 20, 0),
        account_id="A1",
        owner_id="u9",
        stage="Qualification",
        amount=700,
        probability=10,
        close_date=date(2026, 12, 1),
        next_step="x",
    ),
]
ROLES = [
    crm.OpportunityContact(external_id="R1", modified_at=STAMP, opportunity_id="O1", contact_id="C1"),
    crm.OpportunityContact(external_id="R2", modified_at=STAMP, opportunity_id="O1", contact_id="C2"),
    crm.OpportunityContact(external_id="R3", modified_at=STAMP, opportunity_id="O2", contact_id="C3"),
]
ACTIVITIES = [
    _activity("M1", "meeting", at(7, 5, 10), "u1", "A1", ("C1",), subject="Discovery meeting"),
    _activity("M2", "meeting", at(7, 6, 10), "u2", "A2", ("C3",), subject="Demo"),
    _activity("M3", "meeting", at(7, 7, 10), "u1", "A3", ("C4",), subject="Discovery meeting"),
    _activity("M4", "meeting", at(7, 8, 10), "u9", "A1", subject="Outsider meeting"),
    _activity("M5", "meeting", at(6, 20, 10), "u1", "A1", subject="Before the cycle"),
    _activity("M6", "meeting", at(8, 20, 10), "u1", "A1", subject="After as_of"),
    _activity("M7", "meeting", at(7, 9, 10), "u2", "A1", subject="Deleted", is_deleted=True),
    _activity("K1", "call", at(7, 2), "u1", "A1", ("C2",), subject="Call", direction="outbound"),
    _activity("K2", "call", at(7, 3), "u2", "A1", ("C1",), subject="Call", direction="outbound", opportunity_id="O1"),
    _activity("K3", "call", at(7, 4), "u2", "A3", ("C4",), subject="Call", direction="outbound"),
    # inquiries and the team's first responses: 1 h, 3 h, 10 h, pending (2 h), unanswered (340 h)
    _activity("I1", "call", at(7, 10, 8), "u1", "A2", ("C3",), subject="Inbound call", direction="inbound"),
    _activity("E1", "email", at(7, 10, 9), "u2", "A2", subject="Re: your question", direction="outbound"),
    _activity("I2", "call", at(7, 11, 8), "u2", "A1", ("C1",), subject="Inbound call", direction="inbound"),
    _activity("R2", "call", at(7, 11, 11), "u1", "A1", ("C2",), subject="Call back", direction="outbound"),
    _activity("I3", "call", at(7, 12, 8), "u1", "A3", ("C4",), subject="Inbound call", direction="inbound"),
    _activity("R3", "meeting", at(7, 12, 18), "u2", "A3", ("C4",), subject="Meeting"),
    _activity("I4", "call", at(8, 15, 10), "u2", "A2", ("C3",), subject="Inbound call", direction="inbound"),
    _activity("I5", "call", at(8, 1, 8), "u1", "A3", subject="Inbound call", direction="inbound"),
    _activity("T1", "task", at(7, 20), "u1", "A1", subject="Prepare QBR deck"),
    _activity("T2", "task", None, "u1", "A1", subject="Follow up"),
]


def build(engine: Engine, *, crm_name: str = "salesforce") -> int:
    """Store the world; returns the connection id."""
    with Session(engine) as session:
        connection = get_or_create_connection(session, crm_name=crm_name, name="world")
        assert connection.id is not None
        for records, crm_object in (
            (OWNERS, "User"),
            (ACCOUNTS, "Account"),
            (CONTACTS, "Contact"),
            (OPPORTUNITIES, "Opportunity"),
            (ROLES, "OpportunityContactRole"),
            (ACTIVITIES, "Task"),
        ):
            upsert_records(session, records, connection_id=connection.id, crm_object=crm_object, seen_at=None)
        session.commit()
        return connection.id


def mapping_text(
    key_results: list[dict[str, Any]],
    *,
    hygiene: dict[str, Any] | None = None,
    kam: dict[str, Any] | None = None,
    **extra: Any,
) -> str:
    data: dict[str, Any] = {
        "version": 1,
        "team": {"name": "World team", "members": [{"email": "anna@example.com"}, {"email": "ben@example.com"}]},
        "cycle": {"name": "Q3 2026", "start": "2026-07-01", "end": "2026-09-30"},
        "custom_fields": {
            "key_account": {
                "record": "account",
                "type": "boolean",
                "salesforce": "Key_Account__c",
                "hubspot": "key_account",
            }
        },
        "objectives": [{"key": "objective", "title": "An objective", "key_results": key_results}],
        **extra,
    }
    if hygiene is not None:
        data["hygiene"] = hygiene
    if kam is not None:
        data["kam"] = kam
    return yaml.safe_dump(data, sort_keys=False)


def apply_and_compute(
    engine: Engine,
    text: str,
    *,
    as_of: datetime = AS_OF,
    reason: str | None = None,
    changes: ChangeSet | None = None,
) -> tuple[OkrMapping, ComputeReport]:
    with Session(engine) as session:
        connection = okrs.resolve_connection(session, None)
        loaded = okrs.load(text, filename="test.yaml")
        mapping, _version = okrs.apply(session, loaded, connection=connection, author="test", reason=reason, now=as_of)
        report = compute(session, mapping=mapping, as_of=as_of, changes=changes)
        session.commit()
        session.refresh(mapping)
        session.expunge(mapping)
        return mapping, report


EXAMPLES = Path(__file__).resolve().parents[3] / "mappings" / "examples"


def applied_example(session: Session, *, connection_name: str, example: str, as_of: datetime) -> int:
    """Apply one of mappings/examples (e.g. ``customer-care.yaml``) on a new Salesforce connection, nothing synced
    or computed: the id of a mapping to write rows of results for by hand."""
    connection = get_or_create_connection(session, crm_name="salesforce", name=connection_name)
    path = EXAMPLES / example
    mapping, _version = okrs.apply(session, okrs.load_path(path), connection=connection, author="test", now=as_of)
    assert mapping.id is not None
    return mapping.id
