"""The team dashboard over real HTTP: login by cookie, roles, CSRF, every page with the computed example values,
German labels, what people type shown as text, links to the CRM records, and the standalone check-in report."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from html import escape
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlmodel
from sqlmodel import Session

from service.checkins import service as checkins
from service.checkins.models import CheckIn
from service.compute import report as reports
from service.compute.models import (
    HygieneFinding,
    HygieneSummary,
    KamAccountScore,
    KeyResultContribution,
    KeyResultValue,
)
from service.crm.models import Activity, CrmConnection, Lead, Owner
from service.dashboard import render
from service.dashboard import service as views
from service.kit.auth import Role, create_token, revoke_token
from service.okrs import service as okrs
from service.okrs.models import KamAssessment, ManualValue, OkrMapping
from service.sprints import service as sprints
from tests import loopback
from tests.berlin_hours import berlin_open_seconds
from tests.conftest import ANCHOR
from tests.service.dashboard.conftest import KAM_EMAIL, REP_EMAIL, TODAY, WEEKS, DashboardWorld, set_today
from tests.service.dashboard.english import ENGLISH_HYGIENE

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
SVG = "http://www.w3.org/2000/svg"


def _html(response: httpx.Response) -> str:
    assert response.status_code == 200, (response.status_code, response.text[:3000])
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def _mapping(world: DashboardWorld, session: Session, example: str = "acquisition") -> OkrMapping:
    found = session.get(OkrMapping, world.mappings[example])
    assert found is not None
    return found


def _instance_url(session: Session, mapping: OkrMapping) -> str:
    connection = session.get(CrmConnection, mapping.connection_id)
    assert connection is not None and connection.instance_url
    return connection.instance_url


def _check_ins(world: DashboardWorld) -> list[CheckIn]:
    with Session(world.engine) as session:
        return checkins.check_ins(session, _mapping(world, session))


def _log_in(world: DashboardWorld, browser: loopback.Client, role: str) -> None:
    answer = browser.post(
        "/dashboard/login", data={"token": world.tokens[role], "next": "/dashboard"}, headers={"Origin": world.base_url}
    )
    assert answer.status_code == 303, answer.text


def test_login_sets_a_strict_http_only_cookie_and_logout_clears_it(world: DashboardWorld) -> None:
    mapping_id = world.mappings["acquisition"]
    token = world.tokens["viewer"]
    seen = []
    with world.client() as browser:
        first = browser.get(f"/dashboard/{mapping_id}")
        assert first.status_code == 303
        location = urlsplit(first.headers["location"])
        assert location.path == "/dashboard/login"
        assert parse_qs(location.query) == {"next": [f"/dashboard/{mapping_id}"], "reason": ["login_required"]}
        seen.append(_html(browser.get(first.headers["location"])))
        assert "Log in with an API token to open this page." in seen[-1] and 'name="token"' in seen[-1]

        wrong = browser.post(
            "/dashboard/login", data={"token": "okr_not-a-token", "next": f"/dashboard/{mapping_id}"},
            headers={"Origin": world.base_url},
        )  # fmt: skip
        assert wrong.status_code == 401 and "unknown or revoked" in wrong.text
        assert "okr_not-a-token" not in wrong.text and "set-cookie" not in wrong.headers

        answer = browser.post(
            "/dashboard/login", data={"token": token, "next": f"/dashboard/{mapping_id}"},
            headers={"Origin": world.base_url},
        )  # fmt: skip
        assert answer.status_code == 303 and answer.headers["location"] == f"/dashboard/{mapping_id}"
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith(f"okrsync_token={token};")
        attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/dashboard"} <= attributes
        assert "secure" not in cookie.lower()  # plain http on loopback
        seen.append(_html(browser.get(f"/dashboard/{mapping_id}")))
        assert "Vertrieb DACH" in seen[-1] and "viewer token" in seen[-1]
        seen.append(_html(browser.get("/dashboard")))

        out = browser.post("/dashboard/logout", headers={"Origin": world.base_url})
        assert out.status_code == 303 and out.headers["location"] == "/dashboard/login?reason=logged_out"
        assert "okrsync_token" not in browser.cookies
        seen.append(_html(browser.get(out.headers["location"])))
        assert "You are logged out." in seen[-1]
        assert browser.get(f"/dashboard/{mapping_id}").status_code == 303
    assert all(token not in page for page in seen)  # the token is never written into a page


def test_the_cookie_is_secure_over_https_and_an_open_redirect_is_refused(world: DashboardWorld) -> None:
    with world.client(**{"X-Forwarded-Proto": "https"}) as browser:  # a TLS proxy in front (uvicorn trusts loopback)
        answer = browser.post(
            "/dashboard/login", data={"token": world.tokens["viewer"], "next": "https://evil.example/"},
            headers={"Origin": world.base_url},
        )  # fmt: skip
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard"
    assert "; secure" in answer.headers["set-cookie"].lower()
    with world.client() as browser:
        for next_path in ("//evil.example/x", "/dashboard/../api", "/dashboard/login", "javascript:alert(1)"):
            page = _html(browser.get("/dashboard/login", params={"next": next_path}))
            assert 'name="next" value="/dashboard"' in page, next_path


def test_a_revoked_token_in_the_cookie_sends_back_to_the_login(world: DashboardWorld) -> None:
    with Session(world.engine) as session:
        row, token = create_token(session, name="soon revoked", role=Role.viewer)
        session.commit()
        token_id = row.id or 0
    with world.client() as browser:
        assert (
            browser.post("/dashboard/login", data={"token": token}, headers={"Origin": world.base_url}).status_code
            == 303
        )
        assert browser.get("/dashboard").status_code == 200
        with Session(world.engine) as session:
            assert revoke_token(session, token_id=token_id)
            session.commit()
        answer = browser.get("/dashboard")
        assert answer.status_code == 303 and "reason=token_unknown" in answer.headers["location"]
        assert "okrsync_token" not in browser.cookies  # cleared
        assert "unknown or revoked" in _html(browser.get(answer.headers["location"]))
    with world.client(Authorization="Bearer okr_forged") as forged:
        refused = forged.get("/dashboard")
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert "Not logged in" in refused.text


def test_recording_needs_sales_ops_and_the_403_names_the_role(world: DashboardWorld) -> None:
    mapping_id = world.mappings["acquisition"]
    before = len(_check_ins(world))
    for role in ("viewer", "rep", "kam"):
        with world.client(role) as client:
            answer = client.post(f"/dashboard/{mapping_id}/check-in", data={"note": "not allowed"})
            assert answer.status_code == 403, (role, answer.text[:500])
            assert "This needs the role sales ops; your token has the role" in answer.text
            retro = client.post(f"/dashboard/{mapping_id}/sprints", data={"sprint": "acquisition-sprint-3"})
            assert retro.status_code == 403
    assert len(_check_ins(world)) == before
    with world.client("viewer") as viewer:
        page = _html(viewer.get(f"/dashboard/{mapping_id}/check-in"))
    assert f'action="/dashboard/{mapping_id}/check-in"' not in page  # no check-in form for a viewer
    assert "Recording needs a token with the role sales ops." in page


def test_forms_sent_from_another_site_are_refused(world: DashboardWorld) -> None:
    mapping_id = world.mappings["acquisition"]
    path = f"/dashboard/{mapping_id}/check-in"
    before = len(_check_ins(world))
    with world.client() as browser:
        _log_in(world, browser, "sales_ops")
        for headers in ({"Origin": "https://evil.example"}, {"Referer": "http://evil.example/okr"}, {},
                        {"Origin": "null"}):  # fmt: skip
            answer = browser.post(path, data={"note": "forged"}, headers=headers)
            assert answer.status_code == 403, (headers, answer.text[:500])
            assert "from another site" in answer.text
        assert browser.post("/dashboard/logout", headers={"Origin": "https://evil.example"}).status_code == 403
        assert "okrsync_token" in browser.cookies  # a forged logout does not log out
        assert len(_check_ins(world)) == before
        same_site = browser.post(path, data={"note": "from the page"}, headers={"Referer": f"{world.base_url}{path}"})
        assert same_site.status_code == 303, same_site.text[:500]
    with world.client("sales_ops") as api_client:  # a bearer token is no ambient credential: no Origin needed
        assert api_client.post(path, data={"note": "from a script"}).status_code == 303
    assert [c.note for c in _check_ins(world)[:2]] == ["from a script", "from the page"]


def test_the_mapping_list_links_every_team_and_cycle(world: DashboardWorld) -> None:
    with world.client("viewer") as client:
        page = _html(client.get("/dashboard"))
    for team, cycle, example in (
        ("Vertrieb DACH", "Q3 2026", "acquisition"),
        ("Key Accounts", "Q3 2026", "customer-care"),
        ("Vertrieb DACH", "Q3 2026 hygiene", "pipeline-hygiene"),
    ):
        assert f'<a href="/dashboard/{world.mappings[example]}">{cycle}</a>' in page
        assert team in page
    assert "salesforce/sandbox" in page and "running" in page


def test_the_overview_shows_objectives_key_results_contributions_and_the_sprint(world: DashboardWorld) -> None:
    mapping_id = world.mappings["acquisition"]
    with world.client("viewer") as client:
        page = _html(client.get(f"/dashboard/{mapping_id}"))
    with Session(world.engine) as session:
        report = reports.check_in(session, _mapping(world, session))
        current = sprints.current(sprints.reviews(session, _mapping(world, session), today=TODAY.date()), TODAY.date())
    assert current is not None and current.key == "acquisition-sprint-3"
    assert f'<p class="big">{current.name}</p>' in page
    assert f"Committed {current.shown_committed} · Achieved {current.shown_achieved}" in page
    assert [o.key for o in report.objectives] == ["new-customers", "leads-hear-from-us"]
    objective = report.objectives[0]
    labels = {
        "on_track": "On track",
        "at_risk": "At risk",
        "off_track": "Off track",
        "too_early": "Too early to tell",
        "no_data": "No data",
        "achieved": "Achieved",
        "missed": "Missed",
    }
    for kr in (kr for o in report.objectives for kr in o.key_results):
        row = page[page.index(f'href="/dashboard/{mapping_id}/kr/{kr.key}"') :].split("</tr>")[0]
        assert f">{escape(kr.title)}</a>" in row
        assert f'<td class="num" data-label="Value">{kr.shown}</td>' in row
        assert f'<td class="num" data-label="Target">{kr.target}</td>' in row
        assert f"{labels[kr.status]}</span>" in row  # the status in words, not only in colour
        assert f'style="width: {min(1.0, kr.progress or 0) * 100:.1f}%"' in row
        for name, shown in kr.contributions:
            assert f'<span class="member">{name} <b>{shown}</b></span>' in row
    assert all(f"<h2>{o.title}</h2>" in page for o in report.objectives)
    discovery = next(kr for kr in objective.key_results if kr.key == "discovery-meetings")
    assert discovery.shown == "175" and discovery.contributions[0] == ("Jonas Quinn", "41")
    by_key = {kr.key: kr for o in report.objectives for kr in o.key_results}
    assert by_key["sprint-first-calls"].status in ("achieved", "missed")  # sprint 1 has ended: not "at risk"
    assert by_key["new-pipeline"].target == "€6M" and re.fullmatch(r"€\d+(\.\d)?[kM]", by_key["new-pipeline"].shown)
    for o in report.objectives:  # which key result decides the objective's status, in words
        decider = next(kr for kr in o.key_results if kr.status == o.status)
        assert f"{labels[o.status]} because “{escape(decider.title)}” is" in page


def test_trends_for_all_key_results_equal_the_check_in_trend(world: DashboardWorld) -> None:
    with Session(world.engine) as session:
        for example in world.mappings:
            mapping = _mapping(world, session, example)
            config = okrs.current_config(session, mapping)
            values = {v.kr_key: v for v in session.exec(
                sqlmodel.select(KeyResultValue).where(KeyResultValue.mapping_id == mapping.id))}  # fmt: skip
            found = views.trends(session, mapping, config, values)
            for _objective, kr in config.key_results():
                assert found[kr.key] == checkins.trend(session, mapping, kr.key), (example, kr.key)
        assert found and any(t.change_7d for t in found.values())


def test_the_key_result_page_draws_the_burn_up_and_links_the_evidence(world: DashboardWorld) -> None:
    mapping_id = world.mappings["acquisition"]
    with world.client("viewer") as client:
        page = _html(client.get(f"/dashboard/{mapping_id}/kr/discovery-meetings"))
        second = _html(client.get(f"/dashboard/{mapping_id}/kr/discovery-meetings", params={"offset": 50}))
        assert client.get(f"/dashboard/{mapping_id}/kr/discovery-meetings?offset=-1").status_code == 422
    with Session(world.engine) as session:
        mapping = _mapping(world, session)
        view = views.key_result_page(session, mapping, "discovery-meetings", today=TODAY.date())
        trend = checkins.trend(session, mapping, "discovery-meetings")
        total, rows = reports.evidence(session, mapping, "discovery-meetings", limit=51)
        instance_url = _instance_url(session, mapping)
        kinds = {a.external_id: a.crm_object for a in session.exec(
            sqlmodel.select(Activity).where(Activity.external_id.in_([rows[0].record_id, rows[50].record_id])))}  # type: ignore[attr-defined]  # fmt: skip

    svg = ET.fromstring(re.search(r'<svg class="burn-up".*?</svg>', page, re.S).group(0))  # type: ignore[union-attr]
    actual = svg.find(f"{{{SVG}}}polyline[@class='actual']")
    expected = svg.find(f"{{{SVG}}}line[@class='expected']")
    target = svg.find(f"{{{SVG}}}line[@class='target']")
    assert actual is not None and expected is not None and target is not None
    points = [tuple(float(c) for c in p.split(",")) for p in (actual.get("points") or "").split()]
    assert len(points) == len(WEEKS) and [x for x, _y in points] == sorted(x for x, _y in points)
    chart = view.chart
    assert points[-1] == (chart.x(WEEKS[-1]), chart.y(trend.value or 0))
    # the expected line runs from the baseline at the window's start to the target at its end
    start, end = chart.expected
    assert start == (chart.x(view.window_start), chart.y(0)) == (chart.left, chart.height - chart.bottom)
    assert end == (chart.x(view.window_end), chart.y(150)) and view.window_end == datetime(2026, 10, 1, tzinfo=UTC)
    assert [float(expected.get(a) or "nan") for a in ("x1", "y1", "x2", "y2")] == [*start, *end]
    assert float(target.get("y1") or "nan") == chart.y(150) == end[1]
    assert "Actual" in page and "Expected path" in page and "Target" in page

    assert trend.value == 175 and trend.change_7d is not None and trend.expected_value is not None
    assert f"<dd>{trend.value:g}</dd>" in page and f"<dd>+{trend.change_7d:g}</dd>" in page
    assert f"<dd>{round(trend.expected_value)}</dd>" in page

    assert total == 175 and "175 records, newest first; showing 1–50." in page
    for text, row in ((page, rows[0]), (second, rows[50])):
        url = f"{instance_url}/lightning/r/{kinds[row.record_id]}/{row.record_id}/view"
        assert f'<a href="{url}" rel="noopener noreferrer" target="_blank">' in text
    assert kinds[rows[0].record_id] == "Event" and "showing 51–100" in second


def test_the_hygiene_page_lists_rules_owners_and_the_worst_opportunities_first(world: DashboardWorld) -> None:
    mapping_id = world.mappings["pipeline-hygiene"]
    with world.client("viewer") as client:
        page = _html(client.get(f"/dashboard/{mapping_id}/hygiene"))
    with Session(world.engine) as session:
        mapping = _mapping(world, session, "pipeline-hygiene")
        config = okrs.current_config(session, mapping)
        names = reports.owner_names(session, mapping.connection_id)
        lines = reports.hygiene_by_opportunity(session, mapping, config, names=names)
        summary = {s.rule_key: s for s in session.exec(
            sqlmodel.select(HygieneSummary).where(HygieneSummary.mapping_id == mapping.id))}  # fmt: skip
        instance_url = _instance_url(session, mapping)
    assert len(lines) > 10 and len(lines[0].problems) >= len(lines[-1].problems) and len(lines[0].problems) > 1
    total = summary["*"]
    assert f"<dd>{total.score:.0%}</dd>" in page and f"<dd>{total.open_opportunities}</dd>" in page
    assert f'<tr><td>Close date in the past</td><td class="num">{summary["close_date_past"].violations}</td>' in page
    assert (
        f'<tr><td>Stuck in stage (stuck-vs-team)</td><td class="num">{summary["stuck-vs-team"].violations}</td>' in page
    )
    positions = [page.index(f"/lightning/r/Opportunity/{line.opportunity_id}/view") for line in lines[:5]]
    assert positions == sorted(positions)  # most problems first
    first = page[positions[0] :].split("</li>\n</ol>")[0].split("\n  </li>")[0]
    assert f'href="{instance_url}/lightning/r/Opportunity/{lines[0].opportunity_id}/view"' in page
    assert f"{lines[0].owner} · <b>{len(lines[0].problems)} problem(s)</b>" in first
    for rule, sentence in zip(lines[0].rules, lines[0].problems, strict=True):
        assert f'<span class="rule">{rule}</span> {escape(sentence)}</li>' in first
    assert "By owner" in page and f'#worst">{lines[0].owner}</a></td>' in page  # each owner filters the list


def test_an_opportunity_stuck_by_two_rules_is_one_problem_with_both_reasons(world: DashboardWorld) -> None:
    hygiene = world.mappings["pipeline-hygiene"]
    with Session(world.engine) as session:
        findings = session.exec(sqlmodel.select(HygieneFinding).where(HygieneFinding.mapping_id == hygiene)).all()
    keys: dict[str, set[str]] = {}
    for f in findings:
        keys.setdefault(f.opportunity_id, set()).add(f.rule_key)
    both = sorted(o for o, k in keys.items() if {"stuck_in_stage", "stuck-vs-team"} <= k)
    assert both, "the sandbox has opportunities stuck past 60 days and past twice the team's median"
    with world.client("viewer") as viewer:
        pages = [_html(viewer.get(f"/dashboard/{hygiene}/hygiene", params={"offset": n})) for n in range(0, 400, 50)]
    text = "".join(pages)
    for opportunity in both:
        item = text[text.index(f"/Opportunity/{opportunity}/view") :].split("</ul>")[0]
        assert item.count('<span class="rule">stuck_in_stage, stuck-vs-team</span>') == 1, item
        assert item.count('<span class="rule">') == len(keys[opportunity]) - 1  # one problem per cause
        assert f"<b>{len(keys[opportunity]) - 1} problem(s)</b>" in item


def test_the_kam_page_shows_every_key_account_with_its_criteria(world: DashboardWorld) -> None:
    mapping_id = world.mappings["customer-care"]
    with world.client("kam") as client:
        page = _html(client.get(f"/dashboard/{mapping_id}/kam"))
    with Session(world.engine) as session:
        scores = session.exec(sqlmodel.select(KamAccountScore).where(KamAccountScore.mapping_id == mapping_id)).all()
        results = reports.kam_criteria(session, _mapping(world, session, "customer-care"))
    assert scores and results
    for score in scores:
        assert f">{escape(score.name or '')}</a>" in page and f"{score.score:.0%}" in page
        if score.covered < score.criteria:  # a criterion not assessed yet is left out of the score, and it says so
            assert f"over {score.covered} of {score.criteria} criteria (the others are not assessed yet)" in page
    words = {"met": "Met", "not_met": "Not met", "not_assessed": "Not assessed", "partly": "Partly"}
    for status in {r.status for r in results}:
        assert f"</span> {words[status]}</span>" in page
    assert "Relationship at board level (KAM&#39;s judgement)" in page  # criterion titles, escaped


def _mia(session: Session, mapping: OkrMapping) -> str:
    """The CRM user id of the rep token's person (found by e-mail here, independently of the dashboard)."""
    owners = session.exec(sqlmodel.select(Owner).where(Owner.connection_id == mapping.connection_id)).all()
    (owner,) = [o for o in owners if (o.email or "").lower() == REP_EMAIL.lower()]
    return owner.external_id


