"""Write-back to the sandbox HubSpot portal, end to end, in both modes: custom objects (Enterprise) and properties.

The real hubspot-api-client talks HTTPS to the sandbox; the portal starts without okrsync's objects and properties,
as a real one would, and ``provision()`` creates them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlmodel
from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.hubspot.adapter import ADAPTER as HUBSPOT
from connectors.hubspot.config import HubSpotConfig
from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.writer import HubSpotWriter
from connectors.sandbox.generator import generate_org
from connectors.sandbox.hubspot_portal import HubSpotPortal
from connectors.sandbox.hubspot_seed import portal_from_org
from connectors.sandbox.server import SandboxServer
from connectors.sandbox.store import SandboxOrg
from service.compute.models import KeyResultValue
from service.compute.service import compute
from service.kit.settings import SandboxSettings, Settings
from service.okrs import service as okrs
from service.sync.service import run_sync
from service.writeback.service import send, stage_connection
from service.writeback.staging import mapping_prefix
from tests.conftest import ANCHOR
from tests.service.writeback.world import apply_examples, connection, outbox, recompute

pytestmark = pytest.mark.slow  # every test syncs, computes and writes back a sandbox portal end to end

EXAMPLES = ("acquisition", "customer-care", "pipeline-hygiene")


@dataclass
class HubSpotWorld:
    portal: HubSpotPortal
    server: SandboxServer
    engine: Engine
    mode: str

    @property
    def settings(self) -> Settings:
        return Settings(_env_file=None, sandbox=SandboxSettings(hubspot_writeback_mode=self.mode))  # type: ignore[call-arg]

    def config(self, **overrides: Any) -> HubSpotConfig:
        base = HUBSPOT.sandbox_config(self.server.base_url, self.server.ca_path or "").model_dump()
        base.update(retry_wait_base=0.01, retry_wait_max=0.05, max_attempts=4, timeout_seconds=5)
        base.update(writeback_mode=self.mode, **overrides)
        return HubSpotConfig.model_validate(base)

    def writer(self, **overrides: Any) -> HubSpotWriter:
        return HubSpotWriter(self.config(**overrides))

    def send(self, **overrides: Any):  # type: ignore[no-untyped-def]
        with Session(self.engine) as session:
            connection_id = connection(session, "hubspot").id or 0
        return send(self.engine, self.writer(**overrides), connection_id=connection_id)


def start(stack: ExitStack, engine: Engine, tmp_path: Path, *, mode: str, tier: str = "enterprise") -> HubSpotWorld:
    data = generate_org(anchor=ANCHOR, seed=7, accounts=30, opportunities=80, activities=3200)
    portal, _ids = portal_from_org(data, tier=tier)
    server = stack.enter_context(SandboxServer(SandboxOrg(data), portal=portal, cert_dir=tmp_path / "sandbox"))
    world = HubSpotWorld(portal, server, engine, mode)
    run_sync(engine, HubSpotConnector(world.config()), connection_name="sandbox")
    apply_examples(engine, "hubspot", EXAMPLES, settings=world.settings)
    return world


@pytest.fixture
def custom(engine: Engine, tmp_path: Path) -> Iterator[HubSpotWorld]:
    with ExitStack() as stack:
        world = start(stack, engine, tmp_path, mode="custom_objects")
        world.writer().provision()
        yield world


def number(text: str | None) -> float | None:
    return float(text) if text else None


def by_okrsync_id(portal: HubSpotPortal, name: str) -> dict[str, dict[str, Any]]:
    records = portal.records(name)
    ids = [r["properties"]["okrsync_id"] for r in records]
    assert len(ids) == len(set(ids)), f"{name}: an okrsync id was written twice"
    return {r["properties"]["okrsync_id"]: r for r in records}


def test_custom_objects_hold_the_computed_values(custom: HubSpotWorld) -> None:
    portal = custom.portal
    calls = portal.api_calls_total
    report = custom.send()
    assert not report.problems and report.stopped is None
    staged = outbox(custom.engine)
    assert report.written == len(staged) > 300
    upserts = portal.api_calls["batch_upsert"] + portal.api_calls["batch_update"]
    per_target = {t: sum(1 for r in staged if r.target == t) for t in {r.target for r in staged}}
    assert upserts == sum(-(-n // 100) for n in per_target.values())  # 100 per call: the platform minimum
    assert portal.api_calls_total - calls == report.api_calls

    krs = by_okrsync_id(portal, "okr_key_result")
    with Session(custom.engine) as session:
        mappings = {m.id: m for m in okrs.mappings(session)}
        values = list(session.exec(sqlmodel.select(KeyResultValue)).all())
    assert len(krs) == len(values)
    for row in values:
        props = krs[f"{mapping_prefix(mappings[row.mapping_id])}/{row.kr_key}"]["properties"]
        assert (props["status"], props["kr_key"]) == (row.status, row.kr_key)
        assert number(props["progress"]) == (None if row.progress is None else round(row.progress * 100, 1))
        assert number(props["value"]) == (None if row.value is None else round(row.value, 4))

    contributions = by_okrsync_id(portal, "okr_contribution")
    assert len(contributions) == per_target["contribution"]
    with_deal = [r for r in staged if r.target == "contribution" and r.payload.get("opportunity_id")]
    for row in with_deal[:50]:
        record = contributions[row.record_key]
        deals = [str(to) for to, _type in portal.associations("okr_contribution", record["id"], "deals")]
        assert deals == [row.payload["opportunity_id"]]
    assert len(by_okrsync_id(portal, "okr_kam_criterion")) == per_target["kam_criterion"]
    flagged = [d for d in portal.records("deals") if d["properties"].get("okrsync_hygiene_checked")]
    assert len(flagged) == per_target["opportunity"] > 0

    # nothing changed: no call at all; provisioning again creates nothing
    assert recompute(custom.engine, "hubspot", settings=custom.settings).total() == 0
    calls = portal.api_calls_total
    assert custom.send().api_calls == 0 and portal.api_calls_total == calls
    again = custom.writer().provision()
    assert again.created == [] and again.custom_objects is True


def test_properties_mode_writes_deals_and_companies_only(engine: Engine, tmp_path: Path) -> None:
    with ExitStack() as stack:
        world = start(stack, engine, tmp_path, mode="properties", tier="professional")
        provisioned = world.writer().provision()
        assert provisioned.custom_objects is None and "deals property okrsync_key_results" in provisioned.created
        report = world.send()
        assert not report.problems and set(report.updated) <= {"opportunity", "account"}
        assert not world.portal.schemas()
        fed = [d for d in world.portal.records("deals") if d["properties"].get("okrsync_key_results")]
        assert fed and all(": " in line for d in fed for line in d["properties"]["okrsync_key_results"].splitlines())
        kam = [c for c in world.portal.records("companies") if c["properties"].get("okrsync_kam_score")]
        assert kam and all(c["properties"]["okrsync_kam_criteria"] for c in kam)


def test_custom_objects_on_a_portal_without_them(engine: Engine, tmp_path: Path) -> None:
    with ExitStack() as stack:
        world = start(stack, engine, tmp_path, mode="custom_objects", tier="professional")
        provisioned = world.writer().provision()
        assert provisioned.custom_objects is False
        assert "Enterprise" in provisioned.problems[0] and "WRITEBACK_MODE=properties" in provisioned.problems[0]
        report = world.send()
        assert any("no custom object okr_objective" in p and "properties" in p for p in report.problems)
        kept = outbox(engine, target="key_result")
        assert kept and all(r.status == "pending" for r in kept)  # kept for after the fix
        # the fix: properties mode. The custom-object writes are dropped, deals and companies are written
        world.mode = "properties"
        with Session(engine) as session:
            stage_connection(session, connection=connection(session, "hubspot"), settings=world.settings)
            session.commit()
        fixed = world.send()
        assert not fixed.problems and fixed.updated["opportunity"] > 0
        assert not outbox(engine, status="pending")


def test_missing_scope_stops_with_the_scope_named(custom: HubSpotWorld) -> None:
    custom.portal.scopes = {"crm.objects.deals.read", "crm.objects.custom.write", "crm.schemas.custom.read"}
    report = custom.send()
    assert report.stopped is not None and "crm.objects.deals.write" in report.stopped
    assert outbox(custom.engine, target="opportunity")[0].status == "pending"


def test_a_deleted_property_is_named_and_the_writes_wait_for_provision(custom: HubSpotWorld) -> None:
    custom.portal.remove_property("deals", "okrsync_hygiene_issues")
    report = custom.send()
    assert any("okrsync_hygiene_issues" in p and "provision" in p for p in report.problems)
    assert all(r.status == "pending" for r in outbox(custom.engine, target="opportunity"))
    assert custom.writer().provision().created == ["deals property okrsync_hygiene_issues"]
    assert not custom.send().problems and not outbox(custom.engine, status="pending")


def test_one_invalid_value_fails_alone_in_its_batch(custom: HubSpotWorld) -> None:
    custom.send()
    with Session(custom.engine) as session:
        mapping = okrs.find_mapping(session, "Key Accounts / Q3 2026")
        account = next(r.payload["account_id"] for r in outbox(custom.engine, target="kam_criterion"))
        okrs.assess(
            session, mapping, account_id=account, criterion_key="strategic-relationship", status="met",
            comment="x" * 70_000, evidence_url=None, author="kam", at=ANCHOR,
        )  # fmt: skip
        later = ANCHOR + timedelta(minutes=1)
        compute(session, mapping=mapping, as_of=later)
        stage_connection(session, connection=connection(session, "hubspot"), settings=custom.settings, as_of=later)
        session.commit()
    report = custom.send()
    [failed] = outbox(custom.engine, status="failed")
    assert failed.target == "kam_criterion" and account in failed.record_key
    assert "okr_kam_criterion" in (failed.error or "") and "comment" in (failed.error or "")
    assert report.failed["kam_criterion"] == 1 and report.updated["kam_criterion"] >= 0


def test_transient_input_error_and_lost_answer(custom: HubSpotWorld) -> None:
    victim = outbox(custom.engine, target="contribution")[120].record_key
    custom.portal.faults.add("input_error", match="batch_upsert", id=victim, category="RATE_LIMITS", times=1)
    custom.portal.faults.add("drop", match="batch_upsert", after=3, times=1)
    report = custom.send()
    assert not report.problems and not outbox(custom.engine, status="pending")
    contributions = by_okrsync_id(custom.portal, "okr_contribution")
    assert victim in contributions and len(contributions) == len(outbox(custom.engine, target="contribution"))


def test_an_archived_deal_fails_its_own_records_only(custom: HubSpotWorld) -> None:
    row = next(r for r in outbox(custom.engine, target="opportunity"))
    custom.portal.archive("deals", row.record_key)
    report = custom.send()
    failed = outbox(custom.engine, status="failed")
    assert failed and all(row.record_key in (f.record_key, f.payload.get("opportunity_id")) for f in failed), [
        (f.target, f.error) for f in failed
    ]
    assert report.written == len(outbox(custom.engine)) - len(failed)
