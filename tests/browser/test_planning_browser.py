"""Planning a cycle bottom-up in a real headless Chromium against a real ``okrsync serve --sandbox`` (issue 22's
"Must show"): sales ops add a company goal; a rep opens a draft for a new team and builds two objectives with three
key results using the builder (no YAML typed), one objective serving the goal, and sees the live value of a key
result; adds a fourth, a ratio (numerator and denominator from condition rows); sends it to review; the team's lead
requests a change with a comment; the rep edits a key result and sends it again; the lead approves; the mapping is
applied and computed (its overview shows the key results with values); the company page shows the team under its
goal; the stand-up page of the running sprint shows the day's activities. The draft page passes axe-core.
Screenshots of each step go to ``$OKRSYNC_ARTIFACTS/screenshots`` (default ``build/artifacts``), named
``planning-*.png``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests import loopback
from tests.browser.test_dashboard_browser import CHROMIUM_ARGS, SCREENSHOTS, _chromium, apply_running
from tests.service.sidecar_process import okrsync_serve

pytestmark = pytest.mark.slow  # drives Chromium against `okrsync serve` in a subprocess

GOAL_KEY = "new-business-2026"
TEAM = "Vertrieb Nord"
MEMBERS = """anna.berger@sandbox.okrsync.dev, Anna Berger
david.garcia@sandbox.okrsync.dev, David Garcia
greta.lang@sandbox.okrsync.dev, Greta Lang
mia.vogel@sandbox.okrsync.dev, Mia Vogel"""
DOORS = "we-open-doors-to-new-customers"  # the objectives' keys, made from their titles
PIPELINE = "our-pipeline-grows"


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"planning-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path.resolve()}")  # noqa: T201  # the artefact's place, for whoever reads the log


def _logged_in(browser: Browser, base: str, token: str, path: str) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US").new_page()
    page.on("dialog", lambda dialog: pytest.fail(f"unexpected dialog: {dialog.message}"))
    page.goto(f"{base}/dashboard/login?next={path}")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}{path}")
    return page


def _build(page: Page, *, objective: str, title: str, conditions: list[tuple[str, str, str]], target: str) -> None:
    """Fill the key-result builder (activities are counted unless the record was switched before)."""
    builder = page.locator("form#builder")
    builder.locator("select[name=objective]").select_option(objective)
    builder.locator("input[name=title]").fill(title)
    for n, (field, op, value) in enumerate(conditions, start=1):
        builder.locator(f"select[name=field_{n}]").select_option(field)
        builder.locator(f"select[name=op_{n}]").select_option(op)
        builder.locator(f"input[name=value_{n}]").fill(value)
    builder.locator("input[name=target]").fill(target)


def test_a_team_plans_its_cycle_and_the_lead_approves_it(tmp_path: Path) -> None:
    chromium = _chromium()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    anchor = now.isoformat().replace("+00:00", "Z")  # the sandbox's quarter ends now
    start, end = now.date() - timedelta(days=30), now.date() + timedelta(days=60)  # a cycle running today
    with okrsync_serve(tmp_path, anchor=anchor, accounts=30, opportunities=80, activities=3200) as served:
        ops = served.token(name="Sara Sales Ops", role="sales_ops")
        rep_token = served.token(name="Mia Vogel", role="rep", email="mia.vogel@sandbox.okrsync.dev")
        lead_token = served.token(name="Lena Lead", role="lead", team=TEAM)
        base = served.base_url
        standup_ids = apply_running(base, ops, ("acquisition",), now.date())  # another team, its sprint running

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                # sales ops add the company goal
                company = _logged_in(browser, base, ops, "/dashboard/company")
                add = company.locator("form#add-goal")
                add.get_by_label("Key").fill(GOAL_KEY)
                add.get_by_label("Goal").fill("Win new customers")
                add.get_by_label("Owner").fill("Clara CEO")
                add.get_by_label("Measured by").fill("120 new customers with a first order")
                add.get_by_label("Period").fill(str(now.year))
                add.get_by_role("button", name="Add the goal").click()
                expect(company.get_by_text("Company goal added.")).to_be_visible()
                _shot(company, "01-goal")

                # the rep opens the draft from the header's Planning link
                rep = _logged_in(browser, base, rep_token, "/dashboard")
                console: list[str] = []
                rep.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
                rep.get_by_role("link", name="Planning", exact=True).click()
                expect(rep).to_have_url(f"{base}/dashboard/planning")
                listed = Axe().run(rep)
                assert listed.violations_count == 0, listed.generate_report()
                opening = rep.locator("form#open-draft")
                opening.get_by_label("CRM connection").select_option("salesforce/sandbox")
                opening.locator("input[name=team]").fill(TEAM)
                opening.get_by_label("Cycle name").fill("Nord running")
                opening.get_by_label("First day").fill(start.isoformat())
                opening.get_by_label("Last day").fill(end.isoformat())
                opening.get_by_label("Members").fill(MEMBERS)
                opening.get_by_role("button", name="Open the draft").click()
                expect(rep.get_by_text("Draft opened.")).to_be_visible()
                expect(rep.get_by_role("heading", name=re.compile(TEAM))).to_be_visible()
                draft_url = rep.url.split("?")[0]
                _shot(rep, "02-draft-opened")

                # two objectives, the first serving the company goal
                for title, serves in (("We open doors to new customers", GOAL_KEY), ("Our pipeline grows", "")):
                    form = rep.locator("form#objective-form")
                    form.locator("input[name=title]").fill(title)
                    form.get_by_label("Serves the company goal").select_option(serves)
                    form.get_by_role("button", name="Save the objective").click()
                    expect(rep.get_by_text("Draft saved.")).to_be_visible()
                expect(rep.locator(f"#objective-{DOORS}")).to_contain_text("Serves the company goal: Win new customers")
                _shot(rep, "03-objectives")

                # three key results with the builder; the first previewed: its live value appears
                _build(rep, objective=DOORS, title="40 meetings", conditions=[("activity_kind", "eq", "meeting")],
                       target="40")  # fmt: skip
                rep.locator("form#builder").get_by_role("button", name="Preview the value").click()
                preview = rep.locator("#preview")
                expect(preview).to_be_visible()
                expect(preview).to_contain_text("Now (the days up to today: the team has no running cycle)")
                expect(preview).to_contain_text("suggested baseline")
                live = preview.locator("dd").first.inner_text()
                assert re.fullmatch(r"[\d,.]+", live) and float(live.replace(",", "")) > 0, live
                expect(rep.locator("form#builder input[name=title]")).to_have_value("40 meetings")  # kept
                _shot(rep, "04-preview")
                rep.locator("form#builder").get_by_role("button", name="Save the key result").click()
                expect(rep.get_by_text("Draft saved.")).to_be_visible()

                _build(rep, objective=DOORS, title="100 outbound calls", target="100",
                       conditions=[("activity_kind", "eq", "call"), ("direction", "eq", "outbound")])  # fmt: skip
                # the builder's script (a static file, under the CSP) offers the chosen field's values and operators
                value_2 = rep.locator("form#builder input[name=value_2]")
                expect(value_2).to_have_attribute("list", "values-direction")
                expect(rep.locator("datalist#values-direction option[value=outbound]")).to_have_count(1)
                expect(rep.locator("form#builder select[name=op_2] option[value=gt]")).to_have_count(0)  # text field
                rep.locator("form#builder").get_by_role("button", name="Save the key result").click()
                expect(rep.get_by_text("Draft saved.")).to_be_visible()

                builder = rep.locator("form#builder")
                builder.locator("select[name=of]").select_option("opportunities")
                builder.get_by_role("button", name="Show the fields of these records").click()
                expect(rep.locator("form#builder select[name=field_1] option[value=stage]")).to_have_count(1)
                _build(rep, objective=PIPELINE, title="10 new opportunities", conditions=[], target="10")
                rep.locator("form#builder").get_by_role("button", name="Save the key result").click()
                expect(rep.get_by_text("Draft saved.")).to_be_visible()
                # a ratio: the numerator's and the denominator's condition rows, the target as a percentage
                builder.locator("select[name=metric]").select_option("ratio")
                builder.get_by_role("button", name="Show the fields of these records").click()
                _build(rep, objective=PIPELINE, title="Half of the calls go out", target="50 %",
                       conditions=[("activity_kind", "eq", "call"), ("direction", "eq", "outbound")])  # fmt: skip
                builder.locator("select[name=den_field_1]").select_option("activity_kind")
                expect(builder.locator("input[name=den_value_1]")).to_have_attribute("list", "den-values-activity_kind")
                builder.locator("input[name=den_value_1]").fill("call")
                builder.get_by_role("button", name="Save the key result").click()
                expect(rep.get_by_text("Draft saved.")).to_be_visible()
                expect(rep.locator("#kr-half-of-the-calls-go-out")).to_contain_text("0.5")
                expect(rep.locator("article.kr-card")).to_have_count(4)
                expect(rep.get_by_text("Nothing: the draft would apply as it is.")).to_be_visible()
                _shot(rep, "05-three-key-results")
                rep.get_by_role("button", name="Send to review").click()
                expect(rep.get_by_text("The draft was sent to review.")).to_be_visible()
                _shot(rep, "06-sent-to-review")

                # the lead rates a key result and asks for a change
                lead = _logged_in(browser, base, lead_token, draft_url.removeprefix(base))
                card = lead.locator("#kr-100-outbound-calls")
                card.locator("details summary").click()
                card.get_by_label("Feasibility").select_option("4")
                card.get_by_label("Relevance").select_option("2")
                card.get_by_label("Effort").select_option("3")
                card.get_by_label("Comment").fill("Which accounts?")
                card.get_by_role("button", name="Record the review").click()
                expect(lead.get_by_text("Review recorded.")).to_be_visible()
                changes = lead.locator("form#request-changes")
                changes.get_by_label("What should change").fill("Aim for 120 calls: we had more last cycle")
                changes.get_by_role("button", name="Request changes").click()
                expect(lead.get_by_text("Changes requested: the team sees your comment.")).to_be_visible()
                history = lead.locator("#history")
                expect(history).to_contain_text("Feasibility 4/5 · Relevance 2/5 · Effort 3/5")
                expect(history).to_contain_text("Aim for 120 calls")
                _shot(lead, "07-changes-requested")

                # the rep edits the key result with the builder and sends the draft again
                rep.goto(draft_url)
                expect(rep.locator("#draft-meta")).to_contain_text("changes requested")
                rep.locator("#kr-100-outbound-calls").get_by_role("link", name="Edit with the builder").click()
                expect(rep.locator("form#builder input[name=title]")).to_have_value("100 outbound calls")
                rep.locator("form#builder input[name=title]").fill("120 outbound calls")
                rep.locator("form#builder input[name=target]").fill("120")
                rep.locator("form#builder").get_by_role("button", name="Save the key result").click()
                expect(rep.get_by_text("Draft saved.")).to_be_visible()
                expect(rep.locator("#kr-100-outbound-calls")).to_contain_text("120 outbound calls")
                _shot(rep, "08-edited")
                assert console == [], console  # no CSP violation, no script error
                rep.get_by_role("button", name="Send to review").click()
                expect(rep.get_by_text("The draft was sent to review.")).to_be_visible()

                # the lead approves: the mapping is applied and computed
                lead.goto(draft_url)
                axe = Axe().run(lead)
                assert axe.violations_count == 0, axe.generate_report()
                for width in (1024, 390):  # a projector, a phone: nothing scrolls sideways
                    lead.set_viewport_size({"width": width, "height": 900})
                    widths = lead.evaluate(
                        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
                    )
                    assert widths[0] <= widths[1], f"the draft page at {width} px scrolls sideways: {widths}"
                    _shot(lead, f"08b-review-{width}")
                lead.set_viewport_size({"width": 1280, "height": 900})
                lead.locator("form#approve").get_by_role("button", name="Approve").click()
                expect(lead.get_by_text("Approved: the draft was applied as the team's mapping")).to_be_visible()
                _shot(lead, "09-approved")
                lead.get_by_role("link", name="Open the team's overview").click()
                expect(lead).to_have_url(re.compile(rf"{base}/dashboard/\d+$"))
                mapping_id = int(lead.url.rsplit("/", 1)[1])
                for title in ("40 meetings", "120 outbound calls", "10 new opportunities", "Half of the calls go out"):
                    expect(lead.get_by_role("link", name=title)).to_be_visible()
                expect(lead.locator(".bar .fill").first).to_be_visible()
                detail = loopback.get(
                    f"{base}/api/v1/mappings/{mapping_id}", headers={"Authorization": f"Bearer {ops}"}
                )
                assert detail.status_code == 200, detail.text
                assert detail.json()["computed_at"] is not None
                values = {kr["title"]: kr["value"] for o in detail.json()["objectives"] for kr in o["key_results"]}
                assert values["40 meetings"] and values["40 meetings"] > 0, values
                _shot(lead, "10-overview")

                # the company page shows the team under its goal
                company.goto(f"{base}/dashboard/company")
                goal = company.locator(f"section#goal-{GOAL_KEY}")
                expect(goal.get_by_role("link", name=TEAM)).to_have_attribute("href", f"/dashboard/{mapping_id}")
                expect(goal).to_contain_text("We open doors to new customers")
                _shot(company, "11-company")

                # the stand-up of a running sprint shows the day's activities
                company.goto(f"{base}/dashboard/{standup_ids['acquisition']}/standup")
                expect(company.locator("article.member-card").first).to_be_visible()
                expect(company.locator("ul.logged > li").first).to_be_visible()
                _shot(company, "12-standup")

                # the approved draft reads in German too
                lead.goto(f"{draft_url}?lang=de")
                expect(lead.get_by_role("link", name="Zur Übersicht des Teams")).to_be_visible()
                expect(lead.locator("#history")).to_contain_text("Änderungen erbeten")
                _shot(lead, "13-approved-de")
            finally:
                browser.close()
