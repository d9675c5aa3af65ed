"""Reading the update page's form into answers, and its absence form. Pure: no I/O, no
clock (`today` is an argument).

Each milestone of the page is a fieldset numbered from 1 in page order; its fields are
`m{n}-rating` (1–4, or absent), `m{n}-note`, `m{n}-revised` (a date), `m{n}-support`
(checked or absent) and `m{n}-evidence` (what changed for children and families, with a
rating of 1; `judge` sends it back with any other). A milestone with nothing given is left
as it is. Errors are keyed by the id of the field they are about, so the page shows each
one beside its field and links to it from the summary at the top.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from bot.domain.absences import AbsenceRefusal, day_back
from bot.domain.replies import EVIDENCE_HINT, NOTE_LIMIT, ReplyLine
from bot.domain.timescales import parse_day

DATE_HINT = "For example, 31/01/2027"
# The page writes its hints as sentences.
EVIDENCE_HINT_SENTENCE = f"{EVIDENCE_HINT[0].upper()}{EVIDENCE_HINT[1:]}."


def field_id(n: int, name: str) -> str:
    """The id of field `name` of the `n`th milestone (1-based)."""
    return f"m{n}-{name}"


def rating_id(n: int) -> str:
    """The field an error about the `n`th milestone's rating links to: its first radio."""
    return f"m{n}-rating-1"


@dataclass(frozen=True, slots=True)
class Draft:
    """What the form gave: the lines to record, what each field held (to show the form
    again as it was sent), and the errors by field id."""

    lines: tuple[ReplyLine, ...]
    values: Mapping[str, str]
    errors: Mapping[str, str] = field(default_factory=dict)


def read_update(form: Mapping[str, str], refs: Sequence[str], *, today: date) -> Draft:
    """The answers the form gives for `refs` (the page's milestones, in order)."""
    lines: list[ReplyLine] = []
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    for n, ref in enumerate(refs, start=1):
        rating_text = form.get(field_id(n, "rating"), "").strip()
        note = form.get(field_id(n, "note"), "").strip()
        revised_text = form.get(field_id(n, "revised"), "").strip()
        support = form.get(field_id(n, "support"), "") != ""
        evidence = form.get(field_id(n, "evidence"), "").strip()
        values.update(
            {
                field_id(n, "rating"): rating_text,
                field_id(n, "note"): note,
                field_id(n, "revised"): revised_text,
                field_id(n, "support"): "on" if support else "",
                field_id(n, "evidence"): evidence,
            }
        )
        rating: int | None = None
        if rating_text:
            if rating_text in ("1", "2", "3", "4"):
                rating = int(rating_text)
            else:
                errors[rating_id(n)] = f"Choose one of the four ratings for {ref}"
        if len(note) > NOTE_LIMIT:
            errors[field_id(n, "note")] = (
                f"The note for {ref} must be {NOTE_LIMIT} characters or fewer; it has {len(note)}"
            )
        if len(evidence) > NOTE_LIMIT:
            errors[field_id(n, "evidence")] = (
                f"What changed for {ref} must be {NOTE_LIMIT} characters or fewer; it has "
                f"{len(evidence)}: give a link to the evidence instead"
            )
        revised: date | None = None
        if revised_text:
            revised = parse_day(revised_text)
            if revised is None:
                errors[field_id(n, "revised")] = (
                    f"The revised date for {ref} must be a real date, for example 31/01/2027"
                )
            elif revised < today:
                errors[field_id(n, "revised")] = (
                    f"The revised date for {ref} must be today or later"
                )
        if rating is None and not note and revised is None and not support:
            if evidence:
                errors.setdefault(
                    field_id(n, "evidence"),
                    f"What changed for {ref} goes with a rating of 1 (achieved): choose 1, "
                    "or remove it",
                )
            continue
        if rating is None and not note and (revised is not None or support):
            errors.setdefault(
                rating_id(n),
                f"Choose a rating for {ref}, or write a note, to go with the "
                + ("revised date" if revised is not None else "request for support"),
            )
        lines.append(
            ReplyLine(ref, rating, note or None, revised, support, n, evidence=evidence or None)
        )
    if not lines and not errors and refs:
        errors[rating_id(1)] = "Choose a rating or write a note for at least one milestone"
    return Draft(tuple(lines), values, errors)


@dataclass(frozen=True, slots=True)
class Absence:
    """What the absence form gave: away until (None: not away) and the delegate's key (None:
    nobody), or the errors by field id."""

    away_until: date | None
    delegate: str | None
    values: Mapping[str, str]
    errors: Mapping[str, str] = field(default_factory=dict)


def read_absence(
    form: Mapping[str, str], *, people: Sequence[str], own_key: str, today: date
) -> Absence:
    """The absence form: `away` (a date or empty) and `delegate` (a key of `people`, or
    empty), checked by the absence rules every channel uses (bot/domain/absences.py)."""
    away_text = form.get("away", "").strip()
    delegate = form.get("delegate", "").strip()
    values = {"away": away_text, "delegate": delegate}
    errors: dict[str, str] = {}
    away: date | None = None
    if away_text:
        read = day_back(away_text, today)
        if isinstance(read, AbsenceRefusal):
            errors["away"] = ABSENCE_ERRORS[read]
        else:
            away = read
    if delegate and (delegate not in people or delegate == own_key):
        errors["delegate"] = ABSENCE_ERRORS[AbsenceRefusal.UNKNOWN_PERSON]
    return Absence(away, delegate or None, values, errors)


ABSENCE_ERRORS = {
    AbsenceRefusal.NO_DAY: "The date you are back must be a real date, for example 31/01/2027",
    AbsenceRefusal.UNREADABLE_DAY: (
        "The date you are back must be a real date, for example 31/01/2027"
    ),
    AbsenceRefusal.PAST_DAY: "The date you are back must be today or later",
    AbsenceRefusal.NO_NAME: "Choose a delegate from the list",
    AbsenceRefusal.UNKNOWN_PERSON: "Choose a delegate from the list",
    AbsenceRefusal.OWN_DELEGATE: "Choose a delegate from the list",
}
"""The page's words, beside their field, for each refusal of the absences service."""
