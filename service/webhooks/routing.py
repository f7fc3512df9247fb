"""Which CRM connection a webhook is for. Pure functions of the settings: no FastAPI, no database.

- HubSpot: by the event's ``portalId``. An OKRSYNC_CONNECTIONS hubspot entry whose ``hubspot_portal_id`` matches
  gets it; any other portal's event goes to the default HubSpot connection (as with one portal: HubSpot only sends
  what the app's installs subscribed to, and the default portal's id is not configured). One app client secret
  verifies every portal's requests: a public app installed in several portals signs them all with its one secret.
- Salesforce Outbound Messages: by ``OrganizationId`` (15-character prefix, so 15 and 18 forms match). The default
  org (OKRSYNC_WEBHOOKS__SALESFORCE_ORG_ID) or an OKRSYNC_CONNECTIONS salesforce entry's ``salesforce_org_id``; a
  message from any other org is refused.
- The Salesforce Flow callout is the default connection's only: its shared secret is the default org's.

``None`` means the CRM's default connection (stored as NULL in ``webhook_event.connection``).
"""

from __future__ import annotations

from service.kit.settings import Settings


class UnknownOrgError(Exception):
    """An Outbound Message from an org no connection is set up for; the message says what to configure."""


def hubspot_connection(settings: Settings, portal_id: int) -> str | None:
    """The extra connection whose portal id this is, else None (the default HubSpot connection)."""
    for connection in settings.connections:
        if connection.hubspot is not None and connection.hubspot_portal_id == portal_id:
            return connection.name
    return None


def salesforce_connection(settings: Settings, organization_id: str) -> str | None:
    """None for the default org, the extra connection's name for one of theirs; UnknownOrgError otherwise."""
    org = organization_id[:15]
    default = settings.webhooks.salesforce_org_id
    if default is not None and org == default[:15]:
        return None
    extra = {c.salesforce_org_id[:15]: c.name for c in settings.connections if c.salesforce_org_id}
    if org in extra:
        return extra[org]
    expected = ([default] if default else []) + sorted(
        c.salesforce_org_id or "" for c in settings.connections if c.salesforce_org_id
    )
    if not expected:
        raise UnknownOrgError(
            "this okrsync is not set up for Outbound Messages (OKRSYNC_WEBHOOKS__SALESFORCE_ORG_ID, or"
            " salesforce_org_id in OKRSYNC_CONNECTIONS)"
        )
    if len(expected) == 1:
        raise UnknownOrgError(f"Outbound Message from org {organization_id}, expected {expected[0]}")
    raise UnknownOrgError(f"Outbound Message from org {organization_id}, expected one of {', '.join(expected)}")
