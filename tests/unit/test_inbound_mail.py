"""Reading inbound mail: the shortcuts taken for speed give what the slow way gives."""

from __future__ import annotations

from email import message_from_bytes
from email.errors import HeaderDefect
from email.policy import default
from email.utils import getaddresses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mailparser_reply.parser import EmailMessage as ReplyMessage

from bot.messages import inbound_mail
from bot.messages.inbound_mail import (
    REPLY_LANGUAGES,
    _NewestReply,
    dedupe_key,
    head_dedupe_key,
    head_sender,
    header_section,
    read_mail,
    without_text,
)
from tests.conftest import FIXTURES

EMAILS = sorted((FIXTURES / "emails").glob("*.eml"))

PIECES = [
    "1.1 2 good",
    "On Mon, 23 Nov 2026 at 09:05, Plan Pulse wrote:",
    "> quoted",
    "",
    "-- ",
    "Sent from my iPhone",
    "From: someone",
    "Sent: Monday",
    "-----Original Message-----",
    "Kind regards",
    "- 1.2 3 a hyphen list",
    "Am Montag schrieb X:",
    "________________________________",
    "Best,",
]


def _library_newest(body: str) -> str:
    parsed = ReplyMessage(text=body, languages=list(REPLY_LANGUAGES), keep_hyphen_lists=True)
    replies = parsed.read().replies
    return str(replies[0].body) if replies else ""


def _newest(body: str) -> str:
    reply = _NewestReply(text=body, languages=list(REPLY_LANGUAGES), keep_hyphen_lists=True)
    return str(reply.newest())


@pytest.mark.parametrize("path", EMAILS, ids=[p.name for p in EMAILS])
def test_the_newest_reply_is_the_one_the_library_reads(path: Path) -> None:
    """Reading only as far as the newest reply gives mail-parser-reply's first reply."""
    body = read_mail(path.read_bytes()).body
    assert _newest(body) == _library_newest(body)


@given(st.lists(st.sampled_from(PIECES), max_size=14))
def test_the_newest_reply_is_the_one_the_library_reads_for_any_layout(lines: list[str]) -> None:
    body = "\n".join(lines)
    assert _newest(body) == _library_newest(body)


@pytest.mark.parametrize("path", EMAILS, ids=[p.name for p in EMAILS])
def test_remembered_headers_read_as_freshly_parsed_ones(path: Path) -> None:
    """Parsed headers are remembered between messages: a message read with them (twice, so
    the second reading is all remembered) reads as with the standard `policy=default`."""
    raw = path.read_bytes()
    read_mail(raw)
    remembered = read_mail(raw)
    assert read_mail(raw, policy=default) == remembered


# --- header values read without parsing --------------------------------------------------

HEADER_NAMES = ["From", "To", "Cc", "Reply-To", "Sender", "Message-ID", "Subject", "References"]
TRICKY_VALUES = [
    "",
    " ",
    "a@b",
    "a@b ",
    " a@b",
    "Dana Cole <dana@council.example>",
    "Dana  Cole <d@x>",
    "Dana\tCole <d@x>",
    "Dana Cole<d@x>",
    "Dana J. Cole <d@x>",  # a period in a phrase is a defect
    '"Dana Cole" <d@x>',  # quotes it does not need are dropped
    '"Cole, Dana" <d@x>',  # quotes it needs are kept
    '"Cole,  Dana" <d@x>',
    '" Cole" <d@x>',
    '"" <d@x>',
    '"a\\"b" <d@x>',
    '"a<b" <d@x>',
    "=?utf-8?q?Dana_C=C3=B4le?= <d@x>",
    "=?utf-8?b?RGFuYQ==?= <d@x>",
    "=?iso-8859-1?q?Fran=E7ois?= <f@x>",
    "=?bogus?q?x?= <a@b>",
    "Dana\r\n Cole <d@x>",  # folded
    "Dana Cole\r\n\t<d@x>",
    "a@b, c@d",
    "A <a@b>, B <c@d>",
    "undisclosed-recipients:;",
    "group: a@b, c@d;",
    "a@b (Dana)",
    "a..b@c",
    "a@[1.2.3.4]",
    '"a b"@c',
    "a@b@c",
    "<>",
    "<<a@b>>",
    "no address",
    "Mail Delivery System <MAILER-DAEMON@x.example>",
    "d\udcc3\udca9 <a@b>",  # undecodable bytes, as the bytes parser leaves them
    "<local.1f@reply.invalid>",
    "<a@b> <c@d>",
    "<a@[1.2.3.4]>",
    "< a@b>",
    "RE: Progress update [PP-ABC]",
    "=?utf-8?q?RE=3A_x?= [PP-A]",
    "x =?utf-8?q?a?= =?utf-8?q?b?= y",
    "x=?utf-8?q?a?=",
    "a\x01b",
    "Ann O'Brien <ann@x>",
    "a!#$%&'*+/=?^_`{|}~-z@b.c",
]