def _working_day_before(day: date) -> date:
    """Monday to Friday (the acquisition file has no team calendar)."""
    day -= timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def test_a_rep_sees_herself_her_problem_opportunities_and_her_share_first(world: DashboardWorld) -> None:
    acquisition, hygiene = world.mappings["acquisition"], world.mappings["pipeline-hygiene"]
    with Session(world.engine) as session:
        mapping = _mapping(world, session)
        assert okrs.current_config(session, mapping).team.calendar is None
        mia = _mia(session, mapping)
        findings = session.exec(sqlmodel.select(HygieneFinding).where(HygieneFinding.mapping_id == hygiene)).all()
        contributions = {
            c.kr_key: c.value
            for c in session.exec(
                sqlmodel.select(KeyResultContribution).where(KeyResultContribution.mapping_id == acquisition)
            ).all()
            if c.owner_id == mia
        }
        values = {v.kr_key: v.value for v in session.exec(
            sqlmodel.select(KeyResultValue).where(KeyResultValue.mapping_id == acquisition)).all()}  # fmt: skip
        since = datetime.combine(_working_day_before(TODAY.date()), datetime.min.time(), tzinfo=UTC)
        logged: dict[str, int] = {}
        for activity in session.exec(
            sqlmodel.select(Activity).where(Activity.connection_id == mapping.connection_id, Activity.owner_id == mia)
        ).all():
            if activity.occurred_at is not None and activity.occurred_at >= since and not activity.is_deleted:
                logged[activity.activity_kind] = logged.get(activity.activity_kind, 0) + 1
    mine = {f.opportunity_id for f in findings if f.owner_id == mia}
    assert mine and {f.owner_id for f in findings} - {mia}, "the sandbox gives her some of the problems, not all"
    assert contributions and logged, "she counts for some key results and logged something since the working day"
    with world.client("rep") as rep:
        page = _html(rep.get(f"/dashboard/{acquisition}"))
        first = page[: page.index('<section class="cards"')]  # the first thing on the page, above the team's
        assert '<h2 id="my-work">My work</h2>' in first
        assert f"My opportunities with problems ({len(mine)})" in first
        assert f'href="/dashboard/{hygiene}/hygiene?owner=me"' in first
        assert first.count("<li><a href=") >= min(len(mine), 5)
        assert f"Logged since {since.date()}" in first
        words = {"call": "calls", "email": "e-mails", "meeting": "meetings", "task": "tasks", "note": "notes"}
        for kind, count in logged.items():
            assert f"{words[kind]}: <b>{count}</b>" in first
        with Session(world.engine) as session:
            config = okrs.current_config(session, _mapping(world, session))
        for _objective, kr in config.key_results():
            if kr.key in contributions and kr.metric.type in ("count", "sum") and values.get(kr.key):
                assert f"({contributions[kr.key] / values[kr.key]:.0%} of the team)" in first, kr.key
        assert '<span class="member you">Mia Vogel <span class="you-tag">You</span>' in page
        assert "See the check-in →" in page and "Run the check-in" not in page  # a rep does not run it
        # a cycle without hygiene rules shows no score of its own: it points to the cycle whose rules judge
        assert f'<a class="card" href="/dashboard/{hygiene}/hygiene">' in page and "Hygiene score</h2>" in page
        own = _html(rep.get(f"/dashboard/{acquisition}/hygiene"))
        assert "This cycle has no hygiene rules" in own and f'href="/dashboard/{hygiene}/hygiene"' in own

        listed = _html(rep.get(f"/dashboard/{hygiene}/hygiene", params={"owner": "me"}))
        items = re.findall(r'<p class="opportunity">(.*?)</p>', listed)
        assert len(items) == min(len(mine), 50) and all(" · Mia Vogel · " in item for item in items)
        assert f"Only mine ({len(mine)})" in listed
        everyone = _html(rep.get(f"/dashboard/{hygiene}/hygiene"))
        assert {" · Mia Vogel · " in item for item in re.findall(r'<p class="opportunity">(.*?)</p>', everyone)} == {
            True, False}  # fmt: skip

        evidence = _html(rep.get(f"/dashboard/{acquisition}/kr/discovery-meetings", params={"owner": "me"}))
        assert 'aria-current="true">Only mine</a>' in evidence and "Records that counted" in evidence
        assert evidence.count('<tr class="you">') >= 2  # her contribution row and her records

    with world.client("sales_ops") as ops:
        assert "Run the check-in →" in _html(ops.get(f"/dashboard/{acquisition}"))
    for token, sentence in (
        ("rep_no_email", "Your token names no CRM e-mail, so okrsync cannot tell which records are yours."),
        ("rep_stranger", "No user of this CRM has the e-mail nobody@elsewhere.example"),
    ):
        with world.client(token) as stranger:
            assert sentence in _html(stranger.get(f"/dashboard/{acquisition}"))
            filtered = _html(stranger.get(f"/dashboard/{hygiene}/hygiene", params={"owner": "me"}))
            assert 'role="alert"' in filtered and sentence in filtered
            assert '<span class="you-tag">' not in filtered
    with world.client("rep") as rep:
        bad = rep.get(f"/dashboard/{hygiene}/hygiene", params={"owner": "<script>"})
        assert bad.status_code == 422 and "owner" in bad.text

    # the same through the API
    url = f"/api/v1/mappings/{acquisition}/my-work"
    with world.client("rep") as rep:
        api = rep.get(url)
        assert api.status_code == 200, api.text
        body = api.json()
        assert body["owner_ids"] == [mia] and body["email"] == REP_EMAIL and body["problem_total"] == len(mine)
        assert body["hygiene_mapping_id"] == hygiene and len(body["problems"]) == min(len(mine), 5)
        assert {p["opportunity_id"] for p in body["problems"]} <= mine
        shares = {k["key"]: k for k in body["key_results"]}
        for key, value in contributions.items():
            if values.get(key) and key in shares and shares[key]["share"] is not None:
                assert shares[key]["share"] == pytest.approx(value / values[key])
        assert body["since"] == _working_day_before(datetime.now(UTC).date()).isoformat()  # the API's today is today
        assert rep.get("/api/v1/mappings/9999/my-work").status_code == 404
    for token, sentence in (("rep_no_email", "this token names no CRM e-mail"),
                            ("rep_stranger", "has the e-mail nobody@elsewhere.example")):  # fmt: skip
        with world.client(token) as stranger:
            refused = stranger.get(url)
            assert refused.status_code == 409 and sentence in refused.json()["detail"], refused.text


