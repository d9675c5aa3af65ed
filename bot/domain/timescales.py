"""Read the free-text timescales of improvement plans (DESIGN.md §4).

Plans write timescales the way people do: `31/05/18`, `Sept 2019`, `Quarterly from July 2019`,
`31/05/18 – 30/09/18`, `underway from 31/03/18`. Three pure functions turn them into meaning:

- `parse(text)` gives a `Timescale`: a due date, a start, a recurrence, an "ongoing" flag and
  warnings. Dates are day-first (UK) and two-digit years are 20xx. A date that cannot exist
  (`31/09/18`) raises `TimescaleError`; nothing is ever guessed.

  Words that qualify a date are read whole or not at all. Understood, each due at the end of
  what it names: a quarter (`Q3 2027`, `Q1 2027/28`: with a year pair, a financial-year
  quarter from April; with a plain year, by the plan's `quarters` setting), a half (`H1 2027`,
  `H2 2027/28`, read the same way), a financial year (`FY 2027/28`: 31 March 2028), a season
  (`Spring 2027`: end of May; Summer: August; Autumn: November; `Winter 2027`: end of
  February 2028), a school term (`Autumn term 2027`: end of December; Spring term: end of
  March; Summer term: end of July; with a school year `2027/28`, autumn is in 2027 and the
  others in 2028), a school year (`academic year 2027/28`: 31 July 2028), `end of` and `late`
  (the end of the period), `beginning of` and `start of` (its first day). Seasons, terms and
  school years are conventions, not dates, so each is read with a warning. Anything else
  that qualifies a year or month (`early 2027`, `mid-March 2027`, `Q5 2027`, `FY 2027`,
  `2027 Q1`) makes the whole cell "no date" with a warning naming the words: such a cell is
  never reduced to the year it contains. Other words around a full date are tolerated.
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
from bot.domain.model import Quarters, Recurrence, Timescale

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


def _years(p: str) -> str:
    """A year, or a pair of years (`2027/28`, `2027-28`, `FY27/28`), as named groups `p...`."""
    return (
        rf"(?:(?P<{p}fy>FY|financial\s+year)\s*)?"
        rf"(?P<{p}a>[0-9]{{4}}|[0-9]{{2}}(?=[/-][0-9]{{2}}(?![0-9])))"
        rf"(?:[/-](?P<{p}b>[0-9]{{4}}|[0-9]{{2}}))?(?![0-9]|[/.-][0-9])"
    )


# One date expression. Alternatives are tried in order at each position, leftmost match wins.
_DATE = re.compile(
    rf"""
    (?P<quarter>\b(?:Q(?P<q_n>[1-4])|quarter\s*(?P<q_n2>[1-4])
        |(?P<q_ord>first|second|third|fourth|1st|2nd|3rd|4th)\s+quarter)\b
        [\s,]*(?:of\s+)?(?:the\s+)?{_years("q_")})
  | (?P<half>\b(?:H(?P<h_n>[12])|(?P<h_ord>first|second|1st|2nd)\s+half)\b
        [\s,]*(?:of\s+)?(?:the\s+)?{_years("h_")})
  | (?P<term>\b(?P<t_name>autumn|spring|summer)\s+term\b\s*(?:of\s+)?{_years("t_")})
  | (?P<season>\b(?P<s_name>spring|summer|autumn|winter)\b\s*(?:of\s+)?{_years("s_")})
  | (?P<fyear>\b(?P<f_word>FY|financial\s+year|(?:academic|school)\s+year)\s*
        (?P<f_a>[0-9]{{4}}|[0-9]{{2}}(?=[/-][0-9]{{2}}(?![0-9])))
        (?:[/-](?P<f_b>[0-9]{{4}}|[0-9]{{2}}))?(?![0-9]|[/.-][0-9]))
  | (?P<iso>(?<![0-9])(?P<iso_y>[0-9]{{4}})-(?P<iso_m>[0-9]{{1,2}})-(?P<iso_d>[0-9]{{1,2}})
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

# Words that qualify a date. Where one touches a year or a month and is not part of a form
# understood above, the cell has no date: it is never reduced to the year it contains.
_QUALIFIER_WORDS = (
    r"Q[0-9]+|H[0-9]+|quarters?|half|halves|spring|summer|autumn|winter|terms?|FY"
    r"|financial\s+year|(?:academic|school)\s+year|early|mid|late"
    r"|(?:the\s+)?end\s+of|(?:the\s+)?(?:beginning|start)\s+of"
)
_QUALIFIER = re.compile(rf"(?<![A-Za-z0-9])(?:{_QUALIFIER_WORDS})(?![A-Za-z])", _FLAGS)
# The qualifiers that name a part of a year.
_NAMED_PART = re.compile(
    r"Q[0-9]+|H[0-9]+|quarters?|half|halves|spring|summer|autumn|winter|terms?|FY", _FLAGS
)
# What may stand between a qualifier and the number it qualifies ("end of the 2027", "mid-").
_QUALIFIER_GAP = re.compile(
    rf"(?:[\s,-]+|(?:of|the|in|year)(?![A-Za-z])|(?:{_QUALIFIER_WORDS})(?![A-Za-z]))*", _FLAGS
)
# A qualifier just before a month, year, quarter or season it applies to.
_PREFIX = re.compile(
    r"(?<![A-Za-z])(?:(?P<end>(?:the\s+)?end\s+of|late)|(?P<first>(?:the\s+)?(?:beginning|start)"
    r"\s+of)|(?P<vague>early|mid))[\s-]*(?:the\s+)?$",
    _FLAGS,
)
# "2027/28" alone could be a financial or a school year.
_YEAR_PAIR = re.compile(r"(?<![0-9A-Za-z/.])[0-9]{4}[/-][0-9]{2}(?![0-9]|[/.][0-9])")
_ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4}
_ORDINALS["4th"] = 4
# The last month of each season; winter ends in the February after its December.
_SEASON_ENDS = {"spring": (3, 5), "summer": (6, 8), "autumn": (9, 11), "winter": (12, 14)}
# School terms in the school year that starts in September: (first month, last month).
_TERM_MONTHS = {"autumn": (9, 12), "spring": (1, 3), "summer": (4, 7)}

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
    r"(?:\s+the)?[\s,:]*$",
    _FLAGS,
)
_TITLE_TAIL = re.compile(r"(?:[\s,;:.\u2010-\u2015-]+|(?<![A-Za-z])by)$", _FLAGS)
# Words that may follow a bare year when it ends a line ("2020", "2019 - 2020 ongoing").
_FILLER = re.compile(
    r"\b(?:and|to|until|till|through|thru|then|by|from|ongoing|on-?going|underway|rolling"
    r"|monthly|quarterly|annually|annual|yearly)\b",
    _FLAGS,
)
# A dateless line's timescale is its trailing period and ongoing words ("..., reviewed
# quarterly", "... and ongoing"): a period word earlier in the line is part of its title
# ("Annual Review Quality Assurance framework") and never makes it recurring.
_TRAILING_PERIOD = re.compile(
    r"(?:^|(?<=[\s,;:(\u2010-\u2015-]))"
    r"(?:(?:" + _UNSUPPORTED_PERIOD.pattern + "|" + _RECURRENCE.pattern + r"|(?:\b(?:on-?\s?going"
    r"|underway|under\s+way|rolling|thereafter|and|then)\b))[\s,;:\u2010-\u2015-]*)+"
    r"[\s.;,)]*$",
    _FLAGS,
)
_PERIOD_WORD = re.compile(_UNSUPPORTED_PERIOD.pattern + "|" + _RECURRENCE.pattern, _FLAGS)
# Qualifiers just before a line's first date belong to its timescale ("... mid 2027").
_QUALIFIER_TAIL = re.compile(
    rf"(?:(?<![A-Za-z0-9])(?:the\s+)?(?:{_QUALIFIER_WORDS})(?:\s+of)?(?:\s+the)?[\s,-]*)+$",
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
    exact: bool = False  # a written day (`31/05/18`), not a month or longer
    note: str | None = None  # a warning about how it was read (a season, a term)
    quarters: Quarters | None = None  # the reading of a quarter or half of a plain year


class _Unreadable(Exception):
    """A date qualified by words that are not understood: the cell has no date."""

    def __init__(self, words: str) -> None:
        super().__init__(words)
        self.words = words


def _normalise(text: str) -> str:
    """Every run of whitespace (including non-breaking spaces) as one plain space."""
    return _WHITESPACE.sub(" ", text).strip()


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _months(year: int, first_month: int, last_month: int) -> tuple[date, date]:
    """The first and last day of a run of months; months past 12 are in the next year."""
    end_year, end_month = year + (last_month - 1) // 12, (last_month - 1) % 12 + 1
    start_year, start_month = year + (first_month - 1) // 12, (first_month - 1) % 12 + 1
    return date(start_year, start_month, 1), _month_end(end_year, end_month)


def _full_year(digits: str, written: str, cell: str) -> int:
    """Two digits are 20xx; four digits must be a plausible year."""
    if len(digits) == 2:
        return 2000 + int(digits)
    year = int(digits)
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        raise TimescaleError(cell, f"impossible date {written}: year {digits} is out of range")
    return year


def _day_text(day: date) -> str:
    return f"{day.day} {calendar.month_name[day.month]} {day.year}"


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


def _year_pair(match: re.Match[str], p: str, cell: str) -> tuple[int, bool]:
    """The (first) year named by groups `p...`, and whether a pair such as 2027/28 was written.

    The second year of a pair must follow the first; `FY` needs a pair (`FY 2027` does not
    say which April it starts in).
    """
    written = match.group(0)
    first = _full_year(match[f"{p}a"], written, cell)
    second = match[f"{p}b"]
    if second is None:
        if match.groupdict().get(f"{p}fy"):
            raise _Unreadable(written)
        return first, False
    follows = int(second) == (first + 1 if len(second) == 4 else (first + 1) % 100)
    if not follows:
        raise TimescaleError(
            cell, f"impossible date {written}: {second} is not the year after {first}"
        )
    return first, True


def _period_span(match: re.Match[str], cell: str, quarters: Quarters) -> _Span:
    """The days a quarter, half, term, season or financial or school year covers."""
    written = match.group(0)
    note: str | None = None
    reading: Quarters | None = None
    if match.group("quarter") or match.group("half"):
        p, size = ("q_", 3) if match.group("quarter") else ("h_", 6)
        number = match[f"{p}n"] or match.groupdict().get(f"{p}n2") or ""
        n = int(number) if number else _ORDINALS[match[f"{p}ord"].lower()]
        year, pair = _year_pair(match, p, cell)
        financial = pair or quarters is Quarters.FINANCIAL
        if not pair:
            reading = quarters
        offset = 3 if financial else 0
        first, last = _months(year, offset + size * (n - 1) + 1, offset + size * n)
    elif match.group("term"):
        name = match["t_name"].lower()
        year, pair = _year_pair(match, "t_", cell)
        if pair and name != "autumn":
            year += 1  # spring and summer terms are in the second year of a school year
        first, last = _months(year, *_TERM_MONTHS[name])
        note = f"read {written!r} as due {_day_text(last)}: term dates vary; write a date"
    elif match.group("season"):
        name = match["s_name"].lower()
        year, pair = _year_pair(match, "s_", cell)
        if pair and name != "winter":
            raise _Unreadable(written)  # "Spring 2027/28": which spring?
        first, last = _months(year, *_SEASON_ENDS[name])
        note = f"read {written!r} as due {_day_text(last)}, the end of the season; write a date"
    else:
        year, pair = _year_pair(match, "f_", cell)
        if not pair:
            raise _Unreadable(written)  # "FY 2027": starting or ending in 2027?
        if match["f_word"].lower().startswith(("fy", "financial")):
            first, last = _months(year, 4, 15)
        else:
            first, last = _months(year, 9, 19)
            note = f"read {written!r} as due {_day_text(last)}, the end of the school year"
    return _Span(written, first, last, match.start(), match.end(), False, note, reading)


def _span(match: re.Match[str], cell: str, norm: str, quarters: Quarters) -> _Span:
    """The days a date expression in `cell` covers; TimescaleError for an impossible one.

    A qualifier just before a month or longer (`end of`, `beginning of`) narrows it to its
    last or first day; `early` and `mid` cannot be read and raise `_Unreadable`.
    """
    written = match.group(0)
    if match.group("iso"):
        year = _full_year(match["iso_y"], written, cell)
        day = _checked(year, int(match["iso_m"]), int(match["iso_d"]), written, cell)
        return _Span(written, day, day, match.start(), match.end(), exact=True)
    if match.group("numeric"):
        year = _full_year(match["num_y"], written, cell)
        day = _checked(year, int(match["num_m"]), int(match["num_d"]), written, cell)
        return _Span(written, day, day, match.start(), match.end(), exact=True)
    if match.group("day_month"):
        year = _full_year(match["dm_y"], written, cell)
        day = _checked(year, _MONTHS[match["dm_m"].lower()], int(match["dm_d"]), written, cell)
        return _Span(written, day, day, match.start(), match.end(), exact=True)
    if match.group("month_year"):
        year = _full_year(match["my_y"], written, cell)
        month = _MONTHS[match["my_m"].lower()]
        span = _Span(written, date(year, month, 1), _month_end(year, month), *match.span())
    elif match.group("year"):
        year = int(match["y"])
        span = _Span(written, date(year, 1, 1), date(year, 12, 31), *match.span())
    else:
        span = _period_span(match, cell, quarters)
    prefix = _PREFIX.search(norm, 0, span.begin)
    if prefix is None:
        return span
    words = norm[prefix.start() : span.end]
    if prefix.group("vague"):
        raise _Unreadable(words)
    first, last = (span.last, span.last) if prefix.group("end") else (span.first, span.first)
    return _Span(words, first, last, prefix.start(), span.end, False, span.note, span.quarters)


def _unread_qualifier(norm: str, spans: list[_Span], periods: list[tuple[int, int]]) -> str | None:
    """Words that qualify a year or a month but are not part of a date understood above.

    A qualifier counts when a number follows it (past "of", "the", other qualifiers), when a
    number it is not part of comes just before it ("2027 Q1"), or anywhere in a cell whose
    date is a bare year; a written day beside it is exact whatever the words around it.
    """
    taken = [(s.begin, s.end) for s in spans] + periods
    exact_begins = {s.begin for s in spans if s.exact}
    bare_year = next((s for s in spans if s.text.isdigit()), None)
    for match in _QUALIFIER.finditer(norm):
        if any(b <= match.start() < e for b, e in taken):
            continue
        gap = _QUALIFIER_GAP.match(norm, match.end())
        after = gap.end() if gap else match.end()
        if after < len(norm) and norm[after].isdigit() and after not in exact_begins:
            number = re.match(r"[0-9/-]*", norm[after:])
            return norm[match.start() : after + (number.end() if number else 0)].strip()
        before = re.search(r"([0-9][0-9/-]*)[\s-]*$", norm[: match.start()])
        if before is not None:
            inside = next((s for s in spans if s.begin <= before.start(1) < s.end), None)
            if inside is None or (not inside.exact and inside.text[:1].isdigit()):
                return norm[before.start(1) : match.end()]
        if bare_year is not None and _NAMED_PART.fullmatch(match.group(0)):
            # "Summer holidays 2027": a year beside a part of a year is not the whole year.
            # (Not so for "early", "mid", "late": "Early Help 2027" is a service's name.)
            return f"{match.group(0)} … {bare_year.text}"
    return None


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


def _unreadable(original: str, words: str) -> Timescale:
    return Timescale(
        text=original,
        warnings=(
            f"could not read {words!r}, so this has no date: write a date, a month, a "
            "quarter (Q3 2027, Q1 2027/28), a half (H1 2027) or a season (Spring 2027)",
        ),
    )


def parse(
    text: str, *, plan_start: date | None = None, quarters: Quarters = Quarters.CALENDAR
) -> Timescale:
    """The meaning of a timescale cell (DESIGN.md §4).

    `plan_start` is the start of a recurring timescale that names no start of its own;
    `quarters` is how the plan reads a quarter or half of a plain year (`Q1 2027`).
    Raises TimescaleError for a date that cannot exist, such as `31/09/18`.
    """
    original = text.strip()
    if not original:
        return Timescale(text="")
    norm = _normalise(original)
    try:
        spans = [_span(m, original, norm, quarters) for m in _DATE.finditer(norm)]
    except _Unreadable as error:
        return _unreadable(original, error.words)
    periods = [m.span() for m in _RECURRENCE.finditer(norm)]
    unread = _unread_qualifier(norm, spans, periods)
    if unread is not None:
        return _unreadable(original, unread)
    recurrence, warnings = _recurrence(norm)
    warnings += [s.note for s in spans if s.note]
    reading = next((s.quarters for s in spans if s.quarters), None)
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
            pair = _YEAR_PAIR.search(norm)
            if ambiguous:
                warnings.append(
                    f"no date found: {ambiguous.group(0)!r} could be a day or a year; "
                    "write the year in full"
                )
            elif pair:
                warnings.append(
                    f"no date found: {pair.group(0)!r} could be a financial or a school year; "
                    f"write FY {pair.group(0)} or a date"
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
        quarters=reading,
    )


def _ends_line(match: re.Match[str], norm: str) -> bool:
    """Whether only dates, connectors and punctuation follow a bare year ("... by 2020")."""
    rest = _FILLER.sub(" ", _DATE.sub(" ", norm[match.end() :]))
    return re.search("[A-Za-z0-9]", rest) is None


def _first_date(norm: str) -> int | None:
    """Where the first date expression of a milestone line begins, if there is one.

    A bare year (or a quarter, season or financial year) counts only when nothing but dates
    and connectors follow it, so that a title such as "Wirral 2020 pledges reviewed by
    31/03/19" keeps its "2020".
    """
    for match in _DATE.finditer(norm):
        if match.group("numeric") or match.group("iso") or match.group("day_month"):
            return match.start()  # a written day is exact, whatever words come before it
        if not match.group("month_year") and not _ends_line(match, norm):
            continue
        qualifiers = _QUALIFIER_TAIL.search(norm, 0, match.start())
        return qualifiers.start() if qualifiers is not None else match.start()
    return None


def _clean_title(title: str) -> str:
    previous = None
    while previous != title:
        previous = title
        title = _TITLE_TAIL.sub("", title).rstrip()
    return title


def split_milestone(line: str) -> tuple[str, str]:
    """Split one line of a milestones cell into (title, timescale text).

    The timescale text runs from the first date (with the words that introduce or qualify
    it: "by", "from", "underway from", "to begin", "the end of", "mid", ...) to the end of
    the line. A line without a date takes as its timescale the period and ongoing words it
    ends with ("reviewed quarterly", "and ongoing"); a period word anywhere else is part of
    the title. Failing that, a line about ongoing work ("underway 2 year rolling programme")
    is ongoing: the whole line is both title and timescale, unless it names a period, when
    the timescale is its ongoing word alone. Dates are not checked here.
    """
    norm = _normalise(_BULLET.sub("", line, count=1))
    begin = _first_date(norm)
    if begin is None:
        trailing = _TRAILING_PERIOD.search(norm)
        if trailing is not None and _PERIOD_WORD.search(trailing.group(0)):
            timescale = trailing.group(0).strip(" .;,)")
            return _clean_title(norm[: trailing.start()]) or norm, timescale
        ongoing = _ONGOING.search(norm)
        if ongoing is None:
            return norm, ""
        return norm, norm if _PERIOD_WORD.search(norm) is None else ongoing.group(0)
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


def read_day(text: str) -> date:
    """One day as a person writes it, the same in every channel (the CLI's `--as-of`, a
    `/pulse away` in Slack, a revised date in an email reply or on the update page, a date
    in a plan file): day first (31/01/27, 31/1/2027, 14th Dec 2026), ISO (2027-01-31), or
    any fixed timescale a plan or a reply accepts, for its due date (`Jan 2027` is 31
    January 2027). Two-digit years are 20xx. Raises `TimescaleError`, with the reason, when
    it names no one day: a recurring or ongoing timescale, an impossible date, no date."""
    cleaned = " ".join(text.split())
    try:
        return date.fromisoformat(cleaned)  # the common case, without the full grammar
    except ValueError:
        pass
    timescale = parse(cleaned)
    if timescale.recurrence is not None:
        raise TimescaleError(text, "a recurring timescale, not one day")
    if timescale.ongoing:
        raise TimescaleError(text, "ongoing, not one day")
    if timescale.due is None:
        raise TimescaleError(text, timescale.warnings[0] if timescale.warnings else "no date")
    return timescale.due


def parse_day(text: str) -> date | None:
    """`read_day`, with None instead of the reason when `text` names no one day."""
    try:
        return read_day(text)
    except TimescaleError:
        return None
