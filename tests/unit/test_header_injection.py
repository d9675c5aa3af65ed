"""Line breaks in names never become headers (issue 11.6): a plan title, person name,
network name or period with CR/LF in it (an Alt+Enter in a spreadsheet cell) stays inside
its own header in every message we write, parsed back with `email.policy.default`."""

from __future__ import annotations

from datetime import UTC, date, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from typing import TypedDict

import pytest

from bot.domain.cycles import PromptItem
from bot.domain.model import Person, Plan
from bot.domain.replies import ReplyLine
from bot.domain.status import MilestoneStatus
from bot.messages.emails import (
    OutboundEmail,
    confirmation_email,
    digest_email,
    new_token,
    prompt_email,
)
from bot.messages.inbound_mail import rejection_email

NOW = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
MAIL_FROM = "Plan Pulse <pulse@wirral.example>"
# What a hostile or careless cell does: real header lines after a line break, in every form.
HOSTILE = [
    "Wirral plan\r\nBcc: leak@evil.example",
    "Wirral plan\nReply-To: evil@evil.example",
    "Wirral plan\rBcc: leak@evil.example",
    "Wirral plan\r\n\r\nInjected body",
    "Wirral plan\u2028Bcc: leak@evil.example",
    "Wirral plan\x85Bcc: leak@evil.example",
    "Plan de l’année\r\nBcc: leak@evil.example",  # not ASCII: the RFC 2047 path
]
# The headers our messages carry; anything else in a parsed message was injected.
OURS = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "x-auto-response-suppress",
    "auto-submitted",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
}


def item() -> PromptItem:
    return PromptItem(
        "1.1-1", "1.1", "Agree next phase", date(2026, 11, 30), MilestoneStatus.DUE_SOON, (), 3,
        None, 0, "JB",
    )  # fmt: skip


def parse(out: OutboundEmail) -> EmailMessage:
    message = message_from_bytes(out.raw, policy=default)
    assert isinstance(message, EmailMessage)
    assert message.defects == []
    for name in message:
        assert message[name].defects == (), name
    return message


def assert_clean(message: EmailMessage) -> None:
    names = {name.lower() for name in message}
    assert names <= OURS, names - OURS
    for name in ("Bcc", "Reply-To"):
        assert message[name] is None
    for name in message:
        value = str(message[name])
        assert "\r" not in value
        assert "\n" not in value
        assert "\u2028" not in value
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


class _Common(TypedDict):
    """What every message of `messages` is about, whoever it goes to."""

    plan: Plan
    person: Person
    mail_from: str
    now: datetime


def messages(plan_title: str, person_name: str, network: str, period: str) -> list[EmailMessage]:
    plan = Plan("wirral", plan_title)
    person = Person("JB", person_name, "joe.bannham@wirral.example")
    common: _Common = {"plan": plan, "person": person, "mail_from": MAIL_FROM, "now": NOW}
    out = [
        prompt_email(items=[item()], token=new_token(), **common),
        prompt_email(
            items=[item()], token=new_token(), reminder=True, in_reply_to="<pp.x@a>", **common
        ),
        confirmation_email(
            accepted=[ReplyLine("1.1-1", 2, "Done", None, False, 1)],
            rejected=[],
            token=new_token(),
            in_reply_to="<reply-1@council.example>",
            **common,
        ),
        digest_email(
            plan=plan,
            network_name=network,
            period=period,
            recipient="board@wirral.example",
            html="<p>digest</p>",
            text="digest",
            mail_from=MAIL_FROM,
            now=NOW,
            digest_id=7,
        ),
    ]
    return [parse(o) for o in out]


@pytest.mark.parametrize("hostile", HOSTILE)
@pytest.mark.parametrize("field", ["plan title", "person name", "network name", "period"])
def test_a_line_break_in_any_name_adds_no_header(field: str, hostile: str) -> None:
    """Prompts, reminders, confirmations and digests with a line break in the plan title,
    the person's name, the network's name or the period carry exactly our headers, and the
    name, on one line, inside the header it belongs to."""
    names = {"plan title": "Wirral plan", "person name": "Joe Bannham"}
    names |= {"network name": "Improvement Board", "period": "2026-W48"}
    names[field] = hostile
    found = messages(names["plan title"], names["person name"], names["network name"],
                     names["period"])  # fmt: skip
    flat = " ".join(hostile.split())
    assert "\n" not in flat
    assert "\r" not in flat
    for message in found:
        assert_clean(message)
    prompt, reminder, confirmation, digest = found
    if field == "plan title":
        for message in found:
            assert flat in str(message["Subject"])
    elif field == "person name":
        for message in (prompt, reminder, confirmation):
            assert message["To"].addresses[0].display_name == flat
            assert message["To"].addresses[0].addr_spec == "joe.bannham@wirral.example"
    else:
        assert flat in str(digest["Subject"])


def test_a_hostile_sending_address_and_reply_id_add_no_header() -> None:
    """MAIL_FROM and the Message-ID of the reply we answer (the sender writes that one) are
    header values too: a line break in them adds nothing."""
    out = confirmation_email(
        plan=Plan("wirral", "Wirral plan"),
        person=Person("JB", "Joe Bannham", "joe.bannham@wirral.example"),
        accepted=[],
        rejected=[],
        token=new_token(),
        mail_from="Plan Pulse\r\nBcc: leak@evil.example <pulse@wirral.example>",
        now=NOW,
        in_reply_to="<r1@council.example>\r\nBcc: leak@evil.example",
    )
    assert_clean(parse(out))


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_rejection_notice_to_a_hostile_name_adds_no_header(hostile: str) -> None:
    """The notice that a message was not recorded, addressed to a person whose name has a
    line break in it, is written (not refused) with exactly its own headers."""
    out = rejection_email(
        to_name=hostile,
        to_address="joe.bannham@wirral.example",
        subject=f"Not recorded: {hostile}",
        text="Nothing was recorded.",
        mail_from=MAIL_FROM,
        now=NOW,
        in_reply_to="<r1@council.example>\nBcc: leak@evil.example",
    )
    message = parse(out)
    names = {name.lower() for name in message}
    assert names <= OURS, names - OURS
    assert message["Bcc"] is None
    assert message["Reply-To"] is None
    assert message["To"].addresses[0].display_name == " ".join(hostile.split())
