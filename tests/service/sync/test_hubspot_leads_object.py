"""HubSpot's leads object (``OKRSYNC_HUBSPOT__LEADS=object``): the real hubspot-api-client over HTTPS on loopback →
sandbox portal with the leads object, a real database.

The same sandbox quarter is told by Salesforce (Lead) and by a HubSpot portal holding one lead object per Salesforce
lead (``portal_from_org(leads_object=True)``): the canonical leads agree field by field, and the lead key results of
``acquisition.yaml`` equal the plain-Python ground truth of ``test_examples_ground_truth`` (values, evidence rows and
per member) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.errors import ConfigurationError
from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.mapping import entered_property
from connectors.salesforce.connector import SalesforceConnector
from connectors.sandbox.hubspot_seed import LEAD_ENTERED_SUFFIX, IdMap, portal_from_org
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from service.compute.service import compute
from service.crm.models import Lead
from service.okrs import service as okrs
from service.sync.service import run_sync
from tests.conftest import ANCHOR, fast_config, small_org
from tests.mappings.test_examples_ground_truth import (
    ALL_OBJECTS,
    EXAMPLES,
    GroundTruth,
    Results,
    _compare,
    _fresh_engine,
    _read_results,
)
from tests.service.sync.test_hubspot_sync import hubspot_config

pytestmark = pytest.mark.slow

LEAD_KRS = ("speed-to-lead", "leads-converted")
SCOPES_WITHOUT_LEADS = ("crm.objects.contacts.read", "crm.objects.companies.read", "crm.objects.deals.read")


def _hubspot(server: SandboxServer, **overrides: Any) -> HubSpotConfig:
    return hubspot_config(server, **{"leads": "object", **overrides})


def _data(org: SandboxOrg) -> dict[str, list[dict[str, Any]]]:
    return {t: org.records(t, include_deleted=True) for t in ALL_OBJECTS}


def _leads(engine: Engine, crm: str) -> dict[str, Lead]:
    with Session(engine) as session:
        from service.crm.models import CrmConnection

        connection = session.execute(select(CrmConnection).where(CrmConnection.crm == crm)).scalar_one()
        rows = session.execute(select(Lead).where(Lead.connection_id == connection.id)).scalars()
        return {row.external_id: row for row in rows}


@pytest.fixture(scope="module")
def truth() -> GroundTruth:
    return GroundTruth(_data(small_org()))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def synced(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Engine, SandboxOrg, IdMap]]:
    tmp = tmp_path_factory.mktemp(f"leads-object-{request.param}")
    engine = _fresh_engine(request.param, tmp)
    org = small_org()
    portal, ids = portal_from_org(_data(org), leads_object=True)
    with SandboxServer(org, portal=portal, cert_dir=tmp / "sandbox") as server:
        sf = run_sync(engine, SalesforceConnector(fast_config(server)), connection_name="sandbox")
        hs = run_sync(engine, HubSpotConnector(_hubspot(server)), connection_name="sandbox")
    assert sf.status == hs.status == "ok", (sf.errors, hs.errors)
    yield engine, org, ids
    engine.dispose()


def test_the_leads_object_gives_the_salesforce_leads(synced: tuple[Engine, SandboxOrg, IdMap]) -> None:
    engine, org, ids = synced
    sf, hs = _leads(engine, "salesforce"), _leads(engine, "hubspot")
    live = {lead["Id"] for lead in org.records("Lead") if not lead.get("IsDeleted")}
    assert len(live) > 20 and {i for i, row in sf.items() if not row.is_deleted} == live
    # every HubSpot lead is a lead object (none derived from contacts by lifecycle stage)
    assert set(hs) == {ids.leads[i] for i in live}
    assert {row.crm_object for row in hs.values()} == {"leads"}
    for sf_id in live:
        want, got = sf[sf_id], hs[ids.leads[sf_id]]
        for name in ("name", "status", "created_at", "is_converted", "converted_on", "is_deleted"):
            assert getattr(got, name) == getattr(want, name), f"lead {sf_id} {name}"
        assert got.owner_id == ids[want.owner_id or ""], f"lead {sf_id} owner"
        # its primary contact: the contact it was converted to, or the contact an open lead is in HubSpot
        assert got.contact_id == ids[want.contact_id or sf_id], f"lead {sf_id} contact"
        assert got.account_id == (ids[want.account_id] if want.account_id else None), f"lead {sf_id} account"
    converted = [i for i in live if sf[i].is_converted]
    assert converted and all(hs[ids.leads[i]].converted_on is not None for i in converted)


def test_lead_key_results_from_the_leads_object_equal_the_ground_truth(
    synced: tuple[Engine, SandboxOrg, IdMap], truth: GroundTruth
) -> None:
    engine, _org, _ids = synced
    results: dict[str, Results] = {}
    with Session(engine) as session:
        for crm in ("salesforce", "hubspot"):
            connection = okrs.resolve_connection(session, f"{crm}/sandbox")
            loaded = okrs.load_path(EXAMPLES / "acquisition.yaml")
            mapping, _version = okrs.apply(session, loaded, connection=connection, author="test", now=ANCHOR)
            compute(session, mapping=mapping, as_of=ANCHOR)
            session.commit()
            assert mapping.id is not None
            results[crm] = _read_results(session, mapping.id)
    want = truth.results["acquisition"]
    assert 0 < want.values["speed-to-lead"] < 1 and want.evidence["leads-converted"] > 0  # type: ignore[operator]
    for key in LEAD_KRS:
        _compare(results["hubspot"], want, "kr", key)
        _compare(results["hubspot"], results["salesforce"], "kr", key)


def test_a_portal_that_refuses_the_leads_object_is_read_by_lifecycle(
    tmp_path: Path, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """No crm.objects.leads.read: the sync says so once, names the scope, and reads leads from contacts by lifecycle
    stage in the same run; everything else syncs."""
    org = small_org()
    portal, ids = portal_from_org(_data(org), leads_object=True, scopes=SCOPES_WITHOUT_LEADS)
    with SandboxServer(org, portal=portal, cert_dir=tmp_path / "sandbox") as server:
        lifecycle = run_sync(engine, HubSpotConnector(_hubspot(server, leads="lifecycle")), connection_name="a")
        with caplog.at_level(logging.WARNING, logger="connectors.hubspot.connector"):
            refused = run_sync(engine, HubSpotConnector(_hubspot(server)), connection_name="b")
    assert lifecycle.status == refused.status == "ok"
    warnings = [r.getMessage() for r in caplog.records if "leads object" in r.getMessage()]
    assert len(warnings) == 1 and "crm.objects.leads.read" in warnings[0]
    with Session(engine) as session:
        by_connection: dict[str, set[str]] = {}
        for lead in session.execute(select(Lead)).scalars():
            by_connection.setdefault(str(lead.connection_id), set()).add(lead.external_id)
    first, second = by_connection.values()
    assert first == second and len(first) > 20  # the same leads, under their contacts' ids
    assert not first & set(ids.leads.values())
    assert refused.counts["contacts"].written > 0 and refused.counts["leads"].written == 0


def test_lead_changes_and_archives_arrive_incrementally(tmp_path: Path, engine: Engine) -> None:
    org = small_org()
    portal, ids = portal_from_org(_data(org), leads_object=True)
    open_leads = [lead["Id"] for lead in org.records("Lead") if not lead["IsConverted"] and not lead.get("IsDeleted")]
    converted_id, archived_id = ids.leads[open_leads[0]], ids.leads[open_leads[1]]
    with SandboxServer(org, portal=portal, cert_dir=tmp_path / "sandbox") as server:
        first = run_sync(engine, HubSpotConnector(_hubspot(server)), connection_name="sandbox")
        portal.update(
            "leads",
            converted_id,
            {
                "hs_pipeline_stage": "qualified-stage-id",
                "hs_v2_date_entered_qualified_stage_id" + LEAD_ENTERED_SUFFIX: "2026-09-20T10:00:00.000Z",
            },
        )
        portal.archive("leads", archived_id)
        portal.reset_stats()
        again = run_sync(engine, HubSpotConnector(_hubspot(server)), connection_name="sandbox")
        calls = dict(portal.api_calls)
    assert first.status == again.status == "ok" and not again.full
    leads = _leads(engine, "hubspot")
    assert leads[converted_id].is_converted and leads[converted_id].status == "Closed - Converted"
    assert str(leads[converted_id].converted_on) == "2026-09-20"
    assert leads[archived_id].is_deleted
    # lead properties and lead pipelines once per run, beside the deals' (custom property check, stages)
    assert calls["properties"] == 2 and calls["pipelines"] == 2


def test_an_unknown_converted_stage_is_refused_with_the_setting_to_fix(tmp_path: Path, engine: Engine) -> None:
    org = small_org(activities=300)
    portal, _ids = portal_from_org(_data(org), leads_object=True)
    with SandboxServer(org, portal=portal, cert_dir=tmp_path / "sandbox") as server:
        connector = HubSpotConnector(_hubspot(server, lead_converted_stages=["won-stage-id"]))
        with pytest.raises(ConfigurationError, match="LEAD_CONVERTED_STAGES.*qualified-stage-id"):
            connector.lead_stages()


def test_the_date_entered_property_is_looked_up_not_built() -> None:
    names = {
        "hs_v2_date_entered_qualified_stage_id_233247981",
        "hs_v2_date_entered_1841452734",
        "hs_v2_date_entered_new_stage_id_233247981",
        "hs_v2_date_entered_qualified_stage_id_x",
    }
    assert entered_property("qualified-stage-id", names) == "hs_v2_date_entered_qualified_stage_id_233247981"
    assert entered_property("1841452734", names) == "hs_v2_date_entered_1841452734"
    assert entered_property("connected-stage-id", names) is None
    assert entered_property("qualified-stage-id", names | {"hs_v2_date_entered_qualified_stage_id_12"}) == (
        "hs_v2_date_entered_qualified_stage_id_12"
    )


def test_a_scope_revoked_later_does_not_stop_the_sync(
    tmp_path: Path, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The leads object read once, then the app loses crm.objects.leads.read: the next incremental run is told once,
    reads leads by lifecycle, and neither its search nor its archived listing of leads stops the sync."""
    org = small_org(activities=600)
    portal, _ids = portal_from_org(_data(org), leads_object=True)
    with SandboxServer(org, portal=portal, cert_dir=tmp_path / "sandbox") as server:
        first = run_sync(engine, HubSpotConnector(_hubspot(server)), connection_name="sandbox")
        portal.scopes = set(SCOPES_WITHOUT_LEADS)
        with caplog.at_level(logging.WARNING, logger="connectors.hubspot.connector"):
            later = run_sync(engine, HubSpotConnector(_hubspot(server)), connection_name="sandbox")
    assert first.status == later.status == "ok" and not later.full
    assert len([r for r in caplog.records if "crm.objects.leads.read" in r.getMessage()]) == 1


def test_a_kept_connector_reads_the_object_again_once_the_scope_is_granted(
    tmp_path: Path, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker keeps one connector for its life: a refusal holds for that run only."""
    org = small_org(activities=600)
    portal, ids = portal_from_org(_data(org), leads_object=True, scopes=SCOPES_WITHOUT_LEADS)
    with SandboxServer(org, portal=portal, cert_dir=tmp_path / "sandbox") as server:
        connector = HubSpotConnector(_hubspot(server))
        with caplog.at_level(logging.WARNING, logger="connectors.hubspot.connector"):
            refused = run_sync(engine, connector, connection_name="sandbox")
        portal.scopes = None  # the scope granted
        granted = run_sync(engine, connector, connection_name="sandbox", full=True)
    assert refused.status == granted.status == "ok"
    assert len([r for r in caplog.records if "crm.objects.leads.read" in r.getMessage()]) == 1
    live = {i for i, lead in _leads(engine, "hubspot").items() if not lead.is_deleted}
    assert live == set(ids.leads.values()), "the full run reads the object and sweeps the leads read by lifecycle"
