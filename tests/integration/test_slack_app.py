"""The real bolt app served over HTTP on loopback, its Web API calls going to a fake Slack,
against a real database with a planned cycle: every answer recorded exactly once, every
forged, stale, tampered or malformed request refused without a write (RELIABILITY.md
scenarios 1-16 and 18)."""

from __future__ import annotations

import csv
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.messages import slack_blocks as kit
from bot.services.prompting import Cycles
from handlers.files.importing import import_plan
from handlers.slack.answers import Followups
from handlers.slack.app import build_slack_app
from handlers.slack.guard import build_http_app
from storage.db import create_engine, migrate, session_factory
from storage.models import AuditRow, PersonRow, PromptRow, UpdateRow
from tests.block_kit import view_problems
from tests.conftest import FIXTURES, Clock, import_small_plan
from tests.fake_slack import FakeSlack, slack_signature

PLANS = FIXTURES / "plans"
MONDAY = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
SECRET = "test-signing-secret-0123456789"
SLACK_IDS = {"AW": "UAW00001", "MC": "UMC00001", "DC": "UDC00001", "GR": "UGR00001"}
HOSTILE = "<!channel> <!here> <@U123> <https://evil|Council> &amp; *bold* @channel"


def _people_csv(path: Path) -> Path:
    lines = (PLANS / "small-people.csv").read_text().splitlines()
    out = [lines[0]]
    for line in lines[1:]:
        cells = line.split(",")
        cells[3] = SLACK_IDS.get(cells[0], "")
        out.append(",".join(cells))
    path.write_text("\n".join(out) + "\n")
    return path


async def _database(url: str, tmp_path: Path, clock: Clock) -> async_sessionmaker[AsyncSession]:
    await migrate(url)
    sessions = session_factory(create_engine(url))
    await import_small_plan(sessions, now=clock(), people_path=_people_csv(tmp_path / "people.csv"))
    await Cycles(sessions, mail_from="pulse@council.example", clock=clock).start_cycle(
        "small", now=clock()
    )
    return sessions


@dataclass
class Slack:
    """The app under test, served on loopback, and a way to talk to it as Slack does."""

    app: AsyncApp
    sessions: async_sessionmaker[AsyncSession]
    fake: FakeSlack
    http: aiohttp.ClientSession
    url: str
    followups: Followups
    runners: list[web.AppRunner] = field(default_factory=list)

    def sign(self, body: str, *, ts: int | None = None) -> dict[str, str]:
        stamp = str(ts if ts is not None else int(time.time()))
        signature = slack_signature(SECRET, stamp, body)
        return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}

    async def post(
        self, body: str, *, content_type: str, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        sent = {
            "Content-Type": content_type,
            **(headers if headers is not None else self.sign(body)),
        }
        async with self.http.post(self.url, data=body.encode(), headers=sent) as response:
            return response.status, await response.text()

    async def interact(self, payload: dict[str, Any], **headers: str) -> tuple[int, str]:
        body = urlencode({"payload": json.dumps(payload)})
        return await self.post(
            body,
            content_type="application/x-www-form-urlencoded",
            headers={**self.sign(body), **headers},
        )

    async def event(self, payload: dict[str, Any], **headers: str) -> tuple[int, str]:
        body = json.dumps(payload)
        return await self.post(
            body, content_type="application/json", headers={**self.sign(body), **headers}
        )

    async def command(self, user: str, text: str) -> tuple[int, str]:
        body = urlencode(
            {
                "command": "/pulse",
                "text": text,
                "user_id": user,
                "team_id": "TPULSE",
                "channel_id": "D1",
                "trigger_id": "trig-cmd",
                "response_url": self.fake.base_url + "respond",
            }
        )
        return await self.post(body, content_type="application/x-www-form-urlencoded")

    async def prompt_id(self, person_key: str) -> int:
        async with self.sessions() as session:
            found = await session.scalar(
                select(PromptRow.id)
                .join(PersonRow, PersonRow.id == PromptRow.person_id)
                .where(PersonRow.key == person_key)
            )
            assert found is not None
            return int(found)

    async def updates(self) -> list[UpdateRow]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(UpdateRow).where(UpdateRow.source == "slack").order_by(UpdateRow.id)
            )
            return list(rows.all())

    async def dm(self, person_key: str) -> tuple[str, str, list[dict[str, Any]]]:
        """Post a person's prompt DM to the fake as the transport would: (channel, ts, blocks)."""
        prompt_id = await self.prompt_id(person_key)
        items = await _items(self.sessions, prompt_id)
        blocks = kit.prompt_blocks("Small plan", person_key, items, prompt_id)[0]
        posted = await self.fake.client().chat_postMessage(
            channel=SLACK_IDS[person_key], text="Progress update", blocks=blocks
        )
        return str(posted["channel"]), str(posted["ts"]), blocks

    def responses(self) -> list[str]:
        return [str(p.get("text", "")) for p in self.fake.calls_to("respond")]


async def _items(sessions: async_sessionmaker[AsyncSession], prompt_id: int) -> list[Any]:
    from bot.services.cycles import prompt_items as items_of
    from storage.repositories import PlanRepository

    async with sessions() as session:
        prompt = await session.get(PromptRow, prompt_id)
        assert prompt is not None
        tracked = await PlanRepository(session).tracked("small")
    return items_of(tracked, prompt.milestone_refs, date(2026, 11, 23), "x")


