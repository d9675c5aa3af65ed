"""What a network's digest contains (DESIGN.md §10 and the JSON shape of §12).

`build_digest` is pure: a plan's actions, milestones and updates, a network and a day in, one
`Digest` out. Each milestone is in exactly one of overdue, at risk, due soon and achieved,
by its status; the needs-support section repeats every milestone whose latest update asks
for support. Renderers (Markdown, Slack, HTML) all start from this one value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from functools import lru_cache
from typing import Any, NamedTuple

from bot.domain.model import Action, Milestone, Network, Plan, Update
from bot.domain.ratings import ACHIEVED
from bot.domain.status import MilestoneStatus, Status, status_in_plan


class DigestSection(StrEnum):
    """The sections, most severe first."""

    OVERDUE = "overdue"
    AT_RISK = "at_risk"
    NEEDS_SUPPORT = "needs_support"
    DUE_SOON = "due_soon"
    ACHIEVED = "achieved"


SECTION_TITLES: Mapping[DigestSection, str] = {
    DigestSection.OVERDUE: "Overdue",
    DigestSection.AT_RISK: "At risk",
    DigestSection.NEEDS_SUPPORT: "Needs support",
    DigestSection.DUE_SOON: "Due in the next 14 days",
    DigestSection.ACHIEVED: "Achieved this week",
}


# A section this long, with items from several priorities, is shown grouped by priority; a
# shorter one reads better as one list.
GROUP_FROM = 6


class DigestItem(NamedTuple):
    """One milestone as a digest shows it."""

    ref: str
    title: str
    leads: tuple[str, ...]
    due: date | None
    days_overdue: int
    rating: int | None
    note: str | None
    updated: date | None
    reasons: tuple[str, ...]
    priority: int
    action_ref: str
    # What the lead last asked for: a later date they now aim at, and whether they need help.
    revised_due: date | None = None
    needs_support: bool = False
    # An achieved milestone's evidence of impact (what changed for children and families),
    # None when none is stored; always None for a milestone not achieved.
    evidence: str | None = None

    @property
    def unevidenced(self) -> bool:
        """Achieved, and no evidence of impact stored for it."""
        return self.rating == ACHIEVED and self.evidence is None

    def to_json(self, names: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The item of DESIGN.md §12, with `lead_names` beside `leads` (a lead without a
        stored name is shown by key) and `evidence` (an achieved milestone's evidence of
        impact, else null)."""
        names = names or {}
        return {
            "ref": self.ref,
            "title": self.title,
            "leads": list(self.leads),
            "lead_names": [names.get(key) or key for key in self.leads],
            "due": self.due.isoformat() if self.due else None,
            "days_overdue": self.days_overdue,
            "rating": self.rating,
            "note": self.note,
            "updated": self.updated.isoformat() if self.updated else None,
            "revised_due": self.revised_due.isoformat() if self.revised_due else None,
            "needs_support": self.needs_support,
            "reasons": list(self.reasons),
            "evidence": self.evidence,
        }


@dataclass(frozen=True, slots=True)
class Digest:
    plan: str
    network: str
    network_name: str
    as_of: date
    sections: Mapping[DigestSection, tuple[DigestItem, ...]]
    awaiting: tuple[str, ...] = ()
    prompted: int = 0
    answered: int = 0
    milestones: int = 0
    statuses: Mapping[str, int] = field(default_factory=dict)
    # For the picture: the rating mix per priority now, the priorities' titles, and the
    # network's rating mix at the end of each of the last weeks (oldest first).
    mix: Mapping[int, Mapping[str, int]] = field(default_factory=dict)
    priorities: Mapping[int, str] = field(default_factory=dict)
    trend: tuple[tuple[str, Mapping[str, int]], ...] = ()
    # People's names by key, so that every rendering people read names them, not initials.
    names: Mapping[str, str] = field(default_factory=dict)

    @property
    def period(self) -> str:
        return iso_week(self.as_of)

    @property
    def period_title(self) -> str:
        """`week of 4 June 2018`: the period as people read it."""
        return week_title(self.period)

    def name(self, key: str) -> str:
        """A person's name, or their key when none is stored (unescaped)."""
        return self.names.get(key) or key

    @property
    def response_rate(self) -> float | None:
        """Share of this cycle's prompts that were answered, or None before any prompt."""
        return self.answered / self.prompted if self.prompted else None

    def priority_title(self, number: int) -> str:
        """The priority's title from the plan, or "Priority n" when it has none (unescaped)."""
        return self.priorities.get(number) or f"Priority {number}"

    def groups(self, section: DigestSection) -> list[tuple[int | None, tuple[DigestItem, ...]]]:
        """The section's items grouped by priority, where that reads better: in a long
        section (`GROUP_FROM` items or more) from more than one priority, except overdue,
        which stays most-overdue-first for chasing. Priorities in order, each group keeping
        the section's order; otherwise one group under no priority (None)."""
        items = self.sections[section]
        numbers = sorted({item.priority for item in items})
        if section is DigestSection.OVERDUE or len(items) < GROUP_FROM or len(numbers) < 2:
            return [(None, items)]
        return [(n, tuple(item for item in items if item.priority == n)) for n in numbers]

    def unevidenced(self) -> int:
        """How many milestones achieved in the period have no evidence of impact."""
        return sum(1 for item in self.sections[DigestSection.ACHIEVED] if item.unevidenced)

    def counts(self) -> dict[str, int]:
        counts = {section.value: len(self.sections[section]) for section in DigestSection}
        counts["awaiting"] = len(self.awaiting)
        return counts

    def to_json(self) -> dict[str, Any]:
        """Exactly the shape of DESIGN.md §12."""
        out: dict[str, Any] = {
            "plan": self.plan,
            "network": self.network,
            "as_of": self.as_of.isoformat(),
            "period": self.period,
            "counts": self.counts(),
        }
        for section in DigestSection:
            out[section.value] = [item.to_json(self.names) for item in self.sections[section]]
        out["awaiting"] = list(self.awaiting)
        return out


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


