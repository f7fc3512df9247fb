"""Company goals in a real headless Chromium against a real ``okrsync serve --sandbox``: the team lead (sales_ops)
adds a company goal through the company page's form, applies the acquisition mapping whose first objective serves
it, and sees the team with its objective and progress under the goal; an edit made from a page loaded before
someone else's save is shown as a conflict with the typed text kept; the page passes axe-core and reads in German.
Screenshots go to ``$OKRSYNC_ARTIFACTS/screenshots`` (default ``build/artifacts``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect, sync_playwright

from tests import loopback
from tests.browser.test_dashboard_browser import CHROMIUM_ARGS, SCREENSHOTS, _chromium, _running_cycle
from tests.service.sidecar_process import okrsync_serve

pytestmark = pytest.mark.slow  # drives Chromium against `okrsync serve` in a subprocess

GOAL_KEY = "new-business-2026"


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"company-{name}.png"), full_page=True)


def _serving(today: datetime) -> str:
    """The acquisition example in a running cycle, its first objective serving the goal."""
    data = yaml.safe_load(_running_cycle("acquisition", today.date()))
    data["objectives"][0]["serves"] = GOAL_KEY
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def test_a_lead_adds_a_goal_and_sees_the_team_under_it(tmp_path: Path) -> None:
    chromium = _chromium()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    anchor = now.isoformat().replace("+00:00", "Z")
    with okrsync_serve(tmp_path, anchor=anchor, accounts=30, opportunities=80, activities=3200) as served:
        lead = served.token(name="Team lead", role="sales_ops")
        admin = served.token(name="Ada Admin", role="admin")
        base = served.base_url

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-US")
                dialogs: list[str] = []
                page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
                page.goto(f"{base}/dashboard/login?next=/dashboard/company")
                page.get_by_label("API token").fill(lead)
                page.get_by_role("button", name="Log in").click()
                expect(page).to_have_url(f"{base}/dashboard/company")
                expect(page.get_by_role("heading", name="Company goals", exact=True)).to_be_visible()
                expect(page.get_by_text("No company goal yet")).to_be_visible()

                add = page.locator("form#add-goal")
                add.get_by_label("Key").fill(GOAL_KEY)
                add.get_by_label("Goal").fill("Win new customers <b>in 2026</b>")
                add.get_by_label("Owner").fill("Clara CEO")
                add.get_by_label("Measured by").fill("120 new customers with a first order")
                add.get_by_label("Period").fill("2026-Q3")  # a quarter is not a period of a company goal
                add.get_by_role("button", name="Add the goal").click()
                expect(page.get_by_role("alert")).to_contain_text("period: '2026-Q3' is not a year")
                expect(page.locator("form#add-goal").get_by_label("Owner")).to_have_value("Clara CEO")  # kept
                _shot(page, "bad-period")
                page.locator("form#add-goal").get_by_label("Period").fill("2026")
                page.locator("form#add-goal").get_by_role("button", name="Add the goal").click()
                expect(page.get_by_text("Company goal added.")).to_be_visible()
                goal = page.locator(f"section#goal-{GOAL_KEY}")
                expect(goal.get_by_role("heading", name="Win new customers <b>in 2026</b>")).to_be_visible()
                expect(goal.get_by_text("No team's objective serves this goal yet.")).to_be_visible()
                expect(
                    page.locator("#unserved").get_by_role("link", name="Win new customers <b>in 2026</b>")
                ).to_be_visible()
                _shot(page, "goal-added")

                # the mapping whose first objective serves the goal, applied through the API
                applied = loopback.post(
                    f"{base}/api/v1/mappings/apply", timeout=60, headers={"Authorization": f"Bearer {lead}"},
                    json={"yaml": _serving(now), "connection": "salesforce/sandbox"},
                )  # fmt: skip
                assert applied.status_code == 200, applied.text
                mapping_id = applied.json()["mapping"]["id"]
                page.reload()
                goal = page.locator(f"section#goal-{GOAL_KEY}")
                expect(goal.get_by_role("link", name="Vertrieb DACH")).to_have_attribute(
                    "href", f"/dashboard/{mapping_id}"
                )
                row = goal.locator("table.goal-objectives tbody tr")
                expect(row).to_have_count(1)
                expect(row).to_contain_text("We open doors to new customers")
                expect(row.locator(".bar")).to_be_visible()
                assert re.search(r"\d+%", row.inner_text())
                expect(page.locator("#unserved")).to_contain_text("Every goal is served")
                expect(page.locator("#unlinked")).to_contain_text("Vertrieb DACH")  # its second objective serves none
                _shot(page, "team-under-goal")

                # an edit from a page loaded before the admin's save: the conflict is shown, the typed text kept
                goal.locator("details summary").click()
                edit = goal.locator(f'form[action="/dashboard/company/goals/{GOAL_KEY}"]')
                edit.get_by_label("Measured by").fill("My careful rewording")
                body = {"title": "Win new customers", "owner": "Ada", "measure": "125 new customers", "period": "2026",
                        "version": 1}  # fmt: skip
                saved = loopback.put(
                    f"{base}/api/v1/goals/{GOAL_KEY}", json=body, headers={"Authorization": f"Bearer {admin}"}
                )
                assert saved.status_code == 200, saved.text
                edit.get_by_role("button", name="Save the goal").click()
                expect(page.get_by_role("alert")).to_contain_text("was changed by Ada Admin at")
                goal = page.locator(f"section#goal-{GOAL_KEY}")
                expect(goal.get_by_role("heading", name="Win new customers")).to_be_visible()  # the stored one
                expect(goal.get_by_label("Measured by")).to_have_value("My careful rewording")
                _shot(page, "stale-edit")

                # a served goal is not deleted
                goal.get_by_role("button", name="Delete the goal").click()
                expect(page.get_by_role("alert")).to_contain_text("is served by 1 objective(s) — Vertrieb DACH")
                expect(page.locator(f"section#goal-{GOAL_KEY}")).to_have_count(1)

                page.goto(f"{base}/dashboard/company")
                page.keyboard.press("Tab")
                expect(page.locator(":focus")).to_have_class("skip-link")
                results = Axe().run(page)
                assert results.violations_count == 0, results.generate_report()
                for width in (1024, 390):
                    page.set_viewport_size({"width": width, "height": 900})
                    widths = page.evaluate(
                        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
                    )
                    assert widths[0] <= widths[1], f"the company page at {width} px scrolls sideways: {widths}"
                    _shot(page, f"page-{width}")
                page.get_by_role("link", name="DE", exact=True).click()
                expect(page.get_by_role("heading", name="Unternehmensziele", exact=True)).to_be_visible()
                expect(page.get_by_text("Objectives, die auf dieses Ziel einzahlen (Vertrieb DACH)")).to_be_visible()
                _shot(page, "de")
                assert dialogs == []
            finally:
                browser.close()
