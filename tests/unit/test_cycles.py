"""Prompt cycles (DESIGN.md §7; RELIABILITY.md scenarios 53 and 54): schedules, bank
holidays, clock changes, catch-up, reminders, and who is asked about what. Every clock is
explicit."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from bot.domain.cycles import (
    DEFAULT_DIGEST_SCHEDULE,
    DEFAULT_PROMPT_SCHEDULE,
    CyclePolicy,
    HolidayRegion,
    Occurrence,
    PlannedPrompt,
    Schedule,
    Weekday,
    WorkingCalendar,
    cycle_key,
    due_now,
    mailbox_groups,
    occurrences,
    plan_prompts,
    reminder_due_at,
)
from bot.domain.model import (
    Action,
    Milestone,
    Person,
    Plan,
    Recurrence,
    RiskPolicy,
    Timescale,
    Update,
)
from bot.domain.status import MilestoneStatus

LONDON = "Europe/London"
YEARS = range(2025, 2028)
ENGLAND = WorkingCalendar.for_region(HolidayRegion.ENGLAND_AND_WALES, YEARS)
SCOTLAND = WorkingCalendar.for_region(HolidayRegion.SCOTLAND, YEARS)
NORTHERN_IRELAND = WorkingCalendar.for_region(HolidayRegion.NORTHERN_IRELAND, YEARS)
# Every day a working day: the only way a Sunday schedule meets the clock change itself.
EVERY_DAY = WorkingCalendar(working_weekdays=frozenset(Weekday))
WEEKLY = DEFAULT_PROMPT_SCHEDULE


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def london(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(LONDON))


def due(
    now: datetime,
    watermark: datetime | None,
    *,
    schedule: Schedule = WEEKLY,
    calendar: WorkingCalendar = ENGLAND,
    timezone: str = LONDON,
) -> Occurrence | None:
    return due_now(schedule, timezone=timezone, calendar=calendar, watermark=watermark, now=now)


def between(
    after: datetime | None,
    until: datetime,
    *,
    schedule: Schedule = WEEKLY,
    calendar: WorkingCalendar = ENGLAND,
    timezone: str = LONDON,
) -> list[Occurrence]:
    return occurrences(schedule, timezone=timezone, calendar=calendar, after=after, until=until)


# --- the weekly prompt ------------------------------------------------------------------------


def test_weekly_monday_0900_london_is_0900_utc_in_winter() -> None:
    """Monday 09:00 in London is 09:00 UTC while the clocks are on GMT."""
    found = due(utc(2026, 1, 12, 9), utc(2026, 1, 5, 9))
    assert found == Occurrence("2026-W03", date(2026, 1, 12), utc(2026, 1, 12, 9))


def test_weekly_monday_0900_london_is_0800_utc_in_summer() -> None:
    """Monday 09:00 in London is 08:00 UTC while the clocks are on BST."""
    found = due(utc(2026, 6, 8, 8), utc(2026, 6, 1, 8))
    assert found == Occurrence("2026-W24", date(2026, 6, 8), utc(2026, 6, 8, 8))


def test_occurrence_at_is_utc() -> None:
    """An occurrence's `at` is given in UTC whatever the plan's timezone."""
    found = due(utc(2026, 6, 8, 8), None)
    assert found is not None
    assert found.at.tzinfo is UTC


def test_nothing_due_before_the_scheduled_time() -> None:
    """At 08:59 on a Monday the week's prompt is not yet due."""
    assert due(london(2026, 1, 12, 8, 59), utc(2026, 1, 5, 9)) is None


def test_prompt_due_from_the_scheduled_time_all_day() -> None:
    """A tick any time after 09:00 on the Monday finds that Monday's prompt."""
    found = due(london(2026, 1, 12, 17, 30), utc(2026, 1, 5, 9))
    assert found is not None
    assert found.scheduled == date(2026, 1, 12)


@pytest.mark.parametrize("now", [london(2026, 1, 17, 10), london(2026, 1, 18, 23, 59)])
def test_weekend_tick_gives_no_prompt(now: datetime) -> None:
    """A tick on a Saturday or Sunday sends nothing, even with a prompt outstanding."""
    assert due(now, utc(2026, 1, 5, 9)) is None


def test_missed_prompt_found_by_the_next_working_day_tick() -> None:
    """After a weekend with nothing sent, Monday's tick sends Monday's prompt."""
    found = due(london(2026, 1, 19, 9), utc(2026, 1, 5, 9))
    assert found is not None
    assert found.scheduled == date(2026, 1, 19)


def test_weekend_tick_for_a_sunday_evening_in_utc_that_is_monday_in_plan_time() -> None:
    """Whether a tick is on a working day is judged in the plan's timezone, not UTC."""
    # 23:30 UTC on Sunday 7 June is 00:30 BST on Monday 8 June: a working day, but before
    # Monday's 09:00, so the previous Monday's outstanding prompt is the one due.
    found = due(utc(2026, 6, 7, 23, 30), utc(2026, 5, 25, 8))
    assert found is not None
    assert found.scheduled == date(2026, 6, 1)


