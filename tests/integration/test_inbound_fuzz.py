"""Thousands of malformed messages through the real inbound path on SQLite (`Inbound.take_in`
then `process`): nothing escapes as an exception, every message is kept with a final state,
and none is ever recorded as an answer, since no fuzzed message carries a live token."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.app import PlanPulse
from bot.messages.inbound_mail import dedupe_key
from bot.services.inbound import Inbound
from bot.services.prompting import Cycles
from bot.settings import Settings
from storage.models import InboundRow, UpdateRow
from tests.conftest import FIXTURES, import_small_plan

PLANS = FIXTURES / "plans"
MONDAY = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
FINAL_STATES = {"processed", "rejected", "ignored", "unprocessable", "quarantined"}
# No fuzzed message may be recorded as an answer, so "processed" must never happen either.
ALLOWED_STATES = FINAL_STATES - {"processed"}
FAMILIES_PER_EXAMPLE = 6
# About 3.5 families of 3 messages an example: ~2,500 messages in 25-35 s on 2 cores.
EXAMPLES = 300

# --- fragments -----------------------------------------------------------------------------

BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
PEOPLE = [
    "dana.cole@council.example",
    "Alex.Walker@council.example",
    "priya.bains@council.example",
    "mallory@evil.example",
    "plan-pulse@localhost",
]
EOL = st.sampled_from([b"\r\n", b"\n", b"\r"])

# A token that looks real and does not exist (128 random bits: no collision in practice).
fake_token = st.text(alphabet=BASE32 + BASE32.lower(), min_size=26, max_size=26)
token_forms = st.one_of(
    fake_token.map(lambda t: f"[PP-{t}]"),
    fake_token.map(lambda t: f"PP.{t}"),
    fake_token.map(lambda t: f"<pp.{t.lower()}.prompt@localhost>"),
    fake_token.map(lambda t: f"<pp.{t.lower()}.prompt@council.example>"),
    st.text(alphabet=BASE32, min_size=0, max_size=40).map(lambda t: f"[PP-{t}]"),  # bad length
)
garbage_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=120)
junk_bytes = st.binary(max_size=200)
absurd_charset = st.one_of(
    st.sampled_from(
        [
            "utf-8",
            "x-unknown",
            "utf-7",
            "utf-32",
            "big5",
            "iso-2022-jp",
            "windows-1255",
            "../../etc/passwd",
            "",
            "\x00",
            "ünïcode",
            "a" * 300,
            "utf-8'en'",
            "cp65001",
            "idna",
            "rot13",
            "base64",
        ]
    ),
    st.text(min_size=1, max_size=30),
)


def encoded_word(charset: str, text: str, how: str) -> str:
    data = text.encode("utf-8", "surrogatepass")
    if how == "B":
        payload = base64.b64encode(data).decode()
    elif how == "B-broken":
        payload = base64.b64encode(data).decode()[:-1] + "!*"
    else:
        payload = "".join(f"={b:02X}" if b > 126 or b < 33 else chr(b) for b in data) + "=Z"
    return f"=?{charset}?{how[0]}?{payload}?="


header_value = st.one_of(
    garbage_text,
    junk_bytes.map(lambda b: b.decode("latin-1")),
    token_forms,
    st.builds(encoded_word, absurd_charset, garbage_text, st.sampled_from(["B", "Q", "B-broken"])),
    st.lists(token_forms | garbage_text, max_size=6).map(", ".join),
    st.lists(token_forms, max_size=4).map(" ".join),
    st.integers(1_000, 120_000).map(lambda n: "x" * n),  # huge header line
    st.sampled_from(["", " ", "\x00", "<>", "<", "@", "a\x00b <x@y>", "\t\t"]),
)
address = st.one_of(
    st.sampled_from(PEOPLE),
    st.sampled_from(PEOPLE).map(lambda a: f'"Someone, Jr." <{a}>'),
    st.sampled_from(PEOPLE).map(lambda a: f"{a}\x00"),
    st.lists(st.sampled_from(PEOPLE), min_size=2, max_size=3).map(", ".join),
    st.sampled_from(["", "<>", "no address", "@", "a@", "@b", "<<a@b>>", "undisclosed:;"]),
    header_value,
)
header_name = st.sampled_from(
    [
        "From",
        "From",  # duplicate From is likely
        "To",
        "Subject",
        "Message-ID",
        "In-Reply-To",
        "References",
        "Date",
        "Content-Type",
        "Content-Transfer-Encoding",
        "MIME-Version",
        "Auto-Submitted",
        "Precedence",
        "Delivered-To",
        "X-Envelope-To",
        "Authentication-Results",
        "Received",
    ]
) | st.text(alphabet="abcXYZ-:\x00 é", min_size=0, max_size=12)


@st.composite
def header_line(draw: st.DrawFn) -> bytes:
    name = draw(header_name)
    if name.lower() == "from":
        value = draw(address)
    elif name.lower() in ("subject", "references", "in-reply-to"):
        value = draw(st.one_of(token_forms, header_value, token_forms.map(lambda t: f"RE: {t}")))
    elif name.lower() == "date":
        value = draw(
            st.sampled_from(
                ["Mon, 23 Nov 2026 10:15:00 +0000", "yesterday", "Mon, 99 Foo 99999", ""]
            )
            | header_value
        )
    elif name.lower() == "content-type":
        value = draw(content_type())
    elif name.lower() == "content-transfer-encoding":
        value = draw(st.sampled_from(["base64", "quoted-printable", "x-uuencode", "8bit", "7"]))
    else:
        value = draw(header_value)
    encoding = draw(st.sampled_from(["utf-8", "latin-1"]))
    line = f"{name}: {value}".encode(encoding, "replace")
    if draw(st.booleans()):  # fold it, sometimes badly
        line = line.replace(b" ", draw(st.sampled_from([b"\r\n ", b"\n\t", b"\r\n"])), 1)
    return line


@st.composite
def content_type(draw: st.DrawFn) -> str:
    kind = draw(
        st.sampled_from(
            [
                "text/plain",
                "text/html",
                "multipart/mixed",
                "multipart/alternative",
                "multipart/report",
                "message/rfc822",
                "application/octet-stream",
                "text",
                "",
                "multipart/",
            ]
        )
    )
    params = []
    if draw(st.booleans()):
        params.append(f'charset="{draw(absurd_charset)}"')
    if kind.startswith("multipart") or draw(st.booleans()):
        params.append(f'boundary="{draw(st.sampled_from(["b1", "", "b1 b2", "==", "b" * 200]))}"')
    return "; ".join([kind, *params])


def qp_broken(text: str) -> bytes:
    return text.encode("utf-8", "replace").replace(b"a", b"=ZZ").replace(b"e", b"=\r\n=4") + b"="


@st.composite
def body(draw: st.DrawFn) -> bytes:
    reply_lines = st.sampled_from(
        [
            "1.1 2 on track",
            "1.2-1 3 Analysis under way",
            "1.2-2 in progress - need support",
            "2.3 done",
            "9.9 1",
            "> quoted",
            "-- ",
        ]
    )
    text = "\n".join(draw(st.lists(reply_lines | garbage_text, max_size=6)))
    piece = draw(
        st.sampled_from(
            ["plain", "base64", "base64-broken", "qp-broken", "bytes", "nulls", "multipart"]
        )
    )
    if piece == "plain":
        return text.encode("utf-8", "replace")
    if piece == "base64":
        return base64.b64encode(text.encode("utf-8", "replace"))
    if piece == "base64-broken":
        encoded = base64.b64encode(text.encode("utf-8", "replace")).decode()
        return (encoded[: draw(st.integers(0, len(encoded)))] + "!@#$%^&*===x").encode()
    if piece == "qp-broken":
        return qp_broken(text)
    if piece == "bytes":
        return draw(st.binary(max_size=400))
    if piece == "nulls":
        return text.encode("utf-8", "replace").replace(b" ", b"\x00") + b"\x00" * 5
    return draw(multipart_body())


@st.composite
def multipart_body(draw: st.DrawFn) -> bytes:
    """MIME parts with boundaries that are missing, mismatched, nested or never closed."""
    declared = draw(st.sampled_from(["b1", "b2", "", "b" * 200]))
    used = draw(st.sampled_from([declared, "b1", "other", ""]))
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        headers = b"\r\n".join(draw(st.lists(header_line(), max_size=3)))
        nested = draw(st.booleans())
        inner = (
            f'Content-Type: multipart/alternative; boundary="{used}"\r\n\r\n--{used}\r\n'.encode()
            if nested
            else b""
        )
        parts.append(
            f"--{used}\r\n".encode()
            + headers
            + b"\r\n\r\n"
            + inner
            + draw(st.binary(max_size=120) | garbage_text.map(str.encode))
        )
    closing = draw(st.sampled_from([f"--{used}--", f"--{used}", "", f"--{declared}-"]))
    return b"\r\n".join([*parts, closing.encode()])


@st.composite
def malformed_message(draw: st.DrawFn) -> bytes:
    shape = draw(st.sampled_from(["composed"] * 6 + ["random", "truncated", "headers only"]))
    if shape == "random":
        return draw(st.binary(max_size=2000))
    eol = draw(EOL)
    headers = draw(st.lists(header_line(), min_size=0, max_size=12))
    raw = eol.join(headers) + eol + eol + draw(body())
    if shape == "truncated":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif shape == "headers only":
        raw = eol.join(headers)
    return raw


# --- the test ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def inbound(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Inbound]:
    """The small plan with this Monday's prompts planned, so real people and live tokens
    exist; the fuzzed mail never carries one of those tokens."""
    data: Path = tmp_path_factory.mktemp("fuzz") / "var"
    pulse = PlanPulse(
        Settings(
            _env_file=None,
            DATABASE_URL=f"sqlite+aiosqlite:///{data / 'pulse.db'}",
            PULSE_DATA_DIR=data,
        ),
        clock=lambda: MONDAY,
    )
    await pulse.migrate()
    await import_small_plan(pulse.sessions, now=MONDAY)
    await Cycles(pulse.sessions, mail_from="plan-pulse@localhost", clock=lambda: MONDAY).tick()
    yield Inbound(pulse.sessions, mail_from="plan-pulse@localhost", clock=lambda: MONDAY)
    await pulse.close()


@st.composite
def message_family(draw: st.DrawFn) -> list[bytes]:
    """A malformed message and two cheap variants of it, each with a Message-ID of its own
    so that it is a new message: cut short at a random point, and with bytes overwritten
    (nulls, high bytes, line ends) at random points."""
    raw = draw(malformed_message())
    cut = raw[: draw(st.integers(0, len(raw)))]
    flipped = bytearray(raw)
    for _ in range(draw(st.integers(1, 6)) if raw else 0):
        at = draw(st.integers(0, len(raw) - 1))
        flipped[at] = draw(st.sampled_from([0, 0xFF, 0x0A, 0x0D, 0x3A, 0x3D, 0x80]))
    variants = []
    for variant in (cut, bytes(flipped)):
        own_id = hashlib.sha256(variant).hexdigest()[:24]
        variants.append(f"Message-ID: <{own_id}@fuzz.example>\r\n".encode() + variant)
    return [raw, *variants]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # keep no example files in the repository
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(families=st.lists(message_family(), min_size=1, max_size=FAMILIES_PER_EXAMPLE))
async def test_malformed_mail_is_kept_decided_and_never_recorded(
    inbound: Inbound, families: list[list[bytes]]
) -> None:
    """Every malformed message is stored, reaches a final state that is not "processed",
    and records no answer; no exception leaves take_in or process."""
    messages = [raw for family in families for raw in family]
    for raw in messages:
        await inbound.take_in(raw, source="maildir")
    outcomes = await inbound.process_pending(limit=len(messages))
    assert {o.state for o in outcomes} <= ALLOWED_STATES, outcomes
    keys = {dedupe_key(raw) for raw in messages}
    async with inbound.sessions() as session:
        states = dict(
            (
                await session.execute(
                    select(InboundRow.dedupe_key, InboundRow.state).where(
                        InboundRow.dedupe_key.in_(keys)
                    )
                )
            )
            .tuples()
            .all()
        )
        answers = await session.scalar(
            select(func.count()).select_from(UpdateRow).where(UpdateRow.source != "import")
        )
    assert set(states) == keys  # every message is kept
    assert set(states.values()) <= ALLOWED_STATES, states
    assert answers == 0
