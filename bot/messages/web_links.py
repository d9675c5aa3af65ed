"""The tokens of update-page links, and what is stored and signed for them. Pure: no I/O.

A token is 256 random bits (43 URL-safe characters). Only a keyed hash of it is stored
(`link_hash`, keyed by PULSE_SECRET_KEY), so neither a copy of the database nor its logs
can open a page. A form's CSRF token is the key's signature of that hash: bound to the
link, and unforgeable without the key.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from bot.signing import Signer

LINK_LIFETIME = timedelta(days=14)
_LINK_PURPOSE = "web-link"
_CSRF_PURPOSE = "web-csrf"
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
UPDATE_PATH = "/u/"


def new_link_token() -> str:
    """A fresh link token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def well_formed(token: str) -> bool:
    """Whether `token` has the shape of one we issue (cheap check before any lookup)."""
    return _TOKEN_SHAPE.fullmatch(token) is not None


def link_hash(token: str, signer: Signer) -> str:
    """What is stored for a link token and looked up by (64 hex characters)."""
    return signer.digest(_LINK_PURPOSE, token).hex()


def csrf_token(token_hash: str, signer: Signer) -> str:
    """The CSRF token of the forms of the page a link opens."""
    return signer.sign(_CSRF_PURPOSE, token_hash)


def csrf_valid(token_hash: str, given: str, signer: Signer) -> bool:
    return signer.verify(_CSRF_PURPOSE, token_hash, given)


def update_url(base_url: str, token: str) -> str:
    """The link to the update page of `token` under `base_url` (PULSE_BASE_URL)."""
    return base_url.rstrip("/") + UPDATE_PATH + token