def test_naive_datetimes_are_refused() -> None:
    """A naive moment is an error, never silently taken as some timezone."""
    with pytest.raises(ValueError, match="timezone-aware"):
        due(datetime(2026, 1, 12, 9), None)
    with pytest.raises(ValueError, match="timezone-aware"):
        between(datetime(2026, 1, 5, 9), utc(2026, 1, 12, 9))


def test_empty_range_has_no_occurrences() -> None:
    """A range whose start is not before its end holds no occurrence."""
    assert between(utc(2026, 1, 12, 9), utc(2026, 1, 12, 9)) == []
    assert between(utc(2026, 1, 13), utc(2026, 1, 12)) == []


def test_range_is_open_at_after_and_closed_at_until() -> None:
    """`after < at <= until`: an occurrence exactly at `after` is out, one at `until` is in."""
    found = between(utc(2026, 1, 5, 9), utc(2026, 1, 19, 9))
    assert [o.scheduled for o in found] == [date(2026, 1, 12), date(2026, 1, 19)]


def test_without_a_watermark_only_the_last_eight_weeks_count() -> None:
    """With no watermark, occurrences are listed from the 8 weeks before `until` only."""
    found = between(None, utc(2026, 3, 2, 9))
    assert [o.scheduled for o in found] == [
        date(2026, 1, 12) + timedelta(weeks=n) for n in range(8)
    ]


def test_first_tick_ever_sends_the_current_cycle() -> None:
    """A plan's first tick (no watermark) sends the latest prompt, not eight."""
    found = due(london(2026, 3, 4, 11), None)
    assert found is not None
    assert found.scheduled == date(2026, 3, 2)


def test_default_schedules() -> None:
    """By default prompts go on Mondays at 09:00, every week, and digests on Fridays at 12:00."""
    assert Schedule() == DEFAULT_PROMPT_SCHEDULE == Schedule(Weekday.MON, time(9, 0), 1)
    assert Schedule(Weekday.FRI, time(12, 0)) == DEFAULT_DIGEST_SCHEDULE


def test_schedule_rejects_bad_values() -> None:
    """A schedule needs a rotation of at least one week, a real weekday and a local time."""
    with pytest.raises(ValueError, match="every_weeks"):
        Schedule(every_weeks=0)
    with pytest.raises(ValueError, match="7"):
        Schedule(weekday=7)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone"):
        Schedule(at=time(9, 0, tzinfo=UTC))


def test_schedule_weekday_given_as_a_number_is_a_weekday() -> None:
    """A weekday given as its number is kept as the Weekday it names."""
    assert Schedule(weekday=4).weekday is Weekday.FRI  # type: ignore[arg-type]


def test_digest_schedule_fridays_at_noon() -> None:
    """The default digest falls due on Fridays at 12:00 London time."""
    found = due(utc(2026, 1, 16, 12), utc(2026, 1, 9, 12), schedule=DEFAULT_DIGEST_SCHEDULE)
    assert found == Occurrence("2026-W03", date(2026, 1, 16), utc(2026, 1, 16, 12))


# --- bank holidays ----------------------------------------------------------------------------


def test_easter_monday_prompt_moves_to_tuesday_same_local_time() -> None:
    """Easter Monday 6 April 2026 is a bank holiday: the prompt goes on Tuesday at 09:00 BST."""
    found = between(utc(2026, 4, 1), utc(2026, 4, 10))
    assert found == [Occurrence("2026-W15", date(2026, 4, 6), utc(2026, 4, 7, 8))]


def test_easter_monday_tick_sends_nothing_and_tuesday_tick_sends_the_prompt() -> None:
    """Ticks on Easter Monday send nothing; Tuesday's tick from 09:00 sends the week's prompt."""
    watermark = utc(2026, 3, 30, 8)
    assert due(london(2026, 4, 6, 10), watermark) is None
    assert due(london(2026, 4, 7, 8, 59), watermark) is None
    found = due(london(2026, 4, 7, 9), watermark)
    assert found is not None
    assert (found.cycle, found.at) == ("2026-W15", utc(2026, 4, 7, 8))


def test_good_friday_digest_moves_past_easter_monday() -> None:
    """A digest due on Good Friday 3 April 2026 moves past Easter Monday to Tuesday at 12:00."""
    found = between(utc(2026, 4, 1), utc(2026, 4, 9), schedule=DEFAULT_DIGEST_SCHEDULE)
    assert found == [Occurrence("2026-W14", date(2026, 4, 3), utc(2026, 4, 7, 11))]


def test_substitute_boxing_day_2026() -> None:
    """Monday 28 December 2026 is the substitute Boxing Day: the prompt goes on Tuesday 29th."""
    assert not ENGLAND.is_working_day(date(2026, 12, 28))
    found = between(utc(2026, 12, 27), utc(2027, 1, 2))
    assert found == [Occurrence("2026-W53", date(2026, 12, 28), utc(2026, 12, 29, 9))]


def test_scotland_2_january_is_a_holiday_but_not_in_england() -> None:
    """2 January 2026 is a bank holiday in Scotland and a working day in England and Wales."""
    assert not SCOTLAND.is_working_day(date(2026, 1, 2))
    assert ENGLAND.is_working_day(date(2026, 1, 2))
    digest = DEFAULT_DIGEST_SCHEDULE
    english = between(utc(2025, 12, 31), utc(2026, 1, 7), schedule=digest)
    scottish = between(utc(2025, 12, 31), utc(2026, 1, 7), schedule=digest, calendar=SCOTLAND)
    assert [o.at for o in english] == [utc(2026, 1, 2, 12)]
    assert [o.at for o in scottish] == [utc(2026, 1, 5, 12)]


