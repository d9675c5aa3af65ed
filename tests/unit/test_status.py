"""The status of a milestone on a given day: every rule of DESIGN.md §6, with explicit dates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

import pytest

from bot.domain.model import Milestone, Plan, Recurrence, RiskPolicy, Timescale, Update
from bot.domain.status import MilestoneStatus, Reason, Status, milestone_status, status_in_plan

TODAY = date(2027, 5, 10)
LONDON = "Europe/London"


def day(offset: int) -> date:
    """The day `offset` days from TODAY (negative: in the past)."""
    return TODAY + timedelta(days=offset)


def due_in(days: int) -> Timescale:
    """A fixed timescale due `days` days from TODAY."""
    due = day(days)
    return Timescale(text=due.strftime("%d/%m/%y"), due=due)


def update(
    on: date,
    rating: int | None = None,
    *,
    at: time = time(12, 0),
    needs_support: bool = False,
    revised_due: date | None = None,
    note: str | None = None,
) -> Update:
    """An update given on `on` at `at` UTC (noon UTC is the same day in London all year)."""
    return Update(
        milestone_ref="1.1a",
        given_at=datetime.combine(on, at, tzinfo=UTC),
        rating=rating,
        note=note,
        revised_due=revised_due,
        needs_support=needs_support,
    )


def status_of(timescale: Timescale, updates: Sequence[Update], *, today: date = TODAY) -> Status:
    return milestone_status(timescale, updates, today=today, policy=RiskPolicy(), timezone=LONDON)


QUARTERLY = Timescale(text="Quarterly", recurrence=Recurrence.QUARTERLY)


# --- achieved ---------------------------------------------------------------------------------


def test_latest_rating_one_is_achieved() -> None:
    """A milestone whose latest rating is 1 is achieved."""
    s = status_of(due_in(30), [update(day(-10), 3), update(day(-2), 1)])
    assert s.status is MilestoneStatus.ACHIEVED
    assert s.reasons == ()
    assert s.rating == 1


def test_achieved_after_the_due_date_has_passed_is_not_overdue() -> None:
    """Overdue means "due date has passed and not achieved": a rating 1 wins over a past date."""
    s = status_of(due_in(-5), [update(day(-1), 1)])
    assert s.status is MilestoneStatus.ACHIEVED
    assert s.days_overdue == 0


def test_an_earlier_rating_one_does_not_make_it_achieved() -> None:
    """Only the latest rating counts: 1 followed by 3 is not achieved."""
    s = status_of(due_in(30), [update(day(-10), 1), update(day(-2), 3)])
    assert s.status is not MilestoneStatus.ACHIEVED
    assert s.rating == 3


def test_recurring_rating_one_this_quarter_is_achieved() -> None:
    """A recurring milestone rated 1 within the current quarter is achieved."""
    s = status_of(QUARTERLY, [update(date(2027, 4, 5), 1)], today=date(2027, 5, 10))
    assert s.status is MilestoneStatus.ACHIEVED


def test_recurring_rating_one_last_quarter_is_not_achieved_this_quarter() -> None:
    """A rating 1 given last quarter does not count for this quarter of a recurring milestone."""
    s = status_of(QUARTERLY, [update(date(2027, 3, 25), 1)], today=date(2027, 5, 10))
    assert s.status is not MilestoneStatus.ACHIEVED
    assert s.rating is None


# --- overdue ----------------------------------------------------------------------------------


def test_due_yesterday_is_overdue_by_one_day() -> None:
    """A milestone due yesterday and not achieved is overdue by 1 day."""
    s = status_of(due_in(-1), [update(day(-2), 3)])
    assert s.status is MilestoneStatus.OVERDUE
    assert s.days_overdue == 1
    assert s.due == day(-1)


def test_days_overdue_counts_calendar_days_since_the_due_date() -> None:
    """Days overdue is the number of calendar days from the due date to today."""
    s = status_of(Timescale(text="31/03/27", due=date(2027, 3, 31)), [update(day(-2), 4)])
    assert s.status is MilestoneStatus.OVERDUE
    assert s.days_overdue == (TODAY - date(2027, 3, 31)).days == 40


def test_overdue_without_any_update_is_still_overdue() -> None:
    """A past due date with no update at all is overdue (overdue outranks never_rated)."""
    s = status_of(due_in(-3), [])
    assert s.status is MilestoneStatus.OVERDUE
    assert s.days_overdue == 3
    assert s.reasons == ()


def test_due_today_is_due_soon_not_overdue() -> None:
    """A milestone due today is due soon, not overdue."""
    s = status_of(due_in(0), [update(day(-1), 3)])
    assert s.status is MilestoneStatus.DUE_SOON
    assert s.days_overdue == 0


# --- due soon / on track ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (1, MilestoneStatus.DUE_SOON),
        (14, MilestoneStatus.DUE_SOON),
        (15, MilestoneStatus.ON_TRACK),
        (200, MilestoneStatus.ON_TRACK),
    ],
)
def test_due_soon_window_is_fourteen_days_inclusive(days: int, expected: MilestoneStatus) -> None:
    """Due in up to 14 days is due soon; 15 days or more, rated recently, is on track."""
    s = status_of(due_in(days), [update(day(-1), 3)])
    assert s.status is expected
    assert s.reasons == ()


# --- at risk: not_started ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (10, (Reason.NOT_STARTED,)),
        (42, (Reason.NOT_STARTED,)),
        (43, ()),
    ],
)
def test_not_started_window_is_forty_two_days_inclusive(
    days: int, expected: tuple[Reason, ...]
) -> None:
    """A rating 4 makes the milestone at risk when it is due within 42 days, not at 43."""
    s = status_of(due_in(days), [update(day(-1), 4)])
    assert s.reasons == expected
    assert s.status is (MilestoneStatus.AT_RISK if expected else MilestoneStatus.ON_TRACK)


def test_rating_three_close_to_the_due_date_is_not_not_started() -> None:
    """Only a rating of 4 is "not started"."""
    s = status_of(due_in(20), [update(day(-1), 3)])
    assert Reason.NOT_STARTED not in s.reasons
    assert s.status is MilestoneStatus.ON_TRACK


# --- at risk: revised_later -------------------------------------------------------------------


def test_revised_date_later_than_due_is_revised_later() -> None:
    """A revised date later than the due date makes the milestone at risk (revised_later)."""
    s = status_of(due_in(100), [update(day(-1), 3, revised_due=day(130))])
    assert s.status is MilestoneStatus.AT_RISK
    assert s.reasons == (Reason.REVISED_LATER,)


def test_status_carries_the_latest_revised_date_even_when_overdue() -> None:
    """The latest revised date a lead gave stays the milestone's revised date after a later
    answer that names none, and is kept on an overdue milestone, where it is no reason."""
    s = status_of(
        due_in(-3),
        [
            update(day(-20), 3, revised_due=day(40)),
            update(day(-9), 3, revised_due=day(30)),
            update(day(-2), 3),
        ],
    )
    assert s.status is MilestoneStatus.OVERDUE
    assert s.revised_due == day(30)
    assert status_of(due_in(10), [update(day(-1), 3)]).revised_due is None


@pytest.mark.parametrize("revised", [70, 100])
def test_revised_date_not_later_than_due_is_not_a_risk(revised: int) -> None:
    """A revised date on or before the due date is not revised_later."""
    s = status_of(due_in(100), [update(day(-1), 3, revised_due=day(revised))])
    assert s.status is MilestoneStatus.ON_TRACK
    assert s.reasons == ()


# --- at risk: worsening -----------------------------------------------------------------------


@pytest.mark.parametrize(("before", "after"), [(3, 4), (2, 3), (1, 2)])
def test_a_worse_latest_rating_is_worsening(before: int, after: int) -> None:
    """The latest rating being worse (higher) than the one before is worsening."""
    s = status_of(due_in(50), [update(day(-5), before), update(day(-1), after)])
    assert s.status is MilestoneStatus.AT_RISK
    assert s.reasons == (Reason.WORSENING,)


@pytest.mark.parametrize(("before", "after"), [(4, 3), (3, 3), (3, 2)])
def test_an_improving_or_equal_rating_is_not_worsening(before: int, after: int) -> None:
    """4 then 3 (or an unchanged rating) is not worsening."""
    s = status_of(due_in(50), [update(day(-5), before), update(day(-1), after)])
    assert s.status is MilestoneStatus.ON_TRACK
    assert s.reasons == ()


def test_worsening_compares_ratings_across_a_note_only_update() -> None:
    """A note with no rating between two ratings does not hide a worsening."""
    updates = [update(day(-6), 3), update(day(-4), note="Chased"), update(day(-1), 4)]
    s = status_of(due_in(50), updates)
    assert s.reasons == (Reason.WORSENING,)


# --- at risk: needs_support -------------------------------------------------------------------


def test_latest_update_asking_for_support_is_needs_support() -> None:
    """The latest update asking for support makes the milestone at risk, whatever the date."""
    s = status_of(due_in(100), [update(day(-1), 3, needs_support=True)])
    assert s.status is MilestoneStatus.AT_RISK
    assert s.reasons == (Reason.NEEDS_SUPPORT,)
    assert s.needs_support


def test_an_earlier_ask_for_support_does_not_count() -> None:
    """Only the latest update's support flag counts."""
    updates = [update(day(-5), 3, needs_support=True), update(day(-1), 3)]
    s = status_of(due_in(100), updates)
    assert s.status is MilestoneStatus.ON_TRACK
    assert not s.needs_support


