"""Read the free-text timescales of improvement plans (DESIGN.md §4).

Plans write timescales the way people do: `31/05/18`, `Sept 2019`, `Quarterly from July 2019`,
`31/05/18 – 30/09/18`, `underway from 31/03/18`. Three pure functions turn them into meaning:

- `parse(text)` gives a `Timescale`: a due date, a start, a recurrence, an "ongoing" flag and
  warnings. Dates are day-first (UK) and two-digit years are 20xx. A date that cannot exist
  (`31/09/18`) raises `TimescaleError`; nothing is ever guessed.
- `split_milestone(line)` splits one line of a milestones cell ("text date") into its title and
  its timescale text.
- `due_on(timescale, today)` gives the due date that applies on a day and, for a recurring
  timescale, the start of the calendar period being rated.

No I/O, no clock: every input is an argument.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date

from bot.domain.errors import TimescaleError
from bot.domain.model import Recurrence, Timescale

__all__ = ["due_on", "parse", "split_milestone"]

# ASCII: case-insensitive matching of English words only (no "ſ" matching "s"); whitespace
# is normalised to plain spaces before matching, so `\s` need not be Unicode-aware.
_FLAGS = re.IGNORECASE | re.ASCII

_MONTHS: dict[str, int] = {
    "january": 1, "jan": 1,
    "february": 2, "feb": 2,
    "march": 3, "mar": 3,
    "april": 4, "apr": 4,
    "may": 5,
    "june": 6, "jun": 6,
    "july": 7, "jul": 7,
    "august": 8, "aug": 8,
    "september": 9, "sept": 9, "sep": 9,
    "october": 10, "oct": 10,
    "november": 11, "nov": 11,
    "december": 12, "dec": 12,
}  # fmt: skip
_MONTH = "(?:" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + ")"

# Years written in full must be plausible for a plan; bare years are stricter still (below).
_MIN_YEAR, _MAX_YEAR = 1900, 2199

# One date expression. Alternatives are tried in order at each position, leftmost match wins.
_DATE = re.compile(
    rf"""
    (?P<iso>(?<![0-9])(?P<iso_y>[0-9]{{4}})-(?P<iso_m>[0-9]{{1,2}})-(?P<iso_d>[0-9]{{1,2}})
        (?![0-9]))
  | (?P<numeric>(?<![0-9/.])(?P<num_d>[0-9]{{1,2}})(?P<sep>[/.-])(?P<num_m>[0-9]{{1,2}})
        (?P=sep)(?P<num_y>[0-9]{{4}}|[0-9]{{2}})(?![0-9]|[/.][0-9]))
  | (?P<day_month>(?<![0-9])(?P<dm_d>[0-9]{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?
        (?P<dm_m>{_MONTH})\b\.?,?\s+(?P<dm_y>[0-9]{{4}})(?![0-9]))
  | (?P<month_year>\b(?P<my_m>{_MONTH})\b\.?,?\s+(?P<my_y>[0-9]{{4}})(?![0-9]))
  | (?P<year>(?<![0-9A-Za-z/.£$])(?P<y>20[0-9]{{2}}|2100)
        (?![0-9A-Za-z]|[/.][0-9]|-[0-9]{{1,2}}(?![0-9])))
    """,
    _FLAGS | re.VERBOSE,
)

# What may stand between two dates that form a range: `31/05/18 – 30/09/18`, `Jan 2019 to
# March 2019`. Anything else between two dates makes them two separate dates.
_RANGE_SEPARATOR = re.compile(r"\s*(?:[-‐‑‒–—―]|to|until|till|through|thru)\s*", _FLAGS)

# A word just before a date that makes it a start rather than a due date.
_START_CONNECTOR = re.compile(
    r"(?<![A-Za-z])(?:from|start(?:s|ed|ing)?|commenc(?:e|es|ed|ing)|begin(?:s|ning)?|began"
    r"|underway|under\s+way)[\s,:]*$",
    _FLAGS,
)

_RECURRENCE = re.compile(
    r"(?<![A-Za-z0-9-])(?:(?P<word>monthly|quarterly|annually|annual|yearly)"
    r"|(?:every|each)\s+(?P<unit>month|quarter|year))\b",
    _FLAGS,
)
_RECURRENCE_WORDS: dict[str, Recurrence] = {
    "monthly": Recurrence.MONTHLY,
    "month": Recurrence.MONTHLY,
    "quarterly": Recurrence.QUARTERLY,
    "quarter": Recurrence.QUARTERLY,
    "annual": Recurrence.ANNUAL,
    "annually": Recurrence.ANNUAL,
    "yearly": Recurrence.ANNUAL,
    "year": Recurrence.ANNUAL,
}
# Periods people write that Plan Pulse has no recurrence for: reported, never approximated.
_UNSUPPORTED_PERIOD = re.compile(
    r"\b(?:(?:six|6|two|2|three|3|bi|half|semi)[\s-]*(?:monthly|yearly|annual(?:ly)?)"
    r"|biannual(?:ly)?|biennial(?:ly)?|weekly|fortnightly|daily)\b",
    _FLAGS,
)
_ONGOING = re.compile(
    r"\b(?:on-?\s?going|underway|under\s+way|rolling|continuous|continuing)\b", _FLAGS
)
# "July 19": a month with a two-digit number is either a day or a year; we do not guess.
_AMBIGUOUS_MONTH = re.compile(rf"\b{_MONTH}\b\.?\s+'?[0-9]{{2}}(?![0-9])", _FLAGS)

# --- split_milestone ---------------------------------------------------------------------

_BULLET = re.compile(r"^\s*(?:[-•*·‒–—▪◦●]|o(?=\s))\s*")
# The words that introduce a timescale, moved out of the title with it. Finite verbs such as
# "begins" stay in the title: "Recruitment programme begins 1/6/18" is an event due that day.
_CONNECTOR_TAIL = re.compile(
    r"(?:^|(?<=[\s,;:(\u2010-\u2015-]))"
    r"(?:(?:(?:quarterly|monthly|annually|yearly|ongoing|underway|rolling)\s+)?"
    r"(?:from|starting(?:\s+from)?|commencing|beginning)"
    r"|by\s+(?:the\s+)?end\s+of|(?:the\s+)?end\s+of|to\s+(?:begin|start)|start(?:\s+from)?"
    r"|begin|commence|underway|under\s+way|ongoing|due(?:\s+by)?|by|until|before|in|on|during)"
    r"[\s,:]*$",
    _FLAGS,
)
_TITLE_TAIL = re.compile(r"(?:[\s,;:.\u2010-\u2015-]+|(?<![A-Za-z])by)$", _FLAGS)
# Words that may follow a bare year when it ends a line ("2020", "2019 - 2020 ongoing").
_FILLER = re.compile(
    r"\b(?:and|to|until|till|through|thru|then|by|from|ongoing|on-?going|underway|rolling"
    r"|monthly|quarterly|annually|annual|yearly)\b",
    _FLAGS,
)
_NO_DATE_KEYWORDS = re.compile(
    r"(?:\b(?:on-?\s?going|underway|under\s+way|rolling)\b|" + _RECURRENCE.pattern + ")",
    _FLAGS,
)

_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class _Span:
    """One date expression found in a text: what was written, and the days it covers."""

    text: str
    first: date  # first day covered: the day, the 1st of the month, or 1 January
    last: date  # last day covered: the day, the end of the month, or 31 December
    begin: int  # position in the (normalised) text
    end: int


def _normalise(text: str) -> str:
    """Every run of whitespace (including non-breaking spaces) as one plain space."""
    return _WHITESPACE.sub(" ", text).strip()


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _full_year(digits: str, written: str, cell: str) -> int:
    """Two digits are 20xx; four digits must be a plausible year."""
    if len(digits) == 2:
        return 2000 + int(digits)
    year = int(digits)
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        raise TimescaleError(cell, f"impossible date {written}: year {digits} is out of range")
    return year


def _checked(year: int, month: int, day: int, written: str, cell: str) -> date:
    """The date, or a TimescaleError (about the whole `cell`) that says why it cannot exist."""
    if not 1 <= month <= 12:
        raise TimescaleError(cell, f"impossible date {written}: there is no month {month}")
    length = calendar.monthrange(year, month)[1]
    if not 1 <= day <= length:
        name = calendar.month_name[month]
        if day == 0:
            why = "there is no day 0"
        elif month == 2:
            why = f"February {year} has {length} days"
        else:
            why = f"{name} has {length} days"
        raise TimescaleError(cell, f"impossible date {written}: {why}")
    return date(year, month, day)


def _span(match: re.Match[str], cell: str) -> _Span:
    """The days a date expression in `cell` covers; TimescaleError for an impossible one."""
    written = match.group(0)
    if match.group("iso"):
        year = _full_year(match["iso_y"], written, cell)
        day = _checked(year, int(match["iso_m"]), int(match["iso_d"]), written, cell)
        first = last = day
    elif match.group("numeric"):
        year = _full_year(match["num_y"], written, cell)
        day = _checked(year, int(match["num_m"]), int(match["num_d"]), written, cell)
        first = last = day
    elif match.group("day_month"):
        year = _full_year(match["dm_y"], written, cell)
        day = _checked(year, _MONTHS[match["dm_m"].lower()], int(match["dm_d"]), written, cell)
        first = last = day
    elif match.group("month_year"):
        year = _full_year(match["my_y"], written, cell)
        month = _MONTHS[match["my_m"].lower()]
        first, last = date(year, month, 1), _month_end(year, month)
    else:
        year = int(match["y"])
        first, last = date(year, 1, 1), date(year, 12, 31)
    return _Span(written, first, last, match.start(), match.end())


def _recurrence(text: str) -> tuple[Recurrence | None, list[str]]:
    """The period named in the text, if any, and warnings about periods it cannot use."""
    warnings: list[str] = []
    unsupported = [m.span() for m in _UNSUPPORTED_PERIOD.finditer(text)]
    for begin, end in unsupported:
        warnings.append(f"{text[begin:end]!r} is not a supported period; not treated as recurring")
    found: list[tuple[str, Recurrence]] = []
    for match in _RECURRENCE.finditer(text):
        if any(b <= match.start() < e for b, e in unsupported):
            continue
        key = (match["word"] or match["unit"]).lower()
        found.append((match.group(0), _RECURRENCE_WORDS[key]))
    if not found:
        return None, warnings
    chosen = found[0][1]
    if any(rec is not chosen for _, rec in found):
        names = ", ".join(written for written, _ in found)
        warnings.append(f"several periods found ({names}); took {found[0][0]}")
    return chosen, warnings


def _later(spans: list[_Span], what: str, warnings: list[str]) -> _Span:
    chosen = max(spans, key=lambda s: s.last)
    if len(spans) > 1:
        names = ", ".join(s.text for s in spans)
        warnings.append(f"several dates found ({names}); took {chosen.text} as the {what}")
    return chosen


def _earlier(spans: list[_Span], what: str, warnings: list[str]) -> _Span:
    chosen = min(spans, key=lambda s: s.first)
    if len(spans) > 1:
        names = ", ".join(s.text for s in spans)
        warnings.append(f"several dates found ({names}); took {chosen.text} as the {what}")
    return chosen


def parse(text: str, *, plan_start: date | None = None) -> Timescale:
    """The meaning of a timescale cell (DESIGN.md §4).

    `plan_start` is the start of a recurring timescale that names no start of its own.
    Raises TimescaleError for a date that cannot exist, such as `31/09/18`.
    """
    original = text.strip()
    if not original:
        return Timescale(text="")
    norm = _normalise(original)
    spans = [_span(m, original) for m in _DATE.finditer(norm)]
    recurrence, warnings = _recurrence(norm)
    ongoing = _ONGOING.search(norm) is not None

    # Pair dates into ranges; sort the rest into starts ("from Jan 2019") and due dates.
    ranges: list[tuple[_Span, _Span]] = []
    starts: list[_Span] = []
    dues: list[_Span] = []
    i = 0
    while i < len(spans):
        here = spans[i]
        after = spans[i + 1] if i + 1 < len(spans) else None
        if after is not None and _RANGE_SEPARATOR.fullmatch(norm[here.end : after.begin]):
            if after.last < here.first:
                warnings.append(
                    f"range {here.text} – {after.text} ends before it starts; "
                    f"took {here.text} as the due date"
                )
                here, after = after, here
            ranges.append((here, after))
            i += 2
            continue
        before = norm[spans[i - 1].end if i else 0 : here.begin]
        (starts if _START_CONNECTOR.search(before) else dues).append(here)
        i += 1

    start: date | None = None
    due: date | None = None
    if recurrence is not None:
        # A recurring timescale falls due every period; its dates say when it starts.
        if ranges:
            start, due = ranges[0][0].first, ranges[0][1].last
            if len(ranges) > 1 or starts or dues:
                first, last = ranges[0]
                warnings.append(f"several dates found; took the range {first.text} – {last.text}")
        elif starts or dues:
            start = _earlier(starts + dues, "start", warnings).first
        else:
            start = plan_start
    else:
        starts += [first for first, _ in ranges]
        dues += [last for _, last in ranges]
        if starts:
            start = _earlier(starts, "start", warnings).first
        if dues:
            due = _later(dues, "due date", warnings).last
        if start is not None and due is not None and start > due:
            warnings.append(f"starts {start.isoformat()}, after its due date {due.isoformat()}")
        if not spans and not ongoing:
            ambiguous = _AMBIGUOUS_MONTH.search(norm)
            if ambiguous:
                warnings.append(
                    f"no date found: {ambiguous.group(0)!r} could be a day or a year; "
                    "write the year in full"
                )
            else:
                warnings.append("no date found")

    return Timescale(
        text=original,
        due=due,
        start=start,
        recurrence=recurrence,
        ongoing=ongoing,
        warnings=tuple(warnings),
    )


def _ends_line(match: re.Match[str], norm: str) -> bool:
    """Whether only dates, connectors and punctuation follow a bare year ("... by 2020")."""
    rest = _FILLER.sub(" ", _DATE.sub(" ", norm[match.end() :]))
    return re.search("[A-Za-z0-9]", rest) is None


def _first_date(norm: str) -> int | None:
    """Where the first date expression of a milestone line begins, if there is one.

    A bare year counts only when nothing but dates and connectors follow it, so that a
    title such as "Wirral 2020 pledges reviewed by 31/03/19" keeps its "2020".
    """
    for match in _DATE.finditer(norm):
        if match.group("year") and not _ends_line(match, norm):
            continue
        return match.start()
    return None


def _clean_title(title: str) -> str:
    previous = None
    while previous != title:
        previous = title
        title = _TITLE_TAIL.sub("", title).rstrip()
    return title


def split_milestone(line: str) -> tuple[str, str]:
    """Split one line of a milestones cell into (title, timescale text).

    The timescale text runs from the first date (with the word that introduces it: "by",
    "from", "underway from", "to begin", ...) to the end of the line. A line without a date
    gives no timescale text, unless it names a period or ongoing work ("rolling programme"),
    in which case the whole line is both title and timescale. Dates are not checked here.
    """
    norm = _normalise(_BULLET.sub("", line, count=1))
    begin = _first_date(norm)
    if begin is None:
        return norm, norm if _NO_DATE_KEYWORDS.search(norm) else ""
    head = norm[:begin]
    connector = _CONNECTOR_TAIL.search(head)
    if connector is not None:
        begin = connector.start()
    return _clean_title(norm[:begin]), norm[begin:].rstrip(" .;,")


# --- due_on --------------------------------------------------------------------------------


def _period(day: date, recurrence: Recurrence) -> tuple[date, date]:
    """The first and last day of the calendar month, quarter or year containing `day`."""
    if recurrence is Recurrence.MONTHLY:
        return day.replace(day=1), _month_end(day.year, day.month)
    if recurrence is Recurrence.QUARTERLY:
        first_month = 3 * ((day.month - 1) // 3) + 1
        return date(day.year, first_month, 1), _month_end(day.year, first_month + 2)
    return date(day.year, 1, 1), date(day.year, 12, 31)


def due_on(ts: Timescale, today: date) -> tuple[date | None, date | None]:
    """The due date that applies on `today`, and the start of the period being rated.

    A fixed timescale gives (its due date, None). A recurring one falls due at the end of
    each calendar month, quarter (Jan–Mar, Apr–Jun, Jul–Sep, Oct–Dec) or year: it gives the
    period containing `today`, or its first period when it has not started yet. A recurring
    timescale with a fixed due date keeps that date until it passes.
    """
    if ts.recurrence is None:
        return ts.due, None
    anchor = ts.start if ts.start is not None and ts.start > today else today
    first, last = _period(anchor, ts.recurrence)
    if ts.due is not None and today <= ts.due:
        return ts.due, first
    return last, first