def _kam_rows(world: DashboardWorld, account_id: str) -> tuple[KamAccountScore, dict[str, str], int]:
    with Session(world.engine) as session:
        mapping = _mapping(world, session, "customer-care")
        score = session.get(KamAccountScore, (mapping.id, account_id))
        assert score is not None
        statuses = {
            r.criterion_key: r.status for r in reports.kam_criteria(session, mapping) if r.account_id == account_id
        }
        count = len(session.exec(sqlmodel.select(KamAssessment).where(KamAssessment.mapping_id == mapping.id)).all())
    return score, statuses, count


def test_a_kam_assesses_her_own_key_account_in_the_grid_and_its_score_moves(world: DashboardWorld) -> None:
    mapping_id = world.mappings["customer-care"]
    path = f"/dashboard/{mapping_id}/kam"
    email = KAM_EMAIL
    with Session(world.engine) as session:
        owners = {o.external_id for o in session.exec(sqlmodel.select(Owner)).all() if (o.email or "") == email}
        scores = session.exec(sqlmodel.select(KamAccountScore).where(KamAccountScore.mapping_id == mapping_id)).all()
    mine = sorted((s for s in scores if s.owner_id in owners), key=lambda s: s.account_id)
    others = [s for s in scores if s.owner_id not in owners]
    assert mine and others, "the sandbox gives the KAM some of the key accounts, not all"
    with world.client("kam") as kam:
        page = _html(kam.get(f"{path}?mine=1"))
        assert f"My key accounts ({len(mine)})" in page and f"All key accounts ({len(scores)})" in page
        assert all(f">{escape(s.name or '')}</a>" in page for s in mine)
        assert not any(f">{escape(s.name or '')}</a>" in page for s in others)
        assert page.count('name="criterion" value="strategic-relationship"') == len(mine)  # only the assessed one
        assert 'name="criterion" value="three-contacts"' not in page  # derived: no form
        assert "Needs 3 different contacts in meetings or calls within the last 90 days." in page

        target = mine[0]
        before, statuses, stored = _kam_rows(world, target.account_id)
        status = "partly" if statuses["strategic-relationship"] != "partly" else "met"
        form = {
            "account": target.account_id,
            "criterion": "strategic-relationship",
            "status": status,
            "comment": f"Board dinner {SCRIPT}",
            "evidence_url": "https://wiki.example/board-notes",
            "mine": "1",
        }
        answer = kam.post(path, data=form)
        assert answer.status_code == 303, answer.text[:2000]
        assert answer.headers["location"] == f"{path}?assessed=1&mine=1#account-{target.account_id}"
        after, statuses, count = _kam_rows(world, target.account_id)
        assert count == stored + 1 and statuses["strategic-relationship"] == status
        covered = [s for s in statuses.values() if s != "not_assessed"]
        expected = (covered.count("met") + 0.5 * covered.count("partly")) / len(covered)
        assert after.score == pytest.approx(expected) and after.covered == len(covered)
        shown = _html(kam.get(answer.headers["location"]))
        assert "Assessment recorded; the account&#39;s score is recomputed." in shown
        assert f"Board dinner {escape(SCRIPT)}" in shown and SCRIPT not in shown
        assert 'href="https://wiki.example/board-notes" rel="noopener noreferrer nofollow"' in shown
        assert re.search(r"kam token, \d{4}-\d\d-\d\d \d\d:\d\d UTC", shown)

        refusals = [
            ({**form, "criterion": "three-contacts"}, 422, "derived from activities (distinct_contacts)"),
            ({**form, "account": others[0].account_id}, 403, "is not one of your key accounts"),
            ({**form, "status": ""}, 422, "Choose met, partly or not met."),
            ({**form, "status": "excellent"}, 422, "Choose met, partly or not met."),
            ({**form, "evidence_url": "javascript:alert(1)"}, 422, "The evidence link must start with https://"),
            ({**form, "comment": "x" * 10_001}, 422, "Comment is longer than 10000 characters"),
            ({**form, "criterion": "nope"}, 404, "no KAM criterion &#39;nope&#39;"),
        ]
        for data, code, message in refusals:
            refused = kam.post(path, data=data)
            assert refused.status_code == code and message in refused.text, (data, refused.text[:3000])
            assert 'role="alert"' in refused.text
    assert _kam_rows(world, target.account_id)[2] == count  # nothing stored by a refused form
    for role in ("viewer", "rep"):
        with world.client(role) as client:
            assert client.post(path, data=form).status_code == 403
            assert 'name="criterion"' not in _html(client.get(path))  # no form for who may not assess
    with world.client("sales_ops") as ops:  # sales ops may assess every key account
        assert _html(ops.get(path)).count('name="criterion" value="strategic-relationship"') == len(scores)
        assert ops.post(path, data={**form, "account": others[0].account_id}).status_code == 303


