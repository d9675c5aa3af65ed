"""Reading an inbound email: who sent it, which prompt it answers, whether a person wrote it
at all, and the text they typed. Pure functions of the message bytes; deciding and
recording happen in `bot.inbound`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, message_from_string
from email.errors import HeaderDefect
from email.message import EmailMessage, Message
from email.parser import HeaderParser
from email.policy import SMTP, default
from email.utils import format_datetime, formataddr, getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

from mailparser_reply.parser import EmailMessage as ReplyMessage

from bot.domain.replies import strip_quoted
from handlers.email_messages import OutboundEmail, find_tokens, mail_domain

MAX_BODY_CHARS = 50_000

_AUTO_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[ -]?(?:reply|response|antwort)|out of (?:the )?office|"
    r"automatische antwort|automatisch antwoord|risposta automatica|respuesta autom[áa]tica|"
    r"fuera de la oficina|afwezig(?:heid)?|abwesenheit(?:snotiz)?|absence|absent|"
    r"r[ée]ponse automatique|undeliverable|undelivered|"
    r"delivery status notification|mail delivery failed|returned mail)\b",
    re.IGNORECASE,
)


def dedupe_key(raw: bytes) -> str:
    """The Message-ID when there is one, else a SHA-256 of the bytes."""
    match = re.search(rb"^message-id:\s*(<[^>\r\n]+>)", raw[:65536], re.IGNORECASE | re.MULTILINE)
    if match:
        return "mid:" + match.group(1).decode("ascii", errors="replace").strip().lower()
    return "sha256:" + hashlib.sha256(raw).hexdigest()


class _Text(HTMLParser):
    """HTML to plain text: block elements become line breaks, quotes and scripts dropped."""

    _BLOCKS = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "table", "pre"})
    _SKIP = frozenset({"script", "style", "head", "title", "blockquote"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = " ".join(v or "" for k, v in attrs if k in ("class", "id"))
        if tag in self._SKIP or "gmail_quote" in classes or "divRplyFwdMsg" in classes:
            self._skipping += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


@dataclass(frozen=True, slots=True)
class InboundMail:
    """What the deciding code needs from a message."""

    message_id: str | None
    senders: tuple[str, ...]  # addresses in From, lower-cased
    subject: str
    tokens: tuple[str, ...]
    date: datetime | None
    auto: str | None  # why it is automatic mail (never answered), or None
    body: str
    defects: tuple[str, ...]
    sender_problem: str | None = None  # why From names no single trustworthy sender
    # Authentication-Results as (authserv-id, dmarc result), lower-cased.
    dmarc: tuple[tuple[str, str], ...] = ()
    # A delivery report's per-recipient fields (lower-case names), and whom we had sent to.
    dsn: tuple[dict[str, str], ...] = ()
    dsn_sent_to: str | None = None
    envelope_to: tuple[str, ...] = ()  # To and delivery headers: where a VERP address shows


def _header(message: Message, name: str) -> str:
    try:
        value = message.get(name)
    except Exception:  # a malformed header reads as absent, never crashes
        return ""
    return str(value or "").replace("\x00", "")


def automatic(message: Message) -> str | None:
    """Why this is not a person writing (auto-reply, bounce, list mail), or None."""
    auto = _header(message, "Auto-Submitted").strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response"):
        if _header(message, name):
            return f"{name} header"
    precedence = _header(message, "Precedence").strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    if _header(message, "List-Id") or _header(message, "List-Unsubscribe"):
        return "mailing-list mail"
    if message.get_content_type() == "multipart/report":
        return "delivery report (bounce)"
    sender = _header(message, "From").lower()
    if "mailer-daemon" in sender or "postmaster@" in sender:
        return "delivery report (bounce)"
    if _AUTO_SUBJECT.match(_header(message, "Subject")):
        return "automatic reply (subject)"
    return None


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return str(part.get_payload() or "")
    charset = part.get_content_charset() or "utf-8"
    for candidate in (charset, "utf-8", "cp1252"):
        try:
            return payload.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return payload.decode("utf-8", errors="replace")


def body_text(message: Message) -> str:
    """The reply's own text: the plain part first, else the HTML converted to text."""
    plain: str | None = None
    html: str | None = None
    for part in message.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        kind = part.get_content_type()
        if kind == "text/plain" and plain is None:
            plain = _decoded(part)
        elif kind == "text/html" and html is None:
            html = _decoded(part)
    if plain is not None and plain.strip():
        text = plain
    elif html is not None:
        text = html_to_text(html)
    else:
        text = ""
    return text.replace("\r\n", "\n").replace("\x00", "")[:MAX_BODY_CHARS]


# Other languages' quote headers ("Am … schrieb", "Le … a écrit") besides English.
REPLY_LANGUAGES = ("en", "de", "fr", "nl", "es", "it", "pl")


def reply_text(body: str) -> str:
    """The newest part of a reply: quoted mail and signatures cut off.

    `mail-parser-reply` (maintained, multi-language quote headers and Outlook blocks) takes
    the latest reply; hyphen lists are kept, since "- 1.1 3 done" is a normal answer line.
    Our own `strip_quoted` then runs as a safety net for what it leaves (wrapped Gmail
    headers, "Sent from my iPhone" variants, "> " lines).
    """
    try:
        # Built directly: the parser class does not pass `keep_hyphen_lists` through.
        parsed = ReplyMessage(
            text=body, languages=list(REPLY_LANGUAGES), keep_hyphen_lists=True
        ).read()
        newest = parsed.replies[0].body if parsed.replies else ""
    except Exception:  # a library failure must not lose the reply: fall back to ours
        newest = body
    return strip_quoted(newest if newest.strip() else body)


