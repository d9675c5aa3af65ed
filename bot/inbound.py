"""The one inbound path for email, whichever way it arrives (local inbox folder now; IMAP
and an SMTP listener plug into `take_in`): store the raw message and commit, and only then
tell the source it was taken; process what is stored, idempotently.

Deciding follows DESIGN.md §9: the reply must carry a live prompt token AND come from the
prompt's person, their delegate, or a joint lead of what it answers. Automatic mail is
never answered. Whatever cannot be read is kept as "unprocessable" for an admin.
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
from bot.domain.model import Person, Plan, Source
from bot.domain.replies import ParsedReply, RejectedLine, parse_reply, strip_quoted
from bot.domain.status import local_date
from handlers.email_messages import confirmation_email, mail_domain, token_hash
from handlers.inbound_mail import InboundMail, dedupe_key, read_mail
from storage.delivery import InboundRepository, OutboxRepository, PromptRepository
from storage.models import InboundRow, PersonRow, PromptRow
from storage.repositories import utc

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
MAX_MESSAGE_BYTES = 10 * 1024 * 1024


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
    ) -> None:
        self.sessions = sessions
        self.mail_from = mail_from.lower()
        self.own_domain = mail_domain(mail_from).lower()
        self.clock = clock
        self.inbox = inbox

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
        if len(row.raw) > MAX_MESSAGE_BYTES:
            return Outcome("unprocessable", f"message too large ({len(row.raw)} bytes)")
        mail = read_mail(row.raw)
        if mail.auto:
            return Outcome("ignored", mail.auto)
        if len(mail.senders) != 1:
            return Outcome("rejected", "no sender" if not mail.senders else "several senders")
        sender = mail.senders[0]
        if sender == self.mail_from or (
            mail.message_id
            and mail.message_id.lower().endswith(f"@{self.own_domain}>")
            and mail.message_id.lower().startswith("<pp.")
        ):
            return Outcome("ignored", "our own mail came back")
        if not mail.tokens:
            return Outcome("rejected", "no prompt token in References or subject")
        prompts = PromptRepository(session)
        found = None
        for token in mail.tokens:
            found = await prompts.by_token_hash(token_hash(token))
            if found:
                break
        if found is None:
            return Outcome("rejected", "unknown prompt token")
        prompt, expires = found
        row.prompt_id = prompt.id
        if expires < now:
            return Outcome("rejected", "the prompt's token has expired")
        return await self._record(session, row, mail, prompt, sender, now)

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
            return Outcome("rejected", f"{sender} is not a known person")
        try:
            context = await answer_context(session, prompt, writer_key, now=now)
        except NotAllowed as refused:
            return Outcome("rejected", refused.reason)
        parsed = parse_reply(strip_quoted(mail.body), context.asked, today=context.today)
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
            else f"reject:{writer.email}:{local_date(now, plan.timezone)}"
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


def _given_at(date: datetime | None, prompt: PromptRow, now: datetime) -> datetime:
    """When the answer was given: the message's Date, kept between the prompt and now."""
    if date is None:
        return now
    return max(utc(prompt.created_at), min(date, now))
