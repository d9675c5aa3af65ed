"""Cycles, the outbox and local mail on SQLite and PostgreSQL: every lead asked once per
cycle, every message delivered once, replies taken in once, nothing lost to a crash."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.app import PlanPulse, Runner
from bot.services.delivery import OutboxWorker
from bot.services.prompting import Cycles
from bot.settings import Settings
from handlers.email.local_transport import LocalMailTransport
from storage.models import InboundRow, OutboxRow, PersonRow, PromptRow, UpdateRow
from storage.outbox import OutboxRepository
from tests.conftest import FIXTURES, Clock, import_small_plan

PLANS = FIXTURES / "plans"
# Monday 23 November 2026, 09:05 in London (GMT): the default prompt time has passed.
MONDAY = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
LEADS_WITH_OPEN_MILESTONES = {"AW", "MC", "DC", "PB"}


@pytest.fixture
def clock() -> Clock:
    return Clock(MONDAY)


def _settings(db_url: str, data: Path) -> Settings:
    return Settings(_env_file=None, DATABASE_URL=db_url, PULSE_DATA_DIR=data, METRICS_PORT=0)


@pytest.fixture
async def pulse(db_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[PlanPulse]:
    app = PlanPulse(_settings(db_url, tmp_path / "var"), clock=clock)
    await app.migrate()
    await import_small_plan(app.sessions, now=clock())
    yield app
    await app.close()


def outbox_files(pulse: PlanPulse) -> list[Path]:
    return sorted((pulse.settings.mail_dir / "outbox").glob("*.eml"))


def read_eml(path: Path) -> EmailMessage:
    message = message_from_bytes(path.read_bytes(), policy=default)
    assert isinstance(message, EmailMessage)
    return message


async def count(pulse: PlanPulse, model: type[object], *where: object) -> int:
    async with pulse.sessions() as session:
        query = select(func.count()).select_from(model)
        for condition in where:
            query = query.where(condition)  # type: ignore[arg-type]
        return int(await session.scalar(query) or 0)


async def test_a_cycle_asks_each_lead_once_by_real_email_files(pulse: PlanPulse) -> None:
    """On Monday after 09:00 each lead with open milestones gets one multipart prompt file;
    running again the same week sends nothing more."""
    runner = Runner(pulse)
    first = await runner.run_once()
    assert first.prompts == len(LEADS_WITH_OPEN_MILESTONES)
    files = outbox_files(pulse)
    assert len(files) == len(LEADS_WITH_OPEN_MILESTONES)
    recipients = set()
    for path in files:
        message = read_eml(path)
        recipients.add(str(message["To"]))
        assert message["Auto-Submitted"] == "auto-generated"
        assert message["X-Auto-Response-Suppress"] == "OOF, AutoReply"
        assert "[PP-" in str(message["Subject"])
        assert str(message["Message-ID"]).endswith("@localhost>")
        assert {p.get_content_type() for p in message.iter_parts()} == {"text/plain", "text/html"}
    assert "Dana Cole <dana.cole@council.example>" in recipients
    again = await runner.run_once()
    assert again.prompts == 0
    assert again.delivered == 0
    assert len(outbox_files(pulse)) == len(files)


async def test_prompt_lists_overdue_first_and_escapes_notes_in_html(pulse: PlanPulse) -> None:
    """A prompt lists overdue milestones before the rest, and a note's HTML is shown, not run."""
    await Runner(pulse).run_once()
    aw = next(read_eml(p) for p in outbox_files(pulse) if "alex.walker" in str(read_eml(p)["To"]))
    text = aw.get_body(preferencelist=("plain",))
    html = aw.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    plain = text.get_content()
    assert plain.index("1.1 ") < plain.index("2.3 ")  # overdue 1.1 before due-soon 2.3
    assert "<script>alert(1)</script>" not in html.get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html.get_content()


