"""Replacing a forgotten person's name and addresses in stored text (`pulse people forget`).

`Identity` holds what identifies them: their name, their keys (the initials or short name
plans use), their email addresses and their Slack id. `Identity.redact` replaces each in a
text with "former lead N": names and addresses whatever their case, keys and the Slack id
as whole words in their own case (a key `AW` is replaced in "AW to chase" but not in
"AWARE"). `redact_json` does the same inside a stored JSON value, and `redact_mime` inside
a stored email, whose text parts are usually base64 or quoted-printable (a plain search of
the bytes would miss them). `mentions` tells whether raw inbound mail mentions them at all.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

__all__ = ["Identity", "former_lead"]


def former_lead(person_id: int) -> str:
    """What a forgotten person is called from then on: stable, so erasures can be re-applied."""
    return f"former lead {person_id}"


def _words(values: Iterable[str | None], minimum: int) -> tuple[str, ...]:
    seen = {" ".join(v.split()) for v in values if v and len(v.strip()) >= minimum}
    return tuple(sorted(seen, key=lambda v: (-len(v), v)))


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is being forgotten, and what they are called from then on."""

    replacement: str
    names: tuple[str, ...]  # matched whatever the case
    keys: tuple[str, ...]  # matched as whole words, in their case (initials)
    emails: tuple[str, ...]  # matched whatever the case

    @classmethod
    def of(
        cls,
        *,
        replacement: str,
        name: str,
        keys: Iterable[str],
        emails: Iterable[str | None],
        slack_user_id: str | None = None,
    ) -> Identity:
        names = _words([name], 3)
        return cls(
            replacement=replacement,
            names=names,
            keys=tuple(k for k in _words([*keys, slack_user_id], 2) if k not in names),
            emails=_words([e.lower() if e else None for e in emails], 3),
        )

    @property
    def needles(self) -> tuple[str, ...]:
        """Everything to search for, as plain text (for a database's LIKE)."""
        return (*self.emails, *self.names, *self.keys)

    def _pattern(self) -> re.Pattern[str]:
        parts = [f"(?i:{re.escape(e)})" for e in self.emails]
        parts += [rf"(?i:(?<!\w){_spaced(n)}(?!\w))" for n in self.names]
        parts += [rf"(?<!\w){re.escape(k)}(?!\w)" for k in self.keys]
        return re.compile("|".join(parts)) if parts else re.compile(r"(?!x)x")

    def redact(self, text: str) -> str:
        """`text` with every mention replaced."""
        return _compiled(self).sub(self.replacement, text)

    def redact_json(self, value: Any) -> Any:
        """A JSON value with every string in it (keys of mappings too) redacted; a stored
        email (a string under "raw") is redacted part by part."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list):
            return [self.redact_json(v) for v in value]
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for k, v in value.items():
                if k == "raw" and isinstance(v, str) and _looks_like_mime(v):
                    out[k] = self.redact_mime(v)
                else:
                    out[self.redact(k)] = self.redact_json(v)
            return out
        return value

    def redact_mime(self, raw: str) -> str:
        """A stored outgoing email (ASCII, CRLF) with its headers and text parts redacted."""
        message = message_from_bytes(raw.encode("utf-8", "surrogateescape"), policy=policy.SMTP)
        assert isinstance(message, EmailMessage)
        changed = False
        for part in message.walk():
            for header, value in list(part.items()):
                text = str(value)
                redacted = self.redact(text)
                if redacted != text:
                    part.replace_header(header, redacted)
                    changed = True
            if part.get_content_maintype() == "text" and not part.is_multipart():
                body = part.get_content()
                redacted = self.redact(body)
                if redacted != body:
                    part.set_content(
                        redacted,
                        subtype=part.get_content_subtype(),
                        charset="utf-8",
                        cte="quoted-printable",
                    )
                    changed = True
        if not changed:
            return raw
        return message.as_bytes(policy=policy.SMTP).decode("ascii", "surrogateescape")

    def mentions(self, raw: bytes) -> bool:
        """True when raw mail mentions them: in its bytes, or in any part once decoded."""
        if self._pattern_bytes_hit(raw):
            return True
        lowered = raw.lower()
        if b"base64" not in lowered and b"quoted-printable" not in lowered and b"=?" not in raw:
            return False
        message = message_from_bytes(raw, policy=policy.default)
        for part in message.walk():
            for value in part.values():
                if self.redact(str(value)) != str(value):
                    return True
            if part.is_multipart():
                continue
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes) and self._pattern_bytes_hit(payload):
                return True
        return False

    def _pattern_bytes_hit(self, data: bytes) -> bool:
        text = data.decode("utf-8", "replace")
        return self.redact(text) != text


def _spaced(name: str) -> str:
    """A name matched with any run of spaces between its words."""
    return r"\s+".join(re.escape(word) for word in name.split())


_CACHE: dict[Identity, re.Pattern[str]] = {}


def _compiled(identity: Identity) -> re.Pattern[str]:
    found = _CACHE.get(identity)
    if found is None:
        found = _CACHE[identity] = identity._pattern()
    return found


def _looks_like_mime(value: str) -> bool:
    head = value[:4096].lower()
    return "\n" in head and ("mime-version:" in head or "content-type:" in head)
