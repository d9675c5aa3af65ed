"""Email ingress scenarios 28–47 of RELIABILITY.md, end to end in local mode on SQLite and
PostgreSQL: a real prompt goes out, a reply shaped like a real client's (the templates in
tests/fixtures/emails/, with the prompt's token and Message-ID put in) is dropped into the
inbox folder, one `Runner.run_once()` takes it in, and we look at what a user would see —
updates recorded, confirmations or rejections in the outbox, a person marked away, a bounce
counted, the inbound row's state."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from bot.app import PlanPulse, Runner
from bot.messages.inbound_mail import HEAD_BYTES, header_section
from bot.services.records import Records
from bot.settings import Settings
from storage.answers import AnswerRepository, NewUpdate
from storage.db import create_engine, session_factory
from storage.inbound_mail import InboundDecision, InboundRepository
from storage.models import EmailBounceRow, InboundRow, PersonRow, UpdateRow
from tests.conftest import FIXTURES, Clock, import_small_plan
from tests.integration.test_delivery import outbox_files, prompt_for, read_eml

EMAILS = FIXTURES / "emails"
PLANS = FIXTURES / "plans"
MONDAY = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
LATER = MONDAY + timedelta(hours=2)
DANA = "Dana Cole <dana.cole@council.example>"
REPLY_DATE = "Mon, 23 Nov 2026 10:15:00 +0000"


@pytest.fixture
def clock() -> Clock:
    return Clock(MONDAY)


@pytest.fixture
async def pulse(db_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[PlanPulse]:
    settings = Settings(
        _env_file=None,
        DATABASE_URL=db_url,
        PULSE_DATA_DIR=tmp_path / "var",
        TRUSTED_AUTHSERV_ID="mx.council.example",
        BOUNCE_LIMIT=2,
        MAX_INBOUND_BYTES=200_000,
    )
    app = PlanPulse(settings, clock=clock)
    await app.migrate()
    await import_small_plan(app.sessions, now=clock())
    yield app
    await app.close()


class Mailroom:
    """The prompt to Dana, and a way to answer it with a fixture and see what happened."""

    def __init__(self, pulse: PlanPulse, clock: Clock) -> None:
        self.pulse = pulse
        self.clock = clock
        self.runner = Runner(pulse)
        self.sent_before = 0
        self.count = 0

    async def start(self) -> EmailMessage:
        await self.runner.run_once()
        self.prompt = prompt_for(self.pulse, "dana.cole")
        self.sent_before = len(outbox_files(self.pulse))
        return self.prompt

    def render(
        self,
        fixture: str,
        *,
        sender: str = DANA,
        subject: str | None = None,
        prompt_id: str | None = None,
        date_header: str = REPLY_DATE,
        reply_id: str | None = None,
    ) -> bytes:
        self.count += 1
        values = {
            "FROM": sender,
            "SUBJECT": subject if subject is not None else str(self.prompt["Subject"]),
            "PROMPT_ID": prompt_id if prompt_id is not None else str(self.prompt["Message-ID"]),
            "DATE": date_header,
            "REPLY_ID": reply_id or f"<reply-{self.count}-{fixture}@mail.council.example>",
        }
        raw = (EMAILS / fixture).read_bytes()
        for name, value in values.items():
            raw = raw.replace(b"{{" + name.encode() + b"}}", value.encode("ascii"))
        assert b"{{" not in raw
        return raw

    async def deliver(self, *raws: bytes, at: datetime = LATER) -> None:
        inbox = self.pulse.settings.mail_dir / "inbox"
        for index, raw in enumerate(raws):
            self.count += 1
            (inbox / f"{self.count:04d}-{index}.eml").write_bytes(raw)
        self.clock.now = at
        await self.runner.run_once()

    def new_mail(self) -> list[EmailMessage]:
        """What was sent to the people who wrote in; the coordinators' hourly notice of new
        support asks (test_support_asks.py) is not part of these scenarios."""
        return [
            read_eml(p)
            for p in outbox_files(self.pulse)[self.sent_before :]
            if not p.name.endswith("-support.eml")
        ]

    async def inbound(self) -> list[tuple[str, str]]:
        async with self.pulse.sessions() as session:
            rows = await session.execute(
                select(InboundRow.state, InboundRow.outcome).order_by(InboundRow.id)
            )
            return [(state, outcome or "") for state, outcome in rows.tuples()]

    async def email_updates(self) -> list[UpdateRow]:
        async with self.pulse.sessions() as session:
            rows = await session.scalars(
                select(UpdateRow).where(UpdateRow.source == "email").order_by(UpdateRow.id)
            )
            return list(rows.all())

    async def person(self, key: str) -> PersonRow:
        async with self.pulse.sessions() as session:
            row = await session.scalar(select(PersonRow).where(PersonRow.key == key))
            assert row is not None
            return row


@pytest.fixture
async def mail(pulse: PlanPulse, clock: Clock) -> Mailroom:
    room = Mailroom(pulse, clock)
    await room.start()
    return room


def _text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


async def assert_recorded(mail: Mailroom, note_1: str = "Analysis under way with HR") -> None:
    """Both of Dana's milestones recorded once, by Dana, with the first note, and confirmed."""
    tracked = await mail.pulse.tracked("small")
    first, second = tracked.updates["1.2-1"][-1], tracked.updates["1.2-2"][-1]
    assert (first.rating, first.person_key) == (3, "DC")
    assert first.note == note_1
    assert second.person_key == "DC"
    assert len(await mail.email_updates()) == 2
    [confirmation] = mail.new_mail()
    assert str(confirmation["Subject"]).startswith("Recorded:")
    assert "Dana" in str(confirmation["To"])
    assert "Nothing could be recorded" not in _text(confirmation)
    assert [s for s, _ in await mail.inbound()] == ["processed"]


async def test_28_plain_text_reply_is_recorded_and_confirmed(mail: Mailroom) -> None:
    """A plain-text reply records each line (rating, note, support, who) and is confirmed."""
    await mail.deliver(mail.render("plain_reply.eml"))
    await assert_recorded(mail)
    latest = (await mail.pulse.tracked("small")).updates["1.2-2"][-1]
    assert latest.needs_support
    assert latest.given_at == datetime(2026, 11, 23, 10, 15, tzinfo=UTC)


async def test_29_html_only_outlook_reply_is_read_from_its_html(mail: Mailroom) -> None:
    """An Outlook reply with only a windows-1252 HTML part is read from the HTML, its quoted
    header block dropped."""
    await mail.deliver(mail.render("outlook_html_only.eml"))
    await assert_recorded(mail, note_1="Analysis under way – HR’s data in")


