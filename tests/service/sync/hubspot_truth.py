"""The local copy of a HubSpot portal against the sandbox portal's truth, computed from the portal's own records and
associations (not from the connector's mapping): which records are live, and every link that makes a record count.

``differences`` returns readable lines, empty when the copy equals the truth. What it compares:
- live ids per object: companies → account, contacts → contact, deals → opportunity, engagements → activity;
- every company a live contact, deal or engagement is associated with (``record_account``), and its ``account_id``:
  the primary company when HubSpot marks one, else one of its companies (None without any);
- the contacts of each live engagement (``activity_contact``) and its ``opportunity_id`` (one of its deals);
- the live deal↔contact links (``opportunity_contact``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from connectors.sandbox.hubspot_portal import HubSpotPortal, modified_property
from service.crm.models import (
    Account,
    Activity,
    ActivityContact,
    Contact,
    CrmConnection,
    Opportunity,
    OpportunityContact,
    RecordAccount,
)

ENGAGEMENTS = ("calls", "emails", "meetings", "notes", "tasks")
KINDS = {"companies": Account, "contacts": Contact, "deals": Opportunity, **dict.fromkeys(ENGAGEMENTS, Activity)}


def _truth(portal: HubSpotPortal) -> dict[str, Any]:
    live = {kind: {str(r["id"]) for r in portal.snapshot(kind)} for kind in KINDS}
    companies: dict[tuple[str, str], set[str]] = {}
    primary: dict[tuple[str, str], str | None] = {}
    contacts: dict[str, set[str]] = {}
    deals: dict[str, set[str]] = {}
    for kind in ("contacts", "deals", *ENGAGEMENTS):
        record_kind = {"contacts": "contact", "deals": "opportunity"}.get(kind, "activity")
        for record in live[kind]:
            linked = {str(c) for c, _t in portal.associations(kind, record, "companies")} & live["companies"]
            companies[(record_kind, record)] = linked
            marked = portal.primary_company(kind, record) if kind in ("contacts", "deals") else None
            primary[(record_kind, record)] = str(marked) if marked is not None and str(marked) in linked else None
            if kind in ENGAGEMENTS:
                people = {str(c) for c, _t in portal.associations(kind, record, "contacts")}
                contacts[record] = people & live["contacts"]
                deals[record] = {str(d) for d, _t in portal.associations(kind, record, "deals")} & live["deals"]
    deal_contacts = {
        (deal, str(c))
        for deal in live["deals"]
        for c, _t in portal.associations("deals", deal, "contacts")
        if str(c) in live["contacts"]
    }
    return {"live": live, "companies": companies, "primary": primary, "contacts": contacts, "deals": deals,
            "deal_contacts": deal_contacts}  # fmt: skip


def _local(engine: Engine, connection: str) -> dict[str, Any]:
    with Session(engine) as session:
        conn_id = session.execute(
            select(CrmConnection.id).where(CrmConnection.crm == "hubspot", CrmConnection.name == connection)
        ).scalar_one()
        live: dict[str, set[str]] = defaultdict(set)
        account_id: dict[tuple[str, str], str | None] = {}
        opportunity_id: dict[str, str | None] = {}
        for table, record_kind in ((Account, "account"), (Contact, "contact"), (Opportunity, "opportunity")):
            for external_id, crm_object, *rest in session.execute(
                select(
                    table.external_id, table.crm_object, *([table.account_id] if table is not Account else [])
                ).where(table.connection_id == conn_id, table.is_deleted.is_(False))  # type: ignore[attr-defined]  # type: ignore[attr-defined]
            ):
                live[crm_object].add(external_id)
                if rest:
                    account_id[(record_kind, external_id)] = rest[0]
        for external_id, crm_object, account, opportunity in session.execute(
            select(Activity.external_id, Activity.crm_object, Activity.account_id, Activity.opportunity_id).where(
                Activity.connection_id == conn_id,
                Activity.is_deleted.is_(False),  # type: ignore[arg-type]
            )
        ):
            live[crm_object].add(external_id)
            account_id[("activity", external_id)] = account
            opportunity_id[external_id] = opportunity
        companies: dict[tuple[str, str], set[str]] = defaultdict(set)
        for kind, record, account in session.execute(
            select(RecordAccount.record_kind, RecordAccount.record_id, RecordAccount.account_id).where(
                RecordAccount.connection_id == conn_id  # type: ignore[arg-type]
            )
        ):
            companies[(kind, record)].add(account)
        contacts: dict[str, set[str]] = defaultdict(set)
        for activity, contact in session.execute(
            select(ActivityContact.activity_id, ActivityContact.contact_id).where(
                ActivityContact.connection_id == conn_id  # type: ignore[arg-type]
            )
        ):
            contacts[activity].add(contact)
        deal_contacts = {
            (deal, contact)
            for deal, contact in session.execute(
                select(OpportunityContact.opportunity_id, OpportunityContact.contact_id).where(
                    OpportunityContact.connection_id == conn_id,  # type: ignore[arg-type]
                    OpportunityContact.is_deleted.is_(False),  # type: ignore[attr-defined]
                )
            )
        }
    return {"live": live, "account_id": account_id, "opportunity_id": opportunity_id, "companies": companies,
            "contacts": contacts, "deal_contacts": deal_contacts}  # fmt: skip


def differences(
    engine: Engine,
    portal: HubSpotPortal,
    *,
    connection: str = "sandbox",
    limit: int = 20,
    skip: Collection[tuple[str, str]] = (),
    skip_links: Collection[tuple[str, str]] = (),
) -> list[str]:
    """Where the local copy differs from the portal (at most ``limit`` lines); [] when it equals it.

    ``skip``: records, as (HubSpot object type, id), left out altogether (whether live, their links, links to them);
    ``skip_links``: records whose own links (companies, account_id, an engagement's contacts and deal, a deal's
    contacts) are not compared, e.g. while an association change that HubSpot did not stamp waits for its webhook."""
    truth, local = _truth(portal), _local(engine, connection)
    skipped, unlinked = set(skip), set(skip) | set(skip_links)
    found: list[str] = []
    for kind in KINDS:
        missing, extra = truth["live"][kind] - local["live"][kind], local["live"][kind] - truth["live"][kind]
        missing = {i for i in missing if (kind, i) not in skipped}
        extra = {i for i in extra if (kind, i) not in skipped}
        if missing or extra:
            found.append(f"{kind}: missing {sorted(missing)[:5]}, live but gone {sorted(extra)[:5]}")
    for key, linked in truth["companies"].items():
        if key[1] not in local["live"][_object(key, truth)] or (_object(key, truth), key[1]) in unlinked:
            continue
        here = local["companies"].get(key, set())
        if here != linked:
            found.append(f"{key[0]} {key[1]}: companies {sorted(here)}, HubSpot {sorted(linked)}")
        account = local["account_id"].get(key)
        wanted = truth["primary"][key]
        if (
            (wanted is not None and account != wanted)
            or (wanted is None and account not in linked | {None})
            or (linked and account is None)
        ):
            found.append(f"{key[0]} {key[1]}: account_id {account}, HubSpot primary {wanted} of {sorted(linked)}")
    for activity, linked in truth["contacts"].items():
        engagement = _object(("activity", activity), truth)
        if activity not in local["live"][engagement] or (engagement, activity) in unlinked:
            continue
        if local["contacts"].get(activity, set()) != linked:
            found.append(f"activity {activity}: contacts {sorted(local['contacts'].get(activity, set()))}, "
                         f"HubSpot {sorted(linked)}")  # fmt: skip
        deal, deals = local["opportunity_id"].get(activity), truth["deals"][activity]
        if (deal is None) != (not deals) or (deal is not None and deal not in deals):
            found.append(f"activity {activity}: opportunity_id {deal}, HubSpot deals {sorted(deals)}")

    def compared(pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
        return {(d, c) for d, c in pairs if ("deals", d) not in unlinked and ("contacts", c) not in skipped}

    wanted_pairs, local_pairs = compared(truth["deal_contacts"]), compared(local["deal_contacts"])
    if local_pairs != wanted_pairs:
        extra = sorted(local_pairs - wanted_pairs)[:5]
        missing = sorted(wanted_pairs - local_pairs)[:5]
        found.append(f"deal↔contact: live but gone {extra}, missing {missing}")
    return found[:limit]


def _object(key: tuple[str, str], truth: dict[str, Any]) -> str:
    """The HubSpot object of a (record kind, id) key."""
    if key[0] == "contact":
        return "contacts"
    if key[0] == "opportunity":
        return "deals"
    return next(kind for kind in ENGAGEMENTS if key[1] in truth["live"][kind])


def stale_records(
    engine: Engine,
    portal: HubSpotPortal,
    *,
    connection: str = "sandbox",
    skip: Collection[tuple[str, str]] = (),
    unstamped: Collection[str] = (),
    limit: int = 20,
) -> list[str]:
    """Live records stored at another version than the portal's (at most ``limit`` lines): the change stamp
    (``modified_at``) and every property value kept in ``raw``. ``skip``: records (object type, id) left out;
    ``unstamped``: property names not compared, values HubSpot changes without a new stamp (a company merge rewrites
    its contacts' ``associatedcompanyid``)."""
    found: list[str] = []
    skipped, ignored = set(skip), set(unstamped)
    with Session(engine) as session:
        conn_id = session.execute(
            select(col(CrmConnection.id)).where(
                col(CrmConnection.crm) == "hubspot", col(CrmConnection.name) == connection
            )
        ).scalar_one()
        for kind, model in KINDS.items():
            table: Any = model
            stored = {
                external_id: (modified_at, raw)
                for external_id, modified_at, raw in session.execute(
                    select(table.external_id, table.modified_at, table.raw).where(
                        table.connection_id == conn_id, table.crm_object == kind, table.is_deleted.is_(False)
                    )
                )
            }
            for record in portal.snapshot(kind):
                if (kind, record["id"]) in skipped or record["id"] not in stored:
                    continue  # a missing record is one of differences()
                modified_at, raw = stored[record["id"]]
                stamp = record["properties"][modified_property(kind)]
                if _utc(modified_at) != datetime.fromisoformat(stamp.replace("Z", "+00:00")):
                    found.append(f"{kind} {record['id']}: stored version {modified_at}, HubSpot {stamp}")
                    continue
                values = (raw or {}).get("properties") or {}
                wrong = {
                    name: (value, record["properties"].get(name))
                    for name, value in values.items()
                    if name not in ignored and value != record["properties"].get(name)
                }
                if wrong:
                    found.append(f"{kind} {record['id']}: (stored, HubSpot) {wrong}")
    return found[:limit]


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
