"""Timescale parsing, milestone splitting and period due dates (DESIGN.md §4)."""

from __future__ import annotations

from datetime import date

import pytest

from bot.domain.errors import TimescaleError
from bot.domain.model import Quarters, Recurrence, Timescale
from bot.domain.timescales import due_on, parse, parse_day, read_day, split_milestone

PLAN_START = date(2018, 4, 1)

# --- parse: the rows of the DESIGN.md §4 table ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "due"),
    [
        ("31/05/18", date(2018, 5, 31)),
        ("30/4/18", date(2018, 4, 30)),
        ("1/6/18", date(2018, 6, 1)),
        ("31/05/2018", date(2018, 5, 31)),
        ("31-05-18", date(2018, 5, 31)),
        ("31.05.18", date(2018, 5, 31)),
        ("2018-05-31", date(2018, 5, 31)),
        ("1/2/19", date(2019, 2, 1)),
        ("31st July 2019", date(2019, 7, 31)),
    ],
)
def test_day_dates_are_day_first_and_due_that_day(text: str, due: date) -> None:
    """A written day is due that day, read day-first with two-digit years in the 2000s."""
    assert parse(text) == Timescale(text=text, due=due)


@pytest.mark.parametrize(
    ("text", "due"),
    [
        ("July 2019", date(2019, 7, 31)),
        ("Sept 2019", date(2019, 9, 30)),
        ("Sep 2019", date(2019, 9, 30)),
        ("Sept. 2019", date(2019, 9, 30)),
        ("Jan 2019", date(2019, 1, 31)),
        ("June 2019", date(2019, 6, 30)),
        ("February 2020", date(2020, 2, 29)),
        ("DECEMBER 2019", date(2019, 12, 31)),
        ("end of July 2019", date(2019, 7, 31)),
        ("by July 2019", date(2019, 7, 31)),
    ],
)
def test_month_forms_are_due_at_month_end(text: str, due: date) -> None:
    """A month and a four-digit year fall due on the last day of that month."""
    ts = parse(text)
    assert ts == Timescale(text=text, due=due)


@pytest.mark.parametrize(
    ("name", "month"),
    [
        ("January", 1), ("Jan", 1), ("February", 2), ("Feb", 2), ("March", 3), ("Mar", 3),
        ("April", 4), ("Apr", 4), ("May", 5), ("June", 6), ("Jun", 6), ("July", 7),
        ("Jul", 7), ("August", 8), ("Aug", 8), ("September", 9), ("Sept", 9), ("Sep", 9),
        ("October", 10), ("Oct", 10), ("November", 11), ("Nov", 11), ("December", 12),
        ("Dec", 12),
    ],
)  # fmt: skip
def test_every_month_name_and_abbreviation(name: str, month: int) -> None:
    """Every English month name and its usual abbreviation names its month."""
    ts = parse(f"{name} 2021")
    assert ts.due is not None
    assert (ts.due.year, ts.due.month) == (2021, month)


def test_month_with_two_digit_number_is_not_guessed() -> None:
    """'July 19' could be a day or a year, so it gives no date and says why."""
    ts = parse("July 19")
    assert ts.due is None
    assert len(ts.warnings) == 1
    assert ts.warnings[0].startswith("no date found")


def test_bare_year_is_due_at_year_end() -> None:
    """A bare year such as 2020 is due on 31 December of that year."""
    assert parse("2020") == Timescale(text="2020", due=date(2020, 12, 31))


# --- parse: quarters, halves, financial years, seasons, terms and other qualifiers ----------


@pytest.mark.parametrize(
    ("text", "first", "due"),
    [
        ("Q1 2027/28", date(2027, 4, 1), date(2027, 6, 30)),
        ("Q1 2027-28", date(2027, 4, 1), date(2027, 6, 30)),
        ("Q2 2027/2028", date(2027, 7, 1), date(2027, 9, 30)),
        ("Q3 FY 2027/28", date(2027, 10, 1), date(2027, 12, 31)),
        ("Q4 27/28", date(2028, 1, 1), date(2028, 3, 31)),
        ("H1 2027/28", date(2027, 4, 1), date(2027, 9, 30)),
        ("H2 2027-28", date(2027, 10, 1), date(2028, 3, 31)),
        ("FY 2027/28", date(2027, 4, 1), date(2028, 3, 31)),
        ("FY27/28", date(2027, 4, 1), date(2028, 3, 31)),
        ("financial year 2099/00", date(2099, 4, 1), date(2100, 3, 31)),
    ],
)
def test_a_year_pair_is_a_financial_year_from_april(text: str, first: date, due: date) -> None:
    """A quarter, half or FY of `2027/28` is of the financial year that starts in April 2027."""
    assert parse(text) == Timescale(text=text, due=due)
    assert parse(f"{text} – {text}").start == first


