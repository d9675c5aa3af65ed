"""RELIABILITY.md scenarios 7, 13, 18, 34, 40, 41, 43, 48, 49, 52, 56 and 57 (issue 11's
"covered whole"): the clauses the older tests left open, on SQLite and PostgreSQL where
storage is involved. Where each scenario is tested, clause by clause (every file is under
tests/; `[both]` = parametrized on SQLite and PostgreSQL):

 7  malformed JSON / form body, oversized body -> 4xx, server carries on:
    integration/test_slack_app.py::test_malformed_and_oversized_bodies_are_refused_and_the_
    server_carries_on; here test_07_* (chunked oversized body, non-UTF-8, JSON and payloads
    that are not objects). No storage involved.
13  DB unavailable during a submit -> no success ack, user told to retry:
    test_slack_app.py::test_a_database_failure_is_not_acked_as_saved_and_the_user_is_told,
    ::test_a_failed_group_commit_tells_every_user_in_it; here test_13_* [both] with the real
    database cut off (PostgreSQL behind a cut cable, SQLite file unopenable), then the retry.
18  Socket Mode payload with retry headers handled as over HTTP:
    test_slack_app.py::test_socket_mode_payloads_with_retry_headers_behave_as_over_http;
    here test_18_* [both].
34  From != token owner -> reject: test_email_scenarios.py::test_34_reply_from_someone_else_*
    [both], integration/test_delivery.py::test_a_reply_from_someone_else_records_nothing
    [both]; secondary address if configured: test_email_scenarios.py::test_34_a_reply_from_
    a_configured_secondary_address_* [both]; here test_34_* [both], configured through the
    people file's `other emails` column, and never mailed to.
40  our own sending address, our own messages looping back -> dropped:
    test_email_scenarios.py::test_40_our_own_mail_coming_back_is_dropped [both]; here
    test_40_* [both]: MAIL_FROM with a display name, other letter case and a +tag, and our
    confirmations looping back.
41  same Message-ID twice -> one answer; no Message-ID -> hash dedupe:
    test_email_scenarios.py::test_41_* (four tests) [both]; integration/test_imap.py::
    test_mail_reaches_the_inbound_table_once, ::test_a_message_already_stored_is_still_
    marked_seen; integration/test_smtp_listener.py::test_sending_the_same_message_twice_
    keeps_one_copy.
43  oversized mail or large attachments -> rejected early, kept for review:
    test_email_scenarios.py::test_43_* [both]; test_imap.py::test_a_message_over_the_size_
    limit_is_never_fetched_whole, ::test_an_oversized_message_is_kept_as_a_row_saying_so;
    test_smtp_listener.py::test_an_oversized_message_is_refused_with_552, ::test_an_
    oversized_message_is_refused_and_kept_as_a_note_for_review; here test_43_* [both]: a
    reply carrying a large attachment.
48  crash after claim, before send -> lease expiry -> sent once:
    integration/test_outbox_leases.py::test_a_worker_killed_before_the_final_dot_leaves_a_
    message_that_is_resent [both], test_delivery.py::test_a_worker_that_died_mid_send_*
    [both], e2e/test_run.py::test_sigkill_mid_batch_loses_nothing_and_sends_nothing_twice;
    here test_48_* [both] for a Slack row.
49  crash after Slack accepted the post, before the DB update -> reconcile, no duplicate:
    integration/test_slack_transport.py (scenarios 21-24, the transport alone); here
    test_49_* [both]: the worker killed while Slack has the post, another worker reconciles.
52  two dispatchers never claim one row: test_outbox_leases.py::test_two_workers_and_a_slow_
    server_send_each_message_exactly_once [both]; test_delivery.py::test_two_tickers_and_two_
    workers_at_once_* [both]; here test_52_* [both]: claimers holding their transactions
    open together on PostgreSQL (SKIP LOCKED), claimers racing on SQLite.
56  DB down at tick or dispatch -> retried, no loss or duplication: test_outbox_leases.py::
    test_a_database_outage_at_tick_and_at_dispatch_loses_and_duplicates_nothing
    (PostgreSQL); here test_56_* (SQLite).
57  SQLite concurrent writers lose nothing to "database is locked"; single-process guard:
    here test_57_*; e2e/test_run.py::test_sigterm_stops_cleanly_and_a_second_sqlite_process_
    is_refused, ::test_a_second_process_on_the_same_sqlite_file_is_refused_whatever_its_data_
    folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_bolt.request.async_request import AsyncBoltRequest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import PlanPulse, Runner
from bot.services.delivery import OutboxWorker
from bot.settings import Settings
from handlers.slack.transport import SlackPayload, SlackPost, SlackTransport
from storage.db import create_engine, session_factory, sqlite_path
from storage.models import InboundRow, OutboxRow, PromptRow, UpdateRow
from storage.outbox import NewMessage, OutboxRepository
from tests.conftest import PLANS, Clock, import_small_plan, running_pulse
from tests.fake_slack import FakeSlack
from tests.integration.test_delivery import outbox_files, prompt_for, read_eml
from tests.integration.test_outbox_leases import Cable
from tests.integration.test_slack_app import (
    SECRET,
    Slack,
    _harness,
    _home_event,
    _prompts_with_dms,
    rate_payload,
)
from tests.postgres import PostgresServer, create_database

MONDAY = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)


# --- a real database that goes away and comes back ---------------------------------------


class Outage:
    """Makes a real database unreachable, and brings it back: PostgreSQL behind a `Cable`
    the test cuts; a SQLite file moved aside with a folder in its place, so that no
    connection can open it (the engines' idle connections are closed first)."""

    def __init__(self, url: str, cable: Cable | None) -> None:
        self.url = url
        self.cable = cable

    async def cut(self, *sessions: async_sessionmaker[AsyncSession]) -> None:
        if self.cable is not None:
            self.cable.cut()
            return
        for factory in sessions:
            await factory.kw["bind"].dispose()
        path = sqlite_path(self.url)
        assert path is not None
        for part in self._parts(path):
            if part.exists():
                part.rename(part.with_name(part.name + ".away"))
        path.mkdir()

    async def mend(self) -> None:
        if self.cable is not None:
            self.cable.mend()
            return
        path = sqlite_path(self.url)
        assert path is not None
        path.rmdir()
        for part in self._parts(path):
            away = part.with_name(part.name + ".away")
            if away.exists():
                away.rename(part)

    @staticmethod
    def _parts(path: Path) -> list[Path]:
        return [path, Path(f"{path}-wal"), Path(f"{path}-shm")]


@pytest.fixture(params=["sqlite", "postgresql"])
async def outage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Outage]:
    """A fresh database of each kind that the test can make unreachable."""
    if request.param == "sqlite":
        yield Outage(f"sqlite+aiosqlite:///{tmp_path / 'db' / 'pulse.db'}", None)
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = await create_database(server)
    cable = Cable(server.port)
    port = await cable.start()
    try:
        yield Outage(f"postgresql+asyncpg://{server.user}@127.0.0.1:{port}/{name}", cable)
    finally:
        await cable.stop()


