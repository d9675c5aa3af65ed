"""What a board pack contains: the report a coordinator takes to the board (issue 17).

`build_pack` is pure: the plan's actions and milestones, their statuses on the pack's day
and on the day of the last board (`since`), and what storage aggregated of the history in
between (responses, support asks, the rating mix at a few days) in; one `Pack` out. The
statuses come from `digests.content.plan_statuses`, so "overdue", "achieved" and
"worsening" mean exactly what they mean in the weekly digest. Everything is listed in the
plan's own order and words: priority, aim, action, milestone; people by name.

Evidence of impact comes in as `evidence` (by milestone reference): the achieved table shows
each milestone's, or "achieved, no evidence" where none is stored, and the pack counts those.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple

from bot.domain.model import Action, Milestone, Network, Person, Plan, Priority
from bot.domain.pack_history import LeadResponse, MixPoint, SupportAsk
from bot.domain.ratings import ACHIEVED
from bot.domain.status import MilestoneStatus, Reason, Status
from digests.content import MIX_KEYS, in_network
from digests.markdown import NO_EVIDENCE_FACT

# A lead silent for this many cycles in a row is an exception.
SILENT_CYCLES = 2
# The rating-mix trend has at most this many points, the pack's day included.
TREND_POINTS = 7


@lru_cache(maxsize=4096)  # a national pack writes the same few hundred days 90,000 times
def long_date(day: date) -> str:
    """A day as people write it: 4 June 2018."""
    return f"{day.day} {day:%B %Y}"


class Change(StrEnum):
    """What can have happened to a milestone since the last board, in the order shown."""

    ACHIEVED = "achieved"
    NEWLY_OVERDUE = "newly_overdue"
    WORSE = "worse"
    BETTER = "better"
    REVISED = "revised"
    SUPPORT = "support"


CHANGE_TITLES: Mapping[Change, str] = {
    Change.ACHIEVED: "Achieved",
    Change.NEWLY_OVERDUE: "Newly overdue",
    Change.WORSE: "Rating down",
    Change.BETTER: "Rating up",
    Change.REVISED: "Revised date",
    Change.SUPPORT: "New support ask",
}


class Exception_(StrEnum):
    """The exceptions a board is told about."""

    LATE = "late"  # rated 3 or 4 and past its timescale
    WORSENING = "worsening"


class PackLine(NamedTuple):
    """One milestone in one table of the pack, with where it sits in the plan."""

    priority: int
    aim: str | None
    action_ref: str
    action_title: str
    ref: str
    title: str
    leads: tuple[str, ...]  # names
    due: date | None
    rating: int | None
    detail: str  # what the table says about it, in words


class Response(NamedTuple):
    """A response rate: one lead's or one network's."""

    name: str
    prompted: int
    answered: int

    @property
    def rate(self) -> float | None:
        return self.answered / self.prompted if self.prompted else None


class SilentLead(NamedTuple):
    name: str
    cycles: int


@dataclass(frozen=True, slots=True)
class Pack:
    plan: str
    plan_title: str
    network: str | None
    network_name: str | None
    since: date
    as_of: date
    priorities: Mapping[int, str]
    changes: Mapping[Change, tuple[PackLine, ...]]
    exceptions: Mapping[Exception_, tuple[PackLine, ...]]
    silent: tuple[SilentLead, ...]
    achieved: tuple[PackLine, ...]
    lead_responses: tuple[Response, ...]
    network_responses: tuple[Response, ...]
    # The rating mix per priority (MIX_KEYS) at each trend day, oldest first.
    trend_days: tuple[date, ...] = ()
    mix: Mapping[int, tuple[Mapping[str, int], ...]] = field(default_factory=dict)
    milestones: int = 0
    unevidenced: int = 0  # achieved milestones with no evidence of impact

    def unevidenced_line(self) -> str:
        """`2 achieved without evidence.`, or "" when every achieved one has some."""
        n = self.unevidenced
        return f"{n} achieved without evidence." if n else ""

    def priority_title(self, number: int) -> str:
        return self.priorities.get(number) or f"Priority {number}"

    def by_priority(self, lines: Sequence[PackLine]) -> list[tuple[int, tuple[PackLine, ...]]]:
        """Lines grouped under their priorities, in the plan's order (as given)."""
        groups: dict[int, list[PackLine]] = {}
        for line in lines:
            groups.setdefault(line.priority, []).append(line)
        return [(n, tuple(group)) for n, group in groups.items()]

    def mix_now(self, priority: int) -> Mapping[str, int]:
        points = self.mix.get(priority) or ()
        return points[-1] if points else dict.fromkeys(MIX_KEYS, 0)


