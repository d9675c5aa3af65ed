"""The HTML digest in a real browser (issue 17, item 4): headless Chromium at a phone's
375 px (and 320 px) and a desktop's 1280 px, with no horizontal scrolling, and axe-core with
no serious or critical violation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from digests.content import Digest, DigestSection
from digests.html import render_html
from tests.integration.test_web_browser import fits, serious_violations
from tests.unit.test_digest_renderers import golden_digest, item

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

LONG_LINK = "https://evidence.example.org/" + "board-papers/" * 12 + "report.pdf"


def crowded_digest() -> Digest:
    """The golden digest with a note and an achieved milestone's evidence each holding one
    long unbroken web address, a very long title and a long name: what breaks a fixed-width
    layout on a phone."""
    digest = golden_digest()
    long_one = item(
        "4.1",
        title="Develop and publish a joint commissioning strategy for short breaks " * 3,
        note=f"Evidence at {LONG_LINK}",
        leads=("LN",),
        days_overdue=2,
        priority=3,
    )
    proven = item("4.2", rating=1, priority=3)._replace(evidence=f"Board audit: {LONG_LINK}")
    sections = dict(digest.sections)
    sections[DigestSection.OVERDUE] = (*sections[DigestSection.OVERDUE], long_one)
    sections[DigestSection.ACHIEVED] = (*sections[DigestSection.ACHIEVED], proven)
    names = {**digest.names, "LN": "Alexandra Featherstonehaugh-Montgomery-Smythe"}
    return replace(digest, sections=sections, names=names)


@pytest.mark.parametrize("width", [320, 375, 1280])
def test_the_html_digest_reflows_and_passes_axe(
    browser: WebDriver, axe_source: str, tmp_path: Path, width: int
) -> None:
    """The digest email opened in a browser needs no horizontal scrolling at 320, 375 and
    1280 px, names its people, flags achieved without evidence and shows evidence, and has
    no serious or critical axe-core violation."""
    page = tmp_path / "digest.html"
    page.write_text(render_html(crowded_digest()), encoding="utf-8")
    browser.get(page.as_uri())
    assert fits(browser, width), f"the digest scrolls sideways at {width} px"
    assert serious_violations(browser, axe_source) == []
    text = browser.find_element("tag name", "body").text
    assert "Alexandra Featherstonehaugh-Montgomery-Smythe" in text
    assert "week of 10 May 2027" in text
    assert "1 achieved without evidence" in text
    assert "rated 1 (Achieved) · achieved, no evidence" in text
    assert f"Evidence:\nBoard audit: {LONG_LINK}" in text