def rate_payload(
    user: str,
    value: str,
    *,
    channel: str = "D1",
    ts: str = "1.0",
    blocks: list[dict[str, Any]] | None = None,
    action_ts: str = "1795424700.000100",
    action_id: str = "rate",
    response_url: str = "",
) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "team": {"id": "TPULSE", "domain": "council"},
        "user": {"id": user, "team_id": "TPULSE"},
        "api_app_id": "APULSE",
        "token": "legacy",
        "trigger_id": "trig-1",
        "container": {"type": "message", "message_ts": ts, "channel_id": channel},
        "channel": {"id": channel},
        "message": {"type": "message", "ts": ts, "blocks": blocks or []},
        "response_url": response_url,
        "actions": [
            {
                "type": "static_select",
                "action_id": action_id,
                "block_id": "m:x",
                "selected_option": {"text": {"type": "plain_text", "text": "r"}, "value": value},
                "action_ts": action_ts,
            }
        ],
    }


def view_payload(
    user: str,
    prompt_id: int,
    values: dict[str, Any],
    *,
    view_id: str = "V1",
    channel: str = "",
    ts: str = "",
) -> dict[str, Any]:
    meta = kit.ModalMetadata(prompt_id, 0, channel or None, ts or None).dumps()
    return {
        "type": "view_submission",
        "team": {"id": "TPULSE"},
        "user": {"id": user, "team_id": "TPULSE"},
        "api_app_id": "APULSE",
        "trigger_id": "trig-v",
        "view": {
            "id": view_id,
            "type": "modal",
            "callback_id": "pulse_update",
            "private_metadata": meta,
            "state": {"values": values},
            "hash": "h1",
        },
    }


def modal_values(
    ref: str, *, rating: int | None = None, note: str | None = None, evidence: str | None = None
) -> dict[str, Any]:
    values: dict[str, Any] = {
        f"rating:{ref}": {"rating": {"type": "static_select", "selected_option": None}},
        f"note:{ref}": {"note": {"type": "plain_text_input", "value": note}},
        f"evidence:{ref}": {"evidence": {"type": "plain_text_input", "value": evidence}},
        f"date:{ref}": {"revised": {"type": "datepicker", "selected_date": None}},
        f"support:{ref}": {"support": {"type": "checkboxes", "selected_options": []}},
    }
    if rating is not None:
        values[f"rating:{ref}"]["rating"]["selected_option"] = {"value": str(rating)}
    return values


async def _serve(app: AsyncApp, max_body: int = 64 * 1024) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(build_http_app(app, signing_secret=SECRET, max_body=max_body))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = int(runner.addresses[0][1])
    return runner, f"http://127.0.0.1:{port}/slack/events"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'pulse.db'}"


async def _harness(url: str, tmp_path: Path, fake: FakeSlack) -> AsyncIterator[Slack]:
    clock = Clock(MONDAY)
    sessions = await _database(url, tmp_path, clock)
    client = fake.client()
    followups = Followups()
    app = build_slack_app(
        sessions=sessions, client=client, signing_secret=SECRET, clock=clock, followups=followups
    )
    runner, endpoint = await _serve(app)
    http = aiohttp.ClientSession()
    slack = Slack(app, sessions, fake, http, endpoint, followups, [runner])
    try:
        yield slack
    finally:
        await followups.wait()
        await http.close()
        for r in slack.runners:
            await r.cleanup()
        await client.session.close() if client.session else None
        engine = sessions.kw["bind"]
        await engine.dispose()


@pytest.fixture
async def slack(sqlite_url: str, tmp_path: Path, fake_slack: FakeSlack) -> AsyncIterator[Slack]:
    async for harness in _harness(sqlite_url, tmp_path, fake_slack):
        yield harness


@pytest.fixture
async def slack_any_db(db_url: str, tmp_path: Path, fake_slack: FakeSlack) -> AsyncIterator[Slack]:
    async for harness in _harness(db_url, tmp_path, fake_slack):
        yield harness


def _texts(node: Any) -> Iterator[tuple[str, str]]:
    """Every (text object type, text) in a Block Kit tree."""
    if isinstance(node, dict):
        if node.get("type") in ("plain_text", "mrkdwn") and isinstance(node.get("text"), str):
            yield node["type"], node["text"]
        for value in node.values():
            yield from _texts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _texts(value)


# --- scenario 1, 8, 12: a rating is recorded once, before the ack ------------------------


async def test_a_signed_rating_is_recorded_before_the_ack_and_the_dm_shows_it(slack: Slack) -> None:
    """A valid signed rating click gets 200 only once its update is committed, and the DM is
    updated to show the recorded rating, and for a 1 where to add what changed for children
    and families (scenario 1)."""
    channel, ts, blocks = await slack.dm("AW")
    prompt = await slack.prompt_id("AW")
    status, _ = await slack.interact(
        rate_payload("UAW00001", f"{prompt}:2.3:1", channel=channel, ts=ts, blocks=blocks)
    )
    assert status == 200
    rows = await slack.updates()
    assert [(r.rating, r.note) for r in rows] == [(1, None)]
    await slack.followups.wait()
    message = slack.fake.messages(channel)[0]
    shown = [text for _, text in _texts(message["blocks"])]
    assert any("Recorded 1 – Achieved" in text for text in shown)
    assert any(
        "What changed for children and families? Add it with Update with notes." in text
        for text in shown
    )
    section = next(b for b in message["blocks"] if b.get("block_id") == "m:2.3")
    assert section["accessory"]["initial_option"]["value"] == f"{prompt}:2.3:1"


