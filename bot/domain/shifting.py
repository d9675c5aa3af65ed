"""Moving a sample plan's dates by whole months (`pulse import --shift-dates`), so that a
first run shows milestones around today instead of years overdue. Pure: today is given."""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import replace
from datetime import date

from bot.domain.model import Timescale


def add_months(day: date, months: int) -> date:
    """`day` moved by whole months; the last day of a month stays the last day (30 Sep → 31
    Oct), and a day the target month lacks becomes its last (31 Jan + 1 → 28 or 29 Feb)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    at_end = day.day == calendar.monthrange(day.year, day.month)[1]
    return date(year, month + 1, last if at_end else min(day.day, last))


def months_between(earlier: date, later: date) -> int:
    """Whole calendar months from `earlier`'s month to `later`'s (negative when before)."""
    return (later.year - earlier.year) * 12 + (later.month - earlier.month)


def latest_rated_month(rated: Iterable[Timescale]) -> date | None:
    """The latest due (or start) date among the rated milestones' timescales: the month in
    which the plan was last reviewed. None when no rated milestone has a date."""
    days = [t.due or t.start for t in rated if (t.due or t.start) is not None]
    return max(d for d in days if d is not None) if days else None


def shift_timescale(timescale: Timescale, months: int) -> Timescale:
    """The same timescale with its start and due date moved by `months`."""
    if not months or (timescale.due is None and timescale.start is None):
        return timescale
    return replace(
        timescale,
        due=add_months(timescale.due, months) if timescale.due else None,
        start=add_months(timescale.start, months) if timescale.start else None,
    )
