"""The dashboard as three people use it, in a real headless Chromium against a real ``okrsync serve --sandbox``:

- a rep (token with her CRM e-mail) sees "You" and her opportunities with problems on the first screen and filters
  the hygiene list to hers;
- a KAM records an assessment in the key-accounts grid and sees the account's score move;
- the team lead records the check-in with a manual NPS value and corrects it the same day;

and every page, at 1024 px (a projector) and 390 px (a phone), has no horizontal scroll (``scrollWidth``), passes
axe-core with 0 violations, and starts with a skip link. Screenshots go to ``$OKRSYNC_ARTIFACTS/screenshots``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect, sync_playwright

from tests.browser.test_dashboard_browser import CHROMIUM_ARGS, SCREENSHOTS, _chromium, apply_running
from tests.service.dashboard.english import ENGLISH_HYGIENE
from tests.service.sidecar_process import okrsync_serve

pytestmark = pytest.mark.slow  # drives Chromium against `okrsync serve` in a subprocess

REP_EMAIL = "mia.vogel@sandbox.okrsync.dev"  # an account executive of the acquisition team
KAM_EMAIL = "katrin.lindqvist@sandbox.okrsync.dev"
WIDTHS = (1024, 390)


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"people-{name}.png"), full_page=True)


def _log_in(page: Page, base: str, token: str, path: str) -> None:
    page.goto(f"{base}/dashboard/login?next={path}")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}{path}")


def _fits_and_is_accessible(page: Page, axe: Axe, url: str, name: str) -> None:
    """At each width: nothing wider than the window, 0 axe violations; the first focus is the skip link."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(url)
        widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1], f"{url} at {width} px scrolls sideways: {widths[0]} > {widths[1]} px"
        _shot(page, f"{name}-{width}")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_class("skip-link")
    results = axe.run(page)
    assert results.violations_count == 0, f"{url}: {results.generate_report()}"


