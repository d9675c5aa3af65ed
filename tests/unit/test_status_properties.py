"""Properties of milestone status (DESIGN.md §6) that must hold for every date and history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.model import RiskPolicy, Timescale, Update
from bot.domain.status import MilestoneStatus, Status, milestone_status

POLICY = RiskPolicy()
# The plan's timezone is UTC here so that a generated date is the update's date exactly;
# the London cases are pinned down in test_status.py.
TIMEZONE = "UTC"


@dataclass(frozen=True)
class Case:
    today: date
    due: date
    updates: tuple[Update, ...]

    @property
    def latest_rating(self) -> int | None:
        rated = [u for u in self.updates if u.rating is not None]
        return max(rated, key=lambda u: u.given_at).rating if rated else None

    def status(self, updates: tuple[Update, ...] | None = None) -> Status:
        return milestone_status(
            Timescale(text=self.due.isoformat(), due=self.due),
            self.updates if updates is None else updates,
            today=self.today,
            policy=POLICY,
            timezone=TIMEZONE,
        )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    today = draw(st.dates(min_value=date(2018, 1, 1), max_value=date(2030, 12, 31)))
    due = today + timedelta(days=draw(st.integers(min_value=-120, max_value=120)))
    # Distinct moments: two answers at the same instant have no "latest" to agree on.
    moments = draw(
        st.lists(
            st.datetimes(
                min_value=datetime.combine(today - timedelta(days=90), time.min),
                max_value=datetime.combine(today, time.max),
            ),
            max_size=6,
            unique=True,
        )
    )
    updates = tuple(
        Update(
            milestone_ref="1.1",
            given_at=moment.replace(tzinfo=UTC),
            rating=draw(st.sampled_from([1, 2, 3, 4, None])),
            needs_support=draw(st.booleans()),
            revised_due=draw(
                st.none() | st.builds(lambda d: due + timedelta(days=d), st.integers(-30, 30))
            ),
        )
        for moment in moments
    )
    return Case(today, due, updates)


@given(cases())
def test_exactly_one_status(case: Case) -> None:
    """Every milestone with a due date has exactly one of the statuses of §6 (never no_date)."""
    s = case.status()
    assert isinstance(s.status, MilestoneStatus)
    assert s.status is not MilestoneStatus.NO_DATE
    assert s.due == case.due


@given(cases())
def test_overdue_iff_due_date_passed_and_not_achieved(case: Case) -> None:
    """Overdue exactly when the due date is before today and the latest rating is not 1."""
    s = case.status()
    expected = case.due < case.today and case.latest_rating != 1
    assert (s.status is MilestoneStatus.OVERDUE) == expected


@given(cases())
def test_days_overdue_positive_iff_overdue(case: Case) -> None:
    """Days overdue is positive exactly when overdue, and then counts days since the due date."""
    s = case.status()
    assert (s.days_overdue > 0) == (s.status is MilestoneStatus.OVERDUE)
    if s.status is MilestoneStatus.OVERDUE:
        assert s.days_overdue == (case.today - case.due).days
    else:
        assert s.days_overdue == 0


@given(cases())
def test_reasons_iff_at_risk(case: Case) -> None:
    """A milestone has reasons exactly when it is at risk."""
    s = case.status()
    assert bool(s.reasons) == (s.status is MilestoneStatus.AT_RISK)


@given(cases())
def test_achieved_iff_latest_rating_is_one(case: Case) -> None:
    """Achieved exactly when the latest rating given is 1."""
    s = case.status()
    assert (s.status is MilestoneStatus.ACHIEVED) == (case.latest_rating == 1)
    assert s.rating == case.latest_rating


@given(cases())
def test_due_soon_and_on_track_follow_the_window(case: Case) -> None:
    """Without risk, a milestone due in 0-14 days is due soon and later ones are on track."""
    s = case.status()
    days = (case.due - case.today).days
    if s.status is MilestoneStatus.DUE_SOON:
        assert 0 <= days <= POLICY.due_soon_window
    if s.status is MilestoneStatus.ON_TRACK:
        assert days > POLICY.due_soon_window


@given(cases().flatmap(lambda c: st.tuples(st.just(c), st.permutations(c.updates))))
def test_status_does_not_depend_on_update_order(pair: tuple[Case, list[Update]]) -> None:
    """The status is the same whatever order the updates are passed in."""
    case, shuffled = pair
    assert case.status(tuple(shuffled)) == case.status()
    assert case.status(tuple(reversed(case.updates))) == case.status()
