"""Bottom-up planning over the real HTTP API, on SQLite and PostgreSQL: a rep drafts (no YAML typed), the preview's
values are the counts of the raw rows, the lead asks for a change, the rep edits, the lead approves and the mapping is
applied; who may do what; two people saving the same revision; an overlapping cycle; bad input named; the YAML
round trip; the builder offers only what the validation accepts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy.engine import Engine
from sqlmodel import Session

from mappings.config import MappingConfig
from service.kit.auth import Role, create_token
from service.kit.server import ThreadedServer
from service.kit.settings import Settings
from service.okrs import service as okrs
from service.okrs.models import OkrMapping, OkrMappingVersion
from tests import loopback
from tests.service.compute import world

TEAM = "World team"
MEMBERS = [{"email": "anna@example.com", "name": "Anna"}, {"email": "ben@example.com", "name": "Ben"}]
MEETINGS = {
    "key": "meetings",
    "title": "20 meetings with customers",
    "metric": {
        "type": "count",
        "of": "activities",
        "where": [{"field": "activity_kind", "op": "eq", "value": "meeting"}],
    },
    "target": 20,
}
CALLS = {
    "key": "outbound-calls",
    "title": "40 outbound calls",
    "metric": {
        "type": "count",
        "of": "activities",
        "where": [
            {"field": "activity_kind", "op": "eq", "value": "call"},
            {"field": "direction", "op": "eq", "value": "outbound"},
        ],
    },
    "target": 40,
}
PIPELINE = {
    "key": "new-opportunities",
    "title": "5 new opportunities",
    "metric": {"type": "count", "of": "opportunities", "date_field": "created_at"},
    "target": 5,
}


@dataclass
class Api:
    base_url: str
    tokens: dict[str, str]

    def call(self, method: str, path: str, role: str, json: Any = None, **params: Any) -> httpx.Response:
        return loopback.request(
            method, f"{self.base_url}/api/v1/planning{path}", json=json, params=params,
            headers={"Authorization": f"Bearer {self.tokens[role]}"}, timeout=60,
        )  # fmt: skip

    def ok(self, method: str, path: str, role: str, json: Any = None, status: int = 200, **params: Any) -> Any:
        answer = self.call(method, path, role, json, **params)
        assert answer.status_code == status, answer.text
        return answer.json()


def _api(engine: Engine, settings: Settings) -> Iterator[Api]:
    from service.app import create_app

    world.build(engine)
    with Session(engine) as session:
        tokens = {
            role: create_token(session, name=f"{role} token", role=Role(role))[1]
            for role in ("viewer", "rep", "kam_less_rep", "sales_ops")
            if role != "kam_less_rep"
        }
        tokens["lead"] = create_token(session, name="Lena (lead)", role=Role.lead, team=TEAM)[1]
        tokens["other_lead"] = create_token(session, name="Otto (lead)", role=Role.lead, team="Other team")[1]
        tokens["rep2"] = create_token(session, name="Ben (rep)", role=Role.rep)[1]
        session.commit()
    with ThreadedServer(create_app(settings=settings, engine=engine, worker=False)) as http:
        yield Api(http.base_url, tokens)


@pytest.fixture
def api(engine: Engine) -> Iterator[Api]:
    yield from _api(engine, Settings(_env_file=None))  # type: ignore[call-arg]


def _draft(api: Api, cycle: str = "Q1 2027", start: str = "2027-01-01", end: str = "2027-03-31") -> dict[str, Any]:
    body = {"connection": "salesforce/world", "team": TEAM, "cycle": cycle, "start": start, "end": end,
            "members": MEMBERS}  # fmt: skip
    return api.ok("POST", "/drafts", "rep", body, status=201)


def _with_objectives(content: dict[str, Any]) -> dict[str, Any]:
    return {
        **content,
        "objectives": [
            {"key": "new-customers", "title": "We open doors to new customers", "key_results": [MEETINGS, CALLS]},
            {"key": "pipeline", "title": "Our pipeline grows", "key_results": [PIPELINE]},
        ],
    }


def _meetings(first: date, last: date) -> int:
    """The team's meetings in [first, last] from the raw rows (not through okrsync's compute)."""
    return sum(
        1
        for a in world.ACTIVITIES
        if a.activity_kind == "meeting" and a.owner_id in ("u1", "u2") and not a.is_deleted
        and a.occurred_at is not None and first <= a.occurred_at.date() <= last
    )  # fmt: skip


def test_a_draft_goes_from_the_rep_through_the_lead_to_an_applied_mapping(api: Api, engine: Engine) -> None:
    draft = _draft(api)
    assert draft["status"] == "drafting" and draft["revision"] == 1 and draft["content"]["objectives"] == []
    assert any("objectives" in p["message"] for p in draft["problems"]), "an empty draft names what is missing"
    path = f"/drafts/{draft['id']}"

    # the builder's options and a live preview, as of the world's day (its Q3 mapping is the running cycle)
    world.apply_and_compute(engine, world.mapping_text([MEETINGS]))
    options = api.ok("GET", "/builder", "rep", connection="salesforce/world")
    kinds = next(f for f in options["counted"]["activities"] if f["field"] == "activity_kind")
    assert "meeting" in kinds["values"] and "eq" in kinds["ops"]
    preview = api.ok(
        "POST", "/preview", "rep", {"draft_id": draft["id"], "key_result": MEETINGS, "as_of": "2026-08-15"}
    )
    running, before = preview["running"], preview["before"]
    assert running["window"] == "Q3 2026" and (running["start"], running["end"]) == ("2026-07-01", "2026-09-30")
    assert running["value"] == _meetings(date(2026, 7, 1), date(2026, 8, 15)) == 4
    first, last = date.fromisoformat(before["start"]), date.fromisoformat(before["end"])
    assert last == date(2026, 6, 30) and (last - first).days + 1 == 92
    assert before["value"] == _meetings(first, last) == 1 and preview["suggested_baseline"] == 1

    saved = api.ok("PUT", path, "rep", {"content": _with_objectives(draft["content"]), "revision": 1})
    assert saved["revision"] == 2 and saved["problems"] == []
    assert api.ok("POST", f"{path}/submit", "rep")["status"] == "in_review"

    rating = {"item": "outbound-calls", "feasibility": 4, "relevance": 2, "effort": 3, "body": "Calls: which accounts?"}
    api.ok("POST", f"{path}/reviews", "lead", rating, status=201)
    asked = api.ok("POST", f"{path}/request-changes", "lead", {"body": "Count calls to prospects only"})
    assert asked["status"] == "changes_requested"

    content = asked["content"]
    content["objectives"][0]["key_results"][1]["metric"]["where"].append(
        {"field": "account.account_type", "op": "eq", "value": "Prospect"}
    )
    edited = api.ok("PUT", path, "rep", {"content": content, "revision": asked["revision"]})
    assert edited["status"] == "drafting"
    api.ok("POST", f"{path}/submit", "rep")
    approved = api.ok("POST", f"{path}/approve", "lead", {})
    assert approved["status"] == "approved" and approved["mapping_version"] == 1
    kinds_seen = [e["kind"] for e in approved["events"]]
    assert kinds_seen == ["submit", "review", "request_changes", "submit", "approve"]
    review = approved["events"][1]
    assert (review["item"], review["feasibility"], review["relevance"], review["effort"]) == ("outbound-calls", 4, 2, 3)

    with Session(engine) as session:
        mapping = session.get(OkrMapping, approved["mapping_id"])
        assert mapping is not None and (mapping.team, mapping.cycle) == (TEAM, "Q1 2027")
        version = session.get(OkrMappingVersion, (mapping.id, 1))
        assert version is not None and version.author == "Lena (lead)"
        # what was applied is what a sales-ops user's file says (the draft exported and loaded as a file)
        handwritten = yaml.safe_dump(content, sort_keys=False)
        assert MappingConfig.model_validate(version.config) == okrs.load(handwritten, filename="x.yaml").config
    # an applied draft is closed: the mapping changes from here
    closed = api.call("PUT", path, "rep", {"content": content, "revision": approved["revision"]})
    assert closed.status_code == 409 and "approved and applied as mapping version 1" in closed.text


def test_who_may_do_what(api: Api) -> None:
    draft = _draft(api)
    path = f"/drafts/{draft['id']}"
    content = _with_objectives(draft["content"])
    assert api.call("GET", path, "viewer").status_code == 200
    assert api.call("PUT", path, "viewer", {"content": content, "revision": 1}).status_code == 403
    api.ok("PUT", path, "rep", {"content": content, "revision": 1})
    api.ok("POST", f"{path}/submit", "rep")
    for role in ("rep", "viewer"):  # a rep cannot review or approve
        assert api.call("POST", f"{path}/approve", role, {}).status_code == 403
        review = {"item": "meetings", "feasibility": 3, "relevance": 3, "effort": 3}
        assert api.call("POST", f"{path}/reviews", role, review).status_code == 403
    # the lead of another team can neither review nor approve nor edit this team's draft
    other = api.call("POST", f"{path}/approve", "other_lead", {})
    assert other.status_code == 403 and "team Other team" in other.text
    assert api.call("PUT", path, "other_lead", {"content": content, "revision": 2}).status_code == 403
    # nor comment on it, nor open a draft for that team
    assert api.call("POST", f"{path}/comments", "other_lead", {"body": "Looks good"}).status_code == 403
    theirs = {"connection": "salesforce/world", "team": TEAM, "cycle": "Q2 2027", "start": "2027-04-01",
              "end": "2027-06-30", "members": MEMBERS}  # fmt: skip
    assert api.call("POST", "/drafts", "other_lead", theirs).status_code == 403
    # sales ops may review any team
    assert api.call("POST", f"{path}/request-changes", "sales_ops", {"body": "Fewer KRs"}).status_code == 200


def test_a_save_during_review_sends_the_draft_back_to_drafting(api: Api) -> None:
    """The lead approves only what was submitted: changed content must be sent to review again."""
    draft = _draft(api)
    path = f"/drafts/{draft['id']}"
    content = _with_objectives(draft["content"])
    api.ok("PUT", path, "rep", {"content": content, "revision": 1})
    api.ok("POST", f"{path}/submit", "rep")
    content["objectives"][0]["key_results"][0]["target"] = 5
    assert api.ok("PUT", path, "rep", {"content": content, "revision": 2})["status"] == "drafting"
    refused = api.call("POST", f"{path}/approve", "lead", {})
    assert refused.status_code == 409 and "submit it first" in refused.text


def test_two_people_saving_the_same_revision_the_second_is_refused_and_nothing_is_lost(api: Api) -> None:
    draft = _draft(api)
    path = f"/drafts/{draft['id']}"
    mine = _with_objectives(draft["content"])
    theirs = {**draft["content"], "objectives": [{"key": "care", "title": "Customers recommend us",
                                                 "key_results": [MEETINGS]}]}  # fmt: skip
    api.ok("PUT", path, "rep2", {"content": theirs, "revision": 1})
    late = api.call("PUT", path, "rep", {"content": mine, "revision": 1})
    assert late.status_code == 409
    assert "saved by Ben (rep)" in late.text and "revision 2" in late.text and "opened revision 1" in late.text
    stored = api.ok("GET", path, "viewer")
    assert stored["content"] == theirs and stored["revision"] == 2  # the first save stands, untouched


def test_refusals_name_what_is_wrong(api: Api, engine: Engine) -> None:
    today = datetime.now(UTC).date()
    running = {"name": "Running", "start": (today - timedelta(days=10)).isoformat(),
               "end": (today + timedelta(days=20)).isoformat()}  # fmt: skip
    world.apply_and_compute(engine, world.mapping_text([MEETINGS], cycle=running), as_of=datetime.now(UTC))
    overlap = api.call("POST", "/drafts", "rep", {"connection": "salesforce/world", "team": TEAM, "cycle": "Next",
                                                  "start": today.isoformat(),
                                                  "end": (today + timedelta(days=60)).isoformat()})  # fmt: skip
    assert overlap.status_code == 409 and "overlaps team World team's running cycle Running" in overlap.text
    draft = _draft(api)
    again = {
        "connection": "salesforce/world",
        "team": TEAM,
        "cycle": "Q1 2027",
        "start": "2027-01-01",
        "end": "2027-03-31",
    }
    twice = api.call("POST", "/drafts", "rep", again)
    assert (
        twice.status_code == 409
        and f"team World team has a draft for Q1 2027 already (draft {draft['id']}" in twice.text
    )
    path = f"/drafts/{draft['id']}"
    unready = api.call("POST", f"{path}/submit", "rep")
    assert unready.status_code == 422 and "not ready for review" in unready.text and "objectives" in unready.text
    api.ok("PUT", path, "rep", {"content": _with_objectives(draft["content"]), "revision": 1})
    early = api.call("POST", f"{path}/approve", "lead", {})
    assert early.status_code == 409 and "submit it first" in early.text
    api.ok("POST", f"{path}/submit", "rep")
    seven = api.call("POST", f"{path}/reviews", "lead", {"item": "meetings", "feasibility": 7, "relevance": 3,
                                                         "effort": 3})  # fmt: skip
    assert seven.status_code == 422 and "feasibility is rated 1 (poor) to 5 (good), not 7" in seven.text
    unknown = api.call("POST", f"{path}/reviews", "lead", {"item": "nope", "feasibility": 3, "relevance": 3,
                                                           "effort": 3})  # fmt: skip
    assert unknown.status_code == 422 and "item 'nope' is no objective or key result" in unknown.text
    renamed = {**_with_objectives(draft["content"]), "team": {"name": "Other", "members": MEMBERS}}
    moved = api.call("PUT", path, "rep", {"content": renamed, "revision": 2})
    assert moved.status_code == 422 and "team.name and cycle.name of a draft stay 'World team'" in moved.text
    assert api.call("GET", "/drafts/999999", "viewer").status_code == 404


def test_a_preview_that_takes_too_long_says_so(engine: Engine) -> None:
    settings = Settings(_env_file=None, serve={"preview_seconds": 0.000001})  # type: ignore[call-arg]
    for api in _api(engine, settings):
        draft = _draft(api)
        answer = api.call("POST", "/preview", "rep", {"draft_id": draft["id"], "key_result": MEETINGS,
                                                      "as_of": "2026-08-15"})  # fmt: skip
        assert answer.status_code == 422 and "took longer than 1e-06 s" in answer.text, answer.text
        assert "narrow the key result's filters" in answer.text
        assert api.ok("GET", "/drafts", "viewer")[0]["revision"] == 1  # nothing stored, nothing lost


def test_yaml_round_trip_is_lossless(api: Api) -> None:
    text = world.mapping_text([MEETINGS, CALLS], cycle={"name": "Q1 2027", "start": "2027-01-01", "end": "2027-03-31"})
    imported = api.ok("POST", "/drafts/import", "rep", {"yaml": text, "connection": "salesforce/world"}, status=201)
    assert imported["problems"] == []
    exported = api.call("GET", f"/drafts/{imported['id']}/yaml", "viewer")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(exported.text) == imported["content"] == yaml.safe_load(text)
    # the exported file is a mapping file: the same configuration as the one imported
    assert okrs.load(exported.text, filename="a.yaml").config == okrs.load(text, filename="b.yaml").config


def _offered_and_accepted(session: Session, options: dict[str, Any], connection: Any, member: str) -> int:
    """Every field/value the builder offers, as a one-condition count: the validation must accept each."""
    offered = 0
    for counted, fields in options["counted"].items():
        for spec in fields:
            for value in spec.get("values", []) or [None]:
                op = "eq" if value is not None else spec["ops"][0]
                condition = {"field": spec["field"], "op": op}
                if value is not None:
                    condition["value"] = value
                elif op not in options["no_value_ops"]:
                    continue  # a typed-in value: nothing offered
                kr = {"key": "k", "title": "K", "target": 1,
                      "metric": {"type": "count", "of": counted, "where": [condition]}}  # fmt: skip
                data = yaml.safe_load(world.mapping_text([kr]))
                data["team"] = {"name": "Builder", "members": [{"email": member}]}
                loaded = okrs.load(yaml.safe_dump(data), filename=f"{counted}-{spec['field']}.yaml")
                assert okrs.check_against_crm(session, loaded, connection) == [], condition
                offered += 1
    return offered


def test_the_builder_offers_only_what_the_validation_accepts(api: Api, engine: Engine) -> None:
    options = api.ok("GET", "/builder", "rep", connection="salesforce/world")
    assert {m["type"] for m in options["metrics"]} >= {"count", "sum", "ratio", "response_time", "speed_to_lead"}
    with Session(engine) as session:
        connection = okrs.resolve_connection(session, "salesforce/world")
        assert _offered_and_accepted(session, options, connection, "anna@example.com") >= 20


def test_the_builder_over_the_sandbox_org(engine: Engine, config: Any) -> None:
    """The same over a synced sandbox org: its picklists (stages, account types, titles, lead sources…)."""
    from connectors.salesforce.connector import SalesforceConnector
    from service.planning import builder
    from service.sync.service import run_sync

    run_sync(engine, SalesforceConnector(config), connection_name="sandbox", full=True)
    with Session(engine) as session:
        connection = okrs.resolve_connection(session, "salesforce/sandbox")
        options = builder.options(session, connection)
        stages = next(f for f in options["counted"]["opportunities"] if f["field"] == "stage")["values"]
        assert "Prospecting" in stages and "Closed Won" in stages
        types = next(f for f in options["counted"]["activities"] if f["field"] == "account.account_type")["values"]
        assert "Prospect" in types
        assert _offered_and_accepted(session, options, connection, "anna.berger@sandbox.okrsync.dev") >= 60


def test_a_draft_that_stopped_validating_after_submit_is_refused_on_approval_not_a_500(api: Api) -> None:
    """The company goal an objective serves is deleted while the draft is in review: approving names the problem
    (422), the draft stays in review, nothing is applied."""
    headers = {"Authorization": f"Bearer {api.tokens['sales_ops']}"}
    goal = {"key": "win-2026", "title": "Win", "owner": "CEO", "measure": "120 customers", "period": "2026"}
    assert loopback.post(f"{api.base_url}/api/v1/goals", json=goal, headers=headers).status_code == 201
    draft = _draft(api)
    path = f"/drafts/{draft['id']}"
    content = _with_objectives(draft["content"])
    content["objectives"][0]["serves"] = "win-2026"
    assert api.ok("PUT", path, "rep", {"content": content, "revision": 1})["problems"] == []
    api.ok("POST", f"{path}/submit", "rep")
    assert loopback.delete(f"{api.base_url}/api/v1/goals/win-2026", headers=headers).status_code == 200
    refused = api.call("POST", f"{path}/approve", "lead", {})
    assert refused.status_code == 422, refused.text
    assert "win-2026" in refused.text and "does not apply" in refused.text
    stored = api.ok("GET", path, "viewer")
    assert stored["status"] == "in_review" and stored["mapping_id"] is None
    assert any("win-2026" in p["message"] for p in stored["problems"])