async def count_updates(sessions: async_sessionmaker[AsyncSession], source: str) -> int:
    async with sessions() as session:
        found = await session.scalar(
            select(func.count()).select_from(UpdateRow).where(UpdateRow.source == source)
        )
        return int(found or 0)


# --- 7: malformed and oversized bodies ---------------------------------------------------


@pytest.fixture
async def slack(db_url: str, tmp_path: Path, fake_slack: FakeSlack) -> AsyncIterator[Slack]:
    async for harness in _harness(db_url, tmp_path, fake_slack):
        yield harness


@pytest.fixture
async def slack_on_sqlite(tmp_path: Path, fake_slack: FakeSlack) -> AsyncIterator[Slack]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'pulse.db'}"
    async for harness in _harness(url, tmp_path, fake_slack):
        yield harness


async def test_07_bodies_bolt_cannot_read_are_4xx_and_the_server_carries_on(
    slack_on_sqlite: Slack,
) -> None:
    """Signed bodies that are not UTF-8, JSON that is not an object, a form whose payload is
    a list or a number, and a form field without `=` get 400; a body over the cap sent in
    chunks (no Content-Length to refuse it by) gets 413; a good request is answered after
    each, and nothing is recorded."""
    slack = slack_on_sqlite
    form = "application/x-www-form-urlencoded"
    cases: list[tuple[bytes, str]] = [
        (b"payload=%7B%22type%22%3A%22block_actions%22%7D\xff\xfe", form),
        (b"[1, 2, 3]", "application/json"),
        (b"42", "application/json"),
        (b'"just a string"', "application/json"),
        (urlencode({"payload": "[1]"}).encode(), form),
        (urlencode({"payload": "7"}).encode(), form),
        (b"payload", form),
    ]
    for raw, kind in cases:
        headers = {"Content-Type": kind, **slack.sign(raw.decode("utf-8", "replace"))}
        if raw.endswith(b"\xff\xfe"):
            # Signed over the bytes as sent, as Slack would: the guard must not get as far
            # as decoding them as text for bolt.
            import hmac

            stamp = headers["X-Slack-Request-Timestamp"]
            mac = hmac.new(SECRET.encode(), b"v0:" + stamp.encode() + b":" + raw, "sha256")
            headers["X-Slack-Signature"] = "v0=" + mac.hexdigest()
        async with slack.http.post(slack.url, data=raw, headers=headers) as response:
            assert response.status == 400, (raw, await response.text())
            assert "Traceback" not in await response.text()
        status, text = await slack.event({"type": "url_verification", "challenge": "alive"})
        assert (status, json.loads(text)) == (200, {"challenge": "alive"})

    async def chunks() -> AsyncIterator[bytes]:
        yield b"payload="
        for _ in range(100):
            yield b"a" * 1024

    async with slack.http.post(
        slack.url, data=chunks(), headers={"Content-Type": form, **slack.sign("x")}
    ) as response:
        assert response.status == 413
    status, text = await slack.event({"type": "url_verification", "challenge": "still"})
    assert (status, json.loads(text)) == (200, {"challenge": "still"})
    assert await slack.updates() == []


