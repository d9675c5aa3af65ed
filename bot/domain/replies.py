"""Read a lead's email reply into one answer per milestone (DESIGN.md §9).

A prompt email lists milestones by reference and asks for one item per line::

    1.1a 2 Strategy review done; sign-off on 14 Dec
    1.2 in progress - revised date 31/01/27 - need support

`parse_reply` turns the reply text (after quoted text and signatures are stripped, by
`strip_quoted` or a library in front of it) into accepted answers and rejected lines, each
rejection with a reason a lead can act on. The bot's confirmation email shows both.

The grammar, line by line:

- A line starting with an asked reference (any case; after an optional bullet, and followed
  by an optional `:` `-` `)` `.`) starts an item: `REF RATING note...`. A line starting with
  something shaped like a reference that was not asked about is rejected.
- RATING is 1-4 (`3`, `rating 3`, `3/4`, `3 -`) or a word of the §3 scale; text that is not
  a rating is the note of a note-only answer (rating None). A number outside 1-4 is rejected.
- `revised date DATE`, `new date DATE`, `revised DATE` or `by DATE` anywhere gives the revised
  due date; `need support`, `help needed`, `help`, ... set the needs-support flag.
- `evidence: TEXT` on the item's line or one of its following lines (a line starting with it
  belongs to the last item even after a blank line) gives the evidence of impact:
  everything after it to the item's end, read as written (no dates or support asks in it).
  It goes only with a rating of 1 (`judge`).
- Lines without a reference continue the previous item's note. A blank line or a sign-off
  ("Thanks", "Kind regards") ends an item; text before the first item or after its end is
  ignored, so greetings and names never reach a note.
- `no change` (instead of a rating) re-confirms the milestone's latest rating as of today;
  `no change` alone on a line re-confirms every milestone the reply does not answer itself.
- A note is required when the rating gets worse, or is 3 or 4 on an overdue milestone
  (`judge`, the same rule for every channel).
- A reference that is not asked about is sent back, with "did you mean 1.1-1?" when it is an
  asked one written with other separators (`1.1.1`, `1,1-1`, `11-1`).

Our own prompt and confirmation text, quoted inline by a careless auto-responder, is never
read as answers (`strip_our_text`). `reply_examples` gives the example lines a prompt shows,
each one accepted as it stands.

Pure: no I/O and no clock; `today` is an argument (it resolves "14 Dec" and rejects revised
dates in the past).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from enum import StrEnum
from functools import lru_cache

from bot.domain.child_details import child_details, rephrase_reason
from bot.domain.errors import TimescaleError
from bot.domain.ratings import DEFAULT_LABELS, RATING_WORDS, rating_from_text
from bot.domain.timescales import read_day

__all__ = [
    "NOTE_LIMIT",
    "AskedMilestone",
    "LineRefusal",
    "ParsedReply",
    "Refusal",
    "RejectedLine",
    "ReplyLine",
    "judge",
    "judge_answer",
    "parse_reply",
    "quotes_our_confirmation",
    "refused_field",
    "reply_examples",
    "strip_our_text",
    "strip_quoted",
]

NOTE_LIMIT = 2000

_RATING_HELP = "rating must be 1–4 or one of: " + ", ".join(RATING_WORDS)
_DATE_HELP = "write it as 31/01/27, 31/1/2027, 2027-01-31 or 14 Dec 2026"


class Refusal(StrEnum):
    """Why an answer, or one line of it, was not recorded: the same in every channel, which
    each renders in its own words."""

    NOT_LINKED = "not_linked"  # the writer is nobody we know (an unlinked Slack account)
    NO_PROMPT = "no_prompt"  # the prompt no longer exists
    NOT_YOURS = "not_yours"  # the writer may answer nothing the prompt asked
    NOT_ASKED = "not_asked"  # the milestone is not one the prompt asked about
    NOT_A_LEAD = "not_a_lead"  # the writer does not lead this milestone of the prompt
    NOTE_REQUIRED = "note_required"  # the note rule (`note_required`)
    NOTHING_TO_KEEP = "nothing_to_keep"  # `no change` on a milestone never rated
    UNREADABLE = "unreadable"  # the channel could not read the line (its reason says why)
    CHILD_DETAILS = "child_details"  # the note looks like it holds a child's details
    EVIDENCE_NOT_ACHIEVED = "evidence_not_achieved"  # evidence given with a rating other than 1


# How every channel asks for evidence of impact (issue 17): the same words in the email, the
# update page, the Slack modal and the Teams card.
EVIDENCE_QUESTION = "What changed for children and families? (optional, with a rating of 1)"
EVIDENCE_HINT = "a sentence, or a link to the evidence"


@dataclass(frozen=True, slots=True)
class LineRefusal:
    """A line about `ref` that is not recorded: `refusal` says why for code, `reason` for
    the person, in words they can act on."""

    ref: str
    refusal: Refusal
    reason: str
    line_no: int = 0
    # The evidence of impact is what is at fault, not the rest of the answer: a channel with
    # a field for it shows the reason there.
    about_evidence: bool = False


@dataclass(frozen=True, slots=True)
class ReplyLine:
    """One accepted answer about one milestone."""

    ref: str  # the milestone reference as the prompt listed it (canonical case)
    rating: int | None
    note: str | None
    revised_due: date | None
    needs_support: bool
    line_no: int  # 1-based line in the reply text where the item started
    # What changed for children and families (or a link to evidence): only with rating 1.
    evidence: str | None = None


@dataclass(frozen=True, slots=True)
class RejectedLine:
    """A line (with its continuation lines) that was not recorded, and why."""

    text: str
    line_no: int
    reason: str
    refusal: Refusal = Refusal.UNREADABLE


@dataclass(frozen=True, slots=True)
class ParsedReply:
    accepted: tuple[ReplyLine, ...]
    rejected: tuple[RejectedLine, ...]


@dataclass(frozen=True, slots=True)
class AskedMilestone:
    """A milestone the prompt asked about, with what the note rule needs to know, and the
    latest rated answer (whatever its period), which `no change` re-confirms."""

    ref: str
    current_rating: int | None
    overdue: bool
    latest_rating: int | None = None  # None: use current_rating
    latest_note: str | None = None
    latest_support: bool = False


# --- lines and references -----------------------------------------------------------------

_BULLET = re.compile(r"^[-*•·◦▪‣–—][^\S\n]*")
# What may follow a reference: not more of a reference ("1.1" is not "1.1a", "W1.2" is not
# "W1.2-3"), then an optional separator.
_REF_END = r"(?![\w])(?!\.[0-9])(?!-[0-9])[^\S\n]*(?:[:)=.\-–—][^\S\n]*)?"
# Shapes that are meant as references even when not asked about: 1.2, 1.1a, 1.2-3, 1a, W1.2,
# W1.2-3. Bare numbers and "Q3" are not: lines like "2 workshops held" continue a note.
_REF_LIKE = re.compile(
    r"(?P<ref>(?:[A-Za-z]{1,3})?[0-9]{1,3}(?:\.[0-9]{1,3})+[A-Za-z]{0,2}(?:-[0-9]{1,2})?"
    r"|[0-9]{1,3}[A-Za-z](?:-[0-9]{1,2})?"
    r"|[A-Za-z]{1,3}[0-9]{1,3}[A-Za-z]?-[0-9]{1,2})" + _REF_END
)
# Sign-offs that end an item even without a blank line before them.
_CLOSING = re.compile(
    r"(?:(?:many\s+|with\s+)?thanks|thank\s+you|thx|kind(?:est)?\s+regards|warm\s+regards"
    r"|best\s+regards|regards|best\s+wishes|all\s+the\s+best|cheers|yours\s+sincerely"
    r"|yours\s+faithfully|speak\s+soon)[\s,!.]*(?:[A-Za-z][\w'.-]*[\s,!.]*){0,2}"
    r"|(?:best|ta|many thanks)[\s,!.]*",
    re.IGNORECASE,
)

# `no change` instead of a rating, and the same standing alone on a line (every milestone).
_NO_CHANGE = re.compile(
    r"(?:no\s+changes?|unchanged|nothing\s+(?:has\s+)?changed)(?![\w-])", re.IGNORECASE
)
_NO_CHANGE_ALONE = re.compile(
    r"(?:(?:all|everything)\s+)?(?:no\s+changes?|unchanged|nothing\s+(?:has\s+)?changed)"
    r"(?:\s+(?:to\s+report|(?:for|on|to)\s+(?:all|any|every|each|the\s+rest|the\s+others)"
    r"(?:\s+(?:of\s+)?(?:them|milestones?|items?|lines?))?|since\s+(?:my\s+)?last\s+\w+"
    r"|this\s+(?:week|month|time)))*[\s.!,;:]*",
    re.IGNORECASE,
)
# An asked reference written with other separators, or none: `1.1.1`, `1,1-1`, `11-1`.
_LOOSE_REF = re.compile(r"(?P<ref>[A-Za-z]{0,3}[0-9]{1,3}(?:[.,\-]?[0-9A-Za-z]{1,3}){0,4})")
_NOT_REF_CHARS = re.compile(r"[^0-9a-z]+")

# --- ratings --------------------------------------------------------------------------------

_RATING_KEYWORD = re.compile(r"(?:rating|rated)\b[^\S\n]*(?:(?:[:=\-]|of|is|at)[^\S\n]*)?", re.I)
_RATING_NUMBER = re.compile(
    r"(?P<num>[0-9]+(?:\.[0-9]+)?)(?:[^\S\n]*/[^\S\n]*(?P<scale>[0-9]+))?(?=$|[\s,;:)!.\-–—])"
)
_WHOLE_RATING = re.compile(r"([1-4])(?:\.0+)?")
# Longer than any scale word or default label ("Largely achieved, some tasks outstanding").
_LONGEST_RATING_TEXT = 60
_TWO_WORDS = re.compile(r"(\S+)(?:[^\S\n]+(\S+))?")
_LABEL_START = re.compile(r"[\s:\-–—]*")
_SPACED_DASH = re.compile(r"\s[-–—]\s")
_PUNCTUATION = ".,;:!-–—"

# --- revised dates --------------------------------------------------------------------------

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_DATE = (
    r"(?P<date>(?P<iso>[0-9]{4}-[0-9]{1,2}-[0-9]{1,2})"
    r"|(?P<nd>[0-9]{1,2})(?P<sep>[/.\-])(?P<nm>[0-9]{1,2})(?:(?P=sep)(?P<ny>[0-9]{4}|[0-9]{2}))?"
    r"|(?P<dd>[0-9]{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<dm>" + _MONTH + r")\b\.?"
    r"(?:,?\s+(?P<dy>[0-9]{4}|[0-9]{2}))?"
    r"|(?P<mm>" + _MONTH + r")\b\.?,?\s+(?P<my>[0-9]{4})"
    r")(?![\w/])"
)
# "revised" and "by" are markers only when a date follows, so "revised the policy" and
# "sign-off by the board" stay notes. "revised date" and "new date" must be followed by a date
# when they start a segment or a colon, a digit or the segment's end follows them ("new date:
# tbc" and "- revised date next month" are sent back, "agreed a new date with the panel" is a
# note).
_REVISED = re.compile(
    r"(?<![\w-])(?:(?P<named>(?:revised|new)\s+(?:due\s+|target\s+|completion\s+)?date)"
    r"(?:\s+(?:is|of|to|now))?|revised(?:\s+(?:to|due))?|(?:due\s+)?by)\b"
    r"\s*[:=]?\s*(?:" + _DATE + r")?",
    re.IGNORECASE,
)

# --- evidence of impact --------------------------------------------------------------------

_EVIDENCE = re.compile(r"(?<![\w-])evidence(?:[^\S\n]+of[^\S\n]+impact)?[^\S\n]*[:=]", re.I)
_EVIDENCE_HELP = (
    "write what changed for children and families (a sentence, or a link to the evidence)"
)

_NAMED_WITHOUT_DATE = re.compile(r"[^\S\n]*(?:[:=]|[0-9]|$|[;,\n]|[-–—]\s)")

# --- needs support --------------------------------------------------------------------------

_SUPPORT = re.compile(
    r"(?<![\w-])(?:(?:i\s+|we\s+)?needs?\s+(?:some\s+|more\s+)?(?:support|help)"
    r"|(?:support|help)\s+(?:is\s+)?needed|help)(?![\w-])",
    re.IGNORECASE,
)
_NEGATION = re.compile(
    r"(?:\b(?:no|not|don'?t|doesn'?t|didn'?t|without|never|nor)|n't)[^\S\n]+(?:\w+[^\S\n]+)?$",
    re.IGNORECASE,
)
_SEGMENT_AFTER = re.compile(r"[^\S\n]*(?:please)?[.!]*(?=[^\S\n]*(?:$|[;,:)\n\x00]|[-–—]\s))", re.I)

# --- tidying notes --------------------------------------------------------------------------

_HOLE = "\x00"  # where a date or support marker was cut out of a note
# The lookbehind starts a run only at its first character: linear, not quadratic, on long runs.
_HOLES = re.compile(r"(?<![\s;,:\-–—])[\s;,:\-–—]*\x00[\s;,:\-–—\x00]*")
_LEADING_EDGE = " \t\n;,:.!"  # "3. panel met": the full stop belongs to the rating
_TRAILING_EDGE = " \t\n;,:"
_DASHES = "-–—"


@dataclass(slots=True)
class _Item:
    """The lines of one item as written, before they are read."""

    ref: str | None  # the asked reference, or None for one the prompt did not ask about
    written: str  # the reference as the lead wrote it
    line_no: int
    first: str  # the rest of the reference line
    lines: list[str]
    # Continuation lines without their bullet, and whether they had one: bulleted lines are
    # joined with a newline, wrapped lines with a space.
    more: list[tuple[str, bool]] = field(default_factory=list)


def parse_reply(
    text: str,
    asked: Sequence[AskedMilestone],
    *,
    today: date,
    answerable: Collection[str] | None = None,
) -> ParsedReply:
    """The answers in a reply, and the lines that could not be recorded with the reason.

    `text` is the reply without quoted text or signature (see `strip_quoted`); line numbers
    refer to it. `asked` lists the prompt's milestones; `answerable` those of them that
    `no change` alone on a line re-confirms (default: all). Never raises on any text.
    """
    milestones: dict[str, AskedMilestone] = {}
    for milestone in asked:
        milestones.setdefault(milestone.ref.casefold(), milestone)
    refs = [m.ref for m in milestones.values()]
    asked_refs = _AskedRefs(refs)

    items: list[_Item] = []
    current: _Item | None = None
    unchanged: tuple[int, str] | None = None  # the first `no change` line standing alone
    for line_no, raw in enumerate(text.replace(_HOLE, "").splitlines(), start=1):
        line = raw.strip()
        if not line:
            current = None
            continue
        body = _BULLET.sub("", line, count=1)
        known = asked_refs.match(body)
        if known is not None:
            ref = refs[known[0]]
            current = _Item(ref, ref, line_no, body[known[1] :], [line])
            items.append(current)
            continue
        if _NO_CHANGE_ALONE.fullmatch(body):
            unchanged = unchanged or (line_no, line)
            current = None
            continue
        unknown = _REF_LIKE.match(body) or _loose_ref(body, refs)
        if unknown is not None and (current is None or _looks_rated(body[unknown.end() :])):
            current = _Item(None, unknown["ref"], line_no, body[unknown.end() :], [line])
            items.append(current)
            continue
        if current is None and items and _EVIDENCE.match(body):
            current = items[-1]  # `evidence:` after a blank line still means the last item
        if current is None:
            continue  # greetings, text before the first item, anything after an item's end
        if _CLOSING.fullmatch(body):
            current = None
            continue
        current.more.append((body, body != line))
        current.lines.append(line)

    accepted: list[ReplyLine] = []
    rejected: list[RejectedLine] = []
    answered: set[str] = set()
    for item in items:
        result = _read_item(item, milestones, refs, today=today)
        if isinstance(result, ReplyLine) and result.ref.casefold() in answered:
            result = "answered twice in this reply; the first answer was kept"
        if isinstance(result, ReplyLine):
            answered.add(result.ref.casefold())
            accepted.append(result)
        elif isinstance(result, LineRefusal):
            text = "\n".join(item.lines)
            rejected.append(RejectedLine(text, item.line_no, result.reason, result.refusal))
        else:
            rejected.append(RejectedLine("\n".join(item.lines), item.line_no, result))
    if unchanged is not None:
        line_no, line = unchanged
        mentioned = answered | {item.ref.casefold() for item in items if item.ref is not None}
        allowed = None if answerable is None else {ref.casefold() for ref in answerable}
        for key, milestone in milestones.items():
            if key in mentioned or (allowed is not None and key not in allowed):
                continue
            kept = judge(
                milestone, ReplyLine(milestone.ref, None, "no change", None, False, line_no)
            )
            if isinstance(kept, ReplyLine):
                accepted.append(kept)
            else:
                text = f"{line} ({milestone.ref})"
                rejected.append(RejectedLine(text, line_no, kept.reason, kept.refusal))
    return ParsedReply(tuple(accepted), tuple(rejected))


@lru_cache(maxsize=256)
def _asked_pattern(refs: tuple[str, ...]) -> re.Pattern[str] | None:
    """One pattern for the asked references; group `r<i>` is `refs[i]`. Longest first."""
    if not refs:
        return None
    order = sorted(range(len(refs)), key=lambda i: len(refs[i]), reverse=True)
    alternatives = "|".join(f"(?P<r{i}>{re.escape(refs[i])})" for i in order)
    return re.compile(f"(?:{alternatives})" + _REF_END, re.IGNORECASE)


_REF_END_PATTERN = re.compile(_REF_END, re.IGNORECASE)


class _AskedRefs:
    """Which asked reference a line starts with: exactly what `_asked_pattern` matches, the
    index of the reference and where the match ends, but without compiling a pattern for
    every reply. The pattern tries the references longest first, each ignoring case and
    followed by `_REF_END`. Between ASCII texts, ignoring case is comparing `lower()`s (the
    other characters `re` counts as equal to an ASCII letter, like "ſ" or the Kelvin sign,
    are not ASCII), so ASCII references at an ASCII line start are tried directly; anything
    else is left to the pattern itself."""

    def __init__(self, refs: Sequence[str]) -> None:
        self.refs = tuple(refs)
        order = sorted(range(len(refs)), key=lambda i: len(refs[i]), reverse=True)
        ascii_refs = all(ref.isascii() for ref in refs)
        self.folded = [(i, refs[i].lower(), len(refs[i])) for i in order] if ascii_refs else None

    def match(self, body: str) -> tuple[int, int] | None:
        if self.folded is None:
            return self._by_pattern(body)
        for i, folded, size in self.folded:
            start = body[:size]
            if len(start) < size:
                continue  # too short for this reference
            if not start.isascii():
                return self._by_pattern(body)
            if start.lower() == folded and (end := _REF_END_PATTERN.match(body, size)):
                return i, end.end()
        return None

    def _by_pattern(self, body: str) -> tuple[int, int] | None:
        pattern = _asked_pattern(self.refs)
        known = pattern.match(body) if pattern is not None else None
        if known is None or known.lastgroup is None:
            return None
        return int(known.lastgroup[1:]), known.end()


def _squeezed(ref: str) -> str:
    return _NOT_REF_CHARS.sub("", ref.casefold())


def _close_refs(written: str, refs: Sequence[str]) -> list[str]:
    """The asked references `written` spells with other separators (`1,1-1` for `1.1-1`)."""
    squeezed = _squeezed(written)
    return [ref for ref in refs if _squeezed(ref) == squeezed and ref != written]


def _loose_ref(body: str, refs: Sequence[str]) -> re.Match[str] | None:
    """A reference-shaped start of `body` that is an asked reference with other separators
    (or none, when a rating follows), else None."""
    found = _LOOSE_REF.match(body)
    if found is None or not _close_refs(found["ref"], refs):
        return None
    if _REF_END_PATTERN.match(body, found.end()) is None:
        return None
    written = found["ref"]
    if not any(c in written for c in ".,-") and not _looks_rated(body[found.end() :]):
        return None
    return found


def _looks_rated(rest: str) -> bool:
    """Whether text after a reference-shaped token reads as an attempted rating (or as
    `no change`, which stands for one)."""
    if _NO_CHANGE.match(rest.lstrip(" \t:-–—")):
        return True
    rating, _, error = _read_rating(rest)
    return rating is not None or error is not None


def _read_item(
    item: _Item, milestones: dict[str, AskedMilestone], refs: Sequence[str], *, today: date
) -> ReplyLine | LineRefusal | str:
    """The answer an item gives, or the reason it cannot be recorded."""
    if item.ref is None:
        listing = ", ".join(refs) if refs else "no milestones"
        close = _close_refs(item.written, refs)
        if close:
            return (
                f"unknown reference {item.written}: did you mean {' or '.join(close)}? "
                f"This prompt asks about {listing}"
            )
        return f"unknown reference {item.written}: this prompt asks about {listing}"
    milestone = milestones[item.ref.casefold()]
    text, evidence = _evidence(item)
    if evidence is not None and evidence[1] is None:
        return f"nothing after {evidence[0]!r}: {_EVIDENCE_HELP}, or leave it out"
    if evidence is not None and evidence[1] is not None and len(evidence[1]) > NOTE_LIMIT:
        return (
            f"the evidence is {len(evidence[1])} characters; the limit is {NOTE_LIMIT}: "
            "shorten it, or give a link to the evidence"
        )

    rating, consumed, rating_error = _read_rating(text)
    if rating_error is not None:
        return rating_error
    rest = text[consumed:]
    revised = _revised_date(rest, today=today)
    if isinstance(revised, str):
        return revised
    revised_due, rest = revised
    needs_support, rest = _support(rest)
    note = _tidy(rest)

    if note is not None and len(note) > NOTE_LIMIT:
        return (
            f"the note is {len(note)} characters; the limit is {NOTE_LIMIT}: shorten it "
            "and send the rest in a separate reply"
        )
    if rating is None and note is None and revised_due is None and not needs_support:
        return (
            f"nothing to record for {item.ref}: give a rating 1–4 (or a word such as "
            "'in progress') and a note"
        )
    if rating is None and note is not None and not _NO_CHANGE.match(note):
        guess = _misspelt_rating(note)
        if guess is not None:
            return f"{note!r} is not a rating: did you mean {guess!r}? {_RATING_HELP}"
    line = ReplyLine(item.ref, rating, note, revised_due, needs_support, item.line_no)
    if evidence is not None:
        line = replace(line, evidence=evidence[1])
    return judge(milestone, line)


def _evidence(item: _Item) -> tuple[str, tuple[str, str | None] | None]:
    """The item's text before its first `evidence:` marker, and (the marker as written, the
    evidence after it, to the item's end) when there is one."""
    lines = [(item.first, False), *item.more]
    for index, (line, bullet) in enumerate(lines):
        found = _EVIDENCE.search(line)
        if found is None:
            continue
        head = [*lines[:index], (line[: found.start()], bullet)]
        tail = [(line[found.end() :], False), *lines[index + 1 :]]
        return _joined(head), (found.group(0).strip(), _tidy(_joined(tail)))
    return _joined(lines), None


