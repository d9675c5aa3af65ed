"""The board pack's pure rules: its trend days, dates as people write them, and evidence of
impact shown beside an achieved milestone when it is given."""

from __future__ import annotations

from datetime import UTC, date, datetime

from bot.domain.model import Action, Milestone, Person, Plan, Timescale, Update
from digests.content import plan_statuses
from digests.pack import Change, build_pack, long_date, trend_days


def test_dates_read_as_people_write_them() -> None:
    """A day is written as `4 June 2018`, without a leading zero."""
    assert long_date(date(2018, 6, 4)) == "4 June 2018"


def test_trend_days_run_from_the_last_board_to_the_packs_day() -> None:
    """The trend has at most seven days, the first the last board's, the last the pack's,
    never the same day twice, even over a short period."""
    days = trend_days(date(2026, 1, 1), date(2026, 3, 31))
    assert len(days) == 7
    assert (days[0], days[-1]) == (date(2026, 1, 1), date(2026, 3, 31))
    assert trend_days(date(2026, 1, 1), date(2026, 1, 3)) == (
        date(2026, 1, 1),
        date(2026, 1, 2),
        date(2026, 1, 3),
    )


def test_evidence_given_for_an_achieved_milestone_is_shown() -> None:
    """An achieved milestone shows its evidence when there is some, and is flagged
    "achieved, no evidence" (and counted) otherwise; its lead is named."""
    plan = Plan("p", "Plan")
    milestones = tuple(
        Milestone(ref, "Hub open", Timescale("31/12/26", due=date(2026, 12, 31)), "1.1", ("AW",))
        for ref in ("1.1-1", "1.1-2")
    )
    action = Action("1.1", "Family hubs", 1, ("AW",), milestones=milestones)
    updates = {
        m.ref: (Update(m.ref, datetime(2026, 11, 25, 10, tzinfo=UTC), rating=1),)
        for m in milestones
    }
    since, as_of = date(2026, 11, 20), date(2026, 12, 4)
    pack = build_pack(
        plan,
        network=None,
        actions=[action],
        priorities=[],
        networks=[],
        people=[Person("AW", "Alex Walker")],
        now=plan_statuses(plan, [action], updates, as_of=as_of),
        before=plan_statuses(plan, [action], {}, as_of=since),
        since=since,
        as_of=as_of,
        evidence={"1.1-1": "Hub visits up by a third"},
    )
    assert [(line.ref, line.detail, line.leads) for line in pack.achieved] == [
        ("1.1-1", "Hub visits up by a third", ("Alex Walker",)),
        ("1.1-2", "achieved, no evidence", ("Alex Walker",)),
    ]
    assert pack.unevidenced_line() == "1 achieved without evidence."
    assert [line.detail for line in pack.changes[Change.ACHIEVED]] == ["on 25 November 2026"] * 2
