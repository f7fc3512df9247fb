"""The sidecar's API over real HTTP: roles for every endpoint, the OpenAPI document, and what the endpoints answer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlmodel
from openapi_spec_validator import validate
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.app import create_app
from service.compute.models import KamCriterionResult, KeyResultEvidence
from service.crm.models import Account, Activity, Owner
from service.kit.auth import Role, create_token
from service.kit.server import ThreadedServer
from service.kit.settings import Settings
from service.okrs.models import OkrMapping
from tests import loopback
from tests.conftest import fast_config
from tests.service.writeback.world import EXAMPLES, apply_examples, deployed_org, start_salesforce

pytestmark = pytest.mark.slow  # every test syncs a sandbox org and serves the sidecar's API on loopback


@dataclass
class Api:
    base_url: str
    engine: Engine
    tokens: dict[str, str]
    kam_account: str
    other_account: str
    mapping: int
    kam_mapping: int
    opportunity: str

    def call(self, method: str, path: str, role: str | None, json: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return loopback.request(method, f"{self.base_url}{path}", json=json, headers=headers, timeout=30)


@pytest.fixture
def api(engine: Engine, tmp_path: Path) -> Iterator[Api]:
    with served_api(engine, tmp_path) as found:
        yield found


@contextmanager
def served_api(engine: Engine, tmp_path: Path, settings: Settings | None = None) -> Iterator[Api]:
    """The sandbox org synced, the acquisition and customer-care examples applied, a token per role, the sidecar's
    API on a free loopback port."""
    with ExitStack() as stack:
        start_salesforce(stack, engine, tmp_path, deployed_org(), fast_config)
        apply_examples(engine, "salesforce", ("acquisition", "customer-care"))
        with Session(engine) as session:
            kam_mapping = session.exec(sqlmodel.select(OkrMapping).where(OkrMapping.team == "Key Accounts")).one()
            accounts = {r.account_id for r in session.exec(sqlmodel.select(KamCriterionResult))}
            owned = {}
            for account_id in sorted(accounts):
                account = session.get(Account, (kam_mapping.connection_id, account_id))
                owner = session.get(Owner, (kam_mapping.connection_id, account.owner_id)) if account else None
                if owner is not None and owner.email:
                    owned.setdefault(owner.email, []).append(account_id)
            email, mine = next(iter(sorted(owned.items())))
            other = next(a for e, ids in sorted(owned.items()) if e != email for a in ids)
            tokens = {}
            for role in Role:
                _row, token = create_token(
                    session,
                    name=f"test {role.value}",
                    role=role,
                    email=email if role is Role.kam else None,
                    team="Vertrieb DACH" if role is Role.lead else None,
                )
                tokens[role.value] = token
            mapping = session.exec(sqlmodel.select(OkrMapping).where(OkrMapping.team == "Vertrieb DACH")).one()
            activity = session.exec(
                sqlmodel.select(Activity)
                .join(KeyResultEvidence, KeyResultEvidence.record_id == Activity.external_id)  # type: ignore[arg-type]
                .where(KeyResultEvidence.mapping_id == mapping.id, Activity.opportunity_id.is_not(None))  # type: ignore[union-attr]
            ).first()
            opportunity = activity.opportunity_id if activity and activity.opportunity_id else ""
            ids = (mapping.id or 0, kam_mapping.id or 0)
            session.commit()
        app = create_app(settings=settings or Settings(_env_file=None), engine=engine)  # type: ignore[call-arg]
        with ThreadedServer(app) as http:
            yield Api(http.base_url, engine, tokens, mine[0], other, ids[0], ids[1], opportunity)


def _endpoints(api: Api) -> list[tuple[str, str, Any, str]]:
    """(method, path, body, least role) for every API endpoint."""
    acquisition = (EXAMPLES / "acquisition.yaml").read_text()
    return [
        ("GET", "/api/v1/mappings", None, "viewer"),
        ("GET", f"/api/v1/mappings/{api.mapping}", None, "viewer"),
        ("GET", f"/api/v1/mappings/{api.mapping}/key-results/discovery-meetings/evidence", None, "viewer"),
        ("GET", f"/api/v1/records/salesforce/opportunity/{api.opportunity}", None, "viewer"),
        ("GET", f"/api/v1/mappings/{api.mapping}/versions", None, "viewer"),
        ("GET", f"/api/v1/mappings/{api.kam_mapping}/kam-assessments", None, "viewer"),
        ("GET", f"/api/v1/mappings/{api.mapping}/weekly-check-ins", None, "viewer"),
        ("GET", f"/api/v1/mappings/{api.mapping}/key-results/discovery-meetings/trend", None, "viewer"),
        ("GET", "/api/v1/goals", None, "viewer"),
        ("GET", "/api/v1/company", None, "viewer"),
        ("GET", "/api/v1/planning/drafts", None, "viewer"),
        ("GET", "/api/v1/planning/builder?connection=salesforce/sandbox", None, "rep"),
        ("POST", "/api/v1/mappings/validate", {"yaml": acquisition, "connection": "salesforce/sandbox"}, "sales_ops"),
        ("POST", "/api/v1/mappings/preview", {"yaml": acquisition, "connection": "salesforce/sandbox"}, "sales_ops"),
        ("POST", "/api/v1/mappings/apply", {"yaml": acquisition, "connection": "salesforce/sandbox"}, "sales_ops"),
        ("POST", f"/api/v1/mappings/{api.mapping}/key-results/discovery-meetings/check-ins",
         {"confidence": 7, "note": "on track after the trade fair"}, "sales_ops"),
        ("POST", f"/api/v1/mappings/{api.kam_mapping}/kam-assessments",
         {"account_id": api.kam_account, "criterion": "strategic-relationship", "status": "partly"}, "kam"),
    ]  # fmt: skip


ORDER = ["viewer", "rep", "kam", "sales_ops", "admin"]
ALLOWED = {
    "viewer": set(ORDER),
    "rep": {"rep", "kam", "sales_ops", "admin"},
    "sales_ops": {"sales_ops", "admin"},
    "kam": {"kam", "sales_ops", "admin"},
}


def test_every_endpoint_checks_the_role(api: Api) -> None:
    for method, path, body, least in _endpoints(api):
        assert api.call(method, path, None, body).status_code == 401, path
        forged = {"Authorization": "Bearer okr_forged"}
        bad = loopback.request(method, f"{api.base_url}{path}", json=body, headers=forged, timeout=30)
        assert bad.status_code == 401, path
        for role in ORDER:
            answer = api.call(method, path, role, body)
            if role in ALLOWED[least]:
                assert answer.status_code in (200, 201), (path, role, answer.text)
            else:
                assert answer.status_code == 403, (path, role, answer.text)
                assert answer.json()["error"] == "forbidden" and least in answer.json()["detail"]


def test_openapi_is_valid_and_every_endpoint_has_a_response_model(api: Api) -> None:
    # the first request builds the schema of every route (1.3 s on a quiet machine; httpx's default 5 s timed out
    # once in CI with both cores busy): the same 30 s as every other request here
    document = loopback.get(f"{api.base_url}/openapi.json", timeout=30).json()
    validate(document)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            success = operation["responses"].get("200") or operation["responses"].get("201")
            assert success, (method, path)
            if path in ("/metrics", "/webhooks/salesforce", "/api/v1/planning/drafts/{draft_id}/yaml"):
                continue  # text: Prometheus exposition format, SOAP, a mapping file
            schema = success["content"]["application/json"]["schema"]
            assert schema and schema != {}, (method, path)


def test_a_kam_assesses_only_their_own_accounts(api: Api) -> None:
    path = f"/api/v1/mappings/{api.kam_mapping}/kam-assessments"
    own = {
        "account_id": api.kam_account,
        "criterion": "strategic-relationship",
        "status": "met",
        "comment": "Board meeting held",
    }
    assert api.call("POST", path, "kam", own).status_code == 201
    other = {**own, "account_id": api.other_account}
    refused = api.call("POST", path, "kam", other)
    assert refused.status_code == 403 and api.other_account in refused.json()["detail"]
    assert api.call("POST", path, "sales_ops", other).status_code == 201
    derived = api.call("POST", path, "sales_ops", {**own, "criterion": "account-plan-reviewed"})
    assert derived.status_code == 409 and "not assessed" in derived.json()["detail"]
    history = api.call("GET", f"{path}?account_id={api.kam_account}", "viewer").json()
    assert [h["comment"] for h in history][0] == "Board meeting held"


def test_objectives_key_results_and_record_view(api: Api) -> None:
    detail = api.call("GET", f"/api/v1/mappings/{api.mapping}", "viewer").json()
    krs = {kr["key"]: kr for o in detail["objectives"] for kr in o["key_results"]}
    discovery = krs["discovery-meetings"]
    assert discovery["records"] > 0 and discovery["contributions"] and discovery["trend"]
    assert sum(c["value"] for c in discovery["contributions"]) == pytest.approx(discovery["value"])
    page = api.call(
        "GET", f"/api/v1/mappings/{api.mapping}/key-results/discovery-meetings/evidence?limit=5", "rep"
    ).json()
    assert page["total"] == discovery["records"] and len(page["items"]) == 5
    record = api.call("GET", f"/api/v1/records/salesforce/opportunity/{api.opportunity}", "rep").json()
    assert record["object"] == "opportunity" and record["key_results"]
    assert api.call("GET", "/api/v1/records/salesforce/opportunity/006000000000000AAA", "rep").status_code == 404
    assert api.call("GET", "/api/v1/records/salesforce/lead/x", "rep").status_code == 404


def _evidence_vacuums(engine: Engine) -> int:
    with engine.connect() as conn:  # a new connection: PostgreSQL's statistics are read once per transaction
        return int(
            conn.execute(
                text(
                    "SELECT vacuum_count FROM pg_stat_user_tables"
                    " WHERE relname = 'key_result_evidence' AND schemaname = current_schema()"
                )
            ).scalar_one()
        )


def test_a_mapping_applied_through_the_api_leaves_its_evidence_settled(api: Api) -> None:
    """POST /mappings/apply computes in full and commits: PostgreSQL's evidence table is vacuumed once after it (its
    evidence pages are then index-only walks); the preview computes too, rolls back, and vacuums nothing."""
    body = {"yaml": (EXAMPLES / "acquisition.yaml").read_text(), "connection": "salesforce/sandbox"}
    postgres = api.engine.dialect.name == "postgresql"
    before = _evidence_vacuums(api.engine) if postgres else 0
    assert api.call("POST", "/api/v1/mappings/preview", "sales_ops", body).status_code == 200
    if postgres:
        assert _evidence_vacuums(api.engine) == before
    assert api.call("POST", "/api/v1/mappings/apply", "sales_ops", body).status_code == 200
    if postgres:
        assert _evidence_vacuums(api.engine) == before + 1


def test_mapping_edits_keep_the_cycle_rules(api: Api) -> None:
    text = (EXAMPLES / "acquisition.yaml").read_text()
    changed_objective = text.replace("We open doors to new customers", "We open many doors", 1)
    answer = api.call(
        "POST", "/api/v1/mappings/apply", "sales_ops", {"yaml": changed_objective, "connection": "salesforce/sandbox"}
    )
    assert answer.status_code == 409, answer.text
    broken = api.call(
        "POST", "/api/v1/mappings/validate", "sales_ops", {"yaml": text.replace("target: 150\n", "target: lots\n", 1)}
    )
    assert broken.status_code == 200 and broken.json()["valid"] is False
    assert any("key_results[0].target" in p["message"] and p["line"] for p in broken.json()["problems"])
