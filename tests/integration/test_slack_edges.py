"""Slack edge requests against the real bolt app over HTTP (issue 11.11): an absurd
timestamp, and signed payloads nested too deep or with fields of types Slack never sends,
are 400s logged as one line (no traceback, no body), record nothing, and the next good
request is still answered."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.fake_slack import slack_signature
from tests.integration.test_slack_app import (
    SECRET,
    Slack,
    rate_payload,
    slack,
    sqlite_url,
    view_payload,
)

__all__ = ["slack", "sqlite_url"]

MARK = "BODY-MARKER-7f3a"  # in every hostile body: it must never reach the log


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def interaction(payload: dict[str, Any]) -> str:
    return urlencode({"payload": json.dumps({**payload, "marker": MARK})})


def rate(**changes: Any) -> dict[str, Any]:
    payload = rate_payload("UAW00001", "1:1.1:2")
    payload.update(changes)
    return payload


SIGNED_BAD: dict[str, tuple[str, str]] = {
    "JSON nested 30,000 deep": (
        '{"type": "event_callback", "marker": "' + MARK + '", "event": ' + deep(30_000) + "}",
        "application/json",
    ),
    "form payload nested 10,000 deep": (
        urlencode({"payload": '{"type": "block_actions", "x": ' + deep(10_000) + "}"}),
        "application/x-www-form-urlencoded",
    ),
    "JSON nested 500 deep": (
        json.dumps({"type": "event_callback", "marker": MARK, "event": json.loads(deep(500))}),
        "application/json",
    ),
    "user a string": (interaction(rate(user="UAW00001")), "application/x-www-form-urlencoded"),
    "actions not a list": (
        interaction(rate(actions={"action_id": "rate"})),
        "application/x-www-form-urlencoded",
    ),
    "actions a string": (interaction(rate(actions="rate")), "application/x-www-form-urlencoded"),
    "actions empty": (interaction(rate(actions=[])), "application/x-www-form-urlencoded"),
    "an action a string": (
        interaction(rate(actions=["rate"])),
        "application/x-www-form-urlencoded",
    ),
    "selected option a string": (
        interaction(rate(actions=[{"action_id": "rate", "selected_option": "1:1.1:2"}])),
        "application/x-www-form-urlencoded",
    ),
    "container a string": (
        interaction(rate(container="D1")),
        "application/x-www-form-urlencoded",
    ),
    "channel a list": (interaction(rate(channel=["D1"])), "application/x-www-form-urlencoded"),
    "team a number": (interaction(rate(team=7)), "application/x-www-form-urlencoded"),
    "message blocks a dict": (
        interaction(rate(message={"ts": "1.0", "blocks": {"a": 1}})),
        "application/x-www-form-urlencoded",
    ),
    "view null": (
        interaction({**view_payload("UAW00001", 1, {}), "view": None}),
        "application/x-www-form-urlencoded",
    ),
    "view a string": (
        interaction({**view_payload("UAW00001", 1, {}), "view": "pulse_update"}),
        "application/x-www-form-urlencoded",
    ),
    "view state a list": (
        interaction(
            {
                **view_payload("UAW00001", 1, {}),
                "view": {"callback_id": "pulse_update", "id": "V1", "state": []},
            }
        ),
        "application/x-www-form-urlencoded",
    ),
    "view values not blocks": (
        interaction(view_payload("UAW00001", 1, {"rating:1.1": ["x"]})),
        "application/x-www-form-urlencoded",
    ),
    "event a string": (
        json.dumps({"type": "event_callback", "marker": MARK, "event": "app_home_opened"}),
        "application/json",
    ),
    "event type a number": (
        json.dumps({"type": "event_callback", "marker": MARK, "event": {"type": 5}}),
        "application/json",
    ),
    "authorizations strings": (
        json.dumps(
            {
                "type": "event_callback",
                "marker": MARK,
                "authorizations": ["T1"],
                "event": {"type": "app_home_opened", "user": "UAW00001", "tab": "home"},
            }
        ),
        "application/json",
    ),
}


async def assert_refused_cleanly(
    slack: Slack, caplog: pytest.LogCaptureFixture, status: int, text: str
) -> None:
    assert status == 400, text
    assert "Traceback" not in text
    assert await slack.updates() == []
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(records) == 1, [r.getMessage() for r in records]
    (record,) = records
    assert record.exc_info is None
    assert "\n" not in record.getMessage()
    assert MARK not in record.getMessage()
    assert record.name == "handlers.slack.guard"
    status, answer = await slack.event({"type": "url_verification", "challenge": "still-here"})
    assert (status, json.loads(answer)) == (200, {"challenge": "still-here"})


@pytest.mark.parametrize("digits", [5_000, 50, 13])
async def test_an_absurd_timestamp_is_a_400_in_one_line(
    slack: Slack, caplog: pytest.LogCaptureFixture, digits: int
) -> None:
    """A correctly signed request whose timestamp has thousands (or just too many) digits
    gets 400 and one log line, not a 500 and a traceback."""
    body = interaction(rate())
    stamp = "9" * digits
    signature = slack_signature(SECRET, stamp, body)
    headers = {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}
    with caplog.at_level(logging.INFO):
        status, text = await slack.post(
            body, content_type="application/x-www-form-urlencoded", headers=headers
        )
        await assert_refused_cleanly(slack, caplog, status, text)


@pytest.mark.parametrize("case", list(SIGNED_BAD))
async def test_a_signed_payload_slack_never_sends_is_a_400_in_one_line(
    slack: Slack, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    """A correctly signed payload nested too deep, or with a field of a type Slack never
    sends (`user` a string, `actions` not a list, `view: null`, …), gets 400, records
    nothing, and is logged as one line with no traceback and none of its body."""
    body, content_type = SIGNED_BAD[case]
    with caplog.at_level(logging.INFO):
        status, text = await slack.post(body, content_type=content_type)
        await assert_refused_cleanly(slack, caplog, status, text)
