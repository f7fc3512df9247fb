"""The notifications section of the settings (``OKRSYNC_NOTIFICATIONS__…``), in a leaf module: ``service.kit.settings``
nests it, and the notifier in ``service.notifications.service`` reads it."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class NotificationSettings(BaseModel):
    slack_webhook_url: SecretStr | None = Field(default=None, description="Slack incoming-webhook URL.")
    teams_webhook_url: SecretStr | None = Field(default=None, description="Microsoft Teams incoming-webhook URL.")
    attempts: int = Field(default=4, ge=1)
    wait_base: float = Field(default=0.5, ge=0)
