"""Company goals over the real HTTP API, on SQLite and PostgreSQL: who may read and write them, the bad input each
refusal names, a stale edit refused with who changed the goal, a mapping whose objective serves a goal (unknown goal:
nothing stored), the company view with the stored progress, and a served goal that cannot be deleted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.app import create_app
from service.kit.auth import Role, create_token
from service.kit.server import ThreadedServer
from service.kit.settings import Settings
from tests import loopback
from tests.service.compute import world

GOAL = {
    "key": "new-business-2026",
    "title": "Win new customers",
    "owner": "ceo@example.com",
    "measure": "120 new customers with a first order over €10,000",
    "period": "2026",
}
KR = {
    "key": "meetings",
    "title": "20 meetings",
    "metric": {
        "type": "count",
        "of": "activities",
        "where": [{"field": "activity_kind", "op": "eq", "value": "meeting"}],
    },
    "target": 20,
}


@dataclass
class Api:
    base_url: str
    tokens: dict[str, str]

    def call(self, method: str, path: str, role: str | None, json: Any = None, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return loopback.request(
            method, f"{self.base_url}/api/v1{path}", json=json, params=params, headers=headers, timeout=60
        )


def _team(role: Role) -> str | None:
    return "Team A" if role is Role.lead else None  # a lead token names its team


@pytest.fixture
def api(engine: Engine) -> Iterator[Api]:
    world.build(engine)  # a CRM connection (salesforce/world) with a few records: mappings can be applied
    with Session(engine) as session:
        tokens = {
            r.value: create_token(session, name=f"{r.value} token", role=r, team=_team(r))[1]
            for r in Role
            if r is not Role.kam
        }
        tokens["kam"] = create_token(session, name="kam token", role=Role.kam, email="anna@example.com")[1]
        session.commit()
    with ThreadedServer(create_app(settings=Settings(_env_file=None), engine=engine, worker=False)) as http:  # type: ignore[call-arg]
        yield Api(http.base_url, tokens)


def _mapping(serves: str | None, **extra: Any) -> dict[str, Any]:
    data = yaml.safe_load(world.mapping_text([KR]))
    data["objectives"][0]["title"] = "We open doors to new customers"
    if serves is not None:
        data["objectives"][0]["serves"] = serves
    return {"yaml": yaml.safe_dump(data, sort_keys=False), "connection": "salesforce/world", **extra}


def test_readers_read_and_only_sales_ops_and_admin_write(api: Api) -> None:
    assert api.call("POST", "/goals", "sales_ops", GOAL).status_code == 201
    other = {**GOAL, "key": "care-2026-h2", "period": "2026-H2"}
    assert api.call("POST", "/goals", "admin", other).status_code == 201
    edit = {**GOAL, "version": 1, "title": "Win many new customers"}
    for role in ("viewer", "rep", "kam"):
        listed = api.call("GET", "/goals", role)
        assert listed.status_code == 200 and [g["key"] for g in listed.json()] == ["new-business-2026", "care-2026-h2"]
        assert api.call("GET", "/goals/care-2026-h2", role).json()["period"] == "2026-H2"
        assert api.call("GET", "/company", role).status_code == 200
        for method, path, body in (
            ("POST", "/goals", {**GOAL, "key": f"by-{role}"}),
            ("PUT", "/goals/new-business-2026", edit),
            ("DELETE", "/goals/care-2026-h2", None),
        ):
            refused = api.call(method, path, role, body)
            assert refused.status_code == 403, (role, method, refused.text)
            assert refused.json() == {
                "error": "forbidden",
                "detail": f"this needs the role sales_ops (the token's role is {role})",
            }
    assert api.call("GET", "/goals", None).status_code == 401
    assert api.call("POST", "/goals", None, {**GOAL, "key": "anonymous"}).status_code == 401
    # nothing a reader sent was stored
    assert [g["title"] for g in api.call("GET", "/goals", "viewer").json()] == [GOAL["title"], GOAL["title"]]
    assert api.call("PUT", "/goals/new-business-2026", "admin", edit).json()["version"] == 2
    assert api.call("DELETE", "/goals/care-2026-h2", "sales_ops").json() == {"key": "care-2026-h2", "deleted": True}
    assert api.call("GET", "/goals/care-2026-h2", "viewer").status_code == 404


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"title": "   "}, "title: must not be empty"),
        ({"owner": ""}, "owner: must not be empty"),
        ({"period": "2026-Q3"}, "period: '2026-Q3' is not a year"),
        ({"period": "1999"}, "period: '1999' is not a year"),
        ({"key": "Win Big"}, "key: 'Win Big' is not a key"),
        ({"title": "T" * 201}, "title: at most 200 characters (this one has 201)"),
        ({"measure": "bell\a"}, "measure: control characters are not allowed"),
        ({"title": None}, "body.title: Input should be a valid string"),
    ],
    ids=["empty-title", "empty-owner", "quarter-period", "year-out-of-range", "key-not-a-slug", "title-too-long",
         "control-character", "title-missing"],
)  # fmt: skip
def test_bad_input_is_refused_naming_the_field(api: Api, change: dict[str, Any], says: str) -> None:
    refused = api.call("POST", "/goals", "sales_ops", {**GOAL, **change})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"] == "invalid" and says in refused.json()["detail"], refused.json()
    assert api.call("GET", "/goals", "viewer").json() == []


def test_a_duplicate_key_and_a_bad_edit_are_refused(api: Api) -> None:
    assert api.call("POST", "/goals", "sales_ops", GOAL).status_code == 201
    again = api.call("POST", "/goals", "admin", {**GOAL, "title": "Something else"})
    assert again.status_code == 422
    assert again.json()["detail"] == (
        "key: a company goal 'new-business-2026' exists already ('Win new customers'): choose another key"
    )
    bad_edit = api.call("PUT", "/goals/new-business-2026", "sales_ops", {**GOAL, "version": 1, "period": "26"})
    assert bad_edit.status_code == 422 and bad_edit.json()["detail"].startswith("period: '26' is not a year")
    missing = api.call("PUT", "/goals/no-such-goal", "sales_ops", {**GOAL, "version": 1})
    assert missing.status_code == 404 and "no company goal 'no-such-goal'" in missing.json()["detail"]
    assert api.call("GET", "/goals/new-business-2026", "viewer").json()["version"] == 1


def test_a_stale_edit_is_refused_naming_who_changed_the_goal(api: Api) -> None:
    created = api.call("POST", "/goals", "sales_ops", GOAL).json()
    assert created["version"] == 1 and created["created_by"] == "sales_ops token"
    # both read version 1; the admin saves first
    first = api.call("PUT", "/goals/new-business-2026", "admin", {**GOAL, "version": 1, "owner": "cfo@example.com"})
    assert first.status_code == 200 and first.json()["version"] == 2 and first.json()["updated_by"] == "admin token"
    stale = api.call("PUT", "/goals/new-business-2026", "sales_ops", {**GOAL, "version": 1, "title": "Mine wins"})
    assert stale.status_code == 409, stale.text
    detail = stale.json()["detail"]
    assert detail.startswith("company goal new-business-2026 ('Win new customers') was changed by admin token at ")
    assert "(it is at version 2; your edit started from version 1): nothing was saved" in detail
    stored = api.call("GET", "/goals/new-business-2026", "viewer").json()
    assert (stored["title"], stored["owner"], stored["version"]) == (GOAL["title"], "cfo@example.com", 2)
    # a delete from the old version is refused the same way; from the current one it goes through
    old = api.call("DELETE", "/goals/new-business-2026", "sales_ops", version=1)
    assert old.status_code == 409 and "your delete started from version 1" in old.json()["detail"]
    again = api.call("PUT", "/goals/new-business-2026", "sales_ops", {**GOAL, "version": 2, "title": "Mine wins"})
    assert again.status_code == 200 and again.json()["version"] == 3
    assert api.call("DELETE", "/goals/new-business-2026", "sales_ops", version=3).status_code == 200


def test_an_objective_serves_a_goal_and_the_company_view_shows_it(api: Api) -> None:
    unknown = api.call("POST", "/mappings/apply", "sales_ops", _mapping("new-business-2026"))
    assert unknown.status_code == 422, unknown.text
    assert (
        "objectives[0].serves: objective objective ('We open doors to new customers') serves company goal"
        " 'new-business-2026', which does not exist: create it first" in unknown.json()["detail"]
    )
    assert api.call("GET", "/mappings", "viewer").json() == []  # nothing stored
    validated = api.call("POST", "/mappings/validate", "sales_ops", _mapping("new-business-2026")).json()
    assert validated["valid"] is False and validated["problems"][0]["line"] is not None

    assert api.call("POST", "/goals", "sales_ops", GOAL).status_code == 201
    assert api.call("POST", "/goals", "sales_ops", {**GOAL, "key": "care-2026-h2", "period": "2026-H2"}).status_code
    applied = api.call("POST", "/mappings/apply", "sales_ops", _mapping("new-business-2026"))
    assert applied.status_code == 200, applied.text
    mapping_id = applied.json()["mapping"]["id"]
    progress = api.call("GET", f"/mappings/{mapping_id}", "viewer").json()["objectives"][0]["progress"]

    company = api.call("GET", "/company", "rep").json()
    served, unserved = company["goals"]
    assert served["key"] == "new-business-2026" and served["teams"] == ["World team"]
    assert served["objectives"] == [
        {"mapping_id": mapping_id, "team": "World team", "cycle": "Q3 2026", "connection": "salesforce/world",
         "objective": "objective", "title": "We open doors to new customers", "progress": progress,
         "status": served["objectives"][0]["status"], "achieved": False},
    ]  # fmt: skip
    assert progress is not None and served["objectives"][0]["status"] is not None
    assert unserved["key"] == "care-2026-h2" and unserved["objectives"] == []
    assert company["unserved"] == ["care-2026-h2"] and company["unlinked"] == [] and company["unknown"] == []

    # a served goal is not deleted: the answer names the team, the cycle and the objective
    refused = api.call("DELETE", "/goals/new-business-2026", "admin")
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        "company goal new-business-2026 ('Win new customers') is served by 1 objective(s) — World team / Q3 2026:"
        " objective objective ('We open doors to new customers'). Nothing was deleted: remove"
        " `serves: new-business-2026` from them (apply each mapping again; while its cycle runs, with a reason),"
        " then delete the goal"
    )
    assert api.call("GET", "/goals/new-business-2026", "viewer").status_code == 200

    # the link may change after the cycle started (the objective may not); it needs a reason like a KR change
    no_reason = api.call("POST", "/mappings/apply", "sales_ops", _mapping(None))
    assert no_reason.status_code == 409 and "objective objective serves no company goal" in no_reason.json()["detail"]
    unlinked = api.call("POST", "/mappings/apply", "sales_ops", _mapping(None, reason="goal retired"))
    assert unlinked.status_code == 200 and unlinked.json()["changes"] == ["objective objective serves no company goal"]
    company = api.call("GET", "/company", "viewer").json()
    assert company["unserved"] == ["new-business-2026", "care-2026-h2"]
    assert [o["objective"] for o in company["unlinked"]] == ["objective"]
    assert api.call("DELETE", "/goals/new-business-2026", "admin").status_code == 200
