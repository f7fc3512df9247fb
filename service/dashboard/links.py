"""Links from the dashboard to the CRM records behind a number.

Salesforce: ``{instance_url}/lightning/r/{Object}/{Id}/view`` (the instance URL is stored with the connection).
HubSpot: ``https://app.hubspot.com/contacts/{portal id}/record/{type}/{id}`` for deals, companies and contacts — the
portal id is not stored by the sync yet, so HubSpot records are shown with their id and no link until it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy import select
from sqlmodel import Session

from service.compute.repository import table
from service.crm.models import Account, Activity, Contact, CrmConnection, Opportunity

HUBSPOT_TYPES = {"contacts": "0-1", "companies": "0-2", "deals": "0-3"}


@dataclass(frozen=True)
class RecordLink:
    id: str
    label: str
    kind: str  # the CRM object: Opportunity, Task, deals, meetings… ("" when okrsync has no such record)
    url: str | None


def record_url(
    *, crm: str, instance_url: str | None, crm_object: str, record_id: str, portal_id: int | None = None
) -> str | None:
    """The record's page in the CRM, or None when okrsync cannot know it."""
    if not crm_object or not record_id:
        return None
    if crm == "salesforce" and instance_url and instance_url.startswith(("https://", "http://")):
        return f"{instance_url.rstrip('/')}/lightning/r/{quote(crm_object, safe='')}/{quote(record_id, safe='')}/view"
    if crm == "hubspot" and portal_id and crm_object in HUBSPOT_TYPES:
        return f"https://app.hubspot.com/contacts/{portal_id}/record/{HUBSPOT_TYPES[crm_object]}/{quote(record_id)}"
    return None


class RecordLinks:
    """Names and links for a page's records, read with one query per record table."""

    def __init__(self, session: Session, connection: CrmConnection, *, portal_id: int | None = None) -> None:
        self.session, self.connection, self.portal_id = session, connection, portal_id
        self.found: dict[str, tuple[str, str]] = {}  # id -> (CRM object, label)

    def load(self, ids: Iterable[str]) -> None:
        wanted = sorted({i for i in ids if i} - set(self.found))
        if not wanted:
            return
        for model, label in ((Activity, "subject"), (Opportunity, "name"), (Account, "name"), (Contact, "name")):
            records = table(model)
            rows = self.session.execute(
                select(records.c.external_id, records.c.crm_object, records.c[label]).where(
                    records.c.connection_id == self.connection.id, records.c.external_id.in_(wanted)
                )
            ).all()
            for record_id, crm_object, text in rows:
                self.found.setdefault(record_id, (crm_object, text or record_id))

    def link(self, record_id: str) -> RecordLink:
        crm_object, label = self.found.get(record_id, ("", record_id))
        url = record_url(
            crm=self.connection.crm, instance_url=self.connection.instance_url, crm_object=crm_object,
            record_id=record_id, portal_id=self.portal_id,
        )  # fmt: skip
        return RecordLink(record_id, label, crm_object, url)
