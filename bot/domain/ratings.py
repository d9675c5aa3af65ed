"""The rating scale of DESIGN.md §3: four fixed values, configurable labels, reply words."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

ACHIEVED = 1
LARGELY_ACHIEVED = 2
IN_PROGRESS = 3
NOT_STARTED = 4

RATINGS: tuple[int, ...] = (ACHIEVED, LARGELY_ACHIEVED, IN_PROGRESS, NOT_STARTED)

DEFAULT_LABELS: Mapping[int, str] = MappingProxyType(
    {
        ACHIEVED: "Achieved",
        LARGELY_ACHIEVED: "Largely achieved, some tasks outstanding",
        IN_PROGRESS: "In progress",
        NOT_STARTED: "Not achieved / not started",
    }
)

# Words a lead may write instead of the number (DESIGN.md §3), each with the rating it
# reads as. Longest phrases are tried first so that "not started" is never read as "started".
_WORDS: Mapping[str, int] = MappingProxyType(
    {
        "achieved": ACHIEVED,
        "done": ACHIEVED,
        "complete": ACHIEVED,
        "completed": ACHIEVED,
        "largely achieved": LARGELY_ACHIEVED,
        "largely": LARGELY_ACHIEVED,
        "mostly": LARGELY_ACHIEVED,
        "in progress": IN_PROGRESS,
        "progressing": IN_PROGRESS,
        "on track": IN_PROGRESS,
        "started": IN_PROGRESS,
        "not achieved": NOT_STARTED,
        "not started": NOT_STARTED,
        "no progress": NOT_STARTED,
    }
)
# The words alone, in that order, for reasons and for "did you mean".
RATING_WORDS: tuple[str, ...] = tuple(_WORDS)
_WORD_PATTERN = re.compile(
    r"(?<![\w])("
    + "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(_WORDS, key=len, reverse=True))
    + r")(?![\w])",
    re.IGNORECASE,
)


def is_rating(value: object) -> bool:
    """True for the four ratings and nothing else (bools are not ratings)."""
    return isinstance(value, int) and not isinstance(value, bool) and value in RATINGS


def label(rating: int, labels: Mapping[int, str] | None = None) -> str:
    """The plan's label for a rating, falling back to the default scale."""
    if not is_rating(rating):
        raise ValueError(f"not a rating: {rating!r}")
    return (labels or DEFAULT_LABELS).get(rating, DEFAULT_LABELS[rating])


def rating_from_text(text: str) -> int | None:
    """A rating from a cell or a reply fragment: `2`, `2.0`, `Largely achieved`, or None.

    Only a whole cell that is a number 1-4, or a phrase of §3 at the start of the text, counts;
    anything else is None so that the caller can report it.
    """
    cleaned = text.strip()
    if not cleaned:
        return None
    number = re.fullmatch(r"([1-4])(?:\.0+)?", cleaned)
    if number:
        return int(number.group(1))
    folded = " ".join(cleaned.casefold().split())
    for value, text in DEFAULT_LABELS.items():
        if folded == " ".join(text.casefold().split()):
            return value
    match = _WORD_PATTERN.match(cleaned)
    if match and not cleaned[match.end() :].strip(" .,;:-–—!"):
        return _WORDS[re.sub(r"\s+", " ", match.group(1).lower())]
    # "3 - In progress" and "1 Achieved" as written in plan tables; never "2.2" or "1 1".
    lead = re.match(r"([1-4])(?![\d.]*\d)[\s.:\-–—)]*(.*)$", cleaned, re.DOTALL)
    if lead:
        rest = lead.group(2).strip(" .,;:-–—!")
        if not rest:
            return int(lead.group(1))
        word = _WORD_PATTERN.fullmatch(rest)
        if word and _WORDS[re.sub(r"\s+", " ", word.group(1).lower())] == int(lead.group(1)):
            return int(lead.group(1))
    return None
