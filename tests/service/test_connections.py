"""Two HubSpot portals in one deployment, as real processes on PostgreSQL: two `okrsync sandbox` CRMs (other seeds,
other portal ids), the first the default connection (`--sandbox-url`), the second the extra connection "west"
(OKRSYNC_CONNECTIONS), each with its own team's OKRs written back; a sidecar and two workers.

The portals' record ids overlap (both sandboxes number their records alike), so an event routed to the wrong
connection would refresh the wrong record. The test changes deal D (an id both portals have) in one portal, sends
that portal's events, and checks the other connection saw nothing: no API call into its CRM, no sync run, no value,
outbox row or lease pass changed. Then one burst whose batches mix both portals' events: each is filed with its
connection, processed exactly once, by passes of both connections' leases.
"""

from __future__ import annotations

import random
import ssl
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlmodel
from sqlmodel import Session

from connectors.hubspot.adapter import ADAPTER as HUBSPOT
from connectors.hubspot.webhooks import sign_hubspot_v3
from service.compute.models import KeyResultValue
from service.crm.models import CrmConnection, Opportunity
from service.kit.leases import WorkLease
from service.okrs.models import OkrMapping
from service.sidecar import SANDBOX_HUBSPOT_CLIENT_SECRET
from service.sync.models import SyncRun
from service.writeback.models import OutboxRow
from tests import loopback
from tests.conftest import POSTGRES_URL, _postgres_engine
from tests.service.deployment import (
    PORTAL_ID,
    Deployment,
    ExtraPortal,
    burst,
    deliver,
    deployed,
    events,
    settled,
    wait_for,
)

pytestmark = pytest.mark.slow  # a deployment of okrsync processes

WEST_PORTAL_ID = 145_000_002


class Crm:
    """One sandbox CRM process reached over HTTPS: its HubSpot API (as an admin would edit a deal) and its
    control API (call counters)."""

    def __init__(self, url: str, ca: Path) -> None:
        self.url = url
        self.token = HUBSPOT.sandbox_config(url, str(ca)).access_token.get_secret_value()
        self.verify = ssl.create_default_context(cafile=ca)

    def set_amount(self, deal: str, amount: float) -> None:
        answer = loopback.post(
            f"{self.url}/crm/v3/objects/deals/batch/update",
            json={"inputs": [{"id": deal, "properties": {"amount": str(amount)}}]},
            headers={"Authorization": f"Bearer {self.token}"},
            verify=self.verify,
            timeout=10,
        )
        assert answer.status_code == 200, answer.text

    def reset_stats(self) -> None:
        assert loopback.post(f"{self.url}/__sandbox/reset-stats", verify=self.verify, timeout=10).status_code == 204

    def calls(self) -> tuple[int, int]:
        """(HubSpot API calls, Salesforce API calls) since the last reset."""
        stats = loopback.get(f"{self.url}/__sandbox/stats", verify=self.verify, timeout=10).json()
        return stats["hubspot"]["api_calls_total"], stats["api_calls_total"]


@pytest.fixture
def two_portals(tmp_path: Path) -> Iterator[tuple[Deployment, ExtraPortal]]:
    _postgres_engine().dispose()  # creates this xdist worker's database, or fails saying PostgreSQL is down
    with deployed(tmp_path, POSTGRES_URL) as world:
        yield world, world.add_hubspot_portal("west", seed=7, portal_id=WEST_PORTAL_ID)


def _connection_id(world: Deployment, name: str) -> int:
    with Session(world.engine) as session:
        row = session.exec(
            sqlmodel.select(CrmConnection).where(CrmConnection.crm == "hubspot", CrmConnection.name == name)
        ).one()
        return row.id or 0


def _state(world: Deployment, name: str) -> dict[str, Any]:
    """Everything a pass of the connection could change: key result values, outbox rows, sync runs, lease passes."""
    connection_id = _connection_id(world, name)
    with Session(world.engine) as session:
        mappings = session.exec(sqlmodel.select(OkrMapping.id).where(OkrMapping.connection_id == connection_id)).all()
        values = session.exec(
            sqlmodel.select(KeyResultValue).where(KeyResultValue.mapping_id.in_(mappings))  # type: ignore[attr-defined]
        ).all()
        outbox = session.exec(sqlmodel.select(OutboxRow).where(OutboxRow.connection_id == connection_id)).all()
        runs = session.exec(sqlmodel.select(SyncRun).where(SyncRun.connection_id == connection_id)).all()
        lease = session.get(WorkLease, f"crm:hubspot/{name}")
        return {
            "values": sorted((v.mapping_id, v.kr_key, v.model_dump_json()) for v in values),
            "outbox": sorted((o.id or 0, o.model_dump_json()) for o in outbox),
            "sync_runs": len(runs),
            "passes": lease.passes if lease is not None else 0,
        }


