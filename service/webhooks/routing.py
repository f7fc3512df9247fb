"""Which CRM connection a webhook or an app-card request is for. Pure functions of the settings (and, for the card,
of what the syncs learned): no FastAPI, no database.

- HubSpot webhooks: by the event's ``portalId``. An OKRSYNC_CONNECTIONS hubspot entry whose ``hubspot_portal_id``
  matches gets it; any other portal's event goes to the default HubSpot connection (as with one portal: HubSpot only
  sends what the app's installs subscribed to, and the default portal's id is not configured). One app client secret
  verifies every portal's requests: a public app installed in several portals signs them all with its one secret.
- HubSpot app card: stricter, because it answers with a record: ``portalId`` must be an extra connection's
  ``hubspot_portal_id`` or the portal the default connection's sync read from the account details API (stored with
  the connection as its record pages, ``https://<uiDomain>/contacts/<portalId>``). Any other portal — one the app is
  installed in but okrsync does not sync, or the default one before its first sync — is ``UnknownPortalError``
  (404), never the default portal's record with the same id.
- Salesforce Outbound Messages: by ``OrganizationId``: a well-formed id (15 or 18 letters and digits) naming the same
  org as the default one (OKRSYNC_WEBHOOKS__SALESFORCE_ORG_ID) or an OKRSYNC_CONNECTIONS salesforce entry's
  ``salesforce_org_id`` (``parse.salesforce_ids_match``: 15-character case-sensitive prefix, so 15 and 18 forms
  match). Anything else is refused without saying which org ids are expected: the org id is an Outbound Message's
  only credential.
- The Salesforce Flow callout is the default connection's only: its shared secret is the default org's.

``None`` means the CRM's default connection (stored as NULL in ``webhook_event.connection``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from service.kit.settings import Settings
from service.webhooks.parse import is_salesforce_id, salesforce_ids_match

_RECORD_PAGES_PORTAL = re.compile(r"/contacts/([0-9]{1,19})/?$")


class UnknownOrgError(Exception):
    """An Outbound Message from an org no connection is set up for; the message says what to configure."""


class UnknownPortalError(Exception):
    """An app-card request from a HubSpot portal no connection is for; the message says what to configure."""


def hubspot_connection(settings: Settings, portal_id: int) -> str | None:
    """The extra connection whose portal id this is, else None (the default HubSpot connection)."""
    for connection in settings.connections:
        if connection.hubspot is not None and connection.hubspot_portal_id == portal_id:
            return connection.name
    return None


def portal_of_record_pages(record_pages: str | None) -> int | None:
    """The portal id in the record pages a HubSpot sync stored (``https://app.hubspot.com/contacts/145000001``)."""
    found = _RECORD_PAGES_PORTAL.search(record_pages or "")
    return int(found.group(1)) if found else None


def hubspot_card_connections(settings: Settings, portal_id: int, *, record_pages: Mapping[str, str | None]) -> set[str]:
    """The names (as in ``crm_connection.name``) of the HubSpot connections an app card of portal ``portal_id`` may
    read: the extra connection configured with that portal id, else the default connections (every hubspot one that
    is not an extra connection: ``sandbox``, OKRSYNC_CONNECTION_NAME) whose sync learned that portal id.
    ``record_pages``: each HubSpot connection's stored record pages, by name. UnknownPortalError for any other portal.
    """
    extra = {c.name for c in settings.connections if c.hubspot is not None}
    routed = hubspot_connection(settings, portal_id)
    if routed is not None:
        return {routed}
    default = {
        name for name, pages in record_pages.items() if name not in extra and portal_of_record_pages(pages) == portal_id
    }
    if not default:
        raise UnknownPortalError(
            f"HubSpot portal {portal_id} is not connected to this okrsync (an extra portal needs its"
            " hubspot_portal_id in OKRSYNC_CONNECTIONS; the default portal is known after its first sync)"
        )
    return default


def salesforce_connection(settings: Settings, organization_id: str) -> str | None:
    """None for the default org, the extra connection's name for one of theirs; UnknownOrgError otherwise (the
    message never names an org id that is configured)."""
    # the connections' ids are validated by the settings; the default one is not, and may carry a newline from a file
    default = settings.webhooks.salesforce_org_id.strip() if settings.webhooks.salesforce_org_id else None
    extra = [c for c in settings.connections if c.salesforce_org_id]
    if default is None and not extra:
        raise UnknownOrgError(
            "this okrsync is not set up for Outbound Messages (OKRSYNC_WEBHOOKS__SALESFORCE_ORG_ID, or"
            " salesforce_org_id in OKRSYNC_CONNECTIONS)"
        )
    if not is_salesforce_id(organization_id):
        raise UnknownOrgError(
            "Outbound Message refused: OrganizationId is not a Salesforce id (15 or 18 letters and digits)"
        )
    if default is not None and salesforce_ids_match(organization_id, default):
        return None
    for connection in extra:
        if salesforce_ids_match(organization_id, connection.salesforce_org_id or ""):
            return connection.name
    raise UnknownOrgError(
        f"Outbound Message from org {organization_id} refused: no connection of this okrsync is for that org"
    )