async def test_two_tickers_and_two_workers_at_once_prompt_and_deliver_exactly_once(
    db_url: str, pulse: PlanPulse, clock: Clock
) -> None:
    """Two tickers and two outbox workers on separate connections, all at once, give one
    prompt per person per cycle and deliver each outbox row exactly once."""
    others = [PlanPulse(_settings(db_url, pulse.settings.data_dir), clock=clock) for _ in range(3)]
    try:
        transport = LocalMailTransport(pulse.settings.mail_dir / "outbox")
        apps = [pulse, *others]
        tickers = [
            Cycles(a.sessions, mail_from="pulse@council.example", clock=clock) for a in apps[:2]
        ]
        await asyncio.gather(*(t.tick() for t in tickers))
        workers = [
            OutboxWorker(a.sessions, {"email": transport}, clock=clock, batch=1) for a in apps[2:]
        ]
        sent = await asyncio.gather(*(w.drain() for w in workers))
    finally:
        for other in others:
            await other.close()
    assert await count(pulse, PromptRow) == len(LEADS_WITH_OPEN_MILESTONES)
    assert sum(sent) == len(LEADS_WITH_OPEN_MILESTONES)
    assert await count(pulse, OutboxRow, OutboxRow.state == "sent") == len(
        LEADS_WITH_OPEN_MILESTONES
    )
    assert len(outbox_files(pulse)) == len(LEADS_WITH_OPEN_MILESTONES)


async def test_week_of_downtime_gives_one_catch_up_cycle(pulse: PlanPulse, clock: Clock) -> None:
    """After the bot was down for two scheduled Mondays, the first tick prompts once for the
    latest cycle only."""
    cycles = Cycles(pulse.sessions, mail_from="pulse@council.example", clock=clock)
    first = await cycles.tick()
    assert [c.cycle for c in first.cycles] == ["2026-W48"]
    clock.now = datetime(2026, 12, 9, 14, 0, tzinfo=UTC)  # Wednesday of the week after next
    caught_up = await cycles.tick()
    assert [c.cycle for c in caught_up.cycles] == ["2026-W50"]
    assert (await cycles.tick()).cycles == []
    async with pulse.sessions() as session:
        cycles_seen = set((await session.scalars(select(PromptRow.cycle))).all())
    assert cycles_seen == {"2026-W48", "2026-W50"}


async def test_one_reminder_to_the_silent_after_two_working_days(
    pulse: PlanPulse, clock: Clock
) -> None:
    """A prompt left unanswered gets one reminder two working days later, and only one."""
    runner = Runner(pulse)
    await runner.run_once()
    clock.now = MONDAY + timedelta(days=1)
    assert (await runner.run_once()).reminders == 0
    clock.now = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
    assert (await runner.run_once()).reminders == len(LEADS_WITH_OPEN_MILESTONES)
    reminders = [read_eml(p) for p in outbox_files(pulse) if "reminder" in p.name]
    assert len(reminders) == len(LEADS_WITH_OPEN_MILESTONES)
    assert all(str(r["Subject"]).startswith("Reminder:") for r in reminders)
    assert all(r["In-Reply-To"] for r in reminders)
    clock.now += timedelta(days=1)
    assert (await runner.run_once()).reminders == 0


async def test_no_reminder_to_an_address_that_bounced_since_the_prompt(
    pulse: PlanPulse, clock: Clock
) -> None:
    """Once a lead's address is stopped for bouncing, their reminder is not sent."""
    runner = Runner(pulse)
    await runner.run_once()
    async with pulse.sessions() as session, session.begin():
        dana = await session.scalar(select(PersonRow).where(PersonRow.key == "DC"))
        assert dana is not None
        dana.email_bounced_at = MONDAY + timedelta(hours=1)
    clock.now = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
    await runner.run_once()
    reminded = [str(read_eml(p)["To"]) for p in outbox_files(pulse) if "reminder" in p.name]
    assert len(reminded) == len(LEADS_WITH_OPEN_MILESTONES) - 1
    assert not any("dana.cole" in to for to in reminded)