@pytest.mark.parametrize(
    ("text", "calendar_due", "financial_due"),
    [
        ("Q1 2027", date(2027, 3, 31), date(2027, 6, 30)),
        ("Q2 2027", date(2027, 6, 30), date(2027, 9, 30)),
        ("Q3 2027", date(2027, 9, 30), date(2027, 12, 31)),
        ("Q4 2027", date(2027, 12, 31), date(2028, 3, 31)),
        ("quarter 3 2027", date(2027, 9, 30), date(2027, 12, 31)),
        ("third quarter of 2027", date(2027, 9, 30), date(2027, 12, 31)),
        ("H1 2027", date(2027, 6, 30), date(2027, 9, 30)),
        ("second half of 2027", date(2027, 12, 31), date(2028, 3, 31)),
    ],
)
def test_a_quarter_of_a_plain_year_is_read_by_the_plan_setting(
    text: str, calendar_due: date, financial_due: date
) -> None:
    """`Q1 2027` is January–March unless the plan reads quarters as financial (April–June)."""
    assert parse(text) == Timescale(text=text, due=calendar_due, quarters=Quarters.CALENDAR)
    assert parse(text, quarters=Quarters.FINANCIAL) == Timescale(
        text=text, due=financial_due, quarters=Quarters.FINANCIAL
    )


def test_a_financial_year_quarter_ignores_the_plan_setting() -> None:
    """`Q1 2027/28` names its financial year, so the plan's setting does not apply."""
    for quarters in Quarters:
        assert parse("Q1 2027/28", quarters=quarters).due == date(2027, 6, 30)
        assert parse("Q1 2027/28", quarters=quarters).quarters is None


@pytest.mark.parametrize(
    ("text", "due"),
    [
        ("Spring 2027", date(2027, 5, 31)),
        ("Summer 2027", date(2027, 8, 31)),
        ("autumn 2027", date(2027, 11, 30)),
        ("Winter 2027", date(2028, 2, 29)),
        ("Winter 2027/28", date(2028, 2, 29)),
        ("Winter 2028", date(2029, 2, 28)),
        ("Autumn term 2027", date(2027, 12, 31)),
        ("Spring term 2028", date(2028, 3, 31)),
        ("Summer term 2028", date(2028, 7, 31)),
        ("Autumn term 2027/28", date(2027, 12, 31)),
        ("Spring term 2027/28", date(2028, 3, 31)),
        ("Summer term 2027-28", date(2028, 7, 31)),
        ("academic year 2027/28", date(2028, 7, 31)),
    ],
)
def test_seasons_and_terms_are_read_with_a_warning(text: str, due: date) -> None:
    """A season or a school term is due at its conventional end, with a warning saying so."""
    ts = parse(text)
    assert ts.due == due
    assert len(ts.warnings) == 1
    assert text in ts.warnings[0]
    assert f"{due.day} {due:%B %Y}" in ts.warnings[0]


@pytest.mark.parametrize(
    ("text", "due"),
    [
        ("end of March 2027", date(2027, 3, 31)),
        ("by the end of March 2027", date(2027, 3, 31)),
        ("end of 2027", date(2027, 12, 31)),
        ("late 2027", date(2027, 12, 31)),
        ("late Summer 2027", date(2027, 8, 31)),
        ("end of Q1 2027/28", date(2027, 6, 30)),
        ("beginning of April 2027", date(2027, 4, 1)),
        ("start of 2028", date(2028, 1, 1)),
    ],
)
def test_end_of_and_beginning_of_narrow_a_period_to_a_day(text: str, due: date) -> None:
    """`end of`/`late` mean a period's last day; `beginning of`/`start of` its first day."""
    assert parse(text).due == due


def test_beginning_of_after_a_start_word_is_a_start() -> None:
    """'Commence beginning of Jan 2019' starts on 1 January 2019."""
    assert parse("Commence beginning of Jan 2019") == Timescale(
        text="Commence beginning of Jan 2019", start=date(2019, 1, 1)
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("early 2027", "early 2027"),
        ("mid 2027", "mid 2027"),
        ("mid-March 2027", "mid-March 2027"),
        ("Early March 2027", "Early March 2027"),
        ("Q5 2027", "Q5 2027"),
        ("FY 2027", "FY 2027"),
        ("2027 Q1", "2027 Q1"),
        ("2027/28 Q1", "2027/28 Q1"),
        ("Spring 2027/28", "Spring 2027/28"),
        ("Spring 27", "Spring 27"),
        ("Q1-Q2 2027", "Q1-Q2 2027"),
        ("Summer holidays 2027", "Summer … 2027"),
        ("end of the school year 2027", "school year 2027"),
        ("Quarterly from mid 2027", "mid 2027"),
        ("Q3 2027 – mid 2028", "mid 2028"),
    ],
)
def test_words_not_understood_give_no_date_not_the_year(text: str, words: str) -> None:
    """A qualified date that is not understood is no date, with a warning naming the words."""
    ts = parse(text)
    assert (ts.due, ts.start, ts.recurrence) == (None, None, None)
    assert len(ts.warnings) == 1
    assert f"could not read {words!r}" in ts.warnings[0]