_ISO_WEEK = re.compile(r"(\d{4})-W(\d{2})")


def week_title(period: str) -> str:
    """`2018-W23` as people read it, `week of 4 June 2018` (its Monday); any other text as
    it is."""
    match = _ISO_WEEK.fullmatch(period)
    if match is None:
        return period
    try:
        monday = date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError:
        return period
    return f"week of {monday.day} {monday:%B %Y}"


def in_network(action: Action, network: Network) -> bool:
    return network.all_actions or network.key in action.networks


def _item(
    milestone: Milestone, action: Action, status: Status, evidence: str | None = None
) -> DigestItem:
    achieved = status.status is MilestoneStatus.ACHIEVED
    return DigestItem(
        ref=milestone.ref,
        title=milestone.title,
        leads=milestone.leads,
        due=status.due,
        days_overdue=status.days_overdue,
        rating=status.rating,
        note=status.note,
        updated=status.updated,
        reasons=tuple(r.value for r in status.reasons) if status.reasons else (),
        priority=action.priority,
        action_ref=action.ref,
        revised_due=status.revised_due,
        needs_support=status.needs_support,
        evidence=evidence if achieved else None,
    )


def _section(status: Status, as_of: date, achieved_window: int) -> DigestSection | None:
    """The section a milestone is listed in by its status (needs-support comes on top)."""
    if status.status is MilestoneStatus.OVERDUE:
        return DigestSection.OVERDUE
    if status.status is MilestoneStatus.AT_RISK:
        return DigestSection.AT_RISK
    if status.status is MilestoneStatus.DUE_SOON:
        return DigestSection.DUE_SOON
    if status.status is MilestoneStatus.ACHIEVED and status.rated_on is not None:
        if 0 <= (as_of - status.rated_on).days < achieved_window:
            return DigestSection.ACHIEVED
    return None


SortKey = tuple[int, str]


class Shown(NamedTuple):
    """What an action's milestones add to every digest that follows the action: the same in
    every network, so worked out once per digest run."""

    milestones: int
    statuses: tuple[tuple[str, int], ...]  # (status, how many)
    ratings: tuple[tuple[str, int], ...]  # (mix key, how many)
    listed: tuple[tuple[DigestSection, SortKey, DigestItem], ...]  # with the section's order


def _shown(
    action: Action,
    statuses: Mapping[str, Status],
    as_of: date,
    achieved_window: int,
    evidence: Mapping[str, str],
) -> Shown:
    by_status: dict[str, int] = {}
    by_rating: dict[str, int] = {}
    listed: list[tuple[DigestSection, SortKey, DigestItem]] = []
    for milestone in action.milestones:
        status = statuses[milestone.ref]
        key = status.status.value
        by_status[key] = by_status.get(key, 0) + 1
        rating = str(status.rating) if status.rating is not None else "unrated"
        by_rating[rating] = by_rating.get(rating, 0) + 1
        section = _section(status, as_of, achieved_window)
        if section is None and not status.needs_support:
            continue  # most milestones are on track and listed nowhere
        item = _item(milestone, action, status, evidence.get(milestone.ref))
        ref_key = _ref_key(item.ref)
        # Sort keys of two plain values, compared fast: a digest run sorts tens of thousands.
        by_due = (item.due.toordinal() if item.due is not None else _NO_DUE, ref_key)
        if section is DigestSection.OVERDUE:
            listed.append((section, (-item.days_overdue, ref_key), item))
        elif section is not None:
            listed.append((section, by_due, item))
        if status.needs_support:
            listed.append((DigestSection.NEEDS_SUPPORT, by_due, item))
    return Shown(
        len(action.milestones), tuple(by_status.items()), tuple(by_rating.items()), tuple(listed)
    )