def _joined(lines: Sequence[tuple[str, bool]]) -> str:
    """Lines of an item as one text: bulleted lines joined with a newline, wrapped lines
    with a space (the first line is joined to nothing)."""
    if not lines:
        return ""
    first, _ = lines[0]
    return first + "".join(("\n" if bullet else " ") + line for line, bullet in lines[1:])


def judge_answer(milestone: AskedMilestone, line: ReplyLine) -> ReplyLine | str:
    """`judge`, with the reason alone when the line is sent back."""
    judged = judge(milestone, line)
    return judged.reason if isinstance(judged, LineRefusal) else judged


def judge(
    milestone: AskedMilestone,
    line: ReplyLine,
    *,
    case_numbers: re.Pattern[str] | None = None,
) -> ReplyLine | LineRefusal:
    """The answer as it is recorded, or why it is sent back: the same in every channel
    (email replies, Slack clicks and the Slack form; `bot/services/answers.py` calls it).

    A note or evidence written now that looks like it holds a child's details
    (`child_details`, with the plan's `case_numbers`) is sent back to be rephrased: notes
    travel into channels and board packs. A line with no rating whose note starts with
    `no change` re-confirms the milestone's latest rating as of today, keeping its note and
    support ask unless new ones are given. Then the note rule (`note_required`) applies, to
    the note written now. Evidence of impact goes only with a rating of 1 (as kept).
    """
    for what, written in (("note", line.note), ("evidence", line.evidence)):
        found = child_details(written, case_numbers=case_numbers) if written else None
        if found:
            reason = rephrase_reason(found, what=what)
            return LineRefusal(
                line.ref, Refusal.CHILD_DETAILS, reason, line.line_no, what == "evidence"
            )
    judged = _judge_rating(milestone, line)
    if isinstance(judged, ReplyLine) and judged.evidence and judged.rating != 1:
        return LineRefusal(
            line.ref,
            Refusal.EVIDENCE_NOT_ACHIEVED,
            (
                f"evidence of impact goes with a rating of 1 (achieved); {line.ref} is rated "
                f"{judged.rating}: put what changed in the note instead"
                if judged.rating is not None
                else f"evidence of impact goes with a rating of 1 (achieved): rate {line.ref} "
                "1 with it, or put what changed in the note instead"
            ),
            line.line_no,
            about_evidence=True,
        )
    return judged