@pytest.mark.parametrize(
    ("text", "due"),
    [
        ("October 2019 to review first year", date(2019, 10, 31)),
        ("Mid-term review 31/05/18", date(2018, 5, 31)),
        ("Summer scheme 31/08/19", date(2019, 8, 31)),
        ("end of 31/03/2027", date(2027, 3, 31)),
        ("Report at the end of each quarter from July 2019", None),
        ("Early Help offer agreed 2020", date(2020, 12, 31)),
        ("Midlands launch July 2019", date(2019, 7, 31)),
    ],
)
def test_other_words_around_a_full_date_are_tolerated(text: str, due: date | None) -> None:
    """Qualifier words that do not qualify the date (or sit by a written day) change nothing."""
    ts = parse(text)
    assert ts.due == due
    assert not ts.warnings


def test_each_quarter_is_a_period_not_a_qualifier() -> None:
    """'each quarter 2019' recurs quarterly from 2019."""
    ts = parse("each quarter 2019")
    assert (ts.start, ts.recurrence) == (date(2019, 1, 1), Recurrence.QUARTERLY)


def test_a_year_pair_alone_is_not_guessed() -> None:
    """'2027/28' could be a financial or a school year, so it gives no date and says why."""
    ts = parse("2027/28")
    assert ts.due is None
    assert ts.warnings == (
        "no date found: '2027/28' could be a financial or a school year; write FY 2027/28 "
        "or a date",
    )


@pytest.mark.parametrize("text", ["Q1 2027/29", "FY 2027/26", "Winter 2027/29"])
def test_a_year_pair_that_does_not_follow_on_is_impossible(text: str) -> None:
    """A year pair whose second year is not the year after the first is an import error."""
    with pytest.raises(TimescaleError, match="is not the year after"):
        parse(text)


def test_quarters_give_ranges_and_starts() -> None:
    """Quarters work as range ends and as the start of a recurring timescale."""
    assert parse("Q1 2027 – Q2 2027").start == date(2027, 1, 1)
    assert parse("Q1 2027 – Q2 2027").due == date(2027, 6, 30)
    ts = parse("Quarterly from Q3 2027/28")
    assert (ts.start, ts.recurrence) == (date(2027, 10, 1), Recurrence.QUARTERLY)


@pytest.mark.parametrize(
    ("text", "recurrence"),
    [
        ("Quarterly", Recurrence.QUARTERLY),
        ("Monthly", Recurrence.MONTHLY),
        ("Annual", Recurrence.ANNUAL),
        ("Annually", Recurrence.ANNUAL),
        ("Yearly", Recurrence.ANNUAL),
        ("Review quarterly", Recurrence.QUARTERLY),
        ("every month", Recurrence.MONTHLY),
    ],
)
def test_recurrence_words_start_with_the_plan(text: str, recurrence: Recurrence) -> None:
    """A period word makes the timescale recurring from the plan's start, with no fixed due."""
    assert parse(text, plan_start=PLAN_START) == Timescale(
        text=text, start=PLAN_START, recurrence=recurrence
    )


def test_recurrence_without_plan_start_has_no_start() -> None:
    """A recurring timescale with no plan start has no start either."""
    assert parse("Quarterly") == Timescale(text="Quarterly", recurrence=Recurrence.QUARTERLY)


@pytest.mark.parametrize("text", ["Quarterly from July 2019", "July 2019, Quarterly"])
def test_recurrence_with_a_month_starts_that_month(text: str) -> None:
    """A recurring timescale that names a month starts on its first day."""
    assert parse(text, plan_start=PLAN_START) == Timescale(
        text=text, start=date(2019, 7, 1), recurrence=Recurrence.QUARTERLY
    )


def test_recurrence_with_a_range_has_a_fixed_due() -> None:
    """A recurring timescale given as a range starts and ends with it."""
    ts = parse("Quarterly 01/04/19 – 31/03/20")
    assert (ts.start, ts.due) == (date(2019, 4, 1), date(2020, 3, 31))
    assert ts.recurrence is Recurrence.QUARTERLY