def test_st_andrews_day_is_a_holiday_in_scotland_only() -> None:
    """St Andrew's Day, Monday 30 November 2026, moves a Scottish plan's prompt to Tuesday."""
    scottish = between(utc(2026, 11, 29), utc(2026, 12, 2), calendar=SCOTLAND)
    english = between(utc(2026, 11, 29), utc(2026, 12, 2))
    assert [o.at for o in scottish] == [utc(2026, 12, 1, 9)]
    assert [o.at for o in english] == [utc(2026, 11, 30, 9)]
    assert scottish[0].cycle == english[0].cycle == "2026-W49"


def test_easter_monday_is_not_a_scottish_bank_holiday() -> None:
    """Scotland has no Easter Monday bank holiday, so a Scottish plan is prompted that day."""
    assert SCOTLAND.is_working_day(date(2026, 4, 6))
    assert [o.at for o in between(utc(2026, 4, 1), utc(2026, 4, 10), calendar=SCOTLAND)] == [
        utc(2026, 4, 6, 8)
    ]


def test_northern_ireland_holidays() -> None:
    """Northern Ireland keeps St Patrick's Day and the Boyne holiday (Monday 13 July 2026)."""
    assert not NORTHERN_IRELAND.is_working_day(date(2026, 3, 17))
    assert not NORTHERN_IRELAND.is_working_day(date(2026, 7, 13))
    assert ENGLAND.is_working_day(date(2026, 3, 17))
    assert ENGLAND.is_working_day(date(2026, 7, 13))
    found = between(utc(2026, 7, 12), utc(2026, 7, 15), calendar=NORTHERN_IRELAND)
    assert [o.at for o in found] == [utc(2026, 7, 14, 8)]


def test_england_and_wales_2026_bank_holidays() -> None:
    """England and Wales have nine bank holidays in 2026, the substitute Boxing Day included."""
    calendar = WorkingCalendar.for_region(HolidayRegion.ENGLAND_AND_WALES, [2026])
    assert sorted(calendar.holidays) == [
        date(2026, 1, 1),
        date(2026, 4, 3),
        date(2026, 4, 6),
        date(2026, 5, 4),
        date(2026, 5, 25),
        date(2026, 8, 31),
        date(2026, 12, 25),
        date(2026, 12, 26),
        date(2026, 12, 28),
    ]


def test_region_none_has_no_holidays() -> None:
    """With no holiday region only weekends are days off."""
    calendar = WorkingCalendar.for_region(HolidayRegion.NONE, YEARS)
    assert calendar.holidays == frozenset()
    assert calendar.is_working_day(date(2026, 4, 6))
    assert not calendar.is_working_day(date(2026, 4, 4))


def test_working_days_arithmetic() -> None:
    """Working days skip weekends and holidays; the n-th working day after a day counts from it."""
    assert ENGLAND.next_working_day(date(2026, 1, 12)) == date(2026, 1, 12)
    assert ENGLAND.next_working_day(date(2026, 1, 17)) == date(2026, 1, 19)
    assert ENGLAND.next_working_day(date(2026, 4, 3)) == date(2026, 4, 7)
    assert ENGLAND.add_working_days(date(2026, 1, 15), 0) == date(2026, 1, 15)
    assert ENGLAND.add_working_days(date(2026, 1, 17), 0) == date(2026, 1, 19)
    assert ENGLAND.add_working_days(date(2026, 1, 15), 1) == date(2026, 1, 16)
    assert ENGLAND.add_working_days(date(2026, 1, 15), 2) == date(2026, 1, 19)
    assert ENGLAND.add_working_days(date(2026, 1, 17), 1) == date(2026, 1, 19)
    assert ENGLAND.add_working_days(date(2026, 4, 2), 1) == date(2026, 4, 7)
    with pytest.raises(ValueError, match="negative"):
        ENGLAND.add_working_days(date(2026, 1, 15), -1)


def test_calendar_needs_a_working_weekday() -> None:
    """A calendar with no working weekday is refused, since it has no next working day."""
    with pytest.raises(ValueError, match="working weekday"):
        WorkingCalendar(working_weekdays=frozenset())


# --- clock changes (scenario 54) --------------------------------------------------------------

SUNDAY_0130 = Schedule(Weekday.SUN, time(1, 30))


def test_spring_forward_missing_time_taken_once_shifted_by_the_gap() -> None:
    """01:30 on 29 March 2026 does not exist in London: taken once, as 02:30 BST (01:30 UTC)."""
    found = between(utc(2026, 3, 20), utc(2026, 4, 6), schedule=SUNDAY_0130, calendar=EVERY_DAY)
    assert found == [
        Occurrence("2026-W12", date(2026, 3, 22), utc(2026, 3, 22, 1, 30)),
        Occurrence("2026-W13", date(2026, 3, 29), utc(2026, 3, 29, 1, 30)),
        Occurrence("2026-W14", date(2026, 4, 5), utc(2026, 4, 5, 0, 30)),
    ]
    assert found[1].at.astimezone(ZoneInfo(LONDON)).time() == time(2, 30)