@pytest.mark.parametrize(
    "fixture",
    [
        "outlook_desktop.eml",
        "outlook_original_message.eml",
        "outlook_web.eml",
        "gmail.eml",
        "apple_mail.eml",
        "ios.eml",
        "android_gmail.eml",
    ],
)
async def test_30_client_quoting_and_signatures_are_stripped(mail: Mailroom, fixture: str) -> None:
    """Replies from Outlook, Gmail, Apple Mail, iOS and Android record exactly the typed
    lines: the quoted prompt and the signature are not read as answers or notes."""
    await mail.deliver(mail.render(fixture))
    await assert_recorded(mail)
    second = (await mail.pulse.tracked("small")).updates["1.2-2"][-1]
    assert (second.rating, second.note) == (2, "Programme specification drafted")


@pytest.mark.parametrize(
    ("fixture", "note"),
    [
        ("windows1252_8bit.eml", "Révision – café budget £50k agreed"),
        ("hebrew.eml", "ניתוח הצרכים הושלם"),
        ("iso8859_8.eml", "ניתוח הצרכים הושלם"),
        ("big5.eml", "培訓需求分析進行中"),
    ],
)
async def test_31_notes_in_other_charsets_are_decoded(
    mail: Mailroom, fixture: str, note: str
) -> None:
    """Windows-1252 8-bit, Hebrew (windows-1255 and ISO-8859-8) and base64 Big5 replies keep
    their notes' characters."""
    await mail.deliver(mail.render(fixture))
    await assert_recorded(mail, note_1=note)


async def test_31_illegal_utf8_still_records_the_ratings(mail: Mailroom) -> None:
    """A reply declared UTF-8 with bytes that are not UTF-8 is still read, never lost."""
    await mail.deliver(mail.render("illegal_utf8.eml"))
    updates = await mail.email_updates()
    assert [u.rating for u in updates] == [3, 2]
    assert updates[0].note is not None
    assert updates[0].note.startswith("Analyse termin")


@pytest.mark.parametrize("fixture", ["no_content_type.eml", "base64_body.eml", "odd_boundary.eml"])
async def test_32_unusual_mime_shapes_are_read(mail: Mailroom, fixture: str) -> None:
    """No Content-Type, a base64 body, and a boundary full of odd characters without its
    closing line all give the typed answers."""
    await mail.deliver(mail.render(fixture))
    updates = await mail.email_updates()
    assert [u.rating for u in updates] == [3, 2]
    assert [s for s, _ in await mail.inbound()] == ["processed"]


@pytest.mark.parametrize(
    ("sender", "reason"),
    [
        ("", "no sender"),
        ("Dana Cole", "no sender"),
        ("<<<@@@>>>", "no sender"),
        ("dana.cole@council.example, gwen.roberts@council.example", "several senders"),
    ],
)
async def test_33_missing_or_several_senders_are_rejected_silently(
    mail: Mailroom, sender: str, reason: str
) -> None:
    """A From with no address, an unparseable one, or several mailboxes is rejected; nothing
    is recorded and nobody is mailed."""
    await mail.deliver(mail.render("plain_reply.eml", sender=sender))
    assert await mail.email_updates() == []
    assert mail.new_mail() == []
    [(state, outcome)] = await mail.inbound()
    assert (state, outcome) == ("rejected", reason)


async def test_33_two_from_headers_are_rejected(mail: Mailroom) -> None:
    """A message with two From headers is rejected, whoever they name."""
    raw = mail.render("plain_reply.eml").replace(
        b"From: ", b"From: Gwen Roberts <gwen.roberts@council.example>\r\nFrom: ", 1
    )
    await mail.deliver(raw)
    assert await mail.email_updates() == []
    assert await mail.inbound() == [("rejected", "several senders")]


async def test_34_reply_from_someone_else_is_rejected_and_the_owner_told(mail: Mailroom) -> None:
    """A reply to Dana's prompt from another registered person records nothing; Dana (not
    the sender) is told, once that day however many such replies come."""
    await mail.deliver(
        mail.render("plain_reply.eml", sender="Gwen Roberts <gwen.roberts@council.example>"),
        mail.render("gmail.eml", sender="Sam Murray <sam.murray@council.example>"),
    )
    assert await mail.email_updates() == []
    [notice] = mail.new_mail()
    assert str(notice["To"]) == DANA
    assert notice["Auto-Submitted"] == "auto-replied"
    assert "gwen.roberts@council.example" in _text(notice)
    assert [s for s, _ in await mail.inbound()] == ["rejected", "rejected"]


async def test_34_a_reply_from_a_configured_secondary_address_counts_as_the_owners(
    mail: Mailroom,
) -> None:
    """Dana also writes from home, and her people row lists that address: a reply from it is
    recorded as hers and confirmed (from anyone else's address it is refused: above)."""
    async with mail.pulse.sessions() as session, session.begin():
        dana = await session.scalar(select(PersonRow).where(PersonRow.key == "DC"))
        assert dana is not None
        dana.other_emails = "dana.cole.home@example.net"
    await mail.deliver(
        mail.render("plain_reply.eml", sender="Dana Cole <Dana.Cole.Home@example.net>")
    )
    await assert_recorded(mail)


@pytest.mark.parametrize(
    "subject",
    [
        "RE: Progress update [PP-AAAAAAAAAAAAAAAAAAAAAAAAAA]",  # well formed, unknown
        "RE: Progress update [PP-123]",  # malformed
    ],
)
async def test_35_unknown_or_malformed_token_is_rejected_and_each_one_answered(
    mail: Mailroom, subject: str
) -> None:
    """A reply whose token matches no prompt records nothing, and the registered person of
    the address is told about each one: it is their own mail."""
    raws = [
        mail.render("plain_reply.eml", subject=subject, prompt_id="<elsewhere@x.example>")
        for _ in range(2)
    ]
    await mail.deliver(*raws)
    assert await mail.email_updates() == []
    notices = mail.new_mail()
    assert [str(n["To"]) for n in notices] == [DANA, DANA]
    assert all(str(n["Subject"]).startswith("Not recorded") for n in notices)
    assert [s for s, _ in await mail.inbound()] == ["rejected", "rejected"]


async def test_35_unknown_sender_with_unknown_token_gets_no_mail(mail: Mailroom) -> None:
    """A stranger's mail with no valid token is rejected and nobody is mailed (no backscatter)."""
    await mail.deliver(
        mail.render(
            "plain_reply.eml",
            sender="mallory@evil.example",
            subject="Hello",
            prompt_id="<x@evil.example>",
        )
    )
    assert mail.new_mail() == []
    assert [s for s, _ in await mail.inbound()] == ["rejected"]


