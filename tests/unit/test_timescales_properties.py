"""Properties of timescale parsing that must hold for every date and every text."""

from __future__ import annotations

import calendar
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.errors import TimescaleError
from bot.domain.model import Quarters, Recurrence, Timescale
from bot.domain.timescales import due_on, parse, split_milestone

MONTH_NAMES = [
    "", "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
]  # fmt: skip
MONTH_ABBREVIATIONS = [
    "", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sept", "Oct", "Nov", "Dec",
]  # fmt: skip
DATES = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))

# Words a generated title must avoid: month names, period and ongoing words, connectors
# that introduce a timescale, words that qualify a date, and the "o" bullet.
RESERVED = {
    "january", "jan", "february", "feb", "march", "mar", "april", "apr", "may", "june", "jun",
    "july", "jul", "august", "aug", "september", "sept", "sep", "october", "oct", "november",
    "nov", "december", "dec", "monthly", "quarterly", "annual", "annually", "yearly",
    "ongoing", "underway", "rolling", "every", "each", "from", "start", "starting", "begin",
    "beginning", "commence", "commencing", "by", "end", "of", "the", "to", "due", "until",
    "before", "in", "on", "during", "o", "under", "way", "going", "quarter", "quarters",
    "half", "halves", "spring", "summer", "autumn", "winter", "term", "terms", "fy", "early",
    "mid", "late", "financial", "academic", "school", "year",
}  # fmt: skip

WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1,
                max_size=12).filter(lambda w: w.lower() not in RESERVED)  # fmt: skip
TITLES = st.lists(WORDS, min_size=1, max_size=8).map(" ".join)


def month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def formats(day: date) -> list[str]:
    return [
        day.strftime("%d/%m/%y"),
        f"{day.day}/{day.month}/{day.year}",
        day.isoformat(),
    ]


@given(DATES)
def test_day_formats_parse_to_the_day(day: date) -> None:
    """Any date written dd/mm/yy, d/m/yyyy or ISO parses back to that date."""
    for text in formats(day):
        assert parse(text) == Timescale(text=text, due=day)


@given(DATES, st.booleans())
def test_month_year_parses_to_month_end(day: date, abbreviated: bool) -> None:
    """Any 'Month YYYY' (full or abbreviated) is due on the last day of that month."""
    name = (MONTH_ABBREVIATIONS if abbreviated else MONTH_NAMES)[day.month]
    assert parse(f"{name} {day.year}").due == month_end(day)


@given(st.text())
def test_parse_raises_only_timescale_errors(text: str) -> None:
    """Arbitrary text either parses or raises TimescaleError, never anything else."""
    try:
        ts = parse(text)
    except TimescaleError:
        return
    assert ts.text == text.strip()
    assert all(isinstance(w, str) for w in ts.warnings)


@given(st.text(alphabet="0123456789/-.– toJanFebQuarterlyongoingfrom ", max_size=40))
def test_parse_raises_only_timescale_errors_on_date_like_text(text: str) -> None:
    """Text made of date pieces either parses or raises TimescaleError."""
    reason = ""
    try:
        parse(text)
    except TimescaleError as error:
        reason = error.reason
    assert reason == "" or reason.startswith("impossible date")


@given(TITLES, DATES, st.sampled_from(["%d/%m/%y", "day/month/year", "month year"]))
def test_split_returns_title_and_date(title: str, day: date, form: str) -> None:
    """A title followed by a date splits back into that title and that date."""
    if form == "month year":
        written = f"{MONTH_NAMES[day.month]} {day.year}"
    elif form == "day/month/year":
        written = f"{day.day}/{day.month}/{day.year}"
    else:
        written = day.strftime(form)
    assert split_milestone(f"- {title} {written}") == (title, written)