def test_fall_back_repeated_time_taken_once_at_the_first() -> None:
    """01:30 on 25 October 2026 happens twice in London: taken once, the first (00:30 UTC)."""
    found = between(utc(2026, 10, 16), utc(2026, 11, 2), schedule=SUNDAY_0130, calendar=EVERY_DAY)
    assert found == [
        Occurrence("2026-W42", date(2026, 10, 18), utc(2026, 10, 18, 0, 30)),
        Occurrence("2026-W43", date(2026, 10, 25), utc(2026, 10, 25, 0, 30)),
        Occurrence("2026-W44", date(2026, 11, 1), utc(2026, 11, 1, 1, 30)),
    ]


@pytest.mark.parametrize("night", [date(2026, 3, 29), date(2026, 10, 25)])
def test_tick_every_minute_across_a_clock_change_sends_exactly_one(night: date) -> None:
    """Ticking every minute through a clock-change night finds the 01:30 occurrence once."""
    watermark: datetime | None = datetime.combine(night, time(0), tzinfo=UTC) - timedelta(days=1)
    now = datetime.combine(night, time(0), tzinfo=UTC) - timedelta(hours=1)
    sent: list[Occurrence] = []
    while now < datetime.combine(night, time(4), tzinfo=UTC):
        found = due(now, watermark, schedule=SUNDAY_0130, calendar=EVERY_DAY)
        if found is not None:
            sent.append(found)
            watermark = found.at
        now += timedelta(minutes=1)
    assert [o.scheduled for o in sent] == [night]


def test_missing_time_on_a_working_day_cairo() -> None:
    """Cairo goes forward at midnight on Friday 24 April 2026: a Friday 00:30 is 01:30 EEST."""
    schedule = Schedule(Weekday.FRI, time(0, 30))
    found = between(utc(2026, 4, 20), utc(2026, 4, 25), schedule=schedule, timezone="Africa/Cairo")
    assert found == [Occurrence("2026-W17", date(2026, 4, 24), utc(2026, 4, 23, 22, 30))]


# --- catch-up (scenario 53) -------------------------------------------------------------------


def test_catch_up_after_a_week_down_sends_only_the_latest() -> None:
    """Down from 6 to 14 January 2026: one prompt, for the week of Monday the 12th."""
    watermark = utc(2026, 1, 5, 9)
    now = london(2026, 1, 14, 10)
    assert [o.scheduled for o in between(watermark, now)] == [date(2026, 1, 12)]
    found = due(now, watermark)
    assert found is not None
    assert (found.cycle, found.at) == ("2026-W03", utc(2026, 1, 12, 9))


def test_catch_up_after_three_weeks_down_sends_only_the_latest() -> None:
    """Three missed Mondays give one prompt, for the latest of them."""
    watermark = utc(2026, 1, 5, 9)
    now = london(2026, 1, 28, 15)
    assert len(between(watermark, now)) == 3
    found = due(now, watermark)
    assert found is not None
    assert found.scheduled == date(2026, 1, 26)


def test_catch_up_after_a_very_old_watermark() -> None:
    """A watermark a year old still gives exactly the latest occurrence."""
    found = due(london(2026, 1, 28, 15), utc(2025, 1, 6, 9))
    assert found is not None
    assert found.scheduled == date(2026, 1, 26)


def test_watermark_at_the_occurrence_means_nothing_due() -> None:
    """Once the watermark is at an occurrence, later ticks before the next one find nothing."""
    found = due(london(2026, 1, 14, 10), utc(2026, 1, 5, 9))
    assert found is not None
    assert due(london(2026, 1, 14, 10, 1), found.at) is None
    assert due(london(2026, 1, 16, 17), found.at) is None
    assert due(london(2026, 1, 12, 9), utc(2026, 1, 12, 9)) is None


def test_watermark_in_the_future_means_nothing_due() -> None:
    """A watermark after `now` (a clock set back) sends nothing."""
    assert due(london(2026, 1, 12, 10), utc(2026, 2, 2, 9)) is None


# --- fortnightly --------------------------------------------------------------------------------

FORTNIGHTLY = Schedule(Weekday.MON, time(9, 0), every_weeks=2)


def test_fortnightly_runs_in_even_weeks_since_3_january_2000() -> None:
    """A fortnightly schedule runs in the weeks an even number of weeks after 3 January 2000."""
    found = between(utc(2026, 1, 1), utc(2026, 2, 14), schedule=FORTNIGHTLY)
    assert [o.scheduled for o in found] == [date(2026, 1, 12), date(2026, 1, 26), date(2026, 2, 9)]
    assert FORTNIGHTLY.runs_in_week_of(date(2000, 1, 3))
    assert FORTNIGHTLY.runs_in_week_of(date(2000, 1, 9))
    assert not FORTNIGHTLY.runs_in_week_of(date(2000, 1, 10))


def test_fortnightly_off_week_sends_nothing() -> None:
    """In the off week of a fortnightly schedule nothing is due."""
    assert due(london(2026, 1, 19, 10), utc(2026, 1, 12, 9), schedule=FORTNIGHTLY) is None
    found = due(london(2026, 1, 26, 10), utc(2026, 1, 12, 9), schedule=FORTNIGHTLY)
    assert found is not None
    assert found.scheduled == date(2026, 1, 26)