async def test_35_expired_token_is_rejected(mail: Mailroom, pulse: PlanPulse) -> None:
    """A reply arriving after its token expired (six weeks) records nothing, and Dana is told."""
    await mail.deliver(mail.render("plain_reply.eml"), at=MONDAY + timedelta(days=43, hours=2))
    assert await mail.email_updates() == []
    states = await mail.inbound()
    assert states[0] == ("rejected", "the prompt's token has expired")
    assert any(
        str(m["To"]) == DANA and "Not recorded" in str(m["Subject"]) for m in mail.new_mail()
    )


@pytest.mark.parametrize("join", [" ", ", ", ",\r\n "])
async def test_36_token_only_in_references_is_accepted(mail: Mailroom, join: str) -> None:
    """A reply with a plain subject and the prompt's Message-ID only among its References
    (space-, comma- or fold-separated) is recorded."""
    references = join.join(["<older@mail.council.example>", str(mail.prompt["Message-ID"])])
    raw = mail.render("plain_reply.eml", subject="Update", prompt_id=references)
    raw = raw.replace(b"In-Reply-To: " + references.encode() + b"\r\n", b"")
    await mail.deliver(raw)
    assert len(await mail.email_updates()) == 2


@pytest.mark.parametrize("header", ["Delivered-To", "Envelope-To", "X-Envelope-To"])
async def test_36_token_in_delivery_headers_is_accepted(mail: Mailroom, header: str) -> None:
    """A reply whose token shows only in Delivered-To, Envelope-To or X-Envelope-To counts."""
    token = str(mail.prompt["Subject"]).rsplit("[PP-", 1)[1].rstrip("]")
    raw = mail.render("plain_reply.eml", subject="Update", prompt_id="<other@x.example>")
    raw = f"{header}: plan-pulse+PP-{token}@localhost\r\n".encode() + raw
    await mail.deliver(raw)
    assert len(await mail.email_updates()) == 2


@pytest.mark.parametrize(
    "header",
    [
        "Auto-Submitted: auto-replied",
        "X-Autoreply: yes",
        "Precedence: bulk",
        "X-Autorespond: yes",
        "List-Id: <early-help.lists.council.example>",
    ],
)
async def test_37_automatic_mail_is_kept_but_never_answered(mail: Mailroom, header: str) -> None:
    """Auto-replies, bulk and mailing-list mail record nothing and get no reply."""
    raw = header.encode() + b"\r\n" + mail.render("plain_reply.eml")
    await mail.deliver(raw)
    assert await mail.email_updates() == []
    assert mail.new_mail() == []
    assert [s for s, _ in await mail.inbound()] == ["ignored"]


async def test_37_out_of_office_marks_the_lead_away_until_they_return(mail: Mailroom) -> None:
    """An Exchange out-of-office naming a return date is not answered, and marks Dana away
    until that day; the next cycle asks her delegate-less prompt again only after it."""
    await mail.deliver(mail.render("out_of_office_exchange.eml"))
    assert mail.new_mail() == []
    assert (await mail.person("DC")).away_until == date(2026, 11, 30)
    [(state, outcome)] = await mail.inbound()
    assert state == "ignored"
    assert "away until 2026-11-30" in outcome


async def test_37_an_out_of_office_absence_is_in_the_audit_log_as_dana_by_email(
    mail: Mailroom,
) -> None:
    """The absence an out-of-office sets shows in `pulse audit` as Dana's own, by email."""
    await mail.deliver(mail.render("out_of_office_exchange.eml"))
    entries, _ = await Records(mail.pulse).audit_entries(since=None, person_key="DC")
    dana = (await mail.person("DC")).id
    assert [(e.action, e.actor, e.channel, e.details["until"]) for e in entries] == [
        ("away_set", f"person:{dana}", "email", "2026-11-30")
    ]


async def test_37_localised_out_of_office_is_recognised(mail: Mailroom) -> None:
    """A German "Abwesenheitsnotiz" with no Auto-Submitted header is still automatic, and its
    "bis zum 04.12.2026" marks the person away."""
    await mail.deliver(mail.render("out_of_office_german.eml"))
    assert mail.new_mail() == []
    assert await mail.email_updates() == []
    assert (await mail.person("DC")).away_until == date(2026, 12, 4)


async def test_38_exchange_suppress_header_on_a_real_reply_is_processed(mail: Mailroom) -> None:
    """An ordinary reply carrying X-Auto-Response-Suppress is recorded and confirmed."""
    raw = b"X-Auto-Response-Suppress: All\r\n" + mail.render("outlook_desktop.eml")
    await mail.deliver(raw)
    await assert_recorded(mail)


async def _bounces(mail: Mailroom) -> list[tuple[str, bool, str]]:
    async with mail.pulse.sessions() as session:
        rows = await session.execute(
            select(EmailBounceRow.address, EmailBounceRow.hard, EmailBounceRow.status).order_by(
                EmailBounceRow.id
            )
        )
        return list(rows.tuples())


@pytest.mark.parametrize(
    ("fixture", "hard", "status"),
    [
        ("bounce_hard.eml", True, "5.1.1"),
        ("bounce_soft.eml", False, "4.2.2"),
        ("bounce_multiple_status.eml", True, "5.1.1"),
        ("bounce_final_recipient_different.eml", True, "5.1.1"),
        ("bounce_verp.eml", True, "5.1.1"),
    ],
)
async def test_39_delivery_reports_are_counted_never_answered(
    mail: Mailroom, fixture: str, hard: bool, status: str
) -> None:
    """A DSN (hard or soft, several status codes, a forwarding final recipient, or VERP) is
    counted against the address we sent to and never answered."""
    await mail.deliver(mail.render(fixture))
    assert await _bounces(mail) == [("dana.cole@council.example", hard, status)]
    assert mail.new_mail() == []
    assert [s for s, _ in await mail.inbound()] == ["ignored"]