def test_the_sprint_page_shows_the_review_forecast_and_records_a_retrospective(world: DashboardWorld) -> None:
    mapping_id = world.mappings["acquisition"]
    path = f"/dashboard/{mapping_id}/sprints"
    with Session(world.engine) as session:
        reviews = sprints.reviews(session, _mapping(world, session), today=TODAY.date())
        forecast = sprints.forecast(reviews)
    current = reviews[-1]
    with world.client("viewer") as viewer:
        page = _html(viewer.get(path))
    assert f"Current sprint: {current.name}" in page and current.commitment in page
    assert f"<dt>Committed</dt><dd>{current.shown_committed}</dd>" in page
    assert f"<dt>Achieved</dt><dd>{current.shown_achieved}</dd>" in page
    for gain in current.serves:
        assert f'<td class="num">{gain.shown_gain}</td>' in page
    for review in reviews:  # every sprint but the one shown links to its own review
        name = review.name if review.key == current.key else f'<a href="?sprint={review.key}#current">{review.name}</a>'
        assert f"<td>{name}</td>" in page and f"{review.accuracy:.0%}</td>" in page  # type: ignore[str-format]
    assert f"<dt>Mean accuracy</dt><dd>{forecast.mean_accuracy:.0%}</dd>" in page  # type: ignore[str-format]
    assert f"<dt>Say/do</dt><dd>{forecast.say_do:.0%}</dd>" in page  # type: ignore[str-format]
    assert "Record the retrospective" not in page  # a viewer sees no form

    improvement = f"Call before noon {SCRIPT}"
    with world.client("sales_ops") as ops:
        missing = ops.post(path, data={"sprint": "acquisition-sprint-2", "improvement": " "})
        assert missing.status_code == 422 and "name the one improvement" in missing.text
        answer = ops.post(path, data={"sprint": "acquisition-sprint-2", "improvement": improvement,
                                      "went_well": IMG, "carried_done": "yes"})  # fmt: skip
        assert answer.status_code == 303 and answer.headers["location"] == f"{path}?recorded=1#current"
        page = _html(ops.get(answer.headers["location"]))
    assert "Retrospective recorded." in page
    carried = page.split("Improvement carried over from the previous sprint</h3>")[1].split("</p>")[0]
    assert escape(improvement) in carried  # sprint 2's item is carried into sprint 3, shown as text
    assert "<script" not in page and "<img" not in page


