"""Signing what Plan Pulse hands out (prompt tokens today, web links later) with
`PULSE_SECRET_KEY`: HMAC-SHA256, keyed per purpose, so a signature made for one kind of
thing is never valid for another. Pure: no I/O, no clock."""

from __future__ import annotations

import base64
import hashlib
import hmac


class Signer:
    """Signs and checks messages with one secret key."""

    __slots__ = ("_key",)

    def __init__(self, key: str | bytes) -> None:
        raw = key.encode("utf-8") if isinstance(key, str) else key
        if not raw:
            raise ValueError("a signing key must not be empty")
        self._key = raw

    def __repr__(self) -> str:  # never show the key
        return "Signer(<key>)"

    def digest(self, purpose: str, message: str | bytes) -> bytes:
        """The raw 32-byte HMAC of `message` for `purpose`."""
        data = message.encode("utf-8") if isinstance(message, str) else message
        return hmac.new(
            self._key, purpose.encode("utf-8") + b"\x00" + data, hashlib.sha256
        ).digest()

    def sign(self, purpose: str, message: str | bytes) -> str:
        """The signature of `message` for `purpose`: 43 URL-safe characters."""
        return base64.urlsafe_b64encode(self.digest(purpose, message)).decode("ascii").rstrip("=")

    def verify(self, purpose: str, message: str | bytes, signature: str) -> bool:
        """Whether `signature` is this key's signature of `message` for `purpose`
        (compared in constant time)."""
        if not signature.isascii():
            return False
        return hmac.compare_digest(self.sign(purpose, message), signature)
