"""Salesforce record pages of the sandbox CRM: the pages okrsync's record links open (the dashboard's evidence,
hygiene and key-account links), so a link in the demo shows the record instead of a 404.

Salesforce has such a page for every record, ``/lightning/r/{SObject}/{Id}/view``: the URL format of the
``standard__recordPage`` page reference (Lightning Aura Components Developer Guide, "pageReference Types",
https://developer.salesforce.com/docs/atlas.en-us.lightning.meta/lightning/components_navigation_page_definitions.htm);
this stand-in is one plain HTML table of the record's fields. A record that does not exist, or was
deleted, answers 404 as Salesforce's page says it cannot find it. (HubSpot's record pages,
``/contacts/{portalId}/record/{objectTypeId}/{id}``, are served by ``hubspot_api``.)
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from connectors.sandbox.store import SandboxOrg

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


def create_record_pages_router(org: SandboxOrg) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/lightning/r/{sobject}/{record_id}/view")
    def salesforce_record(sobject: str, record_id: str) -> HTMLResponse:
        record = org.get(sobject, record_id) if org.sobject(sobject) is not None else None
        if record is None or record.get("IsDeleted"):
            return _page("Salesforce", "We couldn't find the record you're trying to access.", {}, status=404)
        return _page("Salesforce", f"{sobject}: {record.get('Name') or record.get('Subject') or record_id}", record)

    return router