def test_any_ended_sprint_can_be_reviewed(world: DashboardWorld) -> None:
    mapping_id = world.mappings["acquisition"]
    path = f"/dashboard/{mapping_id}/sprints"
    with Session(world.engine) as session:
        reviews = sprints.reviews(session, _mapping(world, session), today=TODAY.date())
    first = reviews[0]
    assert first.key == "acquisition-sprint-1" and first.state == "ended"
    with world.client("viewer") as viewer:
        current = _html(viewer.get(path))
        assert f'<a href="?sprint={first.key}#current">{first.name}</a>' in current  # the table links each sprint
        page = _html(viewer.get(path, params={"sprint": first.key}))
        assert f"<h2>Sprint: {first.name}</h2>" in page and f"{first.start} – {first.end}" in page
        assert f"<dt>Committed</dt><dd>{first.shown_committed}</dd>" in page
        assert f"<dt>Achieved</dt><dd>{first.shown_achieved}</dd>" in page
        unknown = viewer.get(path, params={"sprint": "sprint-9"})
        assert unknown.status_code == 404 and "no sprint &#39;sprint-9&#39;" in unknown.text
        assert "acquisition-sprint-1, acquisition-sprint-2, acquisition-sprint-3" in unknown.text
        assert viewer.get(path, params={"sprint": "<b>"}).status_code == 422