async def test_39_repeated_hard_bounces_stop_mail_to_that_person(
    mail: Mailroom, caplog: pytest.LogCaptureFixture
) -> None:
    """After BOUNCE_LIMIT hard bounces the person is marked, an admin alert is logged, and the
    next cycle does not email them; soft bounces do not count."""
    await mail.deliver(mail.render("bounce_soft.eml"), mail.render("bounce_hard.eml"))
    assert (await mail.person("DC")).email_bounced_at is None
    with caplog.at_level("ERROR", logger="bot.services.inbound"):
        await mail.deliver(mail.render("bounce_verp.eml"))
    assert (await mail.person("DC")).email_bounced_at is not None
    assert any("DC" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
    mail.clock.now = MONDAY + timedelta(days=7)
    await mail.runner.run_once()
    prompts_to_dana = [
        p for p in outbox_files(mail.pulse) if "prompt" in p.name and "dana.cole" in p.read_text()
    ]
    assert len(prompts_to_dana) == 1  # last week's only


async def test_40_our_own_mail_coming_back_is_dropped(mail: Mailroom) -> None:
    """Our own prompt looping back into the inbox, or mail from our address, is dropped."""
    prompt_path = next(p for p in outbox_files(mail.pulse) if "prompt" in p.name)
    from_us = mail.render("plain_reply.eml", sender="Plan Pulse <plan-pulse@localhost>")
    await mail.deliver(prompt_path.read_bytes(), from_us)
    assert await mail.email_updates() == []
    assert mail.new_mail() == []
    assert await mail.inbound() == [("ignored", "our own mail came back")] * 2


async def test_41_same_message_twice_or_without_message_id_is_recorded_once(
    mail: Mailroom,
) -> None:
    """The same Message-ID delivered twice, and a message without one delivered twice (hash
    dedupe), each record one answer."""
    raw = mail.render("plain_reply.eml", reply_id="<same@mail.council.example>")
    await mail.deliver(raw, raw)
    assert len(await mail.email_updates()) == 2
    no_id = mail.render("gmail.eml").replace(b"Message-ID: ", b"X-Old-Message-ID: ")
    await mail.deliver(no_id, no_id, at=LATER + timedelta(minutes=5))
    assert len(await mail.inbound()) == 2
    assert len(await mail.email_updates()) == 4


async def test_42_empty_reply_is_rejected_and_each_one_answered(mail: Mailroom) -> None:
    """A reply with only the quoted prompt records nothing, is rejected as "no content", and
    each such reply gets its own answer, headed "Not recorded"."""
    await mail.deliver(mail.render("empty_reply.eml"), mail.render("empty_reply.eml"))
    assert await mail.email_updates() == []
    assert await mail.inbound() == [("rejected", "no content")] * 2
    notices = mail.new_mail()
    assert [str(n["To"]) for n in notices] == [DANA, DANA]
    for notice in notices:
        assert str(notice["Subject"]).startswith("Not recorded:")
        assert "Nothing could be recorded" in _text(notice)


async def test_43_oversized_mail_is_kept_unread(mail: Mailroom) -> None:
    """A message over MAX_INBOUND_BYTES is kept as unprocessable, never parsed or answered."""
    raw = mail.render("plain_reply.eml") + b"x" * 250_000 + b"\r\n"
    await mail.deliver(raw)
    assert await mail.email_updates() == []
    assert mail.new_mail() == []
    [(state, outcome)] = await mail.inbound()
    assert state == "unprocessable"
    assert "too large" in outcome


async def test_44_null_bytes_in_headers_are_ignored(mail: Mailroom) -> None:
    """Null bytes in the Subject and From headers do not stop the reply being recorded."""
    raw = mail.render("plain_reply.eml", prompt_id="<none@x.example>")
    raw = raw.replace(b"Subject: RE: ", b"Subject: RE:\x00 ").replace(
        b"From: Dana Cole", b"From: Dana\x00 Cole"
    )
    await mail.deliver(raw)
    assert len(await mail.email_updates()) == 2


async def test_45_late_reply_after_the_cycle_closed_is_accepted_and_dated(
    mail: Mailroom,
) -> None:
    """A reply arriving after the next cycle began is recorded, dated when it was written."""
    written = "Fri, 27 Nov 2026 16:40:00 +0000"
    await mail.deliver(
        mail.render("plain_reply.eml", date_header=written),
        at=datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
    )
    updates = await mail.email_updates()
    assert [u.rating for u in updates] == [3, 3]
    tracked = await mail.pulse.tracked("small")
    assert tracked.updates["1.2-1"][-1].given_at == datetime(2026, 11, 27, 16, 40, tzinfo=UTC)


async def test_46_dmarc_fail_from_our_mta_is_quarantined(mail: Mailroom) -> None:
    """A reply our own MTA stamped dmarc=fail is quarantined: nothing recorded, nobody told."""
    await mail.deliver(mail.render("dmarc_fail.eml"))
    assert await mail.email_updates() == []
    assert mail.new_mail() == []
    assert [s for s, _ in await mail.inbound()] == ["quarantined"]


async def test_46_dmarc_fail_from_another_server_is_not_trusted(mail: Mailroom) -> None:
    """An Authentication-Results header from a server we do not trust changes nothing."""
    raw = mail.render("dmarc_fail.eml").replace(b"mx.council.example;", b"mx.evil.example;")
    await mail.deliver(raw)
    assert [s for s, _ in await mail.inbound()] == ["processed"]


async def test_47_forwarded_prompt_answered_by_a_third_party_is_rejected(
    mail: Mailroom,
) -> None:
    """A stranger answering a forwarded prompt records nothing, and Dana is told who tried."""
    raw = mail.render("outlook_desktop.eml", sender="Pat Outsider <pat@agency.example>")
    await mail.deliver(raw)
    assert await mail.email_updates() == []
    [notice] = mail.new_mail()
    assert str(notice["To"]) == DANA
    assert "pat@agency.example" in _text(notice)
    assert await mail.inbound() == [("rejected", "pat@agency.example is not a known person")]


async def test_inbox_problems_are_counted(mail: Mailroom, pulse: PlanPulse) -> None:
    """Every stored message ends in a final state, none left new after a pass."""
    await mail.deliver(mail.render("plain_reply.eml"), mail.render("bounce_hard.eml"))
    async with pulse.sessions() as session:
        new = await session.scalar(
            select(func.count()).select_from(InboundRow).where(InboundRow.state == "new")
        )
    assert new == 0


async def test_status_inbox_lists_what_was_not_recorded(
    mail: Mailroom, db_url: str, tmp_path: Path
) -> None:
    """`pulse status --inbox` (no --plan needed) lists rejected, ignored, quarantined and
    unprocessable messages with their outcome, and leaves recorded replies out."""
    from tests.e2e.test_cli import pulse as run_cli

    await mail.deliver(
        mail.render("plain_reply.eml"),
        mail.render("empty_reply.eml", sender="Gwen Roberts <gwen.roberts@council.example>"),
        mail.render("dmarc_fail.eml"),
        mail.render("bounce_hard.eml"),
    )
    out = await asyncio.to_thread(run_cli, tmp_path, "status", "--inbox", db_url=db_url)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "RECEIVED", "STATE"]
    states = sorted(line.split()[3] for line in lines[1:])
    assert states == ["ignored", "quarantined", "rejected"]
    assert "bounce: hard 5.1.1 dana.cole@council.example" in out.stdout
    assert "gwen.roberts@council.example" in out.stdout


