"""The one settings object: environment variables prefixed ``OKRSYNC_`` (nested with ``__``) or a ``.env`` file.

Examples::

    OKRSYNC_DATABASE_URL=postgresql://okrsync@db:5432/okrsync
    OKRSYNC_SALESFORCE__INSTANCE_URL=https://acme.my.salesforce.com
    OKRSYNC_SALESFORCE__CONSUMER_KEY=3MVG9...
    OKRSYNC_SALESFORCE__USERNAME=integration@acme.com
    OKRSYNC_SALESFORCE__JWT_PRIVATE_KEY_FILE=/run/secrets/salesforce.key
    OKRSYNC_SALESFORCE__CUSTOM_FIELDS='{"Opportunity": ["Segment__c"]}'
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.hubspot.config import HubSpotConfig
from connectors.salesforce.config import SalesforceConfig
from service.notifications.service import NotificationSettings


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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OKRSYNC_", env_nested_delimiter="__", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path(".okrsync"), description="SQLite file, sandbox certificates, state.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; SQLite file in data_dir when empty. postgresql://user@host:5432/db for prod.",
    )
    connection_name: str = Field(default="default", description="Name of the CRM connection rows are filed under.")
    salesforce: SalesforceConfig | None = None
    hubspot: HubSpotConfig | None = None
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    log_level: str = "INFO"

    @property
    def notifications_enabled(self) -> bool:
        return bool(self.notifications.slack_webhook_url or self.notifications.teams_webhook_url)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'okrsync.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