def reply_to(prompt: EmailMessage, *, sender: str, body: str, message_id: str) -> bytes:
    reply = EmailMessage()
    reply["From"] = sender
    reply["To"] = str(prompt["From"])
    reply["Subject"] = "RE: " + str(prompt["Subject"])
    reply["Message-ID"] = message_id
    reply["In-Reply-To"] = str(prompt["Message-ID"])
    reply["References"] = str(prompt["Message-ID"])
    reply["Date"] = "Mon, 23 Nov 2026 10:15:00 +0000"
    reply.set_content(body + "\n\nOn Mon, 23 Nov 2026 at 09:05, Plan Pulse wrote:\n> quoted\n")
    return reply.as_bytes()


def prompt_for(pulse: PlanPulse, address: str) -> EmailMessage:
    return next(
        m
        for m in map(read_eml, outbox_files(pulse))
        if address in str(m["To"]) and "prompt" in str(m["Message-ID"])
    )


async def test_a_reply_dropped_in_the_inbox_is_recorded_once_and_confirmed(
    pulse: PlanPulse, clock: Clock
) -> None:
    """A lead's reply in the inbox folder records their ratings, is confirmed by email, stops
    their reminder, and the same message dropped twice is recorded once."""
    runner = Runner(pulse)
    await runner.run_once()
    prompt = prompt_for(pulse, "dana.cole")
    raw = reply_to(
        prompt,
        sender="Dana Cole <Dana.Cole@council.example>",
        body="1.2-1 3 Analysis under way with HR\n1.2-2 in progress - need support",
        message_id="<reply-1@mail.council.example>",
    )
    inbox = pulse.settings.mail_dir / "inbox"
    (inbox / "reply.eml").write_bytes(raw)
    clock.now = MONDAY + timedelta(hours=2)
    done = await runner.run_once()
    assert done.answers == 2
    (inbox / "again.eml").write_bytes(raw)
    assert (await runner.run_once()).answers == 0
    assert await count(pulse, UpdateRow, UpdateRow.source == "email") == 2
    tracked = await pulse.tracked("small")
    latest = tracked.updates["1.2-2"][-1]
    assert latest.rating == 3
    assert latest.needs_support
    assert latest.person_key == "DC"
    assert latest.given_at == datetime(2026, 11, 23, 10, 15, tzinfo=UTC)
    confirmations = [read_eml(p) for p in outbox_files(pulse) if "confirmation" in p.name]
    assert len(confirmations) == 1
    assert confirmations[0]["Auto-Submitted"] == "auto-replied"
    plain = confirmations[0].get_body(preferencelist=("plain",))
    assert plain is not None
    assert "1.2-1" in plain.get_content()
    clock.now = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
    await runner.run_once()
    reminded = {str(read_eml(p)["To"]) for p in outbox_files(pulse) if "reminder" in p.name}
    assert not any("dana.cole" in r for r in reminded)
    assert len(reminded) == len(LEADS_WITH_OPEN_MILESTONES) - 1