# --- at risk: stale / never_rated -------------------------------------------------------------


@pytest.mark.parametrize(
    ("since", "expected"),
    [(21, (Reason.STALE,)), (30, (Reason.STALE,)), (20, ())],
)
def test_stale_after_twenty_one_days_without_an_update(
    since: int, expected: tuple[Reason, ...]
) -> None:
    """No update for 21 days while due within 56 days is stale; 20 days is not."""
    s = status_of(due_in(30), [update(day(-since), 3)])
    assert s.reasons == expected
    assert s.status is (MilestoneStatus.AT_RISK if expected else MilestoneStatus.ON_TRACK)


@pytest.mark.parametrize(
    ("days", "expected"),
    [(56, (Reason.STALE,)), (57, ())],
)
def test_stale_only_while_due_within_eight_weeks(days: int, expected: tuple[Reason, ...]) -> None:
    """Staleness counts only while the milestone is due within 8 weeks (56 days)."""
    s = status_of(due_in(days), [update(day(-100), 3)])
    assert s.reasons == expected


@pytest.mark.parametrize(
    ("days", "expected"),
    [(0, (Reason.NEVER_RATED,)), (56, (Reason.NEVER_RATED,)), (57, ())],
)
def test_never_rated_when_no_update_and_due_within_eight_weeks(
    days: int, expected: tuple[Reason, ...]
) -> None:
    """No update at all while due within 56 days is never_rated; due in 57 it is not."""
    s = status_of(due_in(days), [])
    assert s.reasons == expected
    assert s.status is (MilestoneStatus.AT_RISK if expected else MilestoneStatus.ON_TRACK)
    assert s.rating is None


