"""The planning pages over real HTTP, on SQLite and PostgreSQL: a rep opens a draft and builds objectives and key
results with the forms (no YAML), previews a key result (its value now and last cycle, counted from the raw rows),
sends it to review; the lead asks for a change, the rep edits, the lead approves and the mapping is applied. Who sees
which form and who may post what (a viewer reads, a rep cannot approve, another team's lead gets 403); a stale save
shows the conflict and keeps the typed text; the builder offers only the fields and values of ``builder.options``;
bad input is named and nothing stored is lost."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from service.app import create_app
from service.compute.models import KeyResultValue
from service.dashboard import access, endpoints
from service.kit.auth import Role, create_token
from service.kit.server import ThreadedServer
from service.kit.settings import Settings
from service.okrs import service as okrs
from service.okrs.models import OkrMapping
from service.planning import builder
from tests import loopback
from tests.service.compute import world

TEAM = "World team"
MEETINGS = {"key": "meetings", "title": "20 meetings", "target": 20,
            "metric": {"type": "count", "of": "activities",
                       "where": [{"field": "activity_kind", "op": "eq", "value": "meeting"}]}}  # fmt: skip
DRAFT = {"connection": "salesforce/world", "team": TEAM, "cycle": "Q1 2027", "start": "2027-01-01",
         "end": "2027-03-31", "members": ""}  # fmt: skip
OPENING = "we-open-doors-to-new-customers"  # the objective's key, made from its title
GOAL = {"key": "new-business-2026", "title": "Win new customers", "owner": "Clara CEO", "measure": "120 new customers",
        "period": "2026"}  # fmt: skip


@dataclass
class Site:
    base_url: str
    tokens: dict[str, str]
    engine: Engine

    def browser(self, role: str) -> loopback.Client:
        """As the logged-in browser sends it: the token in the cookie, Origin this site."""
        return loopback.client(
            base_url=self.base_url, headers={"Origin": self.base_url}, cookies={access.TOKEN_COOKIE: self.tokens[role]},
            timeout=60, follow_redirects=False,
        )  # fmt: skip

    def api(self, method: str, path: str, json: Any = None) -> Any:
        answer = loopback.request(
            method, f"{self.base_url}/api/v1{path}", json=json, timeout=60,
            headers={"Authorization": f"Bearer {self.tokens['sales_ops']}"},
        )  # fmt: skip
        assert answer.status_code < 300, answer.text
        return answer.json()


@pytest.fixture
def site(engine: Engine) -> Iterator[Site]:
    yield from _site(engine, Settings(_env_file=None))  # type: ignore[call-arg]


def _site(engine: Engine, settings: Settings) -> Iterator[Site]:
    world.build(engine)
    world.apply_and_compute(engine, world.mapping_text([MEETINGS]))  # the team's running cycle: Q3 2026
    with Session(engine) as session:
        tokens = {r: create_token(session, name=f"{r} token", role=Role(r))[1] for r in ("viewer", "rep", "sales_ops")}
        tokens["rep2"] = create_token(session, name="Ben (rep)", role=Role.rep)[1]
        tokens["lead"] = create_token(session, name="Lena (lead)", role=Role.lead, team=TEAM)[1]
        tokens["other_lead"] = create_token(session, name="Otto (lead)", role=Role.lead, team="Other team")[1]
        session.commit()
    app = create_app(settings=settings, engine=engine, worker=False)
    app.dependency_overrides[endpoints.now] = lambda: world.AS_OF
    with ThreadedServer(app) as http:
        found = Site(http.base_url, tokens, engine)
        found.api("POST", "/goals", GOAL)
        yield found


def _open_draft(site: Site) -> int:
    with site.browser("rep") as rep:
        opened = rep.post("/dashboard/planning/drafts", data=DRAFT)
    assert opened.status_code == 303, opened.text
    found = re.fullmatch(r"/dashboard/planning/(\d+)\?done=created", opened.headers["location"])
    assert found is not None
    return int(found.group(1))


def _revision(html: str, form_id: str) -> str:
    form = html[html.index(f'id="{form_id}"') :]
    found = re.search(r'name="revision" value="(\d+)"', form)
    assert found is not None
    return found.group(1)


def _objective(site: Site, draft_id: int, role: str = "rep", **typed: str) -> httpx.Response:
    with site.browser(role) as client:
        page = client.get(f"/dashboard/planning/{draft_id}").text
        form = {"original": "", "key": "", "title": "", "serves": "", "revision": _revision(page, "objective-form")}
        return client.post(f"/dashboard/planning/{draft_id}/objectives", data={**form, **typed})


def _kr_form(**typed: str) -> dict[str, str]:
    return {"objective": "new-customers", "original": "", "key": "", "title": "20 meetings with customers",
            "metric": "count", "of": "activities", "field_1": "activity_kind", "op_1": "eq", "value_1": "meeting",
            "target": "20", "baseline": "", "step": "save", **typed}  # fmt: skip


def _post_kr(site: Site, draft_id: int, role: str = "rep", **typed: str) -> httpx.Response:
    with site.browser(role) as client:
        page = client.get(f"/dashboard/planning/{draft_id}").text
        return client.post(
            f"/dashboard/planning/{draft_id}/key-results", data=_kr_form(revision=_revision(page, "builder"), **typed)
        )


def _stored(site: Site, draft_id: int) -> dict[str, Any]:
    stored: dict[str, Any] = site.api("GET", f"/planning/drafts/{draft_id}")
    return stored


def _with_a_key_result(site: Site) -> int:
    draft_id = _open_draft(site)
    assert _objective(site, draft_id, title="We open doors to new customers", key="new-customers",
                      serves=GOAL["key"]).status_code == 303  # fmt: skip
    assert _post_kr(site, draft_id).status_code == 303
    return draft_id


def test_a_draft_goes_from_the_rep_through_the_lead_to_an_applied_mapping(site: Site) -> None:
    draft_id = _open_draft(site)
    with site.browser("rep") as rep:
        listed = rep.get("/dashboard/planning").text
        assert f'href="/dashboard/planning/{draft_id}">World team</a>' in listed and "rep token" in listed
        assert 'href="/dashboard/planning" aria-current="page"' in listed  # in the header
        page = rep.get(f"/dashboard/planning/{draft_id}?done=created").text
    assert "Draft opened." in page and "No objective yet" in page
    assert "anna@example.com" not in page  # no YAML shown: the members came from the team's mapping
    assert any("objectives" in p["message"] for p in _stored(site, draft_id)["problems"])

    added = _objective(site, draft_id, title="We open doors to new customers", serves=GOAL["key"])
    assert added.status_code == 303 and added.headers["location"].endswith("done=saved")
    _objective(site, draft_id, title="Our pipeline grows", key="pipeline")
    # the live value now (Q3 2026 so far) and last cycle, counted from the raw rows as the API test does
    with site.browser("rep") as rep:
        page = rep.get(f"/dashboard/planning/{draft_id}").text
        typed = _kr_form(step="preview", objective=OPENING, revision=_revision(page, "builder"))
        preview = rep.post(f"/dashboard/planning/{draft_id}/key-results", data=typed)
    assert preview.status_code == 200, preview.text
    shown = preview.text[preview.text.index('id="preview"') :]
    assert re.search(r"Now \(Q3 2026\)</dt>\s*<dd>4</dd>", shown) and "2026-07-01 – 2026-09-30" in shown
    assert re.search(r"Last cycle</dt>\s*<dd>1</dd>", shown) and "suggested baseline" in shown
    assert 'value="20 meetings with customers"' in preview.text  # the builder keeps what was typed
    assert _stored(site, draft_id)["revision"] == 3  # a preview stores nothing

    assert _post_kr(site, draft_id, objective=OPENING, baseline="1").status_code == 303
    assert _post_kr(site, draft_id, objective="pipeline", title="5 new opportunities", of="opportunities",
                    field_1="", target="5").status_code == 303  # fmt: skip
    stored = _stored(site, draft_id)
    assert stored["problems"] == [] and stored["revision"] == 5
    objectives = stored["content"]["objectives"]
    assert objectives[0] == {
        "key": "we-open-doors-to-new-customers", "title": "We open doors to new customers", "serves": GOAL["key"],
        "key_results": [{"key": "20-meetings-with-customers", "title": "20 meetings with customers",
                         "metric": {"type": "count", "of": "activities",
                                    "where": [{"field": "activity_kind", "op": "eq", "value": "meeting"}]},
                         "baseline": 1, "target": 20}],
    }  # fmt: skip
    assert objectives[1]["key_results"][0]["metric"] == {"type": "count", "of": "opportunities"}

    with site.browser("rep") as rep:
        page = rep.get(f"/dashboard/planning/{draft_id}").text
        assert "Serves the company goal: Win new customers" in page and "<code>activity_kind eq meeting</code>" in page
        assert f'action="/dashboard/planning/{draft_id}/approve"' not in page  # not for a rep
        assert rep.post(f"/dashboard/planning/{draft_id}/submit").status_code == 303
        refused = rep.post(f"/dashboard/planning/{draft_id}/approve", data={"reason": ""})
    assert refused.status_code == 403 and "This needs the role team lead; your token has the role rep." in refused.text

    with site.browser("other_lead") as other:
        assert (
            f'action="/dashboard/planning/{draft_id}/approve"' not in other.get(f"/dashboard/planning/{draft_id}").text
        )
        for path, form in (("approve", {"reason": ""}), ("request-changes", {"body": "no"}),
                           ("objectives", {"title": "Mine", "revision": "6"}),
                           ("key-results", _kr_form(step="preview", revision="6"))):  # fmt: skip
            answer = other.post(f"/dashboard/planning/{draft_id}/{path}", data=form)
            assert answer.status_code == 403 and "team Other team" in unescape(answer.text), (path, answer.text)

    with site.browser("lead") as lead:
        page = lead.get(f"/dashboard/planning/{draft_id}").text
        assert (
            f'action="/dashboard/planning/{draft_id}/approve"' in page and "Review: 20 meetings with customers" in page
        )
        review = {"item": "20-meetings-with-customers", "feasibility": "4", "relevance": "5", "effort": "2",
                  "body": "Which customers?"}  # fmt: skip
        assert lead.post(f"/dashboard/planning/{draft_id}/reviews", data=review).status_code == 303
        empty = lead.post(f"/dashboard/planning/{draft_id}/request-changes", data={"body": " "})
        assert empty.status_code == 422 and "say what should change" in empty.text
        asked = lead.post(f"/dashboard/planning/{draft_id}/request-changes", data={"body": "Meetings with prospects"})
        assert asked.status_code == 303
        history = lead.get(asked.headers["location"]).text
    assert "Changes requested: the team sees your comment." in history
    assert "Feasibility 4/5 · Relevance 5/5 · Effort 2/5" in history and "Meetings with prospects" in history

    prospects = {"field_2": "account.account_type", "op_2": "eq", "value_2": "Prospect"}
    edited = _post_kr(site, draft_id, original="20-meetings-with-customers", key="20-meetings-with-customers",
                      baseline="1", objective=OPENING, **prospects)  # fmt: skip
    assert edited.status_code == 303
    kr = _stored(site, draft_id)["content"]["objectives"][0]["key_results"]
    assert len(kr) == 1 and kr[0]["metric"]["where"][1] == {"field": "account.account_type", "op": "eq",
                                                            "value": "Prospect"}  # fmt: skip
    with site.browser("rep") as rep:
        assert rep.post(f"/dashboard/planning/{draft_id}/submit").status_code == 303
    with site.browser("lead") as lead:
        approved = lead.post(f"/dashboard/planning/{draft_id}/approve", data={"reason": ""})
        assert approved.status_code == 303
        page = lead.get(approved.headers["location"]).text
    stored = _stored(site, draft_id)
    assert stored["status"] == "approved" and stored["mapping_version"] == 1
    assert f'<a href="/dashboard/{stored["mapping_id"]}">Open the team&#39;s overview</a>' in page
    assert 'action="/dashboard/planning/' not in page  # closed: the mapping changes from here
    with Session(site.engine) as session:
        mapping = session.get(OkrMapping, stored["mapping_id"])
        assert mapping is not None and (mapping.team, mapping.cycle) == (TEAM, "Q1 2027")
        assert session.exec(select(KeyResultValue).where(KeyResultValue.mapping_id == mapping.id)).first()  # computed


def test_a_viewer_sees_the_draft_but_gets_no_form_and_posting_is_forbidden(site: Site) -> None:
    draft_id = _with_a_key_result(site)
    with site.browser("viewer") as viewer:
        page = viewer.get(f"/dashboard/planning/{draft_id}")
        assert page.status_code == 200 and page.headers["content-security-policy"] == access.CSP
        assert "We open doors to new customers" in page.text and "20 meetings with customers" in page.text
        assert '<form method="post" action="/dashboard/planning' not in page.text
        assert "needs a token with the role rep or higher" in page.text
        listed = viewer.get("/dashboard/planning").text
        assert 'action="/dashboard/planning/drafts"' not in listed
        for path, form in (
            ("/dashboard/planning/drafts", DRAFT),
            (f"/dashboard/planning/{draft_id}/objectives", {"title": "Mine", "revision": "3"}),
            (f"/dashboard/planning/{draft_id}/key-results", _kr_form(revision="3")),
            (f"/dashboard/planning/{draft_id}/comments", {"body": "hello"}),
            (f"/dashboard/planning/{draft_id}/submit", {}),
            (f"/dashboard/planning/{draft_id}/approve", {}),
        ):
            refused = viewer.post(path, data=form)
            assert refused.status_code == 403, (path, refused.text)
            assert "This needs the role" in refused.text
    # a form sent from another site is refused even for a rep
    with loopback.client(base_url=site.base_url, headers={"Origin": "https://evil.example"},
                      cookies={access.TOKEN_COOKIE: site.tokens["rep"]}) as forged:  # fmt: skip
        assert forged.post(f"/dashboard/planning/{draft_id}/comments", data={"body": "x"}).status_code == 403
    assert _stored(site, draft_id)["revision"] == 3 and _stored(site, draft_id)["events"] == []


def test_a_stale_save_shows_the_conflict_and_keeps_the_typed_text(site: Site) -> None:
    draft_id = _with_a_key_result(site)
    with site.browser("rep") as rep, site.browser("rep2") as ben:
        loaded = rep.get(f"/dashboard/planning/{draft_id}").text
        mine = _kr_form(revision=_revision(loaded, "builder"), title="My <careful> wording", key="careful", target="30")
        objective = {"title": "Customers recommend us", "revision": _revision(loaded, "objective-form")}
        theirs = ben.post(f"/dashboard/planning/{draft_id}/objectives", data=objective)
        assert theirs.status_code == 303
        stale = rep.post(f"/dashboard/planning/{draft_id}/key-results", data=mine)
    assert stale.status_code == 409
    text = unescape(stale.text)
    assert "was saved by Ben (rep) at 2026-08-15 12:00 UTC (revision 4) after you opened revision 3" in text
    builder_form = stale.text[stale.text.index('id="builder"') :]
    assert 'value="My &lt;careful&gt; wording"' in builder_form and 'value="30"' in builder_form  # kept, as text
    assert '<input type="hidden" name="revision" value="4">' in builder_form  # sending again applies it knowingly
    stored = _stored(site, draft_id)
    assert stored["revision"] == 4 and [o["title"] for o in stored["content"]["objectives"]] == [
        "We open doors to new customers", "Customers recommend us"]  # fmt: skip
    with site.browser("rep") as rep:
        again = rep.post(f"/dashboard/planning/{draft_id}/key-results", data={**mine, "revision": "4"})
    assert again.status_code == 303
    keys = [k["key"] for k in _stored(site, draft_id)["content"]["objectives"][0]["key_results"]]
    assert keys == ["20-meetings-with-customers", "careful"]


def test_the_builder_offers_only_the_fields_and_values_of_the_options(site: Site, engine: Engine) -> None:
    draft_id = _with_a_key_result(site)
    with Session(engine) as session:
        options = builder.options(session, okrs.resolve_connection(session, "salesforce/world"))
    with site.browser("rep") as rep:
        page = rep.get(f"/dashboard/planning/{draft_id}?edit_kr=20-meetings-with-customers").text
        assert (
            'value="20 meetings with customers"' in page
            and 'name="original" value="20-meetings-with-customers"' in page
        )
        opportunities = rep.post(
            f"/dashboard/planning/{draft_id}/key-results",
            data=_kr_form(step="fields", of="opportunities", field_1="", revision=_revision(page, "builder")),
        )  # fmt: skip
    for html, record in ((page, "activities"), (opportunities.text, "opportunities")):
        form = html[html.index('id="builder"') :]
        select = form[form.index('name="field_1"') : form.index("</select>", form.index('name="field_1"'))]
        offered = re.findall(r'<option value="([^"]*)"', select)
        assert offered == ["", *(f["field"] for f in options["counted"][record])]
        for field in options["counted"][record]:
            if field.get("values"):
                listed = form.index(f'<datalist id="values-{field["field"].replace(".", "-")}">')
                values = re.findall(r'<option value="([^"]*)">', form[listed : form.index("</datalist>", listed)])
                assert [unescape(v) for v in values] == field["values"], field["field"]
    kinds = next(f for f in options["counted"]["activities"] if f["field"] == "activity_kind")
    assert "meeting" in kinds["values"]
    assert 'list="values-activity_kind"' in page  # the chosen field's values offered for its value
    with site.browser("rep") as rep:
        refused = _post_kr(site, draft_id, field_1="raw.Secret__c")
    assert refused.status_code == 422 and "the builder offers no field &#39;raw.Secret__c&#39; for activities" in (
        refused.text
    )


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ({"title": "  "}, "key result title: must not be empty"),
        ({"target": "lots"}, "target: &#39;lots&#39; is not a number"),
        ({"target": ""}, "target: say how much the key result aims for"),
        ({"op_1": "gt"}, "condition 1: activity_kind cannot be compared with &#39;gt&#39;"),
        ({"key": "Not A Key"}, "key result key: &#39;Not A Key&#39; is not a key"),
    ],
    ids=["empty-title", "bad-target", "no-target", "bad-operator", "bad-key"],
)
def test_bad_input_is_named_and_nothing_stored_is_lost(site: Site, typed: dict[str, str], message: str) -> None:
    draft_id = _with_a_key_result(site)
    before = _stored(site, draft_id)
    refused = _post_kr(site, draft_id, **{"title": "Typed with care", **typed})
    assert refused.status_code == 422 and message in refused.text
    builder_form = refused.text[refused.text.index('id="builder"') :]
    assert f'value="{typed.get("title", "Typed with care")}"' in builder_form
    assert _stored(site, draft_id)["content"] == before["content"]
    empty = _objective(site, draft_id, title=" ")
    assert empty.status_code == 422 and "objective title: must not be empty" in empty.text
    assert _stored(site, draft_id)["revision"] == before["revision"]


def test_a_running_cycle_needs_a_reason_to_approve_and_the_refusal_is_shown(site: Site) -> None:
    """Changing the running Q3 2026 through a draft: the cycle rules ask for a reason, shown in the page."""
    text = world.mapping_text([{**MEETINGS, "target": 25}])
    with site.browser("rep") as rep:
        imported = rep.post("/dashboard/planning/import", data={"connection": "salesforce/world", "yaml": text})
        assert imported.status_code == 303, imported.text
        draft_id = int(imported.headers["location"].split("/")[-1].split("?")[0])
        assert rep.post(f"/dashboard/planning/{draft_id}/submit").status_code == 303
    with site.browser("lead") as lead:
        refused = lead.post(f"/dashboard/planning/{draft_id}/approve", data={"reason": ""})
        assert refused.status_code == 409 and "say why the definition changes" in refused.text
        assert f'action="/dashboard/planning/{draft_id}/approve"' in refused.text
        approved = lead.post(f"/dashboard/planning/{draft_id}/approve", data={"reason": "More meetings"})
    assert approved.status_code == 303
    assert _stored(site, draft_id)["mapping_version"] == 2


def test_a_preview_that_takes_too_long_says_so_in_the_page(engine: Engine) -> None:
    settings = Settings(_env_file=None, serve={"preview_seconds": 0.000001})  # type: ignore[call-arg]
    for site in _site(engine, settings):
        draft_id = _with_a_key_result(site)
        before = _stored(site, draft_id)
        with site.browser("rep") as rep:
            page = rep.get(f"/dashboard/planning/{draft_id}").text
            typed = _kr_form(step="preview", title="Typed before the preview", revision=_revision(page, "builder"))
            answer = rep.post(f"/dashboard/planning/{draft_id}/key-results", data=typed)
        assert answer.status_code == 422
        shown = answer.text[answer.text.index('id="preview-problem"') :]
        assert "took longer than 1e-06 s" in shown and "narrow the key result&#39;s filters" in shown
        assert 'value="Typed before the preview"' in answer.text
        assert _stored(site, draft_id) == before  # nothing stored, nothing lost


def test_the_draft_downloads_as_its_mapping_file_and_a_vanished_goal_is_named(site: Site) -> None:
    draft_id = _with_a_key_result(site)
    with site.browser("viewer") as viewer:
        page = viewer.get(f"/dashboard/planning/{draft_id}").text
        assert f'href="/dashboard/planning/{draft_id}/yaml"' in page
        exported = viewer.get(f"/dashboard/planning/{draft_id}/yaml")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("application/yaml")
    assert 'filename="world-team-q1-2027.yaml"' in exported.headers["content-disposition"]
    assert yaml.safe_load(exported.text) == _stored(site, draft_id)["content"]
    # the goal is deleted (nothing applied serves it yet): the draft still names it, and says it is gone
    with loopback.client(
        base_url=site.base_url, headers={"Authorization": f"Bearer {site.tokens['sales_ops']}"}
    ) as ops:
        assert ops.delete(f"/api/v1/goals/{GOAL['key']}").status_code == 200
    with site.browser("rep") as rep:
        page = rep.get(f"/dashboard/planning/{draft_id}").text
    assert "Serves the company goal new-business-2026, which no longer exists: choose another one." in page
    assert any(GOAL["key"] in p["message"] for p in _stored(site, draft_id)["problems"])


def test_refused_drafts_are_named_with_the_form_kept(site: Site) -> None:
    overlapping = {**DRAFT, "cycle": "Autumn 2026", "start": "2026-09-01", "end": "2026-11-30"}
    with site.browser("rep") as rep:
        refused = rep.post("/dashboard/planning/drafts", data=overlapping)
        assert refused.status_code == 409
        text = unescape(refused.text)
        assert "overlaps team World team's running cycle Q3 2026 (2026-07-01 – 2026-09-30)" in text
        assert "start the next cycle on 2026-10-01 or later" in text
        assert 'value="Autumn 2026"' in refused.text and 'value="2026-09-01"' in refused.text  # kept
        bad_day = rep.post("/dashboard/planning/drafts", data={**DRAFT, "end": "31.03.2027"})
        assert bad_day.status_code == 422 and "end: &#39;31.03.2027&#39; is not a day (YYYY-MM-DD)" in bad_day.text
        bad_file = rep.post("/dashboard/planning/import", data={"connection": "salesforce/world", "yaml": "- a list"})
        assert (
            bad_file.status_code == 422 and "expected a mapping with version, team, cycle, objectives" in bad_file.text
        )
        assert "- a list</textarea>" in bad_file.text
        assert "No draft yet" in rep.get("/dashboard/planning").text  # nothing was stored


def test_objectives_are_edited_and_removed_with_their_key_results(site: Site) -> None:
    draft_id = _with_a_key_result(site)
    with site.browser("rep") as rep:
        page = rep.get(f"/dashboard/planning/{draft_id}?edit_objective=new-customers").text
        form = page[page.index('id="objective-form"') :]
        assert 'name="original" value="new-customers"' in form and 'value="We open doors to new customers"' in form
        assert f'<option value="{GOAL["key"]}" selected>' in form
        edited = rep.post(f"/dashboard/planning/{draft_id}/objectives",
                          data={"original": "new-customers", "key": "new-customers", "title": "Doors open",
                                "serves": "", "revision": _revision(page, "objective-form")})  # fmt: skip
        assert edited.status_code == 303
    objective = _stored(site, draft_id)["content"]["objectives"][0]
    assert objective["title"] == "Doors open" and "serves" not in objective and len(objective["key_results"]) == 1
    with site.browser("rep") as rep:
        page = rep.get(f"/dashboard/planning/{draft_id}").text
        assert "Serves no company goal yet." in page
        revision = _revision(page, "objective-form")
        removed = rep.post(f"/dashboard/planning/{draft_id}/key-results/remove",
                           data={"key": "20-meetings-with-customers", "revision": revision})  # fmt: skip
        assert removed.status_code == 303 and removed.headers["location"].endswith("done=removed")
        stale = rep.post(f"/dashboard/planning/{draft_id}/objectives/remove",
                         data={"key": "new-customers", "revision": revision})  # fmt: skip
        assert stale.status_code == 409 and "saved by rep token" in stale.text
        page = rep.get(f"/dashboard/planning/{draft_id}").text
        again = rep.post(f"/dashboard/planning/{draft_id}/objectives/remove",
                         data={"key": "new-customers", "revision": _revision(page, "objective-form")})  # fmt: skip
        assert again.status_code == 303
    assert _stored(site, draft_id)["content"]["objectives"] == []


def test_the_pages_read_in_german(site: Site) -> None:
    draft_id = _with_a_key_result(site)
    with site.browser("lead") as lead:
        listed = lead.get("/dashboard/planning?lang=de").text
        page = lead.get(f"/dashboard/planning/{draft_id}?lang=de").text
    assert "Den nächsten Zyklus planen" in listed and "im Entwurf" in listed and ">Planung</a>" in listed
    assert "Objectives und Key Results" in page and "Key Result zusammenstellen" in page
    assert "Bewerten: 20 meetings with customers" in page and "Zahlt auf das Unternehmensziel ein: Win new" in page


def test_a_draft_whose_goal_vanished_in_review_is_not_approved_and_the_page_says_why(site: Site) -> None:
    draft_id = _with_a_key_result(site)
    with site.browser("rep") as rep:
        assert rep.post(f"/dashboard/planning/{draft_id}/submit").status_code == 303
    with loopback.client(
        base_url=site.base_url, headers={"Authorization": f"Bearer {site.tokens['sales_ops']}"}
    ) as ops:
        assert ops.delete(f"/api/v1/goals/{GOAL['key']}").status_code == 200
    with site.browser("lead") as lead:
        refused = lead.post(f"/dashboard/planning/{draft_id}/approve", data={"reason": ""})
    assert refused.status_code == 422
    assert "does not apply any more" in refused.text and "company goal &#39;new-business-2026&#39;" in refused.text
    stored = _stored(site, draft_id)
    assert stored["status"] == "in_review" and stored["mapping_id"] is None


# ------------------------------------------------------------------------------ the other metric types


class _FormReader(HTMLParser):
    """What a browser sends for the builder form as the page shows it: text and hidden inputs, ticked boxes, and each
    select's selected option (else its first)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str]] = []
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "input" and found.get("name"):
            if found.get("type") != "checkbox" or "checked" in found:
                self.sent.append((found["name"], found.get("value", "")))
        elif tag == "select":
            self._select, self._options = found.get("name"), []
        elif tag == "option" and self._select is not None:
            self._options.append((found.get("value", ""), "selected" in found))

    def handle_endtag(self, tag: str) -> None:
        if tag == "select" and self._select is not None:
            chosen = [v for v, selected in self._options if selected] or [v for v, _ in self._options[:1]]
            self.sent.extend((self._select, v) for v in chosen)
            self._select = None


