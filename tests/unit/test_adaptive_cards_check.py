"""The Adaptive Cards check the Teams tests rely on: it passes a card Teams renders and names
what is wrong with one it would not (tests/adaptive_cards.py, npm `adaptivecards`)."""

from __future__ import annotations

from typing import Any

from tests.adaptive_cards import validate_card, validate_cards, validate_message


def _card(*body: dict[str, Any], version: str = "1.5") -> dict[str, Any]:
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": version,
        "body": list(body),
        "actions": [{"type": "Action.OpenUrl", "title": "Open", "url": "https://pulse.example/"}],
    }


def _message(card: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
        ],
    }


TABLE = {
    "type": "Table",
    "columns": [{"width": 2}, {"width": 1}],
    "rows": [
        {
            "type": "TableRow",
            "cells": [
                {"type": "TableCell", "items": [{"type": "TextBlock", "text": "Achieved"}]},
                {"type": "TableCell", "items": [{"type": "TextBlock", "text": "3"}]},
            ],
        }
    ],
}


def test_a_card_teams_renders_is_valid() -> None:
    """A 1.5 card of text, a table and a link action gives no problem."""
    assert (
        validate_message(_message(_card({"type": "TextBlock", "text": "Hi", "wrap": True}, TABLE)))
        == []
    )


def test_the_parser_names_what_teams_would_not_render() -> None:
    """An unknown element, an invalid size and a link without a URL are each reported."""
    card = _card(
        {"type": "Carousel", "pages": []}, {"type": "TextBlock", "text": "x", "size": "huge"}
    )
    card["actions"] = [{"type": "Action.OpenUrl", "title": "Open"}]
    problems = validate_card(card)
    assert any("Carousel" in p for p in problems)
    assert any('"huge"' in p for p in problems)
    assert any('"url"' in p for p in problems)


def test_a_version_above_1_5_and_a_post_of_28_kb_are_refused() -> None:
    """Version 1.6 is above what Teams renders, and 28,000 bytes of JSON is too big a post."""
    assert validate_cards([_card(version="1.6")]) == [
        ["the card's version 1.6 is above 1.5, which Teams renders"]
    ]
    big = _message(_card({"type": "TextBlock", "text": "é" * 14_000}))
    assert any("not under 28000" in p for p in validate_message(big))


def test_a_message_without_a_card_is_refused() -> None:
    """A message of plain text is not what a Workflows webhook posts as a card."""
    assert validate_message({"type": "message", "text": "hi"}) == ["the message has no attachments"]