def test_the_check_in_form_records_the_meeting_and_shows_what_people_typed_as_text(world: DashboardWorld) -> None:
    mapping_id = world.mappings["acquisition"]
    path = f"/dashboard/{mapping_id}/check-in"
    with world.client("sales_ops") as ops:
        page = _html(ops.get(path))
        assert 'name="attendee" value="Anna Berger"' in page and 'name="confidence.discovery-meetings"' in page
        with Session(world.engine) as session:
            lines = {
                line.key: line
                for line in views.check_in_page(session, _mapping(world, session), today=TODAY.date()).lines
            }
        discovery = lines["discovery-meetings"]
        row = page[page.index(f'href="/dashboard/{mapping_id}/kr/discovery-meetings"') :].split("</tr>")[0]
        for label, shown in (("Value", discovery.shown_value), ("Expected by now", discovery.shown_expected),
                             ("Change in 7 days", discovery.shown_change)):  # fmt: skip
            assert re.search(rf'<td class="num" data-label="{label}">{re.escape(shown)}\s*</td>', row), (label, row)
        assert "On track</span>" in row

        answer = ops.post(path, data={
            "attendee": ["Anna Berger", "David Garcia"], "confidence.discovery-meetings": "7",
            "confidence.new-pipeline": "at_risk", "note.discovery-meetings": SCRIPT, "note": IMG,
        })  # fmt: skip
        assert answer.status_code == 303, answer.text[:2000]
        recorded = _check_ins(world)[0]
        assert answer.headers["location"] == f"{path}?recorded={recorded.id}#check-in-{recorded.id}"
        page = _html(ops.get(answer.headers["location"]))
    assert recorded.attendees == ["Anna Berger", "David Garcia"] and recorded.note == IMG
    assert recorded.key_results["discovery-meetings"]["confidence"] == 7
    assert recorded.key_results["new-pipeline"]["confidence"] == "at_risk"
    assert recorded.key_results["discovery-meetings"]["note"] == SCRIPT
    assert "Check-in recorded." in page and f'class="past highlight" id="check-in-{recorded.id}"' in page
    article = page.split(f'id="check-in-{recorded.id}"')[1].split("</article>")[0]
    assert escape(SCRIPT) in article and escape(IMG) in article and "7/10" in article and "At risk" in article
    assert "Anna Berger, David Garcia" in article
    assert "<script" not in page and "<img" not in page


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"attendee": ["Mallory"]}, "Mallory is not a member of the team."),
        ({"confidence.discovery-meetings": "11"}, "use 1–10"),
        ({"confidence.no-such-kr": "5"}, "no key result &#39;no-such-kr&#39;"),
        ({"note": "x" * 20_001}, "General note is longer than 20000 characters."),
    ],
    ids=["unknown-attendee", "confidence-out-of-range", "unknown-kr", "note-too-long"],
)
def test_a_bad_check_in_is_refused_with_the_form_kept(
    world: DashboardWorld, form: dict[str, object], message: str
) -> None:
    before = len(_check_ins(world))
    with world.client("sales_ops") as ops:
        answer = ops.post(f"/dashboard/{world.mappings['acquisition']}/check-in",
                          data={**form, "note.discovery-meetings": f"kept {SCRIPT}"})  # fmt: skip
    assert answer.status_code == 422, answer.text[:1000]
    assert message in answer.text and f">kept {escape(SCRIPT)}</textarea>" in answer.text
    assert len(_check_ins(world)) == before


def _customer_care(world: DashboardWorld) -> tuple[list[CheckIn], list[ManualValue], KeyResultValue | None]:
    with Session(world.engine) as session:
        mapping = _mapping(world, session, "customer-care")
        values = session.exec(sqlmodel.select(ManualValue).where(ManualValue.mapping_id == mapping.id)).all()
        return checkins.check_ins(session, mapping), list(values), session.get(KeyResultValue, (mapping.id, "nps"))


