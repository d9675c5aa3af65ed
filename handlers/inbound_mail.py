"""Reading an inbound email: who sent it, which prompt it answers, whether a person wrote it
at all, and the text they typed. Pure functions of the message bytes; deciding and
recording happen in `bot.inbound`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes
from email.message import Message
from email.policy import default
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

from handlers.email_messages import find_tokens

MAX_BODY_CHARS = 50_000

_AUTO_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[ -]?(?:reply|response|antwort)|out of (?:the )?office|"
    r"abwesenheit|absence|r[ée]ponse automatique|undeliverable|undelivered|"
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


def read_mail(raw: bytes) -> InboundMail:
    """Parse a message tolerantly; problems become `defects`, never exceptions."""
    message = message_from_bytes(raw, policy=default)
    defects = [type(d).__name__ for d in message.defects]
    senders: list[str] = []
    try:
        from_values = message.get_all("From") or []
    except Exception:  # an unparseable From header is no sender
        from_values, defects = [], [*defects, "FromHeaderUnparseable"]
    for _, address in getaddresses([str(v) for v in from_values]):
        if "@" in address:
            senders.append(address.strip().lower())
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
    return InboundMail(
        message_id=mid,
        senders=tuple(senders),
        subject=subject,
        tokens=tuple(tokens),
        date=date,
        auto=automatic(message),
        body=body,
        defects=tuple(defects),
    )
