"""How the command line reaches a CRM: the configured org/portal, or the built-in sandbox CRM on loopback.

``open_crm()`` returns a :class:`CrmAccess` holding the connector settings and the connection name rows are filed
under; with the sandbox it also starts the sandbox server (closed with the ``ExitStack``). The sandbox's demo
credentials are published constants of the sandbox, not secrets. ``extra_crms()`` adds the connections of
``OKRSYNC_CONNECTIONS``.

Connection keys: the worker, its leases' names and the webhook events name a connection by its key — ``salesforce``
or ``hubspot`` for a CRM's default connection (event ``connection`` NULL), ``hubspot/west`` for an extra one.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from connectors.adapter import CrmAdapter
from connectors.registry import adapter as crm_adapter
from connectors.writes import Writer
from service.kit.settings import Settings


class NotConfiguredError(Exception):
    """The CRM has no settings and no sandbox was asked for."""


def sandbox_crms(settings: Settings) -> tuple[Any, Any]:
    """The built-in sandbox: a Salesforce org and a HubSpot portal telling the same quarter, generated from the
    sandbox settings (its anchor date kept in data_dir so restarts match)."""
    from connectors.sandbox.world import sandbox_world

    return sandbox_world(settings.data_dir / "sandbox", settings.sandbox)


@dataclass
class CrmAccess:
    """One CRM connection as the command line reaches it: the CRM's name, the connection name rows are filed under,
    the connection's settings (the CRM adapter's ``config_type``) and the sandbox server when this process started
    one."""

    crm: str
    connection_name: str
    config: Any
    sandbox: Any = None  # the SandboxServer when this process started one

    @property
    def adapter(self) -> CrmAdapter:
        return crm_adapter(self.crm)

    def connector(self) -> Any:
        return self.adapter.connector(self.config)

    def writer(self) -> Writer:
        return self.adapter.writer(self.config)


def connection_key(crm: str, connection: str | None) -> str:
    """``hubspot`` for the CRM's default connection (``connection`` None), ``hubspot/west`` for an extra one."""
    return crm if connection is None else f"{crm}/{connection}"


def event_connection(key: str) -> tuple[str, str | None]:
    """The inverse of ``connection_key``: (crm, None) for a default connection, (crm, name) for an extra one."""
    crm, _, name = key.partition("/")
    return crm, name or None


def extra_crms(settings: Settings) -> dict[str, CrmAccess]:
    """The connections of OKRSYNC_CONNECTIONS, keyed ``crm/name``."""
    return {c.key: CrmAccess(c.crm, c.name, c.config) for c in settings.connections}


def open_crm(
    stack: ExitStack, crm: str, settings: Settings, *, use_sandbox: bool = False, sandbox_url: str | None = None
) -> CrmAccess:
    """Settings for ``crm`` (a name in ``connectors.registry``): the sandbox (started here, or running at
    ``sandbox_url``) or the configured org/portal. Raises NotConfiguredError naming the settings to set."""
    adapter = crm_adapter(crm)
    if use_sandbox or sandbox_url:
        server = None
        if sandbox_url:
            base_url, ca_path = sandbox_url, str(settings.data_dir / "sandbox" / "ca.pem")
        else:
            from connectors.sandbox.server import SandboxServer

            org, portal = sandbox_crms(settings)
            server = stack.enter_context(SandboxServer(org, portal=portal, cert_dir=settings.data_dir / "sandbox"))
            base_url, ca_path = server.base_url, server.ca_path or ""
        config = adapter.sandbox_config(base_url, ca_path, settings.sandbox)
        return CrmAccess(crm, "sandbox", config, sandbox=server)
    configured = getattr(settings, crm, None)  # the CRM's settings section, OKRSYNC_<CRM>__…
    if configured is not None:
        return CrmAccess(crm, settings.connection_name, configured)
    raise NotConfiguredError(
        f"{crm} is not configured. Set OKRSYNC_{crm.upper()}__{adapter.required_setting} and the other settings"
        f" (see docs/connecting-crms.md: 'Connecting a real {adapter.title}'), or try it with --sandbox."
    )