def trend_days(since: date, as_of: date, *, points: int = TREND_POINTS) -> tuple[date, ...]:
    """The days the rating mix is counted on: `since`, `as_of`, and evenly between them
    (whole days), at most `points` in all and never the same day twice."""
    if as_of <= since:
        return (as_of,)
    span = (as_of - since).days
    steps = min(points - 1, span)
    return tuple(
        sorted({since + timedelta(days=round(span * i / steps)) for i in range(steps + 1)})
    )


def _names(keys: Iterable[str], names: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(names.get(key) or key for key in keys)


def _rating_words(rating: int | None) -> str:
    return "not rated" if rating is None else str(rating)


def build_pack(
    plan: Plan,
    *,
    network: Network | None,
    actions: Sequence[Action],
    priorities: Sequence[Priority],
    networks: Sequence[Network],
    people: Sequence[Person],
    now: Mapping[str, Status],
    before: Mapping[str, Status],
    since: date,
    as_of: date,
    support_asks: Sequence[SupportAsk] = (),
    responses: Sequence[LeadResponse] = (),
    mix_days: Sequence[date] = (),
    mix_points: Sequence[MixPoint] = (),
    evidence: Mapping[str, str] | None = None,
    silent_after: int = SILENT_CYCLES,
) -> Pack:
    """The board pack of `plan` (or of one `network`'s actions) for `since`..`as_of`.

    `now` and `before` are every milestone's status on `as_of` and on `since`, by
    reference; `support_asks`, `responses` and `mix_points` are storage's aggregates of the
    period (`mix_points` indexed by `mix_days`). `evidence` is the evidence of impact of
    achieved milestones by reference; one without reads "achieved, no evidence".
    """
    names = {p.key: p.name for p in people}
    evidence = evidence or {}
    asks = {a.ref: a for a in support_asks}
    chosen = [a for a in actions if network is None or in_network(a, network)]
    changes: dict[Change, list[PackLine]] = {c: [] for c in Change}
    exceptions: dict[Exception_, list[PackLine]] = {e: [] for e in Exception_}
    achieved: list[PackLine] = []
    total = unevidenced = 0

    lead_names: dict[tuple[str, ...], tuple[str, ...]] = {}  # an action's, for each line

    def line(action: Action, milestone: Milestone, status: Status, detail: str) -> PackLine:
        leads = lead_names.get(milestone.leads)
        if leads is None:
            leads = lead_names[milestone.leads] = _names(milestone.leads, names)
        return PackLine(
            action.priority,
            action.aim,
            action.ref,
            action.title,
            milestone.ref,
            milestone.title,
            leads,
            status.due,
            status.rating,
            detail,
        )

    for action in chosen:
        for milestone in action.milestones:
            total += 1
            status, then = now[milestone.ref], before[milestone.ref]
            achieved_now = status.status is MilestoneStatus.ACHIEVED
            if (
                achieved_now
                and status.rated_on is not None
                and status.rated_on > since
                and then.status is not MilestoneStatus.ACHIEVED
            ):
                on = long_date(status.rated_on)
                changes[Change.ACHIEVED].append(line(action, milestone, status, f"on {on}"))
                given = evidence.get(milestone.ref)
                unevidenced += not given
                achieved.append(line(action, milestone, status, given or NO_EVIDENCE_FACT))
            if (
                status.status is MilestoneStatus.OVERDUE
                and then.status is not MilestoneStatus.OVERDUE
            ):
                days = status.days_overdue
                changes[Change.NEWLY_OVERDUE].append(
                    line(action, milestone, status, f"{days} day{'s' if days != 1 else ''} overdue")
                )
            if (
                status.rating is not None
                and then.rating is not None
                and status.rating != then.rating
                and status.rating != ACHIEVED
            ):
                kind = Change.WORSE if status.rating > then.rating else Change.BETTER
                detail = f"from {then.rating} to {status.rating}"
                changes[kind].append(line(action, milestone, status, detail))
            if status.revised_due is not None and status.revised_due != then.revised_due:
                detail = f"now aimed at {long_date(status.revised_due)}"
                changes[Change.REVISED].append(line(action, milestone, status, detail))
            ask = asks.get(milestone.ref)
            if ask is not None:
                times = "once" if ask.asks == 1 else f"{ask.asks} times"
                changes[Change.SUPPORT].append(line(action, milestone, status, f"asked {times}"))
            if status.status is MilestoneStatus.OVERDUE and status.rating in (3, 4):
                days = status.days_overdue
                detail = f"rated {status.rating}, {days} day{'s' if days != 1 else ''} past"
                exceptions[Exception_.LATE].append(line(action, milestone, status, detail))
            if Reason.WORSENING in status.reasons:
                detail = f"rated {_rating_words(status.rating)}, worse than before"
                exceptions[Exception_.WORSENING].append(line(action, milestone, status, detail))

    # Response rates: per lead of the chosen actions, and per network from its leads.
    by_person = {r.person: r for r in responses}
    leads_of: dict[str, set[str]] = defaultdict(set)
    in_scope: list[str] = []
    for action in chosen:
        for key in action.leads:
            if key not in in_scope:
                in_scope.append(key)
    scope_networks = [network] if network is not None else list(networks)
    # Each action's leads go to the networks it names, and to every plan-wide network:
    # one pass over the actions, not one per network.
    wide = [n.key for n in scope_networks if n.all_actions]
    named = {n.key for n in scope_networks if not n.all_actions}
    for action in actions:
        for key in (*wide, *(k for k in action.networks if k in named)):
            leads_of[key].update(action.leads)
    lead_responses = tuple(
        sorted(
            (
                Response(names.get(k) or k, by_person[k].prompted, by_person[k].answered)
                for k in in_scope
                if k in by_person and by_person[k].prompted
            ),
            key=lambda r: r.name.casefold(),
        )
    )
    network_responses = tuple(
        Response(
            n.name,
            sum(by_person[k].prompted for k in leads_of[n.key] if k in by_person),
            sum(by_person[k].answered for k in leads_of[n.key] if k in by_person),
        )
        for n in scope_networks
    )
    silent = tuple(
        sorted(
            (
                SilentLead(names.get(k) or k, by_person[k].silent_cycles)
                for k in in_scope
                if k in by_person and by_person[k].silent_cycles >= silent_after
            ),
            key=lambda s: (-s.cycles, s.name.casefold()),
        )
    )

    numbers = sorted({a.priority for a in chosen})
    mix: dict[int, list[dict[str, int]]] = {
        n: [dict.fromkeys(MIX_KEYS, 0) for _ in mix_days] for n in numbers
    }
    for point in mix_points:
        if point.priority in mix and 0 <= point.point < len(mix_days):
            key = str(point.rating) if point.rating is not None else "unrated"
            mix[point.priority][point.point][key] += point.milestones

    return Pack(
        plan=plan.key,
        plan_title=plan.title,
        network=network.key if network else None,
        network_name=network.name if network else None,
        since=since,
        as_of=as_of,
        priorities={p.number: p.title for p in priorities},
        changes={c: tuple(lines) for c, lines in changes.items()},
        exceptions={e: tuple(lines) for e, lines in exceptions.items()},
        silent=silent,
        achieved=tuple(achieved),
        lead_responses=lead_responses,
        network_responses=network_responses,
        trend_days=tuple(mix_days),
        mix={n: tuple(points) for n, points in mix.items()},
        milestones=total,
        unevidenced=unevidenced,
    )