def test_a_rep_a_kam_and_the_lead_each_find_their_part(tmp_path: Path) -> None:
    chromium = _chromium()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    anchor = now.isoformat().replace("+00:00", "Z")
    with okrsync_serve(tmp_path, anchor=anchor, accounts=30, opportunities=80, activities=3200) as served:
        lead = served.token(name="Team lead", role="sales_ops")
        rep = served.token(name="Mia Vogel", role="rep", email=REP_EMAIL)
        kam = served.token(name="Katrin Lindqvist", role="kam", email=KAM_EMAIL)
        ids = apply_running(served.base_url, lead, ("acquisition", "pipeline-hygiene", "customer-care"), now.date())
        base = served.base_url
        acquisition, hygiene, care = (ids[k] for k in ("acquisition", "pipeline-hygiene", "customer-care"))

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            axe = Axe()
            try:
                # -- the rep ------------------------------------------------------------------------------------
                page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-US")
                _log_in(page, base, rep, f"/dashboard/{acquisition}")
                mine = page.locator("section.my-work")
                expect(mine.get_by_role("heading", name="My work")).to_be_in_viewport()
                problems = mine.locator("ul.my-problems > li")
                expect(problems.first).to_be_in_viewport()  # her problem opportunities on the first screen
                expect(page.locator(".member.you").first).to_contain_text("Mia Vogel")
                expect(page.locator(".you-tag").first).to_have_text("You")
                expect(page.get_by_text("See the check-in →")).to_be_visible()
                _shot(page, "rep-overview")
                mine.get_by_role("link", name="All my opportunities with problems").click()
                expect(page).to_have_url(re.compile(rf"/dashboard/{hygiene}/hygiene\?owner=me"))
                items = page.locator("ol.opportunities > li p.opportunity")
                assert items.count() >= 1
                assert all(" · Mia Vogel · " in text for text in items.all_inner_texts())
                expect(page.get_by_role("link", name=re.compile(r"Only mine \(\d+\)"))).to_have_attribute(
                    "aria-current", "true"
                )
                _shot(page, "rep-hygiene-mine")
                rep_pages = (
                    (f"{base}/dashboard/{acquisition}", "rep-overview"),
                    (f"{base}/dashboard/{hygiene}/hygiene?owner=me", "rep-hygiene"),
                    (f"{base}/dashboard/{acquisition}/kr/discovery-meetings?owner=me", "rep-kr"),
                )
                for url, name in rep_pages:
                    _fits_and_is_accessible(page, axe, url, name)
                page.goto(f"{base}/dashboard/{hygiene}/hygiene?lang=de")  # German: not one English hygiene sentence
                expect(page.get_by_role("heading", name="Opportunities mit den meisten Problemen")).to_be_visible()
                german = page.locator("main").inner_text()
                assert [phrase for phrase in ENGLISH_HYGIENE if phrase in german] == []
                assert "Kein nächster Schritt" in german or "Tage zurück" in german
                _shot(page, "rep-hygiene-de")
                page.close()

                # -- the KAM ------------------------------------------------------------------------------------
                page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-US")
                _log_in(page, base, kam, f"/dashboard/{care}/kam")
                page.get_by_role("link", name=re.compile(r"My key accounts \(\d+\)")).click()
                row = page.locator("table.kam tbody tr").first
                score = row.locator("td.num")
                before = score.inner_text()
                row.locator("details.assess summary").click()
                form = row.locator("form.assess-form")
                current = form.locator("input[name=status]:checked")
                choice = "partly" if current.count() and current.get_attribute("value") == "met" else "met"
                form.locator(f"input[name=status][value={choice}]").check()
                form.get_by_label("Comment").fill("Board dinner in May; CFO joins the QBR")
                form.get_by_label("Evidence link (https://…)").fill("https://wiki.example/board-notes")
                form.get_by_role("button", name="Record assessment").click()
                expect(page.get_by_text("Assessment recorded; the account's score is recomputed.")).to_be_visible()
                row = page.locator("table.kam tbody tr.you").filter(has_text="Board dinner in May")
                expect(row).to_have_count(1)
                expect(row.get_by_text("Katrin Lindqvist, ")).to_be_visible()  # who and when
                assert row.locator("td.num").inner_text() != before, "the account's score moved"
                _shot(page, "kam-assessed")
                _fits_and_is_accessible(page, axe, f"{base}/dashboard/{care}/kam?mine=1", "kam-grid")
                page.close()

                # -- the team lead ------------------------------------------------------------------------------
                page = browser.new_page(viewport={"width": 1024, "height": 768}, locale="en-US")
                _log_in(page, base, lead, f"/dashboard/{care}/check-in")
                page.get_by_label("New value: NPS of 40").fill("35")
                page.get_by_label("Confidence: NPS of 40").select_option("8")
                page.get_by_label("General note").fill("Survey of the quarter:\n41 answers")
                page.get_by_role("button", name="Record check-in").click()
                expect(page.get_by_text("Check-in recorded.")).to_be_visible()
                recorded = page.locator("article.past.highlight")
                expect(recorded.get_by_text("8/10")).to_be_visible()
                expect(recorded.get_by_role("cell", name="35", exact=True)).to_be_visible()
                _shot(page, "lead-check-in")
                recorded.get_by_role("link", name="Correct this check-in").click()
                page.get_by_label("Confidence: NPS of 40").select_option("6")
                page.get_by_role("button", name="Record correction").click()
                corrected = page.locator("article.past.highlight")
                expect(corrected.get_by_text("6/10")).to_be_visible()
                corrected.get_by_text("Earlier version (1)").click()
                expect(corrected.locator("details.earlier")).to_contain_text("8/10")
                _shot(page, "lead-corrected")
                for url, name in ((f"{base}/dashboard/{care}/check-in", "lead-check-in"),
                                  (f"{base}/dashboard/{acquisition}/check-in", "lead-check-in-acquisition"),
                                  (f"{base}/dashboard/{acquisition}", "lead-overview"),
                                  (f"{base}/dashboard/{acquisition}/sprints", "lead-sprints"),
                                  (f"{base}/dashboard/{hygiene}/hygiene", "lead-hygiene"),
                                  (f"{base}/dashboard/{acquisition}/kr/new-pipeline", "lead-kr")):  # fmt: skip
                    _fits_and_is_accessible(page, axe, url, name)
                page.close()
            finally:
                browser.close()