def refused_field(refusal: LineRefusal) -> str:
    """Which field of a form a refused line's reason belongs beside: `evidence` when the
    evidence of impact is what was refused, else `note`."""
    return "evidence" if refusal.about_evidence else "note"


def _judge_rating(milestone: AskedMilestone, line: ReplyLine) -> ReplyLine | LineRefusal:
    """`judge` after the child-details check: `no change` and the note rule."""
    if line.rating is None and line.note is not None:
        kept = _NO_CHANGE.match(line.note)
        if kept is not None:
            rest = _tidy(line.note[kept.end() :])
            latest = (
                milestone.latest_rating
                if milestone.latest_rating is not None
                else milestone.current_rating
            )
            if latest is None:
                return LineRefusal(
                    line.ref,
                    Refusal.NOTHING_TO_KEEP,
                    f"{milestone.ref} has no rating yet, so there is none to keep: give a "
                    "rating 1–4 (or a word such as 'in progress') and a note",
                    line.line_no,
                )
            missing = note_required(milestone, latest, rest)
            if missing is not None:
                return LineRefusal(line.ref, Refusal.NOTE_REQUIRED, missing, line.line_no)
            return replace(
                line,
                rating=latest,
                note=rest if rest is not None else milestone.latest_note,
                needs_support=line.needs_support or milestone.latest_support,
            )
    missing = note_required(milestone, line.rating, line.note)
    if missing is not None:
        return LineRefusal(line.ref, Refusal.NOTE_REQUIRED, missing, line.line_no)
    return line


