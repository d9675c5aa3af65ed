"""Outbound email as real RFC 5322 messages: prompts, reminders and confirmations, each
multipart text + HTML from Jinja templates (HTML autoescaped, table layout and inline
styles so Outlook shows it), with the headers of RELIABILITY.md and a stable Message-ID.

The reply token is 128 bits, shown in the subject as `[PP-…]` and carried in the
Message-ID, so a reply is matched by its References or its subject — never by
sub-addressing, which Exchange does not support. Signed with `PULSE_SECRET_KEY`, it is 80
random bits and a 48-bit signature of them; only a keyed hash of it is stored, so a token
that this key did not sign matches no prompt issued under the key. (Tokens issued before
signing, 128 random bits with their SHA-256 stored, are still found until they expire.)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr
from functools import lru_cache
from html import escape
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from bot.domain.contacts import contact_line
from bot.domain.cycles import PromptItem
from bot.domain.model import Contact, Person, Plan
from bot.domain.ratings import DEFAULT_LABELS
from bot.domain.replies import AskedMilestone, RejectedLine, ReplyLine, reply_examples
from bot.domain.status import MilestoneStatus, local_date
from bot.signing import Signer

TOKEN_PATTERN = re.compile(r"\bPP[-.]([A-Z2-7]{26})\b", re.IGNORECASE)

_STATUS_TEXT: Mapping[MilestoneStatus, tuple[str, str]] = {
    MilestoneStatus.OVERDUE: ("overdue", "#a4161a"),
    MilestoneStatus.AT_RISK: ("at risk", "#b35c00"),
    MilestoneStatus.DUE_SOON: ("due soon", "#1d4e89"),
    MilestoneStatus.ON_TRACK: ("on track", "#2b6a30"),
    MilestoneStatus.ACHIEVED: ("achieved", "#2b6a30"),
    MilestoneStatus.NO_DATE: ("no date", "#555555"),
}


def _environment(autoescape: bool) -> Environment:
    return Environment(
        loader=PackageLoader("bot.messages", "templates"),
        autoescape=select_autoescape(["html.j2"]) if autoescape else False,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=False,
    )


_TEXT = _environment(False)
_HTML = _environment(True)
# Loaded once: `get_template` on each message checks the file on disk again.
_PROMPT_TEXT = _TEXT.get_template("prompt.txt.j2")
_PROMPT_HTML = _HTML.get_template("prompt.html.j2")
_CONFIRMATION_TEXT = _TEXT.get_template("confirmation.txt.j2")
_CONFIRMATION_HTML = _HTML.get_template("confirmation.html.j2")


_TOKEN_PURPOSE = "prompt-token"
_TOKEN_RANDOM = 10  # bytes; the other 6 of the 16 are the signature


def new_token(signer: Signer | None = None) -> str:
    """A fresh reply token in base32 (26 letters and digits): 80 random bits and their
    signature by `signer`, or 128 random bits when there is no signer (unsigned)."""
    if signer is None:
        raw = secrets.token_bytes(16)
    else:
        payload = secrets.token_bytes(_TOKEN_RANDOM)
        raw = payload + signer.digest(_TOKEN_PURPOSE, payload)[: 16 - _TOKEN_RANDOM]
    return base64.b32encode(raw).decode("ascii").rstrip("=")


def _signed(token: str, signer: Signer) -> bool:
    try:
        raw = base64.b32decode(token.upper() + "======")
    except (binascii.Error, ValueError):
        return False
    if len(raw) != 16:
        return False
    payload, tag = raw[:_TOKEN_RANDOM], raw[_TOKEN_RANDOM:]
    return hmac.compare_digest(tag, signer.digest(_TOKEN_PURPOSE, payload)[: len(tag)])


def token_hash(token: str, signer: Signer | None = None) -> str:
    """What is stored for a token and looked up by: a keyed hash when `signer` signed it,
    else its SHA-256 (unsigned tokens). The two never meet, so a token the key did not sign
    can only ever match an unsigned one."""
    upper = token.upper()
    if signer is not None and _signed(upper, signer):
        return "k" + signer.digest(_TOKEN_PURPOSE + "-hash", upper).hex()[1:]
    return hashlib.sha256(upper.encode("ascii")).hexdigest()


def find_tokens(*texts: str | None) -> list[str]:
    """Every reply token in the given header values, in order, without repeats."""
    found: list[str] = []
    for text in texts:
        for match in TOKEN_PATTERN.finditer(text or ""):
            token = match.group(1).upper()
            if token not in found:
                found.append(token)
    return found


@lru_cache(maxsize=64)  # one or two sending addresses; parsing one costs more than a message
def mail_domain(mail_from: str) -> str:
    address = parseaddr(mail_from)[1]
    return address.rpartition("@")[2] or "localhost"


def message_id(token: str, kind: str, mail_from: str) -> str:
    """Our Message-IDs: in our own domain, carrying the token, one per outbox row."""
    return f"<pp.{token.lower()}.{kind}@{mail_domain(mail_from)}>"


@dataclass(frozen=True, slots=True)
class _Row:
    milestone_ref: str
    title: str
    due: Any
    status_text: str
    colour: str
    rating: int | None
    note: str | None
    on_behalf_of: str
    asked: str  # the last answers' revised date and support ask, or ""


def _asked(item: PromptItem) -> str:
    """`revised date 31 Jan 2027 · support asked`: what the last answers asked for."""
    parts = [f"revised date {item.revised_due:%d %b %Y}"] if item.revised_due else []
    if item.needs_support:
        parts.append("support asked")
    return " · ".join(parts)


def _rows(items: Sequence[PromptItem]) -> list[_Row]:
    rows = []
    for item in items:
        text, colour = _STATUS_TEXT[item.status]
        if item.status is MilestoneStatus.OVERDUE:
            text = f"overdue by {item.days_overdue} day{'s' if item.days_overdue != 1 else ''}"
        elif item.reasons:
            text += " (" + ", ".join(r.replace("_", " ") for r in item.reasons) + ")"
        rows.append(
            _Row(
                item.milestone_ref,
                " ".join(item.title.split()),
                item.due,
                text,
                colour,
                item.rating,
                " ".join(item.note.split()) if item.note else None,
                item.on_behalf_of,
                _asked(item),
            )
        )
    return rows


def _recipient(person: Person) -> str:
    if not person.email:
        raise ValueError(f"{person.key} has no email address")
    return formataddr((header_value(person.name), header_value(person.email)), charset="utf-8")


@dataclass(frozen=True, slots=True)
class OutboundEmail:
    """A message ready to send: its Message-ID, subject and exact bytes (CRLF)."""

    message_id: str
    subject: str
    recipient: str
    raw: bytes

    def payload(self) -> dict[str, Any]:
        """Frozen for the outbox, so a retry sends these very bytes."""
        return {"raw": self.raw.decode("ascii")}


@lru_cache(maxsize=64)
def _from_field(mail_from: str) -> str:
    name, address = parseaddr(header_value(mail_from))
    return formataddr((name, address), charset="utf-8")


# Line breaks of every kind (CR, LF, the Unicode ones, and what `str.splitlines` splits at)
# and other control characters: none may reach a header value as itself.
_HEADER_BREAKS = re.compile(r"[\s\x00-\x1f\x7f\x85\u2028\u2029]+")


def header_value(text: str) -> str:
    """`text` made safe as one header value: every run of line breaks, control characters
    and white space becomes one space. A name or title with CR/LF in it (an Alt+Enter in a
    spreadsheet cell) so stays in its own header and never starts another (`Bcc:`). Every
    header we write goes through this."""
    if text.isprintable():  # no break or control character: the usual case, left alone
        return text
    return _HEADER_BREAKS.sub(" ", text).strip()


def _fold(name: str, value: str) -> str:
    """`Name: value`, RFC 2047-encoded when not ASCII, folded at spaces near 78 columns."""
    value = header_value(value)
    if len(name) + 2 + len(value) <= 78 and value.isascii():
        return f"{name}: {value}"  # what the loop below gives a line that needs no fold
    if not value.isascii():
        return f"{name}: " + Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    line, out = f"{name}:", []
    for word in value.split(" "):
        if len(line) + 1 + len(word) > 78 and line.strip() and line != f"{name}:":
            out.append(line)
            line = " " + word
        else:
            line += " " + word
    out.append(line)
    return "\r\n".join(out)


def _qp(text: str) -> bytes:
    """UTF-8 quoted-printable with CRLF line ends (binascii does the encoding, in C)."""
    encoded = binascii.b2a_qp(text.replace("\r\n", "\n").encode("utf-8"), istext=True)
    return encoded.replace(b"\n", b"\r\n")


def _message(
    *,
    subject: str,
    mail_from: str,
    to: Person,
    now: datetime,
    msg_id: str,
    text: str,
    html: str,
    headers: Mapping[str, str],
) -> OutboundEmail:
    """multipart/alternative, text then HTML, quoted-printable UTF-8.

    Written directly rather than through `email.message`: our messages have one fixed shape,
    and the standard library's generator re-folds every header and compiles a regex per
    boundary, which made it the slowest step of a 5,000-person cycle. The bytes are checked
    by parsing them back with `email.policy.default` in the tests.
    """
    subject = header_value(subject)
    boundary = f"=_pp_{secrets.token_hex(16)}"
    fields = [
        ("From", _from_field(mail_from)),
        ("To", _recipient(to)),
        ("Subject", subject),
        ("Date", format_datetime(now)),
        ("Message-ID", msg_id),
        # Ask Exchange not to send out-of-office or auto-replies back (but keep bounces).
        ("X-Auto-Response-Suppress", "OOF, AutoReply"),
        *headers.items(),
        ("MIME-Version", "1.0"),
        ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
    ]
    head = "\r\n".join(_fold(name, value) for name, value in fields).encode("ascii")
    parts = [head, b"\r\n\r\n"]
    for subtype, body in (("plain", text), ("html", html)):
        parts += [
            f"--{boundary}\r\n".encode("ascii"),
            f'Content-Type: text/{subtype}; charset="utf-8"\r\n'.encode("ascii"),
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
            _qp(body),
            b"\r\n",
        ]
    parts.append(f"--{boundary}--\r\n".encode("ascii"))
    return OutboundEmail(msg_id, subject, str(to.email), b"".join(parts))


def prompt_subject(plan: Plan, token: str, *, reminder: bool) -> str:
    first = "Reminder: progress update" if reminder else "Progress update"
    return f"{first} for {plan.title} [PP-{token}]"


def prompt_examples(items: Sequence[PromptItem], *, today: date) -> tuple[str, ...]:
    """The reply lines a prompt shows as examples, made from its own milestones as they
    stand `today`: each is accepted when sent back as it is (`reply_examples`)."""
    asked = [
        AskedMilestone(
            i.milestone_ref,
            i.rating,
            i.status is MilestoneStatus.OVERDUE,
            i.rating,
            i.note,
        )
        for i in items
    ]
    return reply_examples(asked, today=today)


def prompt_email(
    *,
    plan: Plan,
    person: Person,
    items: Sequence[PromptItem],
    token: str,
    mail_from: str,
    now: datetime,
    reminder: bool = False,
    in_reply_to: str | None = None,
    labels: Mapping[int, str] = DEFAULT_LABELS,
    shared: Sequence[tuple[Person, Sequence[PromptItem]]] = (),
    update_url: str | None = None,
    contacts: Sequence[Contact] = (),
) -> OutboundEmail:
    """A prompt (or its one reminder) listing the milestones, with the reply form, with
    `update_url` a button (and the plain link) to answer on the update page instead, and,
    when there are `contacts`, whom to ask about the plan.

    `shared` makes it the combined prompt of a mailbox several people share: each person's
    milestones under their name, all of them answerable by a reply from that address; it
    goes to `person` (the first of them) at the mailbox, greeting them all.
    """
    subject = prompt_subject(plan, token, reminder=reminder)
    kind = "reminder" if reminder else "prompt"
    headers = {"Auto-Submitted": "auto-generated"}
    if in_reply_to:
        headers |= {"In-Reply-To": in_reply_to, "References": in_reply_to}
    if shared:
        items = [item for _, listed in shared for item in listed]
        names = [p.name for p, _ in shared]
        person = replace(person, name=", ".join(names[:-1]) + " and " + names[-1])
        groups = [
            {"key": p.key, "heading": f"For {p.name} ({p.key}):", "items": _rows(listed)}
            for p, listed in shared
        ]
    else:
        groups = [{"key": person.key, "heading": "", "items": _rows(items)}]
    n = len(items)
    whose = "these" if shared else "your"
    context = {
        "reminder": reminder,
        "person": person,
        "plan": plan,
        "groups": groups,
        "labels": labels,
        "token": token,
        "subject": subject,
        "update_url": update_url,
        "examples": prompt_examples(items, today=local_date(now, plan.timezone)),
        "intro": f"How are {whose} {n} milestone{'s' if n != 1 else ''} in {plan.title} going? "
        "Please rate each one and add a short note.",
        "contact": contact_line(contacts) if contacts else "",
    }
    return _message(
        subject=subject,
        mail_from=mail_from,
        to=person,
        now=now,
        msg_id=message_id(token, kind, mail_from),
        text=_PROMPT_TEXT.render(context),
        html=_PROMPT_HTML.render(context),
        headers=headers,
    )


def confirmation_email(
    *,
    plan: Plan,
    person: Person,
    accepted: Sequence[ReplyLine],
    rejected: Sequence[RejectedLine],
    token: str,
    mail_from: str,
    now: datetime,
    in_reply_to: str | None,
    labels: Mapping[int, str] = DEFAULT_LABELS,
) -> OutboundEmail:
    """What was recorded from a reply, and each line that was not, with the reason."""
    first = "Recorded" if accepted else "Not recorded"
    subject = f"{first}: progress update for {plan.title} [PP-{token}]"
    headers = {"Auto-Submitted": "auto-replied"}
    if in_reply_to:
        headers |= {"In-Reply-To": in_reply_to, "References": in_reply_to}
    context = {
        "person": person,
        "plan": plan,
        "accepted": accepted,
        "rejected": rejected,
        "labels": labels,
        "subject": subject,
    }
    return _message(
        subject=subject,
        mail_from=mail_from,
        to=person,
        now=now,
        msg_id=f"<pp.{token.lower()}.confirm.{secrets.token_hex(6)}@{mail_domain(mail_from)}>",
        text=_CONFIRMATION_TEXT.render(context),
        html=_CONFIRMATION_HTML.render(context),
        headers=headers,
    )


def digest_email(
    *,
    plan: Plan,
    network_name: str,
    period: str,
    recipient: str,
    html: str,
    text: str,
    mail_from: str,
    now: datetime,
    digest_id: int,
    view_url: str | None = None,
) -> OutboundEmail:
    """A network's digest for its coordinators: the HTML digest with its text alternative,
    and with `view_url` the coordinator's own link to the network's live view."""
    subject = f"{network_name}: {plan.title} digest, {period}"
    if view_url is not None:
        text = (
            f"{text.rstrip()}\n\nThe live view of this network, for you only (do not forward;"
            f" it works for 30 days):\n{view_url}\n"
        )
        link = (
            '<p style="font-family:Arial,Helvetica,sans-serif;font-size:16px;margin:24px 0">'
            f'<a href="{escape(view_url)}" style="color:#1d4f91">Open the live view of this '
            "network</a> (for you only: please do not forward; it works for 30 days)</p>"
        )
        at = html.rfind("</body>")
        html = html[:at] + link + html[at:] if at >= 0 else html + link
    return _message(
        subject=subject,
        mail_from=mail_from,
        to=Person(key=recipient, name="", email=recipient),
        now=now,
        msg_id=f"<pp.digest.{digest_id}.{secrets.token_hex(4)}@{mail_domain(mail_from)}>",
        text=text,
        html=html,
        headers={"Auto-Submitted": "auto-generated"},
    )