def _builder_sent(html: str) -> list[tuple[str, str]]:
    form = html[html.index('id="builder"') :]
    reader = _FormReader()
    reader.feed(form[: form.index("</form>")])
    return reader.sent


RULES = [{"type": "no_next_step", "name": "no-next-step"}, {"type": "close_date_past"}]
KAM = {"accounts": {"where": [{"field": "custom.key_account", "op": "is_true"}]},
       "criteria": [{"key": "contacts", "title": "Two contacts", "type": "distinct_contacts", "min": 2}]}  # fmt: skip


def _imported_draft(site: Site) -> int:
    """A draft imported from a file whose team has a calendar, hygiene rules and a kam section."""
    content = yaml.safe_load(world.mapping_text([MEETINGS], hygiene={"rules": RULES}, kam=KAM))
    content["cycle"] = {"name": "Q1 2027", "start": "2027-01-01", "end": "2027-03-31"}
    content["team"]["calendar"] = {"time_zone": "Europe/Berlin"}
    with site.browser("rep") as rep:
        imported = rep.post("/dashboard/planning/import",
                            data={"connection": "salesforce/world", "yaml": yaml.safe_dump(content)})  # fmt: skip
    assert imported.status_code == 303, imported.text
    draft_id = int(imported.headers["location"].split("/")[-1].split("?")[0])
    assert _stored(site, draft_id)["problems"] == []
    return draft_id