def note_required(milestone: AskedMilestone, rating: int | None, note: str | None) -> str | None:
    """Why this answer needs a note (DESIGN.md §9), or None: a rating worse than the current
    one, or 3 or 4 on an overdue milestone, must say why. The same rule in every channel."""
    if rating is None or (note is not None and note.strip()):
        return None
    current = milestone.current_rating
    if current is not None and rating > current:
        return (
            f"a note is required: rating {rating} is worse than the current rating "
            f"{current}; say what has changed"
        )
    if milestone.overdue and rating >= 3:
        return (
            f"a note is required: {milestone.ref} is overdue and rated {rating}; say what is "
            "holding it up"
        )
    return None


def _read_rating(text: str) -> tuple[int | None, int, str | None]:
    """(rating, characters read, reason to reject) for the rating at the start of `text`.

    No rating at all is (None, 0, None): the text is a note.
    """
    start = len(text) - len(text.lstrip())
    pos = start
    keyword = _RATING_KEYWORD.match(text, pos)
    if keyword is not None:
        pos = keyword.end()
    number = _RATING_NUMBER.match(text, pos)
    if number is not None:
        written = number.group(0)
        # Not rating_from_text: it reads "2.2" as 2 ("2" then ".2"), which here is no rating.
        whole = _WHOLE_RATING.fullmatch(number["num"])
        rating = int(whole.group(1)) if whole is not None else None
        if rating is None:
            return None, 0, f"{written!r} is not a rating: {_RATING_HELP}"
        if number["scale"] is not None and number["scale"] != "4":
            return None, 0, f"{written!r} is not a rating: ratings are out of 4; {_RATING_HELP}"
        return rating, _skip_label(text, number.end(), rating), None
    words = _TWO_WORDS.match(text, pos)
    if words is not None:
        for group in (2, 1):
            if words.group(group) is None:
                continue
            candidate = text[words.start() : words.end(group)].rstrip(_PUNCTUATION)
            rating = _rating_words(candidate)
            if rating is not None:
                return rating, words.end(group), None
    # "Rated highly by Ofsted" is a note; "rating high" is a rating that cannot be read.
    if keyword is not None and keyword.group(0).casefold().startswith("rating"):
        shown = text[start : words.end() if words is not None else len(text)].strip()
        return None, 0, f"{shown!r} is not a rating: {_RATING_HELP}"
    return None, 0, None