def test_fortnightly_rotation_continues_across_the_year_end() -> None:
    """The rotation does not restart in January: it follows the week count, not the week number."""
    found = between(utc(2026, 12, 1), utc(2027, 1, 31), schedule=FORTNIGHTLY)
    days = [o.scheduled for o in found]
    assert all((b - a).days == 14 for a, b in pairwise(days))
    assert date(2026, 12, 28) in days


# --- cycle keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "key"),
    [
        (date(2026, 11, 23), "2026-W48"),
        (date(2026, 1, 5), "2026-W02"),
        (date(2027, 1, 1), "2026-W53"),
        (date(2024, 12, 30), "2025-W01"),
    ],
)
def test_cycle_key_is_the_iso_week(day: date, key: str) -> None:
    """A cycle is named by the ISO week (and ISO year) of its scheduled date."""
    assert cycle_key(day) == key


def test_cycle_is_the_week_of_the_scheduled_date_even_when_moved() -> None:
    """A Sunday schedule moved to Monday keeps the Sunday's week as its cycle."""
    sunday = Schedule(Weekday.SUN, time(18, 0))
    found = between(utc(2026, 1, 10), utc(2026, 1, 13), schedule=sunday)
    assert found == [Occurrence("2026-W02", date(2026, 1, 11), utc(2026, 1, 12, 18))]


# --- reminders --------------------------------------------------------------------------------


def remind(
    sent_at: datetime, remind_after: int = 2, calendar: WorkingCalendar = ENGLAND
) -> datetime:
    return reminder_due_at(
        sent_at, remind_after=remind_after, schedule=WEEKLY, timezone=LONDON, calendar=calendar
    )


def test_reminder_monday_to_wednesday() -> None:
    """A prompt sent on Monday at 09:00 is reminded on Wednesday at 09:00."""
    assert remind(london(2026, 1, 12, 9)) == utc(2026, 1, 14, 9)
    assert remind(london(2026, 6, 8, 9)) == utc(2026, 6, 10, 8)


def test_reminder_thursday_to_monday() -> None:
    """A prompt sent on Thursday is reminded on Monday, skipping the weekend."""
    assert remind(london(2026, 1, 15, 14)) == utc(2026, 1, 19, 9)


def test_reminder_skips_bank_holidays() -> None:
    """A prompt sent on Thursday 2 April 2026 skips Easter: reminded on Wednesday 8 April."""
    assert remind(london(2026, 4, 2, 9)) == utc(2026, 4, 8, 8)


def test_reminder_counts_from_the_local_date_sent() -> None:
    """The day a prompt was sent is its date in the plan's timezone, not in UTC."""
    # 23:30 UTC on Sunday 7 June 2026 is 00:30 BST on Monday 8 June.
    assert remind(utc(2026, 6, 7, 23, 30)) == utc(2026, 6, 10, 8)


def test_reminder_after_a_catch_up_prompt_sent_on_tuesday() -> None:
    """A prompt moved to Tuesday by Easter Monday is reminded on Thursday."""
    assert remind(london(2026, 4, 7, 9)) == utc(2026, 4, 9, 8)


def test_reminder_with_remind_after_zero() -> None:
    """remind_after=0: due on the (next working) day the prompt went out, never before it."""
    assert remind(london(2026, 1, 12, 9), 0) == utc(2026, 1, 12, 9)
    assert remind(london(2026, 1, 12, 8), 0) == utc(2026, 1, 12, 9)
    assert remind(london(2026, 1, 12, 14), 0) == utc(2026, 1, 12, 14)
    assert remind(london(2026, 1, 17, 10), 0) == utc(2026, 1, 19, 9)


def test_reminder_for_a_prompt_sent_at_the_weekend() -> None:
    """A prompt sent on a Saturday (by hand) counts its working days from that Saturday."""
    assert remind(london(2026, 1, 17, 10), 1) == utc(2026, 1, 19, 9)
    assert remind(london(2026, 1, 17, 10), 2) == utc(2026, 1, 20, 9)


def test_reminder_rejects_negative_delay() -> None:
    """A negative reminder delay is an error."""
    with pytest.raises(ValueError, match="remind_after"):
        remind(london(2026, 1, 12, 9), -1)


# --- a plan's settings --------------------------------------------------------------------------


def test_policy_defaults() -> None:
    """Empty settings: Monday 09:00 prompts, Friday 12:00 digests, 2 days, England and Wales."""
    policy = CyclePolicy.from_settings({})
    assert policy == CyclePolicy(
        DEFAULT_PROMPT_SCHEDULE, DEFAULT_DIGEST_SCHEDULE, 2, HolidayRegion.ENGLAND_AND_WALES
    )


def test_policy_from_full_settings() -> None:
    """Every cycle setting is read from a plan's settings, other settings left alone."""
    policy = CyclePolicy.from_settings(
        {
            "prompt": {"weekday": "tue", "at": "08:30", "every_weeks": 2},
            "digest": {"weekday": "Thursday", "at": "16:00"},
            "remind_after": 3,
            "holidays": "scotland",
            "thresholds": {"stale_after": 28},
        }
    )
    assert policy == CyclePolicy(
        prompt=Schedule(Weekday.TUE, time(8, 30), 2),
        digest=Schedule(Weekday.THU, time(16, 0)),
        remind_after=3,
        region=HolidayRegion.SCOTLAND,
    )


