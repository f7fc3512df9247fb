"""The one settings object: environment variables prefixed ``OKRSYNC_`` (nested with ``__``) or a ``.env`` file.

Examples::

    OKRSYNC_DATABASE_URL=postgresql://okrsync@db:5432/okrsync
    OKRSYNC_SALESFORCE__INSTANCE_URL=https://acme.my.salesforce.com
    OKRSYNC_SALESFORCE__CONSUMER_KEY=3MVG9...
    OKRSYNC_SALESFORCE__USERNAME=integration@acme.com
    OKRSYNC_SALESFORCE__JWT_PRIVATE_KEY_FILE=/run/secrets/salesforce.key
    OKRSYNC_SALESFORCE__CUSTOM_FIELDS='{"Opportunity": ["Segment__c"]}'
    OKRSYNC_CONNECTIONS='[{"name": "west", "hubspot": {"access_token": "pat-eu1-..."}, "hubspot_portal_id": 145000002}]'

``OKRSYNC_SALESFORCE__…`` and ``OKRSYNC_HUBSPOT__…`` are the default connections (filed under
``OKRSYNC_CONNECTION_NAME``); ``OKRSYNC_CONNECTIONS`` adds more orgs and portals (``ConnectionSettings``). A settings
error names the variable, the connection and the field, never a value (secrets stay out of messages and logs).
"""

from __future__ import annotations

import ipaddress
import json
import re
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from connectors.hubspot.config import HubSpotConfig
from connectors.registry import BUILT_IN
from connectors.registry import adapter as crm_adapter
from connectors.salesforce.config import SalesforceConfig
from service.notifications.settings import NotificationSettings


class SandboxSettings(BaseModel):
    """The built-in sandbox CRM (a fake org on loopback, seeded deterministically)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    seed: int = 42
    accounts: int = Field(default=400, ge=1)
    opportunities: int = Field(default=1000, ge=0)
    activities: int = Field(default=20_000, ge=0)
    anchor: datetime | None = Field(
        default=None,
        description="End of the generated quarter (default: the first run's time, kept in data_dir). The example "
        "mappings use Q3 2026: `make run-steps` sets 2026-09-30T18:00:00Z (`okrsync demo` moves them to now).",
    )

    latency_seconds: float = Field(
        default=0, ge=0, le=30, description="`okrsync sandbox`: delay every CRM API answer (benchmarks, fault tests)."
    )
    hubspot_writeback_mode: Literal["custom_objects", "properties"] = Field(
        default="custom_objects", description="How okrsync writes back to the sandbox HubSpot portal."
    )
    portal_id: int = Field(
        default=145_000_001,
        ge=1,
        description="Hub id of the sandbox HubSpot portal (its webhooks carry it as portalId); give two sandboxes "
        "different ones to try several portals in one deployment.",
    )


class WebhookSettings(BaseModel):
    """What the sidecar needs to trust CRM webhooks."""

    public_base_url: str | None = Field(
        default=None,
        description="The URL the CRMs call, e.g. https://okrsync.acme.com. HubSpot signs the full URL it called; "
        "behind a proxy the server cannot see it, so it is rebuilt from this.",
        examples=["https://okrsync.acme.com"],
    )
    hubspot_client_secret: SecretStr | None = Field(
        default=None, description="The HubSpot app's client secret (signature v3 of webhooks and app-card requests)."
    )
    salesforce_org_id: str | None = Field(
        default=None, description="Outbound Messages from any other org are refused (15 or 18 characters)."
    )
    flow_secret: SecretStr | None = Field(
        default=None, description="Shared secret of the Salesforce Flow HTTP callout (X-Okrsync-Signature HMAC)."
    )
    max_body_bytes: int = Field(default=1_000_000, ge=1_000, description="Larger webhook bodies are refused (413).")


class ServeSettings(BaseModel):
    """The sidecar: API, webhooks and the background worker."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    sync_interval_seconds: float = Field(
        default=300, gt=0, description="A periodic incremental sync runs even without webhooks (they can be lost)."
    )
    worker_poll_seconds: float = Field(default=0.5, gt=0, description="How often the worker looks for new events.")
    coalesce_seconds: float = Field(
        default=1.0, ge=0, description="Wait this long after the first pending event so a burst is refreshed once."
    )
    lease_seconds: float = Field(
        default=60, gt=0, description="A worker killed mid-pass leaves its CRM connection to another after this long."
    )
    max_body_bytes: int = Field(
        default=4_000_000,
        ge=10_000,
        description="A request body above this is refused with 413 before it is read (mapping files are at most "
        "1 MB, webhook deliveries far less).",
    )
    preview_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="A key result's live preview in the planning builder (its value this cycle and last) stops "
        "after this long with a message, so one slow filter cannot hold a request.",
    )
    trusted_proxies: str = Field(
        default="127.0.0.1",
        description="Comma-separated addresses or networks (10.0.0.0/8) of the reverse proxies (an Ingress, a load "
        "balancer) whose X-Forwarded-Proto and X-Forwarded-For are believed: behind TLS ended there, the dashboard's "
        "cookies are Secure only if the proxy is trusted. Requests from other addresses have the headers ignored.",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: str) -> str:
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        for entry in entries:
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network (e.g. 10.0.0.0/8)") from None
        return ",".join(entries)