def _rating_words(text: str) -> int | None:
    """`rating_from_text` for a short fragment; longer text is never a rating (and deeply
    repetitive text such as "1 1 1 ..." would exhaust its recursion)."""
    return rating_from_text(text) if 0 < len(text) <= _LONGEST_RATING_TEXT else None


def _skip_label(text: str, pos: int, rating: int) -> int:
    """Past a label repeating the rating just read ("3 - In progress"), so the note omits it."""
    start = _LABEL_START.match(text, pos)
    begin = start.end() if start is not None else pos
    ends = [i for i in (text.find(c, begin) for c in ";,\n") if i >= 0]
    dash = _SPACED_DASH.search(text, begin)
    if dash is not None:
        ends.append(dash.start())
    end = min(ends, default=len(text))
    label = text[begin:end].strip().rstrip(_PUNCTUATION)
    if _rating_words(label) == rating:
        return end
    return pos


def _revised_date(text: str, *, today: date) -> tuple[date | None, str] | str:
    """(revised date, text with its phrase cut out), or the reason the date is not usable."""
    found: list[tuple[str, date]] = []
    holes: list[tuple[int, int]] = []
    for match in _REVISED.finditer(text):
        # "by 2.1" is a reference, not a date: a day and month alone are written 14/12.
        loose = match["nd"] is not None and match["ny"] is None and match["sep"] != "/"
        if match["date"] is None or loose:
            named = match["named"]
            if named is not None and (
                _NAMED_WITHOUT_DATE.match(text, match.end("named"))
                or _starts_segment(text, match.start())
            ):
                return f"could not read a date after {named!r}: {_DATE_HELP}"
            continue
        day = _date_of(match, today=today)
        if isinstance(day, str):
            return day
        written = match["date"]
        if day < today:
            return (
                f"revised date {written} is before today ({today:%d/%m/%Y}): give a date "
                "still to come"
            )
        found.append((written, day))
        holes.append(match.span())
    days = {day for _, day in found}
    if len(days) > 1:
        shown = ", ".join(written for written, _ in found)
        return f"more than one revised date ({shown}): give one"
    for begin, end in reversed(holes):
        text = text[:begin] + _HOLE + text[end:]
    return (found[0][1] if found else None), text