async def test_a_reply_from_someone_else_records_nothing(pulse: PlanPulse, clock: Clock) -> None:
    """A forwarded prompt answered by a stranger, or by a lead who is not on it, changes
    nothing and the prompt's person is told once; automatic replies are never answered."""
    runner = Runner(pulse)
    await runner.run_once()
    prompt = prompt_for(pulse, "dana.cole")
    inbox = pulse.settings.mail_dir / "inbox"
    (inbox / "a.eml").write_bytes(
        reply_to(
            prompt,
            sender="mallory@evil.example",
            body="1.2-1 1 done",
            message_id="<m1@evil.example>",
        )
    )
    (inbox / "b.eml").write_bytes(
        reply_to(
            prompt,
            sender="gwen.roberts@council.example",
            body="1.2-1 1 done",
            message_id="<m2@x.example>",
        )
    )
    ooo = reply_to(
        prompt,
        sender="dana.cole@council.example",
        body="I am away until Monday",
        message_id="<m3@x.example>",
    ).replace(b"Subject: RE:", b"Auto-Submitted: auto-replied\nSubject: RE:")
    (inbox / "c.eml").write_bytes(ooo)
    before = len(outbox_files(pulse))
    await runner.run_once()
    assert await count(pulse, UpdateRow, UpdateRow.source == "email") == 0
    async with pulse.sessions() as session:
        states = sorted((await session.scalars(select(InboundRow.state))).all())
    assert states == ["ignored", "rejected", "rejected"]
    # DESIGN.md §9: the registered person (Dana), not the senders, is told, once that day.
    notices = [read_eml(p) for p in outbox_files(pulse)[before:]]
    assert [str(n["To"]) for n in notices] == ["Dana Cole <dana.cole@council.example>"]


async def test_a_worker_that_died_mid_send_loses_and_duplicates_nothing(
    pulse: PlanPulse, clock: Clock
) -> None:
    """Rows claimed by a worker that vanished are reconciled once its lease expires: one that
    reached the outbox folder is marked sent, the others are sent once."""
    cycles = Cycles(pulse.sessions, mail_from="pulse@council.example", clock=clock)
    await cycles.tick()
    transport = LocalMailTransport(pulse.settings.mail_dir / "outbox")
    async with pulse.sessions() as session, session.begin():
        claimed = await OutboxRepository(session).claim(
            owner="dead-worker", now=clock(), lease=timedelta(minutes=5), limit=10
        )
    assert len(claimed) == len(LEADS_WITH_OPEN_MILESTONES)
    async with pulse.sessions() as session, session.begin():
        await OutboxRepository(session).mark_sending(
            [m.id for m in claimed], owner="dead-worker", now=clock(), lease=timedelta(minutes=5)
        )
    await transport.deliver(claimed[0])  # it wrote one file, then died before recording it
    survivor = OutboxWorker(pulse.sessions, {"email": transport}, clock=clock)
    assert await survivor.drain() == 0  # leases still live: nothing is touched
    clock.now += timedelta(minutes=6)
    await survivor.drain()
    assert len(outbox_files(pulse)) == len(LEADS_WITH_OPEN_MILESTONES)
    assert await count(pulse, OutboxRow, OutboxRow.state == "sent") == len(
        LEADS_WITH_OPEN_MILESTONES
    )
    assert survivor.stats.reconciled == len(LEADS_WITH_OPEN_MILESTONES)


async def test_a_failing_transport_backs_off_and_keeps_the_message(
    pulse: PlanPulse, clock: Clock
) -> None:
    """A transport that fails is retried later with growing waits, never in a tight loop,
    and the message goes once it recovers."""
    cycles = Cycles(pulse.sessions, mail_from="pulse@council.example", clock=clock)
    await cycles.tick()
    pulse.settings.mail_dir.mkdir(parents=True, exist_ok=True)
    blocked = pulse.settings.mail_dir / "blocked"
    blocked.write_text("not a folder")
    broken = OutboxWorker(pulse.sessions, {"email": LocalMailTransport(blocked)}, clock=clock)
    await broken.drain()
    assert broken.stats.retried == len(LEADS_WITH_OPEN_MILESTONES)
    assert await broken.drain() == 0  # not due again yet
    working = OutboxWorker(
        pulse.sessions,
        {"email": LocalMailTransport(pulse.settings.mail_dir / "outbox")},
        clock=clock,
    )
    clock.now += timedelta(seconds=31)
    assert await working.drain() == len(LEADS_WITH_OPEN_MILESTONES)