async def test_a_replayed_rating_request_is_recorded_once(slack_any_db: Slack) -> None:
    """The same signed click delivered three times, two of them at once, is one update
    (scenarios 8 and 12), on SQLite and PostgreSQL."""
    import asyncio

    slack = slack_any_db
    prompt = await slack.prompt_id("AW")
    payload = rate_payload("UAW00001", f"{prompt}:2.3:2")
    body = urlencode({"payload": json.dumps(payload)})
    headers = slack.sign(body)
    kind = "application/x-www-form-urlencoded"
    results = await asyncio.gather(
        *(slack.post(body, content_type=kind, headers=headers) for _ in range(2))
    )
    results.append(await slack.post(body, content_type=kind, headers=headers))
    assert [status for status, _ in results] == [200, 200, 200]
    assert len(await slack.updates()) == 1


async def test_a_double_submitted_modal_is_recorded_once(slack: Slack) -> None:
    """Submitting the same modal view twice gives one update per milestone (scenario 12)."""
    prompt = await slack.prompt_id("AW")
    values = modal_values("2.3", rating=2, note="Interviews analysed")
    for _ in range(2):
        status, text = await slack.interact(view_payload("UAW00001", prompt, values))
        assert status == 200
        assert "errors" not in text
    rows = await slack.updates()
    assert [(r.rating, r.note) for r in rows] == [(2, "Interviews analysed")]


async def test_no_change_in_the_form_is_judged_as_in_an_email(slack: Slack) -> None:
    """ "No change" as the form's note with no rating re-confirms 2.3's rating 2, as an email
    line would; on overdue 1.1 (rated 3) it asks for a note instead, and nothing is recorded."""
    prompt = await slack.prompt_id("AW")
    status, text = await slack.interact(
        view_payload("UAW00001", prompt, modal_values("1.1", note="No change"))
    )
    assert status == 200
    assert "overdue" in json.loads(text)["errors"]["note:1.1"]
    assert await slack.updates() == []
    status, text = await slack.interact(
        view_payload("UAW00001", prompt, modal_values("2.3", note="no change"), view_id="V2")
    )
    assert status == 200
    assert "errors" not in text
    assert [(r.rating, r.note) for r in await slack.updates()] == [
        (2, "Needs <script>alert(1)</script> and <!channel> **now**")
    ]


# --- scenarios 2-7: forged, stale and malformed requests ----------------------------------


async def test_a_bad_signature_is_refused_without_a_write(slack: Slack) -> None:
    """A click signed with the wrong secret gets 401 and records nothing (scenario 2)."""
    prompt = await slack.prompt_id("AW")
    body = urlencode({"payload": json.dumps(rate_payload("UAW00001", f"{prompt}:2.3:2"))})
    stamp = str(int(time.time()))
    forged = slack_signature("wrong-secret", stamp, body)
    status, _ = await slack.post(
        body,
        content_type="application/x-www-form-urlencoded",
        headers={"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": forged},
    )
    assert status == 401
    assert await slack.updates() == []


@pytest.mark.parametrize("skew", [-600, 600])
async def test_a_timestamp_ten_minutes_off_is_refused(slack: Slack, skew: int) -> None:
    """A correctly signed request stamped ten minutes in the past or future gets 401
    (scenarios 3 and 4)."""
    prompt = await slack.prompt_id("AW")
    body = urlencode({"payload": json.dumps(rate_payload("UAW00001", f"{prompt}:2.3:2"))})
    status, _ = await slack.post(
        body,
        content_type="application/x-www-form-urlencoded",
        headers=slack.sign(body, ts=int(time.time()) + skew),
    )
    assert status == 401
    assert await slack.updates() == []


