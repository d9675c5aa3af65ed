"""Outbound email as real RFC 5322 messages: prompts, reminders and confirmations, each
multipart text + HTML from Jinja templates (HTML autoescaped, table layout and inline
styles so Outlook shows it), with the headers of RELIABILITY.md and a stable Message-ID.

The reply token is 128 random bits, shown in the subject as `[PP-…]` and carried in the
Message-ID, so a reply is matched by its References or its subject — never by
sub-addressing, which Exchange does not support. Only its SHA-256 is stored.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from bot.domain.cycles import PromptItem
from bot.domain.model import Person, Plan
from bot.domain.ratings import DEFAULT_LABELS
from bot.domain.replies import RejectedLine, ReplyLine
from bot.domain.status import MilestoneStatus

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
        loader=PackageLoader("handlers", "templates"),
        autoescape=select_autoescape(["html.j2"]) if autoescape else False,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=False,
    )


_TEXT = _environment(False)
_HTML = _environment(True)


def new_token() -> str:
    """A fresh reply token: 128 random bits in base32 (26 letters and digits)."""
    return base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.upper().encode("ascii")).hexdigest()


def find_tokens(*texts: str | None) -> list[str]:
    """Every reply token in the given header values, in order, without repeats."""
    found: list[str] = []
    for text in texts:
        for match in TOKEN_PATTERN.finditer(text or ""):
            token = match.group(1).upper()
            if token not in found:
                found.append(token)
    return found


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
            )
        )
    return rows


def _address(person: Person) -> Address:
    if not person.email:
        raise ValueError(f"{person.key} has no email address")
    username, _, domain = person.email.rpartition("@")
    return Address(display_name=person.name, username=username, domain=domain)


def _base(*, subject: str, mail_from: str, to: Person, now: datetime, msg_id: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = mail_from
    message["To"] = _address(to)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = msg_id
    # Ask Exchange not to send out-of-office or auto-replies back (but keep bounces).
    message["X-Auto-Response-Suppress"] = "OOF, AutoReply"
    return message


def prompt_subject(plan: Plan, token: str, *, reminder: bool) -> str:
    first = "Reminder: progress update" if reminder else "Progress update"
    return f"{first} for {plan.title} [PP-{token}]"


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
) -> EmailMessage:
    """A prompt (or its one reminder) listing the milestones, with the reply form."""
    subject = prompt_subject(plan, token, reminder=reminder)
    kind = "reminder" if reminder else "prompt"
    message = _base(
        subject=subject,
        mail_from=mail_from,
        to=person,
        now=now,
        msg_id=message_id(token, kind, mail_from),
    )
    message["Auto-Submitted"] = "auto-generated"
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    n = len(items)
    context = {
        "reminder": reminder,
        "person": person,
        "plan": plan,
        "items": _rows(items),
        "labels": labels,
        "token": token,
        "subject": subject,
        "example_ref": items[0].milestone_ref if items else "1.1",
        "intro": f"How are your {n} milestone{'s' if n != 1 else ''} in {plan.title} going? "
        "Please rate each one and add a short note.",
    }
    message.set_content(_TEXT.get_template("prompt.txt.j2").render(context))
    message.add_alternative(_HTML.get_template("prompt.html.j2").render(context), subtype="html")
    return message


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
) -> EmailMessage:
    """What was recorded from a reply, and each line that was not, with the reason."""
    subject = f"Recorded: progress update for {plan.title} [PP-{token}]"
    message = _base(
        subject=subject,
        mail_from=mail_from,
        to=person,
        now=now,
        msg_id=f"<pp.{token.lower()}.confirm.{secrets.token_hex(6)}@{mail_domain(mail_from)}>",
    )
    message["Auto-Submitted"] = "auto-replied"
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    context = {
        "person": person,
        "plan": plan,
        "accepted": accepted,
        "rejected": rejected,
        "labels": labels,
        "subject": subject,
    }
    message.set_content(_TEXT.get_template("confirmation.txt.j2").render(context))
    message.add_alternative(
        _HTML.get_template("confirmation.html.j2").render(context), subtype="html"
    )
    return message


def as_payload(message: EmailMessage) -> dict[str, Any]:
    """A message frozen for the outbox: the exact bytes to send, as ASCII text."""
    from email.policy import SMTP

    return {"raw": message.as_bytes(policy=SMTP).decode("ascii", errors="surrogateescape")}
