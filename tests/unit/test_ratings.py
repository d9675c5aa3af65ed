"""Ratings read from cells and replies (DESIGN.md §3)."""

from __future__ import annotations

import pytest

from bot.domain.ratings import rating_from_text

WORDS = [
    ("achieved", 1),
    ("done", 1),
    ("complete", 1),
    ("completed", 1),
    ("largely achieved", 2),
    ("largely", 2),
    ("mostly", 2),
    ("in progress", 3),
    ("progressing", 3),
    ("on track", 3),
    ("started", 3),
    ("not achieved", 4),
    ("not started", 4),
    ("no progress", 4),
]


@pytest.mark.parametrize("value", [1, 2, 3, 4])
def test_numbers_one_to_four(value: int) -> None:
    """The numbers 1-4 are ratings, with or without surrounding spaces."""
    assert rating_from_text(str(value)) == value
    assert rating_from_text(f"  {value} ") == value


@pytest.mark.parametrize(("text", "value"), [("2.0", 2), ("1.0", 1), ("4.00", 4)])
def test_spreadsheet_floats(text: str, value: int) -> None:
    """A whole number written as a float by a spreadsheet ("2.0") is that rating."""
    assert rating_from_text(text) == value


@pytest.mark.parametrize(("word", "value"), WORDS)
def test_every_word_of_the_scale(word: str, value: int) -> None:
    """Every word of the §3 table gives its rating, in any case."""
    assert rating_from_text(word) == value
    assert rating_from_text(word.upper()) == value
    assert rating_from_text(word.title()) == value


@pytest.mark.parametrize("text", ["not started", "Not Started", "NOT STARTED", "not  started"])
def test_not_started_is_four_never_three(text: str) -> None:
    """The phrase "not started" contains "started" (3) but is always 4."""
    assert rating_from_text(text) == 4


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3 - In progress", 3),
        ("3 – In progress", 3),
        ("1 Achieved", 1),
        ("4 - not started", 4),
    ],
)
def test_number_with_its_own_label(text: str, value: int) -> None:
    """A number followed by its own word, as plan tables write it, is that rating."""
    assert rating_from_text(text) == value


@pytest.mark.parametrize(
    ("label", "value"),
    [
        ("Achieved", 1),
        ("Largely achieved, some tasks outstanding", 2),
        ("In progress", 3),
        ("Not achieved / not started", 4),
    ],
)
def test_default_labels_are_accepted(label: str, value: int) -> None:
    """Each default label of §3 is accepted: the words are "also accepted" beside it."""
    assert rating_from_text(label) == value


@pytest.mark.parametrize(
    "text", ["5", "0", "Green", "", "   ", "-1", "2.5", "12", "Red", "n/a", "3 - not started"]
)
def test_rejects_what_is_not_a_rating(text: str) -> None:
    """Anything outside 1-4 and the words of §3 (RAG colours, 0, 5, empty) is no rating."""
    assert rating_from_text(text) is None
