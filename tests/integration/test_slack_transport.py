"""Slack delivery against a fake Slack Web API on loopback: every row posted at most once
whatever Slack does (RELIABILITY.md scenarios 17, 19-27), through the real SDK client."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import PlanPulse
from bot.services.delivery import OutboxWorker
from bot.services.transports import Reconciled, Result
from bot.settings import Settings
from handlers.slack.transport import (
    EVENT_TYPE,
    SlackPayload,
    SlackPost,
    SlackTransport,
    lookup_user_by_email,
)
from storage.models import OutboxRow
from storage.outbox import OutboxMessage, OutboxRepository
from tests.fake_slack import FakeSlack

CHANNEL = "C0NETWORK"


class FakeTime:
    """A monotonic clock and a sleep that only moves it: time is set, never slept on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def transport_for(
    fake: FakeSlack, fake_time: FakeTime, *, client: AsyncWebClient | None = None
) -> SlackTransport:
    return SlackTransport(
        client=client or fake.client(),
        clock=fake_time.clock,
        sleep=fake_time.sleep,
        history_window=3600.0,
    )


@pytest.fixture
def transport(fake_slack: FakeSlack, fake_time: FakeTime) -> SlackTransport:
    fake_slack.clock = fake_time.clock
    return transport_for(fake_slack, fake_time)


def row(
    outbox_id: int = 1, *, channel: str = CHANNEL, parts: int = 1, attempts: int = 1
) -> OutboxMessage:
    posts = [
        SlackPost(
            f"digest part {i}", [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]
        )
        for i in range(parts)
    ]
    payload = SlackPayload(channel, tuple(posts)).as_outbox()
    return OutboxMessage(
        outbox_id, "digest", "slack", channel, None, payload, None, attempts, "claimed"
    )


def again(message: OutboxMessage) -> OutboxMessage:
    """The same row as the outbox hands it over on its next attempt."""
    return OutboxMessage(
        message.id,
        message.kind,
        message.channel,
        message.recipient,
        message.message_id,
        message.payload,
        message.prompt_id,
        message.attempts + 1,
        message.state,
    )


def post_calls(fake: FakeSlack) -> list[dict[str, Any]]:
    return fake.calls_to("chat.postMessage")


async def test_a_post_carries_its_outbox_id_and_the_sdk_never_retries(
    fake_slack: FakeSlack, fake_time: FakeTime
) -> None:
    """A delivered row is one message whose metadata names the outbox row and part, and the
    transport strips the SDK's default retry handlers from the client it is given."""
    client = AsyncWebClient(token="xoxb-test", base_url=fake_slack.base_url)
    assert client.retry_handlers  # the SDK retries connection errors by default
    transport = transport_for(fake_slack, fake_time, client=client)
    assert client.retry_handlers == []
    outcome = await transport.deliver(row(7))
    assert outcome.result is Result.SENT
    [message] = fake_slack.posted
    assert outcome.external_id == message["ts"]
    assert message["channel"] == CHANNEL
    assert message["text"] == "digest part 0"
    assert message["metadata"] == {
        "event_type": EVENT_TYPE,
        "event_payload": {"outbox_id": 7, "part": 0},
    }
    assert fake_slack.calls_to("conversations.history") == []  # a first attempt just posts


async def test_429_once_with_retry_after_1_waits_then_posts_once(
    fake_slack: FakeSlack, fake_time: FakeTime, transport: SlackTransport
) -> None:
    """Scenario 19: one 429 with Retry-After: 1 is waited out (by the injected sleep) and
    then gives exactly one message."""
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=1)
    outcome = await transport.deliver(row())
    assert outcome.result is Result.SENT
    assert len(post_calls(fake_slack)) == 2
    assert len(fake_slack.posted) == 1
    assert 1.0 in fake_time.slept


async def test_persistent_429_goes_back_to_the_outbox_without_a_tight_loop(
    fake_slack: FakeSlack, transport: SlackTransport
) -> None:
    """Scenario 20: Slack still limiting after the one short wait, or asking for a long
    wait, gives RETRY at Retry-After; each delivery makes at most two posting calls."""
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=1, times=10)
    outcome = await transport.deliver(row(1))
    assert outcome.result is Result.RETRY
    assert outcome.retry_after == 1
    assert len(post_calls(fake_slack)) == 2

    fake_slack.clear_faults()
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=30, times=10)
    outcome = await transport.deliver(row(2))
    assert outcome.result is Result.RETRY
    assert outcome.retry_after == 30
    assert len(post_calls(fake_slack)) == 3  # a long wait is not taken inline
    assert fake_slack.posted == []


