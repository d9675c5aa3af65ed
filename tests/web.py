"""The update pages under test: the running application on a database of each kind, its one
web server on a free loopback port, this week's prompts sent as local mail files with their
links, and a headless Chromium (Debian's) to drive the pages. In CI (`CI=true`) a missing
Chromium, chromedriver or axe-core fails the tests, never skips them."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bot.app import PlanPulse, Runner
from bot.settings import Settings
from tests.conftest import Clock, import_small_plan
from tests.integration.test_delivery import outbox_files, read_eml
from tests.postgres import free_port

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

MONDAY = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
KEY = "Vq3xN8r2LmT7pZs1Kd6Wf0Hj4Yc9Ba5E"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
LINK = re.compile(r"http://127\.0\.0\.1:\d+/u/[A-Za-z0-9_-]{43}")


def missing(what: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} is not installed; CI must install it (scripts/setup --dev)")
    pytest.skip(f"{what} is not installed")


@dataclass
class Site:
    """The running bot with its web server, and the clock it tells the time by."""

    pulse: PlanPulse
    runner: Runner
    clock: Clock
    base: str

    def link_for(self, address: str, kind: str = "prompt") -> str:
        """The update-page link in the plain text of the latest `kind` email to `address`."""
        found = [
            m
            for m in map(read_eml, outbox_files(self.pulse))
            if address in str(m["To"]) and kind in str(m["Message-ID"])
        ]
        text = found[-1].get_body(preferencelist=("plain",))
        assert text is not None
        match = LINK.search(text.get_content())
        assert match is not None, "the prompt has no update link"
        return match.group(0)


async def running_site(db_url: str, data: Path, *, extra: dict[str, Any] | None = None) -> Site:
    """The small plan loaded, the web server started, Monday's prompts sent as files."""
    port = free_port()
    clock = Clock(MONDAY)
    settings = Settings(
        _env_file=None,
        DATABASE_URL=db_url,
        PULSE_DATA_DIR=data,
        PULSE_SECRET_KEY=KEY,
        HTTP_PORT=port,
        **(extra or {}),
    )
    pulse = PlanPulse(settings, clock=clock)
    await pulse.migrate()
    await import_small_plan(pulse.sessions, now=clock())
    runner = Runner(pulse)
    await runner.web.start()
    await runner.run_once()
    return Site(pulse, runner, clock, f"http://127.0.0.1:{port}")


async def stop_site(site: Site) -> None:
    await site.runner.web.stop()
    await site.pulse.close()


@pytest.fixture
async def site(db_url: str, tmp_path: Path) -> AsyncIterator[Site]:
    running = await running_site(db_url, tmp_path / "var")
    yield running
    await stop_site(running)


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    """One headless Chromium for the session (Debian's browser and driver)."""
    if not CHROMIUM.exists():
        missing("Chromium (Debian package chromium)")
    if not CHROMEDRIVER.exists():
        missing("chromedriver (Debian package chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1024,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core's script, from tests/node_modules (scripts/setup --dev)."""
    if not AXE.exists():
        missing("axe-core (npm ci --prefix tests, run by scripts/setup --dev)")
    return AXE.read_text(encoding="utf-8")