def test_the_lead_enters_nps_at_the_check_in_sees_last_weeks_confidence_and_corrects_it_the_same_day(
    world: DashboardWorld,
) -> None:
    mapping_id = world.mappings["customer-care"]
    path = f"/dashboard/{mapping_id}/check-in"
    last_week = TODAY - timedelta(days=7)
    with world.client("sales_ops") as ops:
        set_today(world, last_week)
        try:
            assert ops.post(path, data={"confidence.nps": "6", "note": "last week"}).status_code == 303
        finally:
            set_today(world, TODAY)
        page = _html(ops.get(path))
        assert "Confidence, one scale for every key result: 10 = we will reach it for sure" in page
        assert '<option value="at_risk"' not in page  # one scale: no status words among the levels
        assert f"last: 6/10 ({last_week.date()})" in page
        assert 'name="value.nps"' in page and "from -100 to 100" in page

        before_rows, before_values, _ = _customer_care(world)
        refusals = [("140", "outside the key result&#39;s range -100 … 100"), ("nan", "is not a number: nan"),
                    ("1e400", "is not a number: 1e400"), ("forty", "is not a number: forty")]  # fmt: skip
        for typed, message in refusals:
            refused = ops.post(path, data={"value.nps": typed, "confidence.nps": "8", "note": "kept"})
            assert refused.status_code == 422 and message in refused.text, (typed, refused.text[:3000])
            assert f'value="{typed}"' in refused.text and "kept</textarea>" in refused.text  # the form is kept
        assert _customer_care(world)[:2] == (before_rows, before_values)  # nothing stored

        answer = ops.post(path, data={"value.nps": "35,5", "confidence.nps": "8", "note": "Survey of\nSeptember"})
        assert answer.status_code == 303, answer.text[:3000]
        rows, values, nps = _customer_care(world)
        first = rows[0]
        assert len(rows) == len(before_rows) + 1 and values[-1].value == 35.5 and values[-1].author == "sales_ops token"
        assert nps is not None and nps.value == 35.5
        assert first.key_results["nps"]["value"] == 35.5 and first.key_results["nps"]["confidence"] == 8
        shown = _html(ops.get(answer.headers["location"]))
        assert f'href="?correct={first.id}#check-in-form"' in shown  # held today: it may be corrected

        form = _html(ops.get(path, params={"correct": first.id}))
        assert f'name="corrects" value="{first.id}"' in form and "Survey of\nSeptember</textarea>" in form
        assert '<option value="8" selected>' in form
        corrected = ops.post(path, data={"corrects": str(first.id), "confidence.nps": "5", "note": "Survey of Sept."})
        assert corrected.status_code == 303, corrected.text[:3000]
        rows, _values, _nps = _customer_care(world)
        assert rows[0].corrects_id == first.id and rows[1].id == first.id  # both kept
        assert rows[1].key_results["nps"]["confidence"] == 8 and rows[1].note == "Survey of\nSeptember"
        page = _html(ops.get(corrected.headers["location"]))
        assert "Earlier version (1)" in page and page.count(f'id="check-in-{first.id}"') == 0  # in its place
        assert f'id="check-in-{rows[0].id}"' in page and "5/10" in page
        again = ops.post(path, data={"corrects": str(first.id), "note": "twice"})
        assert again.status_code == 409 and f"already corrected by check-in {rows[0].id}" in again.text
        old = next(r for r in rows if r.held_at.date() == last_week.date())
        late = ops.post(path, data={"corrects": str(old.id), "note": "too late"})
        assert late.status_code == 409 and "can be corrected only on the day it was held" in late.text
        assert "can be corrected only on the day" in _html(ops.get(path, params={"correct": old.id}))

    with world.client("sales_ops") as api:
        url = f"/api/v1/mappings/{mapping_id}/weekly-check-ins"
        out_of_range = api.post(url, json={"values": {"nps": 140}})
        assert out_of_range.status_code == 422 and "outside the key result's range" in out_of_range.text
        not_manual = api.post(url, json={"values": {"csat": 1}})
        assert not_manual.status_code == 422 and "is not a manual key result" in not_manual.text
        assert api.post(url, content=b'{"values": {"nps": NaN}}', headers={"content-type": "application/json"}
                        ).status_code == 422  # fmt: skip
        late_api = api.post(url, json={"corrects": old.id})
        assert late_api.status_code == 409 and "only on the day it was held" in late_api.text
    assert len(_customer_care(world)[0]) == len(rows)


def test_no_check_in_once_the_cycle_has_ended(world: DashboardWorld) -> None:
    path = f"/dashboard/{world.mappings['acquisition']}/check-in"
    set_today(world, ANCHOR + timedelta(days=5))
    try:
        with world.client("sales_ops") as ops:
            page = _html(ops.get(path))
            assert "The cycle ended on 2026-09-30" in page and 'name="attendee"' not in page
            refused = ops.post(path, data={"note": "too late"})
    finally:
        set_today(world, TODAY)
    assert refused.status_code == 409 and "ended on 2026-09-30" in refused.text