async def test_a_skewed_clock_is_told_from_a_forger_and_alerted_once(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    """Correctly signed clicks stamped seven minutes ahead of our clock can only mean the
    clocks disagree (scenario 55): refused, as they must be, with one error naming the
    offset, not one per click. A forged request stamped as far off is only a warning."""
    prompt = await slack.prompt_id("AW")
    body = urlencode({"payload": json.dumps(rate_payload("UAW00001", f"{prompt}:2.3:2"))})
    stamp = int(time.time()) + 420
    forged = slack_signature("wrong-secret", str(stamp), body)
    with caplog.at_level(logging.WARNING, logger="handlers.slack.guard"):
        refused = [
            await slack.post(
                body,
                content_type="application/x-www-form-urlencoded",
                headers={"X-Slack-Request-Timestamp": str(stamp), "X-Slack-Signature": forged},
            )
        ]
        forged_errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        for _ in range(3):
            refused.append(
                await slack.post(
                    body,
                    content_type="application/x-www-form-urlencoded",
                    headers=slack.sign(body, ts=stamp),
                )
            )
    assert [status for status, _ in refused] == [401] * 4
    assert await slack.updates() == []
    assert forged_errors == []
    alerts = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(alerts) == 1
    assert "clocks disagree" in alerts[0]
    assert re.search(r"stamped 4[12]\d s ahead of ours", alerts[0])


@pytest.mark.parametrize("drop", ["X-Slack-Request-Timestamp", "X-Slack-Signature"])
async def test_missing_signature_headers_are_refused(slack: Slack, drop: str) -> None:
    """A request without its signature or timestamp header gets 401 (scenario 5)."""
    body = urlencode({"payload": json.dumps(rate_payload("UAW00001", "1:2.3:2"))})
    headers = {k: v for k, v in slack.sign(body).items() if k != drop}
    status, _ = await slack.post(
        body, content_type="application/x-www-form-urlencoded", headers=headers
    )
    assert status == 401


async def test_a_non_numeric_timestamp_is_a_clean_400(slack: Slack) -> None:
    """A non-numeric timestamp gets 400 with no stack trace, not bolt's 500 (scenario 6)."""
    body = urlencode({"payload": json.dumps(rate_payload("UAW00001", "1:2.3:2"))})
    status, text = await slack.post(
        body,
        content_type="application/x-www-form-urlencoded",
        headers={"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"},
    )
    assert status == 400
    assert "Traceback" not in text


async def test_malformed_and_oversized_bodies_are_refused_and_the_server_carries_on(
    slack: Slack,
) -> None:
    """Signed but malformed JSON, a form whose payload is not JSON, and a body over the cap
    get 4xx, and the next good request is still answered (scenario 7)."""
    bad_json = '{"type": "event_callback", '
    status, text = await slack.post(bad_json, content_type="application/json")
    assert status == 400
    assert "Traceback" not in text
    bad_form = "payload=%7Bnot-json"
    status, _ = await slack.post(bad_form, content_type="application/x-www-form-urlencoded")
    assert status == 400
    huge = "payload=" + "a" * (65 * 1024)
    status, _ = await slack.post(huge, content_type="application/x-www-form-urlencoded")
    assert status == 413
    status, text = await slack.event({"type": "url_verification", "challenge": "still-here"})
    assert (status, json.loads(text)) == (200, {"challenge": "still-here"})


# --- scenarios 9-11: who may answer, and what -------------------------------------------


async def test_a_click_by_someone_else_is_refused_and_they_are_told(slack: Slack) -> None:
    """Someone else clicking a rating on Alex's prompt (a forwarded message) records nothing
    and is told why (scenario 9): a joint lead of another milestone, a Slack user not in the
    plan, and a lead with no share in the prompt."""
    prompt = await slack.prompt_id("AW")
    respond = slack.fake.base_url + "respond"
    status, _ = await slack.interact(
        rate_payload("UMC00001", f"{prompt}:2.3:2", response_url=respond)
    )
    assert status == 200
    status, _ = await slack.interact(
        rate_payload("UNOBODY01", f"{prompt}:2.3:2", response_url=respond, action_ts="2.0")
    )
    assert status == 200
    status, _ = await slack.interact(
        rate_payload("UDC00001", f"{prompt}:1.1:2", response_url=respond, action_ts="3.0")
    )
    assert status == 200
    assert await slack.updates() == []
    told = slack.responses()
    assert "You do not lead 2.3" in told[0]  # Morgan jointly leads 1.1 only
    assert "not linked" in told[1]
    assert "sent to someone else" in told[2]


@pytest.mark.parametrize(
    "value", ["{p}:2.3:0", "{p}:2.3:5", "{p}:2.3:x", "x:2.3:2", "{p}:9.9:2", "{p}", "999:2.3:2"]
)
async def test_a_tampered_value_records_nothing(slack: Slack, value: str) -> None:
    """A rating outside 1-4, a prompt id or reference that is not one, or a value of the
    wrong shape records nothing (scenario 10)."""
    prompt = await slack.prompt_id("AW")
    respond = slack.fake.base_url + "respond"
    status, _ = await slack.interact(
        rate_payload("UAW00001", value.format(p=prompt), response_url=respond)
    )
    assert status == 200
    assert await slack.updates() == []
    assert len(slack.responses()) == 1  # and the user is told


async def test_an_unknown_action_is_refused(slack: Slack) -> None:
    """An action id the app does not know gets bolt's 404 and records nothing (scenario 10)."""
    prompt = await slack.prompt_id("AW")
    status, _ = await slack.interact(
        rate_payload("UAW00001", f"{prompt}:2.3:2", action_id="rate_everything")
    )
    assert status == 404
    assert await slack.updates() == []


async def test_a_worse_rating_without_a_note_is_sent_to_the_modal(slack: Slack) -> None:
    """Rating 2.3 worse than its current 2 from the DM records nothing and says to use
    Update with notes, the email note rule (DESIGN.md §9)."""
    prompt = await slack.prompt_id("AW")
    respond = slack.fake.base_url + "respond"
    status, _ = await slack.interact(
        rate_payload("UAW00001", f"{prompt}:2.3:3", response_url=respond)
    )
    assert status == 200
    assert await slack.updates() == []
    assert "Update with notes" in slack.responses()[0]
    assert "a note is required" in slack.responses()[0]


async def test_a_modal_with_a_missing_or_too_long_note_gets_field_errors(slack: Slack) -> None:
    """A modal rating overdue 1.1 as 3 with no note, or with a note over 2,000 characters,
    is answered with `response_action: errors` on the note field, and nothing is recorded
    (scenario 11)."""
    prompt = await slack.prompt_id("AW")
    status, text = await slack.interact(
        view_payload("UAW00001", prompt, modal_values("1.1", rating=3))
    )
    assert status == 200
    answer = json.loads(text)
    assert answer["response_action"] == "errors"
    assert "overdue" in answer["errors"]["note:1.1"]
    long_note = "x" * 2001
    status, text = await slack.interact(
        view_payload(
            "UAW00001", prompt, modal_values("2.3", rating=2, note=long_note), view_id="V2"
        )
    )
    answer = json.loads(text)
    assert answer["response_action"] == "errors"
    assert "2000" in answer["errors"]["note:2.3"]
    assert await slack.updates() == []


# --- scenario 13: the database is down ----------------------------------------------------


async def test_a_database_failure_is_not_acked_as_saved_and_the_user_is_told(
    slack: Slack,
) -> None:
    """With the database unavailable a click is not recorded and the user is told to try
    again, and a modal submission gets an error instead of closing (scenario 13)."""

    def down() -> AsyncSession:
        raise OperationalError("BEGIN", {}, Exception("database is down"))

    broken = build_slack_app(
        sessions=down, client=slack.fake.client(), signing_secret=SECRET, clock=Clock(MONDAY)
    )
    runner, url = await _serve(broken)
    slack.runners.append(runner)
    slack.url = url
    respond = slack.fake.base_url + "respond"
    status, _ = await slack.interact(rate_payload("UAW00001", "1:2.3:2", response_url=respond))
    assert status == 200
    assert "try again" in slack.responses()[0]
    status, text = await slack.interact(view_payload("UAW00001", 1, modal_values("2.3", rating=2)))
    answer = json.loads(text)
    assert answer["response_action"] == "errors"
    assert "try again" in next(iter(answer["errors"].values()))
    assert await slack.updates() == []
    await broken.client.session.close() if broken.client.session else None


# --- group commit: concurrent clicks share a transaction ----------------------------------


async def _prompts_with_dms(slack: Slack) -> list[tuple[str, int, list[str], str, str]]:
    """(Slack user, prompt id, its references, DM channel, DM ts) for everyone prompted."""
    found = []
    for person, user in SLACK_IDS.items():
        async with slack.sessions() as session:
            prompt = await session.scalar(
                select(PromptRow)
                .join(PersonRow, PersonRow.id == PromptRow.person_id)
                .where(PersonRow.key == person)
            )
        if prompt is None:
            continue
        channel, ts, _ = await slack.dm(person)
        found.append((user, prompt.id, list(prompt.milestone_refs), channel, ts))
    return found


async def test_concurrent_clicks_are_each_recorded_acked_and_shown(slack_any_db: Slack) -> None:
    """A burst of rating clicks from several leads at once, committed together, is every
    one recorded, answered 200, and followed by the update of its DM; on SQLite and
    PostgreSQL."""
    import asyncio

    slack = slack_any_db
    targets = [
        (user, prompt, ref, channel, ts)
        for user, prompt, refs, channel, ts in await _prompts_with_dms(slack)
        for ref in refs
    ]
    clicks = [
        rate_payload(
            user, f"{prompt}:{ref}:1", channel=channel, ts=ts, action_ts=f"1795424700.{n:06d}"
        )
        for n, (user, prompt, ref, channel, ts) in enumerate(targets)
    ]
    assert len(clicks) >= 4
    results = await asyncio.gather(*(slack.interact(payload) for payload in clicks))
    assert [status for status, _ in results] == [200] * len(clicks)
    rows = await slack.updates()
    assert sorted(str(r.external_id) for r in rows) == sorted(
        f"slack:{c['actions'][0]['action_ts']}:{c['user']['id']}"
        f"#{c['actions'][0]['selected_option']['value'].split(':')[1]}"
        for c in clicks
    )
    await slack.followups.wait()
    assert len(slack.fake.calls_to("chat.update")) == len(clicks)


async def test_clicks_committed_together_are_judged_in_turn(slack: Slack) -> None:
    """Clicks on one milestone that arrive together are judged as if each earlier one were
    already saved: none is recorded worse than the rating recorded before it without a
    note, and each refused one is told why."""
    import asyncio

    prompt = await slack.prompt_id("AW")
    respond = slack.fake.base_url + "respond"
    ratings = [1, 2, 1, 2, 3]
    results = await asyncio.gather(
        *(
            slack.interact(
                rate_payload(
                    "UAW00001",
                    f"{prompt}:2.3:{rating}",
                    response_url=respond,
                    action_ts=f"1795424700.{n:06d}",
                )
            )
            for n, rating in enumerate(ratings)
        )
    )
    assert [status for status, _ in results] == [200] * len(ratings)
    recorded = [r.rating for r in await slack.updates()]
    assert 3 not in recorded  # worse than the current 2
    current = 2
    for rating in recorded:
        assert rating is not None
        assert rating <= current
        current = rating
    told = slack.responses()
    assert len(told) == len(ratings) - len(recorded)
    assert all("a note is required" in text for text in told)


async def test_a_failed_group_commit_tells_every_user_in_it(slack: Slack) -> None:
    """When the commit holding a burst of clicks fails, nothing is recorded, no DM shows a
    rating, and every one of those users is told to try again (scenario 13)."""
    import asyncio

    from sqlalchemy import event
    from sqlalchemy.orm import Session

    class FailingSession(Session):
        pass

    def refuse(session: Session) -> None:
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    event.listen(FailingSession, "before_commit", refuse)
    engine = slack.sessions.kw["bind"]
    failing = async_sessionmaker(engine, expire_on_commit=False, sync_session_class=FailingSession)
    broken = build_slack_app(
        sessions=failing, client=slack.fake.client(), signing_secret=SECRET, clock=Clock(MONDAY)
    )
    runner, slack.url = await _serve(broken)
    slack.runners.append(runner)
    respond = slack.fake.base_url + "respond"
    clicks = [
        rate_payload(
            user,
            f"{prompt}:{refs[0]}:1",
            channel=channel,
            ts=ts,
            response_url=respond,
            action_ts=f"1795424700.{n:06d}",
        )
        for n, (user, prompt, refs, channel, ts) in enumerate(await _prompts_with_dms(slack))
    ]
    results = await asyncio.gather(*(slack.interact(payload) for payload in clicks))
    assert [status for status, _ in results] == [200] * len(clicks)
    told = slack.responses()
    assert len(told) == len(clicks)
    assert all("try again" in text for text in told)
    assert await slack.updates() == []
    assert slack.fake.calls_to("chat.update") == []
    await broken.client.session.close() if broken.client.session else None


# --- scenarios 14-16: events, handshakes and hostile notes ---------------------------------


def _home_event(user: str, event_id: str = "Ev1") -> dict[str, Any]:
    return {
        "token": "legacy",
        "team_id": "TPULSE",
        "api_app_id": "APULSE",
        "type": "event_callback",
        "event_id": event_id,
        "event_time": 1795424700,
        "event": {"type": "app_home_opened", "user": user, "channel": "D1", "tab": "home"},
    }


async def test_a_retried_app_home_event_publishes_the_same_view(slack: Slack) -> None:
    """app_home_opened and its Events API retry (X-Slack-Retry-Num: 1) both succeed and
    publish the same view of Alex's milestones (scenario 14)."""
    status, _ = await slack.event(_home_event("UAW00001"))
    assert status == 200
    status, _ = await slack.event(
        _home_event("UAW00001"),
        **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
    )
    assert status == 200
    published = slack.fake.calls_to("views.publish")
    assert len(published) == 2
    assert published[0]["view"] == published[1]["view"]
    shown = " ".join(text for _, text in _texts(published[0]["view"]))
    assert "1.1" in shown
    assert "2.3" in shown


async def test_url_verification_and_ssl_check_are_answered(slack: Slack) -> None:
    """A signed url_verification gets its challenge back and an ssl_check gets 200
    (scenario 15)."""
    status, text = await slack.event(
        {"token": "x", "challenge": "c-123", "type": "url_verification"}
    )
    assert (status, json.loads(text)) == (200, {"challenge": "c-123"})
    status, _ = await slack.post(
        "ssl_check=1&token=x", content_type="application/x-www-form-urlencoded"
    )
    assert status == 200


async def test_a_hostile_note_is_inert_in_the_dm_and_on_app_home(slack: Slack) -> None:
    """A note with <!channel>, <@U123>, a disguised link and mrkdwn is stored as written and
    shown only as plain text in the updated DM and on App Home (scenario 16)."""
    channel, ts, _ = await slack.dm("AW")
    prompt = await slack.prompt_id("AW")
    values = modal_values("2.3", rating=2, note=HOSTILE)
    status, text = await slack.interact(
        view_payload("UAW00001", prompt, values, channel=channel, ts=ts)
    )
    assert status == 200
    assert "errors" not in text
    assert [r.note for r in await slack.updates()] == [HOSTILE]
    await slack.followups.wait()
    await slack.event(_home_event("UAW00001"))
    dm = slack.fake.messages(channel)[0]["blocks"]
    home = slack.fake.calls_to("views.publish")[-1]["view"]
    for shown in (dm, home):
        texts = list(_texts(shown))
        assert ("plain_text", "Note: " + HOSTILE) in texts or (
            "plain_text",
            "Last note: " + HOSTILE,
        ) in texts
        for kind, text in texts:
            if kind == "mrkdwn":
                assert "<!" not in text
                assert "<@" not in text
                assert "<http" not in text


# --- scenario 18: Socket Mode -------------------------------------------------------------


async def test_socket_mode_payloads_with_retry_headers_behave_as_over_http(slack: Slack) -> None:
    """A rating and an app_home_opened event dispatched as Socket Mode requests, with retry
    headers, are recorded and published the same as over HTTP (scenario 18)."""
    prompt = await slack.prompt_id("AW")
    retry: dict[str, str | Sequence[str]] = {
        "x-slack-retry-num": ["1"],
        "x-slack-retry-reason": ["timeout"],
    }
    for _ in range(2):
        response = await slack.app.async_dispatch(
            AsyncBoltRequest(
                body=rate_payload("UAW00001", f"{prompt}:2.3:1"), mode="socket_mode", headers=retry
            )
        )
        assert response.status == 200
    assert len(await slack.updates()) == 1
    response = await slack.app.async_dispatch(
        AsyncBoltRequest(body=_home_event("UAW00001"), mode="socket_mode", headers=retry)
    )
    assert response.status == 200
    assert len(slack.fake.calls_to("views.publish")) == 1


# --- the modal, the command and looking people up -----------------------------------------


async def test_the_update_button_opens_the_modal_and_submitting_replaces_the_dm(
    slack: Slack,
) -> None:
    """Update with notes opens a modal of Alex's milestones; submitting a rating, note,
    revised date and support records them in one go and replaces the DM with a summary."""
    channel, ts, _ = await slack.dm("AW")
    prompt = await slack.prompt_id("AW")
    payload = rate_payload("UAW00001", "", channel=channel, ts=ts)
    payload["actions"] = [
        {"type": "button", "action_id": "open_update", "block_id": "update", "value": str(prompt)}
    ]
    status, _ = await slack.interact(payload)
    assert status == 200
    view = slack.fake.calls_to("views.open")[0]["view"]
    assert view["callback_id"] == "pulse_update"
    assert {b["block_id"] for b in view["blocks"] if b["type"] == "input"} >= {
        "rating:1.1",
        "note:1.1",
        "date:2.3",
        "support:2.3",
    }
    values = {**modal_values("1.1", rating=3, note="Blueprint slipped"), **modal_values("2.3")}
    values["date:1.1"]["revised"]["selected_date"] = "2027-01-31"
    values["support:1.1"]["support"]["selected_options"] = [{"value": "yes"}]
    meta = json.loads(view["private_metadata"])
    submitted = view_payload("UAW00001", prompt, values, channel=meta["channel"], ts=meta["ts"])
    status, text = await slack.interact(submitted)
    assert (status == 200 and text in ("", "{}")) or "errors" not in text
    rows = await slack.updates()
    assert [(r.rating, r.note, r.revised_due, r.needs_support) for r in rows] == [
        (3, "Blueprint slipped", date(2027, 1, 31), True)
    ]
    await slack.followups.wait()
    shown = " ".join(t for _, t in _texts(slack.fake.messages(channel)[0]["blocks"]))
    assert "1.1: 3 – In progress · revised date 31 Jan 2027 · support needed" in shown


async def test_pulse_away_reads_a_day_as_every_channel_does(slack: Slack) -> None:
    """`/pulse away` reads a date as an email reply, the update page and the CLI do: a
    two-digit year is 20xx, an ordinal day is a day, and a recurring timescale is refused
    with its reason instead of being taken for a day."""
    status, text = await slack.command("UAW00001", "away 31/01/70")
    assert status == 200
    assert "You are away until 31 Jan 2070" in text
    status, text = await slack.command("UAW00001", "away 14th Dec 2026")
    assert "You are away until 14 Dec 2026" in text
    status, text = await slack.command("UAW00001", "away quarterly")
    assert "Give the date you are back" in text


async def test_the_pulse_command_sets_absence_and_delegate_and_shows_status(
    slack: Slack,
) -> None:
    """`/pulse away`, `delegate`, `back` and `status` change and show what they say; an
    unknown verb gets the help."""
    status, text = await slack.command("UAW00001", "away Jan 2027")
    assert status == 200
    assert "31 Jan 2027" in text  # a month for its last day, as an email reply reads it
    status, text = await slack.command("UAW00001", "away 31/12/26")
    assert status == 200
    assert "31 Dec 2026" in text
    status, text = await slack.command("UAW00001", "delegate <@UMC00001|morgan> until 2027-01-15")
    assert "Morgan Clarke" in text
    async with slack.sessions() as session:
        alex = await session.scalar(select(PersonRow).where(PersonRow.key == "AW"))
        morgan = await session.scalar(select(PersonRow).where(PersonRow.key == "MC"))
        assert alex is not None
        assert morgan is not None
        assert alex.delegate_id == morgan.id
        assert alex.away_until == date(2027, 1, 15)
    _, text = await slack.command("UAW00001", "back")
    assert "Welcome back" in text
    _, text = await slack.command("UAW00001", "status")
    assert "2.3" in text
    _, text = await slack.command("UAW00001", "dance")
    assert "/pulse status" in text
    _, text = await slack.command("UNOBODY01", "status")
    assert "not linked" in text
    status, _ = await slack.command("UAW00001", "")
    assert status == 200
    assert slack.fake.calls_to("views.open")[0]["view"]["callback_id"] == "pulse_update"
    async with slack.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(PromptRow))
        assert count == 4  # the command reused this cycle's prompt


