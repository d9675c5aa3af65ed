"""Digests to Teams channels through Workflows webhooks, against a fake Workflows endpoint
on loopback (tests/fake_workflows.py) that checks every card with npm's Adaptive Cards
parser: posted whole and once, user text inert, throttling honoured, an unknown outcome
left to a person, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.app import PlanPulse, check, digest_poster
from bot.domain.errors import ImportFailed
from bot.services.delivery import OutboxWorker, outbox_problems
from bot.services.records import Records
from bot.settings import Settings
from bot.teams import workflows_transport
from handlers.files.importing import import_plan
from storage.models import NetworkRow, OutboxRow
from storage.outbox import OutboxRepository
from tests.conftest import FIXTURES, Clock
from tests.fake_workflows import SIGNATURE, FakeWorkflows, running_workflows

PLANS = FIXTURES / "plans"
FRIDAY = datetime(2026, 11, 27, 12, 5, tzinfo=UTC)
NOTE = (
    "<at>Alex Walker</at> **urgent** [click here](https://evil.example/x) _now_ "
    "{{DATE(2026-11-27T12:00:00Z, SHORT)}} see www.evil.example"
)


@dataclass
class Timing:
    """The transport's clock and sleep, on the test's clock: a sleep moves it on."""

    clock: Clock
    slept: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.clock.now.timestamp()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.now += timedelta(seconds=seconds)


def settings_for(db_url: str, data: Path) -> Settings:
    return Settings(_env_file=None, DATABASE_URL=db_url, PULSE_DATA_DIR=data)


async def load(
    pulse: PlanPulse, folder: Path, webhook: str, *, items: int, note: str | None = None
) -> None:
    """A plan of `items` overdue milestones followed by network `team`, whose Teams webhook
    is `webhook`; the first one carries `note`."""
    rows = ["Priority,Ref,Key actions,Lead(s),Timescales,Notes,Network(s)"]
    for i in range(1, items + 1):
        said = (note or "") if i == 1 else ""
        rows.append(f'1,1.{i},Action number {i} <at>x</at>,AW/MC,31/01/26,"{said}",team')
    (folder / "plan.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "nets.csv").write_text(
        "key,name,teams_webhook,coordinators,all_actions\n"
        f"team,Team **network**,{webhook},,false\n",
        encoding="utf-8",
    )
    await import_plan(
        pulse.sessions,
        folder / "plan.csv",
        now=FRIDAY,
        plan_key="big",
        people_path=PLANS / "small-people.csv",
        networks_path=folder / "nets.csv",
    )


@pytest.fixture
async def fake_workflows() -> AsyncIterator[FakeWorkflows]:
    async with running_workflows() as fake:
        yield fake


@pytest.fixture
async def pulse(db_url: str, tmp_path: Path) -> AsyncIterator[PlanPulse]:
    app = PlanPulse(settings_for(db_url, tmp_path / "var"), clock=Clock(FRIDAY))
    await app.migrate()
    yield app
    await app.close()


def worker(pulse: PlanPulse, timing: Timing) -> OutboxWorker:
    transport = workflows_transport(pulse, monotonic=timing.monotonic, sleep=timing.sleep)
    return OutboxWorker(pulse.sessions, {"teams": transport}, clock=timing.clock)


def card_texts(value: Any) -> list[str]:
    """Every text in a card (TextBlocks, facts, table cells), in order."""
    if isinstance(value, dict):
        found = [value["text"]] if isinstance(value.get("text"), str) else []
        found += (
            [f"{value['title']} {value['value']}"] if "title" in value and "value" in value else []
        )
        return found + [t for k, v in value.items() if k != "text" for t in card_texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in card_texts(v)]
    return []


async def outbox_states(pulse: PlanPulse) -> list[str]:
    async with pulse.sessions() as session:
        rows = await session.scalars(select(OutboxRow.state).order_by(OutboxRow.id))
        return list(rows)


async def test_a_200_item_digest_reaches_the_channel_whole_in_valid_posts(
    pulse: PlanPulse, tmp_path: Path, fake_workflows: FakeWorkflows
) -> None:
    """200 overdue milestones arrive in the channel in several posts, each a valid 1.5 card
    under 28 KB, in order, each milestone exactly once, its leads by name."""
    await load(pulse, tmp_path, fake_workflows.url("team"), items=200)
    posted = await digest_poster(pulse).post("big", now=FRIDAY)
    assert [(p.network, p.posted) for p in posted] == [("team", True)]
    timing = Timing(Clock(FRIDAY))
    fake_workflows.clock = timing.clock
    await worker(pulse, timing).drain()

    channel = fake_workflows.channel("team")
    assert len(channel) > 1
    assert fake_workflows.problems() == []
    assert all(r.size < 28_000 for r in fake_workflows.requests)
    texts = [card_texts(message) for message in channel]
    for part, shown in enumerate(texts[1:], start=2):
        assert any(f"continued {part} of {len(channel)}" in t for t in shown)
    everything = "\n".join(t for shown in texts for t in shown)
    for i in range(1, 201):
        assert len(re.findall(rf"\*\*1\.{i}\*\* Action number {i} ", everything)) == 1
    assert "Alex Walker, Morgan Clarke" in everything
    assert "<at>" not in everything
    assert set(await outbox_states(pulse)) == {"sent"}
    # Paced: never two posts closer together than the interval (one second).
    times = [r.at for r in fake_workflows.requests]
    assert all(b - a >= timedelta(seconds=1) for a, b in pairwise(times))


async def test_at_mentions_and_markdown_in_a_note_ping_and_link_nobody(
    pulse: PlanPulse, tmp_path: Path, fake_workflows: FakeWorkflows
) -> None:
    """A note with `<at>…</at>`, bold, a link, a bare address and a date function is shown in
    words, with none of them able to form: nobody is mentioned and nothing is linked."""
    await load(pulse, tmp_path, fake_workflows.url("team"), items=1, note=NOTE)
    await digest_poster(pulse).post("big", now=FRIDAY)
    await worker(pulse, Timing(Clock(FRIDAY))).drain()

    [message] = fake_workflows.channel("team")
    assert fake_workflows.problems() == []
    shown = "\n".join(card_texts(message))
    for word in ("Alex Walker", "urgent", "click here", "evil", "now", "DATE"):
        assert word in shown
    for live in ("<at>", "</at>", "**urgent**", "](", "https://", "www.evil", "{{", "_now_"):
        assert live not in shown
    assert "**network**" not in shown  # the network's name is user text too
    card = message["attachments"][0]["content"]
    assert "entities" not in str(card.get("msteams"))  # no mention entity of any kind


async def test_a_429_storm_is_honoured_and_every_post_arrives_once_in_order(
    pulse: PlanPulse, tmp_path: Path, fake_workflows: FakeWorkflows
) -> None:
    """Throttled four times with `Retry-After: 30`, the transport sends nothing to the flow
    until each wait is over, keeps the later posts back, then posts each part once in order."""
    await load(pulse, tmp_path, fake_workflows.url("team"), items=120)
    await digest_poster(pulse).post("big", now=FRIDAY)
    fake_workflows.fail_next(status=429, retry_after=30, times=4)
    clock = Clock(FRIDAY)
    fake_workflows.clock = clock
    timing = Timing(clock)
    outbox = worker(pulse, timing)
    for _ in range(40):
        await outbox.drain()
        if set(await outbox_states(pulse)) == {"sent"}:
            break
        clock.now += timedelta(seconds=10)
    assert set(await outbox_states(pulse)) == {"sent"}

    requests = fake_workflows.requests
    throttled = [r for r in requests if r.status == 429]
    assert len(throttled) == 4
    for before, after in pairwise(requests):
        if before.status == 429:
            assert after.at - before.at >= timedelta(seconds=30)
    channel = fake_workflows.channel("team")
    parts = len(channel)
    assert parts > 1
    firsts = [card_texts(m)[0] for m in channel]
    assert all(f"continued {n} of {parts}" in firsts[n - 1] for n in range(2, parts + 1))
    assert fake_workflows.problems() == []


async def test_a_short_retry_after_is_waited_in_place(
    pulse: PlanPulse, tmp_path: Path, fake_workflows: FakeWorkflows
) -> None:
    """A 429 asking for one second is waited out by the transport itself, then the same
    post goes once."""
    await load(pulse, tmp_path, fake_workflows.url("team"), items=1)
    await digest_poster(pulse).post("big", now=FRIDAY)
    fake_workflows.fail_next(status=429, retry_after=1)
    timing = Timing(Clock(FRIDAY))
    assert await worker(pulse, timing).drain() == 1
    assert [r.status for r in fake_workflows.requests] == [429, 202]
    assert 1.0 in timing.slept
    assert await outbox_states(pulse) == ["sent"]


async def test_an_unknown_outcome_is_marked_for_review_and_never_resent(
    pulse: PlanPulse, tmp_path: Path, fake_workflows: FakeWorkflows
) -> None:
    """A connection dropped after the post was sent leaves that post for review (`pulse
    outbox`), never sent again however long the bot runs; the posts after it still go."""
    await load(pulse, tmp_path, fake_workflows.url("team"), items=120)
    await digest_poster(pulse).post("big", now=FRIDAY)
    fake_workflows.fail_next(drop=True)
    clock = Clock(FRIDAY)
    outbox = worker(pulse, Timing(clock))
    for _ in range(3):
        await outbox.drain()
        clock.now += timedelta(hours=6)

    states = await outbox_states(pulse)
    assert states[0] == "needs_review"
    assert set(states[1:]) == {"sent"}
    first = [r for r in fake_workflows.requests if "continued" not in card_texts(r.message)[0]]
    assert len(first) == 1  # the first post was tried once, and only once
    problems = await outbox_problems(pulse.sessions)
    assert [(p.state, p.channel, p.recipient) for p in problems] == [
        ("needs_review", "teams", "team")
    ]
    assert len(fake_workflows.channel("team")) == len(states)


async def test_posted_once_per_period_across_a_restart(
    db_url: str, pulse: PlanPulse, tmp_path: Path, fake_workflows: FakeWorkflows
) -> None:
    """After a restart the same period's digest is neither enqueued nor posted again, and a
    post a stopped worker may have sent is left for review instead of resent."""
    await load(pulse, tmp_path, fake_workflows.url("team"), items=1)
    await digest_poster(pulse).post("big", now=FRIDAY)
    # The worker hands the post over and stops before it records anything.
    async with pulse.sessions() as session, session.begin():
        repo = OutboxRepository(session)
        [claimed] = await repo.claim(owner="gone", now=FRIDAY, lease=timedelta(minutes=5), limit=5)
        await repo.mark_sending([claimed.id], owner="gone", now=FRIDAY, lease=timedelta(minutes=5))

    later = FRIDAY + timedelta(minutes=10)
    again = PlanPulse(settings_for(db_url, pulse.settings.data_dir), clock=Clock(later))
    try:
        assert not any(p.posted for p in await digest_poster(again).post("big", now=later))
        await worker(again, Timing(Clock(later))).drain()
        assert await outbox_states(again) == ["needs_review"]
    finally:
        await again.close()
    assert fake_workflows.requests == []


async def test_pulse_check_teams_posts_a_test_card_per_network_never_showing_the_signature(
    db_url: str, tmp_path: Path, fake_workflows: FakeWorkflows, caplog: pytest.LogCaptureFixture
) -> None:
    """`pulse check --teams` posts a valid test card to each webhook and says per network
    whether Workflows took it; a deleted flow and a URL of the wrong form are FAIL lines; no
    line or log record shows a signature."""
    settings = Settings(
        _env_file=None,
        DATABASE_URL=db_url,
        PULSE_DATA_DIR=tmp_path / "var",
        TEAMS_POST_INTERVAL=0,
    )
    app = PlanPulse(settings, clock=Clock(FRIDAY))
    try:
        await app.migrate()
        await load(app, tmp_path, fake_workflows.url("team"), items=1)
        async with app.sessions() as session, session.begin():
            session.add(NetworkRow(key="gone", name="Gone", teams_webhook=fake_workflows.url("x")))
            session.add(
                NetworkRow(key="wrong", name="Wrong", teams_webhook="https://evil.example/p?sig=zz")
            )
        fake_workflows.delete("x")
        with caplog.at_level(logging.DEBUG):
            quiet = await check(app)
            lines = await check(app, teams=True)
    finally:
        await app.close()
    teams = {line.split(":")[0]: (ok, line) for ok, line in lines if line.startswith("Teams ")}
    assert teams["Teams team"][0] is True
    assert "test card accepted" in teams["Teams team"][1]
    assert teams["Teams gone"][0] is False
    assert "404" in teams["Teams gone"][1]
    assert teams["Teams wrong"][0] is False
    assert "host is not one Workflows runs on" in teams["Teams wrong"][1]
    assert sorted(r.flow for r in fake_workflows.requests) == ["team", "x"]
    assert fake_workflows.problems() == []
    assert len(fake_workflows.channel("team")) == 1
    # Without --teams each webhook's form is checked and nothing is posted.
    assert any("Teams wrong" in line and not ok for ok, line in quiet)
    shown = "\n".join(line for _, line in lines + quiet) + caplog.text
    assert SIGNATURE not in shown
    assert "zz" not in shown


async def test_a_networks_file_with_a_bad_webhook_is_refused_in_one_line(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """A webhook that is not HTTPS to a Workflows host is an import error naming the row and
    column, without its signature; nothing is imported."""
    with pytest.raises(ImportFailed) as failed:
        await load(pulse, tmp_path, "http://hooks.example/flow?sig=TOPSECRET", items=1)
    [problem] = [p for p in failed.value.problems if str(p.column).endswith("teams_webhook")]
    assert "must start with https://" in str(problem)
    assert "TOPSECRET" not in str(failed.value)
    assert "\n" not in str(problem)
    async with pulse.sessions() as session:
        assert (await session.scalars(select(NetworkRow))).all() == []


async def test_a_network_whose_webhook_was_removed_fails_its_post(
    pulse: PlanPulse, tmp_path: Path, fake_workflows: FakeWorkflows
) -> None:
    """A post whose network has no webhook any more fails with a reason, and sends nothing."""
    await load(pulse, tmp_path, fake_workflows.url("team"), items=1)
    await digest_poster(pulse).post("big", now=FRIDAY)
    async with pulse.sessions() as session, session.begin():
        await session.execute(update(NetworkRow).values(teams_webhook=None))
    await worker(pulse, Timing(Clock(FRIDAY))).drain()
    assert await outbox_states(pulse) == ["failed"]
    assert fake_workflows.requests == []


async def test_forgetting_a_person_leaves_the_webhook_and_their_name_leaves_the_posts(
    pulse: PlanPulse, tmp_path: Path, fake_workflows: FakeWorkflows
) -> None:
    """Erasing Alex Walker takes their name out of the digest posts kept in the outbox, and
    leaves a webhook whose signature happens to hold their initials as it was."""
    url = fake_workflows.url("team", signature="x-AW-Alex-Walker")
    await load(pulse, tmp_path, url, items=1)
    await digest_poster(pulse).post("big", now=FRIDAY)
    await Records(pulse).forget_person("AW", reassign_to="MC", actor="test")
    async with pulse.sessions() as session:
        assert await session.scalar(select(NetworkRow.teams_webhook)) == url
        payloads = (await session.scalars(select(OutboxRow.payload))).all()
    assert payloads
    assert "Alex Walker" not in str(payloads)


async def test_a_networks_file_without_the_column_keeps_the_webhook(
    pulse: PlanPulse, tmp_path: Path, fake_workflows: FakeWorkflows
) -> None:
    """Re-importing with a networks file that has no `teams_webhook` column keeps the stored
    webhook; one whose cell is empty takes it away."""
    url = fake_workflows.url("team")
    await load(pulse, tmp_path, url, items=1)

    async def stored() -> str | None:
        async with pulse.sessions() as session:
            return await session.scalar(select(NetworkRow.teams_webhook))

    for header, row, expected in [
        ("key,name", "team,Team", url),
        ("key,name,teams_webhook", "team,Team,", None),
    ]:
        (tmp_path / "nets.csv").write_text(f"{header}\n{row}\n", encoding="utf-8")
        await import_plan(
            pulse.sessions,
            tmp_path / "plan.csv",
            now=FRIDAY,
            plan_key="big",
            networks_path=tmp_path / "nets.csv",
        )
        assert await stored() == expected


@pytest.mark.parametrize("sign_in", [True, False], ids=["oidc", "links only"])
async def test_the_card_opens_the_live_view_only_when_opening_it_needs_a_sign_in(
    db_url: str, tmp_path: Path, fake_workflows: FakeWorkflows, sign_in: bool
) -> None:
    """With sign-in on, every post carries "Open the live view" to /live (no token anyone in
    the channel could use); with links only, the card has no such button."""
    extra: dict[str, Any] = (
        {
            "WEB_SIGN_IN": "oidc",
            "OIDC_ISSUER": "https://login.example.org/tenant/v2.0",
            "OIDC_CLIENT_ID": "pulse",
            "OIDC_CLIENT_SECRET": "not-a-secret",
            "OIDC_TENANT_ID": "tenant",
        }
        if sign_in
        else {}
    )
    settings = Settings(
        _env_file=None,
        DATABASE_URL=db_url,
        PULSE_DATA_DIR=tmp_path / "var",
        PULSE_BASE_URL="https://pulse.example.org",
        **extra,
    )
    pulse = PlanPulse(settings, clock=Clock(FRIDAY))
    await pulse.migrate()
    try:
        await load(pulse, tmp_path, fake_workflows.url("team"), items=60)
        await digest_poster(pulse).post("big", now=FRIDAY)
        timing = Timing(Clock(FRIDAY))
        fake_workflows.clock = timing.clock
        await worker(pulse, timing).drain()
    finally:
        await pulse.close()

    posts = fake_workflows.channel("team")
    assert posts
    for post in posts:
        actions = post["attachments"][0]["content"].get("actions", [])
        urls = [a["url"] for a in actions if a.get("type") == "Action.OpenUrl"]
        assert urls == (["https://pulse.example.org/live"] if sign_in else [])
