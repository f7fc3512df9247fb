"""Links from the dashboard to the CRM records behind a number.

Salesforce: ``{instance_url}/lightning/r/{Object}/{Id}/view`` (the instance URL is stored with the connection).
HubSpot: ``https://{uiDomain}/contacts/{portalId}/record/{type}/{id}`` for deals, companies and contacts; the sync
stores ``https://{uiDomain}/contacts/{portalId}`` with the connection, read once from the account details API.
Engagements (calls, meetings…) have no record page of their own and are shown with their id."""

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


def record_pages(crm: str, instance_url: str | None) -> str | None:
    """Where the CRM's record pages are, from what the sync stored with the connection; None while unknown (no sync
    yet; for HubSpot also when the account details call was refused, or an older okrsync stored the API host)."""
    if not instance_url or not instance_url.startswith(("https://", "http://")):
        return None
    if crm == "hubspot" and "/contacts/" not in instance_url:
        return None
    return instance_url.rstrip("/")


def record_url(*, crm: str, instance_url: str | None, crm_object: str, record_id: str) -> str | None:
    """The record's page in the CRM, or None when okrsync cannot know it (engagements have no record page of
    their own: calls, meetings etc. get no link)."""
    pages = record_pages(crm, instance_url)
    if pages is None or not crm_object or not record_id:
        return None
    if crm == "salesforce":
        return f"{pages}/lightning/r/{quote(crm_object, safe='')}/{quote(record_id, safe='')}/view"
    if crm == "hubspot" and crm_object in HUBSPOT_TYPES:
        return f"{pages}/record/{HUBSPOT_TYPES[crm_object]}/{quote(record_id, safe='')}"
    return None


class RecordLinks:
    """Names and links for a page's records, read with one query per record table."""

    def __init__(self, session: Session, connection: CrmConnection) -> None:
        self.session, self.connection = session, connection
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
            record_id=record_id,
        )  # fmt: skip
        return RecordLink(record_id, label, crm_object, url)
