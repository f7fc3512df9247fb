"""The dashboard in a real headless Chromium against a real ``okrsync serve --sandbox``: a team lead logs in with a
token, reads the overview, a key result's burn-up and the pipeline hygiene, runs the weekly check-in through the
form (a note with HTML in it stays text), looks at the sprint review and switches to German. A full-page screenshot
of every page goes to ``$OKRSYNC_ARTIFACTS/screenshots`` (default ``build/artifacts``)."""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Page, expect, sync_playwright

from tests import loopback
from tests.service.sidecar_process import okrsync_serve
from tests.service.writeback.world import EXAMPLES

pytestmark = pytest.mark.slow  # drives Chromium against `okrsync serve` in a subprocess

# no internet here: without these Chromium keeps trying to reach Google's services
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
NOTE = "<script>alert(1)</script> <img src=x onerror=alert(1)> trade fair next week"
SCREENSHOTS = Path(os.environ.get("OKRSYNC_ARTIFACTS", "build/artifacts")) / "screenshots"


def _chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("Chromium is not installed: apt-get install chromium (the browser tests drive the system's)")
    return path


def _running_cycle(example: str, today: date) -> str:
    """The example file moved in time so that its cycle ends a week from today (check-ins need a running cycle);
    its sprints move with it: two have ended, the third is running."""
    data = yaml.safe_load((EXAMPLES / f"{example}.yaml").read_text())
    shift = today + timedelta(days=7) - data["cycle"]["end"]
    for period in [data["cycle"], *data.get("sprints", [])]:
        period["start"] += shift
        period["end"] += shift
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def apply_running(
    base_url: str, token: str, examples: tuple[str, ...], today: date, *, times: int = 1
) -> dict[str, int]:
    """Apply each example moved to a running cycle through the API (``times`` applies: that many computations,
    points on the burn-up); returns example -> mapping id."""
    ids = {}
    for example in examples:
        body = {"yaml": _running_cycle(example, today), "connection": "salesforce/sandbox"}
        for _computation in range(times):
            applied = loopback.post(
                f"{base_url}/api/v1/mappings/apply", json=body, timeout=60, headers={"Authorization": f"Bearer {token}"}
            )
            assert applied.status_code == 200, applied.text
        ids[example] = applied.json()["mapping"]["id"]
    return ids


def _screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"dashboard-{name}.png"), full_page=True)


def test_a_team_lead_runs_the_weekly_check_in_in_the_browser(tmp_path: Path) -> None:
    chromium = _chromium()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    anchor = now.isoformat().replace("+00:00", "Z")  # the sandbox's quarter ends now
    with okrsync_serve(tmp_path, anchor=anchor, accounts=30, opportunities=80, activities=3200) as served:
        lead = served.token(name="Team lead", role="sales_ops")
        ids = apply_running(served.base_url, lead, ("acquisition", "pipeline-hygiene"), now.date(), times=2)
        base, overview = served.base_url, f"{served.base_url}/dashboard/{ids['acquisition']}"

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-US")
                dialogs: list[str] = []
                page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

                page.goto(overview)  # not logged in: the login page, and back here after it
                expect(page).to_have_url(re.compile(r"/dashboard/login\?next=%2Fdashboard%2F\d+"))
                expect(page.get_by_text("Log in with an API token to open this page.")).to_be_visible()
                _screenshot(page, "login")
                page.get_by_label("API token").fill(lead)
                page.get_by_role("button", name="Log in").click()
                expect(page).to_have_url(overview)
                expect(page.get_by_role("heading", name="We open doors to new customers")).to_be_visible()
                expect(page.locator(".bar .fill").first).to_be_visible()
                expect(page.get_by_role("heading", name="Current sprint")).to_be_visible()
                assert lead not in page.content()
                _screenshot(page, "overview")

                page.get_by_role("link", name="150 meetings with prospects").click()
                expect(page.locator("svg.burn-up polyline.actual")).to_have_count(1)
                expect(page.locator("svg.burn-up line.expected")).to_have_count(1)
                expect(page.locator("svg.burn-up")).to_be_visible()
                assert len((page.locator("svg.burn-up polyline.actual").get_attribute("points") or "").split()) >= 2
                expect(page.get_by_role("heading", name="Records that counted")).to_be_visible()
                _screenshot(page, "key-result")

                page.goto(f"{base}/dashboard/{ids['pipeline-hygiene']}/hygiene")
                expect(page.get_by_role("heading", name="Opportunities with the most problems")).to_be_visible()
                expect(page.locator("ol.opportunities > li").first).to_be_visible()
                expect(page.get_by_role("cell", name="No next step", exact=True)).to_be_visible()
                _screenshot(page, "hygiene")

                page.goto(f"{overview}/check-in")
                expect(page.get_by_role("heading", name="Weekly check-in")).to_be_visible()
                page.get_by_label("Anna Berger").check()
                page.get_by_label("David Garcia").check()
                page.get_by_label("Confidence: 150 meetings with prospects").select_option("7")
                page.get_by_label("Confidence: €6M new pipeline created").select_option("4")
                page.get_by_label("Note: 150 meetings with prospects").fill(NOTE)
                page.get_by_label("General note").fill("Good week <b>overall</b>")
                page.get_by_role("button", name="Record check-in").click()
                expect(page.get_by_text("Check-in recorded.")).to_be_visible()
                recorded = page.locator("article.past.highlight")
                expect(recorded.get_by_text(NOTE)).to_be_visible()  # the HTML is shown as text
                expect(recorded.get_by_text("Good week <b>overall</b>")).to_be_visible()
                expect(recorded.get_by_text("Anna Berger, David Garcia")).to_be_visible()
                expect(recorded.get_by_text("7/10")).to_be_visible()
                assert page.locator('script:text("alert")').count() == 0 and page.locator("img").count() == 0
                _screenshot(page, "check-in")

                page.get_by_role("navigation").get_by_role("link", name="Sprints").click()
                review = page.locator("section.sprint")
                expect(review.get_by_role("heading", name="Review")).to_be_visible()
                expect(review.locator("dt").get_by_text("Committed", exact=True)).to_be_visible()
                expect(review.locator("dt").get_by_text("Achieved", exact=True)).to_be_visible()
                expect(page.get_by_role("heading", name="Forecast accuracy over all sprints")).to_be_visible()
                _screenshot(page, "sprints")

                page.get_by_role("link", name="DE", exact=True).click()
                expect(page.locator("html")).to_have_attribute("lang", "de")
                expect(review.locator("dt").get_by_text("Zugesagt", exact=True)).to_be_visible()
                expect(page.get_by_role("heading", name="Prognosegenauigkeit über alle Sprints")).to_be_visible()
                page.get_by_role("link", name="Überblick").click()  # the language stays (cookie)
                expect(page.get_by_role("heading", name="Aktueller Sprint")).to_be_visible()
                expect(page.get_by_role("columnheader", name="Fortschritt").first).to_be_visible()
                _screenshot(page, "overview-de")
                assert dialogs == []  # no injected script ever ran
            finally:
                browser.close()