def test_german_labels_by_parameter_cookie_and_accept_language(world: DashboardWorld) -> None:
    mapping_id = world.mappings["acquisition"]
    with world.client("viewer") as client:
        answer = client.get(f"/dashboard/{mapping_id}", params={"lang": "de"})
        page = _html(answer)
        assert 'lang="de"' in page and "Überblick" in page and "Aktueller Sprint" in page and "Beiträge" in page
        assert "Im Plan</span>" in page and "Fortschritt" in page and "€6,5M" in page
        assert "okrsync_lang=de" in answer.headers["set-cookie"]
        remembered = _html(client.get(f"/dashboard/{mapping_id}/check-in"))  # the cookie, no parameter
        assert "Wöchentlicher Check-in" in remembered and "Veränderung in 7 Tagen" in remembered
        assert "Soll bis heute" in remembered and "Frühere Check-ins" in remembered
        back = _html(client.get(f"/dashboard/{mapping_id}/check-in", params={"lang": "en"}))
        assert "Weekly check-in" in back
    with world.client("viewer", **{"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}) as client:
        chart = _html(client.get(f"/dashboard/{mapping_id}/kr/discovery-meetings"))
        assert "Soll-Verlauf" in chart and "Gezählte Datensätze" in chart and "Zeitfenster" in chart
        overview = _html(client.get(f"/dashboard/{world.mappings['pipeline-hygiene']}"))
        assert "Hygiene-Score" in overview and "Offene Opportunities: " in overview
        hygiene = _html(client.get(f"/dashboard/{world.mappings['pipeline-hygiene']}/hygiene"))
        assert "Abschlussdatum überschritten" in hygiene and "Nach Verantwortlichen" in hygiene
        kam = _html(client.get(f"/dashboard/{world.mappings['customer-care']}/kam"))
        assert "Erfüllt" in kam or "Nicht erfüllt" in kam
        sprint = _html(client.get(f"/dashboard/{mapping_id}/sprints"))
        assert "Zugesagt" in sprint and "Prognosegenauigkeit" in sprint
        denied = client.post(f"/dashboard/{mapping_id}/check-in", data={})
        assert denied.status_code == 403 and "Dafür braucht es die Rolle Sales Ops" in denied.text


def test_german_pages_have_no_english_hygiene_sentence(world: DashboardWorld) -> None:
    hygiene = world.mappings["pipeline-hygiene"]
    with world.client("rep", **{"Accept-Language": "de"}) as rep:
        pages = [_html(rep.get(f"/dashboard/{hygiene}/hygiene", params={"offset": n})) for n in range(0, 200, 50)]
        pages.append(_html(rep.get(f"/dashboard/{hygiene}/hygiene", params={"owner": "me"})))
        pages.append(_html(rep.get(f"/dashboard/{world.mappings['acquisition']}")))  # "Meine Arbeit"
    text = "".join(pages)
    assert "Meine Opportunities mit Problemen" in text
    found = [phrase for phrase in ENGLISH_HYGIENE if phrase in text]
    assert found == [], found
    for german in ("Kein nächster Schritt", "Tage zurück", "Seit ", "in der Phase", "Abschlussdatum"):
        assert german in text, german
    with world.client("rep") as english:  # the same pages in English still say it in English
        assert "No next step" in _html(english.get(f"/dashboard/{hygiene}/hygiene"))


def test_every_page_sends_the_security_headers_and_no_script(world: DashboardWorld) -> None:
    mapping_id = world.mappings["acquisition"]
    paths = ["/dashboard", f"/dashboard/{mapping_id}", f"/dashboard/{mapping_id}/kr/new-pipeline",
             f"/dashboard/{mapping_id}/check-in", f"/dashboard/{mapping_id}/sprints",
             f"/dashboard/{world.mappings['pipeline-hygiene']}/hygiene",
             f"/dashboard/{world.mappings['customer-care']}/kam", "/dashboard/login", "/dashboard/9999"]  # fmt: skip
    with world.client("viewer") as client:
        for path in paths:
            answer = client.get(path)
            assert answer.status_code in (200, 404), path
            policy = answer.headers["content-security-policy"]
            assert policy.startswith("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'")
            assert answer.headers["x-content-type-options"] == "nosniff" and answer.headers["x-frame-options"] == "DENY"
            assert "<script" not in answer.text, (path, answer.text[answer.text.find("<script") - 300 :][:600])
            # nothing external is loaded; the only outside links are evidence a KAM gave, opened without referrer
            assert not re.search(r'src="https?://|<link[^>]*href="https?://', answer.text), path
            for link in re.findall(r'<a href="https?://(?!127\.0\.0\.1)[^"]*"[^>]*>', answer.text):
                assert 'rel="noopener noreferrer nofollow"' in link, (path, link)
        css = client.get("/dashboard/static/dashboard.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert "@import" not in css.text and "url(" not in css.text  # no external fonts or images
    assert render.ENVIRONMENT.autoescape is True


def test_unknown_mappings_and_key_results_are_404_pages(world: DashboardWorld) -> None:
    with world.client("viewer") as client:
        missing = client.get("/dashboard/9999")
        assert missing.status_code == 404 and "no mapping 9999" in missing.text
        kr = client.get(f"/dashboard/{world.mappings['acquisition']}/kr/no-such-kr<b>")
        assert kr.status_code == 404 and "no key result &#39;no-such-kr&lt;b&gt;&#39;" in kr.text


def test_render_check_in_gives_a_standalone_document_for_the_report(world: DashboardWorld) -> None:
    with Session(world.engine) as session:
        mapping = _mapping(world, session)
        document = views.render_check_in(session, mapping, lang="de")
        fragment = views.render_check_in(session, mapping, standalone=False)
    assert document.startswith("<!doctype html>") and '<html lang="de">' in document
    assert "<style>" in document and ".status-on_track" in document and "dashboard.css" not in document
    assert "Wöchentlicher Check-in" in document and "150 meetings with prospects" in document
    assert "<form" not in document and "<nav" not in document and "/dashboard/" not in document
    assert "<html" not in fragment and "Weekly check-in" in fragment and "<form" not in fragment
    assert "<script" not in document + fragment


def test_a_response_time_in_business_hours_shows_both_waits_of_every_answered_inquiry(world: DashboardWorld) -> None:
    """customer-care's answered-within-4h counts business hours (Berlin): each answered pair shows its wall-clock
    wait and its wait in open hours, worked out here from the row independently of the page (day by day)."""
    mapping_id = world.mappings["customer-care"]
    with world.client("viewer") as client:
        page = _html(client.get(f"/dashboard/{mapping_id}/kr/answered-within-4h"))
        api = client.get(f"/api/v1/mappings/{mapping_id}/key-results/answered-within-4h/evidence", params={"limit": 50})
    assert '<th scope="col" class="num">In business hours</th>' in page
    answered = [item for item in api.json()["items"] if item["value"] is not None]
    assert answered
    for item in answered:
        asked = datetime.fromisoformat(item["occurred_at"]).replace(tzinfo=UTC)
        expected = berlin_open_seconds(asked, asked + timedelta(seconds=item["value"]))
        assert item["business_seconds"] == pytest.approx(expected)
        assert f'<td class="num">{item["value"] / 3600:,.2f} h</td>' in page
        assert f'<td class="num">{expected / 3600:,.2f} h</td>' in page


def test_speed_to_lead_evidence_names_and_links_each_lead(world: DashboardWorld) -> None:
    """A speed-to-lead row is a lead: the page names it and links its CRM record page (issue 19)."""
    mapping_id = world.mappings["acquisition"]
    with world.client("viewer") as client:
        page = _html(client.get(f"/dashboard/{mapping_id}/kr/speed-to-lead"))
    with Session(world.engine) as session:
        mapping = _mapping(world, session)
        total, rows = reports.evidence(session, mapping, "speed-to-lead", limit=5)
        instance_url = _instance_url(session, mapping)
        names = {lead.external_id: lead.name for lead in session.exec(sqlmodel.select(Lead)).all()}
    assert total > 0 and rows
    for row in rows:
        url = f"{instance_url}/lightning/r/Lead/{row.record_id}/view"
        assert f'<a href="{url}" rel="noopener noreferrer" target="_blank">{escape(names[row.record_id])}</a>' in page


def _explained(world: DashboardWorld, mapping_id: int, kr_key: str) -> list[tuple[str, str]]:
    """``okrsync explain`` in a subprocess against the world's database: (part, record id) per line, in order."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    env["OKRSYNC_DATABASE_URL"] = world.engine.url.render_as_string(hide_password=False)
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "explain", kr_key, "--mapping", str(mapping_id), "--limit", "100000"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^  (\S+)\s+(\S+)", done.stdout, re.M)]


def test_explain_the_api_and_the_dashboard_show_the_same_records_in_the_same_order(world: DashboardWorld) -> None:
    """The contract a faster evidence path (issue 20: evidence produced on demand) must keep: for every key result
    counted from records, the CLI, every page of the API and every page of the dashboard list the same records in
    the same order (part, newest first, then id)."""
    mapping_id = world.mappings["acquisition"]
    with Session(world.engine) as session:
        config = okrs.current_config(session, _mapping(world, session))
    keys = [
        kr.key for _o, kr in config.key_results() if kr.metric.type not in ("hygiene_score", "kam_criteria", "manual")
    ]
    assert len(keys) >= 5
    with world.client("viewer") as client:
        for kr_key in keys:
            api: list[tuple[str, str]] = []
            while True:
                page = client.get(f"/api/v1/mappings/{mapping_id}/key-results/{kr_key}/evidence",
                                  params={"limit": 37, "offset": len(api)}).json()  # fmt: skip
                api += [(item["part"], item["record_id"]) for item in page["items"]]
                if not page["items"]:
                    break
            assert len(api) == page["total"] and api, kr_key
            expected = sorted(api, key=lambda pair: pair[0])  # parts first, in the order parts sort
            assert [p for p, _r in api] == [p for p, _r in expected], f"{kr_key}: parts not grouped"
            shown: list[str] = []
            while len(shown) < len(api):
                html = _html(client.get(f"/dashboard/{mapping_id}/kr/{kr_key}", params={"offset": len(shown)}))
                table = html[html.index('<table class="list evidence">') :].split("</table>")[0]
                rows = table.split("<tbody>")[1].split("</tr>")[:-1]
                assert rows, (kr_key, len(shown))
                shown += [re.findall(r"/lightning/r/\w+/(\w+)/view", row)[0] for row in rows]
            assert shown == [record for _part, record in api], f"{kr_key}: the dashboard's order differs"
            assert _explained(world, mapping_id, kr_key) == api, f"{kr_key}: okrsync explain differs"
