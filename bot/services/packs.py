"""Building a board pack: read the plan as it stood on the pack's day and on the day of the
last board, and the history in between as storage aggregates it, then let
`digests.pack.build_pack` decide what the board is told."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.domain.errors import PulseError
from bot.domain.status import local_date
from digests.content import in_network, plan_statuses
from digests.pack import Pack, build_pack, trend_days
from storage.db import Sessions
from storage.evidence import EvidenceRepository
from storage.pack import PackHistory
from storage.repositories import PlanRepository


class PackPeriodInvalid(PulseError):
    """`--since` on or after `--as-of`."""

    def __init__(self, since: date, as_of: date) -> None:
        super().__init__(f"--since {since.isoformat()} must be before --as-of {as_of.isoformat()}")


def _end_of(day: date, timezone: str) -> datetime:
    """The first instant after `day` in `timezone`."""
    return datetime.combine(day + timedelta(days=1), time(0), ZoneInfo(timezone))


async def board_pack(
    sessions: Sessions,
    plan_key: str,
    *,
    since: date,
    as_of: date | None,
    now: datetime,
    network: str | None = None,
) -> Pack:
    """The board pack of the plan (or of one network) for the days after `since` up to
    and including `as_of` (default: the day `now` falls on in the plan's timezone)."""
    async with sessions() as session:
        plans = PlanRepository(session)
        plan = await plans.get(plan_key)
        as_of = as_of or local_date(now, plan.timezone)
        if since >= as_of:
            raise PackPeriodInvalid(since, as_of)
        until = _end_of(as_of, plan.timezone)
        start = _end_of(since, plan.timezone)
        tracked = await plans.tracked(plan_key, until=until)
        chosen = tracked.network(network) if network else None
        actions = [a for a in tracked.actions if chosen is None or in_network(a, chosen)]
        # A network's pack looks back at its own milestones only.
        refs = None if chosen is None else [m.ref for a in actions for m in a.milestones]
        earlier = await plans.decisive(plan_key, until=start, refs=refs)
        evidence = await EvidenceRepository(session).of_achieved(
            plan_key, until=until, rated_since=start
        )
        history = PackHistory(session)
        responses = await history.responses(plan_key, since=start, until=until)
        asks = await history.support_asks(plan_key, since=start, until=until)
        days = trend_days(since, as_of)
        points = await history.rating_mix(
            plan_key, at=[_end_of(d, plan.timezone) for d in days], network=network
        )
    current = plan_statuses(plan, actions, tracked.updates, as_of=as_of)
    before = plan_statuses(plan, actions, earlier, as_of=since)
    return build_pack(
        plan,
        network=chosen,
        actions=tracked.actions,
        priorities=tracked.priorities,
        networks=tracked.networks,
        people=tracked.people,
        now=current,
        before=before,
        since=since,
        as_of=as_of,
        support_asks=asks,
        responses=responses,
        mix_days=days,
        mix_points=points,
        evidence={ref: found.text for ref, found in evidence.items()},
    )