async def test_pulse_delegate_none_clears_the_delegate_and_a_past_until_is_refused(
    slack_any_db: Slack,
) -> None:
    """`/pulse delegate none` clears Alex's delegate, audited as Alex's own through Slack,
    and naming a delegate until a day in the past is refused and changes nothing, on
    SQLite and PostgreSQL."""
    slack = slack_any_db
    _, text = await slack.command("UAW00001", "delegate <@UMC00001|morgan> until 01/01/20")
    assert "That date is in the past." in text
    _, text = await slack.command("UAW00001", "delegate <@UMC00001|morgan>")
    assert "Morgan Clarke answers for you while you are away." in text
    _, text = await slack.command("UAW00001", "delegate none")
    assert "Nobody answers for you now" in text
    async with slack.sessions() as session:
        alex = await session.scalar(select(PersonRow).where(PersonRow.key == "AW"))
        assert alex is not None
        assert alex.delegate_id is None
        audited = (
            await session.execute(
                select(AuditRow.action, AuditRow.actor, AuditRow.channel)
                .where(AuditRow.person_id == alex.id)
                .order_by(AuditRow.id)
            )
        ).all()
    assert [tuple(a) for a in audited] == [
        ("delegate_set", f"person:{alex.id}", "slack"),
        ("delegate_cleared", f"person:{alex.id}", "slack"),
    ]


