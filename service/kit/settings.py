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

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.hubspot.config import HubSpotConfig
from connectors.salesforce.config import SalesforceConfig


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
        "mappings use Q3 2026: `make run` sets 2026-09-30T18:00:00Z.",
    )

    hubspot_writeback_mode: Literal["custom_objects", "properties"] = Field(
        default="custom_objects", description="How okrsync writes back to the sandbox HubSpot portal."
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
    log_level: str = "INFO"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'okrsync.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
