"""Reading an inbound email: who sent it, which prompt it answers, whether a person wrote it
at all, and the text they typed. Pure functions of the message bytes; deciding and
recording happen in `bot.services.inbound`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import traceback
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, message_from_string
from email.errors import HeaderDefect
from email.headerregistry import (
    Address,
    AddressHeader,
    BaseHeader,
    HeaderRegistry,
    MessageIDHeader,
    UnstructuredHeader,
)
from email.message import EmailMessage, Message
from email.parser import HeaderParser
from email.policy import SMTP, Policy, default
from email.utils import (
    format_datetime,
    formataddr,
    getaddresses,
    parseaddr,
    parsedate_to_datetime,
)
from functools import lru_cache
from html.parser import HTMLParser
from itertools import chain
from pathlib import Path
from typing import Any, ClassVar

from mailparser_reply.parser import EmailMessage as ReplyMessage
from mailparser_reply.parser import EmailReply as ReplyFragment

from bot.domain.replies import strip_quoted
from bot.messages.emails import OutboundEmail, find_tokens, header_value, mail_domain

MAX_BODY_CHARS = 50_000

_AUTO_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[ -]?(?:reply|response|antwort)|out of (?:the )?office|"
    r"automatische antwort|automatisch antwoord|risposta automatica|respuesta autom[áa]tica|"
    r"fuera de la oficina|afwezig(?:heid)?|abwesenheit(?:snotiz)?|absence|absent|"
    r"r[ée]ponse automatique|undeliverable|undelivered|"
    r"delivery status notification|mail delivery failed|returned mail)\b",
    re.IGNORECASE,
)


class _MemoHeaders(HeaderRegistry):
    """The standard header registry, remembering what it parsed.

    `policy=default` parses a header each time it is read, and reading a message reads
    Content-Type, From, Subject and Date several times over; the values themselves repeat
    from message to message (Content-Type, a lead's From). Parsed headers are immutable, so
    handing back the same object for the same (name, value) gives exactly what a fresh
    parse would. Long values are parsed afresh, so the memo stays small.
    """

    MAX_VALUE = 1000

    def __init__(self) -> None:
        super().__init__()
        self._memo = lru_cache(maxsize=4096)(super().__call__)

    def __call__(self, name: str, value: str) -> BaseHeader:
        if len(value) > self.MAX_VALUE:
            return super().__call__(name, value)
        parsed: BaseHeader = self._memo(name, value)
        return parsed


# `default` with the memoising registry: what `message_from_bytes(..., policy=default)` reads.
READING_POLICY = default.clone(header_factory=_MemoHeaders())


# How much of a message is read to find its header section when the message itself is not
# read whole (too large), and what `pulse status --inbox` reads of each stored message.
HEAD_BYTES = 64 * 1024
# A Message-ID longer than this (or with anything but printable ASCII) is kept in its
# dedupe key as a SHA-256: the key must fit its column, VARCHAR(300), and hold no NUL.
MAX_KEY_ID = 250

# A line of the header section as the standard parser (email.feedparser) sees one: a field,
# a continuation, or an mbox "From " line. The first line that is none of these (the empty
# line before the body, usually) ends the section.
_HEADER_LINE = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[\t ]")
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_ID_VALUE = re.compile(rb"\s*(<[^>\r\n]+>)")


def header_section(raw: bytes, *, limit: int = HEAD_BYTES) -> bytes:
    """The message's header section, as far as the first `limit` bytes hold it: its lines up
    to the first one the parser would not read as a header (the blank line before the body).
    """
    head = raw[:limit]
    end = 0
    for line in _LINE.finditer(head):
        if not _HEADER_LINE.match(line.group()):
            break
        end = line.end()
    return head[:end]


def _message_id(section: bytes) -> bytes | None:
    """The first Message-ID field of a header section, unfolded; None when there is none."""
    value: bytes | None = None
    for line in _LINE.finditer(section):
        text = line.group().rstrip(b"\r\n")
        if value is not None:
            if text[:1] not in (b" ", b"\t"):
                break
            value += text
            continue
        name, colon, rest = text.partition(b":")
        if colon and name.lower() == b"message-id":
            value = rest
    return value


def _id_key(section: bytes) -> str | None:
    """The dedupe key of a header section's Message-ID (`<...>`), or None without one."""
    value = _message_id(section)
    match = _ID_VALUE.match(value) if value is not None else None
    if match is None:
        return None
    found = match.group(1).lower()
    if len(found) <= MAX_KEY_ID and all(0x20 <= byte < 0x7F for byte in found):
        return "mid:" + found.decode("ascii")
    return "mid-sha256:" + hashlib.sha256(found).hexdigest()


def dedupe_key(raw: bytes) -> str:
    """The message's Message-ID header when it has one, else a SHA-256 of all its bytes.

    Only the header section is looked at: a `Message-ID:` line pasted into the text of a
    reply is text, and two replies carrying the same one are two replies. A Message-ID too
    long for the key's column, or holding bytes other than printable ASCII, is kept as its
    SHA-256, so one absurd header never stops a message being stored."""
    return _id_key(header_section(raw)) or "sha256:" + hashlib.sha256(raw).hexdigest()


def answer_key(message_id: str | None, dedupe: str) -> str:
    """What an email's updates are recorded under (each as `key#ref`, at most 255
    characters): its Message-ID, or a SHA-256 of one too long to leave room for the
    reference, or its dedupe key when it has none."""
    if not message_id:
        return dedupe
    if len(message_id) <= 200:
        return message_id
    return "mid-sha256:" + hashlib.sha256(message_id.lower().encode("utf-8", "replace")).hexdigest()


def head_dedupe_key(head: bytes, *, size: int) -> str:
    """The dedupe key of a message read only as far as its header section (`head`) because
    it is too large to read whole: its Message-ID, else a SHA-256 of that section and the
    message's size."""
    section = header_section(head)
    return (
        _id_key(section)
        or "head-sha256:" + hashlib.sha256(section + b"\n" + str(size).encode("ascii")).hexdigest()
    )


def head_sender(head: bytes) -> str:
    """The From address of a header section, for an admin to read ("" when there is none);
    NUL and line breaks removed, and no longer than an address can be."""
    section = header_section(head).decode("latin-1")
    parsed = HeaderParser().parsestr(section, headersonly=True)
    text = " ".join(str(parsed.get("From", "")).replace("\x00", "").split())
    return (parseaddr(text)[1] or text)[:320]


def without_text(exc: BaseException) -> str:
    """An error for the log: its type and where it was raised, frame by frame, but not its
    message, nor its causes' messages, which may quote the mail being read."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = traceback.extract_tb(current.__traceback__)
        where = " < ".join(f"{f.name} ({Path(f.filename).name}:{f.lineno})" for f in frames[::-1])
        parts.append(f"{type(current).__name__} at {where or 'unknown'}")
        current = current.__cause__ or current.__context__
    return "; caused by ".join(parts)


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


# RFC 5322 atoms and addresses in their plainest form: no quoting, comments, folding
# whitespace or encoded words, which is how nearly every mailer writes them.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDR_SPEC = rf"{_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*"
_PLAIN_PHRASE = rf"{_ATOM}(?: {_ATOM})*"
# Printable ASCII but `"` and `\`, words single-spaced: a quoted name without escapes.
_PLAIN_QUOTED = r'"([!#-\[\]-~]+(?: [!#-\[\]-~]+)*)"'
_PLAIN_ADDRESS = re.compile(rf"(?:(?:{_PLAIN_PHRASE}|{_PLAIN_QUOTED}) <{_ADDR_SPEC}>|{_ADDR_SPEC})")
_PLAIN_MESSAGE_ID = re.compile(rf"<{_ADDR_SPEC}>")
_SPECIALS = frozenset('()<>@,:;.\\"[]')  # RFC 5322 specials: a name with one stays quoted


def _plain_value(kind: type[BaseHeader], value: str) -> str | None:
    """What `str()` of the policy's parsed header is for a value in the plain forms, without
    parsing it; None for anything else (encoded words, non-ASCII, quoting, comments, groups).

    An unstructured value without an encoded word reads as itself; a lone address (`a@b`,
    `Name <a@b>`) and a lone Message-ID (`<x@y>`) are written back by the parser exactly as
    they came; a quoted name keeps its quotes only when it needs them. The tests compare
    this with the parser on tricky and random headers.
    """
    if not value.isascii() or "=?" in value:
        return None
    if issubclass(kind, UnstructuredHeader):
        return value
    if issubclass(kind, AddressHeader):
        match = _PLAIN_ADDRESS.fullmatch(value)
        if match is None:
            return None
        quoted = match.group(1)
        if quoted is not None and _SPECIALS.isdisjoint(quoted):
            return quoted + value[match.end(1) + 1 :]
        return value
    if issubclass(kind, MessageIDHeader):
        return value if _PLAIN_MESSAGE_ID.fullmatch(value) else None
    return None


def _addresses(text: str) -> list[str]:
    """The addresses `getaddresses([text])` finds, taken straight from a plain address."""
    if text.isascii() and "=?" not in text and _PLAIN_ADDRESS.fullmatch(text):
        return [text[text.rfind("<") + 1 : -1] if text.endswith(">") else text]
    return [address for _, address in getaddresses([text])]


class _Headers:
    """A message's header values as `str()` of what its policy parses (`message.get`), the
    plain forms read without parsing (`_plain_value`). Parsing every header with the modern
    policy was most of the time taken to read a reply. Without `shortcuts` every value is
    parsed, as the shortcuts must read."""

    def __init__(self, message: Message, *, shortcuts: bool = True) -> None:
        self.message = message
        self.shortcuts = shortcuts
        self._policy = message.policy
        registry = getattr(self._policy, "header_factory", None)
        self._registry: dict[str, type[BaseHeader]] = getattr(registry, "registry", {})
        self._default: type[BaseHeader] | None = getattr(registry, "default_class", None)
        self._raw: dict[str, list[tuple[str, str]]] = {}
        for name, value in message.raw_items():
            self._raw.setdefault(name.lower(), []).append((name, value))

    def _parse(self, name: str, value: str) -> tuple[str, list[str]]:
        """The header's text and the names of its header defects."""
        kind = self._registry.get(name.lower(), self._default)
        if self.shortcuts and kind is not None and type(value) is str:  # not set in code
            plain = _plain_value(kind, value.replace("\r", "").replace("\n", ""))
            if plain is not None:
                return plain, []
        parsed = self._policy.header_fetch_parse(name, value)
        defects = getattr(parsed, "defects", ())
        return str(parsed), [type(d).__name__ for d in defects if isinstance(d, HeaderDefect)]

    def get(self, name: str) -> str:
        """The first such header's text, nulls removed; "" when absent or unparseable."""
        values = self._raw.get(name.lower())
        if not values:
            return ""
        try:
            text = self._parse(*values[0])[0]
        except Exception:  # a malformed header reads as absent, never crashes
            return ""
        return text.replace("\x00", "")

    def addresses(self, text: str) -> list[str]:
        """The addresses in a header's text."""
        if self.shortcuts:
            return _addresses(text)
        return [address for _, address in getaddresses([text])]

    def get_all(self, name: str) -> list[tuple[str, list[str]]]:
        """Every such header's text and header defects; raises as the parser does."""
        return [self._parse(n, v) for n, v in self._raw.get(name.lower(), ())]


def automatic(message: Message, headers: _Headers | None = None) -> str | None:
    """Why this is not a person writing (auto-reply, bounce, list mail), or None."""
    header = (headers or _Headers(message)).get
    auto = header("Auto-Submitted").strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response"):
        if header(name):
            return f"{name} header"
    precedence = header("Precedence").strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    if header("List-Id") or header("List-Unsubscribe"):
        return "mailing-list mail"
    if message.get_content_type() == "multipart/report":
        return "delivery report (bounce)"
    sender = header("From").lower()
    if "mailer-daemon" in sender or "postmaster@" in sender:
        return "delivery report (bounce)"
    if _AUTO_SUBJECT.match(header("Subject")):
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


class _NewestReply(ReplyMessage):  # type: ignore[misc]  # untyped library
    """mail-parser-reply's message, reading only as far as the newest reply.

    `read()` splits the whole body into every reply and scans each for signatures and
    disclaimers; we keep only the first, so this stops there. The steps up to that point are
    the library's own, in its order, so the first reply is the one `read()` gives. Its
    patterns depend only on the languages, so they are compiled once and shared.
    """

    _patterns: ClassVar[tuple[Any, Any, Any] | None] = None

    def newest(self) -> str:
        cls = type(self)
        if cls._patterns is None:
            cls._patterns = (self.HEADER_REGEX, self.DISCLAIMERS_REGEX, self.SIGNATURE_REGEX)
        self._header_regex, self._disclaimers_regex, self._signature_regex = cls._patterns
        groups = self._header_regex.groups
        # What `findall` gives, flattened as `read()` flattens it, one match at a time.
        headers = (
            header
            for match in self._header_regex.finditer(self.text)
            for header in (
                match.groups() if groups > 1 else match.group(1) if groups else match.group()
            )
            if header
        )
        current_position = 0
        previous_header = ""
        for header in chain(headers, (None,)):
            if header is None:  # the rest of the text, as read() ends
                content = self.text[current_position:]
                position = current_position
            else:
                position = self.text.find(
                    header, current_position + 1 if current_position > 0 else current_position
                )
                content = self.text[current_position:position]
            disclaimers, signatures = self._process_signatures_disclaimers(content)
            reply = ReplyFragment(
                headers=previous_header,
                content=content,
                signatures=signatures,
                disclaimers=disclaimers,
            )
            if header is None or reply.content:
                return str(reply.body)
            current_position = position if position >= 0 else 0
            previous_header = header
        return ""  # not reached: the loop ends at its sentinel


def reply_text(body: str) -> str:
    """The newest part of a reply: quoted mail and signatures cut off.

    `mail-parser-reply` (maintained, multi-language quote headers and Outlook blocks) takes
    the latest reply; hyphen lists are kept, since "- 1.1 3 done" is a normal answer line.
    Our own `strip_quoted` then runs as a safety net for what it leaves (wrapped Gmail
    headers, "Sent from my iPhone" variants, "> " lines).
    """
    try:
        # Built directly: the parser class does not pass `keep_hyphen_lists` through.
        newest = _NewestReply(
            text=body, languages=list(REPLY_LANGUAGES), keep_hyphen_lists=True
        ).newest()
    except Exception:  # a library failure must not lose the reply: fall back to ours
        newest = body
    return strip_quoted(newest if newest.strip() else body)


def _senders(headers: _Headers) -> tuple[list[str], str | None, list[str]]:
    """The From addresses, why they cannot be trusted (or None), and any defects."""
    try:
        values = headers.get_all("From")
    except Exception:  # an unparseable From header is no sender
        return [], "no sender", ["FromHeaderUnparseable"]
    texts = [text.replace("\x00", "") for text, _ in values]
    header_defects = [name for _, defects in values for name in defects]
    found = headers.addresses(texts[0]) if len(texts) == 1 else [a for _, a in getaddresses(texts)]
    senders = [a.strip().lower() for a in found if "@" in a]
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


def _dmarc(headers: _Headers) -> tuple[tuple[str, str], ...]:
    found = []
    try:
        values = headers.get_all("Authentication-Results")
    except Exception:
        return ()
    for value, _ in values:
        text = value.replace("\x00", "")
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
                # Fields come from the body, where a NUL may be: none reaches storage.
                fields = {
                    k.lower().replace("\x00", ""): str(v).replace("\x00", "")
                    for k, v in block.items()
                }
                if "final-recipient" in fields or "original-recipient" in fields:
                    recipients.append(fields)
        elif kind in ("message/rfc822", "text/rfc822-headers") and sent_to is None:
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                original: Message = payload[0]
            else:
                original = HeaderParser().parsestr(str(part.get_payload(decode=False)))
            to = [a for _, a in getaddresses([str(v) for v in original.get_all("To") or []])]
            sent_to = to[0].lower().replace("\x00", "") if len(to) == 1 and "@" in to[0] else None
    return tuple(recipients), sent_to


def _without_header_nulls(raw: bytes) -> bytes:
    """Null bytes removed from the header section: some mailers leave them in a Subject, and
    they would otherwise make From look malformed."""
    end = min((i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0), default=-1)
    if end < 0:
        return raw.replace(b"\x00", b"")
    return raw[:end].replace(b"\x00", b"") + raw[end:]


def read_mail(
    raw: bytes, *, policy: Policy = READING_POLICY, shortcuts: bool = True
) -> InboundMail:
    """Parse a message tolerantly; problems become `defects`, never exceptions. The
    `policy` (headers parsed once and remembered) and the `shortcuts` (plain values read
    without parsing) only make reading faster: tests read without them to compare."""
    message = message_from_bytes(_without_header_nulls(raw), policy=policy)
    headers = _Headers(message, shortcuts=shortcuts)
    header = headers.get
    defects = [type(d).__name__ for d in message.defects]
    senders, sender_problem, from_defects = _senders(headers)
    defects += from_defects
    date = None
    try:
        date_text = header("Date")
        date = parsedate_to_datetime(date_text) if date_text else None
        if date is not None and date.tzinfo is None:
            date = None
    except (TypeError, ValueError, IndexError):
        date = None
    subject = " ".join(header("Subject").split())
    tokens = find_tokens(
        header("In-Reply-To"),
        header("References"),
        subject,
        header("Delivered-To"),
        header("Envelope-To"),
        header("X-Envelope-To"),
    )
    try:
        body = body_text(message)
    except Exception as exc:  # a broken MIME tree is kept as unprocessable
        body, defects = "", [*defects, f"body unreadable: {type(exc).__name__}"]
    mid = header("Message-ID").strip() or None
    try:
        dsn, sent_to = _delivery_report(message)
    except Exception:  # a broken report is still a bounce; it just names nobody
        dsn, sent_to = (), None
    envelope = [
        a.lower()
        for name in ("To", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To")
        if (value := header(name))
        for a in headers.addresses(value)
        if "@" in a
    ]
    return InboundMail(
        message_id=mid,
        senders=tuple(senders),
        subject=subject,
        tokens=tuple(tokens),
        date=date,
        auto=automatic(message, headers),
        body=body,
        defects=tuple(defects),
        sender_problem=sender_problem,
        dmarc=_dmarc(headers),
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
    subject = header_value(subject)
    message["From"] = header_value(mail_from)
    name, address = header_value(to_name), header_value(to_address)
    try:  # quoted as a phrase, so a colon or comma in a name is not taken as syntax
        message["To"] = Address(display_name=name, addr_spec=address)
    except ValueError:  # an address the header parser will not take apart
        message["To"] = formataddr((name, address))
    message["Subject"] = subject
    message["Date"] = format_datetime(now)
    msg_id = f"<pp.reject.{secrets.token_hex(8)}@{mail_domain(mail_from)}>"
    message["Message-ID"] = msg_id
    message["Auto-Submitted"] = "auto-replied"
    message["X-Auto-Response-Suppress"] = "OOF, AutoReply"
    if in_reply_to:
        message["In-Reply-To"] = header_value(in_reply_to)
        message["References"] = header_value(in_reply_to)
    message.set_content(text)
    return OutboundEmail(msg_id, subject, to_address, message.as_bytes())