# --- evidence of impact -------------------------------------------------------------------


async def _open_modal(slack: Slack, person: str) -> tuple[str, str, int, dict[str, Any]]:
    """The person's DM posted and Update with notes clicked: (channel, ts, prompt, view)."""
    channel, ts, _ = await slack.dm(person)
    prompt = await slack.prompt_id(person)
    payload = rate_payload(SLACK_IDS[person], "", channel=channel, ts=ts)
    payload["actions"] = [
        {"type": "button", "action_id": "open_update", "block_id": "update", "value": str(prompt)}
    ]
    status, _ = await slack.interact(payload)
    assert status == 200
    return channel, ts, prompt, slack.fake.calls_to("views.open")[-1]["view"]


async def test_evidence_in_the_modal_is_recorded_and_shown_inert_in_the_dm(
    slack_any_db: Slack,
) -> None:
    """The modal asks, for each milestone, what changed for children and families; 2.3 rated
    1 with evidence full of mrkdwn and mentions stores it as written, and the DM's summary
    and App Home show it only as plain text, on SQLite and PostgreSQL."""
    slack = slack_any_db
    channel, _, prompt, view = await _open_modal(slack, "AW")
    assert view_problems(view) == []
    asked = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
    for ref in ("1.1", "2.3"):
        block = asked[f"evidence:{ref}"]
        assert block["optional"] is True
        assert block["label"]["text"] == (
            "What changed for children and families? (optional, with a rating of 1)"
        )
        assert block["hint"]["text"] == "a sentence, or a link to the evidence"
        assert block["element"]["multiline"] is True
    evidence = "Families wait 3 weeks less " + HOSTILE
    values = {**modal_values("1.1"), **modal_values("2.3", rating=1, evidence=f" {evidence}\n")}
    meta = json.loads(view["private_metadata"])
    status, text = await slack.interact(
        view_payload("UAW00001", prompt, values, channel=meta["channel"], ts=meta["ts"])
    )
    assert status == 200
    assert "errors" not in text
    assert [(r.rating, r.evidence) for r in await slack.updates()] == [(1, evidence)]
    await slack.followups.wait()
    await slack.event(_home_event("UAW00001"))
    home = slack.fake.calls_to("views.publish")[-1]["view"]
    assert view_problems(home) == []
    for shown in (slack.fake.messages(channel)[0]["blocks"], home):
        texts = list(_texts(shown))
        assert ("plain_text", f"What changed: {evidence}") in texts
        assert all("<!" not in t and "<@" not in t for kind, t in texts if kind == "mrkdwn")