def _typed(**typed: str) -> dict[str, str]:
    """A builder form with no count condition: only what the case types."""
    return {"objective": "objective", "field_1": "", "op_1": "", "value_1": "", **typed}


BUILT = [
    (
        _typed(title="40 % of the calls lead to a meeting", metric="ratio", of="activities", field_1="activity_kind",
               op_1="eq", value_1="meeting", den_of="activities", den_field_1="activity_kind", den_op_1="in",
               den_value_1="meeting, call", baseline="20 %", target="0.4"),
        {"key": "40-of-the-calls-lead-to-a-meeting", "title": "40 % of the calls lead to a meeting",
         "metric": {"type": "ratio",
                    "numerator": {"type": "count", "of": "activities",
                                  "where": [{"field": "activity_kind", "op": "eq", "value": "meeting"}]},
                    "denominator": {"type": "count", "of": "activities",
                                    "where": [{"field": "activity_kind", "op": "in", "value": ["meeting", "call"]}]}},
         "baseline": 0.2, "target": 0.4},
        {"baseline": "0.2"},
    ),
    (
        _typed(title="Customers hear back within 4 hours", metric="response_time", statistic="percentile",
               percentile="75", hours="business", match="contact", field_1="account.account_type", op_1="eq",
               value_1="Customer", baseline="24", target="4"),
        {"key": "customers-hear-back-within-4-hours", "title": "Customers hear back within 4 hours",
         "metric": {"type": "response_time", "statistic": "percentile", "percentile": 75, "hours": "business",
                    "match": "contact",
                    "inbound": [{"field": "account.account_type", "op": "eq", "value": "Customer"}]},
         "baseline": 24, "target": 4, "direction": "lower"},
        {},
    ),
    (
        _typed(title="Web leads called within 4 hours", metric="speed_to_lead", statistic="share_within",
               within_hours="4", hours="wall_clock", field_1="source", op_1="in", value_1="Web, Phone Inquiry",
               target="90%"),
        {"key": "web-leads-called-within-4-hours", "title": "Web leads called within 4 hours",
         "metric": {"type": "speed_to_lead", "statistic": "share_within", "within_hours": 4,
                    "leads": [{"field": "source", "op": "in", "value": ["Web", "Phone Inquiry"]}]},
         "target": 0.9},
        {"target": "0.9"},
    ),
    (
        _typed(title="Customers recommend us", metric="manual", unit="NPS", baseline="20", target="40"),
        {"key": "customers-recommend-us", "title": "Customers recommend us",
         "metric": {"type": "manual", "unit": "NPS"}, "baseline": 20, "target": 40},
        {},
    ),
    (
        _typed(title="Every deal has a next step", metric="hygiene_score", rules="no-next-step", target="0.8"),
        {"key": "every-deal-has-a-next-step", "title": "Every deal has a next step",
         "metric": {"type": "hygiene_score", "rules": ["no-next-step"]}, "target": 0.8},
        {},
    ),
    (
        _typed(title="Key accounts looked after", metric="kam_criteria", min_score="0.75", target="60 %"),
        {"key": "key-accounts-looked-after", "title": "Key accounts looked after",
         "metric": {"type": "kam_criteria", "min_score": 0.75}, "target": 0.6},
        {"target": "0.6"},
    ),
]  # fmt: skip