# --- batches: several replies taken in and decided together ---------------------------------


def _answering(raw: bytes, first: bytes, second: bytes = b"") -> bytes:
    """The plain reply with its two answer lines replaced."""
    return raw.replace(b"1.2-1 3 Analysis under way with HR", first).replace(
        b"1.2-2 in progress - need support", second
    )


async def _execute(pulse: PlanPulse, statements: list[str]) -> None:
    """Run the test's own DDL (a trigger, a constraint) in one transaction."""
    async with pulse.sessions() as session, session.begin():
        for statement in statements:
            await session.execute(text(statement))


async def test_a_failing_reply_in_a_batch_is_kept_and_the_others_recorded(
    mail: Mailroom, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Replies decided in one batch: when recording one of them fails for a reason that is
    not the reply's fault (simulated by a constraint the test adds to the database, which
    refuses that one reply's answer), it is kept as "unprocessable" with the error's type
    but none of its text, nothing of it is written or sent, and the replies before and
    after it are recorded and confirmed as if it were not there."""
    refuse = {
        "sqlite": [
            "CREATE TRIGGER refuse_breaks BEFORE INSERT ON updates "
            "WHEN instr(NEW.note, 'BREAKS') > 0 "
            "BEGIN SELECT RAISE(ABORT, 'refused by a test constraint'); END"
        ],
        # PostgreSQL quotes the failing row (the note) in the error's detail.
        "postgresql": [
            "ALTER TABLE updates ADD CONSTRAINT refuse_breaks "
            "CHECK (note IS NULL OR position('BREAKS' in note) = 0) NOT VALID"
        ],
    }["postgresql" if db_url.startswith("postgresql") else "sqlite"]
    await _execute(mail.pulse, refuse)
    good = mail.render("plain_reply.eml")
    # Each answers a milestone the other does not: a later answer to the same one would
    # replace the failing one's before it is written.
    broken = _answering(mail.render("plain_reply.eml"), b"", b"1.2-2 2 BREAKS the private note")
    later = _answering(mail.render("plain_reply.eml"), b"1.2-1 3 Analysis under way with HR")
    with caplog.at_level(logging.INFO):
        await mail.deliver(good, broken, later)
    states = await mail.inbound()
    assert states[1] == ("unprocessable", "IntegrityError; where it failed is in the log")
    assert [s for s, _ in states] == ["processed", "unprocessable", "processed"]
    assert "private note" not in caplog.text
    assert len(await mail.email_updates()) == 3  # two from the first reply, one from the third
    assert [str(m["Subject"]).split()[0] for m in mail.new_mail()] == ["Recorded:"] * 2
    async with mail.pulse.sessions() as session:
        raws = (await session.scalars(select(InboundRow.raw).order_by(InboundRow.id))).all()
    assert raws[1] == broken  # the failing reply is kept as it came, for an admin


async def test_a_batch_whose_answers_cannot_be_written_together_is_recorded_one_by_one(
    mail: Mailroom, db_url: str
) -> None:
    """Should recording a batch's answers together meet a duplicate (another process
    committed one of them meanwhile), each reply is recorded alone: both are recorded and
    confirmed, and the answer already committed is kept once. On PostgreSQL another
    connection commits the first reply's answer while the batch waits on it; on SQLite,
    whose writers take turns so the race cannot happen, a trigger adds a copy of the second
    reply's answer just before the batch writes it, and only then."""
    first_id, second_id = "<first@mail.council.example>", "<second@mail.council.example>"
    first = mail.render("plain_reply.eml", reply_id=first_id)
    second = _answering(
        mail.render("plain_reply.eml", reply_id=second_id), b"1.2-1 3 Interviews booked"
    )
    if not db_url.startswith("postgresql"):
        columns = (
            "milestone_id, person_id, rating, note, revised_due, needs_support, source, "
            "external_id, given_at, recorded_at, supersedes_id, recorded_by, evidence"
        )
        copied = ", ".join(f"NEW.{column.strip()}" for column in columns.split(","))
        await _execute(
            mail.pulse,
            [
                "CREATE TRIGGER written_meanwhile BEFORE INSERT ON updates "
                f"WHEN NEW.external_id = '{second_id}#1.2-1' "
                # Only while the batch writes both replies' answers at once: no prompt is
                # marked answered yet.
                "AND NOT EXISTS (SELECT 1 FROM prompts WHERE answered_at IS NOT NULL) "
                f"BEGIN INSERT INTO updates ({columns}) VALUES ({copied}); END"
            ],
        )
        await mail.deliver(first, second)
    else:
        engine = create_engine(db_url)
        try:
            async with session_factory(engine)() as other, other.begin():
                await AnswerRepository(other).record(
                    [
                        NewUpdate(
                            plan_key="small",
                            ref="1.2-1",
                            person_key="DC",
                            rating=3,
                            note="Analysis under way with HR",
                            revised_due=None,
                            needs_support=False,
                            source="email",
                            external_id=f"{first_id}#1.2-1",
                            given_at=LATER,
                            recorded_at=LATER,
                            answers=(),
                        )
                    ]
                )
                delivering = asyncio.create_task(mail.deliver(first, second))
                # Commit once the batch waits for this uncommitted duplicate.
                for _ in range(3000):
                    if delivering.done() or await _waiting_on_a_lock(mail):
                        break
                    await asyncio.sleep(0.01)
                assert not delivering.done()
            await delivering
        finally:
            await engine.dispose()
    assert [s for s, _ in await mail.inbound()] == ["processed", "processed"]
    assert len(await mail.email_updates()) == 3
    assert len(mail.new_mail()) == 2


async def _waiting_on_a_lock(mail: Mailroom) -> bool:
    """Whether a transaction waits for another one to end (PostgreSQL)."""
    waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'"
    async with mail.pulse.sessions() as session:
        return bool(await session.scalar(text(waiting)))


async def test_later_replies_in_a_batch_are_judged_after_the_earlier_ones(
    mail: Mailroom,
) -> None:
    """Two replies decided in the same batch behave as if decided one after the other: the
    second's rating is compared with the first's, so a worse rating without a note is sent
    back though it is better than the rating before the batch (4)."""
    better = _answering(mail.render("plain_reply.eml"), b"1.2-1 2 Analysis complete")
    worse = _answering(mail.render("plain_reply.eml"), b"1.2-1 3")
    await mail.deliver(better, worse)
    assert await mail.inbound() == [
        ("processed", "1 recorded, 0 not"),
        ("rejected", "nothing could be recorded"),
    ]
    print(
        [(u.milestone_id, u.rating, u.note) for u in await mail.email_updates()],
        mail.new_mail(),
        [_text(m) for m in mail.new_mail()],
    )
    [update] = await mail.email_updates()
    assert (update.rating, update.note) == (2, "Analysis complete")
    sent_back = mail.new_mail()[1]
    assert "a note is required" in _text(sent_back)


