"""The update page in a real browser (issue 14, items 2 and 5): headless Chromium, driven by
label as a lead would, on SQLite and PostgreSQL. Filling and submitting, the note rule's
error and its fix, a keyboard alone, 320 px without horizontal scrolling, and axe-core with
no serious or critical violation on every page."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.domain.model import Source
from storage.evidence import EvidenceRepository
from storage.models import OutboxRow, UpdateRow
from tests.integration.test_delivery import count
from tests.web import Site

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

ALEX = "alex.walker"


def by_label(driver: WebDriver, text: str) -> WebElement:
    """The control a label with exactly this text names."""
    from selenium.webdriver.common.by import By

    return driver.find_element(By.XPATH, f"//*[@id=//label[normalize-space()='{text}']/@for]")


def click_button(driver: WebDriver, text: str) -> None:
    """Press the button and wait until the page it submits to has loaded."""
    from selenium.webdriver.common.by import By

    with next_page(driver):
        driver.find_element(By.XPATH, f"//button[normalize-space()='{text}']").click()


@contextmanager
def next_page(driver: WebDriver) -> Iterator[None]:
    """Wait, after the block, until the page shown has been replaced and has loaded."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    old = driver.find_element(By.TAG_NAME, "html")
    yield

    def replaced(_: WebDriver) -> bool:
        # Chromium reports the old page's node as stale, or (while the new document is
        # being swapped in) as not belonging to the document: either way it is gone.
        try:
            old.is_enabled()
        except WebDriverException:
            return True
        return False

    wait = WebDriverWait(driver, 10)
    wait.until(replaced)
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")


def heading(driver: WebDriver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "h1").text


def serious_violations(driver: WebDriver, axe: str) -> list[str]:
    """What axe-core finds serious or critical on the page shown."""
    driver.execute_script(axe)
    result: dict[str, Any] = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa',"
        " 'best-practice']}).then(r => done(r), e => done({violations: [{id: String(e),"
        " impact: 'critical', nodes: []}]}));"
    )
    return [
        f"{v['id']}: {[n.get('target') for n in v['nodes']]}"
        for v in result["violations"]
        if v.get("impact") in ("serious", "critical")
    ]


