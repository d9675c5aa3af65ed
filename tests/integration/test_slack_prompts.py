"""Prompts by Slack DM for people who prefer Slack, and email when the DM cannot go."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.services.delivery import OutboxWorker
from bot.services.prompting import Cycles
from handlers.email.local_transport import LocalMailTransport
from handlers.slack.transport import SlackTransport
from tests.conftest import FIXTURES, import_small_plan, running_pulse
from tests.fake_slack import FakeSlack, simple_prompt

PLANS = FIXTURES / "plans"
MONDAY = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)


async def no_wait(_: float) -> None:
    return None


async def test_slack_people_get_a_dm_and_a_failed_dm_falls_back_to_email(
    db_url: str,
    tmp_path: Path,
    fake_slack: FakeSlack,
) -> None:
    """People who prefer Slack are asked by DM; when Slack says a user is gone, their
    prompt goes by email instead, once; everyone else is asked by email."""
    people = (PLANS / "small-people.csv").read_text(encoding="utf-8")
    people = people.replace(
        "dana.cole@council.example,,slack", "dana.cole@council.example,U0DANA,slack"
    )
    people = people.replace(
        "priya.bains@council.example,,email", "priya.bains@council.example,U0PRIYA,slack"
    )
    (tmp_path / "people.csv").write_text(people, encoding="utf-8")
    async with running_pulse(db_url, tmp_path, lambda: MONDAY) as app:
        await import_small_plan(app.sessions, now=MONDAY, people_path=tmp_path / "people.csv")
        cycles = Cycles(
            app.sessions,
            mail_from="pulse@council.example",
            clock=lambda: MONDAY,
            slack_prompt=simple_prompt,
        )
        report = await cycles.start_cycle("small", now=MONDAY)
        assert report.created == 4
        fake_slack.fail_next("conversations.open", error="user_not_found", after=1)
        outbox = tmp_path / "outbox"
        worker = OutboxWorker(
            app.sessions,
            {
                "slack": SlackTransport(client=fake_slack.client(), sleep=no_wait),
                "email": LocalMailTransport(outbox),
            },
            clock=lambda: MONDAY,
        )
        await worker.drain()
    dms = [m for m in fake_slack.posted if "please rate" in str(m.get("text"))]
    assert len(dms) == 1
    emails = sorted(p.read_text(errors="replace") for p in outbox.glob("*.eml"))
    to = [next(line for line in e.splitlines() if line.startswith("To:")) for e in emails]
    assert len(emails) == 3  # AW and MC by choice, and the Slack person whose DM failed
    assert sum("priya.bains" in t or "dana.cole" in t for t in to) == 1