def test_ongoing_alone() -> None:
    """'Ongoing' is ongoing work with no due date, no recurrence and no warning."""
    assert parse("Ongoing") == Timescale(text="Ongoing", ongoing=True)


def test_ongoing_and_quarterly() -> None:
    """'Ongoing, quarterly' is ongoing and recurring each quarter."""
    ts = parse("Ongoing, quarterly", plan_start=PLAN_START)
    assert ts == Timescale(
        text="Ongoing, quarterly",
        start=PLAN_START,
        recurrence=Recurrence.QUARTERLY,
        ongoing=True,
    )


@pytest.mark.parametrize(
    ("text", "start", "ongoing"),
    [
        ("Commence Jan 2019", date(2019, 1, 1), False),
        ("from Jan 2019", date(2019, 1, 1), False),
        ("starting Jan 2019", date(2019, 1, 1), False),
        ("start 01/11/18", date(2018, 11, 1), False),
        ("to begin 01/11/18", date(2018, 11, 1), False),
        ("To begin 01/11/18", date(2018, 11, 1), False),
        ("underway from 31/03/18", date(2018, 3, 31), True),
        ("Ongoing from Jan 2019", date(2019, 1, 1), True),
    ],
)
def test_start_words_give_a_start_and_no_due(text: str, start: date, ongoing: bool) -> None:
    """A date after 'commence', 'from', 'start' or 'to begin' is a start, not a due date."""
    assert parse(text) == Timescale(text=text, start=start, ongoing=ongoing)


def test_due_and_then_ongoing() -> None:
    """'Feb 2019 and ongoing' is due at the end of February 2019 and ongoing after."""
    assert parse("Feb 2019 and ongoing") == Timescale(
        text="Feb 2019 and ongoing", due=date(2019, 2, 28), ongoing=True
    )


def test_trailing_words_are_ignored() -> None:
    """'October 2019 to review first year' is due at the end of October 2019."""
    ts = parse("October 2019 to review first year")
    assert (ts.due, ts.start, ts.warnings) == (date(2019, 10, 31), None, ())


@pytest.mark.parametrize(
    "text",
    ["31/05/18 – 30/09/18", "31/05/18 - 30/09/18", "31/05/18 to 30/09/18", "31/05/18-30/09/18",
     "31/05/18 — 30/09/18", "from 31/05/18 until 30/09/18"],
)  # fmt: skip
def test_range_gives_start_and_due(text: str) -> None:
    """A range starts on its first date and is due on its second."""
    assert parse(text) == Timescale(text=text, start=date(2018, 5, 31), due=date(2018, 9, 30))


def test_month_range_covers_whole_months() -> None:
    """A range of months starts on the first of the first and is due at the end of the last."""
    ts = parse("April 2019 to June 2019")
    assert (ts.start, ts.due) == (date(2019, 4, 1), date(2019, 6, 30))


def test_reversed_range_warns_and_takes_the_later_as_due() -> None:
    """A range that ends before it starts is read the other way round, with a warning."""
    ts = parse("30/09/18 – 31/05/18")
    assert (ts.start, ts.due) == (date(2018, 5, 31), date(2018, 9, 30))
    assert len(ts.warnings) == 1
    assert "ends before it starts" in ts.warnings[0]
    assert "30/09/18" in ts.warnings[0]


def test_two_dates_not_a_range_take_the_later_with_a_warning() -> None:
    """'April 2019 Feb 2019' is due at the end of April 2019 and says it chose."""
    ts = parse("April 2019 Feb 2019")
    assert ts.due == date(2019, 4, 30)
    assert ts.start is None
    assert len(ts.warnings) == 1
    assert "several dates" in ts.warnings[0]
    assert "took April 2019" in ts.warnings[0]


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_empty_text_means_nothing_and_no_warning(text: str) -> None:
    """An empty cell parses to an empty timescale; the caller reports 'no date'."""
    assert parse(text) == Timescale(text="")


@pytest.mark.parametrize("text", ["TBC", "To be agreed", "n/a"])
def test_text_without_a_date_warns(text: str) -> None:
    """Text with no date and no known word gives no due date and a 'no date found' warning."""
    assert parse(text) == Timescale(text=text, warnings=("no date found",))


@pytest.mark.parametrize(
    "text", ["2 year rolling programme", "underway 2 year rolling programme", "on-going"]
)
def test_rolling_or_underway_without_a_date_is_ongoing(text: str) -> None:
    """'rolling', 'underway' and 'on-going' without a date mean ongoing work, no warning."""
    assert parse(text) == Timescale(text=text, ongoing=True)


