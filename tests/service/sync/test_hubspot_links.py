"""HubSpot links end to end (hubspot-api-client over HTTPS to the sandbox portal, real database): the primary company,
link sets replaced when a record is read again, deletions that reach every reference, deactivated owners, and a
cursor that never passes the server's clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.connector import HubSpotConnector
from connectors.sandbox.generator import generate_org
from connectors.sandbox.hubspot_portal import HubSpotPortal
from connectors.sandbox.hubspot_seed import portal_from_org
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from service.crm.models import (
    Activity,
    ActivityContact,
    Contact,
    Opportunity,
    OpportunityContact,
    RecordAccount,
)
from service.sync.models import SyncState
from service.sync.service import SyncReport, refresh_records, run_sync
from tests.conftest import ANCHOR
from tests.service.sync.helpers import local_rows

pytestmark = pytest.mark.slow  # every test syncs a sandbox portal of thousands of records several times

SIZES = {"seed": 5, "accounts": 14, "opportunities": 40, "activities": 600}


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[tuple[HubSpotPortal, HubSpotConfig]]:
    data = generate_org(anchor=ANCHOR, **SIZES)
    portal, _ids = portal_from_org(data)
    with SandboxServer(SandboxOrg(data), portal=portal, cert_dir=tmp_path / "sandbox") as server:
        config = HubSpotConfig(
            access_token=portal.access_token,
            host=server.base_url,
            ca_bundle=server.ca_path,
            retry_wait_base=0.01,
            retry_wait_max=0.05,
            max_attempts=4,
            timeout_seconds=5,
        )
        yield portal, config


def sync(engine: Engine, config: HubSpotConfig, *, full: bool = False) -> SyncReport:
    report = run_sync(engine, HubSpotConnector(config), connection_name="sandbox", full=full)
    assert report.status == "ok"
    return report


def refresh(engine: Engine, config: HubSpotConfig, targets: dict[str, set[str]]) -> SyncReport:
    """What the worker does after association webhooks: read these records again, as they are now."""
    return refresh_records(engine, HubSpotConnector(config), connection_name="sandbox", targets=targets)


def accounts_of(engine: Engine, kind: str, record_id: str) -> dict[str, bool]:
    """account id → is_primary of a record's record_account rows."""
    with Session(engine) as session:
        rows = session.execute(
            select(RecordAccount.account_id, RecordAccount.is_primary).where(
                RecordAccount.record_kind == kind, RecordAccount.record_id == record_id
            )
        )
        return {account: primary for account, primary in rows}


def contacts_of(engine: Engine, activity_id: str) -> set[str]:
    with Session(engine) as session:
        rows = session.execute(select(ActivityContact.contact_id).where(ActivityContact.activity_id == activity_id))
        return set(rows.scalars())


def new_company(portal: HubSpotPortal, name: str) -> str:
    return str(portal.insert("companies", {"name": name})["id"])


def test_the_primary_company_is_the_account_and_every_company_is_linked(
    engine: Engine, portal: tuple[HubSpotPortal, HubSpotConfig]
) -> None:
    hs, config = portal
    deals = [d["id"] for d in hs.records("deals")[:6]]
    seeded = {d: str(hs.primary_company("deals", d)) for d in deals}
    moved = {}
    for number, deal in enumerate(deals):  # a second company, made primary: the first stays, unlabelled
        moved[deal] = new_company(hs, f"Group holding {number}")
        hs.associate("deals", deal, "companies", moved[deal], primary=True)
    contact = hs.records("contacts")[0]["id"]
    seeded_contact = str(hs.primary_company("contacts", contact))
    employer = new_company(hs, "New employer")
    hs.associate("contacts", contact, "companies", employer, primary=True)
    call = hs.records("calls")[0]["id"]
    partner = new_company(hs, "Partner")
    hs.associate("calls", call, "companies", partner)  # engagements have no primary company

    sync(engine, config)
    stored = local_rows(engine, "opportunity", crm="hubspot")
    assert {d: stored[d].account_id for d in deals} == moved
    for deal in deals:
        assert accounts_of(engine, "opportunity", deal) == {moved[deal]: True, seeded[deal]: False}
    assert local_rows(engine, "contact", crm="hubspot")[contact].account_id == employer
    assert accounts_of(engine, "contact", contact) == {employer: True, seeded_contact: False}
    companies = sorted((c for c, _type in hs.associations("calls", call, "companies")), key=int)
    assert len(companies) == 2 and local_rows(engine, "activity", crm="hubspot")[call].account_id == str(companies[0])
    assert accounts_of(engine, "activity", call) == {str(companies[0]): True, str(companies[1]): False}

    # the primary company moves back without a new hs_lastmodifieddate: the association webhook's refresh sees it
    deal = deals[0]
    hs.set_primary_company("deals", deal, seeded[deal])
    before = hs.get("deals", deal)
    assert (
        before is not None
        and before["properties"]["hs_lastmodifieddate"] == stored[deal].raw["properties"]["hs_lastmodifieddate"]
    )
    refresh(engine, config, {"deals": {deal}})
    assert local_rows(engine, "opportunity", crm="hubspot")[deal].account_id == seeded[deal]
    assert accounts_of(engine, "opportunity", deal) == {moved[deal]: False, seeded[deal]: True}