def _date_of(match: re.Match[str], *, today: date) -> date | str:
    """The date a `_REVISED` match names, or why it cannot be read.

    Dates with a year are read by `timescales.parse` (day-first, two-digit years are 20xx);
    a day and month without a year is the next such day on or after `today`.
    """
    if match["iso"] is not None:
        return _parse_date(match["iso"])
    if match["mm"] is not None:
        return _parse_date(f"{match['mm']} {match['my']}")
    if match["nd"] is not None:
        day, month, year = match["nd"], match["nm"], match["ny"]
        if year is not None:
            return _parse_date(f"{day}/{month}/{year}")
        return _next_date(lambda y: f"{day}/{month}/{y}", today=today)
    day, month, year = match["dd"], match["dm"], match["dy"]
    if year is not None:
        full = year if len(year) == 4 else f"20{year}"
        return _parse_date(f"{day} {month} {full}")
    return _next_date(lambda y: f"{day} {month} {y}", today=today)


def _next_date(written: Callable[[int], str], *, today: date) -> date | str:
    """The first date on or after `today` for a day and month (29 Feb waits for a leap year)."""
    first_error: str | None = None
    for year in range(today.year, today.year + 9):
        day = _parse_date(written(year))
        if isinstance(day, str):
            first_error = first_error or day
        elif day >= today:
            return day
    return first_error or f"could not read the revised date {written(today.year)}: {_DATE_HELP}"


