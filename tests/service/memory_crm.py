"""A test-only CRM: plain in-memory records behind a ``connectors.adapter.CrmAdapter``.

It proves the seam: ``test_crm_seam.py`` registers it and runs the whole loop (sync, compute, stage, write-back,
targeted refresh) through it with nothing in ``service/`` knowing it. Records are canonical records
(``connectors.records``) with a raw payload ``{"fields": {...}}`` (so ``raw.`` filters go through the adapter's
``raw_prefix``); the writer keeps what okrsync writes in ``written`` (target → key → values)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from connectors.adapter import SandboxMeeting
from connectors.records import CanonicalRecord, Deletion, SkippedRecord
from connectors.webhooks import Event, Inbound, PayloadError, Received, Receiver, Refused, Routes, load_json
from connectors.writes import FIELDS, Target, WriteRequest, WriteResult

STREAMS = {"owners": "owner", "accounts": "account", "opportunities": "opportunity", "activities": "activity"}


@dataclass
class MemoryWorld:
    """The CRM's data: stream → id → record, ids deleted per stream, and what was written back."""

    records: dict[str, dict[str, CanonicalRecord]] = field(default_factory=lambda: {s: {} for s in STREAMS})
    deleted: dict[str, dict[str, datetime]] = field(default_factory=lambda: {s: {} for s in STREAMS})
    written: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    calls: int = 0

    def put(self, stream: str, record: CanonicalRecord) -> None:
        self.records[stream][record.external_id] = record

    def delete(self, stream: str, record_id: str, at: datetime) -> None:
        """Deleted at ``at``: listed by later reads as a deleted record (as Salesforce's queryAll lists IsDeleted
        rows), and in the deleted listing."""
        self.records[stream][record_id] = self.records[stream][record_id].model_copy(
            update={"is_deleted": True, "modified_at": at}
        )
        self.deleted[stream][record_id] = at