@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_once_is_reconciled_and_gives_one_message(
    fake_slack: FakeSlack, transport: SlackTransport, status: int
) -> None:
    """Scenario 21: a 5xx leaves the outcome unknown; the transport looks, finds nothing,
    retries later, and the retry looks again before giving exactly one message."""
    fake_slack.fail_next("chat.postMessage", status=status)
    first = row()
    outcome = await transport.deliver(first)
    assert outcome.result is Result.RETRY
    assert outcome.retry_after is not None
    assert len(fake_slack.calls_to("conversations.history")) == 1
    assert fake_slack.posted == []
    outcome = await transport.deliver(again(first))
    assert outcome.result is Result.SENT
    assert len(fake_slack.calls_to("conversations.history")) == 2
    assert len(fake_slack.posted) == 1


async def test_5xx_after_slack_posted_is_found_by_reconciling(
    fake_slack: FakeSlack, transport: SlackTransport
) -> None:
    """Scenario 21: a 503 answered after Slack did post is settled as sent by looking, with
    no second post."""
    fake_slack.fail_next("chat.postMessage", status=503, record=True)
    outcome = await transport.deliver(row())
    assert outcome.result is Result.SENT
    assert len(post_calls(fake_slack)) == 1
    assert outcome.external_id == fake_slack.posted[0]["ts"]


async def test_fatal_error_after_the_post_is_found_and_not_posted_again(
    fake_slack: FakeSlack, transport: SlackTransport
) -> None:
    """Scenario 22: `ok:false, fatal_error` after the post was recorded: history with all
    metadata finds it, and there is no second post."""
    fake_slack.fail_next("chat.postMessage", error="fatal_error", record=True)
    outcome = await transport.deliver(row())
    assert outcome.result is Result.SENT
    assert len(post_calls(fake_slack)) == 1
    assert len(fake_slack.posted) == 1
    [look] = fake_slack.calls_to("conversations.history")
    assert look["include_all_metadata"] in ("1", "true")


async def test_a_dropped_connection_after_the_post_gives_no_duplicate(
    fake_slack: FakeSlack, transport: SlackTransport
) -> None:
    """Scenario 23: the connection closes after Slack took the post; reconciling finds it."""
    fake_slack.fail_next("chat.postMessage", drop=True)
    outcome = await transport.deliver(row())
    assert outcome.result is Result.SENT
    assert len(post_calls(fake_slack)) == 1
    assert len(fake_slack.posted) == 1
    assert len(fake_slack.calls_to("conversations.history")) == 1


async def test_an_answer_slower_than_the_client_timeout_is_reconciled(
    fake_slack: FakeSlack, fake_time: FakeTime
) -> None:
    """Scenario 24: Slack posts but answers after the client's timeout: the unknown outcome
    is settled by looking, not by posting again."""
    transport = transport_for(fake_slack, fake_time, client=fake_slack.client(timeout=0.3))
    fake_slack.fail_next("chat.postMessage", delay=1.0)
    outcome = await transport.deliver(row())
    assert outcome.result is Result.SENT
    assert len(post_calls(fake_slack)) == 1
    assert len(fake_slack.posted) == 1
    assert len(fake_slack.calls_to("conversations.history")) == 1


@pytest.mark.parametrize(
    "error", ["channel_not_found", "not_in_channel", "is_archived", "account_inactive"]
)
async def test_permanent_errors_fail_the_row_without_retrying(
    fake_slack: FakeSlack, transport: SlackTransport, error: str
) -> None:
    """Scenario 25: a permanent error fails the row at once: one call, no look-up, no
    breaker (`account_inactive` is about the recipient while auth.test accepts the token)."""
    fake_slack.fail_next("chat.postMessage", error=error)
    outcome = await transport.deliver(row())
    assert outcome.result is Result.FAILED
    assert outcome.error is not None
    assert error in outcome.error
    assert len(post_calls(fake_slack)) == 1
    assert fake_slack.calls_to("conversations.history") == []
    assert transport.alert is None
    assert (await transport.deliver(row(2))).result is Result.SENT


async def test_a_dm_to_an_unknown_user_fails_and_lookup_by_email_answers_none(
    fake_slack: FakeSlack, transport: SlackTransport
) -> None:
    """Scenario 25: `users_not_found` from users.lookupByEmail is "no such user", and a DM
    Slack cannot open fails the row."""
    fake_slack.users_by_email["dana.cole@council.example"] = "U0DANA"
    client = fake_slack.client()
    assert await lookup_user_by_email(client, "dana.cole@council.example") == "U0DANA"
    assert await lookup_user_by_email(client, "nobody@council.example") is None
    fake_slack.fail_next("conversations.open", error="cannot_dm_bot")
    outcome = await transport.deliver(row(channel="U0BOTUSER"))
    assert outcome.result is Result.FAILED
    assert post_calls(fake_slack) == []