def test_note_only_update_counts_as_contact_but_not_as_a_rating() -> None:
    """A note without a rating resets "stale"; the rating is still the last rated update's."""
    updates = [update(day(-30), 3), update(day(-5), note="Meeting booked for June")]
    s = status_of(due_in(30), updates)
    assert s.status is MilestoneStatus.ON_TRACK
    assert s.reasons == ()
    assert s.rating == 3
    assert s.updated == day(-5)
    assert s.note == "Meeting booked for June"


def test_note_only_update_after_rating_one_leaves_it_achieved() -> None:
    """The rating comes from the last rated update, so a later note does not undo a 1."""
    updates = [update(day(-10), 1), update(day(-2), note="Signed off by the board")]
    s = status_of(due_in(30), updates)
    assert s.status is MilestoneStatus.ACHIEVED
    assert s.rating == 1


# --- several reasons --------------------------------------------------------------------------


def test_every_reason_that_applies_is_listed_in_reason_order() -> None:
    """All applicable reasons are listed together, in the order of the Reason enum."""
    due = day(40)
    updates = [
        update(day(-25), 4, needs_support=True, revised_due=due + timedelta(days=10)),
        update(day(-30), 3),
    ]
    s = status_of(Timescale(text="x", due=due), updates)
    assert s.status is MilestoneStatus.AT_RISK
    assert s.reasons == (
        Reason.NOT_STARTED,
        Reason.REVISED_LATER,
        Reason.WORSENING,
        Reason.NEEDS_SUPPORT,
        Reason.STALE,
    )
    assert list(s.reasons) == sorted(s.reasons, key=list(Reason).index)