def _as_parsed(name: str, value: str) -> tuple[str, list[str]] | str:
    """What `policy=default` gives: the header's text and header defects, or the error."""
    try:
        parsed = default.header_fetch_parse(name, value)
    except Exception as exc:
        return type(exc).__name__
    return str(parsed), [type(d).__name__ for d in parsed.defects if isinstance(d, HeaderDefect)]


def _as_read(name: str, value: str) -> tuple[str, list[str]] | str:
    headers = inbound_mail._Headers(message_from_bytes(b"\r\n", policy=default))
    try:
        return headers._parse(name, value)
    except Exception as exc:
        return type(exc).__name__


@pytest.mark.parametrize("name", HEADER_NAMES)
@pytest.mark.parametrize("value", TRICKY_VALUES)
def test_headers_read_as_the_policy_parses_them(name: str, value: str) -> None:
    """Encoded words, folding, quoting, groups, comments and garbage read exactly as the
    standard policy's parsed header, defects included; only the plain forms skip it."""
    assert _as_read(name, value) == _as_parsed(name, value)
    text = value if isinstance(_as_parsed(name, value), str) else _as_parsed(name, value)[0]
    assert inbound_mail._addresses(text) == [a for _, a in getaddresses([text])]


@given(
    st.sampled_from(HEADER_NAMES),
    st.lists(
        st.sampled_from(
            [
                *("Dana", "Cole", "d.c", "@", "x.example", "<", ">", '"', " ", ", ", ".", "\\"),
                *("\t", "=?utf-8?q?x?=", "(c)", "\r\n ", "é", "\udcc3", ":", ";", "[", "]"),
            ]
        ),
        max_size=10,
    ).map("".join),
)
def test_any_header_reads_as_the_policy_parses_it(name: str, value: str) -> None:
    assert _as_read(name, value) == _as_parsed(name, value)
    assert inbound_mail._addresses(value) == [a for _, a in getaddresses([value])]


def test_plain_values_read_as_the_parser_writes_them() -> None:
    """What the shortcut gives, spelled out: decoded, unfolded, quotes only where needed."""
    assert _as_read("From", '"Dana Cole" <d@x>') == ("Dana Cole <d@x>", [])
    assert _as_read("From", '"Cole, Dana" <d@x>') == ('"Cole, Dana" <d@x>', [])
    assert _as_read("From", "=?utf-8?q?Dana_C=C3=B4le?= <d@x>") == ("Dana Côle <d@x>", [])
    assert _as_read("Subject", "RE:\r\n Progress") == ("RE: Progress", [])
    assert _as_read("From", "Dana J. Cole <d@x>")[1] == ["ObsoleteHeaderDefect"]


def test_our_specials_are_the_parsers() -> None:
    """A quoted name keeps its quotes exactly when the parser would quote it."""
    from email._header_value_parser import SPECIALS

    assert inbound_mail._SPECIALS == SPECIALS


TRICKY_MESSAGES = [
    b"From: =?utf-8?q?Dana_C=C3=B4le?= <Dana@Council.example>\r\n"
    b"Subject: =?utf-8?b?UkU6IFtQUC1BQkNd?=\r\nTo: pulse@x\r\n\r\nbody\r\n",
    b"From: Dana Cole\r\n <dana@x>\r\nSubject: RE: a\r\n\tfolded subject\r\n\r\nbody\r\n",
    b"From: a@b\r\nFrom: c@d\r\n\r\ntwo senders\r\n",
    b"From: a@b, c@d\r\n\r\ntwo in one\r\n",
    b"From: Dana J. Cole <d@x>\r\n\r\nmalformed\r\n",
    b"From: no address\r\n\r\nnone\r\n",
    b"Subject: no From at all\r\n\r\nbody\r\n",
    b"From: d\xc3\xa9 <d@x>\r\nSubject: caf\xe9\r\nMessage-ID: <a@b> <c@d>\r\n\r\n8-bit\r\n",
    b"From: Mail Delivery System <MAILER-DAEMON@x>\r\nAuto-Submitted: auto-replied\r\n"
    b"\r\nbounce\r\n",
    b"From: <>\r\nTo: undisclosed-recipients:;\r\nMessage-ID: < x@y >\r\n\r\n\r\n",
    b"\x00\xff garbage",
]