def test_text_is_kept_stripped() -> None:
    """The original text is kept, without surrounding whitespace."""
    assert parse("  31/05/18 \n").text == "31/05/18"


def test_non_breaking_spaces_are_spaces() -> None:
    """Cells pasted from documents, with non-breaking spaces, parse like plain ones."""
    ts = parse("31/05/18\xa0–\xa030/09/18")
    assert (ts.start, ts.due) == (date(2018, 5, 31), date(2018, 9, 30))


def test_six_monthly_is_reported_not_approximated() -> None:
    """'six monthly' is not a supported period, so it is not read as monthly."""
    ts = parse("six monthly review")
    assert ts.recurrence is None
    assert any("not a supported period" in w for w in ts.warnings)


# --- parse: impossible dates and leap years --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "written", "why"),
    [
        ("31/09/18", "31/09/18", "September has 30 days"),
        ("29/02/19", "29/02/19", "February 2019 has 28 days"),
        ("32/1/18", "32/1/18", "January has 31 days"),
        ("12/13/18", "12/13/18", "there is no month 13"),
        ("0/1/18", "0/1/18", "there is no day 0"),
        ("31/04/2019", "31/04/2019", "April has 30 days"),
        ("2018-02-30", "2018-02-30", "February 2018 has 28 days"),
        ("31 June 2019", "31 June 2019", "June has 30 days"),
        ("Changes implemented 31/09/18", "31/09/18", "September has 30 days"),
        ("July 1066", "July 1066", "out of range"),
    ],
)
def test_impossible_dates_raise_and_name_the_date(text: str, written: str, why: str) -> None:
    """A date that cannot exist raises TimescaleError naming the date and the reason."""
    with pytest.raises(TimescaleError) as caught:
        parse(text)
    assert caught.value.reason.startswith(f"impossible date {written}")
    assert why in caught.value.reason
    assert written in str(caught.value)
    assert caught.value.text == text


def test_impossible_date_inside_a_range_raises() -> None:
    """An impossible date is never guessed even when the other end of a range is fine."""
    with pytest.raises(TimescaleError, match="31/09/18"):
        parse("01/06/18 – 31/09/18")


@pytest.mark.parametrize(
    ("text", "due"),
    [
        ("29/02/20", date(2020, 2, 29)),
        ("29/02/2024", date(2024, 2, 29)),
        ("29/02/2000", date(2000, 2, 29)),
        ("Feb 2020", date(2020, 2, 29)),
        ("Feb 2019", date(2019, 2, 28)),
        ("Feb 2100", date(2100, 2, 28)),
    ],
)
def test_leap_years(text: str, due: date) -> None:
    """29 February exists in leap years only (2000 and 2020 yes; 2019 and 2100 no)."""
    assert parse(text).due == due


def test_29_february_2100_is_impossible() -> None:
    """2100 is not a leap year, so 29/02/2100 raises."""
    with pytest.raises(TimescaleError, match="29/02/2100"):
        parse("29/02/2100")


# --- parse: the timescale parts of the Wirral milestone lines --------------------------------


def test_wirral_portal_training_begins_then_updates() -> None:
    """'to begin 01/05/18, and update to WSCB 30/09/18' starts in May and is due in September."""
    ts = parse("to begin 01/05/18, and update to WSCB 30/09/18")
    assert (ts.start, ts.due) == (date(2018, 5, 1), date(2018, 9, 30))


def test_wirral_forum_underway_with_stocktake() -> None:
    """'underway 31/03/18 with stocktake by 30/09/18.' is ongoing and due at the stocktake."""
    ts = parse("underway 31/03/18 with stocktake by 30/09/18.")
    assert (ts.start, ts.due, ts.ongoing) == (date(2018, 3, 31), date(2018, 9, 30), True)


def test_wirral_launch_then_implementation_takes_the_later() -> None:
    """Two separate dates on one line: the later is due, with a warning naming both."""
    ts = parse("01/05/18, implementation in Wirral 30/09/18")
    assert ts.due == date(2018, 9, 30)
    assert ts.warnings == (
        "several dates found (01/05/18, 30/09/18); took 30/09/18 as the due date",
    )


def test_by_date_is_due() -> None:
    """'by 31/3/18' is due on 31 March 2018."""
    assert parse("by 31/3/18") == Timescale(text="by 31/3/18", due=date(2018, 3, 31))


# --- split_milestone ---------------------------------------------------------------------------

