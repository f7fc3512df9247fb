"""One driver per CRM: what the contract suite needs to know about a CRM besides its adapter.

A driver starts the CRM for one test (the sandbox over HTTPS on loopback, or an in-memory world), says how a user
deletes a record there and how to plan a retriable fault, and names the streams the suite deletes from and the
streams whose pages carry records of other kinds too. A new CRM adds one driver here and one line in
``test_contract.py``; the properties themselves never ask which CRM they hold.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from connectors.records import Account, Activity, ActivityKind, Opportunity, Owner
from connectors.registry import adapter
from connectors.sandbox.faults import Fault
from connectors.sandbox.generator import generate_org
from connectors.sandbox.hubspot_portal import HubSpotPortal
from connectors.sandbox.hubspot_seed import portal_from_org
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from tests.conftest import ANCHOR
from tests.service.memory_crm import MemoryAdapter, MemoryConfig, MemoryWorld

# Tens of records per object: every stream has something to read, and a whole sync takes a fraction of a second.
# shared_activities: Salesforce's TaskRelation/EventRelation rows exist, so its relation streams are real reads.
SMALL_ORG = {"seed": 23, "accounts": 6, "opportunities": 12, "activities": 40, "shared_activities": True}
# Salesforce pages hold at least 200 records (page_size has that floor): 300 activities make 244 Tasks, two pages,
# so property 3 can kill a sync between two pages of one stream.
SALESFORCE_ORG = {**SMALL_ORG, "activities": 300}

# Retries in milliseconds, not the production half second, so a retried fault costs the test nothing.
FAST_RETRIES = {"retry_wait_base": 0.01, "retry_wait_max": 0.05, "max_attempts": 4, "timeout_seconds": 5}


@dataclass
class LiveCrm:
    """One CRM for one test: its settings (a new connector per sync, as each run makes one) and its data, which the
    driver changes as a user would (a ``SandboxOrg``, a ``HubSpotPortal`` or a ``MemoryWorld``)."""

    driver: CrmDriver
    config: BaseModel
    data: Any

    def connector(self) -> Any:
        return self.driver.adapter.connector(self.config)


class CrmDriver(ABC):
    """What the contract suite needs from one CRM besides its adapter."""

    title: str  # the class-name prefix of the assembled tests: TestSalesforceKeysUniqueAndNonNull
    adapter: Any  # connectors.adapter.CrmAdapter
    deletable: tuple[str, ...]  # streams whose records property 5 deletes (one test each)
    # stream → other record kinds its pages carry beside ``kind_of(stream)``, each with the reason
    companions: Mapping[str, Mapping[str, str]] = {}
    # stream → why ``fetch`` does not serve it (property 6 leaves it out; the reason is kept here)
    not_fetched: Mapping[str, str] = {}
    # canonical field → why it may differ between two reads of an unchanged record (property 6 leaves it out)
    volatile: Mapping[str, str] = {}
    # why no stream of the CRM's small org spans two pages, if none does (property 3 cannot kill one mid-stream)
    one_page_per_stream: str | None = None

    @abstractmethod
    def start(self, tmp_path: Path) -> Any:
        """A context manager that yields a ``LiveCrm`` holding a small org, and stops it afterwards."""

    @abstractmethod
    def delete(self, crm: LiveCrm, stream: str, record_id: str) -> None:
        """Delete (or archive) one record of ``stream`` in the CRM, as a user would."""

    def plan_retriable_fault(self, crm: LiveCrm) -> Fault:
        """Plan one 503 on a read the sync makes and return the planned fault (``.fired`` counts it)."""
        raise NotImplementedError(f"{self.title} cannot plan faults")


@contextmanager
def _sandbox(tmp_path: Path, sizes: dict[str, Any]) -> Iterator[SandboxServer]:
    """The sandbox CRM (Salesforce org and HubSpot portal seeded from it) on 127.0.0.1 over TLS."""
    data = generate_org(anchor=ANCHOR, **sizes)
    portal, _ids = portal_from_org(data)
    with SandboxServer(SandboxOrg(data), portal=portal, cert_dir=tmp_path / "sandbox") as server:
        yield server


def _fast(config: BaseModel, **overrides: Any) -> BaseModel:
    return type(config).model_validate({**config.model_dump(), **FAST_RETRIES, **overrides})


class SalesforceDriver(CrmDriver):
    title = "Salesforce"
    adapter = adapter("salesforce")
    deletable = ("Opportunity", "Task")
    not_fetched = {
        **{
            relation: f"a {relation} page holds {parent} records, read again when their contacts change: fetch "
            f"serves them as the {parent} stream; a full read of {relation} brings none (it only sets the stream's "
            "cursor)"
            for relation, parent in (("TaskRelation", "Task"), ("EventRelation", "Event"))
        },
        "EmailMessage": "an EmailMessage page holds Task records, read again when their e-mail changes (fetch serves "
        "them as the Task stream), and e-mails without a task (Email-to-Case), whose activity is built from the "
        "e-mail and its case: no webhook names an EmailMessage, so the targeted refresh never asks for one",
    }

    @contextmanager
    def start(self, tmp_path: Path) -> Iterator[LiveCrm]:
        with _sandbox(tmp_path, SALESFORCE_ORG) as server:
            assert server.ca_path is not None
            config = self.adapter.sandbox_config(server.base_url, server.ca_path, None)
            yield LiveCrm(self, _fast(config, page_size=200), server.org)

    def delete(self, crm: LiveCrm, stream: str, record_id: str) -> None:
        org: SandboxOrg = crm.data
        org.delete(stream, record_id)  # soft delete: queryAll lists it with IsDeleted, getDeleted lists it

    def plan_retriable_fault(self, crm: LiveCrm) -> Fault:
        org: SandboxOrg = crm.data
        # the first queryAll of the sync (Accounts: objects with IsDeleted are read with queryAll), after the login
        # and the Users
        return org.faults.add("http", match="queryAll", times=1, status=503)


class HubSpotDriver(CrmDriver):
    title = "HubSpot"
    adapter = adapter("hubspot")
    deletable = ("deals", "calls")
    companions = {
        "deals": {
            "opportunity_contact": "a deal's contacts come with it (v4 associations read with the deal), as the "
            "deal↔contact records Salesforce reads from OpportunityContactRole"
        },
        "contacts": {
            "lead": "a contact that became a lead (hs_lifecyclestage_lead_date) is also a lead, under its own id: "
            "HubSpot's contacts by lifecycle stage play the part of Salesforce's Lead"
        },
    }
    not_fetched = {
        "owners": "owners come from the owners API, which has no batch read; no webhook names an owner, so the "
        "targeted refresh never asks for one"
    }

    @contextmanager
    def start(self, tmp_path: Path) -> Iterator[LiveCrm]:
        with _sandbox(tmp_path, SMALL_ORG) as server:
            assert server.ca_path is not None and server.portal is not None
            _add_notes(server.portal)
            config = self.adapter.sandbox_config(server.base_url, server.ca_path, None)
            # the search API's own limit (5 a second; the default paces at 4): incremental runs search each object
            yield LiveCrm(self, _fast(config, search_per_second=5), server.portal)

    def delete(self, crm: LiveCrm, stream: str, record_id: str) -> None:
        portal: HubSpotPortal = crm.data
        portal.archive(stream, record_id)  # gone from lists and search, listed with archived=true

    def plan_retriable_fault(self, crm: LiveCrm) -> Fault:
        portal: HubSpotPortal = crm.data
        # the second list call of the sync (the first page of companies), before the handler runs
        return portal.faults.add("http", match="list", after=1, times=1, status=503)


def _add_notes(portal: HubSpotPortal) -> None:
    """Two notes on a deal and its contact: the portal seeded from a Salesforce org has none (Salesforce keeps
    notes apart from activities), and the notes stream should not pass by being empty."""
    owner, contact, deal = portal.owners[0]["id"], portal.records("contacts")[0]["id"], portal.records("deals")[0]["id"]
    for n in range(2):
        portal.insert(
            "notes",
            {"hs_timestamp": "2026-09-20T10:00:00.000Z", "hs_note_body": f"Note {n}", "hubspot_owner_id": owner},
            associations=[("contacts", contact), ("deals", deal)],
        )


class MemoryDriver(CrmDriver):
    """The test-only adapter (``tests/service/memory_crm.py``): plain records, no HTTP, so no faults to plan."""

    title = "Memory"
    adapter = MemoryAdapter()
    deletable = ("opportunities", "activities")
    one_page_per_stream = "the memory connector answers each stream in one page, whatever its size"

    @contextmanager
    def start(self, tmp_path: Path) -> Iterator[LiveCrm]:
        world = MemoryWorld()
        for stream, record in _memory_records():
            world.put(stream, record)
        yield LiveCrm(self, MemoryConfig(world=world), world)

    def delete(self, crm: LiveCrm, stream: str, record_id: str) -> None:
        world: MemoryWorld = crm.data
        world.delete(stream, record_id, at=datetime.now(UTC))


def _memory_records() -> Iterator[tuple[str, Owner | Account | Opportunity | Activity]]:
    """Two owners, three accounts, six opportunities and twelve meetings, stamped a minute apart."""
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

    def at(minute: int) -> datetime:
        return start + timedelta(minutes=minute)

    for n in range(2):
        yield "owners", Owner(external_id=f"u{n}", modified_at=at(n), name=f"Rep {n}", raw={"fields": {}})
    for n in range(3):
        yield (
            "accounts",
            Account(
                external_id=f"a{n}",
                modified_at=at(n),
                name=f"Account {n}",
                owner_id=f"u{n % 2}",
                raw={"fields": {"tier": "AB"[n % 2]}},
            ),
        )
    for n in range(6):
        yield (
            "opportunities",
            Opportunity(
                external_id=f"o{n}",
                modified_at=at(n),
                name=f"Deal {n}",
                account_id=f"a{n % 3}",
                owner_id=f"u{n % 2}",
                amount=1000.0 * n,
                raw={"fields": {}},
            ),
        )
    for n in range(12):
        yield (
            "activities",
            Activity(
                external_id=f"m{n}",
                modified_at=at(n),
                activity_kind=ActivityKind.meeting,
                occurred_at=at(n),
                account_id=f"a{n % 3}",
                opportunity_id=f"o{n % 6}",
                owner_id=f"u{n % 2}",
                raw={"fields": {"subject": f"Meeting {n}"}},
            ),
        )