@pytest.mark.parametrize(
    "raw", [*TRICKY_MESSAGES, *(p.read_bytes() for p in EMAILS)], ids=lambda r: repr(r[:30])
)
def test_mail_reads_as_with_every_header_parsed(raw: bytes) -> None:
    """Reading a message with the plain-value shortcut gives what parsing every header
    with the policy gives."""
    shortcut = read_mail(raw)
    assert read_mail(raw, shortcuts=False) == shortcut


# --- dedupe keys: the header, else the whole message ----------------------------------------


def _reply(*headers: bytes, body: bytes = b"1.1 2 done\r\n") -> bytes:
    return b"".join(h + b"\r\n" for h in (b"From: dana@x.example", *headers)) + b"\r\n" + body


def test_a_message_id_pasted_into_the_text_is_not_the_messages_own() -> None:
    """Two different replies without a Message-ID header, each with the same pasted
    `Message-ID:` line in their text, get different keys: neither is taken for the other."""
    pasted = b"Message-ID: <pasted@mail.example>\r\n"
    first = _reply(b"Subject: one", body=b"1.1 2 done\r\n" + pasted)
    second = _reply(b"Subject: two", body=b"1.1 3 not yet\r\n" + pasted)
    assert dedupe_key(first) != dedupe_key(second)
    assert dedupe_key(first).startswith("sha256:")
    # A line the parser reads as the start of the body ends the headers, blank line or not.
    after_text = b"From: dana@x.example\r\nnot a header\r\nMessage-ID: <late@x>\r\n\r\nbody\r\n"
    assert dedupe_key(after_text).startswith("sha256:")


@pytest.mark.parametrize("eol", [b"\r\n", b"\n", b"\r"])
def test_the_message_id_header_is_the_key_however_the_lines_end(eol: bytes) -> None:
    """The Message-ID header keys the message with any line ending, folded or not, and the
    same message delivered twice (or with other bytes elsewhere) keeps the same key."""
    raw = _reply(b"Message-ID:", b"\t<Folded.ID@Mail.Example>").replace(b"\r\n", eol)
    assert dedupe_key(raw) == "mid:<folded.id@mail.example>"
    assert dedupe_key(raw + b"trailing") == dedupe_key(raw)


@pytest.mark.parametrize(
    "message_id",
    [b"<" + b"a" * 400 + b"@x.example>", b"<a\x00b@x.example>", b"<caf\xc3\xa9@x.example>"],
    ids=["400 characters", "a NUL", "not ASCII"],
)
def test_an_absurd_message_id_still_gives_a_storable_key(message_id: bytes) -> None:
    """A Message-ID too long for the key's column, or with a NUL or non-ASCII bytes, gives
    a short printable key of its own, the same each time it is delivered."""
    raw = _reply(b"Message-ID: " + message_id)
    key = dedupe_key(raw)
    assert len(key) <= 100
    assert key.isprintable()
    assert key.isascii()
    assert key == dedupe_key(raw + b"again")
    other = _reply(b"Message-ID: " + message_id.replace(b"@", b"1@"))
    assert dedupe_key(other) != key


def test_a_message_read_only_as_far_as_its_headers_is_keyed_like_the_whole() -> None:
    """A message too large to read whole is keyed by its Message-ID as if read whole, and
    without one by its header section and size; its sender is read from the headers."""
    raw = _reply(b"Message-ID: <big@x.example>", body=b"x" * 5000)
    head = header_section(raw)
    assert head_dedupe_key(head, size=len(raw)) == dedupe_key(raw)
    anonymous = header_section(_reply(b"Subject: big"))
    assert head_dedupe_key(anonymous, size=10) != head_dedupe_key(anonymous, size=11)
    assert head_sender(b"From: Dana \x00Cole <dana@x.example>\r\n") == "dana@x.example"


def test_an_error_is_logged_without_its_text() -> None:
    """An error for the log names its type and where it came from, never its message, nor
    the message of what caused it: both may quote the mail being read."""

    def parse(line: str) -> None:
        raise ValueError(f"cannot read {line!r}")

    try:
        try:
            parse("1.1 2 my confidential note")
        except ValueError as exc:
            raise RuntimeError(str(exc)) from exc
    except RuntimeError as exc:
        logged = without_text(exc)
    assert "confidential" not in logged
    assert logged.startswith("RuntimeError at ")
    assert "ValueError at parse" in logged