# --- 13: the real database goes away during a submit -------------------------------------


async def test_13_a_click_while_the_database_is_unreachable_is_not_acked_as_saved(
    outage: Outage, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """With the real database unreachable, a rating click records nothing and its user is
    told to try again (never that it was saved); once the database is back, the same click
    again is recorded, once."""
    async for slack in _harness(outage.url, tmp_path, fake_slack):
        prompt = await slack.prompt_id("AW")
        respond = slack.fake.base_url + "respond"
        click = rate_payload("UAW00001", f"{prompt}:2.3:1", response_url=respond)
        await outage.cut(slack.sessions)
        try:
            status, _ = await slack.interact(click)
            assert status == 200
            await slack.followups.wait()
            [told] = slack.responses()
            assert "try again" in told
            assert "Recorded" not in told
            assert slack.fake.calls_to("chat.update") == []
        finally:
            await outage.mend()
        status, _ = await slack.interact(click)
        assert status == 200
        await slack.followups.wait()
        assert [u.rating for u in await slack.updates()] == [1]
        status, _ = await slack.interact(click)  # Slack's own retry of the same click
        assert len(await slack.updates()) == 1


# --- 18: Socket Mode ---------------------------------------------------------------------


async def test_18_a_socket_mode_retry_of_an_http_click_is_the_same_click(slack: Slack) -> None:
    """A click answered over HTTP and then delivered again over Socket Mode with Slack's
    retry headers is one update, and App Home opened either way publishes the same view;
    on SQLite and PostgreSQL."""
    prompt = await slack.prompt_id("AW")
    click = rate_payload("UAW00001", f"{prompt}:2.3:1")
    status, _ = await slack.interact(click)
    assert status == 200
    retry: dict[str, str | Sequence[str]] = {
        "x-slack-retry-num": ["1"],
        "x-slack-retry-reason": ["http_timeout"],
    }
    response = await slack.app.async_dispatch(
        AsyncBoltRequest(body=click, mode="socket_mode", headers=retry)
    )
    assert response.status == 200
    assert [u.rating for u in await slack.updates()] == [1]
    status, _ = await slack.event(_home_event("UAW00001"))
    assert status == 200
    response = await slack.app.async_dispatch(
        AsyncBoltRequest(body=_home_event("UAW00001"), mode="socket_mode", headers=retry)
    )
    assert response.status == 200
    over_http, over_socket = slack.fake.calls_to("views.publish")
    assert over_http["view"] == over_socket["view"]


# --- 34 and 40: who a reply is from ------------------------------------------------------


def _settings(db_url: str, tmp_path: Path, **extra: Any) -> Settings:
    return Settings(_env_file=None, DATABASE_URL=db_url, PULSE_DATA_DIR=tmp_path / "var", **extra)


def _reply(prompt: EmailMessage, sender: str, body: str, n: int) -> bytes:
    reply = EmailMessage()
    reply["From"] = sender
    reply["To"] = str(prompt["From"])
    reply["Subject"] = "RE: " + str(prompt["Subject"])
    reply["Message-ID"] = f"<reply-{n}@mail.example.net>"
    reply["In-Reply-To"] = str(prompt["Message-ID"])
    reply["References"] = str(prompt["Message-ID"])
    reply["Date"] = "Mon, 23 Nov 2026 10:15:00 +0000"
    reply.set_content(body + "\n")
    return reply.as_bytes()


async def _deliver(pulse: PlanPulse, *raws: bytes) -> None:
    inbox = pulse.settings.mail_dir / "inbox"
    for n, raw in enumerate(raws):
        (inbox / f"{len(list(inbox.glob('*.eml'))):04d}-{n}.eml").write_bytes(raw)
    await Runner(pulse).run_once()


async def test_34_an_other_email_in_the_people_file_answers_as_the_person(
    db_url: str, tmp_path: Path
) -> None:
    """A people file's `other emails` column lets Dana answer from her home address (any
    letter case): the reply is recorded as hers; her prompt still goes to her work address
    only, and an address not listed is refused."""
    people = tmp_path / "people.csv"
    rows = (PLANS / "small-people.csv").read_text().splitlines()
    people.write_text(
        "\n".join(
            [rows[0] + ",other emails"]
            + [r + (",dana.home@example.net" if r.startswith("DC,") else ",") for r in rows[1:]]
        )
        + "\n"
    )
    clock = Clock(MONDAY)
    async with running_pulse(db_url, tmp_path, clock) as pulse:
        await import_small_plan(pulse.sessions, now=clock(), people_path=people)
        await Runner(pulse).run_once()
        prompt = prompt_for(pulse, "dana.cole")
        assert "dana.cole@council.example" in str(prompt["To"])
        sent_to = [str(read_eml(p)["To"]) for p in outbox_files(pulse)]
        assert not any("dana.home" in to for to in sent_to)
        clock.now = MONDAY + timedelta(hours=1)
        await _deliver(
            pulse,
            _reply(prompt, "Dana at home <DANA.Home@Example.NET>", "1.2-1 2 Agreed", 1),
            _reply(prompt, "Dana elsewhere <dana.other@example.net>", "1.2-2 1 Done", 2),
        )
        tracked = await pulse.tracked("small")
        latest = tracked.updates["1.2-1"][-1]
        assert (latest.rating, latest.person_key, latest.note) == (2, "DC", "Agreed")
        assert await count_updates(pulse.sessions, "email") == 1


@pytest.mark.parametrize(
    "mail_from", ["plan-pulse@council.example", "Plan Pulse <plan-pulse@council.example>"]
)
async def test_40_mail_from_our_own_address_or_our_own_messages_is_dropped(
    db_url: str, tmp_path: Path, mail_from: str
) -> None:
    """Mail from our own address — however MAIL_FROM is written, in any letter case, or with
    a +tag — and our own prompts and confirmations coming back (from our address or via a
    forwarder that rewrote From) are dropped unanswered; a reply sent after them is
    recorded."""
    clock = Clock(MONDAY)
    app = PlanPulse(_settings(db_url, tmp_path, MAIL_FROM=mail_from), clock=clock)
    try:
        await app.migrate()
        await import_small_plan(app.sessions, now=clock())
        await Runner(app).run_once()
        prompt = prompt_for(app, "dana.cole")
        clock.now = MONDAY + timedelta(hours=1)
        await _deliver(app, _reply(prompt, "Dana Cole <dana.cole@council.example>", "1.2-1 2", 1))
        [confirmation] = [read_eml(p) for p in outbox_files(app) if "confirmation" in p.name]
        before = len(outbox_files(app))
        forwarded = EmailMessage()
        for name in ("Subject", "Date", "To"):
            forwarded[name] = str(confirmation[name])
        # A forwarder that rewrote From and Message-ID, and dropped Auto-Submitted.
        forwarded["From"] = "Dana Cole <dana.cole@council.example>"
        forwarded["Message-ID"] = "<fwd-1@forwarder.example.net>"
        plain = confirmation.get_body(preferencelist=("plain",))
        assert plain is not None
        forwarded.set_content(str(plain.get_content()))
        ours = [
            _reply(prompt, "PLAN-PULSE@Council.Example", "1.2-2 1 looped", 2),
            _reply(prompt, "Plan Pulse <plan-pulse+bounces@council.example>", "1.2-2 1 x", 3),
            (outbox_files(app)[0]).read_bytes(),  # a prompt, as we sent it
            bytes(confirmation),
            forwarded.as_bytes(),
        ]
        clock.now = MONDAY + timedelta(hours=2)
        await _deliver(app, *ours)
        assert len(outbox_files(app)) == before
        assert await count_updates(app.sessions, "email") == 1
        clock.now = MONDAY + timedelta(hours=3)
        await _deliver(app, _reply(prompt, "Dana Cole <dana.cole@council.example>", "1.2-2 1", 9))
        assert await count_updates(app.sessions, "email") == 2
    finally:
        await app.close()


# --- 43: a large attachment --------------------------------------------------------------


async def test_43_a_reply_with_a_large_attachment_is_kept_unread_for_review(
    db_url: str, tmp_path: Path
) -> None:
    """A genuine reply carrying an attachment that takes it over MAX_INBOUND_BYTES is never
    parsed or answered: it is kept as unprocessable, saying it was too large and from whom,
    with its header section only; the prompt stays unanswered."""
    clock = Clock(MONDAY)
    app = PlanPulse(_settings(db_url, tmp_path, MAX_INBOUND_BYTES=100_000), clock=clock)
    try:
        await app.migrate()
        await import_small_plan(app.sessions, now=clock())
        await Runner(app).run_once()
        prompt = prompt_for(app, "dana.cole")
        reply = EmailMessage()
        reply.set_content("1.2-1 2 see the attached evaluation\n")
        reply.add_attachment(
            bytes(range(256)) * 800, maintype="application", subtype="pdf", filename="eval.pdf"
        )
        for name, value in _mail_headers(prompt, "Dana Cole <dana.cole@council.example>").items():
            reply[name] = value
        raw = reply.as_bytes()
        assert len(raw) > 100_000
        before = len(outbox_files(app))
        clock.now = MONDAY + timedelta(hours=1)
        await _deliver(app, raw)
        assert len(outbox_files(app)) == before
        assert await count_updates(app.sessions, "email") == 0
        async with app.sessions() as session:
            [row] = (await session.scalars(select(InboundRow))).all()
        assert row.state == "unprocessable"
        assert row.outcome is not None
        assert "too large" in row.outcome
        assert "dana.cole@council.example" in row.outcome
        assert b"eval.pdf" not in (row.raw or b"")
    finally:
        await app.close()


def _mail_headers(prompt: EmailMessage, sender: str) -> EmailMessage:
    headers = EmailMessage()
    headers["From"] = sender
    headers["To"] = str(prompt["From"])
    headers["Subject"] = "RE: " + str(prompt["Subject"])
    headers["Message-ID"] = "<big-reply@mail.council.example>"
    headers["In-Reply-To"] = str(prompt["Message-ID"])
    headers["References"] = str(prompt["Message-ID"])
    return headers


# --- 48 and 49: a Slack row whose worker died --------------------------------------------


class MonotonicTime:
    """The transport's pacing clock: moved by its sleeps, never slept on."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def _slack_worker(app: PlanPulse, fake: FakeSlack, clock: Clock) -> OutboxWorker:
    time = MonotonicTime()
    transport = SlackTransport(
        client=fake.client(), clock=time, sleep=time.sleep, history_window=3600.0
    )
    return OutboxWorker(app.sessions, {"slack": transport}, clock=clock)


async def _enqueue_digest(app: PlanPulse, now: datetime) -> int:
    payload = SlackPayload("C0NETWORK", (SlackPost("Weekly digest"),)).as_outbox()
    async with app.sessions() as session, session.begin():
        outbox_id = await OutboxRepository(session).enqueue(
            dedupe_key="digest:north:2026-W48",
            kind="digest",
            channel="slack",
            recipient="C0NETWORK",
            payload=payload,
            now=now,
        )
    assert outbox_id is not None  # a fresh dedupe key is always queued
    return outbox_id


async def _state(app: PlanPulse, outbox_id: int) -> str:
    async with app.sessions() as session:
        row = await session.get(OutboxRow, outbox_id)
        assert row is not None
        return row.state


@pytest.mark.parametrize("dies", ["after Slack posted", "before posting"])
async def test_48_49_a_slack_post_whose_worker_died_is_in_the_channel_once(
    db_url: str, tmp_path: Path, fake_slack: FakeSlack, dies: str
) -> None:
    """A worker killed after Slack accepted its post but before recording it (49), or
    before posting at all (48): once its lease runs out another worker settles the row as
    sent, and the channel has the message exactly once; on SQLite and PostgreSQL."""
    clock = Clock(MONDAY)
    async with running_pulse(db_url, tmp_path, clock) as app:
        outbox_id = await _enqueue_digest(app, clock())
        if dies == "after Slack posted":
            fake_slack.fail_next("chat.postMessage", delay=30.0)  # posted, answered late
        dying = _slack_worker(app, fake_slack, clock)
        if dies == "after Slack posted":
            task: asyncio.Task[object] = asyncio.create_task(dying.run_once())
            for _ in range(500):
                if fake_slack.posted:
                    break
                await asyncio.sleep(0.01)
            assert len(fake_slack.posted) == 1
        else:
            async with app.sessions() as session, session.begin():
                [claimed] = await OutboxRepository(session).claim(
                    owner="dying", now=clock(), lease=timedelta(minutes=5), limit=1
                )
            assert claimed.id == outbox_id
            task = asyncio.create_task(asyncio.sleep(0))
        task.cancel()  # killed: nothing after this point reaches the database
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert await _state(app, outbox_id) in ("claimed", "sending")
        survivor = _slack_worker(app, fake_slack, clock)
        assert await survivor.drain() == 0  # the lease is still live: nothing touched
        clock.now += timedelta(minutes=6)
        await survivor.drain()
        assert await _state(app, outbox_id) == "sent"
    assert len(fake_slack.posted) == 1
    assert fake_slack.posted[0]["text"] == "Weekly digest"


# --- 52: two dispatchers never claim one row ---------------------------------------------


def _message(n: int) -> NewMessage:
    return NewMessage(
        dedupe_key=f"claim:{n}",
        kind="prompt",
        channel="email",
        recipient=f"lead{n}@council.example",
        payload={"raw": "x"},
        message_id=f"<m{n}@pulse.test>",
    )


async def test_52_dispatchers_claiming_at_once_never_share_a_row(db_url: str) -> None:
    """Four dispatchers on their own connections claim batches of the same 40 due rows at
    once, each holding its transaction open until all have claimed (PostgreSQL: the rows
    one holds are skipped by the others) or racing to commit (SQLite): no row is claimed
    twice and every row is claimed once."""
    from storage.db import migrate

    await migrate(db_url)
    engines = [create_engine(db_url) for _ in range(4)]
    factories = [session_factory(e) for e in engines]
    try:
        async with factories[0]() as session, session.begin():
            await OutboxRepository(session).enqueue_many(
                [_message(n) for n in range(40)], now=MONDAY
            )
        postgres = not db_url.startswith("sqlite")
        all_claimed = asyncio.Barrier(len(factories))

        async def dispatcher(n: int) -> list[int]:
            taken: list[int] = []
            while True:
                async with factories[n]() as session, session.begin():
                    batch = await OutboxRepository(session).claim(
                        owner=f"d{n}", now=MONDAY, lease=timedelta(minutes=5), limit=4
                    )
                    taken += [m.id for m in batch]
                    if postgres and len(taken) == len(batch):
                        # The first batch of every dispatcher is in hand at the same time.
                        await asyncio.wait_for(all_claimed.wait(), timeout=20)
                if not batch:
                    return taken
                await asyncio.sleep(0)

        taken = await asyncio.gather(*(dispatcher(n) for n in range(len(factories))))
    finally:
        for engine in engines:
            await engine.dispose()
    every = [i for ids in taken for i in ids]
    assert len(every) == len(set(every)) == 40
    if postgres:
        assert all(len(ids) >= 4 for ids in taken)


# --- 56: SQLite that cannot be opened at tick or dispatch --------------------------------


async def test_56_sqlite_unreachable_at_tick_and_dispatch_loses_and_duplicates_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With the SQLite file unopenable, a tick and an outbox pass fail without raising out
    of the scheduler; once it is back the next tick plans the cycle once and every prompt is
    delivered once."""
    outage = Outage(f"sqlite+aiosqlite:///{tmp_path / 'db' / 'pulse.db'}", None)
    clock = Clock(MONDAY)
    async with running_pulse(outage.url, tmp_path, clock) as pulse:
        await import_small_plan(pulse.sessions, now=clock())
        runner = Runner(pulse)
        await outage.cut(pulse.sessions)
        try:
            await runner._tick()  # what the scheduler calls: it must not raise
            assert "tick failed; retrying at the next one" in caplog.text
        finally:
            await outage.mend()
        clock.now += timedelta(minutes=1)
        await runner._tick()
        async with pulse.sessions() as session:
            prompts = int(await session.scalar(select(func.count()).select_from(PromptRow)) or 0)
        assert prompts == 4
        await outage.cut(pulse.sessions)
        try:
            with contextlib.suppress(Exception):
                await runner.run_once()
        finally:
            await outage.mend()
        await runner.run_once()
        clock.now += timedelta(minutes=6)
        await runner.run_once()
        async with pulse.sessions() as session:
            states = (await session.scalars(select(OutboxRow.state))).all()
        assert sorted(states) == ["sent"] * prompts
        assert len([p for p in outbox_files(pulse) if "prompt" in p.name]) == prompts


# --- 57: SQLite writers at once ----------------------------------------------------------


async def test_57_sqlite_writers_at_once_lose_nothing_to_a_locked_database(
    tmp_path: Path, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    """On one SQLite file, at once and each on its own connections: two tickers and three
    outbox workers, then a burst of Slack rating clicks beside a batch of emailed replies
    and more outbox passes. Every prompt is planned and delivered once, every click and
    every reply recorded, and no writer fails with "database is locked"."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'pulse.db'}"
    async for slack in _harness(url, tmp_path, fake_slack):
        clock = Clock(MONDAY)
        apps = [PlanPulse(_settings(url, tmp_path / f"a{n}"), clock=clock) for n in range(4)]
        try:
            runners = [Runner(app) for app in apps]
            # The harness planned the cycle already: a second tick must not plan it again.
            await asyncio.gather(
                runners[0].cycles.tick(),
                runners[1].cycles.tick(),
                *(r.worker.drain() for r in runners[1:]),
            )
            for runner in runners[1:]:
                await runner.worker.drain()
            async with apps[0].sessions() as session:
                prompts = (await session.scalars(select(PromptRow))).all()
                states = (await session.scalars(select(OutboxRow.state))).all()
            assert sorted(states) == ["sent"] * len(prompts)
            clicks = [
                rate_payload(
                    user,
                    f"{prompt}:{ref}:1",
                    channel=channel,
                    ts=ts,
                    action_ts=f"1795424700.{n:06d}",
                )
                for n, (user, prompt, ref, channel, ts) in enumerate(
                    (user, prompt, ref, channel, ts)
                    for user, prompt, refs, channel, ts in await _prompts_with_dms(slack)
                    for ref in refs
                )
            ]
            assert clicks
            await asyncio.gather(
                *(slack.interact(c) for c in clicks),
                *(r.worker.drain() for r in runners[1:]),
            )
            assert len(await slack.updates()) == len(clicks)
        finally:
            for app in apps:
                await app.close()
    assert "database is locked" not in caplog.text
