"""Prometheus metrics of the sidecar (``GET /metrics``), in one registry per app so tests do not share counts."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Webhooks received/rejected, sync lag, API calls per CRM, outbox depth, compute and refresh time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.webhooks_received = Counter(
            "okrsync_webhook_events_received", "Webhook events stored, by source", ["source"], registry=self.registry
        )
        self.webhooks_duplicate = Counter(
            "okrsync_webhook_events_duplicate", "Repeat deliveries recognised", ["source"], registry=self.registry
        )
        self.webhooks_rejected = Counter(
            "okrsync_webhook_requests_rejected", "Webhook requests refused, by reason", ["source", "reason"],
            registry=self.registry,
        )  # fmt: skip
        self.events_processed = Counter(
            "okrsync_webhook_events_processed", "Events the worker finished, by outcome", ["outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.api_calls = Counter(
            "okrsync_crm_api_calls",
            "CRM API calls made, by CRM and purpose",
            ["crm", "purpose"],
            registry=self.registry,
        )
        self.sync_lag = Gauge(
            "okrsync_sync_lag_seconds", "Seconds since the last successful sync", ["crm"], registry=self.registry
        )
        self.outbox_depth = Gauge(
            "okrsync_outbox_pending", "Outbox rows waiting to be written", ["crm"], registry=self.registry
        )
        self.refresh_seconds = Histogram(
            "okrsync_refresh_seconds", "Sync + compute + write-back after webhooks", ["crm"], registry=self.registry
        )
        self.compute_seconds = Histogram(
            "okrsync_compute_seconds", "Computation time per mapping", registry=self.registry
        )