JOURNEY = (
    "Roll-out practice improvements systematically across services reflecting the child's journey"
)
REFLECTIVE = (
    "Reflective Supervision and Coaching for Social Work Managers agreed – 2 year rolling "
    "programme to be delivered by Research In Practice"
)
CORE_TRAINING = "Social work Core Management Training – underway 2 year rolling programme"


@pytest.mark.parametrize(
    ("line", "title", "timescale"),
    [
        (
            "- Agree improvement programme next phase 31/05/18",
            "Agree improvement programme next phase",
            "31/05/18",
        ),
        (f"- {JOURNEY} 31/05/18 – 30/09/18", JOURNEY, "31/05/18 – 30/09/18"),
        (
            "- Audit team coaching managers on reflective practice in audit – underway from "
            "31/03/18",
            "Audit team coaching managers on reflective practice in audit",
            "underway from 31/03/18",
        ),
        (
            "- Practice Improvements via practitioners' forum underway 31/03/18 with stocktake "
            "by 30/09/18.",
            "Practice Improvements via practitioners' forum",
            "underway 31/03/18 with stocktake by 30/09/18",
        ),
        (
            "- Targeted training on use of portal to begin 01/05/18, and update to WSCB 30/09/18",
            "Targeted training on use of portal",
            "to begin 01/05/18, and update to WSCB 30/09/18",
        ),
        (
            "- Discharge team completes 40 discharges by 31/07/18",
            "Discharge team completes 40 discharges",
            "by 31/07/18",
        ),
        (
            "- Changes to Regulation 24 approval process by 31/3/18",
            "Changes to Regulation 24 approval process",
            "by 31/3/18",
        ),
        ("- Quarterly review 30/06/18", "Quarterly review", "30/06/18"),
        ("- Changes implemented 31/09/18", "Changes implemented", "31/09/18"),
        (
            "- Strategy signed off by SLT and presented to SLT and Cabinet 31/12/18",
            "Strategy signed off by SLT and presented to SLT and Cabinet",
            "31/12/18",
        ),
        (
            "- Senior management structure agreed 31/5/18",
            "Senior management structure agreed",
            "31/5/18",
        ),
        (
            "- Core social care training programme agreed. To begin 01/11/18",
            "Core social care training programme agreed",
            "To begin 01/11/18",
        ),
        ("- Recruitment programme begins 1/6/18", "Recruitment programme begins", "1/6/18"),
        (f"- {REFLECTIVE} start 01/11/18", REFLECTIVE, "start 01/11/18"),
        (
            "- Launch of pan-Merseyside child exploitation services management tool 01/05/18, "
            "implementation in Wirral 30/09/18",
            "Launch of pan-Merseyside child exploitation services management tool",
            "01/05/18, implementation in Wirral 30/09/18",
        ),
        (
            "- Review targeted service provision to launch a Tier 3 Prevention Service 10/09/18",
            "Review targeted service provision to launch a Tier 3 Prevention Service",
            "10/09/18",
        ),
        ("Launch event July 2019", "Launch event", "July 2019"),
        ("Launch event by end of Sept 2019", "Launch event", "by end of Sept 2019"),
        ("Report to board July 2019, quarterly", "Report to board", "July 2019, quarterly"),
        ("Review quarterly from July 2019", "Review", "quarterly from July 2019"),
        ("Implement new model 2020", "Implement new model", "2020"),
        ("Deliver the plan 2019 – 2020", "Deliver the plan", "2019 – 2020"),
        (
            "Wirral 2020 pledges reviewed by 31/03/19",
            "Wirral 2020 pledges reviewed",
            "by 31/03/19",
        ),
        ("Go live in July 2019", "Go live", "in July 2019"),
    ],
)
def test_split_milestone_lines(line: str, title: str, timescale: str) -> None:
    """A milestone line splits into its title and the timescale from its first date on."""
    assert split_milestone(line) == (title, timescale)


@pytest.mark.parametrize("bullet", ["-", "•", "*", "·", "o", "‒", "–"])
def test_split_strips_leading_bullets(bullet: str) -> None:
    """Each kind of bullet and the space after it are dropped from the title."""
    assert split_milestone(f"{bullet} Panel Chair appointed by 30/01/18") == (
        "Panel Chair appointed",
        "by 30/01/18",
    )


def test_split_without_a_date_or_keyword_has_no_timescale() -> None:
    """A line with no date and no period or ongoing word has an empty timescale."""
    assert split_milestone("- frontline direct work") == ("frontline direct work", "")


def test_split_without_a_date_but_rolling_is_whole_line_twice() -> None:
    """A dateless line about rolling work is both title and timescale, so it parses ongoing."""
    title, timescale = split_milestone(f"- {CORE_TRAINING}")
    assert (title, timescale) == (CORE_TRAINING, CORE_TRAINING)
    assert parse(timescale).ongoing


