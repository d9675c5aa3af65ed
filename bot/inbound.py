"""The one inbound path for email, whichever way it arrives (local inbox folder now; IMAP
and an SMTP listener plug into `take_in`): store the raw message and commit, and only then
tell the source it was taken; process what is stored, idempotently.

Deciding follows DESIGN.md §9 and RELIABILITY.md "Decisions": the reply must carry a live
prompt token AND come from the prompt's person, their delegate, or a joint lead of what it
answers. Automatic mail is never answered: an out-of-office that names a return date marks
its writer away, and delivery reports count hard bounces until the address is no longer
mailed. A DMARC failure stamped by our own mail server is quarantined; a message too large
to read, or one that breaks the parser, is kept as "unprocessable" for an admin. Rejection
notices go to the registered person, never to an unknown sender, at most one a day.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.answers import NotAllowed, answer_context, record_answers
from bot.domain.autoreplies import Bounce, classify_bounces, return_date, verp_recipient
from bot.domain.model import Person, Plan, Source
from bot.domain.replies import ParsedReply, RejectedLine, parse_reply
from bot.domain.status import local_date
from handlers.email_messages import confirmation_email, mail_domain, token_hash
from handlers.inbound_mail import InboundMail, dedupe_key, read_mail, rejection_email, reply_text
from storage.delivery import InboundRepository, OutboxRepository, PromptRepository
from storage.models import EmailBounceRow, InboundRow, PersonRow, PromptRow
from storage.repositories import utc

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
BOUNCE_LIMIT = 3
DEFAULT_TIMEZONE = "Europe/London"


@dataclass(frozen=True, slots=True)
class Outcome:
    state: str  # processed, rejected, ignored, unprocessable
    reason: str
    recorded: int = 0


class Inbound:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        mail_from: str,
        clock: Clock,
        inbox: Path | None = None,
        max_bytes: int = MAX_MESSAGE_BYTES,
        bounce_limit: int = BOUNCE_LIMIT,
        trusted_authserv_id: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.mail_from = mail_from.lower()
        self.own_domain = mail_domain(mail_from).lower()
        self.clock = clock
        self.inbox = inbox
        self.max_bytes = max_bytes
        self.bounce_limit = bounce_limit
        self.trusted_authserv_id = (trusted_authserv_id or "").strip().lower() or None

    async def take_in(self, raw: bytes, *, source: str) -> bool:
        """Keep the raw message (deduplicated) and commit; True when it was new."""
        async with self.sessions() as session, session.begin():
            return await InboundRepository(session).store(
                dedupe_key=dedupe_key(raw), source=source, raw=raw, now=self.clock()
            )

    async def sweep_inbox(self) -> int:
        """Take in every file dropped into the local inbox, then move it to `taken/`."""
        if self.inbox is None or not self.inbox.is_dir():
            return 0
        taken = self.inbox / "taken"
        files = sorted(
            p for p in self.inbox.iterdir() if p.is_file() and not p.name.startswith(".")
        )
        new = 0
        for path in files:
            raw = await asyncio.to_thread(path.read_bytes)
            if await self.take_in(raw, source="maildir"):
                new += 1
            # Only after the commit: a crash before this line re-reads the file, and the
            # dedupe key makes the second reading a no-op.
            taken.mkdir(exist_ok=True)
            os.replace(path, taken / path.name)
        return new

    async def process_pending(self, limit: int = 100) -> list[Outcome]:
        async with self.sessions() as session:
            pending = [row.id for row in await InboundRepository(session).unprocessed(limit)]
        outcomes = []
        for inbound_id in pending:
            outcomes.append(await self.process(inbound_id))
        return outcomes

    async def process(self, inbound_id: int) -> Outcome:
        """Decide about one stored message and record its answers, in one transaction."""
        now = self.clock()
        async with self.sessions() as session, session.begin():
            row = await session.get(InboundRow, inbound_id)
            if row is None or row.state != "new":
                return Outcome("ignored", "already processed")
            try:
                outcome = await self._decide(session, row, now)
            except Exception as exc:  # keep the message for an admin; never lose it
                log.exception("inbound %s could not be processed", inbound_id)
                outcome = Outcome("unprocessable", f"{type(exc).__name__}: {exc}")
            row.state, row.outcome, row.processed_at = outcome.state, outcome.reason, utc(now)
        log.info(
            "inbound %s: %s (%s), %d answers recorded",
            inbound_id,
            outcome.state,
            outcome.reason,
            outcome.recorded,
        )
        return outcome

    async def _decide(self, session: AsyncSession, row: InboundRow, now: datetime) -> Outcome:
        if len(row.raw) > self.max_bytes:
            return Outcome("unprocessable", f"message too large ({len(row.raw)} bytes), not read")
        mail = read_mail(row.raw)
        if self.trusted_authserv_id and any(
            serv == self.trusted_authserv_id and result == "fail" for serv, result in mail.dmarc
        ):
            return Outcome("quarantined", "DMARC failed at our own mail server")
        if self._ours(mail):
            return Outcome("ignored", "our own mail came back")
        if mail.dsn or (mail.auto and "bounce" in mail.auto):
            return await self._bounce(session, row, mail, now)
        if mail.auto:
            return await self._automatic(session, mail, now)
        if mail.sender_problem or not mail.senders:
            return Outcome("rejected", mail.sender_problem or "no sender")
        sender = mail.senders[0]
        if not mail.tokens:
            reason = "no prompt token in References or subject"
            await self._tell_sender(session, sender, mail, reason, now)
            return Outcome("rejected", reason)
        prompts = PromptRepository(session)
        found = None
        for token in mail.tokens:
            found = await prompts.by_token_hash(token_hash(token))
            if found:
                break
        if found is None:
            await self._tell_sender(session, sender, mail, "unknown prompt token", now)
            return Outcome("rejected", "unknown prompt token")
        prompt, expires = found
        row.prompt_id = prompt.id
        if expires < now:
            reason = "the prompt's token has expired"
            await self._tell_sender(session, sender, mail, reason, now)
            return Outcome("rejected", reason)
        return await self._record(session, row, mail, prompt, sender, now)

    def _ours(self, mail: InboundMail) -> bool:
        """Mail from our own address, or one of our own messages looping back."""
        mid = (mail.message_id or "").lower()
        return (bool(mail.senders) and mail.senders[0] == self.mail_from) or (
            mid.startswith("<pp.") and mid.endswith(f"@{self.own_domain}>")
        )

    async def _bounce(
        self, session: AsyncSession, row: InboundRow, mail: InboundMail, now: datetime
    ) -> Outcome:
        """Count what a delivery report says failed; stop mailing an address that keeps
        failing hard. Never answered."""
        verp = next(
            (v for a in mail.envelope_to if (v := verp_recipient(a, own_address=self.mail_from))),
            None,
        )
        bounces: dict[str, Bounce] = {}
        for bounce in classify_bounces(mail.dsn, sent_to=verp or mail.dsn_sent_to):
            if bounce.address not in bounces or bounce.hard:
                bounces[bounce.address] = bounce
        if not bounces:
            return Outcome("ignored", "delivery report (bounce) naming no failed address")
        for bounce in bounces.values():
            session.add(
                EmailBounceRow(
                    address=bounce.address,
                    hard=bounce.hard,
                    status=bounce.status,
                    inbound_id=row.id,
                    bounced_at=utc(now),
                )
            )
        await session.flush()
        for bounce in bounces.values():
            if bounce.hard:
                await self._stop_if_bouncing(session, bounce.address, now)
        return Outcome(
            "ignored",
            "bounce: "
            + ", ".join(
                f"{'hard' if b.hard else 'soft'} {b.status} {b.address}" for b in bounces.values()
            ),
        )

    async def _stop_if_bouncing(self, session: AsyncSession, address: str, now: datetime) -> None:
        hard = await session.scalar(
            select(func.count())
            .select_from(EmailBounceRow)
            .where(EmailBounceRow.address == address, EmailBounceRow.hard.is_(True))
        )
        if int(hard or 0) < self.bounce_limit:
            return
        people = await session.scalars(
            select(PersonRow).where(
                func.lower(PersonRow.email) == address, PersonRow.email_bounced_at.is_(None)
            )
        )
        for person in people.all():
            person.email_bounced_at = utc(now)
            # An alert for admins: this lead will not be emailed until their address is fixed.
            log.error(
                "email to %s (%s) bounced hard %d times; no more mail will be sent to them "
                "until their address is corrected",
                person.key,
                address,
                hard,
            )

    async def _automatic(self, session: AsyncSession, mail: InboundMail, now: datetime) -> Outcome:
        """Never answered; an out-of-office naming a return date marks its writer away."""
        reason = mail.auto or "automatic mail"
        if reason == "mailing-list mail" or len(mail.senders) != 1:
            return Outcome("ignored", reason)
        today = (mail.date or now).date()
        away = return_date(f"{mail.subject}\n{mail.body}", today=today)
        if away is None:
            return Outcome("ignored", reason)
        person = await session.scalar(
            select(PersonRow).where(func.lower(PersonRow.email) == mail.senders[0])
        )
        if person is None:
            return Outcome("ignored", reason)
        if person.away_until is None or person.away_until < away:
            person.away_until = away
        log.info("%s is away until %s (out-of-office)", person.key, away.isoformat())
        return Outcome("ignored", f"{reason}; away until {away.isoformat()}")

    async def _record(
        self,
        session: AsyncSession,
        row: InboundRow,
        mail: InboundMail,
        prompt: PromptRow,
        sender: str,
        now: datetime,
    ) -> Outcome:
        writer_key = await session.scalar(
            select(PersonRow.key).where(func.lower(PersonRow.email) == sender)
        )
        if writer_key is None:
            await self._tell_owner(session, prompt, sender, mail, now)
            return Outcome("rejected", f"{sender} is not a known person")
        try:
            context = await answer_context(session, prompt, writer_key, now=now)
        except NotAllowed as refused:
            await self._tell_owner(session, prompt, sender, mail, now)
            return Outcome("rejected", refused.reason)
        text = reply_text(mail.body)
        if not text.strip():
            nothing = RejectedLine(
                "(no text)", 1, "the reply had no text of its own above the quoted prompt"
            )
            await self._confirm(
                session, row, context.plan, context.writer, mail, ParsedReply((), (nothing,)), now
            )
            return Outcome("rejected", "no content")
        parsed = parse_reply(text, context.asked, today=context.today)
        accepted = [line for line in parsed.accepted if line.ref in context.allowed]
        rejected = list(parsed.rejected) + [
            RejectedLine(
                f"{line.ref} …",
                line.line_no,
                f"you are not a lead of {line.ref}; it was not recorded",
            )
            for line in parsed.accepted
            if line.ref not in context.allowed
        ]
        recorded = await record_answers(
            session,
            context,
            accepted,
            source=Source.EMAIL,
            external_key=mail.message_id or row.dedupe_key,
            given_at=_given_at(mail.date, prompt, now),
            now=now,
        )
        await self._confirm(
            session,
            row,
            context.plan,
            context.writer,
            mail,
            ParsedReply(tuple(accepted), tuple(rejected)),
            now,
        )
        if not accepted:
            return Outcome("rejected", "nothing could be recorded", 0)
        return Outcome("processed", f"{len(accepted)} recorded, {len(rejected)} not", recorded)

    async def _confirm(
        self,
        session: AsyncSession,
        row: InboundRow,
        plan: Plan,
        writer: Person,
        mail: InboundMail,
        parsed: ParsedReply,
        now: datetime,
    ) -> None:
        if not writer.email:
            return
        token = mail.tokens[0]
        message = confirmation_email(
            plan=plan,
            person=writer,
            accepted=parsed.accepted,
            rejected=parsed.rejected,
            token=token,
            mail_from=self.mail_from,
            now=now,
            in_reply_to=mail.message_id,
        )
        # A reply that recorded nothing is answered at most once a day per sender.
        dedupe = (
            f"confirm:{row.id}"
            if parsed.accepted
            else f"reject:{writer.email.lower()}:{local_date(now, plan.timezone)}"
        )
        await OutboxRepository(session).enqueue(
            dedupe_key=dedupe,
            kind="confirmation",
            channel="email",
            recipient=writer.email,
            payload=message.payload(),
            message_id=message.message_id,
            now=now,
        )

    async def _tell_sender(
        self, session: AsyncSession, sender: str, mail: InboundMail, why: str, now: datetime
    ) -> None:
        """Tell the registered person of the sending address; an unknown sender hears nothing."""
        person = await session.scalar(
            select(PersonRow).where(
                func.lower(PersonRow.email) == sender, PersonRow.email_bounced_at.is_(None)
            )
        )
        if person is None or not person.email:
            return
        text = (
            f"Hello {person.name},\n\n"
            f'A message from your address with the subject "{mail.subject[:150]}" reached '
            f"Plan Pulse, but nothing was recorded from it: {_plain(why)}.\n\n"
            "To give an update, reply to your latest progress prompt without changing its "
            "subject.\n\n-- \nPlan Pulse\n"
        )
        await self._notify(session, person, text, mail.message_id, now)

    async def _tell_owner(
        self,
        session: AsyncSession,
        prompt: PromptRow,
        sender: str,
        mail: InboundMail,
        now: datetime,
    ) -> None:
        """A reply came from someone who may not answer: the prompt's person is told."""
        owner = await session.get(PersonRow, prompt.person_id)
        if owner is None or not owner.email or owner.email_bounced_at is not None:
            return
        text = (
            f"Hello {owner.name},\n\n"
            f"A reply to your progress prompt came from {sender}, who is not you, your delegate "
            "or a joint lead of the milestones it asked about, so nothing was recorded from "
            "it.\n\nIf they should answer for you, ask the plan's administrator to make them "
            "your delegate; otherwise please reply yourself.\n\n-- \nPlan Pulse\n"
        )
        await self._notify(session, owner, text, None, now)

    async def _notify(
        self,
        session: AsyncSession,
        person: PersonRow,
        text: str,
        in_reply_to: str | None,
        now: datetime,
    ) -> None:
        assert person.email is not None
        message = rejection_email(
            to_name=person.name,
            to_address=person.email,
            subject="Not recorded: your message to Plan Pulse",
            text=text,
            mail_from=self.mail_from,
            now=now,
            in_reply_to=in_reply_to,
        )
        day = local_date(now, person.timezone or DEFAULT_TIMEZONE)
        # The same key as a reply that recorded nothing: at most one such mail a day each.
        await OutboxRepository(session).enqueue(
            dedupe_key=f"reject:{person.email.lower()}:{day}",
            kind="rejection",
            channel="email",
            recipient=person.email,
            payload=message.payload(),
            message_id=message.message_id,
            now=now,
        )


def _plain(why: str) -> str:
    return {
        "no prompt token in References or subject": "it did not answer a progress prompt",
        "unknown prompt token": "it did not answer a current progress prompt",
        "the prompt's token has expired": "the progress prompt it answered has closed",
    }.get(why, why)


def _given_at(date: datetime | None, prompt: PromptRow, now: datetime) -> datetime:
    """When the answer was given: the message's Date, kept between the prompt and now."""
    if date is None:
        return now
    return max(utc(prompt.created_at), min(date, now))