def test_no_update_at_all_gives_never_rated_alone() -> None:
    """With no update, never_rated is the only reason and the milestone is at risk."""
    s = status_of(due_in(10), [])
    assert s.reasons == (Reason.NEVER_RATED,)
    assert s.status is MilestoneStatus.AT_RISK


# --- no date ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rating", [None, 3, 4])
def test_ongoing_with_no_period_is_no_date(rating: int | None) -> None:
    """Ongoing work with no period has no due date and the status no_date."""
    updates = [] if rating is None else [update(day(-1), rating)]
    s = status_of(Timescale(text="Ongoing", ongoing=True), updates)
    assert s.status is MilestoneStatus.NO_DATE
    assert s.due is None
    assert s.reasons == ()
    assert s.days_overdue == 0


def test_ongoing_with_a_period_has_a_due_date() -> None:
    """An "Ongoing, quarterly" timescale is recurring, so it falls due at the quarter's end."""
    ts = Timescale(text="Ongoing, quarterly", recurrence=Recurrence.QUARTERLY, ongoing=True)
    s = status_of(ts, [update(date(2027, 5, 1), 3)], today=date(2027, 5, 10))
    assert s.due == date(2027, 6, 30)
    assert s.status is MilestoneStatus.ON_TRACK


# --- recurring --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("today", "due"),
    [
        (date(2027, 1, 1), date(2027, 3, 31)),
        (date(2027, 5, 10), date(2027, 6, 30)),
        (date(2027, 6, 30), date(2027, 6, 30)),
        (date(2027, 7, 1), date(2027, 9, 30)),
        (date(2027, 12, 31), date(2027, 12, 31)),
    ],
)
def test_quarterly_milestone_is_due_at_the_end_of_the_current_quarter(
    today: date, due: date
) -> None:
    """A quarterly milestone's due date is the last day of the quarter containing today."""
    s = status_of(QUARTERLY, [update(today, 3)], today=today)
    assert s.due == due
    assert s.status is not MilestoneStatus.OVERDUE


def test_quarterly_milestone_due_soon_near_quarter_end() -> None:
    """Within 14 days of the quarter's end, a recently rated quarterly milestone is due soon."""
    s = status_of(QUARTERLY, [update(date(2027, 6, 15), 3)], today=date(2027, 6, 20))
    assert s.status is MilestoneStatus.DUE_SOON
    assert s.due == date(2027, 6, 30)


def test_recurring_ratings_reset_each_period() -> None:
    """The next period starts unrated: last quarter's rating is not this quarter's."""
    updates = [update(date(2027, 6, 15), 3)]
    early = status_of(QUARTERLY, updates, today=date(2027, 7, 5))
    assert early.due == date(2027, 9, 30)
    assert early.rating is None
    assert early.status is MilestoneStatus.ON_TRACK  # 87 days to go: not yet within 8 weeks
    later = status_of(QUARTERLY, updates, today=date(2027, 8, 10))
    assert later.rating is None
    assert later.status is MilestoneStatus.AT_RISK
    assert later.reasons == (Reason.NEVER_RATED,)  # none this period, due within 8 weeks


def test_recurring_rating_one_last_quarter_leaves_this_quarter_never_rated() -> None:
    """Achieving last quarter's milestone leaves this quarter's unrated and at risk near its end."""
    s = status_of(QUARTERLY, [update(date(2027, 3, 25), 1)], today=date(2027, 5, 10))
    assert s.status is MilestoneStatus.AT_RISK
    assert s.reasons == (Reason.NEVER_RATED,)


FROM_JULY = Timescale(
    text="July 2019, Quarterly", start=date(2019, 7, 1), recurrence=Recurrence.QUARTERLY
)


