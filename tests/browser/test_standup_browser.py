"""The daily stand-up in a real headless Chromium against a real ``okrsync serve --sandbox``: the team lead opens it
from the overview while a sprint runs, sees one card per member with what they logged since the last working day,
the commitment's burn-down and their blocked opportunities, switches to the projector view and to German. At
1024 px (a projector) nothing scrolls sideways and axe-core finds 0 violations. Screenshots go to
``$OKRSYNC_ARTIFACTS/screenshots`` (default ``build/artifacts``), named ``standup-*.png``."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect, sync_playwright

from tests import loopback
from tests.browser.test_dashboard_browser import CHROMIUM_ARGS, SCREENSHOTS, _chromium, apply_running
from tests.service.sidecar_process import okrsync_serve

pytestmark = pytest.mark.slow  # drives Chromium against `okrsync serve` in a subprocess


def _shot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"standup-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path.resolve()}")  # noqa: T201  # the artefact's place, for whoever reads the log
    return path


def _fits_and_is_accessible(page: Page, axe: Axe) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"{page.url} scrolls sideways: {widths[0]} > {widths[1]} px"
    results = axe.run(page)
    assert results.violations_count == 0, f"{page.url}: {results.generate_report()}"


def test_the_team_opens_the_stand_up_of_the_running_sprint(tmp_path: Path) -> None:
    chromium = _chromium()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    anchor = now.isoformat().replace("+00:00", "Z")  # the sandbox's quarter ends now
    with okrsync_serve(tmp_path, anchor=anchor, accounts=30, opportunities=80, activities=3200) as served:
        lead = served.token(name="Team lead", role="sales_ops")
        ids = apply_running(served.base_url, lead, ("acquisition", "pipeline-hygiene"), now.date())
        base, overview = served.base_url, f"{served.base_url}/dashboard/{ids['acquisition']}"
        api = loopback.get(
            f"{base}/api/v1/mappings/{ids['acquisition']}/standup", headers={"Authorization": f"Bearer {lead}"}
        )
        assert api.status_code == 200, api.text  # the third sprint of the moved example runs today
        body = api.json()
        logged = sum(len(m["logged"]) for m in body["members"])
        blocked = sum(len(m["blocked"]) for m in body["members"])
        assert logged > 0 and blocked > 0, body

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1024, "height": 900}, locale="en-US")
                axe = Axe()
                page.goto(f"{base}/dashboard/login?next=/dashboard/{ids['acquisition']}")
                page.get_by_label("API token").fill(lead)
                page.get_by_role("button", name="Log in").click()
                expect(page).to_have_url(overview)
                page.get_by_role("link", name=re.compile("Daily stand-up")).click()
                expect(page).to_have_url(f"{overview}/standup")
                expect(page.get_by_role("heading", name="Daily stand-up: Acquisition sprint 3")).to_be_visible()
                expect(page.get_by_text(f"since {body['since']}, the last working day")).to_be_visible()
                expect(page.locator("article.member-card")).to_have_count(len(body["members"]))
                expect(page.locator("ul.logged > li")).to_have_count(logged)
                expect(page.locator("ul.logged > li").first).to_contain_text("→")
                expect(page.locator("svg.burn-down polyline.actual")).to_have_count(1)
                expect(page.locator("svg.burn-down line.ideal")).to_have_count(1)
                points = page.locator("svg.burn-down polyline.actual").get_attribute("points") or ""
                assert len(points.split()) == len(body["burn_down"]) + 1
                expect(page.locator("ul.blocked > li").first).to_be_visible()
                _fits_and_is_accessible(page, axe)
                _shot(page, "running-sprint")

                page.get_by_role("link", name="Projector view").click()
                expect(page.locator(".standup.projector")).to_be_visible()
                size = page.evaluate("parseFloat(getComputedStyle(document.querySelector('.standup h1')).fontSize)")
                assert size >= 32, size  # large type for the back of the room
                _fits_and_is_accessible(page, axe)
                _shot(page, "projector")

                page.get_by_role("link", name="DE", exact=True).click()
                expect(page.locator("html")).to_have_attribute("lang", "de")
                expect(page.get_by_text(f"seit {body['since']}, dem letzten Arbeitstag")).to_be_visible()
                expect(page.get_by_role("heading", name=re.compile("Blockiert oder überfällig")).first).to_be_visible()
                _shot(page, "projector-de")
            finally:
                browser.close()
