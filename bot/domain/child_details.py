"""Likely child-level personal data in a note, found before the note is stored.

Notes are copied into prompts, digests, Slack channels and board packs, so a lead's note
must never carry a child's identifiers. `child_details` finds the ones that can be told
from ordinary plan text with few false alarms:

- an NHS number: 10 digits, written together or grouped 3-3-4 by spaces or hyphens, whose
  last digit passes the modulus-11 check (about one random 10-digit number in eleven does,
  so a long reference number can be caught too);
- a date written after "DOB", "D.O.B." or "born" (`DOB 3/4/2015`, `born 12 March 2016`,
  `born in May 2017`);
- a full UK postcode in capitals (`CH41 6AB`, `M1 1AE`): outward and inward parts, so a
  district alone (`CH41`) is not one, and a lower-case one is not caught;
- a case or ID number in the plan's own pattern (`case_numbers` in the plan's settings, a
  regular expression such as `LCS-\\d{6}`).

Pure: no I/O. The caller decides what a finding means (refuse a lead's line, warn about an
imported note).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ChildDetail",
    "Kind",
    "case_number_pattern",
    "child_details",
    "nhs_number_valid",
    "rephrase_reason",
    "stored_pattern",
]


class Kind(StrEnum):
    NHS_NUMBER = "NHS number"
    DATE_OF_BIRTH = "date of birth"
    POSTCODE = "postcode"
    CASE_NUMBER = "case number"


@dataclass(frozen=True, slots=True)
class ChildDetail:
    """One likely identifier: what kind, and where in the note."""

    kind: Kind
    start: int
    end: int


_NHS = re.compile(r"(?<![\w-])(\d{3})([ -]?)(\d{3})\2(\d{4})(?![\w-])")

_MONTHS = (
    "jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    "|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_DATE = (
    r"(?:\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}"  # 03/04/2015, 3.4.15, 2015 forms below
    r"|\d{4}-\d{1,2}-\d{1,2}"
    rf"|(?:\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?)?(?:{_MONTHS})\.?,?\s+\d{{2,4}}"
    rf"|(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{2,4}})"
)
_DOB = re.compile(
    r"(?<!\w)(?:d\.?\s?o\.?\s?b\b\.?|born(?:\s+(?:on|in))?\b)[\s:=\-–]*" + rf"({_DATE})(?!\w)",
    re.IGNORECASE,
)
# Royal Mail's format: outward code (area, district) and inward code (sector, unit); the
# unit's letters never include C I K M O V.
_POSTCODE = re.compile(
    r"(?<![\w-])(?:GIR ?0AA|[A-PR-UWYZ](?:\d[A-HJKPSTUW\d]?|[A-HK-Y]\d[ABEHMNPRVWXY\d]?)"
    r" ?\d[ABD-HJLNP-UW-Z]{2})(?![\w-])"
)


def nhs_number_valid(digits: str) -> bool:
    """True when ten digits pass the NHS number's modulus-11 check."""
    if len(digits) != 10 or not digits.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(digits[9])


def case_number_pattern(text: str) -> re.Pattern[str]:
    """A plan's case-number pattern, checked: ValueError says what is wrong with it."""
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    if pattern.search("") is not None:
        raise ValueError("the pattern matches empty text, so it would refuse every note")
    return pattern


def stored_pattern(text: str | None) -> re.Pattern[str] | None:
    """A plan's stored `case_numbers` pattern, or None when it has none. Patterns are
    checked when a plan is imported; one that no longer compiles only loses this check."""
    if not text:
        return None
    try:
        return case_number_pattern(text)
    except ValueError:
        return None


def child_details(
    note: str, *, case_numbers: re.Pattern[str] | None = None
) -> tuple[ChildDetail, ...]:
    """Every likely child-level identifier in `note`, in order of where it starts."""
    found: list[ChildDetail] = []
    for match in _NHS.finditer(note):
        if nhs_number_valid(match.group(1) + match.group(3) + match.group(4)):
            found.append(ChildDetail(Kind.NHS_NUMBER, match.start(), match.end()))
    for match in _DOB.finditer(note):
        found.append(ChildDetail(Kind.DATE_OF_BIRTH, match.start(), match.end()))
    for match in _POSTCODE.finditer(note):
        found.append(ChildDetail(Kind.POSTCODE, match.start(), match.end()))
    if case_numbers is not None:
        for match in case_numbers.finditer(note):
            if match.end() > match.start():
                found.append(ChildDetail(Kind.CASE_NUMBER, match.start(), match.end()))
    return tuple(sorted(found, key=lambda d: (d.start, d.end)))


def rephrase_reason(found: tuple[ChildDetail, ...], *, where: str = "note") -> str:
    """What a lead is told when a line is refused: the kinds found, never the values, and
    `where` they were (the note, or the evidence of impact)."""
    kinds = list(dict.fromkeys(d.kind.value for d in found))
    named = kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " and " + kinds[-1]
    return (
        f"this {where} looks like it holds a child's details ({named}); nothing was recorded "
        "for this line: please rephrase it without them and send it again"
    )