def _parse_date(written: str) -> date | str:
    try:
        return read_day(written)
    except TimescaleError as error:
        return f"cannot record the revised date: {error.reason}"


def _support(text: str) -> tuple[bool, str]:
    """Whether the text asks for support, and the text without a marker that stands alone."""
    needs = False
    holes: list[tuple[int, int]] = []
    for match in _SUPPORT.finditer(text):
        if _NEGATION.search(text[max(0, match.start() - 40) : match.start()]):
            continue  # "no help needed", "don't need support"
        needs = True
        after = _SEGMENT_AFTER.match(text, match.end())
        if after is not None and _starts_segment(text, match.start()):
            holes.append((match.start(), after.end()))
    for begin, end in reversed(holes):
        text = text[:begin] + _HOLE + text[end:]
    return needs, text


def _starts_segment(text: str, pos: int) -> bool:
    """Whether only spaces stand between `pos` and the start of the text or a separator."""
    i = pos - 1
    while i >= 0 and text[i] in " \t":
        i -= 1
    if i < 0 or text[i] in ";,.!:(\n" + _HOLE:
        return True
    return text[i] in _DASHES and (i == 0 or text[i - 1].isspace())


def _tidy(text: str) -> str | None:
    """The note left after markers are cut out: separators mended, spaces collapsed."""

    def mend(run: re.Match[str]) -> str:
        if run.start() == 0 or run.end() == len(run.string):
            return ""
        written = run.group(0)
        for separator, joined in ((";", "; "), (",", ", "), ("\n", "\n"), (":", ": ")):
            if separator in written:
                return joined
        return " - " if any(dash in written for dash in "-–—") else " "

    text = _HOLES.sub(mend, text)
    text = re.sub(r"[^\S\n]+", " ", text)
    text = re.sub(r" ?\n ?", "\n", text)
    previous = None
    while previous != text:  # separators at the ends, and dashes standing alone there
        previous = text
        text = text.lstrip(_LEADING_EDGE).rstrip(_TRAILING_EDGE)
        if text[:1] in _DASHES and text[1:2] in ("", " ", "\n"):
            text = text[1:]
        if text[-1:] in _DASHES and text[-2:-1] in ("", " ", "\n"):
            text = text[:-1]
    return text or None


def _misspelt_rating(note: str) -> str | None:
    """The rating word a one- or two-word note nearly spells ("acheived"), if any."""
    words = note.rstrip(_PUNCTUATION).casefold().split()
    if not 1 <= len(words) <= 2:
        return None
    close = difflib.get_close_matches(" ".join(words), RATING_WORDS, n=1, cutoff=0.8)
    return close[0] if close else None


# --- the prompt's examples -------------------------------------------------------------------


def reply_examples(asked: Sequence[AskedMilestone], *, today: date) -> tuple[str, ...]:
    """The example lines a prompt shows: one per milestone for its first two, each with its
    own reference and a note (so the note rule never sends it back), and a revised date
    well after `today`. Every line returned is accepted by `parse_reply` as it stands,
    alone or together with the others."""
    refs = list(dict.fromkeys(m.ref for m in asked))
    if not refs:
        return ()
    month = today.month + 3
    year = today.year + (month - 1) // 12
    month = (month - 1) % 12 + 1
    after = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)  # month's end
    candidates = [
        f"{refs[0]} in progress - waiting on partner sign-off - revised date "
        f"{after:%d/%m/%y} - need support",
    ]
    if len(refs) > 1:
        candidates.append(f"{refs[1]} 2 Strategy review done; sign-off on 14 Dec")
    examples = tuple(
        line
        for line in candidates
        if not (parsed := parse_reply(line, asked, today=today)).rejected and parsed.accepted
    )
    whole = parse_reply("\n".join(examples), asked, today=today)
    return examples if not whole.rejected else examples[:1]


# --- our own text, quoted inline ---------------------------------------------------------------