@given(TITLES, DATES, DATES)
def test_split_range_then_parse(title: str, first: date, second: date) -> None:
    """A title and a range split and parse to the earlier start and the later due date."""
    written = f"{first:%d/%m/%y} – {second:%d/%m/%y}"
    got_title, timescale = split_milestone(f"{title} {written}")
    assert (got_title, timescale) == (title, written)
    ts = parse(timescale)
    assert (ts.start, ts.due) == (min(first, second), max(first, second))
    assert bool(ts.warnings) == (second < first)


@given(st.sampled_from(list(Recurrence)), DATES, DATES)
def test_due_on_recurring_brackets_today(recurrence: Recurrence, start: date, today: date) -> None:
    """A recurring timescale that has started is due on or after today, in a period begun."""
    ts = Timescale(text=str(recurrence), start=start, recurrence=recurrence)
    due, period_start = due_on(ts, today)
    assert due is not None
    assert period_start is not None
    assert period_start <= due
    assert due >= today
    if start <= today:
        assert period_start <= today
    else:
        assert period_start <= start <= due


@given(st.sampled_from(list(Recurrence)), DATES)
def test_due_on_next_day_after_due_starts_a_new_period(recurrence: Recurrence, today: date) -> None:
    """The day after a period's due date is the first day of the next period."""
    ts = Timescale(text=str(recurrence), recurrence=recurrence)
    due, _ = due_on(ts, today)
    assert due is not None
    if due < date(2099, 12, 31):
        following = date.fromordinal(due.toordinal() + 1)
        _, next_start = due_on(ts, following)
        assert next_start == following


YEARS = st.integers(min_value=2000, max_value=2098)


@given(st.integers(min_value=1, max_value=4), YEARS, st.sampled_from(["/", "-"]), st.booleans())
def test_financial_year_quarters_end_with_their_third_month(
    n: int, year: int, sep: str, full: bool
) -> None:
    """Qn of a year pair ends with month 3n+3 of the financial year that starts in April."""
    second = f"{year + 1}" if full else f"{(year + 1) % 100:02d}"
    ts = parse(f"Q{n} {year}{sep}{second}", quarters=Quarters.CALENDAR)
    month = 3 * n + 3
    assert ts.due == month_end(date(year + (month - 1) // 12, (month - 1) % 12 + 1, 1))
    assert ts.quarters is None


@given(st.integers(min_value=1, max_value=4), YEARS, st.sampled_from(list(Quarters)))
def test_plain_year_quarters_follow_the_setting(n: int, year: int, quarters: Quarters) -> None:
    """Qn of a plain year is calendar or financial as the plan says, and says which."""
    ts = parse(f"Q{n} {year}", quarters=quarters)
    month = 3 * n + (3 if quarters is Quarters.FINANCIAL else 0)
    assert ts.due == month_end(date(year + (month - 1) // 12, (month - 1) % 12 + 1, 1))
    assert ts.quarters is quarters


@given(
    st.sampled_from(["early", "mid", "Early", "mid-", "Q5", "Q0", "H3", "FY"]),
    YEARS,
    st.sampled_from(["", "by ", "from ", "Quarterly from "]),
)
def test_unread_qualifiers_never_fall_back_to_the_year(word: str, year: int, lead: str) -> None:
    """A year qualified by words that are not understood gives no date at all."""
    sep = "" if word.endswith("-") else " "
    ts = parse(f"{lead}{word}{sep}{year}")
    assert (ts.due, ts.start, ts.recurrence) == (None, None, None)
    assert ts.warnings
    assert ts.warnings[0].startswith("could not read")


@given(
    TITLES,
    st.sampled_from(["annual", "Annual", "quarterly", "Monthly", "yearly", "every month"]),
    TITLES,
)
def test_a_period_word_inside_a_title_is_never_a_timescale(
    before: str, period: str, after: str
) -> None:
    """A dateless line with a period word followed by other words is not recurring."""
    title, timescale = split_milestone(f"{before} {period} {after}")
    assert title == f"{before} {period} {after}"
    assert parse(timescale).recurrence is None