@pytest.mark.parametrize(("typed", "expected", "shown"), BUILT, ids=[t[0]["metric"] for t in BUILT])
def test_each_metric_type_is_built_as_the_file_would_say_it_and_edited_again(
    site: Site, typed: dict[str, str], expected: dict[str, Any], shown: dict[str, str]
) -> None:
    draft_id = _imported_draft(site)
    with site.browser("rep") as rep:
        page = rep.get(f"/dashboard/planning/{draft_id}").text
        fields = rep.post(f"/dashboard/planning/{draft_id}/key-results",
                          data={**typed, "step": "fields", "revision": _revision(page, "builder")})  # fmt: skip
        assert fields.status_code == 200
        sent = dict(_builder_sent(fields.text))  # the inputs of this metric type are in the page now
        assert {n for n, v in typed.items() if v} <= set(sent), {n for n, v in typed.items() if v} - set(sent)
        saved = rep.post(f"/dashboard/planning/{draft_id}/key-results",
                          data={**typed, "step": "save", "revision": _revision(page, "builder")})  # fmt: skip
    assert saved.status_code == 303, unescape(saved.text)[-3000:]
    stored = _stored(site, draft_id)
    assert stored["content"]["objectives"][0]["key_results"][1] == expected
    assert stored["problems"] == []  # the mapping validation accepts it as it is
    with site.browser("rep") as rep:
        page = rep.get(f"/dashboard/planning/{draft_id}").text
        card = page[page.index(f'id="kr-{expected["key"]}"') :]
        assert "Edit with the builder" in card[: card.index("</article>")]  # buildable: no "change it in the file"
        edit = rep.get(f"/dashboard/planning/{draft_id}?edit_kr={expected['key']}").text
        sent_list = _builder_sent(edit)
        sent = {n: ", ".join(v for k, v in sent_list if k == n) for n, _ in sent_list}
        for name, value in typed.items():
            if name not in ("field_1", "op_1", "value_1") or value:
                assert sent[name] == shown.get(name, value), name
        resent: dict[str, list[str]] = {"step": ["save"]}
        for name, value in sent_list:
            resent.setdefault(name, []).append(value)
        again = rep.post(f"/dashboard/planning/{draft_id}/key-results", data=resent)
    assert again.status_code == 303, unescape(again.text)[-3000:]
    after = _stored(site, draft_id)
    assert after["content"] == stored["content"] and after["revision"] == stored["revision"] + 1


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ({"metric": "response_time", "statistic": "percentile", "percentile": ""},
         "percentile: statistic percentile needs the percentile, a number between 0 and 100"),
        ({"metric": "response_time", "statistic": "percentile", "percentile": "150"},
         "percentile: 150 is outside 0–100"),
        ({"metric": "speed_to_lead", "statistic": "share_within", "within_hours": ""},
         "within hours: statistic share_within needs the limit in hours"),
        ({"metric": "speed_to_lead", "statistic": "mean"}, "statistic: choose one of median, p90, percentile"),
        ({"metric": "ratio", "den_of": "activities", "target": "2"},
         "target: 2 is not a share: type a fraction 0–1 (0.8) or a percentage (80 %)"),
        ({"metric": "ratio", "den_of": "activities", "den_field_1": "raw.Secret__c", "den_op_1": "eq",
          "den_value_1": "x"}, "denominator condition 1: the builder offers no field &#39;raw.Secret__c&#39;"),
        ({"metric": "hygiene_score", "rules": "bogus"}, "hygiene rules: &#39;bogus&#39; is not a rule of this draft"),
        ({"metric": "kam_criteria", "min_score": "0", "target": "0.5"},
         "account score counted as met: 0 must be above 0"),
    ],
    ids=["no-percentile", "percentile-150", "no-within-hours", "bad-statistic", "ratio-target", "den-field",
         "unknown-rule", "min-score-0"],
)  # fmt: skip
def test_bad_options_are_named_and_nothing_is_stored(site: Site, typed: dict[str, str], message: str) -> None:
    draft_id = _imported_draft(site)
    before = _stored(site, draft_id)
    with site.browser("rep") as rep:
        page = rep.get(f"/dashboard/planning/{draft_id}").text
        form = {**_kr_form(objective="objective", title="Typed with care", target="0.5"), **typed}
        refused = rep.post(f"/dashboard/planning/{draft_id}/key-results",
                           data={**form, "revision": _revision(page, "builder")})  # fmt: skip
    assert refused.status_code == 422 and message in refused.text, refused.text[-2000:]
    sent = dict(_builder_sent(refused.text))
    assert sent["title"] == "Typed with care" and sent["metric"] == typed["metric"]  # kept as typed
    for name in ("percentile", "within_hours", "min_score"):
        if name in typed:
            assert sent[name] == typed[name]
    assert _stored(site, draft_id)["content"] == before["content"]


