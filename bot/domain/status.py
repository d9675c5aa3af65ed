"""The status of a milestone on a given day (DESIGN.md §6): one status, and every reason.

`milestone_status` is a pure function of the milestone's timescale, its updates, the day (in
the plan's timezone) and the plan's thresholds. Updates are dated in the plan's timezone by
the caller, through `local_date`, so that an answer given at 23:30 on a Sunday in London is a
Sunday answer whatever the server's clock says.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo

from bot.domain.model import Milestone, Plan, RiskPolicy, Timescale, Update
from bot.domain.ratings import ACHIEVED, NOT_STARTED
from bot.domain.timescales import due_on


class MilestoneStatus(StrEnum):
    """The statuses, most severe first."""

    OVERDUE = "overdue"
    AT_RISK = "at_risk"
    DUE_SOON = "due_soon"
    ON_TRACK = "on_track"
    ACHIEVED = "achieved"
    NO_DATE = "no_date"


class Reason(StrEnum):
    """Why a milestone is at risk, in the order they are listed."""

    NOT_STARTED = "not_started"
    REVISED_LATER = "revised_later"
    WORSENING = "worsening"
    NEEDS_SUPPORT = "needs_support"
    STALE = "stale"
    NEVER_RATED = "never_rated"


class Status(NamedTuple):
    """A milestone's standing on `today`.

    `due` is the due date that applies today (for a recurring milestone, the end of the
    current period). `latest` is the latest update that counts (this period's, for a
    recurring milestone), and `updated` its date in the plan's timezone. `revised_due` is
    the latest revised date a lead gave among those updates (a later answer that names no
    date leaves it standing), whether or not it is later than `due`.
    """

    status: MilestoneStatus
    due: date | None
    days_overdue: int = 0
    days_to_due: int | None = None
    reasons: tuple[Reason, ...] = ()
    latest: Update | None = None
    updated: date | None = None
    rating: int | None = None
    rated_on: date | None = None
    revised_due: date | None = None

    @property
    def note(self) -> str | None:
        return self.latest.note if self.latest else None

    @property
    def needs_support(self) -> bool:
        return bool(self.latest and self.latest.needs_support)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_date(moment: datetime, timezone: str) -> date:
    """The calendar day `moment` falls on in `timezone` (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(_zone(timezone)).date()


def end_of_day(day: date, timezone: str) -> datetime:
    """The first instant after `day` in `timezone`."""
    return datetime.combine(day + timedelta(days=1), time(0), _zone(timezone))


def _given_at(update: Update) -> datetime:
    return update.given_at


def milestone_status(
    timescale: Timescale,
    updates: Sequence[Update],
    *,
    today: date,
    policy: RiskPolicy,
    timezone: str = "Europe/London",
) -> Status:
    """The one status of a milestone on `today`, and every at-risk reason that applies.

    A recurring milestone counts only this period's updates, except before its first period,
    when every update counts. Only rated updates count towards the rating rules; an update
    with a note and no rating still counts as contact (it is the latest word, and it resets
    "stale"). Updates given at the same instant keep the order they are passed in (storage
    order: as recorded).
    """
    due, period_start = due_on(timescale, today)
    if period_start is not None and period_start > today:
        # Before its first period a recurring milestone is rated like any other: its latest
        # answer stands until that period begins, which starts unrated.
        period_start = None
    zone = _zone(timezone)
    # Answers given after `today` do not exist yet when looking back at an earlier day.
    counted: list[tuple[date, Update]] = []
    for update in sorted(updates, key=_given_at) if len(updates) > 1 else updates:
        moment = update.given_at
        day = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(zone).date()
        if day <= today and (period_start is None or day >= period_start):
            counted.append((day, update))

    latest_day, latest = counted[-1] if counted else (None, None)
    rated = [(d, u) for d, u in counted if u.rating is not None]
    rated_on, rating = (rated[-1][0], rated[-1][1].rating) if rated else (None, None)
    days_to_due = (due - today).days if due is not None else None
    revised = next((u.revised_due for _, u in reversed(counted) if u.revised_due), None)

    reasons: tuple[Reason, ...] = ()
    if rating == ACHIEVED:
        status = MilestoneStatus.ACHIEVED
    elif days_to_due is not None and days_to_due < 0:
        status = MilestoneStatus.OVERDUE
    else:
        # days_to_due >= 0 from here on: an overdue milestone is settled above.
        reasons = _reasons(counted, rated, due, days_to_due, revised, today, policy)
        if reasons:
            status = MilestoneStatus.AT_RISK
        elif days_to_due is None:
            status = MilestoneStatus.NO_DATE
        elif days_to_due <= policy.due_soon_window:
            status = MilestoneStatus.DUE_SOON
        else:
            status = MilestoneStatus.ON_TRACK
    overdue_by = -days_to_due if status is MilestoneStatus.OVERDUE and days_to_due else 0
    return Status(
        status, due, overdue_by, days_to_due, reasons, latest, latest_day, rating, rated_on, revised
    )


def status_in_plan(
    plan: Plan, milestone: Milestone, updates: Sequence[Update], *, today: date
) -> Status:
    """The status of a milestone of `plan` on `today`: `milestone_status` with the plan's
    own risk policy and timezone. Every caller that has the plan asks this (or
    `TrackedPlan.status`, which asks it with the stored updates)."""
    return milestone_status(
        milestone.timescale, updates, today=today, policy=plan.policy, timezone=plan.timezone
    )


def _reasons(
    counted: list[tuple[date, Update]],
    rated: list[tuple[date, Update]],
    due: date | None,
    days_to_due: int | None,
    revised: date | None,
    today: date,
    policy: RiskPolicy,
) -> tuple[Reason, ...]:
    """Why a milestone that is neither achieved nor overdue is at risk, if it is."""
    reasons: list[Reason] = []
    rating = rated[-1][1].rating if rated else None
    if (
        rating == NOT_STARTED
        and days_to_due is not None
        and (days_to_due <= policy.not_started_window)
    ):
        reasons.append(Reason.NOT_STARTED)
    if due is not None and revised is not None and revised > due:
        reasons.append(Reason.REVISED_LATER)
    previous = rated[-2][1].rating if len(rated) >= 2 else None
    if rating is not None and previous is not None and rating > previous:
        reasons.append(Reason.WORSENING)
    latest_day, latest = counted[-1] if counted else (None, None)
    if latest is not None and latest.needs_support:
        reasons.append(Reason.NEEDS_SUPPORT)
    if days_to_due is not None and days_to_due <= policy.stale_horizon:
        if latest_day is None:
            reasons.append(Reason.NEVER_RATED)
        elif (today - latest_day).days >= policy.stale_after:
            reasons.append(Reason.STALE)
    return tuple(reasons)