def test_policy_partial_schedule_keeps_its_own_defaults() -> None:
    """A schedule that names only its time keeps its default weekday and rotation."""
    policy = CyclePolicy.from_settings({"digest": {"at": "9:05"}, "holidays": "Northern Ireland"})
    assert policy.digest == Schedule(Weekday.FRI, time(9, 5))
    assert policy.region is HolidayRegion.NORTHERN_IRELAND


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"prompt": {"weekday": "funday"}}, "prompt.weekday"),
        ({"prompt": {"weekday": 0}}, "prompt.weekday"),
        ({"prompt": {"at": "25:00"}}, "prompt.at"),
        ({"prompt": {"at": "9am"}}, "prompt.at"),
        ({"digest": {"at": 720}}, "quotes"),
        ({"prompt": {"every_weeks": 0}}, "prompt.every_weeks"),
        ({"prompt": {"every_weeks": "2"}}, "prompt.every_weeks"),
        ({"prompt": {"day": "mon"}}, "unknown setting"),
        ({"prompt": "monday"}, "prompt"),
        ({"remind_after": -1}, "remind_after"),
        ({"remind_after": True}, "remind_after"),
        ({"holidays": "wales-only"}, "holidays"),
        ({"holidays": 1}, "holidays"),
    ],
)
def test_policy_rejects_bad_settings(raw: dict[str, object], message: str) -> None:
    """A bad cycle setting raises ValueError naming the setting."""
    with pytest.raises(ValueError, match=message):
        CyclePolicy.from_settings(raw)


def test_policy_calendar_is_the_regions() -> None:
    """A policy's calendar holds its region's bank holidays."""
    policy = CyclePolicy(region=HolidayRegion.SCOTLAND)
    assert policy.calendar([2026]) == WorkingCalendar.for_region(HolidayRegion.SCOTLAND, [2026])


# --- who is asked about what --------------------------------------------------------------------

TODAY = date(2026, 6, 15)
PLAN = Plan(key="wm", title="West Midlands")


def due_in(days: int | None) -> Timescale:
    """A fixed timescale due `days` from TODAY, or one with no date."""
    if days is None:
        return Timescale(text="Ongoing", ongoing=True)
    return Timescale(text="fixed", due=TODAY + timedelta(days=days))


def milestone(ref: str, days: int | None, *leads: str) -> Milestone:
    return Milestone(ref=ref, title=f"Milestone {ref}", timescale=due_in(days), action_ref="x",
                     leads=leads)  # fmt: skip


def action(ref: str, leads: tuple[str, ...], *milestones: Milestone) -> Action:
    return Action(ref=ref, title=f"Action {ref}", priority=1, leads=leads, milestones=milestones)


def answer(ref: str, rating: int, *, days_ago: int = 1, **extra: object) -> Update:
    given = datetime.combine(TODAY - timedelta(days=days_ago), time(12), tzinfo=UTC)
    return Update(milestone_ref=ref, given_at=given, rating=rating, **extra)  # type: ignore[arg-type]


def person(key: str, *, delegate: str | None = None, away_until: date | None = None) -> Person:
    return Person(key=key, name=key, delegate_key=delegate, away_until=away_until)


PEOPLE = [person("MC"), person("AW"), person("PB"), person("GR")]


def prompts(
    actions: list[Action],
    updates: dict[str, list[Update]] | None = None,
    people: list[Person] = PEOPLE,
    only: str | None = None,
) -> list[PlannedPrompt]:
    return plan_prompts(PLAN, actions, updates or {}, people, today=TODAY, only=only)


def refs(prompt: PlannedPrompt) -> list[str]:
    return [i.milestone_ref for i in prompt.items]


def test_items_ordered_overdue_at_risk_due_soon_then_the_rest() -> None:
    """Overdue (most days first), at risk, due soon, the rest; then earliest due, natural ref."""
    act = action(
        "2",
        ("MC",),
        milestone("2.6", 100),
        milestone("2.10", 5),
        milestone("2.1", -3),
        milestone("2.4", 5),
        milestone("2.3", 30),
        milestone("2.2", -10),
        milestone("2.5", 3),
    )
    recent = {ref: [answer(ref, 3)] for ref in ("2.10", "2.4", "2.5")}
    [prompt] = prompts([act], recent)
    assert prompt.person_key == "MC"
    assert refs(prompt) == ["2.2", "2.1", "2.3", "2.5", "2.4", "2.10", "2.6"]
    assert [i.status for i in prompt.items] == [
        MilestoneStatus.OVERDUE,
        MilestoneStatus.OVERDUE,
        MilestoneStatus.AT_RISK,
        MilestoneStatus.DUE_SOON,
        MilestoneStatus.DUE_SOON,
        MilestoneStatus.DUE_SOON,
        MilestoneStatus.ON_TRACK,
    ]
    assert [i.days_overdue for i in prompt.items[:2]] == [10, 3]
    assert prompt.items[2].reasons == ("never_rated",)
    assert prompt.on_behalf_of == ()


