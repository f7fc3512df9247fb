"""Settings of one HubSpot portal connection, passed to the connector's constructor."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr


class HubSpotConfig(BaseModel):
    access_token: SecretStr = Field(description="Private-app access token (pat-…) or an OAuth access token.")
    host: str = Field(default="https://api.hubapi.com", description="API base URL; the sandbox CRM in tests.")
    ca_bundle: Path | None = Field(default=None, description="Trust this CA file (the sandbox CRM's).")
    custom_properties: dict[str, list[str]] = Field(
        default_factory=dict,
        description='Extra properties per object type, e.g. {"deals": ["segment"]}.',
        examples=[{"deals": ["segment"], "companies": ["key_account", "tier"]}],
    )
    close_date_pushes_property: str | None = Field(
        default=None,
        description="A deal number property counting how often the close date moved later (HubSpot has none built "
        "in; a workflow can keep one). Feeds the close_date_pushed hygiene rule.",
        examples=["close_date_pushes"],
    )
    writeback_mode: Literal["custom_objects", "properties"] = Field(
        default="custom_objects",
        description="custom_objects: OKR objectives, key results, contributions and KAM criteria as custom objects "
        "associated with deals and companies (Enterprise portals; create them with `okrsync provision hubspot`). "
        "properties: okrsync properties on deals and companies only, for portals without custom objects.",
    )
    leads: Literal["lifecycle", "object"] = Field(
        default="lifecycle",
        description="Where leads come from. lifecycle: contacts that became leads (hs_lifecyclestage_lead_date), "
        "every portal. object: the leads object of Sales Hub Professional/Enterprise (scope crm.objects.leads.read); "
        "a portal that refuses it is told once per run and read by lifecycle. Changing it needs one full sync.",
    )
    lead_converted_stages: list[str] = Field(
        default_factory=lambda: ["qualified-stage-id"],
        min_length=1,
        description="Lead pipeline stage ids that mean converted (leads object only); the default pipeline's "
        "'Qualified' stage is qualified-stage-id.",
        examples=[["qualified-stage-id", "1841452734"]],
    )
    lookback_seconds: int = Field(
        default=300, ge=0, description="Re-read this much before the cursor: search results lag behind writes."
    )
    burst_share: float = Field(
        default=0.9, gt=0, le=1, description="Use at most this share of the app's per-10-second allowance."
    )
    search_per_second: float = Field(default=4.0, gt=0, le=5, description="Search API calls per second (limit 5).")
    max_daily_share: float = Field(default=0.8, gt=0, le=1, description="Stop before this share of the daily limit.")
    max_attempts: int = Field(default=6, ge=1)
    retry_wait_base: float = Field(default=0.5, ge=0)
    retry_wait_max: float = Field(default=30.0, ge=0)
    rate_limit_wait_max: float | None = Field(
        default=None,
        ge=0,
        description="Longest wait after a 429 of a rolling limit that says no Retry-After (None: the limit's window,"
        " 10 s for the app's allowance, 1 s for search). Tests that plan 429s lower it.",
    )
    timeout_seconds: float = Field(default=60.0, gt=0)