def fits(driver: WebDriver, width: int = 320) -> bool:
    """Whether the page shown at `width` CSS pixels needs no horizontal scrolling."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": True},
    )
    try:
        scroll = driver.execute_script("return document.documentElement.scrollWidth")
        return int(scroll) <= width
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


async def web_updates(site: Site) -> int:
    return await count(site.pulse, UpdateRow, UpdateRow.source == Source.WEB.value)


async def test_a_lead_fills_in_and_submits_by_label(site: Site, browser: WebDriver) -> None:
    """Opening the prompt's link, picking ratings and writing a note by their labels, then
    Submit, records both milestones and shows them; the form opens again with them."""
    link = site.link_for(ALEX)

    def fill() -> str:
        browser.get(link)
        by_label(browser, "1 – Achieved").click()  # the first milestone's first rating
        by_label(browser, "Note for 1.1").send_keys("Blueprint agreed with partners")
        rating = browser.find_element("id", "m2-rating-3")
        browser.execute_script("arguments[0].scrollIntoView()", rating)
        by_label(browser, "I need support with 2.3").click()
        rating.click()
        by_label(browser, "Note for 2.3").send_keys("Waiting on HR data")
        click_button(browser, "Submit update")
        return heading(browser) + "\n" + browser.page_source

    shown = await asyncio.to_thread(fill)
    assert shown.startswith("Thank you: your update is recorded")
    assert "Blueprint agreed with partners" in shown
    assert await web_updates(site) == 2
    assert await count(site.pulse, OutboxRow, OutboxRow.kind == "confirmation") == 1

    def reopen() -> tuple[bool, str]:
        browser.get(link)
        return (
            browser.find_element("id", "m1-rating-1").is_selected(),
            by_label(browser, "Note for 1.1").get_attribute("value") or "",
        )

    assert await asyncio.to_thread(reopen) == (True, "Blueprint agreed with partners")


async def test_the_note_rule_error_is_shown_by_its_field_and_fixed(
    site: Site, browser: WebDriver
) -> None:
    """Rating the overdue milestone 4 without a note shows the error summary, linked to the
    note, and records nothing; writing the note and submitting again records it."""
    link = site.link_for(ALEX)

    def wrong() -> tuple[str, str, str]:
        browser.get(link)
        by_label(browser, "4 – Not achieved / not started").click()
        click_button(browser, "Submit update")
        from selenium.webdriver.common.by import By

        summary = browser.find_element(By.CSS_SELECTOR, ".error-summary a")
        summary.click()
        active = browser.switch_to.active_element.get_attribute("id") or ""
        return browser.title, summary.text, active

    title, error, focused = await asyncio.to_thread(wrong)
    assert title.startswith("Error: ")
    assert "a note is required" in error.lower()
    assert focused == "m1-note"
    assert await web_updates(site) == 0

    def fix() -> str:
        by_label(browser, "Note for 1.1").send_keys("Partner sign-off slipped to January")
        click_button(browser, "Submit update")
        return heading(browser)

    assert await asyncio.to_thread(fix) == "Thank you: your update is recorded"
    assert await web_updates(site) == 1


EVIDENCE_11 = "What changed for children and families? (optional, with a rating of 1) – 1.1"


async def test_evidence_with_another_rating_is_refused_by_its_field_then_recorded(
    site: Site, browser: WebDriver, axe_source: str
) -> None:
    """Evidence written by its label with a rating of 2 is refused beside the evidence field
    and in the summary linked to it, recording nothing; choosing 1 records it, the done page
    lists it, and the form opens again with it. Both pages fit 320 px and pass axe-core."""
    link = site.link_for(ALEX)
    evidence = "Waiting times down from 12 to 6 weeks <see the survey>"

    def wrong() -> tuple[str, str, str, str, tuple[bool, list[str]]]:
        from selenium.webdriver.common.by import By

        browser.get(link)
        by_label(browser, "2 – Largely achieved, some tasks outstanding").click()
        by_label(browser, "Note for 1.1").send_keys("Blueprint agreed")
        by_label(browser, EVIDENCE_11).send_keys(evidence)
        click_button(browser, "Submit update")
        checked = (fits(browser), serious_violations(browser, axe_source))
        field_error = browser.find_element(By.ID, "m1-evidence-error").text
        described = by_label(browser, EVIDENCE_11).get_attribute("aria-describedby") or ""
        summary = browser.find_element(By.CSS_SELECTOR, ".error-summary a")
        summary.click()
        active = browser.switch_to.active_element.get_attribute("id") or ""
        return field_error, described, summary.text, active, checked

    field_error, described, summary, focused, checked = await asyncio.to_thread(wrong)
    assert "rating of 1" in field_error
    assert described == "m1-evidence-hint m1-evidence-error"
    assert "rating of 1" in summary
    assert focused == "m1-evidence"
    assert checked == (True, [])
    assert await web_updates(site) == 0

    def fix() -> tuple[str, str, tuple[bool, list[str]]]:
        by_label(browser, "1 – Achieved").click()
        click_button(browser, "Submit update")
        return (
            heading(browser),
            browser.page_source,
            (
                fits(browser),
                serious_violations(browser, axe_source),
            ),
        )

    shown, page, checked = await asyncio.to_thread(fix)
    assert shown == "Thank you: your update is recorded"
    assert "Waiting times down from 12 to 6 weeks &lt;see the survey&gt;" in page
    assert checked == (True, [])
    async with site.pulse.sessions() as session:
        found = await EvidenceRepository(session).of_plan("small")
    assert {ref: e.text for ref, e in found.items()} == {"1.1": evidence}

    def reopen() -> str:
        browser.get(link)
        return by_label(browser, EVIDENCE_11).get_attribute("value") or ""

    assert await asyncio.to_thread(reopen) == evidence


async def test_a_keyboard_alone_submits_the_form(site: Site, browser: WebDriver) -> None:
    """Tab to the first rating, arrow to 2, Tab to the note, type, Tab to Submit, Enter:
    recorded."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    link = site.link_for(ALEX)

    def keys() -> str:
        browser.get(link)

        def active() -> str:
            element = browser.switch_to.active_element
            return element.get_attribute("id") or element.tag_name

        for _ in range(40):
            ActionChains(browser).send_keys(Keys.TAB).perform()
            if active() == "m1-rating-1":
                break
        ActionChains(browser).send_keys(Keys.ARROW_DOWN).perform()  # moves to and picks 2
        ActionChains(browser).send_keys(Keys.TAB).perform()
        assert active() == "m1-note"
        ActionChains(browser).send_keys("Typed without a mouse").perform()
        for _ in range(80):
            ActionChains(browser).send_keys(Keys.TAB).perform()
            if browser.switch_to.active_element.text == "Submit update":
                break
        with next_page(browser):
            ActionChains(browser).send_keys(Keys.ENTER).perform()
        return heading(browser)

    assert await asyncio.to_thread(keys) == "Thank you: your update is recorded"
    async with site.pulse.sessions() as session:
        from sqlalchemy import select

        given = (
            await session.execute(
                select(UpdateRow.rating, UpdateRow.note).where(UpdateRow.source == "web")
            )
        ).all()
    assert [tuple(g) for g in given] == [(2, "Typed without a mouse")]


async def test_every_page_reflows_at_320px_and_passes_axe(
    site: Site, browser: WebDriver, axe_source: str
) -> None:
    """The form, the form with errors, the recorded page, the absence saved, and the page of
    a link that no longer works: no horizontal scrolling at 320 px, and no serious or
    critical axe-core violation."""
    link = site.link_for(ALEX)
    checked: dict[str, tuple[bool, list[str]]] = {}

    def check(name: str) -> None:
        checked[name] = (fits(browser), serious_violations(browser, axe_source))

    def visit() -> None:
        browser.get(link)
        check("form")
        by_label(browser, "4 – Not achieved / not started").click()
        by_label(browser, "Revised date for 1.1 (optional)").send_keys("not a date")
        click_button(browser, "Submit update")
        check("errors")
        by_label(browser, "Note for 1.1").send_keys("Held up by the partners' review")
        revised = by_label(browser, "Revised date for 1.1 (optional)")
        revised.clear()
        revised.send_keys("31/01/2027")
        click_button(browser, "Submit update")
        check("recorded")
        browser.get(link)
        by_label(browser, "Away until (leave empty if you are not away)").send_keys("31/12/2026")
        click_button(browser, "Save absence and delegate")
        check("absence")
        browser.get(link[:-43] + "Z" * 43)
        check("gone")
        browser.get(site.base + "/")
        check("home")

    await asyncio.to_thread(visit)
    assert checked == {
        name: (True, []) for name in ("form", "errors", "recorded", "absence", "gone", "home")
    }


async def test_an_expired_link_opens_only_the_plain_page(site: Site, browser: WebDriver) -> None:
    """After 14 days the prompt's link shows the page saying what to do, and no form."""
    link = site.link_for(ALEX)
    site.clock.now += timedelta(days=15)

    def open_() -> tuple[str, int]:
        browser.get(link)
        return heading(browser), len(browser.find_elements("tag name", "form"))

    assert await asyncio.to_thread(open_) == ("This link no longer works", 0)
