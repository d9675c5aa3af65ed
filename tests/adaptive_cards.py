"""Adaptive Cards as Teams will take them, checked in tests: the card version Teams renders
(1.5 at most), the size of a post (under 28 KB of JSON), the message envelope a Workflows
webhook or the Bot Connector expects, and Microsoft's own parser from npm (`adaptivecards`,
in tests/node_modules, installed by `scripts/setup --dev`) run on every card by
tests/adaptive_cards_check.js.

A missing Node.js or `adaptivecards` package fails the test that needs them (`require_parser`),
never skips it: a skipped check would hide the missing install step.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
CHECKER = HERE / "adaptive_cards_check.js"
PACKAGE = HERE / "node_modules" / "adaptivecards" / "dist" / "adaptivecards.js"

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_VERSION = (1, 5)  # what Teams renders
MAX_MESSAGE_BYTES = 28_000  # Teams refuses a message of about 28 KB or more


def parser_missing() -> str | None:
    """Why the npm parser cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "Node.js is not installed (scripts/setup --dev installs it)"
    if not PACKAGE.is_file():
        return "adaptivecards is not installed (npm ci --prefix tests, run by scripts/setup --dev)"
    return None


def require_parser() -> None:
    """Fail the calling test, with the install step to take, when the parser cannot run."""
    reason = parser_missing()
    if reason is not None:
        pytest.fail(reason)


def message_bytes(message: Mapping[str, Any]) -> int:
    """The size of a message as posted: compact JSON in UTF-8."""
    return len(json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode())


def _version_problems(card: Mapping[str, Any]) -> list[str]:
    problems = []
    if card.get("type") != "AdaptiveCard":
        problems.append(f'the card\'s type is {card.get("type")!r}, not "AdaptiveCard"')
    version = card.get("version")
    try:
        major, minor = (int(part) for part in str(version).split("."))
    except ValueError:
        return [*problems, f"the card's version {version!r} is not MAJOR.MINOR"]
    if (major, minor) > MAX_VERSION:
        problems.append(f"the card's version {version} is above 1.5, which Teams renders")
    return problems


def validate_cards(cards: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """For each card (an attachment's `content`), what is wrong with it: its type and
    version, then whatever the `adaptivecards` parser reports (unknown elements, invalid
    values, missing required properties, duplicate ids). Empty lists: all valid."""
    require_parser()
    if not cards:
        return []
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, str(CHECKER)],
        input=json.dumps(list(cards)),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if done.returncode != 0:
        pytest.fail(f"adaptive_cards_check.js failed: {done.stderr.strip()[-2000:]}")
    parsed: list[list[str]] = json.loads(done.stdout)
    return [_version_problems(card) + found for card, found in zip(cards, parsed, strict=True)]


def validate_card(card: Mapping[str, Any]) -> list[str]:
    """What is wrong with one Adaptive Card (an attachment's `content`); empty: valid."""
    return validate_cards([card])[0]


def card_contents(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The Adaptive Cards attached to a message, in order."""
    attachments = message.get("attachments")
    if not isinstance(attachments, list):
        return []
    return [
        a["content"]
        for a in attachments
        if isinstance(a, dict)
        and a.get("contentType") == CARD_CONTENT_TYPE
        and isinstance(a.get("content"), dict)
    ]


def validate_message(message: Mapping[str, Any], *, size: int | None = None) -> list[str]:
    """What is wrong with a message carrying Adaptive Cards: `{"type": "message",
    "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content":
    CARD}]}`, under 28 KB (`size`: the bytes as received, else measured as compact JSON),
    and every card valid (`validate_card`). Empty: valid."""
    problems = []
    if message.get("type") != "message":
        problems.append(f'the message\'s type is {message.get("type")!r}, not "message"')
    attachments = message.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        problems.append("the message has no attachments")
        attachments = []
    for index, attachment in enumerate(attachments):
        if not isinstance(attachment, dict) or attachment.get("contentType") != CARD_CONTENT_TYPE:
            problems.append(f"attachment {index} is not an Adaptive Card")
        elif not isinstance(attachment.get("content"), dict):
            problems.append(f"attachment {index} has no card content")
    measured = message_bytes(message) if size is None else size
    if measured >= MAX_MESSAGE_BYTES:
        problems.append(f"the message is {measured} bytes, not under {MAX_MESSAGE_BYTES}")
    cards = card_contents(message)
    for index, found in enumerate(validate_cards(cards)):
        problems += [f"card {index}: {problem}" for problem in found]
    return problems
