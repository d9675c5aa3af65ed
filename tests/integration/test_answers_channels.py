"""One answers service behind every channel: the same answers given by email and in the
Slack modal, each in a world of its own (the small plan, prompted on Monday), record the
same updates when every line is valid and send back the same reason for a line that is not.
Only how a channel records the rest differs, as each declares: email keeps the valid lines
of a reply, the modal nothing until every line is valid."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from email.message import EmailMessage
from pathlib import Path

import pytest

from bot.domain.model import Source, Update
from storage.repositories import PlanRepository
from tests.fake_slack import FakeSlack
from tests.integration.test_email_scenarios import Mailroom, _answering, clock, mail, pulse
from tests.integration.test_slack_app import Slack, _harness, modal_values, view_payload
from tests.postgres import PostgresServer, create_database

__all__ = ["clock", "mail", "pulse"]

DANA_SLACK = "UDC00001"
Line = tuple[str, int, str | None]  # (milestone, rating, note) as a lead writes it
VALID = [("1.2-1", 3, "Analysis under way with HR"), ("1.2-2", 2, "Commissioning started")]
# After VALID, 4 on 1.2-1 is worse than its 3 and needs a note; the 1.2-2 line is fine.
ONE_INVALID = [("1.2-1", 4, None), ("1.2-2", 1, "Commissioned")]
NOTE_REASON = "a note is required: rating 4 is worse than the current rating 3"


@pytest.fixture
async def slack_world(
    request: pytest.FixtureRequest, db_url: str, tmp_path: Path, fake_slack: FakeSlack
) -> AsyncIterator[Slack]:
    """The Slack app over a database of its own, of the same kind as the email world's."""
    folder = tmp_path / "slack"
    folder.mkdir()
    url = f"sqlite+aiosqlite:///{folder / 'pulse.db'}"
    if not db_url.startswith("sqlite"):
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.url(await create_database(server))
    async for harness in _harness(url, folder, fake_slack):
        yield harness


def _email(mail: Mailroom, lines: Sequence[Line]) -> bytes:
    text = [f"{ref} {rating} {note or ''}".strip().encode() for ref, rating, note in lines]
    return _answering(mail.render("plain_reply.eml"), *text)


def _modal(lines: Sequence[Line]) -> dict[str, object]:
    values: dict[str, object] = {}
    for ref, rating, note in lines:
        values.update(modal_values(ref, rating=rating, note=note))
    return values


def _records(updates: dict[str, tuple[Update, ...]], source: Source) -> set[tuple[object, ...]]:
    return {
        (u.milestone_ref, u.rating, u.note, u.revised_due, u.needs_support, u.person_key)
        for listed in updates.values()
        for u in listed
        if u.source is source
    }


def _text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return " ".join(str(body.get_content()).split())


async def _slack_records(slack: Slack) -> set[tuple[object, ...]]:
    async with slack.sessions() as session:
        tracked = await PlanRepository(session).tracked("small")
    return _records(tracked.updates, Source.SLACK)


async def test_email_and_the_slack_modal_record_alike_and_refuse_alike(
    mail: Mailroom, slack_world: Slack
) -> None:
    """Every line valid: the same updates by email and in the modal. One line needing a
    note: the same reason in the email's confirmation and on the modal's field; the email
    keeps its valid line, the modal nothing until the lead adds the note."""
    slack = slack_world
    prompt = await slack.prompt_id("DC")

    await mail.deliver(_email(mail, VALID))
    status, text = await slack.interact(view_payload(DANA_SLACK, prompt, _modal(VALID)))
    assert status == 200
    assert "errors" not in text
    by_email = _records((await mail.pulse.tracked("small")).updates, Source.EMAIL)
    assert by_email == await _slack_records(slack)
    assert {(ref, rating, note) for ref, rating, note, *_ in by_email} == set(VALID)

    mail.sent_before = len(mail.new_mail()) + mail.sent_before
    await mail.deliver(_email(mail, ONE_INVALID))
    status, text = await slack.interact(
        view_payload(DANA_SLACK, prompt, _modal(ONE_INVALID), view_id="V2")
    )
    assert status == 200
    errors = json.loads(text)["errors"]
    assert list(errors) == ["note:1.2-1"]
    assert errors["note:1.2-1"].startswith(NOTE_REASON[0].upper() + NOTE_REASON[1:])
    [confirmation] = mail.new_mail()
    assert NOTE_REASON in _text(confirmation)
    after_email = _records((await mail.pulse.tracked("small")).updates, Source.EMAIL)
    assert after_email - by_email == {("1.2-2", 1, "Commissioned", None, False, "DC")}
    assert await _slack_records(slack) == by_email


CHILD_NOTE = "Panel reviewed the case of the child born 3 March 2016"


async def test_a_note_with_a_childs_details_is_sent_back_by_email_and_in_the_modal(
    mail: Mailroom, slack_world: Slack
) -> None:
    """A note carrying a child's date of birth is recorded by neither channel: the email's
    confirmation and the modal's note field both ask the lead to rephrase it, naming the
    kind of detail and never its value; the other line of the email is kept."""
    slack = slack_world
    prompt = await slack.prompt_id("DC")
    lines = [("1.2-1", 3, CHILD_NOTE), ("1.2-2", 2, "Commissioning started")]

    await mail.deliver(_email(mail, lines))
    status, text = await slack.interact(view_payload(DANA_SLACK, prompt, _modal(lines)))
    assert status == 200
    errors = json.loads(text)["errors"]
    assert list(errors) == ["note:1.2-1"]
    assert "child's details (date of birth)" in errors["note:1.2-1"]
    assert "2016" not in errors["note:1.2-1"]
    assert await _slack_records(slack) == set()
    [confirmation] = mail.new_mail()
    assert "child's details (date of birth)" in _text(confirmation)
    by_email = _records((await mail.pulse.tracked("small")).updates, Source.EMAIL)
    assert by_email == {("1.2-2", 2, "Commissioning started", None, False, "DC")}