async def test_evidence_the_rules_refuse_is_an_error_on_its_own_field(slack_any_db: Slack) -> None:
    """Evidence with a rating of 2, and evidence holding a child's NHS number beside a clean
    note, are each answered with an error on that milestone's evidence field, none on its
    note, and nothing is recorded, on SQLite and PostgreSQL."""
    slack = slack_any_db
    prompt = await slack.prompt_id("AW")
    values = {
        **modal_values("1.1", rating=1, note="Blueprint agreed", evidence="NHS 943 476 5919 ok"),
        **modal_values("2.3", rating=2, evidence="Exit interviews show staff stay longer"),
    }
    status, text = await slack.interact(view_payload("UAW00001", prompt, values))
    assert status == 200
    answer = json.loads(text)
    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {"evidence:1.1", "evidence:2.3"}
    assert answer["errors"]["evidence:1.1"].startswith(
        "This evidence looks like it holds a child's details"
    )
    assert "rating of 1 (achieved)" in answer["errors"]["evidence:2.3"]
    assert await slack.updates() == []


def _evidence_refs(view: dict[str, Any]) -> list[str]:
    """The milestones a modal view asks evidence of, in order."""
    return [
        str(b["block_id"]).partition(":")[2]
        for b in view["blocks"]
        if str(b.get("block_id", "")).startswith("evidence:")
    ]


