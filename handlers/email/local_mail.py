"""Local mode's stand-in for a mail client: a reply to a prompt, threaded as Outlook or
Gmail would thread it, written into the inbox folder the bot watches."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from email.utils import format_datetime
from pathlib import Path


def write_local_reply(
    prompt: bytes,
    text: str,
    *,
    inbox: Path,
    sender: str | None = None,
    now: datetime | None = None,
) -> Path:
    """Write a reply to `prompt` into `inbox`; returns the file written."""
    original = message_from_bytes(prompt, policy=default)
    reply = EmailMessage()
    reply["From"] = sender or str(original["To"])
    reply["To"] = str(original["From"])
    reply["Subject"] = "RE: " + str(original["Subject"])
    reply["Date"] = format_datetime(now or datetime.now(UTC))
    reply["Message-ID"] = f"<local.{secrets.token_hex(8)}@reply.invalid>"
    reply["In-Reply-To"] = str(original["Message-ID"])
    reply["References"] = str(original["Message-ID"])
    quoted = ""
    body = original.get_body(preferencelist=("plain",))
    if body is not None:
        quoted = "\n".join("> " + line for line in body.get_content().splitlines())
    reply.set_content(f"{text}\n\nOn {original['Date']}, {original['From']} wrote:\n{quoted}\n")
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / f"reply-{secrets.token_hex(4)}.eml"
    tmp = path.with_name("." + path.name)
    tmp.write_bytes(reply.as_bytes())
    tmp.replace(path)
    return path