_NO_DUE = date.max.toordinal() + 1  # milestones without a date come last


@lru_cache(maxsize=65536)
def _ref_key(ref: str) -> str:
    """Natural order for references, as one string that sorts in it: 1.2 before 1.10, W1.2-3
    before W1.2-10. A number becomes its digit count and digits (leading zeros dropped), so
    numbers of any length compare by value; numbers sort before words; words compare without
    case; parts are joined by a character below any other, so a shorter reference sorts first.
    """
    parts = []
    for part in re.findall(r"\d+|[^\d.\-]+", ref):
        if part.isdigit():
            digits = part.lstrip("0") or "0"
            parts.append(f"0{len(digits):04d}{digits}")
        else:
            parts.append("1" + part.casefold())
    return "\x00".join(parts)


def build_digest(
    plan: Plan,
    network: Network,
    actions: Iterable[Action],
    updates: Mapping[str, Sequence[Update]],
    *,
    as_of: date,
    awaiting: Sequence[str] = (),
    prompted: int = 0,
    answered: int = 0,
    statuses: Mapping[str, Status] | None = None,
    priorities: Mapping[int, str] | None = None,
    trend: Sequence[tuple[str, Mapping[str, int]]] = (),
    shown: dict[str, Shown] | None = None,
    names: Mapping[str, str] | None = None,
    evidence: Mapping[str, str] | None = None,
) -> Digest:
    """The digest of `network` for the week of `as_of`.

    `updates` maps milestone references to their updates; `awaiting` lists the people who
    did not answer this cycle's prompt (sorted here), out of `prompted` people prompted.
    `statuses`, when given, are the milestones' statuses already worked out for `as_of`
    (see `plan_statuses`), so that many networks' digests share one computation; `shown`,
    when given, keeps what each action shows (worked out from its statuses) for the next
    network's digest. `names` gives people's names by key, for the renderings;
    `evidence`, each milestone's evidence of impact by reference (those with none absent),
    shown with the achieved ones.
    """
    if statuses is None:
        statuses = plan_statuses(plan, actions, updates, as_of=as_of)
    if shown is None:
        shown = {}
    mix: dict[int, dict[str, int]] = {}
    listed: dict[DigestSection, list[tuple[SortKey, DigestItem]]] = {s: [] for s in DigestSection}
    counts: dict[str, int] = {s.value: 0 for s in MilestoneStatus}
    total = 0
    window = plan.policy.achieved_window
    for action in actions:
        if not in_network(action, network):
            continue
        entry = shown.get(action.ref)
        if entry is None:
            entry = shown[action.ref] = _shown(action, statuses, as_of, window, evidence or {})
        total += entry.milestones
        for status, n in entry.statuses:
            counts[status] += n
        by_rating = mix.get(action.priority)
        if by_rating is None:
            by_rating = mix[action.priority] = dict.fromkeys(MIX_KEYS, 0)
        for rating, n in entry.ratings:
            by_rating[rating] += n
        for section, key, item in entry.listed:
            listed[section].append((key, item))
    # Overdue: most overdue first; the rest by due date; references in natural order.
    sections = {s: tuple(item for _, item in sorted(pairs)) for s, pairs in listed.items()}
    return Digest(
        plan=plan.key,
        network=network.key,
        network_name=network.name,
        as_of=as_of,
        sections=sections,
        awaiting=tuple(sorted(set(awaiting))),
        prompted=prompted,
        answered=answered,
        milestones=total,
        statuses=counts,
        mix=mix,
        priorities=dict(priorities or {}),
        trend=tuple(trend),
        names=names if names is not None else {},
    )


MIX_KEYS = ("1", "2", "3", "4", "unrated")


def plan_statuses(
    plan: Plan, actions: Iterable[Action], updates: Mapping[str, Sequence[Update]], *, as_of: date
) -> dict[str, Status]:
    """Every milestone's status on `as_of`, by reference."""
    return {
        milestone.ref: status_in_plan(plan, milestone, updates.get(milestone.ref, ()), today=as_of)
        for action in actions
        for milestone in action.milestones
    }
