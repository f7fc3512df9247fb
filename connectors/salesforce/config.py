"""Settings of one Salesforce org connection, passed to the connector's constructor (it never reads env itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

AuthMode = Literal["access_token", "password", "client_credentials", "jwt"]


class SalesforceConfig(BaseModel):
    instance_url: str | None = Field(
        default=None,
        description="The org's My Domain URL; taken from the token answer when empty.",
        examples=["https://acme.my.salesforce.com"],
    )
    login_url: str = Field(
        default="https://login.salesforce.com",
        description="Where the OAuth token endpoint lives (https://test.salesforce.com for sandboxes).",
    )
    api_version: str = Field(default="59.0", pattern=r"^\d{2}\.0$")
    auth_mode: AuthMode | None = Field(
        default=None, description="Inferred from the credentials given when empty (JWT > password > token)."
    )
    access_token: SecretStr | None = Field(default=None, description="A ready session id / access token.")
    consumer_key: str | None = Field(default=None, description="Connected app consumer key (client id).")
    consumer_secret: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    security_token: SecretStr | None = None
    jwt_private_key_file: Path | None = Field(
        default=None, description="PEM private key whose certificate is uploaded to the connected app."
    )
    ca_bundle: Path | None = Field(
        default=None,
        description="Trust this CA file (e.g. the sandbox CRM's); system trust store when empty.",
    )
    custom_fields: dict[str, list[str]] = Field(
        default_factory=dict,
        description='Extra fields to pull per object, e.g. {"Opportunity": ["Segment__c"]}.',
        examples=[{"Opportunity": ["Segment__c"], "Account": ["Key_Account__c", "Tier__c"]}],
    )
    multi_currency: bool = Field(default=False, description="The org has multi-currency on (CurrencyIsoCode).")
    default_currency: str = Field(default="EUR", min_length=3, max_length=3)
    lookback_seconds: int = Field(
        default=600,
        ge=0,
        description="Re-read what was stamped this much before the last run's query began: long transactions "
        "commit late.",
    )
    shared_activities: bool = Field(
        default=True,
        description="The org has Shared Activities: every contact of a task or event (TaskRelation/EventRelation) "
        "counts, not only its WhoId. An org without it is noticed and logged; false saves that call.",
    )
    email_messages: bool = Field(
        default=True,
        description="Read e-mail directions from EmailMessage (Enhanced Email): an e-mail task gets inbound or "
        "outbound from its e-mail's Incoming. An org where the integration user cannot read EmailMessage is noticed "
        "and logged once; false saves those calls (then e-mail tasks have no direction).",
    )
    leads: bool = Field(
        default=True,
        description="Read Lead (new leads, their conversion, the activities logged on them): speed-to-lead and "
        "lead counts need it. An org where the integration user cannot read Lead is noticed and logged once; false "
        "saves those calls.",
    )
    max_api_share: float = Field(
        default=0.8, gt=0, le=1, description="Stop before the org's daily API usage passes this share."
    )
    max_attempts: int = Field(default=6, ge=1, description="Attempts per API call on transient failures.")
    retry_wait_base: float = Field(default=0.5, ge=0, description="Seconds; exponential backoff with jitter.")
    retry_wait_max: float = Field(default=30.0, ge=0)
    timeout_seconds: float = Field(default=60.0, gt=0)
    bulk_threshold: int = Field(
        default=2000,
        ge=1,
        description="Write-back: above this many records of one object in one run, upsert through a Bulk API 2.0 "
        "job instead of sObject Collections (200 records per call).",
    )
    page_size: int = Field(default=2000, ge=200, le=2000, description="Records per query page (Salesforce max).")

    @field_validator("custom_fields")
    @classmethod
    def _field_names(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for sobject, fields in value.items():
            for name in fields:
                if not name.replace("_", "").isalnum():
                    raise ValueError(f"custom field {name!r} on {sobject} is not a Salesforce API name")
        return value

    @model_validator(mode="after")
    def _auth_complete(self) -> SalesforceConfig:
        mode = self.effective_auth_mode()
        needs = {
            "access_token": ["access_token", "instance_url"],
            "password": ["consumer_key", "consumer_secret", "username", "password"],
            "client_credentials": ["consumer_key", "consumer_secret"],
            "jwt": ["consumer_key", "username", "jwt_private_key_file"],
        }[mode]
        missing = [name for name in needs if getattr(self, name) in (None, "")]
        if missing:
            names = ", ".join(f"OKRSYNC_SALESFORCE__{n.upper()}" for n in missing)
            raise ValueError(f"Salesforce auth mode {mode!r} needs {names}")
        return self

    def effective_auth_mode(self) -> AuthMode:
        if self.auth_mode:
            return self.auth_mode
        if self.jwt_private_key_file:
            return "jwt"
        if self.username and self.password:
            return "password"
        if self.access_token:
            return "access_token"
        if self.consumer_key and self.consumer_secret:
            return "client_credentials"
        return "access_token"