@pytest.mark.parametrize(
    ("line", "title", "timescale"),
    [
        ("Performance reviewed quarterly", "Performance reviewed", "quarterly"),
        ("Report to board, reviewed quarterly thereafter", "Report to board, reviewed",
         "quarterly thereafter"),
        ("Quarterly", "Quarterly", "Quarterly"),
        ("Ongoing, quarterly", "Ongoing, quarterly", "Ongoing, quarterly"),
    ],
)  # fmt: skip
def test_split_without_a_date_takes_a_trailing_period(
    line: str, title: str, timescale: str
) -> None:
    """A dateless line ending in a period word is recurring: the period is its timescale."""
    assert split_milestone(line) == (title, timescale)
    assert parse(timescale).recurrence is Recurrence.QUARTERLY


@pytest.mark.parametrize(
    "line",
    [
        "pre-placement and annual checklists developed",
        "EHCP Annual Review Quality Assurance framework",
        "Quarterly performance review",
        "Monthly data pack agreed with partners",
    ],
)
def test_a_period_word_in_a_title_is_not_a_timescale(line: str) -> None:
    """A period word inside a milestone's text never makes it recurring."""
    assert split_milestone(line) == (line, "")


def test_a_period_word_in_an_ongoing_title_is_not_a_timescale() -> None:
    """'Annual checklists rollout underway' is ongoing work, not an annual milestone."""
    title, timescale = split_milestone("Annual checklists rollout underway")
    assert title == "Annual checklists rollout underway"
    assert parse(timescale) == Timescale(text="underway", ongoing=True)


def test_a_period_word_in_a_dated_title_is_not_a_timescale() -> None:
    """'EHCP Annual Review ... Q3 2027' is due at the end of September 2027, once."""
    title, timescale = split_milestone("EHCP Annual Review Quality Assurance framework Q3 2027")
    assert title == "EHCP Annual Review Quality Assurance framework"
    assert parse(timescale) == Timescale(
        text="Q3 2027", due=date(2027, 9, 30), quarters=Quarters.CALENDAR
    )


@pytest.mark.parametrize(
    ("line", "title", "timescale"),
    [
        ("Launch event mid 2027", "Launch event", "mid 2027"),
        ("Pilot in Spring 2027", "Pilot", "in Spring 2027"),
        ("Roll-out FY 2027", "Roll-out", "FY 2027"),
        ("Launch by the end of Q3 2027", "Launch", "by the end of Q3 2027"),
        ("Budget agreed H2 2027/28", "Budget agreed", "H2 2027/28"),
        ("Training in the Autumn term 2027", "Training", "in the Autumn term 2027"),
    ],
)
def test_split_keeps_the_words_that_qualify_a_date(line: str, title: str, timescale: str) -> None:
    """Words that qualify a line's date go with it, so the date is read whole or not at all."""
    assert split_milestone(line) == (title, timescale)


def test_split_does_not_make_a_title_period_recurring() -> None:
    """'Quarterly review 30/06/18' is a one-off milestone due 30 June 2018."""
    _, timescale = split_milestone("Quarterly review 30/06/18")
    ts = parse(timescale)
    assert (ts.due, ts.recurrence) == (date(2018, 6, 30), None)


def test_split_then_parse_the_whole_wirral_forum_line() -> None:
    """The forum line with a stocktake is due on the stocktake date once split and parsed."""
    _, timescale = split_milestone(
        "- Practice Improvements via practitioners' forum underway 31/03/18 with stocktake by "
        "30/09/18. Focus on:"
    )
    assert parse(timescale).due == date(2018, 9, 30)


def test_split_then_parse_the_impossible_wirral_date_raises() -> None:
    """Splitting keeps the impossible date; parsing it raises."""
    _, timescale = split_milestone("- Changes implemented 31/09/18")
    with pytest.raises(TimescaleError, match="31/09/18"):
        parse(timescale)


def test_split_of_empty_line() -> None:
    """An empty line gives an empty title and timescale."""
    assert split_milestone("  ") == ("", "")


# --- due_on -----------------------------------------------------------------------------------

QUARTERLY = Timescale(text="Quarterly", start=date(2018, 4, 1), recurrence=Recurrence.QUARTERLY)


def test_due_on_fixed_timescale_is_its_due() -> None:
    """A non-recurring timescale is due on its own date with no rating period."""
    ts = Timescale(text="31/05/18", due=date(2018, 5, 31))
    assert due_on(ts, date(2019, 1, 1)) == (date(2018, 5, 31), None)
    assert due_on(Timescale(text="Ongoing", ongoing=True), date(2019, 1, 1)) == (None, None)