class MemoryConfig(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    world: MemoryWorld


@dataclass
class MemoryPage:
    records: list[CanonicalRecord]
    skipped: list[SkippedRecord] = field(default_factory=list)
    cursor: tuple[datetime, str] | None = None
    total_size: int = 0


@dataclass
class MemoryDeleted:
    deletions: list[Deletion]
    earliest_available: datetime | None = None
    latest_covered: datetime | None = None


class MemoryConnector:
    crm = "memory"
    streams = tuple(STREAMS)

    def __init__(self, config: MemoryConfig) -> None:
        self.world = config.world
        self.api_calls = 0

    @property
    def lookback(self) -> timedelta:
        return timedelta(0)

    def kind_of(self, stream: str) -> str:
        return STREAMS[stream]

    def instance_url(self, known: str | None = None) -> str | None:
        return "https://memory.test/records"

    def usage_text(self) -> str | None:
        return None

    def pages(self, stream: str, *, since: datetime | None) -> Iterator[MemoryPage]:
        self.api_calls += 1
        rows = sorted(
            (r for r in self.world.records[stream].values() if since is None or r.modified_at >= since),
            key=lambda r: (r.modified_at, r.external_id),
        )
        if rows:
            yield MemoryPage(rows, cursor=(rows[-1].modified_at, rows[-1].external_id), total_size=len(rows))

    def supports_deleted(self, stream: str) -> bool:
        return True

    def deleted(self, stream: str, *, start: datetime, end: datetime) -> MemoryDeleted:
        self.api_calls += 1
        return MemoryDeleted([Deletion(external_id=i, deleted_at=at) for i, at in self.world.deleted[stream].items()])

    def fetch(self, stream: str, ids: list[str]) -> tuple[MemoryPage, list[Deletion]]:
        self.api_calls += 1
        live = {i: r for i, r in self.world.records[stream].items() if not r.is_deleted}
        found = [live[i] for i in ids if i in live]
        gone = [Deletion(external_id=i) for i in ids if i not in live]
        return MemoryPage(found, total_size=len(found)), gone


class MemoryWriter:
    crm = "memory"

    def __init__(self, config: MemoryConfig) -> None:
        self.world = config.world
        self.api_calls = 0

    def written_fields(self) -> dict[Target, frozenset[str]]:
        return {target: frozenset(names) for target, names in FIELDS.items()}

    def object_name(self, target: Target) -> str:
        return f"memory_{target.value}"

    def upsert(self, target: Target, requests: list[WriteRequest]) -> list[WriteResult]:
        self.api_calls += 1
        kept = self.world.written.setdefault(target.value, {})
        results = []
        for request in requests:
            created = request.key not in kept
            kept[request.key] = {**kept.get(request.key, {}), **request.values}
            results.append(WriteResult(request.key, ok=True, crm_id=f"m-{request.key}", created=created))
        return results

    def delete(self, target: Target, requests: list[WriteRequest]) -> list[WriteResult]:
        self.api_calls += 1
        for request in requests:
            self.world.written.get(target.value, {}).pop(request.key, None)
        return [WriteResult(request.key, ok=True) for request in requests]


class MemoryReceiver:
    """``POST /webhooks/memory``: ``{"changed": [{"stream": "activities", "id": "m3"}, …]}``, unsigned (test-only)."""

    name = "memory"
    path = "/memory"
    source = "memory"
    description = "Changes in the memory CRM (test-only)."
    responses: dict[int | str, dict[str, Any]] = {400: {}}
    replies: Literal["json", "raw"] = "json"
    replay_message = ""

    def not_set_up(self, routes: Routes) -> str | None:
        return None

    def receive(self, inbound: Inbound, routes: Routes) -> Received:
        try:
            changed = load_json(inbound.body)["changed"]
            events = [Event(f"{c['stream']}:{c['id']}", c["stream"], c["id"], "change", None, c) for c in changed]
        except (PayloadError, KeyError, TypeError) as exc:
            raise Refused(400, f"not a memory change list: {exc}", reason="payload") from None
        return Received(events)


class MemoryAdapter:
    name = "memory"
    title = "Memory CRM"
    pulls = "Pull owners, accounts, opportunities and activities from memory."
    config_type: type[BaseModel] = MemoryConfig
    required_setting = "WORLD"
    routing_setting = "memory_id"
    raw_prefix: tuple[str, ...] = ("fields",)
    provision_hint: str | None = "nothing to provision in memory"
    receivers: tuple[Receiver, ...] = (MemoryReceiver(),)
    sandbox_examples: tuple[str, ...] = ()
    app_card = False

    def connector(self, config: MemoryConfig) -> MemoryConnector:
        return MemoryConnector(config)

    def writer(self, config: MemoryConfig) -> MemoryWriter:
        return MemoryWriter(config)

    def provision(self, config: MemoryConfig) -> None:
        return None

    def written_fields(self, config: MemoryConfig | None) -> dict[Target, frozenset[str]]:
        return {target: frozenset(names) for target, names in FIELDS.items()}

    def sandbox_config(self, base_url: str, ca_path: str, options: Any = None) -> MemoryConfig:
        return MemoryConfig(world=MemoryWorld())

    def webhook_settings_problem(self, hooks: Any) -> str | None:
        return None

    def card_connections(
        self, inbound: Inbound, routes: Routes, portal_id: int | None, record_pages: dict[str, str | None]
    ) -> set[str]:
        raise Refused(404, "no app card in memory", reason=None)

    def records_named(self, kind: str | None, object_id: str, payload: dict[str, Any]) -> set[str]:
        return {object_id}

    def sandbox_meeting(
        self, sandbox: Any, copy_of: str, now: datetime, *, hooks: Any, public_url: str, event_id: int
    ) -> SandboxMeeting:
        raise NotImplementedError("the memory CRM has no sandbox server")

    def record_pages(self, instance_url: str | None) -> str | None:
        return instance_url

    def record_url(self, pages: str, crm_object: str, record_id: str) -> str | None:
        return f"{pages}/{crm_object}/{record_id}"
