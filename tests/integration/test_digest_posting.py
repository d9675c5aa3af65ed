"""Posting digests: once per network and period across restarts and replicas, on the
schedule, and whole in Slack even when long."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import PlanPulse, Runner, digest_poster
from bot.services.delivery import OutboxWorker
from bot.settings import Settings
from handlers.files.importing import import_plan
from handlers.slack.transport import SlackTransport
from storage.digest_posts import DigestRepository
from storage.models import DigestRow, NetworkRow, OutboxRow, PlanRow
from tests.conftest import FIXTURES, Clock, import_small_plan
from tests.fake_slack import FakeSlack

PLANS = FIXTURES / "plans"
FRIDAY = datetime(2026, 11, 27, 12, 5, tzinfo=UTC)  # after the default 12:00 digest time


def settings_for(db_url: str, data: Path, **extra: Any) -> Settings:
    return Settings(_env_file=None, DATABASE_URL=db_url, PULSE_DATA_DIR=data, **extra)


@pytest.fixture
async def pulse(db_url: str, tmp_path: Path) -> AsyncIterator[PlanPulse]:
    app = PlanPulse(settings_for(db_url, tmp_path / "var"), clock=Clock(FRIDAY))
    await app.migrate()
    await import_small_plan(app.sessions, now=FRIDAY)
    yield app
    await app.close()


async def count(pulse: PlanPulse, model: type[object]) -> int:
    async with pulse.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_manual_post_is_once_per_network_and_period(pulse: PlanPulse) -> None:
    """`pulse digest --post` enqueues one email per coordinator per network; posting the same
    period again sends nothing more."""
    poster = digest_poster(pulse)
    first = await poster.post("small", now=FRIDAY)
    assert {(p.network, p.posted, p.messages) for p in first} == {
        ("oversight", True, 2),
        ("early-help", True, 1),
        ("workforce", True, 1),
    }
    again = await poster.post("small", now=FRIDAY)
    assert not any(p.posted for p in again)
    assert await count(pulse, DigestRow) == 3
    assert await count(pulse, OutboxRow) == 4


async def test_two_replicas_posting_at_once_post_once(db_url: str, pulse: PlanPulse) -> None:
    """Two replicas on separate connections posting the same period at the same moment
    record one digest per network and enqueue each message once."""
    other = PlanPulse(settings_for(db_url, pulse.settings.data_dir), clock=Clock(FRIDAY))
    try:
        results = await asyncio.gather(
            digest_poster(pulse).post("small", now=FRIDAY),
            digest_poster(other).post("small", now=FRIDAY),
        )
    finally:
        await other.close()
    posted = [p for batch in results for p in batch if p.posted]
    assert sorted(p.network for p in posted) == ["early-help", "oversight", "workforce"]
    assert await count(pulse, DigestRow) == 3
    assert await count(pulse, OutboxRow) == 4


async def test_scheduled_digest_goes_out_once_on_friday_across_restarts(
    pulse: PlanPulse,
) -> None:
    """The first run only notes the schedule; after Friday 12:00 each network's digest of
    that week is delivered to its coordinators once, however often the bot restarts."""
    clock = pulse.clock
    assert isinstance(clock, Clock)
    clock.now = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    assert (await Runner(pulse).run_once()).digests == 0
    clock.now = FRIDAY
    assert (await Runner(pulse).run_once()).digests == 3
    assert (await Runner(pulse).run_once()).digests == 0
    files = sorted((pulse.settings.mail_dir / "outbox").glob("*-digest.eml"))
    assert len(files) == 4
    messages = [message_from_bytes(f.read_bytes(), policy=default) for f in files]
    assert all("week of 23 November 2026" in str(m["Subject"]) for m in messages)
    workforce = next(m for m in messages if "wf.lead" in str(m["To"]))
    html = workforce.get_body(preferencelist=("html",))
    assert html is not None
    assert "Exit interview analysis" in html.get_content()
    assert "<script>" not in html.get_content()


async def test_a_200_item_digest_reaches_slack_whole(
    db_url: str,
    tmp_path: Path,
    fake_slack: FakeSlack,
) -> None:
    """A digest of 200 overdue milestones is posted to its channel as a parent message and
    thread replies, within Slack's limits, with every milestone in it exactly once."""
    rows = ["Priority,Ref,Key actions,Lead(s),Timescales,Network(s)"]
    rows += [f"1,1.{i},Action number {i} <!channel>,AW,31/01/26,team" for i in range(1, 201)]
    (tmp_path / "big.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "nets.csv").write_text(
        "key,name,slack_channel,coordinators,all_actions\nteam,Team,C0TEAM,,false\n",
        encoding="utf-8",
    )
    settings = settings_for(
        db_url,
        tmp_path / "var",
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET="s" * 32,
        SLACK_API_URL=fake_slack.base_url,
        PULSE_SECRET_KEY="Vq3xN8r2LmT7pZs1Kd6Wf0Hj4Yc9Ba5E",
    )
    app = PlanPulse(settings, clock=Clock(FRIDAY))
    try:
        await app.migrate()
        await import_plan(
            app.sessions,
            tmp_path / "big.csv",
            now=FRIDAY,
            plan_key="big",
            people_path=PLANS / "small-people.csv",
            networks_path=tmp_path / "nets.csv",
        )
        await digest_poster(app).post("big", now=FRIDAY)

        async def no_wait(_: float) -> None:
            return None

        worker = OutboxWorker(
            app.sessions,
            {"slack": SlackTransport(client=fake_slack.client(), sleep=no_wait)},
            clock=Clock(FRIDAY),
        )
        assert await worker.drain() == 1
    finally:
        await app.close()
    posts = fake_slack.messages("C0TEAM")
    assert len(posts) > 1
    parent = posts[0]
    assert all(p.get("thread_ts") == parent["ts"] for p in posts[1:])
    text = "\n".join(str(p.get("blocks")) + str(p.get("text")) for p in posts)
    for i in range(1, 201):
        assert text.count(f"Action number {i} ") >= 1
    assert "<!channel>" not in text
    for post in posts:
        assert len(post.get("blocks") or []) <= 50


async def test_a_digest_shows_the_trend_of_the_networks_last_six_posted_digests(
    pulse: PlanPulse,
) -> None:
    """After eight weekly postings to one network, its digest draws the last six, oldest
    first, and not the one of its own week; a network never posted to has no trend."""
    async with pulse.sessions() as session, session.begin():
        plan_id = await session.scalar(select(PlanRow.id).where(PlanRow.key == "small"))
        network_id = await session.scalar(
            select(NetworkRow.id).where(NetworkRow.key == "early-help")
        )
        assert plan_id is not None
        assert network_id is not None
        digests = DigestRepository(session)
        for week in range(40, 49):  # 2026-W40 .. W48, the last being the digest's own week
            await digests.create(
                plan_id=plan_id,
                network_id=network_id,
                period=f"2026-W{week}",
                as_of=date(2026, 11, 27),
                mix={"1": week, "unrated": 1},
                now=FRIDAY,
            )
    digests_now = {d.network: d for d in await pulse.digests("small", as_of=date(2026, 11, 27))}
    trend = digests_now["early-help"].trend
    assert [period for period, _ in trend] == [f"2026-W{w}" for w in range(42, 48)]
    assert trend[0][1] == {"1": 42, "unrated": 1}
    assert digests_now["workforce"].trend == ()