def test_recurring_before_its_first_period_shows_its_latest_rating() -> None:
    """'July 2019, Quarterly' rated 1 on 17 June 2019 is achieved on 21 June, like any other."""
    s = status_of(FROM_JULY, [update(date(2019, 6, 17), 1)], today=date(2019, 6, 21))
    assert s.status is MilestoneStatus.ACHIEVED
    assert (s.rating, s.rated_on, s.updated) == (1, date(2019, 6, 17), date(2019, 6, 17))
    assert s.due == date(2019, 9, 30)


def test_recurring_before_its_first_period_keeps_every_reason() -> None:
    """Before its first period, a recurring milestone's answers count for the risk rules too."""
    updates = [update(date(2019, 6, 1), 3), update(date(2019, 6, 17), 4, needs_support=True)]
    s = status_of(FROM_JULY, updates, today=date(2019, 6, 21))
    assert s.status is MilestoneStatus.AT_RISK
    assert s.reasons == (Reason.WORSENING, Reason.NEEDS_SUPPORT)


def test_recurring_first_period_starts_unrated() -> None:
    """On the first day of its first period, an answer given before it no longer counts."""
    s = status_of(FROM_JULY, [update(date(2019, 6, 17), 1)], today=date(2019, 7, 1))
    assert s.status is not MilestoneStatus.ACHIEVED
    assert (s.rating, s.latest) == (None, None)


# --- time ------------------------------------------------------------------------------------


def test_update_given_after_today_is_ignored() -> None:
    """Looking at an earlier day, an answer given later does not exist yet."""
    s = status_of(due_in(30), [update(day(-3), 3), update(day(1), 1)])
    assert s.status is MilestoneStatus.ON_TRACK
    assert s.rating == 3
    assert s.updated == day(-3)


def test_only_update_given_after_today_leaves_milestone_never_rated() -> None:
    """An answer given tomorrow does not count as contact today."""
    s = status_of(due_in(30), [update(day(1), 3)])
    assert s.reasons == (Reason.NEVER_RATED,)
    assert s.latest is None


def test_update_dated_in_the_plan_timezone_counts_for_the_new_quarter() -> None:
    """23:30 UTC on 31 March during BST is 1 April in London, so it rates the new quarter."""
    late = update(date(2027, 3, 31), 1, at=time(23, 30))
    s = status_of(QUARTERLY, [late], today=date(2027, 4, 1))
    assert s.status is MilestoneStatus.ACHIEVED
    assert s.updated == date(2027, 4, 1)


def test_update_dated_in_the_plan_timezone_is_after_a_31_march_today() -> None:
    """23:30 UTC on 31 March during BST is 1 April in London: not yet given on 31 March."""
    late = update(date(2027, 3, 31), 1, at=time(23, 30))
    s = status_of(due_in(30), [late], today=date(2027, 3, 31))
    assert s.status is not MilestoneStatus.ACHIEVED
    assert s.latest is None


def test_update_late_in_the_evening_in_winter_stays_on_its_utc_day() -> None:
    """In GMT, London and UTC agree: 23:30 UTC on 31 December is still 31 December."""
    late = update(date(2026, 12, 31), 1, at=time(23, 30))
    s = status_of(QUARTERLY, [late], today=date(2027, 1, 1))
    assert s.status is not MilestoneStatus.ACHIEVED
    assert s.rating is None


def test_a_milestone_of_a_plan_is_judged_by_that_plans_policy_and_timezone() -> None:
    """The same milestone is due soon under a plan with a 30-day window and not under the
    default 14 days; an answer at 13:00 UTC on 9 May counts as given on the 10th in Auckland."""
    milestone = Milestone("1.1a", "Audit", due_in(20), "1.1")
    wide = Plan("p", "Plan", policy=RiskPolicy(due_soon_window=30))
    rated = [update(TODAY, 3)]
    assert status_in_plan(wide, milestone, rated, today=TODAY).status is MilestoneStatus.DUE_SOON
    assert status_in_plan(Plan("q", "Plan"), milestone, rated, today=TODAY).status is not (
        MilestoneStatus.DUE_SOON
    )
    late = update(day(-1), 3, at=time(13, 0))
    auckland = Plan("a", "Plan", timezone="Pacific/Auckland")
    assert status_in_plan(auckland, milestone, [late], today=day(-1)).rating is None
    assert status_in_plan(Plan("q", "Plan"), milestone, [late], today=day(-1)).rating == 3
