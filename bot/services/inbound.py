"""The one inbound path for email, whichever way it arrives (local inbox folder now; IMAP
and an SMTP listener plug into `take_in`): store the raw message and commit, and only then
tell the source it was taken; process what is stored, idempotently.

Deciding follows DESIGN.md §9 and RELIABILITY.md "Decisions": the reply must carry a live
prompt token AND come from the prompt's person, their delegate, or a joint lead of what it
answers. Automatic mail is never answered: an out-of-office that names a return date marks
its writer away, and delivery reports count hard bounces until the address is no longer
mailed. A DMARC failure stamped by our own mail server is quarantined; a message too large
to read, or one that breaks the parser, is kept as "unprocessable" for an admin.

Every message from a known person gets one answer (a confirmation, or a notice saying why
nothing was recorded), up to `ANSWERS_PER_HOUR` answers to an address an hour; past that
what they send is still decided and recorded, and one notice says answers are paused for
the hour. A notice to a person about someone else's mail (a stranger or the wrong sender
used their prompt) goes at most once a day, counted apart; unknown senders hear nothing.
Our own prompt and confirmation text quoted inline is never read as answers, a reply to a
confirmation with nothing in it to read is not answered, and at most `DECIDED_PER_HOUR`
messages from one address are decided an hour: the rest wait, kept, for the next hour,
with one alert in the log. Together they stop a careless auto-responder from looping.

Both steps work a batch at a time. The local inbox is stored a batch of files per
transaction, each batch's files moved only after its commit. Stored messages are decided a
batch per transaction: the batch's prompts, senders and plans are read once (`_Batch`,
`AnswerBatch.load`), its answers recorded and its mail queued together, each reply judged
after the ones before it in the batch as if they were committed. Should one message fail
unexpectedly, the batch is rolled back and decided again with a savepoint per message, so
only that one is kept as "unprocessable".
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.clock import Clock
from bot.domain.autoreplies import Bounce, classify_bounces, return_date, verp_recipient
from bot.domain.mail_states import ANSWER_KINDS, InboundState, OutboxKind
from bot.domain.model import Person, Plan, Source
from bot.domain.replies import (
    ParsedReply,
    RejectedLine,
    parse_reply,
    quotes_our_confirmation,
    strip_our_text,
)
from bot.domain.status import local_date
from bot.messages.emails import confirmation_email, mail_domain, token_hash
from bot.messages.inbound_mail import (
    HEAD_BYTES,
    InboundMail,
    answer_key,
    dedupe_key,
    head_dedupe_key,
    head_sender,
    header_section,
    read_mail,
    rejection_email,
    reply_text,
    without_text,
)
from bot.services.alerts import AdminAlerts, AlertKind
from bot.services.answers import (
    AnswerBatch,
    AnswerRefused,
    AnswerRequest,
    AnswerResult,
    Recording,
    Who,
)
from bot.signing import Signer
from storage.answers import AskedPrompt
from storage.bounces import BounceRepository
from storage.db import Session, Sessions, savepoint
from storage.inbound_mail import InboundDecision, InboundRepository, StoredMessage
from storage.outbox import NewMessage, OutboxRepository
from storage.personal_data import AuditLog
from storage.prompts import PromptRepository
from storage.repositories import PeopleRepository, PersonRecord

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 10 * 1024 * 1024
BOUNCE_LIMIT = 3
# Files stored per transaction by `sweep_inbox`, and the bytes read before storing them.
SWEEP_BATCH = 200
SWEEP_BATCH_BYTES = 16 * 1024 * 1024
DEFAULT_TIMEZONE = "Europe/London"
ANSWERS_PER_HOUR = 20  # answers to one address's own messages, per clock hour
DECIDED_PER_HOUR = 100  # messages from one address decided per clock hour


@dataclass(frozen=True, slots=True)
class InboundOutcome:
    state: InboundState
    reason: str
    recorded: int = 0


class Inbound:
    def __init__(
        self,
        sessions: Sessions,
        *,
        mail_from: str,
        clock: Clock,
        inbox: Path | None = None,
        max_bytes: int = MAX_MESSAGE_BYTES,
        bounce_limit: int = BOUNCE_LIMIT,
        trusted_authserv_id: str | None = None,
        signer: Signer | None = None,
        alerts: AdminAlerts | None = None,
        sweep_batch: int = SWEEP_BATCH,
    ) -> None:
        self.sessions = sessions
        self.sweep_batch = sweep_batch
        self.alerts = alerts
        # Checks the prompt tokens our prompts carry (signed with PULSE_SECRET_KEY).
        self.signer = signer
        self.mail_from = mail_from
        # MAIL_FROM may carry a display name (`Plan Pulse <pulse@council.example>`): what
        # comes back is matched by the address alone.
        self.own_address = parseaddr(mail_from)[1].lower() or mail_from.lower()
        self.own_domain = mail_domain(mail_from).lower()
        self.clock = clock
        self.inbox = inbox
        self.max_bytes = max_bytes
        self.bounce_limit = bounce_limit
        self.trusted_authserv_id = (trusted_authserv_id or "").strip().lower() or None

    async def take_in(self, raw: bytes, *, source: str) -> bool:
        """Keep the raw message (deduplicated) and commit; True when it was new. A message
        over `max_bytes` is kept as too large, its header section only."""
        if len(raw) > self.max_bytes:
            return await self.take_in_too_large(header_section(raw), size=len(raw), source=source)
        async with self.sessions() as session, session.begin():
            return await InboundRepository(session).store(
                dedupe_key=dedupe_key(raw), source=source, raw=raw, now=self.clock()
            )

    async def take_in_too_large(
        self,
        head: bytes,
        *,
        size: int | None,
        source: str,
        sender: str | None = None,
        refused: bool = False,
        limit: int | None = None,
    ) -> bool:
        """Keep, for an admin to review, a message too large to read (RELIABILITY.md
        scenario 43): a row already "unprocessable" saying so, with its sender and size and
        at most its header section (`head`), never its body. It is never decided, so never
        answered. `refused`: the sender was told no (SMTP 552) and nothing was read, so
        each refusal is its own row; `limit` is the one it broke, when not `max_bytes`. True
        when it was new."""
        head = header_section(head)
        who = sender if sender is not None else head_sender(head)
        how_big = f"{size} bytes" if size is not None else "over the size limit"
        outcome = (
            f"too large ({how_big}; the limit is {limit or self.max_bytes}), "
            f"{'refused' if refused else 'not read'}; from {who or 'no sender'}"
        )
        key = (
            f"refused:{secrets.token_hex(16)}"
            if refused or size is None
            else head_dedupe_key(head, size=size)
        )
        async with self.sessions() as session, session.begin():
            new = await InboundRepository(session).store_unread(
                dedupe_key=key, source=source, head=head, outcome=outcome, now=self.clock()
            )
        if new:
            log.warning("inbound %s mail kept unread: %s", source, outcome)
        return new

    async def take_in_many(self, raws: Sequence[bytes], *, source: str) -> int:
        """Keep many raw messages (deduplicated) in one transaction and commit; how many
        were new."""
        if not raws:
            return 0
        async with self.sessions() as session, session.begin():
            return await InboundRepository(session).store_many(
                [(dedupe_key(raw), raw) for raw in raws], source=source, now=self.clock()
            )

    async def sweep_inbox(self) -> int:
        """Take in every file dropped into the local inbox, then move it to `taken/`.

        Files are stored a batch at a time, each batch in one transaction; a batch's files
        are moved only after its commit, so a crash before the move re-reads them, and the
        dedupe key makes the second reading a no-op."""
        if self.inbox is None or not self.inbox.is_dir():
            return 0
        taken = self.inbox / "taken"
        files = sorted(
            p for p in self.inbox.iterdir() if p.is_file() and not p.name.startswith(".")
        )
        new = 0
        while files:
            read, files = await asyncio.to_thread(
                _read_files, files, self.max_bytes, self.sweep_batch
            )
            whole = [file for file in read if file.whole]
            try:
                new += await self.take_in_many([file.raw for file in whole], source="maildir")
                stored = whole
            except Exception as exc:
                # One message the database refuses must not keep the others out.
                log.warning(
                    "inbox: storing %d files together failed (%s); storing them one by one",
                    len(whole),
                    type(exc).__name__,
                )
                stored, fresh = await self._take_in_one_by_one(whole)
                new += fresh
            for file in read:
                if not file.whole:
                    new += await self.take_in_too_large(file.raw, size=file.size, source="maildir")
                    stored.append(file)
            # Only after the commit.
            await asyncio.to_thread(_move_files, [file.path for file in stored], taken)
        return new

    async def _take_in_one_by_one(self, files: list[_File]) -> tuple[list[_File], int]:
        """Store each file in a transaction of its own: (the files stored, how many were
        new). A file that fails stays in the inbox for the next sweep; when every one
        fails, the database is the trouble and the sweep stops with its error."""
        stored: list[_File] = []
        new = 0
        failure: Exception | None = None
        for file in files:
            try:
                new += await self.take_in(file.raw, source="maildir")
            except Exception as exc:
                failure = exc
                # The type only: the error could quote the message (RELIABILITY.md).
                log.warning(
                    "inbox: %s not taken in (%s); it stays in the inbox",
                    file.path.name,
                    type(exc).__name__,
                )
                continue
            stored.append(file)
        if failure is not None and not stored:
            raise failure
        return stored, new

    async def process_all(self, batch: int = 100) -> list[InboundOutcome]:
        """Decide every message stored when called, `batch` a transaction, oldest first.

        Bounded by the count at the start, so mail arriving meanwhile (or a message left
        undecided) cannot keep it going for ever."""
        async with self.sessions() as session:
            waiting = await InboundRepository(session).count_new()
        outcomes: list[InboundOutcome] = []
        for _ in range(-(-waiting // batch)):
            decided = await self.process_pending(batch)
            if not decided:
                break
            outcomes += decided
        return outcomes

    async def process_pending(self, limit: int = 100) -> list[InboundOutcome]:
        """Decide up to `limit` stored messages, oldest first, in one transaction.

        Should one message fail unexpectedly, the batch is rolled back and decided again
        with a savepoint around each message: the failing one is kept as "unprocessable"
        and the others are recorded as if it were not there."""
        try:
            decided = await self._process_batch(limit, careful=False)
        except _MessageFailed as failed:
            log.warning(
                "inbound %s failed (%s); deciding its batch again one message at a time",
                failed.inbound_id,
                type(failed.__cause__).__name__,
            )
            decided = await self._process_batch(limit, careful=True)
        for inbound_id, outcome in decided:
            log.info(
                "inbound %s: %s (%s), %d answers recorded",
                inbound_id,
                outcome.state,
                outcome.reason,
                outcome.recorded,
            )
        return [outcome for _, outcome in decided]

    async def _process_batch(
        self, limit: int, *, careful: bool
    ) -> list[tuple[int, InboundOutcome]]:
        now = self.clock()
        async with self.sessions() as session, session.begin():
            inbound = InboundRepository(session)
            stored = await inbound.pending(limit, now=now)
            if not stored:
                return []
            read = [(message, self._read(message)) for message in stored]
            hour = _hour(now)
            decided = await inbound.decided_since(
                {m.senders[0] for _, m in read if isinstance(m, InboundMail) and m.senders}, hour
            )
            held: dict[str, list[int]] = {}
            batch = await _Batch.load(
                session, [m for _, m in read if isinstance(m, InboundMail)], self.signer
            )
            works: list[_Work] = []
            for message, mail in read:
                sender = mail.senders[0] if isinstance(mail, InboundMail) and mail.senders else None
                if sender is not None:
                    if decided.get(sender, 0) >= DECIDED_PER_HOUR:
                        held.setdefault(sender, []).append(message.id)
                        continue
                    decided[sender] = decided.get(sender, 0) + 1
                work = _Work(message, sender=sender)
                if isinstance(mail, InboundOutcome):
                    work.outcome = mail
                elif careful:
                    try:
                        async with savepoint(session):
                            work.outcome = await self._decide(session, work, mail, batch, now)
                            if work.answer is not None:
                                recording = await batch.load_answers(session)
                                (work.answer,) = await recording.record(session)
                                work.outcome = replace(work.outcome, recorded=work.answer.recorded)
                    except Exception as exc:  # keep the message for an admin; never lose it
                        if batch.answers is not None:
                            batch.answers.discard()
                        log.error(
                            "inbound %s could not be processed: %s",
                            message.id,
                            without_text(exc),
                        )
                        # What it wrote and queued was rolled back with its savepoint.
                        work = _Work(message, sender=sender)
                        # The type only: an error's text may quote the message (a
                        # database's quotes the row it refused, note and all).
                        work.outcome = InboundOutcome(
                            InboundState.UNPROCESSABLE,
                            f"{type(exc).__name__}; where it failed is in the log",
                        )
                else:
                    try:
                        work.outcome = await self._decide(session, work, mail, batch, now)
                    except Exception as exc:
                        raise _MessageFailed(message.id) from exc
                works.append(work)
            if not careful:
                await self._record_all(session, works, batch)
            outbox = OutboxRepository(session)
            answers = await self._answers_within_limit(outbox, works, now)
            await outbox.enqueue_many(
                [*answers, *(queued for work in works for queued in work.outbox)], now=now
            )
            outcomes = [(work.message.id, work.decided()) for work in works]
            await inbound.finish(
                [
                    InboundDecision(i, outcome.state, outcome.reason, work.prompt_id, work.sender)
                    for work, (i, outcome) in zip(works, outcomes, strict=True)
                ],
                now=now,
            )
            outcomes += await self._hold_back(inbound, held, hour + timedelta(hours=1))
        return outcomes

    async def _hold_back(
        self, inbound: InboundRepository, held: dict[str, list[int]], until: datetime
    ) -> list[tuple[int, InboundOutcome]]:
        """Leave the messages of senders past their hourly limit for the next hour; the first
        time an address is held back in an hour, alert the admins in the log."""
        if not held:
            return []
        already = await inbound.held_senders(list(held), until)
        outcomes = []
        for sender, ids in held.items():
            await inbound.hold_back(ids, sender=sender, until=until)
            if sender not in already:
                log.error(
                    "more than %d messages from %s this hour (a mail loop?); the rest wait "
                    "until %s",
                    DECIDED_PER_HOUR,
                    sender,
                    until.isoformat(),
                )
            reason = f"over {DECIDED_PER_HOUR} messages from {sender} this hour; waits"
            outcomes += [(i, InboundOutcome(InboundState.DEFERRED, reason)) for i in ids]
        return outcomes

    async def _answers_within_limit(
        self, outbox: OutboxRepository, works: Sequence[_Work], now: datetime
    ) -> list[NewMessage]:
        """The batch's answers to people's own messages, in order, at most `ANSWERS_PER_HOUR`
        to an address in the clock hour (those queued earlier in it count); past that, one
        notice a person's answers are paused until the next hour."""
        wanted = [answer for work in works for answer in work.answers]
        if not wanted:
            return []
        hour = _hour(now)
        sent = await outbox.sent_since(
            {a.message.recipient for a in wanted}, kinds=ANSWER_KINDS, since=hour
        )
        queued: list[NewMessage] = []
        for answer in wanted:
            address = answer.message.recipient
            count = sent.get(address, 0)
            sent[address] = count + 1
            if count < ANSWERS_PER_HOUR:
                queued.append(answer.message)
            elif count == ANSWERS_PER_HOUR:
                queued.append(self._paused(answer, hour, now))
        return queued

    def _paused(self, answer: _Answer, hour: datetime, now: datetime) -> NewMessage:
        """The one notice that answers to this address are paused until the next hour
        (keyed by address and hour, so only one is ever sent)."""
        zone = ZoneInfo(answer.timezone or DEFAULT_TIMEZONE)
        since = hour.astimezone(zone)
        until = (hour + timedelta(hours=1)).astimezone(zone)
        text = (
            f"Hello {answer.name},\n\n"
            f"Your replies to Plan Pulse are paused until {until:%H:%M}: {ANSWERS_PER_HOUR} "
            f"answers have been sent to you since {since:%H:%M}, the most an hour.\n\n"
            "What you send meanwhile is still read and recorded; you will hear about it again "
            f"from {until:%H:%M}. `pulse status` and the next digest show what was recorded.\n\n"
            "-- \nPlan Pulse\n"
        )
        message = rejection_email(
            to_name=answer.name,
            to_address=answer.message.recipient,
            subject="Paused: answers from Plan Pulse",
            text=text,
            mail_from=self.mail_from,
            now=now,
            in_reply_to=None,
        )
        return NewMessage(
            dedupe_key=f"paused:{answer.message.recipient.lower()}:{hour:%Y-%m-%dT%H}",
            kind=OutboxKind.PAUSED,
            channel="email",
            recipient=answer.message.recipient,
            payload=message.payload(),
            message_id=message.message_id,
        )

    async def _record_all(self, session: Session, works: Sequence[_Work], batch: _Batch) -> None:
        """Record every answer of the batch at once (`AnswerBatch.record`); each outcome
        counts its own."""
        answering = [work for work in works if work.answer is not None]
        if not answering:
            return
        assert batch.answers is not None
        try:
            results = {id(r.request): r for r in await batch.answers.record(session)}
        except Exception as exc:
            raise _MessageFailed(None) from exc
        for work in answering:
            assert work.answer is not None
            work.answer = results[id(work.answer.request)]
            work.outcome = replace(work.decided(), recorded=work.answer.recorded)

    def _read(self, message: StoredMessage) -> InboundMail | InboundOutcome:
        """The parsed message, or why it cannot be read (kept as unprocessable)."""
        if len(message.raw) > self.max_bytes:
            return InboundOutcome(
                InboundState.UNPROCESSABLE,
                f"message too large ({len(message.raw)} bytes), not read",
            )
        try:
            return read_mail(message.raw)
        except Exception as exc:  # read_mail is tolerant; this is a last resort
            log.error("inbound %s could not be read: %s", message.id, without_text(exc))
            # The type only, as when recording fails: the error's text may quote the mail.
            return InboundOutcome(
                InboundState.UNPROCESSABLE, f"{type(exc).__name__}; where it failed is in the log"
            )

    async def _decide(
        self,
        session: Session,
        work: _Work,
        mail: InboundMail,
        batch: _Batch,
        now: datetime,
    ) -> InboundOutcome:
        if self.trusted_authserv_id and any(
            serv == self.trusted_authserv_id and result == "fail" for serv, result in mail.dmarc
        ):
            return InboundOutcome(InboundState.QUARANTINED, "DMARC failed at our own mail server")
        if self._ours(mail):
            return InboundOutcome(InboundState.IGNORED, "our own mail came back")
        if mail.dsn or (mail.auto and "bounce" in mail.auto):
            return await self._bounce(session, work, mail, now)
        if mail.auto:
            return await self._automatic(session, mail, now)
        if mail.sender_problem or not mail.senders:
            return InboundOutcome(InboundState.REJECTED, mail.sender_problem or "no sender")
        sender = mail.senders[0]
        if not mail.tokens:
            reason = "no prompt token in References or subject"
            await self._tell_sender(session, work, sender, mail, reason, now)
            return InboundOutcome(InboundState.REJECTED, reason)
        found = next(
            (
                batch.prompts[h]
                for t in mail.tokens
                if (h := token_hash(t, self.signer)) in batch.prompts
            ),
            None,
        )
        if found is None:
            await self._tell_sender(session, work, sender, mail, "unknown prompt token", now)
            return InboundOutcome(InboundState.REJECTED, "unknown prompt token")
        prompt, expires = found
        work.prompt_id = prompt.id
        if expires < now:
            reason = "the prompt's token has expired"
            await self._tell_sender(session, work, sender, mail, reason, now)
            return InboundOutcome(InboundState.REJECTED, reason)
        return await self._record(session, work, mail, prompt, sender, batch, now)

    def _ours(self, mail: InboundMail) -> bool:
        """Mail from our own address (or a `+tag` of it, as our return paths are), or one
        of our own messages looping back."""
        mid = (mail.message_id or "").lower()
        if mid.startswith("<pp.") and mid.endswith(f"@{self.own_domain}>"):
            return True
        if not mail.senders:
            return False
        local, _, domain = mail.senders[0].partition("@")
        own_local, _, own_domain = self.own_address.partition("@")
        return mail.senders[0] == self.own_address or (
            domain == own_domain and local.startswith(own_local + "+")
        )

    async def _bounce(
        self, session: Session, work: _Work, mail: InboundMail, now: datetime
    ) -> InboundOutcome:
        """Count what a delivery report says failed; stop mailing an address that keeps
        failing hard. Never answered."""
        verp = next(
            (v for a in mail.envelope_to if (v := verp_recipient(a, own_address=self.own_address))),
            None,
        )
        bounces: dict[str, Bounce] = {}
        for bounce in classify_bounces(mail.dsn, sent_to=verp or mail.dsn_sent_to):
            if bounce.address not in bounces or bounce.hard:
                bounces[bounce.address] = bounce
        if not bounces:
            return InboundOutcome(
                InboundState.IGNORED, "delivery report (bounce) naming no failed address"
            )
        await BounceRepository(session).add(
            list(bounces.values()), inbound_id=work.message.id, now=now
        )
        for bounce in bounces.values():
            if bounce.hard:
                await self._stop_if_bouncing(session, bounce.address, now)
        return InboundOutcome(
            InboundState.IGNORED,
            "bounce: "
            + ", ".join(
                f"{'hard' if b.hard else 'soft'} {b.status} {b.address}" for b in bounces.values()
            ),
        )

    async def _stop_if_bouncing(self, session: Session, address: str, now: datetime) -> None:
        hard = await BounceRepository(session).hard_count(address)
        if hard < self.bounce_limit:
            return
        for person in await PeopleRepository(session).stop_mailing(address, now=now):
            # An alert for admins: this lead will not be emailed until their address is fixed.
            log.error(
                "email to %s (%s) bounced hard %d times; no more mail will be sent to them "
                "until their address is corrected",
                person.key,
                address,
                hard,
            )
            if self.alerts is not None:
                await self.alerts.alert(
                    session,
                    AlertKind.BOUNCE_LIMIT,
                    f"Email to {person.key} ({address}) bounced hard {hard} times, so no more "
                    "mail will be sent to them. Correct their address with `pulse people set "
                    f"{person.key} --email ADDRESS` (or in the people file, then re-import).",
                    now=now,
                )

    async def _automatic(
        self, session: Session, mail: InboundMail, now: datetime
    ) -> InboundOutcome:
        """Never answered; an out-of-office naming a return date marks its writer away."""
        reason = mail.auto or "automatic mail"
        if reason == "mailing-list mail" or len(mail.senders) != 1:
            return InboundOutcome(InboundState.IGNORED, reason)
        today = (mail.date or now).date()
        away = return_date(f"{mail.subject}\n{mail.body}", today=today)
        if away is None:
            return InboundOutcome(InboundState.IGNORED, reason)
        found = await PeopleRepository(session).by_address(mail.senders[0])
        if not found:
            return InboundOutcome(InboundState.IGNORED, reason)
        if len(found) > 1:  # a shared mailbox: whose absence it announces is not known
            return InboundOutcome(
                InboundState.IGNORED, f"{reason}; a shared mailbox, so nobody is marked away"
            )
        person = found[0]
        if await PeopleRepository(session).away_until(person.id, away):
            # Their own change, made by their mail server on their behalf: audited as theirs.
            await AuditLog(session).append(
                at=now,
                action="away_set",
                actor=f"person:{person.id}",
                channel="email",
                person_id=person.id,
                details={"until": away.isoformat(), "by": "out-of-office reply"},
            )
        log.info("%s is away until %s (out-of-office)", person.key, away.isoformat())
        return InboundOutcome(InboundState.IGNORED, f"{reason}; away until {away.isoformat()}")

    async def _record(
        self,
        session: Session,
        work: _Work,
        mail: InboundMail,
        prompt: AskedPrompt,
        sender: str,
        batch: _Batch,
        now: datetime,
    ) -> InboundOutcome:
        """Decide the reply through the answers service: the valid lines are recorded, the
        rest sent back in the confirmation."""
        writer_key = batch.writers.get(sender)
        if writer_key is None:
            await self._tell_owner(session, work, prompt, sender, mail, now)
            return InboundOutcome(InboundState.REJECTED, f"{sender} is not a known person")
        answers = await batch.load_answers(session)
        who = Who(person_key=writer_key)
        try:
            context = answers.context(who, prompt.id, now=now)
        except AnswerRefused as refused:
            await self._tell_owner(session, work, prompt, sender, mail, now)
            return InboundOutcome(InboundState.REJECTED, refused.reason)
        text = strip_our_text(reply_text(mail.body))
        parsed = parse_reply(text, context.asked, today=context.today, answerable=context.allowed)
        if not parsed.accepted and not parsed.rejected and quotes_our_confirmation(mail.body):
            # Answering an answer that says nothing is how a mail loop goes round.
            return InboundOutcome(
                InboundState.REJECTED, "nothing to read in a reply to a confirmation; not answered"
            )
        if not text.strip():
            nothing = RejectedLine(
                "(no text)", 1, "the reply had no text of its own above the quoted prompt"
            )
            self._confirm(
                work, context.plan, context.writer, mail, ParsedReply((), (nothing,)), now
            )
            return InboundOutcome(InboundState.REJECTED, "no content")
        result = answers.decide(
            AnswerRequest(
                who,
                prompt.id,
                parsed.accepted,
                _given_at(mail.date, prompt, now),
                answer_key(mail.message_id, work.message.dedupe_key),
                Source.EMAIL,
                Recording.VALID_LINES,
                now,
            ),
            context,
        )
        accepted = result.kept
        rejected = list(parsed.rejected) + [
            RejectedLine(f"{line.ref} …", line.line_no, line.reason, line.refusal)
            for line in result.refused
        ]
        if accepted:  # recorded with the batch (`AnswerBatch.record`), which counts the new
            work.answer = result
        self._confirm(
            work,
            context.plan,
            context.writer,
            mail,
            ParsedReply(tuple(accepted), tuple(rejected)),
            now,
        )
        if not accepted:
            return InboundOutcome(InboundState.REJECTED, "nothing could be recorded", 0)
        return InboundOutcome(
            InboundState.PROCESSED, f"{len(accepted)} recorded, {len(rejected)} not"
        )

    def _confirm(
        self,
        work: _Work,
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
        # One answer per message (within the hourly limit per address).
        work.answers.append(
            _Answer(
                NewMessage(
                    dedupe_key=f"confirm:{work.message.id}",
                    kind=OutboxKind.CONFIRMATION,
                    channel="email",
                    recipient=writer.email,
                    payload=message.payload(),
                    message_id=message.message_id,
                ),
                writer.name,
                writer.timezone,
            )
        )

    async def _tell_sender(
        self,
        session: Session,
        work: _Work,
        sender: str,
        mail: InboundMail,
        why: str,
        now: datetime,
    ) -> None:
        """Tell the registered person of the sending address; an unknown sender hears nothing."""
        mailable = await PeopleRepository(session).by_address(sender, mailable=True)
        person = mailable[0] if mailable else None
        if person is None or not person.email:
            return
        text = (
            f"Hello {person.name},\n\n"
            f'A message from your address with the subject "{mail.subject[:150]}" reached '
            f"Plan Pulse, but nothing was recorded from it: {_plain(why)}.\n\n"
            "To give an update, reply to your latest progress prompt without changing its "
            "subject.\n\n-- \nPlan Pulse\n"
        )
        # Their own message: one answer for it, within the hourly limit of answers.
        message = self._notice(
            person,
            text,
            mail.message_id,
            now,
            dedupe_key=f"notice:{work.message.id}",
            kind=OutboxKind.REJECTION,
        )
        work.answers.append(_Answer(message, person.name, person.timezone))

    async def _tell_owner(
        self,
        session: Session,
        work: _Work,
        prompt: AskedPrompt,
        sender: str,
        mail: InboundMail,
        now: datetime,
    ) -> None:
        """A reply came from someone who may not answer: the prompt's person is told."""
        owner = await PeopleRepository(session).record(prompt.person_id)
        if owner is None or not owner.email or owner.bounced:
            return
        text = (
            f"Hello {owner.name},\n\n"
            f"A reply to your progress prompt came from {sender}, who is not you, your delegate "
            "or a joint lead of the milestones it asked about, so nothing was recorded from "
            "it.\n\nIf they should answer for you, ask the plan's administrator to make them "
            "your delegate; otherwise please reply yourself.\n\n-- \nPlan Pulse\n"
        )
        # About someone else's mail: at most one a day, counted apart from answers.
        day = local_date(now, owner.timezone or DEFAULT_TIMEZONE)
        work.outbox.append(
            self._notice(
                owner,
                text,
                None,
                now,
                dedupe_key=f"others:{owner.email.lower()}:{day}",
                kind=OutboxKind.NOTICE,
            )
        )

    def _notice(
        self,
        person: PersonRecord,
        text: str,
        in_reply_to: str | None,
        now: datetime,
        *,
        dedupe_key: str,
        kind: str,
    ) -> NewMessage:
        """A notice that nothing was recorded."""
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
        return NewMessage(
            dedupe_key=dedupe_key,
            kind=kind,
            channel="email",
            recipient=person.email,
            payload=message.payload(),
            message_id=message.message_id,
        )


class _MessageFailed(Exception):
    """A message (or, with None, recording the batch's answers) failed while its batch was
    decided without savepoints."""

    def __init__(self, inbound_id: int | None) -> None:
        super().__init__(inbound_id)
        self.inbound_id = inbound_id


@dataclass(frozen=True, slots=True)
class _Answer:
    """Mail answering a person's own message, counted against their hourly limit."""

    message: NewMessage
    name: str
    timezone: str | None


@dataclass(slots=True)
class _Work:
    """One stored message being decided: who sent it, the prompt it answers, the answer it
    gives and the mail it queues (all written only once the message is decided: `answers`
    within the hourly limit, `outbox` as it is), and its outcome."""

    message: StoredMessage
    sender: str | None = None
    prompt_id: int | None = None
    answer: AnswerResult | None = None
    answers: list[_Answer] = field(default_factory=list)
    outbox: list[NewMessage] = field(default_factory=list)
    outcome: InboundOutcome | None = None

    def decided(self) -> InboundOutcome:
        assert self.outcome is not None
        return self.outcome


@dataclass(slots=True)
class _Batch:
    """Lookups a batch's messages share, each made once for the whole batch: the prompts
    their tokens name, and who writes from each sender address; and, once the first
    message gets that far, what answering their prompts needs (`answers`)."""

    prompts: dict[str, tuple[AskedPrompt, datetime]]  # by token hash
    writers: dict[str, str]  # person key by lower-case address
    answers: AnswerBatch | None = None

    async def load_answers(self, session: Session) -> AnswerBatch:
        """What answering the batch's prompts needs (`AnswerBatch.load`), read once."""
        if self.answers is None:
            self.answers = await AnswerBatch.load(
                session,
                prompts=[prompt for prompt, _ in self.prompts.values()],
                person_keys=set(self.writers.values()),
            )
        return self.answers

    @classmethod
    async def load(
        cls, session: Session, mails: Sequence[InboundMail], signer: Signer | None
    ) -> _Batch:
        hashes = [token_hash(t, signer) for mail in mails for t in mail.tokens]
        prompts = await PromptRepository(session).by_token_hashes(hashes)
        addresses = list(dict.fromkeys(m.senders[0] for m in mails if m.senders and m.tokens))
        writers = await PeopleRepository(session).writers(addresses)
        return cls(prompts, writers)


@dataclass(frozen=True, slots=True)
class _File:
    """A file of the inbox folder as read: whole, or (over the size limit) only as far as
    its header section."""

    path: Path
    raw: bytes  # the whole message, or only its first HEAD_BYTES when not `whole`
    size: int
    whole: bool


def _read_file(path: Path, max_bytes: int) -> _File:
    """The file's size is looked at before it is read: one over `max_bytes` is never read
    whole (nor one that grew past it since)."""
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size <= max_bytes:
            raw = handle.read(max_bytes + 1)
            if len(raw) <= max_bytes:
                return _File(path, raw, len(raw), True)
            size = max(size, os.fstat(handle.fileno()).st_size)
        handle.seek(0)
        return _File(path, handle.read(HEAD_BYTES), size, False)


def _read_files(paths: list[Path], max_bytes: int, batch: int) -> tuple[list[_File], list[Path]]:
    """Read files until a batch of `batch` files is full: (what was read, what is left). A
    file that has gone since the folder was listed (another sweep took it) is skipped."""
    read: list[_File] = []
    size = 0
    for n, path in enumerate(paths):
        if read and (len(read) >= batch or size >= max(SWEEP_BATCH_BYTES, max_bytes)):
            return read, paths[n:]
        try:
            file = _read_file(path, max_bytes)
        except FileNotFoundError:
            continue
        read.append(file)
        size += len(file.raw)
    return read, []


def _move_files(paths: list[Path], taken: Path) -> None:
    taken.mkdir(exist_ok=True)
    for path in paths:
        os.replace(path, taken / path.name)


def _hour(now: datetime) -> datetime:
    """The start of the clock hour (UTC) `now` is in: limits count per clock hour."""
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _plain(why: str) -> str:
    return {
        "no prompt token in References or subject": "it did not answer a progress prompt",
        "unknown prompt token": "it did not answer a current progress prompt",
        "the prompt's token has expired": "the progress prompt it answered has closed",
    }.get(why, why)


def _given_at(date: datetime | None, prompt: AskedPrompt, now: datetime) -> datetime:
    """When the answer was given: the message's Date, kept between the prompt and now."""
    if date is None:
        return now
    return max(prompt.created_at, min(date, now))
