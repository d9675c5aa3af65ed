"""The Workflows transport alone, against the fake endpoint on loopback: what each answer
of Workflows means for the post (sent, put off, failed, or left to a person)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from bot.services.transports import Reconciled, Result
from digests.teams import check_message
from handlers.teams.workflows import WorkflowsTransport, retry_after
from storage.outbox import OutboxMessage
from tests.fake_workflows import FakeWorkflows, running_workflows
from tests.postgres import free_port


@pytest.fixture
async def fake() -> AsyncIterator[FakeWorkflows]:
    async with running_workflows() as workflows:
        yield workflows


def row(network: str = "team", attempts: int = 1) -> OutboxMessage:
    message = check_message("T", sent_at="x")
    payload = {"network": network, "part": 1, "parts": 1, "message": message}
    return OutboxMessage(1, "digest", "teams", network, None, payload, None, attempts, "sending")


def transport(url: str | None) -> WorkflowsTransport:
    async def webhook_for(_: str) -> str | None:
        return url

    async def no_wait(_: float) -> None:
        return None

    return WorkflowsTransport(webhook_for, interval=0, sleep=no_wait)


@pytest.mark.parametrize(
    ("status", "result", "words"),
    [
        (503, Result.RETRY, "503"),
        (502, Result.RETRY, "502"),
        (408, Result.RETRY, "408"),
        (504, Result.UNKNOWN, "may have run"),
        (400, Result.FAILED, "refused the card"),
        (403, Result.FAILED, "signature"),
    ],
)
async def test_each_answer_of_workflows_means_what_it_says(
    fake: FakeWorkflows, status: int, result: Result, words: str
) -> None:
    """Nothing ran (408, 5xx but 504): put off; a gateway timeout: left to a person; a
    refusal: failed with the reason. The error never holds the URL."""
    fake.fail_next(status=status)
    outcome = await transport(fake.url("team")).deliver(row())
    assert outcome.result is result
    assert outcome.error is not None
    assert words in outcome.error
    assert "sig=" not in outcome.error


async def test_no_connection_is_retried_and_a_dead_worker_is_never_resent() -> None:
    """A refused connection sent nothing: put off. A post a stopped worker was sending
    cannot be looked for in the channel, so it is left to a person."""
    dead = f"http://127.0.0.1:{free_port()}/workflows/a/triggers/manual/paths/invoke?sig=s"
    outcome = await transport(dead).deliver(row())
    assert outcome.result is Result.RETRY
    assert await transport(dead).reconcile(row()) is Reconciled.UNKNOWN


async def test_a_url_that_is_not_one_fails_without_showing_it() -> None:
    """A stored webhook that cannot be a URL fails the post, and the error does not repeat
    it (aiohttp's own error would)."""
    outcome = await transport("http://[::1/secret-sig").deliver(row())
    assert outcome.result is Result.FAILED
    assert outcome.error == "the webhook URL is not a URL"


async def test_a_later_post_to_a_throttled_network_waits_for_the_earlier_one(
    fake: FakeWorkflows,
) -> None:
    """Once a network's post is throttled, its next post is put off until then without
    being sent, so the parts arrive in order; another network's posts go on."""
    fake.fail_next(status=429, retry_after=120)
    sender = transport(fake.url("team"))
    first = await sender.deliver(row())
    second = await sender.deliver(row())
    other = await sender.deliver(row("other"))
    assert first.result is Result.RETRY
    assert first.retry_after == 120
    assert second.result is Result.RETRY
    assert second.retry_after is not None
    assert second.retry_after > 119
    assert other.result is Result.SENT
    assert [r.status for r in fake.requests] == [429, 202]


def test_retry_after_reads_seconds_and_http_dates() -> None:
    """Seconds or an HTTP date; a missing, unreadable or negative one waits the default or
    nothing, and never more than an hour."""
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert retry_after("30") == 30
    assert retry_after("Fri, 27 Nov 2026 12:01:30 GMT", now=now) == 90
    assert retry_after(None) == 60
    assert retry_after("soon") == 60
    assert retry_after("-5") == 0
    assert retry_after("86400") == 3600
