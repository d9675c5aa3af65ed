"""The coordinators' live view in a real browser (issue 14, item 4): headless Chromium on
SQLite and PostgreSQL. Filtering with the plain GET form, following a milestone to its
history, the charts' data tables, recording an answer on a lead's behalf by label, 320 px
without horizontal scrolling, and axe-core with no serious or critical violation."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from tests.integration.test_live_view import OVERSIGHT, view_link
from tests.integration.test_web_browser import (
    by_label,
    click_button,
    fits,
    heading,
    next_page,
    serious_violations,
)
from tests.web import Site

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver


async def test_a_coordinator_filters_opens_a_history_and_records_for_a_lead(
    site: Site, browser: WebDriver
) -> None:
    """Choosing a lead and Show lists only their milestones; a milestone's link opens its
    history; recording an answer for its lead by label shows it there, as a coordinator's."""
    link = await view_link(site, OVERSIGHT)

    def use() -> tuple[list[str], str, str]:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.select import Select

        browser.get(link)
        Select(by_label(browser, "Lead")).select_by_visible_text("Priya Bains")
        click_button(browser, "Show")
        shown = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "li.item h3")]
        with next_page(browser):
            browser.find_element(By.LINK_TEXT, "2.4 Recruitment microsite").click()
        title = heading(browser)
        by_label(browser, "3 – In progress").click()
        by_label(browser, "Note").send_keys("Spoke on Tuesday: copy being written")
        click_button(browser, "Record the answer")
        return shown, title, browser.page_source

    shown, title, page = await asyncio.to_thread(use)
    assert shown
    assert all(not s.startswith(("1.1", "2.3")) for s in shown)
    assert "2.4 Recruitment microsite" in shown
    assert title == "History of 2.4 Recruitment microsite"
    assert "Recorded for Priya Bains." in page
    assert "Spoke on Tuesday: copy being written" in page
    assert "<dd>coordinator</dd>" in page


async def test_the_charts_have_a_text_alternative_and_a_table(
    site: Site, browser: WebDriver
) -> None:
    """Each chart is an image with a title and a description, followed by a table of the
    same figures, one row per priority."""
    link = await view_link(site, OVERSIGHT)

    def read() -> tuple[str, list[str]]:
        from selenium.webdriver.common.by import By

        browser.get(link)
        svg = browser.find_element(By.CSS_SELECTOR, "svg.chart")
        names = svg.get_attribute("aria-labelledby") or ""
        rows = browser.find_elements(By.CSS_SELECTOR, "table.figures")[0].find_elements(
            By.CSS_SELECTOR, "tbody th"
        )
        return names, [r.text for r in rows]

    names, rows = await asyncio.to_thread(read)
    assert names == "mix-title mix-desc"
    assert rows == ["Early help", "Workforce"]


async def test_the_live_view_reflows_at_320px_and_passes_axe(
    site: Site, browser: WebDriver, axe_source: str
) -> None:
    """The view, the view with a filter error, a history and a history after recording:
    no horizontal scrolling at 320 px, and no serious or critical axe-core violation."""
    link = await view_link(site, OVERSIGHT)
    checked: dict[str, tuple[bool, list[str]]] = {}

    def check(name: str) -> None:
        checked[name] = (fits(browser), serious_violations(browser, axe_source))

    def visit() -> None:
        browser.get(link)
        check("view")
        browser.get(link + "?as_of=someday")
        check("errors")
        browser.get(link + "/m/2.3")
        check("history")
        by_label(browser, "2 – Largely achieved, some tasks outstanding").click()
        click_button(browser, "Record the answer")
        check("recorded")

    await asyncio.to_thread(visit)
    assert checked == {name: (True, []) for name in ("view", "errors", "history", "recorded")}