def test_links_removed_in_hubspot_are_removed_when_the_record_is_read_again(
    engine: Engine, portal: tuple[HubSpotPortal, HubSpotConfig]
) -> None:
    hs, config = portal
    deal = next(d["id"] for d in hs.records("deals") if len(hs.associations("deals", d["id"], "contacts")) >= 2)
    lost, kept = (str(c) for c, _type in hs.associations("deals", deal, "contacts")[:2])
    call = next(
        c["id"]
        for c in hs.records("calls")
        if hs.associations("calls", c["id"], "deals") and hs.associations("calls", c["id"], "contacts")
    )
    sync(engine, config)
    call_contacts = contacts_of(engine, call)
    assert call_contacts and local_rows(engine, "activity", crm="hubspot")[call].opportunity_id

    # a deal loses a contact: HubSpot re-stamps the deal (num_associated_contacts changes), the next search finds it
    hs.unassociate("deals", deal, "contacts", lost)
    hs.update("deals", deal, {"num_associated_contacts": str(len(hs.associations("deals", deal, "contacts")))})
    sync(engine, config)
    links = local_rows(engine, "opportunity_contact", crm="hubspot")
    assert links[f"{deal}:{lost}"].is_deleted and not links[f"{deal}:{kept}"].is_deleted

    # a call loses its company, its deal and its contacts without a new stamp: the webhook's refresh reads it again
    for kind in ("companies", "deals", "contacts"):
        for linked, _type in hs.associations("calls", call, kind):
            hs.unassociate("calls", call, kind, linked)
    report = refresh(engine, config, {"calls": {call}})
    assert report.counts["calls"].written == 0  # the same version: only its links changed
    stored = local_rows(engine, "activity", crm="hubspot")[call]
    assert (stored.account_id, stored.opportunity_id) == (None, None)
    assert contacts_of(engine, call) == set() and accounts_of(engine, "activity", call) == {}

    # a link that comes back lives again
    hs.associate("deals", deal, "contacts", lost)
    refresh(engine, config, {"deals": {deal}})
    assert not local_rows(engine, "opportunity_contact", crm="hubspot")[f"{deal}:{lost}"].is_deleted


def _references(engine: Engine, companies: list[str], deals: list[str], contacts: list[str]) -> dict[str, int]:
    """Rows that still make the given records count: live references and links to them."""
    with Session(engine) as session:

        def count(statement: Any) -> int:
            return int(session.execute(statement).scalar_one())

        return {
            "activity→company": count(select(func.count()).where(Activity.account_id.in_(companies))),  # type: ignore[union-attr]
            "activity→deal": count(select(func.count()).where(Activity.opportunity_id.in_(deals))),  # type: ignore[union-attr]
            "activity→contact": count(select(func.count()).where(ActivityContact.contact_id.in_(contacts))),  # type: ignore[attr-defined]
            "deal→company": count(select(func.count()).where(Opportunity.account_id.in_(companies))),  # type: ignore[union-attr]
            "contact→company": count(select(func.count()).where(Contact.account_id.in_(companies))),  # type: ignore[union-attr]
            "deal↔contact": count(
                select(func.count()).where(
                    OpportunityContact.is_deleted.is_(False),  # type: ignore[attr-defined]
                    OpportunityContact.contact_id.in_(contacts) | OpportunityContact.opportunity_id.in_(deals),  # type: ignore[attr-defined]
                )
            ),
            "record↔company": count(select(func.count()).where(RecordAccount.account_id.in_(companies))),  # type: ignore[attr-defined]
        }