def _senders(message: Message) -> tuple[list[str], str | None, list[str]]:
    """The From addresses, why they cannot be trusted (or None), and any defects."""
    try:
        values = message.get_all("From") or []
        texts = [str(v).replace("\x00", "") for v in values]
        header_defects = [
            type(d).__name__
            for v in values
            for d in getattr(v, "defects", ())
            if isinstance(d, HeaderDefect)
        ]
    except Exception:  # an unparseable From header is no sender
        return [], "no sender", ["FromHeaderUnparseable"]
    senders = [a.strip().lower() for _, a in getaddresses(texts) if "@" in a]
    if not senders:
        return [], "no sender", header_defects
    if len(values) > 1 or len(senders) > 1:
        return senders, "several senders", header_defects
    if header_defects:
        return (
            senders,
            f"malformed From header ({', '.join(sorted(set(header_defects)))})",
            (header_defects),
        )
    return senders, None, []


_AUTHSERV = re.compile(r"^\s*([^\s;]+)")
_DMARC = re.compile(r"\bdmarc\s*=\s*([a-z]+)", re.IGNORECASE)


def _dmarc(message: Message) -> tuple[tuple[str, str], ...]:
    found = []
    try:
        values = message.get_all("Authentication-Results") or []
    except Exception:
        return ()
    for value in values:
        text = str(value).replace("\x00", "")
        authserv, result = _AUTHSERV.match(text), _DMARC.search(text)
        if authserv and result:
            found.append((authserv.group(1).lower(), result.group(1).lower()))
    return tuple(found)


def _delivery_report(message: Message) -> tuple[tuple[dict[str, str], ...], str | None]:
    """A DSN's per-recipient fields, and the recipient of the original message it returns."""
    if message.get_content_type() != "multipart/report":
        return (), None
    recipients: list[dict[str, str]] = []
    sent_to: str | None = None
    for part in message.iter_parts() if isinstance(message, EmailMessage) else ():
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            payload = part.get_payload()
            blocks = (
                payload
                if isinstance(payload, list)
                else [message_from_string(b) for b in re.split(r"\n\s*\n", str(payload))]
            )
            for block in blocks:
                if not isinstance(block, Message):
                    continue
                fields = {k.lower(): str(v) for k, v in block.items()}
                if "final-recipient" in fields or "original-recipient" in fields:
                    recipients.append(fields)
        elif kind in ("message/rfc822", "text/rfc822-headers") and sent_to is None:
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                original: Message = payload[0]
            else:
                original = HeaderParser().parsestr(str(part.get_payload(decode=False)))
            to = [a for _, a in getaddresses([str(v) for v in original.get_all("To") or []])]
            sent_to = to[0].lower() if len(to) == 1 and "@" in to[0] else None
    return tuple(recipients), sent_to


def _without_header_nulls(raw: bytes) -> bytes:
    """Null bytes removed from the header section: some mailers leave them in a Subject, and
    they would otherwise make From look malformed."""
    end = min((i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0), default=-1)
    if end < 0:
        return raw.replace(b"\x00", b"")
    return raw[:end].replace(b"\x00", b"") + raw[end:]


def read_mail(raw: bytes) -> InboundMail:
    """Parse a message tolerantly; problems become `defects`, never exceptions."""
    message = message_from_bytes(_without_header_nulls(raw), policy=default)
    defects = [type(d).__name__ for d in message.defects]
    senders, sender_problem, from_defects = _senders(message)
    defects += from_defects
    date = None
    try:
        date = parsedate_to_datetime(_header(message, "Date")) if _header(message, "Date") else None
        if date is not None and date.tzinfo is None:
            date = None
    except (TypeError, ValueError, IndexError):
        date = None
    subject = " ".join(_header(message, "Subject").split())
    tokens = find_tokens(
        _header(message, "In-Reply-To"),
        _header(message, "References"),
        subject,
        _header(message, "Delivered-To"),
        _header(message, "Envelope-To"),
        _header(message, "X-Envelope-To"),
    )
    try:
        body = body_text(message)
    except Exception as exc:  # a broken MIME tree is kept as unprocessable
        body, defects = "", [*defects, f"body unreadable: {type(exc).__name__}"]
    mid = _header(message, "Message-ID").strip() or None
    try:
        dsn, sent_to = _delivery_report(message)
    except Exception:  # a broken report is still a bounce; it just names nobody
        dsn, sent_to = (), None
    envelope = [
        a.lower()
        for name in ("To", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To")
        for _, a in getaddresses([_header(message, name)])
        if "@" in a
    ]
    return InboundMail(
        message_id=mid,
        senders=tuple(senders),
        subject=subject,
        tokens=tuple(tokens),
        date=date,
        auto=automatic(message),
        body=body,
        defects=tuple(defects),
        sender_problem=sender_problem,
        dmarc=_dmarc(message),
        dsn=dsn,
        dsn_sent_to=sent_to,
        envelope_to=tuple(envelope),
    )


def rejection_email(
    *,
    to_name: str,
    to_address: str,
    subject: str,
    text: str,
    mail_from: str,
    now: datetime,
    in_reply_to: str | None,
) -> OutboundEmail:
    """A short plain-text notice that a message was not recorded, marked as auto-replied so
    the other side's auto-responders leave it alone."""
    message = EmailMessage(policy=SMTP)
    message["From"] = mail_from
    message["To"] = formataddr((to_name, to_address))
    message["Subject"] = subject
    message["Date"] = format_datetime(now)
    msg_id = f"<pp.reject.{secrets.token_hex(8)}@{mail_domain(mail_from)}>"
    message["Message-ID"] = msg_id
    message["Auto-Submitted"] = "auto-replied"
    message["X-Auto-Response-Suppress"] = "OOF, AutoReply"
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    message.set_content(text)
    return OutboundEmail(msg_id, subject, to_address, message.as_bytes())
