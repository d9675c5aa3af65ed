"""The Teams app package (`pulse teams package`): the zip an admin uploads in the Teams admin
centre, holding `manifest.json` (schema 1.17) naming the bot, and its two icons, drawn here
(a 192 px colour icon and a 32 px white-on-transparent outline) so nothing is downloaded.

The manifest's id is the bot's Entra ID app id, its only scope is `personal` (prompts are
1:1 chats), and its commands are those of the chat (handlers/teams/answers.py). The
messaging endpoint is not in the manifest: it is set on the Azure Bot resource, and
`messaging_endpoint` gives it from PULSE_BASE_URL.
"""

from __future__ import annotations

import io
import itertools
import json
import struct
import zipfile
import zlib
from typing import Any
from urllib.parse import urlsplit

MANIFEST_VERSION = "1.17"
SCHEMA = "https://developer.microsoft.com/en-us/json-schemas/teams/v1.17/MicrosoftTeams.schema.json"
APP_NAME = "Plan Pulse"
COMMANDS = (
    ("status", "The milestones you lead, and how they stand"),
    ("away", "You are away until a date, e.g. away 31/01/27"),
    ("back", "You are back, and asked again"),
    ("delegate", "Who answers for you (or none), e.g. delegate Sam Murray until 31/01/27"),
    ("help", "What Plan Pulse answers here"),
)
_BLUE = (0x1F, 0x4E, 0x79, 0xFF)
_WHITE = (0xFF, 0xFF, 0xFF, 0xFF)
_CLEAR = (0, 0, 0, 0)


def messaging_endpoint(base_url: str) -> str:
    """Where the Bot Framework posts activities: PULSE_BASE_URL/api/messages."""
    return base_url.rstrip("/") + "/api/messages"


def manifest(*, app_id: str, base_url: str, version: str = "1.0.0") -> dict[str, Any]:
    """The app manifest for the bot `app_id`, its pages at `base_url`."""
    base = base_url.rstrip("/")
    host = urlsplit(base).hostname or ""
    return {
        "$schema": SCHEMA,
        "manifestVersion": MANIFEST_VERSION,
        "version": version,
        "id": app_id,
        "developer": {
            "name": APP_NAME,
            "websiteUrl": base + "/",
            "privacyUrl": base + "/",
            "termsOfUseUrl": base + "/",
        },
        "name": {"short": APP_NAME, "full": f"{APP_NAME}: improvement plan updates"},
        "description": {
            "short": "Asks plan leads for progress on their milestones",
            "full": (
                "Plan Pulse asks each lead of an improvement plan how their milestones are "
                "going, in a card in this chat, and records the answers for the plan's "
                "oversight group. Commands: status, away DATE, back, delegate NAME, help."
            ),
        },
        "icons": {"color": "color.png", "outline": "outline.png"},
        "accentColor": "#1F4E79",
        "bots": [
            {
                "botId": app_id,
                "scopes": ["personal"],
                "supportsFiles": False,
                "isNotificationOnly": False,
                "commandLists": [
                    {
                        "scopes": ["personal"],
                        "commands": [
                            {"title": title, "description": text} for title, text in COMMANDS
                        ],
                    }
                ],
            }
        ],
        "permissions": ["identity"],
        "validDomains": [host] if host else [],
    }


def _png(size: int, pixel: Any) -> bytes:
    """A PNG of `size`×`size` RGBA pixels, `pixel(x, y)` each."""
    rows = b"".join(
        b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(size)) for y in range(size)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def _on_pulse(x: float, y: float, size: int, width: float) -> bool:
    """A pulse line across the icon: flat, a peak, a trough, flat."""
    points = [(0.12, 0.55), (0.38, 0.55), (0.48, 0.22), (0.58, 0.78), (0.66, 0.55), (0.88, 0.55)]
    px, py = x / size, y / size
    for (x1, y1), (x2, y2) in itertools.pairwise(points):
        dx, dy = x2 - x1, y2 - y1
        t = max(0.0, min(1.0, ((px - x1) * dx + (py - y1) * dy) / (dx * dx + dy * dy)))
        if ((px - x1 - t * dx) ** 2 + (py - y1 - t * dy) ** 2) ** 0.5 * size <= width:
            return True
    return False


def color_icon() -> bytes:
    """192 px: a white pulse line on the accent colour."""
    return _png(192, lambda x, y: _WHITE if _on_pulse(x + 0.5, y + 0.5, 192, 9) else _BLUE)


def outline_icon() -> bytes:
    """32 px: the pulse line in white on transparent, as Teams requires of outlines."""
    return _png(32, lambda x, y: _WHITE if _on_pulse(x + 0.5, y + 0.5, 32, 1.6) else _CLEAR)


def app_package(*, app_id: str, base_url: str, version: str = "1.0.0") -> bytes:
    """The zip to upload: manifest.json, color.png and outline.png at its root."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        found = manifest(app_id=app_id, base_url=base_url, version=version)
        package.writestr("manifest.json", json.dumps(found, indent=2, ensure_ascii=False))
        package.writestr("color.png", color_icon())
        package.writestr("outline.png", outline_icon())
    return out.getvalue()
