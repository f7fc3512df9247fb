"""Record pages of the sandbox CRM: the pages okrsync's record links open (the dashboard's evidence, hygiene and
key-account links), so a link in the demo shows the record instead of a 404.

Real CRMs have such a page for every record; these are stand-ins, one plain HTML table of the record's fields:

- Salesforce Lightning: ``/lightning/r/{SObject}/{Id}/view`` (the URL form of
  https://developer.salesforce.com/docs/atlas.en-us.uiapi.meta/uiapi/ui_api_url_format.htm, "record view");
- HubSpot: ``/contacts/{portalId}/record/{objectTypeId}/{recordId}`` (0-1 contacts, 0-2 companies, 0-3 deals), the
  form HubSpot's record pages take on app.hubspot.com.

A record that does not exist, or was deleted, answers 404 as the CRM's page would say it cannot find it.
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from connectors.sandbox.hubspot_portal import HubSpotPortal
from connectors.sandbox.store import SandboxOrg

HUBSPOT_TYPES = {"0-1": "contacts", "0-2": "companies", "0-3": "deals"}
PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; margin: 1.5rem; max-width: 60rem">
<p style="color: #59636e">okrsync sandbox CRM · {crm} record page (a stand-in for the CRM's own)</p>
<h1>{title}</h1>
<table style="border-collapse: collapse">{rows}</table></body></html>"""


def _page(crm: str, title: str, fields: dict[str, Any], status: int = 200) -> HTMLResponse:
    rows = "".join(
        f'<tr><th style="text-align: left; padding: .2rem 1rem .2rem 0">{escape(str(k))}</th>'
        f"<td>{escape('' if v is None else str(v))}</td></tr>"
        for k, v in fields.items()
        if not isinstance(v, dict | list)
    )
    return HTMLResponse(PAGE.format(crm=crm, title=escape(title), rows=rows), status_code=status)


def create_record_pages_router(org: SandboxOrg, portal: HubSpotPortal | None) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/lightning/r/{sobject}/{record_id}/view")
    def salesforce_record(sobject: str, record_id: str) -> HTMLResponse:
        record = org.get(sobject, record_id) if org.sobject(sobject) is not None else None
        if record is None or record.get("IsDeleted"):
            return _page("Salesforce", "We couldn't find the record you're trying to access.", {}, status=404)
        return _page("Salesforce", f"{sobject}: {record.get('Name') or record.get('Subject') or record_id}", record)

    @router.get("/contacts/{portal_id}/record/{type_id}/{record_id}")
    def hubspot_record(portal_id: str, type_id: str, record_id: str) -> HTMLResponse:
        kind = HUBSPOT_TYPES.get(type_id)
        record = portal.get(kind, record_id) if portal is not None and kind is not None else None
        if record is None or record.get("archived"):
            return _page("HubSpot", "This record doesn't exist or was deleted.", {}, status=404)
        properties = dict(record.get("properties") or {})
        name = properties.get("dealname") or properties.get("name") or properties.get("email") or record_id
        return _page("HubSpot", f"{kind}: {name}", {"id": record.get("id"), **properties})

    return router