def test_archived_companies_deals_and_contacts_stop_counting_in_the_run_that_sees_it(
    engine: Engine, portal: tuple[HubSpotPortal, HubSpotConfig]
) -> None:
    hs, config = portal
    sync(engine, config)
    stored_deals = local_rows(engine, "opportunity", crm="hubspot")
    companies = list(dict.fromkeys(row.account_id for row in stored_deals.values() if row.account_id))[:2]
    deals = [d for d, row in stored_deals.items() if row.account_id not in companies][:3]
    contacts = [c for c, row in local_rows(engine, "contact", crm="hubspot").items() if row.account_id not in companies]
    contacts = [c for c in contacts if hs.associations("contacts", c, "deals")][:3]
    before = _references(engine, companies, deals, contacts)
    assert all(before[name] > 0 for name in before if name not in ("contact→company", "record↔company")), before

    for kind, ids in (("companies", companies), ("deals", deals), ("contacts", contacts)):
        for record_id in ids:
            hs.archive(kind, record_id)
    # a deal of an archived company changes in the same run: HubSpot still lists the association, the sync must not
    # bring the company back
    changed = next(d for d, row in stored_deals.items() if row.account_id == companies[0] and d not in deals)
    hs.update("deals", changed, {"amount": "12345"})

    report = sync(engine, config)
    assert (report.counts["companies"].deleted, report.counts["deals"].deleted) == (2, 3)
    assert report.counts["contacts"].deleted == 3
    assert _references(engine, companies, deals, contacts) == dict.fromkeys(before, 0)
    after = local_rows(engine, "opportunity", crm="hubspot")[changed]
    assert after.amount == 12345 and after.account_id is None
    # the links are gone, the rows stay (deleted) as evidence
    assert all(local_rows(engine, "account", crm="hubspot")[c].is_deleted for c in companies)


def test_deactivated_owners_are_kept_with_their_name(
    engine: Engine, portal: tuple[HubSpotPortal, HubSpotConfig]
) -> None:
    hs, config = portal
    owners_with_calls = [o for o in hs.owners if any(c["properties"].get("hubspot_owner_id") == o["id"] for c in
                                                      hs.records("calls"))]  # fmt: skip
    gone, leaving = owners_with_calls[0], owners_with_calls[1]
    hs.deactivate_owner(gone["id"])  # left before the first sync

    sync(engine, config)
    owners = local_rows(engine, "owner", crm="hubspot")
    assert gone["id"] in owners, "a deactivated owner was not stored"
    stored = owners[gone["id"]]
    assert (stored.is_active, stored.is_deleted) == (False, False)
    assert stored.name == f"{gone['firstName']} {gone['lastName']}" and stored.email == gone["email"]
    calls = [a for a in local_rows(engine, "activity", crm="hubspot").values() if a.owner_id == gone["id"]]
    assert calls and all(not a.is_deleted for a in calls)

    hs.deactivate_owner(leaving["id"])  # leaves later; HubSpot need not move updatedAt
    sync(engine, config)
    stored = local_rows(engine, "owner", crm="hubspot")[leaving["id"]]
    assert (stored.is_active, stored.is_deleted) == (False, False)


def test_a_change_stamp_in_the_future_does_not_stall_the_stream(
    engine: Engine, portal: tuple[HubSpotPortal, HubSpotConfig]
) -> None:
    hs, config = portal
    sync(engine, config)
    wrong, later = (d["id"] for d in hs.records("deals")[:2])
    future = datetime(2031, 1, 1, tzinfo=UTC)
    hs.update("deals", wrong, {"dealname": "Imported with a wrong clock"}, modified_at=future)
    sync(engine, config)
    assert local_rows(engine, "opportunity", crm="hubspot")[wrong].name == "Imported with a wrong clock"
    with Session(engine) as session:
        state = session.execute(select(SyncState).where(SyncState.stream == "deals")).scalar_one()
    assert state.cursor_at is not None and state.cursor_at <= datetime.now(UTC), "the cursor passed the server's clock"

    connector = HubSpotConnector(config)
    connector.pipelines()  # any answer carries the server's clock (HTTP Date, whole seconds)
    assert connector.server_time is not None and abs((connector.server_time - datetime.now(UTC)).total_seconds()) < 5

    hs.update("deals", later, {"amount": "777"})  # an ordinary change afterwards is still found
    report = sync(engine, config)
    assert report.counts["deals"].written == 1
    assert local_rows(engine, "opportunity", crm="hubspot")[later].amount == 777