async def test_the_inbox_is_taken_in_batch_by_batch_and_never_twice(
    pulse: PlanPulse, db_url: str
) -> None:
    """Files are stored a batch per transaction and moved to taken/ only after their batch
    committed: when the database fails every message of a batch (here a trigger the test
    installs: on PostgreSQL it ends the connection, as a server going away does; on SQLite
    it aborts the insert), its files stay in the inbox for the next sweep, the batches
    before it are not taken in again, and a duplicate is kept once."""
    from bot.services.inbound import Inbound

    inbox = pulse.settings.mail_dir / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    raws = [
        f"Message-ID: <m{n}@x.example>\r\nFrom: a@x.example\r\n\r\nhello {n}\r\n".encode()
        for n in range(7)
    ]
    for n, raw in enumerate([*raws, raws[0]]):  # eight files, the last a copy of the first
        (inbox / f"{n:02d}.eml").write_bytes(raw)
    inbound = Inbound(
        pulse.sessions, mail_from="plan-pulse@localhost", clock=lambda: LATER, sweep_batch=3
    )
    inbound.inbox = inbox
    second_batch = "(<m3@x.example>|<m4@x.example>|<m5@x.example>)"
    if db_url.startswith("postgresql"):
        install = [
            "CREATE FUNCTION go_away() RETURNS trigger AS $$ BEGIN "
            f"IF convert_from(NEW.raw, 'UTF8') ~ '{second_batch}' THEN "
            "PERFORM pg_terminate_backend(pg_backend_pid()); END IF; RETURN NEW; END $$ "
            "LANGUAGE plpgsql",
            "CREATE TRIGGER go_away BEFORE INSERT ON inbound "
            "FOR EACH ROW EXECUTE FUNCTION go_away()",
        ]
        remove = ["DROP TRIGGER go_away ON inbound"]
    else:
        install = [
            "CREATE TRIGGER go_away BEFORE INSERT ON inbound WHEN "
            + " OR ".join(
                f"instr(NEW.raw, CAST('<m{n}@x.example>' AS BLOB)) > 0" for n in (3, 4, 5)
            )
            + " BEGIN SELECT RAISE(ABORT, 'database went away'); END"
        ]
        remove = ["DROP TRIGGER go_away"]
    await _execute(pulse, install)
    with pytest.raises(DBAPIError):
        await inbound.sweep_inbox()
    left = sorted(p.name for p in inbox.iterdir() if p.is_file())
    assert left == ["03.eml", "04.eml", "05.eml", "06.eml", "07.eml"]
    await _execute(pulse, remove)  # the database is back
    assert await inbound.sweep_inbox() == 4  # 03-06; 07 repeats 00
    assert not [p for p in inbox.iterdir() if p.is_file()]
    assert len(list((inbox / "taken").iterdir())) == 8
    async with pulse.sessions() as session:
        stored = (await session.scalars(select(InboundRow.raw).order_by(InboundRow.id))).all()
    assert sorted(stored) == sorted(raws)


# --- one bad email never stops the inbox (issue 11: 3, 4, 10, 12) ---------------------------


async def test_41_a_message_id_too_long_for_its_column_is_still_taken_in_and_recorded(
    mail: Mailroom,
) -> None:
    """A reply whose Message-ID is longer than the dedupe key's column (300) is stored with
    the others of its batch, recorded in full (both milestones), and once however often it
    is delivered; the reply after it in the inbox is recorded too."""
    long_id = "<" + "x" * 400 + "@mail.council.example>"
    odd = mail.render("plain_reply.eml", reply_id=long_id)
    other = _answering(mail.render("plain_reply.eml"), b"1.2-1 2 Analysis complete")
    await mail.deliver(odd, odd, other)
    assert [s for s, _ in await mail.inbound()] == ["processed", "processed"]
    assert len(await mail.email_updates()) == 3


async def test_41_a_message_id_pasted_into_a_reply_does_not_make_it_a_duplicate(
    mail: Mailroom,
) -> None:
    """Two different replies without a Message-ID header whose text quotes the same
    `Message-ID:` line are two replies: both are decided, neither discarded unread."""
    pasted = b"\r\nMessage-ID: <pasted-from-the-prompt@localhost>\r\n"
    first, second = (
        _answering(
            mail.render("plain_reply.eml").replace(b"Message-ID: ", b"X-Old-Id: "), line + pasted
        )
        for line in (b"1.2-1 2 Analysis complete", b"1.2-2 1 Support agreed")
    )
    await mail.deliver(first, second)
    assert [s for s, _ in await mail.inbound()] == ["processed", "processed"]
    assert sorted(u.rating or 0 for u in await mail.email_updates()) == [1, 2]