@pytest.mark.parametrize("error", ["invalid_auth", "token_revoked"])
async def test_a_refused_token_opens_the_breaker_and_raises_one_alert(
    fake_slack: FakeSlack,
    transport: SlackTransport,
    caplog: pytest.LogCaptureFixture,
    error: str,
) -> None:
    """Scenario 26: a refused token fails the row, sets the alert (logged at ERROR once),
    and later deliveries are put off for long without calling Slack."""
    fake_slack.fail_next("chat.postMessage", error=error)
    with caplog.at_level(logging.ERROR, logger="handlers.slack.transport"):
        outcome = await transport.deliver(row(1))
        calls = len(fake_slack.calls)
        later = [await transport.deliver(row(n)) for n in (2, 3, 4)]
        reconciled = await transport.reconcile(again(row(5)))
    assert outcome.result is Result.FAILED
    assert transport.alert is not None
    assert error in transport.alert
    assert all(o.result is Result.RETRY for o in later)
    assert all((o.retry_after or 0) >= 3600 for o in later)
    assert reconciled is Reconciled.NOT_SENT  # its retry waits behind the breaker
    assert len(fake_slack.calls) == calls
    assert fake_slack.posted == []
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "xoxb" not in caplog.text


async def test_account_inactive_for_the_bot_itself_opens_the_breaker(
    fake_slack: FakeSlack, transport: SlackTransport
) -> None:
    """Scenario 26: `account_inactive` that auth.test confirms is about the bot's own
    account stops all Slack sending."""
    fake_slack.fail_next("chat.postMessage", error="account_inactive")
    fake_slack.fail_next("auth.test", error="account_inactive")
    outcome = await transport.deliver(row())
    assert outcome.result is Result.FAILED
    assert transport.alert is not None
    assert (await transport.deliver(row(2))).result is Result.RETRY
    assert len(post_calls(fake_slack)) == 1


async def test_posts_to_one_channel_are_paced_a_second_apart(
    fake_slack: FakeSlack, fake_time: FakeTime, transport: SlackTransport
) -> None:
    """Scenario 27: ten posts to one channel arrive at least a second apart by the injected
    clock, while another channel is not held up by them."""
    for n in range(1, 11):
        assert (await transport.deliver(row(n))).result is Result.SENT
    post_times = [
        t
        for (method, _), t in zip(fake_slack.calls, fake_slack.times, strict=True)
        if method == "chat.postMessage"
    ]
    assert len(post_times) == 10
    assert all(b - a >= 1.0 for a, b in pairwise(post_times))
    assert post_times[-1] - post_times[0] == pytest.approx(9.0)
    waited = len(fake_time.slept)
    assert (await transport.deliver(row(11, channel="C0OTHER"))).result is Result.SENT
    assert len(fake_time.slept) == waited
    assert len(fake_slack.posted) == 11


async def test_a_long_digest_continues_in_a_thread_and_a_retry_posts_only_what_is_missing(
    fake_slack: FakeSlack, transport: SlackTransport
) -> None:
    """Scenario 17: three posts are a parent and two replies in its thread; when part 2 is
    refused for a while, the retry finds the parent and posts only parts 2 and 3."""
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=30, after=1)
    first = row(3, parts=3)
    outcome = await transport.deliver(first)
    assert outcome.result is Result.RETRY
    assert outcome.retry_after == 30
    assert len(fake_slack.posted) == 1

    outcome = await transport.deliver(again(first))
    assert outcome.result is Result.SENT
    assert len(post_calls(fake_slack)) == 4  # part 1, part 2 (429), parts 2 and 3
    parent, *replies = fake_slack.posted
    assert outcome.external_id == parent["ts"]
    assert "thread_ts" not in post_calls(fake_slack)[0]
    assert [r["thread_ts"] for r in replies] == [parent["ts"], parent["ts"]]
    assert [m["metadata"]["event_payload"]["part"] for m in fake_slack.posted] == [0, 1, 2]
    assert [m["text"] for m in fake_slack.posted] == [f"digest part {i}" for i in range(3)]


async def test_an_unknown_outcome_on_a_thread_reply_is_looked_for_in_the_thread(
    fake_slack: FakeSlack, transport: SlackTransport
) -> None:
    """Scenarios 17 and 22: `fatal_error` after Slack posted part 2 is found with
    conversations.replies, and part 3 follows in the same thread."""
    fake_slack.fail_next("chat.postMessage", error="fatal_error", record=True, after=1)
    outcome = await transport.deliver(row(4, parts=3))
    assert outcome.result is Result.SENT
    assert len(post_calls(fake_slack)) == 3
    parent, *replies = fake_slack.posted
    assert [r["thread_ts"] for r in replies] == [parent["ts"], parent["ts"]]
    [look] = fake_slack.calls_to("conversations.replies")
    assert look["ts"] == parent["ts"]
    assert fake_slack.calls_to("conversations.history") == []