@pytest.mark.parametrize(
    ("today", "due", "start"),
    [
        (date(2018, 4, 1), date(2018, 6, 30), date(2018, 4, 1)),  # first day of a quarter
        (date(2018, 6, 30), date(2018, 6, 30), date(2018, 4, 1)),  # last day of a quarter
        (date(2018, 7, 1), date(2018, 9, 30), date(2018, 7, 1)),  # next quarter
        (date(2018, 12, 31), date(2018, 12, 31), date(2018, 10, 1)),  # 31 December
        (date(2019, 1, 1), date(2019, 3, 31), date(2019, 1, 1)),  # new year
        (date(2018, 3, 31), date(2018, 6, 30), date(2018, 4, 1)),  # before the start
    ],
)
def test_due_on_quarterly_at_period_edges(today: date, due: date, start: date) -> None:
    """A quarterly timescale is due at the end of the calendar quarter holding the day."""
    assert due_on(QUARTERLY, today) == (due, start)


@pytest.mark.parametrize(
    ("today", "due", "start"),
    [
        (date(2020, 2, 1), date(2020, 2, 29), date(2020, 2, 1)),
        (date(2019, 2, 28), date(2019, 2, 28), date(2019, 2, 1)),
        (date(2018, 12, 31), date(2018, 12, 31), date(2018, 12, 1)),
    ],
)
def test_due_on_monthly(today: date, due: date, start: date) -> None:
    """A monthly timescale is due at the end of the calendar month holding the day."""
    ts = Timescale(text="Monthly", recurrence=Recurrence.MONTHLY)
    assert due_on(ts, today) == (due, start)


def test_due_on_annual() -> None:
    """An annual timescale is due on 31 December of the year holding the day."""
    ts = Timescale(text="Annual", recurrence=Recurrence.ANNUAL)
    assert due_on(ts, date(2019, 12, 31)) == (date(2019, 12, 31), date(2019, 1, 1))
    assert due_on(ts, date(2020, 1, 1)) == (date(2020, 12, 31), date(2020, 1, 1))


def test_due_on_before_a_mid_quarter_start_uses_the_first_period() -> None:
    """Before a recurring timescale starts, its first period (holding the start) applies."""
    ts = parse("Quarterly from August 2019")
    assert due_on(ts, date(2019, 1, 15)) == (date(2019, 9, 30), date(2019, 7, 1))


def test_due_on_recurring_without_start_uses_today() -> None:
    """A recurring timescale with no start is in the period holding the day."""
    ts = parse("Quarterly")
    assert due_on(ts, date(2019, 5, 20)) == (date(2019, 6, 30), date(2019, 4, 1))


def test_due_on_recurring_with_fixed_due() -> None:
    """A recurring timescale with a fixed due keeps it until it passes, then uses periods."""
    ts = parse("Quarterly 01/04/19 – 31/03/20")
    assert due_on(ts, date(2019, 5, 20)) == (date(2020, 3, 31), date(2019, 4, 1))
    assert due_on(ts, date(2020, 3, 31)) == (date(2020, 3, 31), date(2020, 1, 1))
    assert due_on(ts, date(2020, 4, 1)) == (date(2020, 6, 30), date(2020, 4, 1))


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("31/01/27", date(2027, 1, 31)),
        ("31/01/70", date(2070, 1, 31)),
        ("31/1/2027", date(2027, 1, 31)),
        ("2027-01-31", date(2027, 1, 31)),
        ("14th Dec 2026", date(2026, 12, 14)),
        ("Jan 2027", date(2027, 1, 31)),
        ("2027", date(2027, 12, 31)),
        ("Quarterly", None),
        ("Ongoing", None),
        ("31/09/18", None),
        ("next week", None),
    ],
)
def test_one_day_is_read_alike_in_every_channel(text: str, day: date | None) -> None:
    """`parse_day` reads a day as the plan files and email replies read a date: day first,
    ISO, or a month for its last day; what names no one day is None, never a guess."""
    assert parse_day(text) == day


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Quarterly", "a recurring timescale, not one day"),
        ("by 2027 and ongoing", "ongoing, not one day"),
        ("31/09/18", "impossible date 31/09/18: September has 30 days"),
        ("next week", "no date found"),
    ],
)
def test_what_names_no_one_day_is_refused_with_its_reason(text: str, reason: str) -> None:
    """`read_day` says why a text names no one day, for the CLI's one-line error."""
    with pytest.raises(TimescaleError) as refused:
        read_day(text)
    assert refused.value.reason == reason
