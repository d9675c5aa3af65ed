"""Moving a sample plan's dates by whole months (`--shift-dates`)."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.model import Timescale
from bot.domain.shifting import add_months, latest_rated_month, months_between, shift_timescale


def test_month_ends_stay_month_ends_and_short_months_clamp() -> None:
    """30 September + 1 month is 31 October; 31 January + 1 is the end of February."""
    assert add_months(date(2018, 9, 30), 1) == date(2018, 10, 31)
    assert add_months(date(2019, 1, 31), 1) == date(2019, 2, 28)
    assert add_months(date(2018, 5, 16), 104) == date(2027, 1, 16)
    assert add_months(date(2027, 1, 16), -104) == date(2018, 5, 16)


@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2090, 1, 1)), st.integers(-300, 300))
def test_shifting_moves_by_exactly_the_months_asked(day: date, months: int) -> None:
    """The shifted day is in the month `months` away, and months_between gives them back."""
    assert months_between(day, add_months(day, months)) == months


def test_latest_rated_month_is_the_latest_dated_rated_timescale() -> None:
    """The latest due (or start) date among rated milestones; None with no dates."""
    rated = [
        Timescale("31/05/18", due=date(2018, 5, 31)),
        Timescale("Ongoing", ongoing=True),
        Timescale("Commence Jan 2019", start=date(2019, 1, 1)),
    ]
    assert latest_rated_month(rated) == date(2019, 1, 1)
    assert latest_rated_month([Timescale("Ongoing", ongoing=True)]) is None


def test_a_timescale_keeps_its_text_and_recurrence() -> None:
    """Only the dates move; a timescale with none is returned as it was."""
    moved = shift_timescale(Timescale("31/05/18", due=date(2018, 5, 31)), 3)
    assert moved == Timescale("31/05/18", due=date(2018, 8, 31))
    ongoing = Timescale("Ongoing", ongoing=True)
    assert shift_timescale(ongoing, 3) is ongoing
