"""Replacing a forgotten person's name, keys and addresses in stored text and email."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

from bot.domain.erasure import Identity

ALEX = Identity.of(
    replacement="former lead 7",
    name="Alex Walker",
    keys=["AW"],
    emails=["Alex.Walker@council.example"],
    slack_user_id="U0ALEX",
)


def test_names_and_addresses_are_replaced_whatever_their_case() -> None:
    """The name and the address are replaced in any case, and across line breaks."""
    text = "Ask ALEX walker or alex.walker@COUNCIL.example; Alex\nWalker agreed"
    assert ALEX.redact(text) == ("Ask former lead 7 or former lead 7; former lead 7 agreed")


def test_keys_are_replaced_only_as_whole_words_in_their_case() -> None:
    """Initials are replaced where they stand alone, never inside another word or in
    lower case; a Slack mention is replaced too."""
    assert ALEX.redact("AW/MC to chase; AWARE of aw; <@U0ALEX>") == (
        "former lead 7/MC to chase; AWARE of aw; <@former lead 7>"
    )


def test_json_values_are_redacted_throughout() -> None:
    """Strings anywhere in a JSON value, keys included, are redacted."""
    assert ALEX.redact_json({"leads": ["AW", "MC"], "Alex Walker": 1, "n": 2}) == {
        "leads": ["former lead 7", "MC"],
        "former lead 7": 1,
        "n": 2,
    }


def test_an_encoded_email_is_redacted_part_by_part() -> None:
    """A stored email whose text is quoted-printable or base64 loses the name in its
    decoded text and headers, and stays a readable email."""
    message = EmailMessage()
    message["To"] = "Alex Walker <alex.walker@council.example>"
    message["Subject"] = "Digest"
    message.set_content(
        "Overdue: 2.3 led by Alex Walker — “exit interviews”",
        charset="utf-8",
        cte="quoted-printable",
    )
    message.add_alternative("<p>Alex Walker</p>", subtype="html", cte="base64")
    raw = message.as_bytes(policy=policy.SMTP).decode("ascii")
    assert ALEX.mentions(raw.encode())
    redacted = ALEX.redact_mime(raw)
    again = message_from_bytes(redacted.encode(), policy=policy.default)
    assert isinstance(again, EmailMessage)
    texts = [p.get_content() for p in again.walk() if p.get_content_maintype() == "text"]
    assert all("Alex Walker" not in t and "former lead 7" in t for t in texts)
    assert "alex.walker" not in str(again["To"]).lower()
    assert not ALEX.mentions(redacted.encode())


def test_mail_that_does_not_mention_them_is_left_alone() -> None:
    """Text about someone else is unchanged and not taken for a mention."""
    raw = b"From: morgan@council.example\r\nSubject: hi\r\n\r\nMorgan here\r\n"
    assert not ALEX.mentions(raw)
    assert ALEX.redact("Morgan Clarke, MC") == "Morgan Clarke, MC"
