"""Properties of prompt cycles that must hold for every schedule, watermark and moment:
catch-up exactly once (RELIABILITY.md scenario 53) and one occurrence per scheduled date
across clock changes (scenario 54)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import example, given
from hypothesis import strategies as st

from bot.domain.cycles import (
    HolidayRegion,
    Schedule,
    Weekday,
    WorkingCalendar,
    due_now,
    occurrences,
)

YEARS = range(2018, 2038)
CALENDARS = {
    "england": WorkingCalendar.for_region(HolidayRegion.ENGLAND_AND_WALES, YEARS),
    "scotland": WorkingCalendar.for_region(HolidayRegion.SCOTLAND, YEARS),
    "northern-ireland": WorkingCalendar.for_region(HolidayRegion.NORTHERN_IRELAND, YEARS),
    "none": WorkingCalendar(),
    "every-day": WorkingCalendar(working_weekdays=frozenset(Weekday)),
}
# Zones with clock changes at various local times (London and New York at night, Santiago
# at midnight, Cairo at midnight on a Friday), and some without any.
TIMEZONES = st.sampled_from(
    ["Europe/London", "America/New_York", "America/Santiago", "Africa/Cairo", "Asia/Kolkata",
     "Australia/Sydney", "UTC"]
)  # fmt: skip

# Times near the clock changes are drawn often: they are where the bugs live.
TIMES = st.one_of(
    st.times(),
    st.builds(time, st.sampled_from([0, 1, 2, 3, 23]), st.integers(0, 59)),
)
SCHEDULES = st.builds(
    Schedule, st.sampled_from(list(Weekday)), TIMES, st.integers(min_value=1, max_value=4)
)
INSTANTS = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)


def local_date(moment: datetime, timezone: str) -> date:
    return moment.astimezone(ZoneInfo(timezone)).date()


@given(
    schedule=SCHEDULES,
    timezone=TIMEZONES,
    calendar=st.sampled_from(sorted(CALENDARS)),
    watermark=st.one_of(st.none(), INSTANTS),
    now=INSTANTS,
)
def test_due_now_gives_at_most_the_latest_occurrence_since_the_watermark(
    schedule: Schedule, timezone: str, calendar: str, watermark: datetime | None, now: datetime
) -> None:
    """due_now gives at most the latest occurrence in (watermark, now], on a working day."""
    days = CALENDARS[calendar]
    found = due_now(schedule, timezone=timezone, calendar=days, watermark=watermark, now=now)
    if not days.is_working_day(local_date(now, timezone)):
        assert found is None
        return
    listed = occurrences(schedule, timezone=timezone, calendar=days, after=watermark, until=now)
    assert found == (listed[-1] if listed else None)
    if found is not None:
        assert watermark is None or found.at > watermark
        assert found.at <= now
        assert days.is_working_day(local_date(found.at, timezone))


@given(
    schedule=SCHEDULES,
    timezone=TIMEZONES,
    calendar=st.sampled_from(sorted(CALENDARS)),
    start=INSTANTS,
    lengths=st.tuples(st.integers(0, 200 * 24), st.integers(0, 200 * 24)),
)
def test_occurrences_are_unique_increasing_and_split_cleanly(
    schedule: Schedule, timezone: str, calendar: str, start: datetime, lengths: tuple[int, int]
) -> None:
    """Occurrences are unique and increasing, and a range split in two lists each one once."""
    days = CALENDARS[calendar]
    middle = start + timedelta(hours=lengths[0])
    end = middle + timedelta(hours=lengths[1])

    def listed(after: datetime, until: datetime) -> list[datetime]:
        found = occurrences(schedule, timezone=timezone, calendar=days, after=after, until=until)
        assert len({o.cycle for o in found}) == len(found)
        assert all(a.at < b.at for a, b in pairwise(found))
        for o in found:
            assert after < o.at <= until
            assert o.at.tzinfo is UTC
            assert o.scheduled.weekday() == schedule.weekday
            assert schedule.runs_in_week_of(o.scheduled)
            assert days.is_working_day(local_date(o.at, timezone))
            assert local_date(o.at, timezone) >= o.scheduled
        return [o.at for o in found]

    assert listed(start, end) == listed(start, middle) + listed(middle, end)


@given(
    weekday=st.sampled_from(list(Weekday)),
    at=TIMES,
    every_weeks=st.integers(min_value=1, max_value=3),
    calendar=st.sampled_from(["england", "every-day"]),
    ticks=st.lists(
        st.datetimes(
            min_value=datetime(2026, 1, 1),
            max_value=datetime(2026, 12, 31, 23, 59),
            timezones=st.just(UTC),
        ),
        max_size=40,
    ),
)
@example(Weekday.SUN, time(1, 30), 1, "every-day", [datetime(2026, 3, 29, 1, 30, tzinfo=UTC)])
@example(Weekday.SUN, time(1, 30), 1, "every-day", [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)])
@example(Weekday.SUN, time(1, 0), 1, "every-day", [datetime(2026, 10, 25, 1, 0, tzinfo=UTC)])
def test_every_scheduled_date_in_2026_yields_exactly_one_occurrence_in_london(
    weekday: Weekday,
    at: time,
    every_weeks: int,
    calendar: str,
    ticks: list[datetime],
) -> None:
    """Ticking at random instants through 2026 in London finds each scheduled date once."""
    schedule = Schedule(weekday, at, every_weeks)
    days = CALENDARS[calendar]
    moments = [datetime(2025, 12, 1, tzinfo=UTC), *sorted(ticks), datetime(2027, 2, 1, tzinfo=UTC)]
    seen: Counter[date] = Counter()
    for after, until in pairwise(moments):
        for o in occurrences(
            schedule, timezone="Europe/London", calendar=days, after=after, until=until
        ):
            seen[o.scheduled] += 1

    in_2026 = [date(2026, 1, 1) + timedelta(days=n) for n in range(365)]
    expected = [d for d in in_2026 if d.weekday() == weekday and schedule.runs_in_week_of(d)]
    assert [d for d in sorted(seen) if d.year == 2026] == expected
    assert set(seen.values()) <= {1}
