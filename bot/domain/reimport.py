"""What a re-imported plan's progress column does to a milestone (README: "Re-importing").

A sheet's rating and note are the plan's word only until a lead answers. Once a lead (or a
coordinator on their behalf) has answered about a milestone, only a later answer changes
it: a sheet value that differs is reported as a conflict and not recorded, unless the
admin prefers the sheet. A milestone that only ever had sheet values takes the sheet's value
whenever it differs from what is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import NamedTuple


class Progress(NamedTuple):
    """A rating and a note: what a sheet says, or what is stored (the latest rating given
    and the latest update's note: what the digest and the export show)."""

    rating: int | None
    note: str | None


@dataclass(frozen=True, slots=True)
class Answer:
    """A milestone's latest answer from a person: who gave it, what it said, and the day."""

    who: str
    rating: int | None
    note: str | None
    day: date


class Decision(NamedTuple):
    """Whether to record the sheet's value, and the conflict line for the report, if any."""

    record: bool
    conflict: str | None = None


def _quoted(text: str | None, width: int = 40) -> str:
    flat = " ".join((text or "").split())
    return f'"{flat if len(flat) <= width else flat[: width - 1] + "…"}"'


def _day(day: date) -> str:
    return f"{day.day} {day:%b %Y}"


def decide(
    ref: str,
    sheet: Progress,
    stored: Progress | None,
    answer: Answer | None,
    *,
    prefer_sheet: bool = False,
) -> Decision:
    """What the sheet's value for milestone `ref` does, given what is stored and its latest
    answer from a person (None when it never had one)."""
    if stored is None:
        return Decision(record=True)
    rating_differs = sheet.rating is not None and sheet.rating != stored.rating
    if answer is None:
        # Only ever sheet values: the sheet is the plan's word, a blank note included.
        return Decision(record=rating_differs or (sheet.note or None) != (stored.note or None))
    # A blank cell says nothing against an answer.
    note_differs = sheet.note is not None and sheet.note != stored.note
    if not (rating_differs or note_differs):
        return Decision(record=False)
    if rating_differs:
        answered = answer.rating if answer.rating is not None else stored.rating
        said = f"the sheet says {sheet.rating}, {answer.who} answered {answered}"
    else:
        said = (
            f"the sheet's note is {_quoted(sheet.note)}, {answer.who} answered "
            f"{_quoted(answer.note if answer.note is not None else stored.note)}"
        )
    outcome = "took the sheet's (--prefer-sheet)" if prefer_sheet else "kept the answer"
    return Decision(record=prefer_sheet, conflict=f"{ref}: {said} on {_day(answer.day)}; {outcome}")