async def test_a_block_limit_error_fails_with_a_reason_a_maintainer_can_act_on(
    fake_slack: FakeSlack, transport: SlackTransport
) -> None:
    """Scenario 17: `msg_blocks_too_long` fails the row and says the renderer must split."""
    fake_slack.fail_next("chat.postMessage", error="msg_blocks_too_long")
    outcome = await transport.deliver(row())
    assert outcome.result is Result.FAILED
    assert outcome.error is not None
    assert "split" in outcome.error
    assert len(post_calls(fake_slack)) == 1


async def test_reconcile_answers_sent_only_when_every_part_is_in_slack(
    fake_slack: FakeSlack, transport: SlackTransport
) -> None:
    """A vanished sender's row is NOT_SENT when none or only some of its parts are in Slack
    and SENT when all are; the resend after a partial post adds only the missing part."""
    first = row(5, parts=2)
    assert await transport.reconcile(again(first)) is Reconciled.NOT_SENT

    fake_slack.fail_next("chat.postMessage", status=429, retry_after=30, after=1)
    assert (await transport.deliver(first)).result is Result.RETRY
    assert len(fake_slack.posted) == 1
    assert await transport.reconcile(again(first)) is Reconciled.NOT_SENT

    assert (await transport.deliver(again(first))).result is Result.SENT
    assert len(fake_slack.posted) == 2
    assert await transport.reconcile(again(again(first))) is Reconciled.SENT
    assert len(post_calls(fake_slack)) == 3


async def test_a_dm_opens_the_conversation_once_and_posts_there(
    fake_slack: FakeSlack, transport: SlackTransport
) -> None:
    """A row to a user id is posted in the DM conversations.open gives, opened once."""
    for n in (1, 2):
        assert (await transport.deliver(row(n, channel="U0DANA"))).result is Result.SENT
    [opened] = fake_slack.calls_to("conversations.open")
    assert opened["users"] == "U0DANA"
    assert [m["channel"] for m in fake_slack.posted] == ["D0DANA", "D0DANA"]


class WorkerClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def test_the_outbox_worker_delivers_a_slack_row_once_through_a_fatal_error(
    fake_slack: FakeSlack, fake_time: FakeTime, tmp_path: Path
) -> None:
    """End to end on SQLite: the real worker hands a Slack row to the transport, Slack posts
    and answers fatal_error, and the row ends `sent` with one message in the channel."""
    clock = WorkerClock(datetime(2026, 11, 23, 9, 5, tzinfo=UTC))
    settings = Settings(
        _env_file=None,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'pulse.db'}",
        PULSE_DATA_DIR=tmp_path / "var",
    )
    app = PlanPulse(settings, clock=clock)
    try:
        await app.migrate()
        payload = SlackPayload(CHANNEL, (SlackPost("Weekly digest"),)).as_outbox()
        async with app.sessions() as session, session.begin():
            outbox_id = await OutboxRepository(session).enqueue(
                dedupe_key="digest:north:2026-W48",
                kind="digest",
                channel="slack",
                recipient=CHANNEL,
                payload=payload,
                now=clock(),
            )
        fake_slack.fail_next("chat.postMessage", error="fatal_error", record=True)
        worker = OutboxWorker(
            app.sessions, {"slack": transport_for(fake_slack, fake_time)}, clock=clock
        )
        assert await worker.drain() == 1
        async with app.sessions() as session:
            stored = await session.get(OutboxRow, outbox_id)
            assert stored is not None
            assert stored.state == "sent"
            assert stored.external_id == fake_slack.posted[0]["ts"]
    finally:
        await app.close()
    assert len(fake_slack.posted) == 1
    assert len(post_calls(fake_slack)) == 1


async def test_the_fake_answers_what_the_bolt_app_will_call(fake_slack: FakeSlack) -> None:
    """The fake Slack answers auth.test, chat.update, views.open and views.publish as Slack
    does, and records each call with its parameters."""
    client = fake_slack.client()
    assert (await client.auth_test())["bot_id"]
    posted = await client.chat_postMessage(channel=CHANNEL, text="before")
    await client.chat_update(channel=CHANNEL, ts=posted["ts"], text="after")
    assert [m["text"] for m in fake_slack.messages(CHANNEL)] == ["after"]
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Update"}, "blocks": []}
    assert (await client.views_open(trigger_id="1.2.abc", view=view))["view"]["id"]
    await client.views_publish(user_id="U0DANA", view={"type": "home", "blocks": []})
    assert [v["type"] for v in fake_slack.views] == ["modal", "home"]
    assert [method for method, _ in fake_slack.calls] == [
        "auth.test",
        "chat.postMessage",
        "chat.update",
        "views.open",
        "views.publish",
    ]