async def test_a_message_the_database_refuses_is_left_alone_and_never_logged(
    mail: Mailroom, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """When the database refuses one message of an inbox batch, the others are stored and
    recorded, the refused file stays in the inbox for the next sweep, and nothing of its
    text reaches the log."""
    refuse = {
        "sqlite": [
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON inbound "
            "WHEN instr(NEW.raw, CAST('POISON' AS BLOB)) > 0 "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        ],
        "postgresql": [
            "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN "
            "IF position('POISON'::bytea in NEW.raw) > 0 THEN RAISE EXCEPTION 'refused'; "
            "END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON inbound "
            "FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
        ],
    }["postgresql" if db_url.startswith("postgresql") else "sqlite"]
    async with mail.pulse.sessions() as session, session.begin():
        for statement in refuse:
            await session.execute(text(statement))
    poison = _answering(mail.render("plain_reply.eml"), b"1.2-1 2 POISON my private note")
    good = mail.render("plain_reply.eml")
    with caplog.at_level(logging.DEBUG):
        await mail.deliver(poison, good)
    assert [s for s, _ in await mail.inbound()] == ["processed"]
    assert len(await mail.email_updates()) == 2
    inbox = mail.pulse.settings.mail_dir / "inbox"
    [left] = [p for p in inbox.iterdir() if p.is_file()]
    assert left.read_bytes() == poison
    assert "private note" not in caplog.text
    assert f"inbox: {left.name} not taken in" in caplog.text


async def test_44_null_bytes_in_a_delivery_report_never_reach_storage(mail: Mailroom) -> None:
    """A bounce whose report carries NUL characters is counted like any other (PostgreSQL
    cannot store a NUL in text), and a reply after it in the same pass is recorded."""
    bounce = (
        mail.render("bounce_hard.eml")
        .replace(b"rfc822; dana.cole@council.example", b"rfc822; dana.cole@council.example\x00")
        .replace(
            b"To: Dana Cole <dana.cole@council.example>", b"To: dana.cole@council.example, x@y"
        )
    )
    await mail.deliver(bounce, mail.render("plain_reply.eml"))
    assert await mail.inbound() == [
        ("ignored", "bounce: hard 5.1.1 dana.cole@council.example"),
        ("processed", "2 recorded, 0 not"),
    ]


async def test_43_an_oversized_file_is_kept_as_its_headers_sender_and_size(
    mail: Mailroom, db_url: str, tmp_path: Path
) -> None:
    """A file over MAX_INBOUND_BYTES is kept for review without its body: the row says it
    was too large, with sender and size, holds only the header section, is never answered,
    and `pulse status --inbox` lists it; a smaller reply beside it is recorded."""
    from tests.e2e.test_cli import pulse as run_cli

    big = mail.render("plain_reply.eml") + b"x" * 300_000 + b"\r\n"
    await mail.deliver(big, mail.render("plain_reply.eml"))
    assert mail.new_mail()[0]["Subject"].startswith("Recorded:")
    assert len(mail.new_mail()) == 1
    async with mail.pulse.sessions() as session:
        row = await session.scalar(select(InboundRow).where(InboundRow.state != "processed"))
    assert row is not None
    assert row.state == "unprocessable"
    assert row.raw == header_section(big)
    assert row.outcome == (
        f"too large ({len(big)} bytes; the limit is 200000), not read; "
        "from dana.cole@council.example"
    )
    out = await asyncio.to_thread(run_cli, tmp_path, "status", "--inbox", db_url=db_url)
    assert out.returncode == 0, out.stderr
    assert "dana.cole@council.example" in out.stdout
    assert "too large" in out.stdout


async def test_status_inbox_reads_only_the_start_of_each_message(pulse: PlanPulse) -> None:
    """What `pulse status --inbox` reads of a stored message is its first HEAD_BYTES, never
    the whole of it, however large it is."""
    raw = b"From: dana.cole@council.example\r\nSubject: big\r\n\r\n" + b"x" * 2_000_000
    async with pulse.sessions() as session, session.begin():
        inbound = InboundRepository(session)
        await inbound.store(dedupe_key="mid:<big@x>", source="maildir", raw=raw, now=LATER)
        [waiting] = await inbound.pending(10)
        await inbound.finish([InboundDecision(waiting.id, "rejected", "no", None)], now=LATER)
    async with pulse.sessions() as session:
        [listed] = await InboundRepository(session).listing(["rejected"], head_bytes=HEAD_BYTES)
    assert listed.head == raw[:HEAD_BYTES]


async def test_run_once_decides_every_stored_reply_not_just_a_batch(
    mail: Mailroom, pulse: PlanPulse
) -> None:
    """`pulse run --once` takes in and decides every message waiting, however many batches
    that takes: none is left undecided."""
    raws = [
        mail.render("plain_reply.eml", sender=f"Someone {n} <someone{n}@elsewhere.example>")
        for n in range(230)
    ]
    await mail.deliver(*raws)
    states = [s for s, _ in await mail.inbound()]
    assert len(states) == 230
    assert set(states) == {"rejected"}


# --- answers: every reply heard, examples that work, no loops (issues 10 and 11) -------------


def _reply_to(
    message: EmailMessage, body: str, *, sender: str | None = None, n: int = 0, auto: bool = False
) -> bytes:
    """A plain-text reply to one of our messages, from its recipient unless `sender` is given."""
    reply = EmailMessage()
    reply["From"] = sender or str(message["To"])
    reply["To"] = "Plan Pulse <plan-pulse@localhost>"
    reply["Subject"] = f"RE: {message['Subject']}"
    reply["Date"] = REPLY_DATE
    reply["Message-ID"] = f"<answer-{n}-{'auto' if auto else 'own'}@mail.council.example>"
    reply["In-Reply-To"] = str(message["Message-ID"])
    reply["References"] = str(message["Message-ID"])
    reply.set_content(body)
    return bytes(reply)


def _examples(prompt: EmailMessage) -> list[str]:
    """The example lines a prompt shows under "For example:"."""
    lines = _text(prompt).splitlines()
    start = next(i for i, line in enumerate(lines) if line.endswith("For example:")) + 2
    examples = []
    for line in lines[start:]:
        if not line.strip():
            break
        examples.append(line.strip())
    return examples


async def test_every_prompts_examples_sent_back_are_all_recorded(
    mail: Mailroom, pulse: PlanPulse
) -> None:
    """Each lead sends back their prompt's own examples as their reply: every line is
    recorded (Alex's overdue 1.1 included) and each confirmation lists nothing unrecorded."""
    prompts = [m for m in map(read_eml, outbox_files(pulse)) if ".prompt@" in str(m["Message-ID"])]
    assert len(prompts) >= 3
    sent = []
    for n, prompt in enumerate(prompts):
        examples = _examples(prompt)
        assert examples, _text(prompt)
        refs = [line.split()[0] for line in examples]
        assert len(set(refs)) == len(refs)  # each its own reference
        sent.append(examples)
        await mail.deliver(_reply_to(prompt, "\n".join(examples), n=n))
    assert {s for s, _ in await mail.inbound()} == {"processed"}
    assert len(await mail.email_updates()) == sum(len(e) for e in sent)
    confirmations = mail.new_mail()
    assert len(confirmations) == len(prompts)
    for confirmation in confirmations:
        assert str(confirmation["Subject"]).startswith("Recorded:")
        assert "Not recorded:" not in _text(confirmation)
    alex = next(p for p in prompts if "alex.walker" in str(p["To"]))
    assert any(line.startswith("1.1 in progress") for line in _examples(alex))


async def test_a_second_unreadable_reply_and_a_wrong_sender_notice_are_both_answered(
    mail: Mailroom,
) -> None:
    """Dana's two unreadable replies get an answer each, headed "Not recorded"; a reply to
    her prompt from Gwen still reaches Dana as its own notice, once that day."""
    await mail.deliver(
        _answering(mail.render("plain_reply.eml"), b"1.2-1 rating high"),
        _answering(mail.render("plain_reply.eml"), b"1.2-1 rating 9"),
        mail.render("plain_reply.eml", sender="Gwen Roberts <gwen.roberts@council.example>"),
        mail.render("gmail.eml", sender="Gwen Roberts <gwen.roberts@council.example>"),
    )
    assert await mail.email_updates() == []
    notices = mail.new_mail()
    assert [str(n["To"]) for n in notices] == [DANA] * 3
    subjects = [str(n["Subject"]) for n in notices]
    assert all(s.startswith("Not recorded") for s in subjects)
    assert sum("gwen.roberts@council.example" in _text(n) for n in notices) == 1


async def test_answers_to_one_address_pause_after_twenty_an_hour(mail: Mailroom) -> None:
    """Twenty-three replies from Dana in an hour are all recorded; she gets twenty
    confirmations and one notice that answers are paused, and answers resume next hour."""
    raws = [
        _answering(mail.render("plain_reply.eml"), f"1.2-1 3 Interviews round {n}".encode())
        for n in range(23)
    ]
    await mail.deliver(*raws)
    assert len(await mail.email_updates()) == 23
    answers = mail.new_mail()
    assert [str(a["Subject"]).split(":")[0] for a in answers] == ["Recorded"] * 20 + ["Paused"]
    assert "paused until" in str(answers[-1].get_body(preferencelist=("plain",)))
    more = _answering(mail.render("plain_reply.eml"), b"1.2-1 3 One more")
    await mail.deliver(more, at=LATER + timedelta(minutes=10))
    assert len(mail.new_mail()) == 21  # still paused: recorded, not answered
    assert len(await mail.email_updates()) == 24
    await mail.deliver(
        _answering(mail.render("plain_reply.eml"), b"1.2-1 3 Next hour"),
        at=LATER + timedelta(hours=1),
    )
    assert str(mail.new_mail()[-1]["Subject"]).startswith("Recorded:")


async def test_a_misspelt_reference_gets_did_you_mean(mail: Mailroom) -> None:
    """`1,2-1`, `1.2.1` and `12-1` are not references of the prompt: nothing is recorded,
    and the answer, headed "Not recorded", asks "did you mean 1.2-1?" for each."""
    await mail.deliver(
        _answering(
            mail.render("plain_reply.eml"),
            b"1,2-1 3 Analysis under way\n1.2.1 3 Analysis under way\n12-1 3 Analysis under way",
        )
    )
    assert await mail.email_updates() == []
    [answer] = mail.new_mail()
    assert str(answer["Subject"]).startswith("Not recorded:")
    assert _text(answer).count("did you mean 1.2-1?") == 3


async def test_no_change_alone_reconfirms_every_milestone(mail: Mailroom) -> None:
    """ "No change" alone re-records each of Dana's milestones at its latest rating, as of
    today; a line of its own on one milestone does the same for it."""
    await mail.deliver(_answering(mail.render("plain_reply.eml"), b"No change"))
    updates = await mail.email_updates()
    assert [(u.rating, u.given_at.date()) for u in updates] == [(4, date(2026, 11, 23))] * 3
    [answer] = mail.new_mail()
    assert str(answer["Subject"]).startswith("Recorded:")


async def test_no_change_on_an_overdue_milestone_asks_for_a_note(mail: Mailroom) -> None:
    """On 1 December Dana's 1.2-1 is overdue at rating 4: "no change" alone is sent back for
    it, asking what is holding it up, and re-confirms 1.2-2 and 1.2-3, not overdue."""
    on = datetime(2026, 12, 1, 10, tzinfo=UTC)
    await mail.deliver(_answering(mail.render("plain_reply.eml"), b"no change"), at=on)
    tracked = await mail.pulse.tracked("small")
    assert [u.rating for u in await mail.email_updates()] == [4, 4]
    assert [tracked.updates[ref][-1].source.value for ref in ("1.2-1", "1.2-2", "1.2-3")] == [
        "import",
        "email",
        "email",
    ]
    answer = next(m for m in mail.new_mail() if "dana" in str(m["To"]).lower())
    assert str(answer["Subject"]).startswith("Recorded:")
    assert "1.2-1 is overdue and rated 4; say what is holding it up" in _text(answer)


async def test_an_auto_responder_quoting_us_inline_records_nothing_and_stops(
    mail: Mailroom,
) -> None:
    """An auto-responder without Auto-Submitted or Precedence answers every mail we send
    Dana by quoting it inline: nothing it sends is recorded, and the exchange ends within
    two rounds instead of looping."""
    await mail.deliver(mail.render("plain_reply.eml"))
    recorded = len(await mail.email_updates())
    seen = 0
    rounds = 0
    for n in range(10):
        ours = mail.new_mail()[seen:]
        seen += len(ours)
        if not ours:
            break
        rounds += 1
        await mail.deliver(
            *[
                _reply_to(
                    m,
                    "Thank you for your email. I am out of the office.\n\n" + _text(m),
                    n=n,
                    auto=True,
                )
                for m in ours
            ],
            at=LATER + timedelta(minutes=n + 1),
        )
    assert rounds <= 2
    assert len(await mail.email_updates()) == recorded


async def test_an_auto_responder_quoting_the_prompt_inline_records_nothing(
    mail: Mailroom,
) -> None:
    """A careless auto-reply quoting the prompt inline (its examples and milestone lines
    included) records nothing."""
    await mail.deliver(
        _reply_to(mail.prompt, "Out of office until Monday.\n\n" + _text(mail.prompt), auto=True)
    )
    assert await mail.email_updates() == []


async def test_at_most_a_hundred_messages_from_one_address_are_decided_an_hour(
    mail: Mailroom, caplog: pytest.LogCaptureFixture
) -> None:
    """105 messages from one address in an hour: 100 are decided, 5 wait, kept, for the next
    hour with one alert in the log, and mail from others is decided meanwhile."""
    flood = [
        f"From: loop@elsewhere.example\r\nMessage-ID: <loop-{n}@elsewhere.example>\r\n"
        f"Subject: Re: hello\r\n\r\nauto text {n}\r\n".encode()
        for n in range(105)
    ]
    inbox = mail.pulse.settings.mail_dir / "inbox"
    for n, raw in enumerate(flood):
        (inbox / f"flood-{n:03d}.eml").write_bytes(raw)
    (inbox / "zz-dana.eml").write_bytes(mail.render("plain_reply.eml"))
    mail.clock.now = LATER
    await mail.runner.inbound.sweep_inbox()
    with caplog.at_level("ERROR", logger="bot.services.inbound"):
        while await mail.runner.inbound.process_pending():
            pass
    states = await mail.inbound()
    assert sum(s == "new" for s, _ in states) == 5
    assert sum(s == "rejected" for s, _ in states) == 100
    assert states[-1][0] == "processed"  # Dana's reply, behind the flood
    alerts = [r for r in caplog.records if "loop@elsewhere.example" in r.getMessage()]
    assert len(alerts) == 1
    mail.clock.now = LATER + timedelta(hours=1)
    while await mail.runner.inbound.process_pending():
        pass
    assert sum(s == "new" for s, _ in await mail.inbound()) == 0