# First lines of what we send (templates in bot/messages/templates/, and the notices of
# bot/services/inbound.py); tests render the real messages and check each is recognised.
_OUR_HEADLINES = re.compile(
    r"thank\s+you\.\s+recorded\s+from\s+your\s+reply:"
    r"|nothing\s+could\s+be\s+recorded\s+from\s+your\s+reply\."
    r"|not\s+recorded:"
    r"|to\s+correct\s+these,\s+reply\s+again\s+with\s+just\s+those\s+lines\."
    r"|your\s+replies\s+to\s+plan\s+pulse\s+are\s+paused\b.*"
    r"|reminder:\s+we\s+have\s+not\s+had\s+your\s+update\s+yet\."
    r"|how\s+are\s+(?:your|these)\s+[0-9]+\s+milestones?\s+in\s+.*\s+going\?.*"
    r"|how\s+to\s+reply(?::.*)?",
    re.IGNORECASE,
)
# A line of a confirmation: `1.1-1: rating 2 (Largely achieved, ...), needs support`.
_OUR_ITEM = re.compile(
    r"(?P<ref>\S+):\s+(?:rating\s+(?P<rating>[1-4])\s+\((?P<label>[^\n]+?)\)|no\s+rating)"
    r"(?:,\s+revised\s+date\s+[0-9]{1,2}\s+\w{3}\s+[0-9]{4})?(?:,\s+needs\s+support)?",
    re.IGNORECASE,
)
_QUOTE_MARKS = re.compile(r"^(?:\s*>)+")
_CONFIRMATION_HEADLINES = re.compile(
    r"thank\s+you\.\s+recorded\s+from\s+your\s+reply:"
    r"|nothing\s+could\s+be\s+recorded\s+from\s+your\s+reply\.",
    re.IGNORECASE,
)


def _ours(line: str, labels: Mapping[int, str]) -> bool:
    body = _BULLET.sub("", line.strip(), count=1)
    if _OUR_HEADLINES.fullmatch(body):
        return True
    item = _OUR_ITEM.fullmatch(body)
    if item is None:
        return False
    if item["rating"] is None:
        return True
    label = " ".join(item["label"].split()).casefold()
    rating = int(item["rating"])
    return label in {
        " ".join(text.split()).casefold()
        for text in (labels.get(rating, ""), DEFAULT_LABELS[rating])
    }


def strip_our_text(text: str, labels: Mapping[int, str] = DEFAULT_LABELS) -> str:
    """`text` up to the first line that is ours: a prompt or confirmation quoted without
    quote marks (as careless auto-responders do) is never read as answers."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if _ours(line, labels):
            return "\n".join(lines[:index]).rstrip()
    return text


def quotes_our_confirmation(text: str) -> bool:
    """Whether `text` (a whole reply, quoted parts too) quotes one of our confirmations."""
    return any(
        _CONFIRMATION_HEADLINES.fullmatch(_QUOTE_MARKS.sub("", line).strip())
        for line in text.splitlines()
    )


# --- quoted text ------------------------------------------------------------------------------

_ON_WROTE = re.compile(r"^on\s.*[0-9].*\bwrote:$", re.IGNORECASE)
_ORIGINAL_MESSAGE = re.compile(r"^-{2,}\s*(?:original|forwarded)\s+message\s*-{2,}$", re.IGNORECASE)
_RULE = re.compile(r"^_{8,}$")
_HEADER = re.compile(r"^\*?(?P<name>from|sent|date|to|cc|subject)\s*:\*?(?:\s|$)", re.IGNORECASE)
_MOBILE = re.compile(
    r"^(?:sent\s+from\s+my\s+.{1,40}|get\s+outlook\s+for\s+\w+.*"
    r"|sent\s+from\s+(?:outlook|mail\s+for|yahoo|aol|samsung|proton).{0,40}"
    r"|sent\s+with\s+proton\s*mail.{0,30})$",
    re.IGNORECASE,
)


def strip_quoted(text: str) -> str:
    """The new part of a reply: the text before quoted mail and signatures.

    Cuts at the first quote header (Gmail's "On ... wrote:", Outlook's
    "-----Original Message-----", a line of underscores, or a "From:" header that starts a
    block with "Sent:"/"Date:" and "To:"/"Subject:" or follows a blank line), at a signature
    delimiter ("-- "), and at "Sent from my iPhone"-style lines; drops lines quoted with ">".
    A minimal fallback for a maintained library put in front of it: it never parses MIME.
    """
    lines = text.splitlines()
    kept: list[str] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if _starts_quote(lines, index) or line.rstrip() == "--":
            break
        if _MOBILE.match(stripped):
            break
        if stripped.startswith(">"):
            continue
        kept.append(line.rstrip())
    while kept and not kept[-1]:
        kept.pop()
    return "\n".join(kept)


def _starts_quote(lines: Sequence[str], index: int) -> bool:
    """Whether `lines[index]` is the first line of a quoted message's header."""
    stripped = lines[index].strip()
    if _ORIGINAL_MESSAGE.match(stripped) or _RULE.match(stripped):
        return True
    if stripped[:3].casefold() == "on " and len(stripped) < 300:
        # Gmail wraps a long header line: "On Mon, 23 Nov 2026 at 09:00, Plan Pulse <\n...> wrote:"
        joined = stripped
        for following in lines[index + 1 : index + 3]:
            if joined.endswith("wrote:"):
                break
            joined = f"{joined} {following.strip()}"
        if len(joined) < 600 and _ON_WROTE.match(joined):
            return True
    header = _HEADER.match(stripped)
    if header is None or header["name"].casefold() != "from":
        return False
    if index > 0 and not lines[index - 1].strip():
        return True
    names = set()
    for following in lines[index + 1 : index + 7]:
        more = _HEADER.match(following.strip())
        if more is not None:
            names.add(more["name"].casefold())
    return bool(names & {"sent", "date"}) and bool(names & {"to", "subject"})