def test_item_carries_rating_note_and_due_date() -> None:
    """Each item shows the current rating, the last note and the due date that applies."""
    act = action("1.1", ("MC",), milestone("1.1a", 20))
    updates = {"1.1a": [answer("1.1a", 3, note="Panel booked", needs_support=True)]}
    [prompt] = prompts([act], updates)
    [item] = prompt.items
    assert item.milestone_ref == "1.1a"
    assert item.action_ref == "1.1"
    assert item.title == "Milestone 1.1a"
    assert item.due == TODAY + timedelta(days=20)
    assert item.status is MilestoneStatus.AT_RISK
    assert item.reasons == ("needs_support",)
    assert (item.rating, item.note) == (3, "Panel booked")
    assert item.on_behalf_of == "MC"


def test_achieved_and_no_date_milestones_are_not_asked_about() -> None:
    """Achieved and undated milestones are left out; a lead with nothing open is not asked."""
    acts = [
        action("1", ("MC",), milestone("1-1", 10), milestone("1-2", 10), milestone("1-3", None)),
        action("2", ("AW",), milestone("2-1", 30), milestone("2-2", None)),
    ]
    updates = {
        "1-2": [answer("1-2", 1)],
        "2-1": [answer("2-1", 1)],
        "2-2": [answer("2-2", 3, needs_support=True)],
    }
    result = prompts(acts, updates)
    assert [p.person_key for p in result] == ["MC"]
    assert refs(result[0]) == ["1-1"]


def test_recurring_milestone_is_asked_about_each_period() -> None:
    """A recurring milestone is open with the end of its period as its due date."""
    quarterly = Timescale(text="Quarterly", recurrence=Recurrence.QUARTERLY)
    act = action("3", ("GR",), Milestone("3", "Review", quarterly, "3"))
    [prompt] = prompts([act])
    assert prompt.items[0].due == date(2026, 6, 30)


def test_actions_with_no_lead_are_not_asked_about() -> None:
    """A milestone with no lead, on its own or its action, prompts nobody."""
    assert prompts([action("1", (), milestone("1", -5))]) == []


def test_unknown_lead_is_not_asked() -> None:
    """A lead key missing from the people directory prompts nobody (there is no one to send to)."""
    [prompt] = prompts([action("1", ("ZZ", "MC"), milestone("1", 10))])
    assert prompt.person_key == "MC"


def test_joint_leads_each_get_a_prompt() -> None:
    """Joint leads of an action each get their own prompt listing the shared milestones."""
    act = action("1.1", ("MC", "AW"), milestone("1.1-1", -2), milestone("1.1-2", 40))
    result = prompts([act])
    assert [p.person_key for p in result] == ["AW", "MC"]
    for prompt in result:
        assert refs(prompt) == ["1.1-1", "1.1-2"]
        assert {i.on_behalf_of for i in prompt.items} == {prompt.person_key}
        assert prompt.on_behalf_of == ()


def test_milestone_leads_override_the_actions() -> None:
    """A milestone that names its own leads is asked of them, not of the action's leads."""
    act = action("1", ("MC",), milestone("1-1", 10, "GR"), milestone("1-2", 10))
    result = {p.person_key: refs(p) for p in prompts([act])}
    assert result == {"GR": ["1-1"], "MC": ["1-2"]}


def test_away_lead_is_replaced_by_their_delegate() -> None:
    """An away lead is not asked; their delegate gets one list with their own and the lead's."""
    people = [person("AW", delegate="PB", away_until=TODAY), person("PB"), person("MC")]
    acts = [
        action("1", ("AW",), milestone("1", -1), milestone("1b", 90)),
        action("2", ("PB",), milestone("2", -4), milestone("2b", 80)),
        action("3", ("MC",), milestone("3", 90)),
    ]
    result = prompts(acts, people=people)
    assert [p.person_key for p in result] == ["MC", "PB"]
    delegate = result[1]
    assert refs(delegate) == ["2", "1", "2b", "1b"]
    assert [i.on_behalf_of for i in delegate.items] == ["PB", "AW", "PB", "AW"]
    assert delegate.on_behalf_of == ("AW",)
    assert result[0].on_behalf_of == ()


def test_lead_back_from_leave_is_asked_again() -> None:
    """A lead whose away_until has passed is asked directly, not through their delegate."""
    people = [person("AW", delegate="PB", away_until=TODAY - timedelta(days=1)), person("PB")]
    [prompt] = prompts([action("1", ("AW",), milestone("1", 10))], people=people)
    assert prompt.person_key == "AW"
    assert prompt.on_behalf_of == ()


@pytest.mark.parametrize(
    "people",
    [
        [person("AW", delegate="PB", away_until=TODAY), person("PB", away_until=TODAY)],
        [person("AW", delegate="XX", away_until=TODAY), person("PB")],
        [person("AW", away_until=TODAY), person("PB")],
    ],
    ids=["delegate-away", "delegate-unknown", "no-delegate"],
)
def test_away_lead_without_an_available_delegate_is_asked_of_nobody(
    people: list[Person],
) -> None:
    """An away lead whose delegate is away, unknown or missing has nobody asked for them."""
    assert prompts([action("1", ("AW",), milestone("1", 10))], people=people) == []