async def test_digest_lists_who_is_still_silent_this_cycle(pulse: PlanPulse, clock: Clock) -> None:
    """At digest time, the people prompted this cycle who have not answered are 'awaiting',
    per network, and the response rate counts the answers."""
    runner = Runner(pulse)
    await runner.run_once()
    prompt = prompt_for(pulse, "dana.cole")
    (pulse.settings.mail_dir / "inbox" / "r.eml").write_bytes(
        reply_to(
            prompt,
            sender="dana.cole@council.example",
            body="1.2-1 3 started",
            message_id="<r@x.example>",
        )
    )
    clock.now = MONDAY + timedelta(hours=3)
    await runner.run_once()
    digests = {d.network: d for d in await pulse.digests("small", as_of=date(2026, 11, 27))}
    assert digests["oversight"].awaiting == ("AW", "MC", "PB")
    assert digests["oversight"].response_rate == 0.25
    assert digests["early-help"].awaiting == ("AW", "MC", "PB")
    # MC is asked only about 1.1, which the workforce network does not follow.
    assert digests["workforce"].to_json()["awaiting"] == ["AW", "PB"]
    before = {d.network: d for d in await pulse.digests("small", as_of=date(2026, 11, 22))}
    assert before["oversight"].awaiting == ()


async def test_an_away_lead_is_not_prompted_and_their_delegate_is(
    pulse: PlanPulse, clock: Clock, tmp_path: Path
) -> None:
    """A lead away until after the cycle gets no prompt; their delegate is asked about their
    milestones instead, in one prompt with the delegate's own."""
    people = (PLANS / "small-people.csv").read_text(encoding="utf-8").splitlines()
    header = people[0] + ",delegate,away_until"
    rows = [line + (",PB,2026-12-04" if line.startswith("AW,") else ",,") for line in people[1:]]
    (tmp_path / "people.csv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    await import_small_plan(pulse.sessions, now=clock(), people_path=tmp_path / "people.csv")
    await Runner(pulse).run_once()
    to = {str(read_eml(p)["To"]) for p in outbox_files(pulse)}
    assert not any("alex.walker" in t for t in to)
    priya = prompt_for(pulse, "priya.bains")
    plain = priya.get_body(preferencelist=("plain",))
    assert plain is not None
    text = plain.get_content()
    assert "2.3 " in text  # AW's milestone, asked of their delegate
    assert "for AW" in text
    assert "2.4 " in text  # PB's own


async def test_a_digest_build_cancelled_and_abandoned_leaves_the_collector_on(
    pulse: PlanPulse,
) -> None:
    """A digest build whose task is cancelled mid-way and never resumed (a job a shut-down
    scheduler dropped) does not leave cyclic garbage collection off."""
    assert gc.isenabled()
    task = asyncio.create_task(pulse.digests("small"))
    for _ in range(3):
        await asyncio.sleep(0)  # it is in the middle of reading the plan
    assert not task.done()
    task.cancel()
    try:
        assert gc.isenabled()
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await task


class StopWhenJobsRun:
    """A clock that asks the runner to stop the first time a scheduled job reads it."""

    def __init__(self, now: datetime, stop: asyncio.Event) -> None:
        self.now, self.stop = now, stop
        self.main = asyncio.current_task()

    def __call__(self) -> datetime:
        if asyncio.current_task() is not self.main:
            self.stop.set()
        return self.now


async def test_a_stopped_runner_leaves_no_scheduled_job_running(
    db_url: str, tmp_path: Path
) -> None:
    """`pulse run` stopped while its tick is running ends that job before it returns:
    nothing is left cancelled but unfinished, mid-transaction."""
    stop = asyncio.Event()
    app = PlanPulse(_settings(db_url, tmp_path / "var"), clock=StopWhenJobsRun(MONDAY, stop))
    await app.migrate()
    try:
        await import_small_plan(app.sessions, now=MONDAY)
        await asyncio.wait_for(Runner(app).run_forever(stop), timeout=30)
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert [t for t in left if not t.done()] == []
    finally:
        await app.close()