async def test_a_long_prompt_pages_the_modal_within_block_kit_and_records_evidence(
    slack: Slack, tmp_path: Path
) -> None:
    """Alex's 20 milestones in another plan page the modal (each page a view Slack accepts,
    with every milestone's evidence field); the second page, shown when the first is saved,
    records a milestone achieved with what changed for children and families."""
    path = tmp_path / "big-plan.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["Priority", "Ref", "Key actions", "Lead(s)", "Timescales", "Milestones"])
        for number in range(1, 5):
            steps = "\n".join(
                f"- Step {n} of action {number} {n:02d}/0{number}/27" for n in (1, 2, 3, 4, 5)
            )
            writer.writerow(["3 - Care", f"3.{number}", f"Action {number}", "AW", "", steps])
    await import_plan(
        slack.sessions,
        path,
        now=MONDAY,
        plan_key="big",
        people_path=_people_csv(tmp_path / "people-big.csv"),
    )
    await Cycles(
        slack.sessions, mail_from="pulse@council.example", clock=Clock(MONDAY)
    ).start_cycle("big", now=MONDAY)
    async with slack.sessions() as session:
        prompt = await session.scalar(
            select(func.max(PromptRow.id))
            .join(PersonRow, PersonRow.id == PromptRow.person_id)
            .where(PersonRow.key == "AW")
        )
    assert prompt is not None
    payload = rate_payload("UAW00001", "")
    payload["actions"] = [
        {"type": "button", "action_id": "open_update", "block_id": "update", "value": str(prompt)}
    ]
    assert (await slack.interact(payload))[0] == 200
    first = slack.fake.calls_to("views.open")[-1]
    assert slack.fake.views == [first["view"]], "Slack accepted the first page"
    page_one = _evidence_refs(first["view"])
    assert len(page_one) == 14
    values = modal_values(page_one[0], rating=2)
    status, text = await slack.interact(view_payload("UAW00001", prompt, values))
    assert status == 200
    answer = json.loads(text)
    assert answer["response_action"] == "update"
    second = answer["view"]
    assert view_problems(second) == []
    page_two = _evidence_refs(second)
    assert len(page_one) + len(page_two) == 20
    assert not set(page_one) & set(page_two)
    meta = json.loads(second["private_metadata"])
    assert meta["page"] == 1
    submitted = view_payload(
        "UAW00001",
        prompt,
        modal_values(page_two[-1], rating=1, evidence="Families see one worker"),
        view_id="V2",
    )
    submitted["view"]["private_metadata"] = second["private_metadata"]
    status, text = await slack.interact(submitted)
    assert status == 200
    assert "errors" not in text
    assert [(r.rating, r.evidence) for r in await slack.updates()] == [
        (2, None),
        (1, "Families see one worker"),
    ]