def test_delegates_delegate_never_stands_in() -> None:
    """Only the lead's own delegate stands in: a delegate's delegate is never asked."""
    people = [
        person("AW", delegate="PB", away_until=TODAY),
        person("PB", delegate="GR", away_until=TODAY),
        person("GR"),
    ]
    assert prompts([action("1", ("AW",), milestone("1", 10))], people=people) == []


def test_joint_lead_who_is_also_the_delegate_gets_each_milestone_once() -> None:
    """A joint lead standing in for the other sees a shared milestone once, as their own."""
    people = [person("AW", delegate="MC", away_until=TODAY), person("MC")]
    acts = [action("1", ("AW", "MC"), milestone("1", 10)), action("2", ("AW",), milestone("2", 20))]
    [prompt] = prompts(acts, people=people)
    assert prompt.person_key == "MC"
    assert refs(prompt) == ["1", "2"]
    assert [i.on_behalf_of for i in prompt.items] == ["MC", "AW"]
    assert prompt.on_behalf_of == ("AW",)


def test_delegate_for_several_away_leads() -> None:
    """A delegate for two away leads lists both in on_behalf_of."""
    people = [
        person("AW", delegate="PB", away_until=TODAY),
        person("MC", delegate="PB", away_until=TODAY + timedelta(days=7)),
        person("PB"),
    ]
    acts = [action("1", ("AW",), milestone("1", 10)), action("2", ("MC",), milestone("2", 5))]
    [prompt] = prompts(acts, people=people)
    assert prompt.person_key == "PB"
    assert prompt.on_behalf_of == ("AW", "MC")


def test_only_restricts_to_one_recipient() -> None:
    """`only` keeps the one recipient's prompt, delegated milestones included."""
    people = [person("AW", delegate="PB", away_until=TODAY), person("PB"), person("MC")]
    acts = [
        action("1", ("AW", "MC"), milestone("1", 10)),
        action("2", ("PB",), milestone("2", 20)),
    ]
    [prompt] = prompts(acts, people=people, only="PB")
    assert prompt.person_key == "PB"
    assert refs(prompt) == ["1", "2"]
    assert [p.person_key for p in prompts(acts, people=people, only="MC")] == ["MC"]
    assert prompts(acts, people=people, only="AW") == []
    assert prompts(acts, people=people, only="nobody") == []


def test_prompts_sorted_by_person_key() -> None:
    """Prompts come sorted by the recipient's key, whatever the order of the actions."""
    acts = [
        action("1", ("PB",), milestone("1", 10)),
        action("2", ("AW",), milestone("2", 10)),
        action("3", ("MC",), milestone("3", 10)),
    ]
    assert [p.person_key for p in prompts(acts)] == ["AW", "MC", "PB"]


def test_status_uses_the_plans_thresholds() -> None:
    """Statuses come from the plan's own thresholds."""
    plan = Plan(key="p", title="P", policy=RiskPolicy(due_soon_window=30, stale_horizon=0))
    act = action("1", ("MC",), milestone("1", 25))
    [prompt] = plan_prompts(plan, [act], {}, PEOPLE, today=TODAY)
    assert prompt.items[0].status is MilestoneStatus.DUE_SOON


# --- shared mailboxes ------------------------------------------------------------------------


def test_people_asked_by_email_at_one_mailbox_get_one_message_grouped_by_person() -> None:
    """Prompts of people asked by email at one address (any case) travel together, the first
    by key carrying them; a milestone two of them lead is listed once, under the first; a
    person asked in Slack at the same address, and everyone else, keeps their own message."""
    acts = [
        action("1", ("PB", "AW"), milestone("1", -2)),
        action("2", ("AW",), milestone("2", 20)),
        action("3", ("PB",), milestone("3", 30)),
        action("4", ("DC",), milestone("4", 40)),
        action("5", ("MC",), milestone("5", 50)),
    ]
    people = [person(k) for k in ("AW", "PB", "DC", "MC")]
    planned = prompts(acts, people=people)
    groups = mailbox_groups(
        planned,
        {"AW": "team@council.example", "PB": "Team@Council.example", "MC": "mc@x.example"},
    )
    assert [[p.person_key for p in g.prompts] for g in groups] == [["AW", "PB"], ["DC"], ["MC"]]
    shared = groups[0]
    assert shared.carrier.person_key == "AW"
    assert [(key, [i.milestone_ref for i in items]) for key, items in shared.sections()] == [
        ("AW", ["1", "2"]),
        ("PB", ["3"]),
    ]
    assert [r for p in shared.prompts for r in refs(p)] == ["1", "2", "1", "3"]


def test_a_person_whose_milestones_are_all_listed_under_another_has_no_section() -> None:
    """When everything a person of a shared mailbox is asked about is someone else's too, the
    combined message lists it once, under the first of them, with no empty heading."""
    acts = [action("1", ("AW", "PB"), milestone("1", -2))]
    planned = prompts(acts, people=[person("AW"), person("PB")])
    [group] = mailbox_groups(planned, {"AW": "team@x.example", "PB": "team@x.example"})
    assert [key for key, _ in group.sections()] == ["AW"]