def test_without_calendar_rules_or_kam_the_builder_says_they_come_from_the_file(site: Site) -> None:
    draft_id = _with_a_key_result(site)  # opened in the dashboard: no calendar, hygiene or kam section
    before = _stored(site, draft_id)
    with site.browser("rep") as rep:
        page = rep.get(f"/dashboard/planning/{draft_id}").text
        assert 'value="hygiene_score"' not in page and 'value="kam_criteria"' not in page
        assert "A hygiene score comes from the hygiene rules of the mapping file&#39;s hygiene section" in page
        assert "KAM criteria come from the key accounts and criteria of the mapping file&#39;s kam section" in page
        waits = rep.post(
            f"/dashboard/planning/{draft_id}/key-results",
            data=_kr_form(step="fields", metric="response_time", revision=_revision(page, "builder")),
        )
        assert 'value="business"' not in waits.text and "this draft&#39;s team has none, so waits count" in waits.text
        typed = _kr_form(metric="response_time", statistic="median", hours="business", field_1="", target="4",
                         baseline="8", revision=_revision(page, "builder"))  # fmt: skip
        business = rep.post(f"/dashboard/planning/{draft_id}/key-results", data=typed)
        assert business.status_code == 422
        assert "hours counted: business hours need the team&#39;s calendar" in business.text
        hygiene = rep.post(
            f"/dashboard/planning/{draft_id}/key-results",
            data={**typed, "metric": "hygiene_score", "target": "0.8", "baseline": ""},
        )
        assert hygiene.status_code == 422 and "hygiene_score needs the hygiene rules" in hygiene.text
        german = rep.get(f"/dashboard/planning/{draft_id}?lang=de").text
    assert "Ein Hygiene-Score kommt aus den Hygiene-Regeln" in german
    assert _stored(site, draft_id)["content"] == before["content"]


@pytest.mark.parametrize("typed", [t[0] for t in BUILT], ids=[t[0]["metric"] for t in BUILT])
def test_each_metric_type_previews_and_the_preview_stores_nothing(site: Site, typed: dict[str, str]) -> None:
    draft_id = _imported_draft(site)
    before = _stored(site, draft_id)
    with site.browser("rep") as rep:
        page = rep.get(f"/dashboard/planning/{draft_id}").text
        preview = rep.post(f"/dashboard/planning/{draft_id}/key-results",
                           data={**typed, "step": "preview", "revision": _revision(page, "builder")})  # fmt: skip
    assert preview.status_code == 200, unescape(preview.text)[-2000:]
    shown = preview.text[preview.text.index('id="preview"') :]
    assert "Now (Q3 2026)" in shown and "suggested baseline" in shown
    assert dict(_builder_sent(preview.text))["title"] == typed["title"]
    assert _stored(site, draft_id) == before
