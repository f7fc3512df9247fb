"""What routes one CRM's webhooks and app-card requests, from the settings: ``routes(settings, crm)``.

The decisions themselves are the CRM's (``connectors/<crm>/webhooks.py``: HubSpot by ``portalId``, Salesforce by
``OrganizationId``); this only gathers what they read: the webhook settings section (OKRSYNC_WEBHOOKS__…) and the
CRM's extra connections of OKRSYNC_CONNECTIONS with the value of the adapter's ``routing_setting``. An event routed
to no extra connection goes to the CRM's default one (``None``, stored as NULL in ``webhook_event.connection``).
"""

from __future__ import annotations

from connectors.registry import adapter
from connectors.webhooks import Routes
from service.kit.settings import Settings


def routes(settings: Settings, crm: str) -> Routes:
    """The webhook settings and ``crm``'s extra connections, name → routing value (None where not set)."""
    routing_setting = adapter(crm).routing_setting
    extra = {c.name: getattr(c, routing_setting, None) for c in settings.connections if c.crm == crm}
    return Routes(hooks=settings.webhooks, extra=extra)