def _amount(world: Deployment, name: str, deal: str) -> float | None:
    with Session(world.engine) as session:
        row = session.get(Opportunity, (_connection_id(world, name), deal))
        assert row is not None
        return row.amount


def _deal_events(deal: str, portal_id: int, first_id: int) -> list[dict[str, Any]]:
    return [
        {"eventId": first_id + n, "subscriptionId": 3, "portalId": portal_id, "occurredAt": 1790000000000 + n,
         "subscriptionType": "deal.propertyChange", "objectId": int(deal), "propertyName": "amount",
         "propertyValue": str(n)}
        for n in range(3)
    ]  # fmt: skip


def _idle(world: Deployment) -> bool:
    """No pending event, and no worker inside a pass (it finishes the events, then gives the lease back)."""
    with Session(world.engine) as session:
        held = session.exec(sqlmodel.select(WorkLease).where(WorkLease.holder.is_not(None))).all()  # type: ignore[union-attr]
    return settled(world.engine) and not any(lease.name.startswith("crm:hubspot/") for lease in held)


def _settle(world: Deployment, what: str) -> None:
    try:
        wait_for(lambda: _idle(world), what, timeout=120)
    except AssertionError:
        raise AssertionError(world.logs()) from None


def test_two_portals_are_routed_processed_once_and_kept_apart(two_portals: tuple[Deployment, ExtraPortal]) -> None:
    world, west = two_portals
    default_crm = Crm(world.sandbox_url, Path(world.env["OKRSYNC_DATA_DIR"]) / "sandbox" / "ca.pem")
    west_crm = Crm(west.url, west.ca)
    sidecar = world.sidecar()
    world.worker()
    world.worker()
    with Session(world.engine) as session:
        teams = {m.team for m in session.exec(sqlmodel.select(OkrMapping)).all()}
    assert teams == {"Vertrieb DACH", west.team}
    with Session(world.engine) as session:  # record links: each connection learned its own portal's pages
        pages = {c.name: c.instance_url for c in session.exec(
            sqlmodel.select(CrmConnection).where(CrmConnection.crm == "hubspot"))}  # fmt: skip
    assert pages == {"sandbox": f"https://{httpx.URL(world.sandbox_url).netloc.decode()}/contacts/{PORTAL_ID}",
                     "west": f"https://{httpx.URL(west.url).netloc.decode()}/contacts/{WEST_PORTAL_ID}"}  # fmt: skip
    deal = min(set(_external_ids(world, "sandbox")) & set(_external_ids(world, "west")), key=int)  # in both portals
    west_amount = _amount(world, "west", deal)

    # 1. portal A's events: a pass of the default connection only; west is not touched, its CRM not called
    west_before, default_before = _state(world, "west"), _state(world, "sandbox")
    default_crm.set_amount(deal, 111_111)
    default_crm.reset_stats()
    west_crm.reset_stats()
    deliver([sidecar], burst(world.engine, 150, seed=21) + _deal_events(deal, PORTAL_ID, 900_000))
    _settle(world, "the workers to finish portal A's events")
    assert _amount(world, "sandbox", deal) == 111_111
    assert _amount(world, "west", deal) == west_amount
    assert west_crm.calls() == (0, 0) and default_crm.calls()[0] > 0
    assert _state(world, "west") == west_before
    default_after = _state(world, "sandbox")
    assert default_after["sync_runs"] > default_before["sync_runs"] and default_after["passes"] > 0

    # 2. portal B's events: the same deal id, changed in both CRMs; only west's copy is refreshed
    default_crm.set_amount(deal, 222_222)  # no event says so: the default connection must not pick it up
    west_crm.set_amount(deal, 333_333)
    default_crm.reset_stats()
    west_crm.reset_stats()
    west_events = burst(world.engine, 150, seed=22, connection="west", portal_id=WEST_PORTAL_ID)
    deliver([sidecar], west_events + _deal_events(deal, WEST_PORTAL_ID, 900_000))
    _settle(world, "the workers to finish portal B's events")
    assert _amount(world, "west", deal) == 333_333
    assert _amount(world, "sandbox", deal) == 111_111  # not 222,222: no pass of the default connection ran
    assert default_crm.calls()[0] == 0 and west_crm.calls()[0] > 0
    assert _state(world, "sandbox") == default_after
    assert _state(world, "west")["passes"] > 0

    # 3. one burst, every batch mixing both portals (and repeats): each event filed and processed once
    before = len(events(world.engine))
    passes = {name: _state(world, name)["passes"] for name in ("sandbox", "west")}
    rng = random.Random(5)
    mixed = burst(world.engine, 600, seed=31) + _deal_events(deal, PORTAL_ID, 950_000)
    mixed += burst(world.engine, 600, seed=32, connection="west", portal_id=WEST_PORTAL_ID)
    rng.shuffle(mixed)
    deliveries = mixed + rng.sample(mixed, 60)
    rng.shuffle(deliveries)
    assert all(len({e["portalId"] for e in deliveries[n : n + 100]}) == 2 for n in range(0, len(deliveries), 100))
    answers = deliver([sidecar], deliveries)
    assert answers["accepted"] + answers["duplicates"] == len(deliveries)
    _settle(world, "the workers to finish the mixed burst")
    stored = events(world.engine)
    assert len(stored) == before + len({(e["portalId"], e["eventId"]) for e in mixed})
    assert Counter((e.payload["portalId"], e.connection) for e in stored) == {
        (PORTAL_ID, None): 150 + 3 + 600 + 3,
        (WEST_PORTAL_ID, "west"): 150 + 3 + 600,
    }
    assert Counter(e.status for e in stored) == {"processed": len(stored)}, world.logs()
    assert Counter(e.attempts for e in stored) == {1: len(stored)}  # each finished exactly once
    assert all(e.processed_by for e in stored)
    with Session(world.engine) as session:
        leases = {name: session.get(WorkLease, f"crm:hubspot/{name}") for name in ("sandbox", "west")}
    for name, lease in leases.items():  # both connections' passes ran (a few each: the burst is coalesced)
        assert lease is not None and lease.holder is None and passes[name] < lease.passes <= passes[name] + 30
    assert _amount(world, "sandbox", deal) == 222_222  # portal A's event for the deal now read A's new amount
    assert _amount(world, "west", deal) == 333_333

    # 4. the app card on deal D, opened in each portal (HubSpot adds portalId): each portal sees its own deal
    cards = {portal: _card(sidecar, deal, portal) for portal in (PORTAL_ID, WEST_PORTAL_ID)}
    names = {name: _name(world, name, deal) for name in ("sandbox", "west")}
    assert names["sandbox"] != names["west"]
    assert cards[PORTAL_ID]["record"]["name"] == names["sandbox"]
    assert cards[WEST_PORTAL_ID]["record"]["name"] == names["west"]
    assert {kr["team"] for kr in cards[WEST_PORTAL_ID]["keyResults"]} <= {west.team}
    assert {kr["team"] for kr in cards[PORTAL_ID]["keyResults"]} <= {"Vertrieb DACH"}


def _card(sidecar: str, deal: str, portal_id: int) -> dict[str, Any]:
    path = f"/api/v1/hubspot/card?objectType=deals&objectId={deal}&userId=1&portalId={portal_id}&appId=3"
    stamp = str(int(time.time() * 1000))
    signature = sign_hubspot_v3(
        client_secret=SANDBOX_HUBSPOT_CLIENT_SECRET, method="GET", uri=f"{sidecar}{path}", body=b"", timestamp=stamp
    )
    answer = loopback.get(
        f"{sidecar}{path}", headers={"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": stamp}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _name(world: Deployment, name: str, deal: str) -> str | None:
    with Session(world.engine) as session:
        row = session.get(Opportunity, (_connection_id(world, name), deal))
        assert row is not None
        return row.name


def _external_ids(world: Deployment, name: str) -> list[str]:
    with Session(world.engine) as session:
        return list(
            session.exec(
                sqlmodel.select(Opportunity.external_id).where(Opportunity.connection_id == _connection_id(world, name))
            ).all()
        )
