"""The example Word plans (examples/*/plan.docx) are built from their sources and import
as they stand, with the people and networks files beside them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import PlanPulse
from handlers.files.importing import import_plan
from tests.conftest import EXAMPLES, REPO, running_pulse

NOW = datetime(2023, 1, 9, 9, 0, tzinfo=UTC)


@pytest.fixture
async def pulse(db_url: str, tmp_path: Path) -> AsyncIterator[PlanPulse]:
    async with running_pulse(db_url, tmp_path, lambda: NOW) as app:
        yield app


def test_the_committed_word_examples_match_their_build_script() -> None:
    """`examples/build_docx.py --check` finds every committed plan.docx up to date."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "build_docx.py"), "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("name", "actions", "milestones"),
    [
        ("wirral", 28, 77),
        ("west-midlands", 28, 31),
        ("nw-regional", 23, 71),
        ("nw-sector-led", 3, 7),
    ],
)
async def test_each_word_example_imports_as_it_stands(
    pulse: PlanPulse, name: str, actions: int, milestones: int
) -> None:
    """Each example plan.docx imports with no errors, every action led and dated."""
    folder = EXAMPLES / name
    report = await import_plan(
        pulse.sessions,
        folder / "plan.docx",
        now=NOW,
        plan_key=name,
        people_path=folder / "people.csv",
        networks_path=folder / "networks.csv",
    )
    assert report.actions_added == actions
    assert report.milestones_added == milestones
    tracked = await pulse.tracked(name)
    assert all(a.leads for a in tracked.actions)
    assert not [w for w in report.warnings if "has no lead" in w.reason]


async def test_wirral_networks_follow_their_workstreams(pulse: PlanPulse) -> None:
    """Wirral's networks file says which workstream each network follows; the Word plan,
    which has no Network(s) column, links each action to its workstream and the board."""
    folder = EXAMPLES / "wirral"
    await import_plan(
        pulse.sessions,
        folder / "plan.docx",
        now=NOW,
        plan_key="wirral",
        people_path=folder / "people.csv",
        networks_path=folder / "networks.csv",
    )
    tracked = await pulse.tracked("wirral")
    assert {a.networks for a in tracked.actions if a.ref.startswith("2.")} == {("ws2",)}
    assert tracked.network("board").all_actions
