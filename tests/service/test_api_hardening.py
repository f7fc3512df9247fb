"""Issue 17 over real HTTP: every bad input ends in a 4xx with ``{"error", "detail"}`` and changes nothing stored.

Items covered here: numbers that crashed or poisoned (7), KAM assessments and check-in attendees (8), the error
shape, token before body, body size and offline /docs (11; 3 for the body size)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
import sqlmodel
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.checkins.models import CheckIn
from service.compute.models import KamAccountScore, KeyResultValue
from service.crm.models import Account, Owner
from service.kit.auth import Role, create_token
from service.kit.db import utcnow
from service.okrs import service as okrs
from service.okrs.models import KamAssessment, ManualValue, OkrMapping
from tests import loopback
from tests.service.test_api import Api, served_api
from tests.service.writeback.world import EXAMPLES, connection

pytestmark = pytest.mark.slow  # every test syncs a sandbox org and serves the sidecar's API on loopback


@pytest.fixture
def api(engine: Engine, tmp_path: Path) -> Iterator[Api]:
    with served_api(engine, tmp_path) as found:
        yield found


def _shape(answer: httpx.Response, status: int) -> dict[str, str]:
    assert answer.status_code == status, (answer.status_code, answer.text[:300])
    body = answer.json()
    assert set(body) == {"error", "detail"} and body["detail"], body
    return body


def _raw(api: Api, method: str, path: str, role: str | None, content: bytes, **headers: str) -> httpx.Response:
    sent = {"Content-Type": "application/json", **headers}
    if role:
        sent["Authorization"] = f"Bearer {api.tokens[role]}"
    return loopback.request(method, f"{api.base_url}{path}", content=content, headers=sent, timeout=30)


# --- 11: one error shape, the token before the body, /docs offline -------------------------------------------------


def test_unknown_routes_and_methods_have_the_error_shape(api: Api) -> None:
    assert _shape(loopback.get(f"{api.base_url}/api/v1/nothing-here", timeout=30), 404)["error"] == "not_found"
    assert _shape(loopback.get(f"{api.base_url}/no/such/page", timeout=30), 404)["error"] == "not_found"
    assert _shape(loopback.delete(f"{api.base_url}/api/v1/mappings"), 405)["error"] == "method_not_allowed"


def test_the_token_is_checked_before_the_body(api: Api) -> None:
    path = "/api/v1/mappings/validate"
    for body in (b"{not json", b'{"yaml": 5}', b"[" * 10_000):
        anonymous = _shape(_raw(api, "POST", path, None, body), 401)
        assert anonymous["error"] == "unauthorized" and "Bearer" in anonymous["detail"]
        forged = _raw(api, "POST", path, None, body, Authorization="Bearer okr_forged")
        assert _shape(forged, 401)["detail"] == "unknown or revoked API token"
        # the token is good: now the body is judged (nesting too deep for a JSON parser: 400, not a 500)
        malformed = _raw(api, "POST", path, "sales_ops", body)
        assert _shape(malformed, 400 if body.startswith(b"[[") else 422)["error"] in ("invalid", "bad_request")


def test_docs_load_their_assets_from_the_sidecar(api: Api) -> None:
    page = loopback.get(f"{api.base_url}/docs", timeout=30)
    assert page.status_code == 200
    sources = [part.split('"')[1] for part in page.text.split("src=")[1:]] + [
        part.split("'")[1] for part in page.text.split("href=")[1:] if part.startswith("'")
    ]
    assert sources and all(s.startswith("/docs/static/") for s in sources if s.endswith((".js", ".css"))), sources
    assert "cdn" not in page.text.lower()
    script = loopback.get(f"{api.base_url}/docs/static/swagger-ui-bundle.js", timeout=30)
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert len(script.content) > 100_000
    assert loopback.get(f"{api.base_url}/docs/static/swagger-ui.css", timeout=30).status_code == 200


def test_a_huge_body_is_refused_before_it_is_read(api: Api) -> None:
    path = "/api/v1/mappings/validate"
    huge = json.dumps({"yaml": "x" * 20_000_000}).encode()
    too_large = _raw(api, "POST", path, "sales_ops", huge)
    assert _shape(too_large, 413)["error"] == "too_large" and "OKRSYNC_SERVE__MAX_BODY_BYTES" in too_large.text

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"yaml": "'
        for _ in range(2_000):
            yield b"x" * 10_000
        yield b'"}'

    streamed = loopback.post(
        f"{api.base_url}{path}",
        content=chunks(),
        headers={"Authorization": f"Bearer {api.tokens['sales_ops']}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert _shape(streamed, 413)["error"] == "too_large"


# --- 7: numbers ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/mappings/99999999999999999999999",
        "/api/v1/mappings/9223372036854775808",
        "/api/v1/mappings/2147483648",
        "/api/v1/mappings/-1",
        "/api/v1/mappings/{mapping}/key-results/discovery-meetings/evidence?offset=100000000000000000000",
        "/api/v1/mappings/{mapping}/key-results/discovery-meetings/evidence?offset=1e20",
        "/api/v1/mappings/99999999999999999999999/sprints",
        "/api/v1/mappings/99999999999999999999999/weekly-check-ins",
        "/api/v1/mappings/99999999999999999999999/kam-assessments",
    ],
)
def test_ids_and_offsets_beyond_64_bits_are_422(api: Api, path: str) -> None:
    answer = api.call("GET", path.format(mapping=api.mapping), "viewer")
    assert _shape(answer, 422)["error"] == "invalid"


def test_the_largest_id_is_a_plain_404(api: Api) -> None:
    assert _shape(api.call("GET", f"/api/v1/mappings/{2**31 - 1}", "viewer"), 404)["error"] == "not_found"


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/99999999999999999999999",
        "/dashboard/99999999999999999999999/hygiene",
        "/dashboard/{mapping}/hygiene?offset=100000000000000000000",
        "/dashboard/{mapping}/kr/discovery-meetings?offset=100000000000000000000",
        "/dashboard/{mapping}/check-in?past=100000000000000000000",
        "/dashboard/{mapping}/sprints?recorded=100000000000000000000",
    ],
)
def test_the_dashboard_answers_huge_numbers_with_a_page(api: Api, path: str) -> None:
    page = loopback.get(
        f"{api.base_url}{path.format(mapping=api.mapping)}", cookies={"okrsync_token": api.tokens["viewer"]}, timeout=30
    )
    assert 400 <= page.status_code < 500, page.status_code
    assert "text/html" in page.headers["content-type"]


def _manual(api: Api) -> tuple[str, float | None, int]:
    path = f"/api/v1/mappings/{api.kam_mapping}/key-results/nps/check-ins"
    with Session(api.engine) as session:
        value = session.get(KeyResultValue, (api.kam_mapping, "nps"))
        manual = len(session.exec(sqlmodel.select(ManualValue)).all())
    return path, value.value if value else None, manual


@pytest.mark.parametrize(
    "body",
    [b'{"value": NaN}', b'{"value": Infinity}', b'{"value": -Infinity}', b'{"value": 1e309}', b'{"value": 1e16}'],
    ids=["nan", "inf", "-inf", "1e309", "1e16"],
)
def test_a_manual_value_must_be_a_finite_number(api: Api, body: bytes) -> None:
    path, before, manual = _manual(api)
    answer = _raw(api, "POST", path, "sales_ops", body)
    assert "value" in _shape(answer, 422)["detail"]
    assert _manual(api)[1:] == (before, manual)  # nothing stored


def test_the_dashboard_check_in_form_refuses_odd_confidence(api: Api, tmp_path: Path) -> None:
    mapping_id = _running_mapping(api, tmp_path)
    for odd in ("²", "9" * 5_000, "١"):  # superscript two, 5,000 digits, Arabic-Indic one
        page = loopback.post(
            f"{api.base_url}/dashboard/{mapping_id}/check-in",
            data={"confidence.discovery-meetings": odd, "attendee": "Anna Berger"},
            cookies={"okrsync_token": api.tokens["sales_ops"]},
            headers={"Origin": api.base_url},
            timeout=30,
        )
        assert page.status_code == 422, page.status_code
        assert "use 1–10" in page.text
    with Session(api.engine) as session:
        assert session.exec(sqlmodel.select(CheckIn).where(CheckIn.mapping_id == mapping_id)).all() == []


# --- 8: KAM assessments on key accounts only; check-in attendees are team members ------------------------------


def test_a_kam_cannot_assess_an_account_that_is_not_a_key_account(api: Api) -> None:
    with Session(api.engine) as session:
        mapping = session.get(OkrMapping, api.kam_mapping)
        assert mapping is not None
        keys = {s.account_id for s in session.exec(sqlmodel.select(KamAccountScore)).all()}
        accounts = session.exec(sqlmodel.select(Account).where(Account.connection_id == mapping.connection_id)).all()
        # an account that is not a key account, and a KAM token of its owner: they own it, it is no key account
        plain = next(a for a in accounts if a.external_id not in keys and a.owner_id)
        owner = session.get(Owner, (mapping.connection_id, plain.owner_id))
        assert owner is not None and owner.email
        plain_id = plain.external_id
        _row, kam_token = create_token(session, name="kam of a plain account", role=Role.kam, email=owner.email)
        session.commit()
        before = len(session.exec(sqlmodel.select(KamAssessment)).all())
    path = f"{api.base_url}/api/v1/mappings/{api.kam_mapping}/kam-assessments"
    body = {"account_id": plain_id, "criterion": "strategic-relationship", "status": "met"}
    for token in (kam_token, api.tokens["sales_ops"]):
        refused = loopback.post(path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert "is not a key account" in _shape(refused, 404)["detail"]
    with Session(api.engine) as session:
        assert len(session.exec(sqlmodel.select(KamAssessment)).all()) == before


def _running_mapping(api: Api, tmp_path: Path) -> int:
    """The acquisition example moved so that today lies in the middle of its cycle (check-ins are for running
    cycles): every date of the file (cycle, sprints) moves by the same number of days."""
    shift = (date.today() - timedelta(days=45)) - date(2026, 7, 1)
    text = (EXAMPLES / "acquisition.yaml").read_text().replace("name: Q3 2026\n", "name: Running cycle\n", 1)
    text = re.sub(r"2026-\d\d-\d\d", lambda m: str(date.fromisoformat(m.group(0)) + shift), text)
    path = tmp_path / "running.yaml"
    path.write_text(text)
    with Session(api.engine) as session:
        conn = connection(session, "salesforce")
        mapping, _version = okrs.apply(
            session, okrs.load_path(path), connection=conn, author="test", reason="test", now=utcnow()
        )
        session.commit()
        return mapping.id or 0


def test_check_in_attendees_must_be_team_members(api: Api, tmp_path: Path) -> None:
    mapping_id = _running_mapping(api, tmp_path)
    url = f"/api/v1/mappings/{mapping_id}/weekly-check-ins"
    stranger = api.call("POST", url, "sales_ops", {"attendees": ["Anna Berger", "Mallory"]})
    detail = _shape(stranger, 422)["detail"]
    assert "'Mallory'" in detail and "not in the team Vertrieb DACH" in detail and "Anna Berger" in detail
    with Session(api.engine) as session:
        assert session.exec(sqlmodel.select(CheckIn).where(CheckIn.mapping_id == mapping_id)).all() == []
    by_name_and_mail = {"attendees": ["Anna Berger", "DAVID.GARCIA@sandbox.okrsync.dev"]}
    assert api.call("POST", url, "sales_ops", by_name_and_mail).status_code == 201


@pytest.mark.slow  # okrsync in a subprocess
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e309", "1e16"])
def test_kr_set_refuses_a_value_that_is_not_a_finite_number(tmp_path: Path, value: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    env.update(OKRSYNC_DATA_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "kr", "set", "nps", "--", value],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "is not a value" in done.stderr and "nothing was stored" in done.stderr
    assert not (tmp_path / "okrsync.db").exists()  # refused before the database was opened
