"""The seam between okrsync and a CRM: one ``CrmAdapter`` per CRM, found by name in ``connectors.registry``.

Everything that differs between CRMs lives behind this object, in the CRM's own folder (``connectors/salesforce/``,
``connectors/hubspot/``): how to pull its streams and fetch records a webhook names (the connector), how to write
okrsync's results back and what it writes (the writer), its settings section (``config_type``), its sandbox, where a
``raw.`` or custom field sits in the payload it stores, how a record links to its page in the CRM and which
connection setting routes its webhooks, and the webhook routes it
serves (``receivers``). ``service/`` and ``mappings/`` ask the adapter and hold no branch on a CRM's
name, so a third CRM is a new folder and one line in the registry.

``tests/service/test_crm_seam.py`` runs the whole loop (sync, compute, stage, write-back, targeted refresh) through
a test-only adapter over in-memory records, with no change in ``service/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel

from connectors.webhooks import Inbound, Receiver, Routes
from connectors.writes import Target, Writer


@dataclass(frozen=True)
class SandboxMeeting:
    """A meeting logged in the sandbox CRM for the demo, and the webhook request the CRM sends about it."""

    owner_id: str
    account: str | None  # the account's name, when it has one
    path: str  # the sidecar's webhook route: /webhooks/hubspot
    body: bytes
    headers: dict[str, str]


class CrmAdapter(Protocol):
    name: str  # the CRM's key: the `okrsync sync <name>` command, connection keys, webhook events, settings section
    title: str  # how people write it: "Salesforce"
    pulls: str  # what a sync reads, one sentence (the help of `okrsync sync <name>`)
    config_type: type[BaseModel]  # the settings section (OKRSYNC_<NAME>__…)
    required_setting: str  # the setting named first when the CRM is not configured (OKRSYNC_<NAME>__<this>)
    routing_setting: str  # the OKRSYNC_CONNECTIONS field that routes this CRM's webhooks to an extra connection
    raw_prefix: tuple[str, ...]  # where a record's fields sit in its stored raw payload (HubSpot: "properties")
    # None: the writer's provision() creates okrsync's objects and fields through the API (`okrsync provision
    # <name>`); else how an admin deploys them instead (Salesforce: metadata with the sf CLI)
    provision_hint: str | None
    receivers: tuple[Receiver, ...]  # its inbound webhook routes, each served as POST /webhooks{path}
    sandbox_examples: tuple[str, ...]  # the example mappings (mappings/examples/<name>.yaml) its sandbox data fits
    app_card: bool  # True: it has an in-record app card served at GET /api/v1/<name>/card (see card_connections)

    def connector(self, config: Any) -> Any:
        """The pull connector (streams, pages, targeted ``fetch``) for a connection configured with ``config``."""
        ...

    def writer(self, config: Any) -> Writer:
        """The writer (write-back and provisioning) for a connection configured with ``config``."""
        ...

    def provision(self, config: Any) -> Any:
        """Create okrsync's objects and fields in the CRM (safe to run again) and report what was done (``what`` it
        keeps there, lists ``created``, ``present`` and ``problems``); only when ``provision_hint`` is None."""
        ...

    def written_fields(self, config: Any | None) -> dict[Target, frozenset[str]]:
        """The neutral fields written per target for ``config`` (None: the CRM's defaults)."""
        ...

    def sandbox_config(self, base_url: str, ca_path: str, options: Any = None) -> Any:
        """Settings that reach this CRM's part of the built-in sandbox at ``base_url`` (``options``: the sandbox
        settings section)."""
        ...

    def sandbox_meeting(
        self, sandbox: Any, copy_of: str, now: datetime, *, hooks: Any, public_url: str, event_id: int
    ) -> SandboxMeeting:
        """Log a copy of meeting ``copy_of`` (same account, opportunity and people) dated ``now`` in this CRM's part
        of the running sandbox server, and build the webhook the CRM sends about it, signed with the secrets of
        ``hooks`` (OKRSYNC_WEBHOOKS__…) for ``public_url``; ``event_id``: a number for the event, new each time."""
        ...

    def records_named(self, kind: str | None, object_id: str, payload: dict[str, Any]) -> set[str]:
        """The ids a stored webhook event (``kind``, ``object_id``, its stored ``payload``) asks to read again:
        ``object_id`` and whatever else the event names."""
        ...

    def webhook_settings_problem(self, hooks: Any) -> str | None:
        """What is missing in the webhook settings section (``OKRSYNC_WEBHOOKS__…``) for this CRM's webhooks to be
        verified in production; None when nothing is."""
        ...

    def card_connections(
        self, inbound: Inbound, routes: Routes, portal_id: int | None, record_pages: dict[str, str | None]
    ) -> set[str]:
        """The connections an app-card request may read (only when ``app_card``): ``connectors.webhooks.Refused``
        when it is not verified or from an account no connection is for. ``portal_id``: the account the card
        request names; ``record_pages``: each of this CRM's connections' stored record pages, by name."""
        ...

    def record_pages(self, instance_url: str | None) -> str | None:
        """Where the CRM's record pages are, from what the sync stored with the connection; None while unknown."""
        ...

    def record_url(self, pages: str, crm_object: str, record_id: str) -> str | None:
        """The page of one record under ``pages`` (see ``record_pages``); None when it has none of its own."""
        ...


def raw_path(adapter: CrmAdapter, name: str) -> tuple[str, ...]:
    """The path of a dotted field name (``Segment__c``, ``hs_deal_stage_probability``) in a stored raw payload."""
    return (*adapter.raw_prefix, *name.split("."))