CONNECTION_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
SANDBOX_CONNECTION = "sandbox"  # the name the built-in sandbox CRM's rows are filed under
_SALESFORCE_ID = re.compile(r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$")


class ConnectionSettings(BaseModel):
    """One more CRM connection beside the default ones: a Salesforce org or a HubSpot portal, its rows filed under
    ``name`` (``hubspot/west``), its webhooks routed to it by org id or portal id."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        description="Lower-case letters, digits, _ and -, at most 40, unique per CRM; the rows are filed under "
        "crm/name (e.g. hubspot/west).",
        examples=["west"],
    )
    salesforce: SalesforceConfig | None = Field(
        default=None, description="The org's settings (as OKRSYNC_SALESFORCE__…)."
    )
    hubspot: HubSpotConfig | None = Field(default=None, description="The portal's settings (as OKRSYNC_HUBSPOT__…).")
    salesforce_org_id: str | None = Field(
        default=None,
        description="Outbound Messages from this org id go to this connection.",
        examples=["00D5g000004ABCD"],
    )
    hubspot_portal_id: int | None = Field(
        default=None, ge=1, description="HubSpot webhook events with this portalId go to this connection.",
        examples=[145000002],
    )  # fmt: skip

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not CONNECTION_NAME.match(value):
            raise ValueError(
                f"{value!r} is not a connection name: 1 to 40 lower-case letters, digits, _ or -, starting with a"
                " letter or digit"
            )
        return value

    @field_validator("salesforce_org_id")
    @classmethod
    def _org_id(cls, value: str | None) -> str | None:
        if value is not None and not _SALESFORCE_ID.match(value):
            raise ValueError(f"{value!r} is not a Salesforce org id (15 or 18 letters and digits, e.g. 00D5g0…)")
        return value

    @model_validator(mode="after")
    def _one_crm(self) -> ConnectionSettings:
        if (self.salesforce is None) == (self.hubspot is None):
            given = "both" if self.salesforce is not None else "neither"
            raise ValueError(f'give exactly one of "salesforce" or "hubspot" (got {given})')
        if self.salesforce_org_id is not None and self.salesforce is None:
            raise ValueError(
                '"salesforce_org_id" belongs to a salesforce connection; a hubspot one routes by portal id'
            )
        if self.hubspot_portal_id is not None and self.hubspot is None:
            raise ValueError('"hubspot_portal_id" belongs to a hubspot connection; a salesforce one routes by org id')
        return self

    @property
    def crm(self) -> str:
        """The CRM this connection is in: the one settings section given."""
        return next(name for name in BUILT_IN if getattr(self, name) is not None)

    @property
    def config(self) -> Any:
        """The connection's settings section (the CRM adapter's ``config_type``)."""
        return getattr(self, self.crm)

    @property
    def key(self) -> str:
        """``crm/name``: how the worker, its leases and the webhook events name this connection."""
        return f"{self.crm}/{self.name}"


def _where(connections: Any, index: Any) -> str:
    """``OKRSYNC_CONNECTIONS[1] ('west')``: the position, and the name when the input has a usable one."""
    name = None
    if isinstance(index, int) and isinstance(connections, list) and index < len(connections):
        item = connections[index]
        name = item.get("name") if isinstance(item, dict) else None
    place = f"OKRSYNC_CONNECTIONS[{index}]" if isinstance(index, int) else "OKRSYNC_CONNECTIONS"
    return f"{place} ({name!r})" if isinstance(name, str) else place


def _problem(connections: Any, error: Any) -> str:
    """One validation error of OKRSYNC_CONNECTIONS as 'where: field: what', never with the input (secrets)."""
    loc = list(error["loc"])
    index = loc.pop(0) if loc and isinstance(loc[0], int) else None
    field = ".".join(str(part) for part in loc)
    message = str(error["msg"]).removeprefix("Value error, ")
    # the CRM configs name their settings as the default connection's variables; here they are JSON fields
    message = re.sub(r"OKRSYNC_(SALESFORCE|HUBSPOT)__([A-Z_]+)", lambda m: f"{m[1].lower()}.{m[2].lower()}", message)
    if error["type"] == "missing":
        message = "missing"
    return f"{_where(connections, index)}: {field + ': ' if field else ''}{message}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OKRSYNC_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        hide_input_in_errors=True,  # a settings error must never print a token or a password
    )

    data_dir: Path = Field(default=Path(".okrsync"), description="SQLite file, sandbox certificates, state.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; SQLite file in data_dir when empty. postgresql://user@host:5432/db for prod.",
    )
    connection_name: str = Field(default="default", description="Name of the CRM connection rows are filed under.")
    salesforce: SalesforceConfig | None = None
    hubspot: HubSpotConfig | None = None
    connections: list[ConnectionSettings] = Field(
        default_factory=list,
        description="More orgs and portals beside the default ones (OKRSYNC_SALESFORCE__…, OKRSYNC_HUBSPOT__…), "
        "as JSON: each its name, exactly one of salesforce or hubspot, and the org id or portal id its webhooks "
        "carry.",
    )
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    log_level: str = "INFO"
    mode: Literal["development", "production"] = Field(
        default="development",
        description="production: okrsync serve and okrsync worker refuse to start while a setting a real deployment "
        "needs is missing or still a placeholder (PostgreSQL, a CRM, webhook secrets and URL).",
    )

    @field_validator("connections", mode="wrap")
    @classmethod
    def _name_the_connection(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            problems = "; ".join(_problem(value, error) for error in exc.errors(include_url=False))
            raise PydanticCustomError("connection_settings", "{problems}", {"problems": problems}) from None

    @model_validator(mode="after")
    def _connections_apart(self) -> Settings:
        problems: list[str] = []
        seen: dict[tuple[str, str], int] = {}
        portals: dict[int, str] = {}
        org_id = self.webhooks.salesforce_org_id
        orgs: dict[str, str] = (
            {org_id[:15]: "the default connection (OKRSYNC_WEBHOOKS__SALESFORCE_ORG_ID)"} if org_id else {}
        )
        for index, connection in enumerate(self.connections):
            where = f"OKRSYNC_CONNECTIONS[{index}] ({connection.name!r})"
            if connection.name in (self.connection_name, SANDBOX_CONNECTION):
                whose = "the sandbox CRM's" if connection.name == SANDBOX_CONNECTION else "OKRSYNC_CONNECTION_NAME, the"
                problems.append(
                    f"{where}: name: {connection.name!r} is {whose} default connection's name; choose another"
                )
            earlier = seen.setdefault((connection.crm, connection.name), index)
            if earlier != index:
                problems.append(
                    f"{where}: name: {connection.crm}/{connection.name} is already OKRSYNC_CONNECTIONS[{earlier}]"
                )
            if connection.hubspot_portal_id is not None:
                other = portals.setdefault(connection.hubspot_portal_id, where)
                if other != where:
                    problems.append(f"{where}: hubspot_portal_id: {connection.hubspot_portal_id} is {other}'s too")
            if connection.salesforce_org_id is not None:
                other = orgs.setdefault(connection.salesforce_org_id[:15], where)
                if other != where:
                    problems.append(f"{where}: salesforce_org_id: {connection.salesforce_org_id} is {other}'s too")
        if problems:
            raise PydanticCustomError("connection_settings", "{problems}", {"problems": "; ".join(problems)})
        return self

    def extra_connection(self, crm: str, name: str) -> ConnectionSettings | None:
        """The connection of OKRSYNC_CONNECTIONS filed as ``crm/name``, if there is one."""
        return next((c for c in self.connections if c.crm == crm and c.name == name), None)

    @property
    def notifications_enabled(self) -> bool:
        return bool(self.notifications.slack_webhook_url or self.notifications.teams_webhook_url)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'okrsync.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()


def settings_problems(exc: ValidationError) -> list[str]:
    """A settings error as lines naming the variable (and the connection), without any value."""
    lines: list[str] = []
    for error in exc.errors(include_url=False):
        if error["type"] == "connection_settings":
            lines += str(error["msg"]).split("; ")
        else:
            variable = "OKRSYNC_" + "__".join(str(part) for part in error["loc"]).upper()
            lines.append(f"{variable}: {str(error['msg']).removeprefix('Value error, ')}")
    return lines


def settings_source_problem(exc: SettingsError) -> str:
    """A setting whose text could not be parsed at all (``OKRSYNC_CONNECTIONS='[{"name": …'``), as one line that
    names the variable and where the text breaks, never the text (it may hold a token)."""
    found = re.search(r'field "([^"]+)"', str(exc))
    variable = f"OKRSYNC_{found.group(1).upper()}" if found else "an OKRSYNC_ setting"
    cause = exc.__cause__
    if isinstance(cause, json.JSONDecodeError):
        return f"{variable}: not valid JSON ({cause.msg} at line {cause.lineno}, column {cause.colno})"
    return f"{variable}: could not be read ({type(cause).__name__ if cause else 'unknown format'}); it must be JSON"


PLACEHOLDERS = ("change-me", "changeme", "replace-me", "placeholder", "your-", "<", "xxx", "todo")


def _placeholder(value: str) -> bool:
    lowered = value.strip().lower()
    return not lowered or any(mark in lowered for mark in PLACEHOLDERS)


def production_problems(settings: Settings, *, sandbox: bool = False) -> list[str]:
    """What keeps ``settings`` from running a real deployment (OKRSYNC_MODE=production): each problem names the
    setting and what to put there; values are never shown."""
    problems: list[str] = []
    url = settings.database_url or ""
    if not url:
        problems.append("OKRSYNC_DATABASE_URL is not set: production runs on PostgreSQL (postgresql://user@host/db)")
    elif not url.startswith("postgresql"):
        problems.append("OKRSYNC_DATABASE_URL is not PostgreSQL: several processes need one shared PostgreSQL")
    elif _placeholder(url.split("@")[0]):
        problems.append("OKRSYNC_DATABASE_URL still holds a placeholder password")
    if sandbox:
        problems.append("--sandbox/--sandbox-url: the sandbox CRM is for trying okrsync, not for production")
    crms = {name for name in BUILT_IN if getattr(settings, name) is not None}
    crms |= {c.crm for c in settings.connections}
    if not crms and not sandbox:
        problems.append(
            "no CRM is configured: set OKRSYNC_SALESFORCE__… or OKRSYNC_HUBSPOT__… (see docs/connecting-crms.md)"
        )
    secrets = {
        "OKRSYNC_HUBSPOT__ACCESS_TOKEN": settings.hubspot.access_token if settings.hubspot else None,
        "OKRSYNC_WEBHOOKS__HUBSPOT_CLIENT_SECRET": settings.webhooks.hubspot_client_secret,
        "OKRSYNC_WEBHOOKS__FLOW_SECRET": settings.webhooks.flow_secret,
    }
    for name, secret in secrets.items():
        if secret is not None and _placeholder(secret.get_secret_value()):
            problems.append(f"{name} is still a placeholder: put the real value in your secret store")
    hooks = settings.webhooks
    if crms and not hooks.public_base_url:
        problems.append("OKRSYNC_WEBHOOKS__PUBLIC_BASE_URL is not set: the https URL the CRMs call (HubSpot signs it)")
    elif hooks.public_base_url and not hooks.public_base_url.startswith("https://"):
        problems.append("OKRSYNC_WEBHOOKS__PUBLIC_BASE_URL must be https:// (CRMs send webhooks over TLS only)")
    for crm in sorted(crms):  # each CRM says what its webhooks need to be verified
        problem = crm_adapter(crm).webhook_settings_problem(hooks)
        if problem:
            problems.append(problem)
    return problems
