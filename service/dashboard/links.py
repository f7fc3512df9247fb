"""Links from the dashboard to the CRM records behind a number.

The sync stores where the CRM's record pages are with the connection (``instance_url``); the CRM's adapter
(``connectors/<crm>/adapter.py``: ``record_pages``, ``record_url``) knows how a record's page hangs below it.
Records without a page of their own (HubSpot engagements: calls, meetings…) are shown with their id."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session

from connectors.registry import UnknownCrmError
from connectors.registry import adapter as crm_adapter
from service.compute.repository import table
from service.crm.models import Account, Activity, Contact, CrmConnection, Lead, Opportunity


@dataclass(frozen=True)
class RecordLink:
    id: str
    label: str
    kind: str  # the CRM object: Opportunity, Task, deals, meetings… ("" when okrsync has no such record)
    url: str | None


def record_pages(crm: str, instance_url: str | None) -> str | None:
    """Where the CRM's record pages are, from what the sync stored with the connection; None while unknown (no sync
    yet; for HubSpot also when the account details call was refused, or an older okrsync stored the API host)."""
    try:
        return crm_adapter(crm).record_pages(instance_url)
    except UnknownCrmError:
        return None


def record_url(*, crm: str, instance_url: str | None, crm_object: str, record_id: str) -> str | None:
    """The record's page in the CRM, or None when okrsync cannot know it (engagements have no record page of
    their own: calls, meetings etc. get no link)."""
    pages = record_pages(crm, instance_url)
    if pages is None or not crm_object or not record_id:
        return None
    return crm_adapter(crm).record_url(pages, crm_object, record_id)


class RecordLinks:
    """Names and links for a page's records, read with one query per record table."""

    def __init__(self, session: Session, connection: CrmConnection) -> None:
        self.session, self.connection = session, connection
        self.found: dict[str, tuple[str, str]] = {}  # id -> (CRM object, label)

    def load(self, ids: Iterable[str]) -> None:
        wanted = sorted({i for i in ids if i} - set(self.found))
        if not wanted:
            return
        for model, label in (
            (Activity, "subject"),
            (Opportunity, "name"),
            (Account, "name"),
            (Contact, "name"),
            (Lead, "name"),  # speed-to-lead evidence names leads (a HubSpot lead is its contact: found above)
        ):
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
