"""Prompt cycles (DESIGN.md §7): when prompts, reminders and digests fall due, and who is
asked about what.

Every function here is pure: the moment is always an argument, never read from a clock, so
the scheduler tick can derive what is due from its stored watermark alone (RELIABILITY.md,
Decisions) and a test can set any moment it likes.

- `occurrences` lists the scheduled moments in a range, one per scheduled local date, so a
  change of clocks can neither skip nor double one (RELIABILITY.md scenario 54). A scheduled
  date that is not a working day moves to the next working day, at the same local time.
- `due_now` is the tick's question: of everything missed since the watermark, only the
  latest occurrence is due (one prompt after a week of downtime, not seven; scenario 53).
- `plan_prompts` decides who is asked about which milestones in a cycle, with delegates
  standing in for leads who are away.
- `reminder_due_at` places the one reminder of an unanswered prompt.
- `mailbox_groups` puts the prompts of people who share a mailbox into one message.
- `CyclePolicy.from_settings` reads a plan's schedules, reminder delay and bank holidays.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import IntEnum, StrEnum
from zoneinfo import ZoneInfo

import holidays as holiday_lists

from bot.domain.model import Action, Milestone, Person, Plan, Update
from bot.domain.status import MilestoneStatus, Status, status_in_plan

__all__ = [
    "DEFAULT_DIGEST_SCHEDULE",
    "DEFAULT_PROMPT_SCHEDULE",
    "LOOKBACK",
    "CyclePolicy",
    "HolidayRegion",
    "MailboxPrompt",
    "Occurrence",
    "PlannedPrompt",
    "PromptItem",
    "Schedule",
    "Weekday",
    "WorkingCalendar",
    "cycle_key",
    "due_now",
    "listed_under",
    "mailbox_groups",
    "occurrences",
    "plan_prompts",
    "reminder_due_at",
]

# How far back `occurrences` looks when there is no watermark yet (a plan's first tick).
LOOKBACK = timedelta(weeks=8)

# Week 0 of the fortnightly (and longer) rotations: a Monday, so weeks are ISO weeks.
_ROTATION_EPOCH = date(2000, 1, 3)


class Weekday(IntEnum):
    """Days of the week, numbered as `date.weekday()` numbers them."""

    MON = 0
    TUE = 1
    WED = 2
    THU = 3
    FRI = 4
    SAT = 5
    SUN = 6


_WORKING_WEEK = frozenset({Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI})


@dataclass(frozen=True, slots=True)
class Schedule:
    """A weekly (or every-n-weeks) moment in a plan's local time.

    With `every_weeks` above 1 the schedule runs in the ISO weeks whose index, counted in
    weeks from Monday 3 January 2000, is a multiple of `every_weeks`: the rotation never
    drifts with restarts, year ends or holidays.
    """

    weekday: Weekday = Weekday.MON
    at: time = time(9, 0)
    every_weeks: int = 1

    def __post_init__(self) -> None:
        # A plain int is accepted and kept as a Weekday; out of range raises ValueError.
        object.__setattr__(self, "weekday", Weekday(self.weekday))
        if self.at.tzinfo is not None:
            raise ValueError("a schedule's time is local to the plan; give it no timezone")
        if isinstance(self.every_weeks, bool) or self.every_weeks < 1:
            raise ValueError(f"every_weeks must be 1 or more, not {self.every_weeks!r}")

    def runs_in_week_of(self, day: date) -> bool:
        """Whether the schedule runs in the ISO week containing `day`."""
        monday = day - timedelta(days=day.weekday())
        return ((monday - _ROTATION_EPOCH).days // 7) % self.every_weeks == 0


DEFAULT_PROMPT_SCHEDULE = Schedule(Weekday.MON, time(9, 0))
DEFAULT_DIGEST_SCHEDULE = Schedule(Weekday.FRI, time(12, 0))


class HolidayRegion(StrEnum):
    """Whose bank holidays a plan skips. England and Wales share one list."""

    ENGLAND_AND_WALES = "england-and-wales"
    SCOTLAND = "scotland"
    NORTHERN_IRELAND = "northern-ireland"
    NONE = "none"


# Subdivision codes of `holidays.UnitedKingdom`.
_SUBDIVISIONS: dict[HolidayRegion, str] = {
    HolidayRegion.ENGLAND_AND_WALES: "ENG",
    HolidayRegion.SCOTLAND: "SCT",
    HolidayRegion.NORTHERN_IRELAND: "NIR",
}


@dataclass(frozen=True, slots=True)
class WorkingCalendar:
    """Working days: the working weekdays (Monday to Friday) that are not holidays.

    `working_weekdays` is there for plans (and tests) whose week is not Monday to Friday;
    it must name at least one day, so that there is always a next working day.
    """

    holidays: frozenset[date] = frozenset()
    working_weekdays: frozenset[Weekday] = field(default=_WORKING_WEEK)

    def __post_init__(self) -> None:
        object.__setattr__(self, "holidays", frozenset(self.holidays))
        weekdays = frozenset(Weekday(d) for d in self.working_weekdays)
        if not weekdays:
            raise ValueError("a working calendar needs at least one working weekday")
        object.__setattr__(self, "working_weekdays", weekdays)

    @classmethod
    def for_region(cls, region: HolidayRegion, years: Iterable[int]) -> WorkingCalendar:
        """The bank holidays of `region` in `years`, substitute days included.

        Only the years given are known: the caller covers every year its dates fall in.
        """
        region = HolidayRegion(region)
        if region is HolidayRegion.NONE:
            return cls()
        # `country_holidays("GB", ...)` builds a `holidays.UnitedKingdom`, with type hints.
        listed = holiday_lists.country_holidays(
            "GB", subdiv=_SUBDIVISIONS[region], years=sorted(set(years)), observed=True
        )
        days = {day for day in listed if isinstance(day, date)}
        return cls(frozenset(days))

    def is_working_day(self, day: date) -> bool:
        """Whether `day` is a working weekday and not a holiday."""
        return day.weekday() in self.working_weekdays and day not in self.holidays

    def next_working_day(self, day: date) -> date:
        """`day` itself if it is a working day, else the first working day after it."""
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day

    def add_working_days(self, day: date, n: int) -> date:
        """The `n`-th working day after `day`; `n=0` gives `next_working_day(day)`."""
        if n < 0:
            raise ValueError(f"cannot add a negative number of working days ({n})")
        if n == 0:
            return self.next_working_day(day)
        for _ in range(n):
            day = self.next_working_day(day + timedelta(days=1))
        return day


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One scheduled moment.

    `cycle` is the ISO week of the scheduled date ("2026-W48"): it names the cycle even when
    a bank holiday moves `at` to a later day (or, for a weekend schedule, into the next week).
    `at` is timezone-aware UTC.
    """

    cycle: str
    scheduled: date
    at: datetime


def cycle_key(day: date) -> str:
    """The ISO week of `day`, as "YYYY-Www" (the ISO year, which differs near New Year)."""
    year, week, _ = day.isocalendar()
    return f"{year:04d}-W{week:02d}"


def _aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, not {moment.isoformat()}")


def _local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of the wall time `at` on `day` in `zone`.

    `fold=0` gives both rules of scenario 54 at once (PEP 495): a wall time that happens
    twice (clocks going back) is the first of the two; a wall time that does not exist
    (clocks going forward) is read with the offset from before the change, which is the same
    wall time moved forward by the gap (01:30 on 29 March 2026 in London is 02:30 BST).
    """
    wall = datetime.combine(day, at.replace(tzinfo=None, fold=0), tzinfo=zone)
    return wall.astimezone(UTC)


def _occurrence(
    schedule: Schedule, scheduled: date, zone: ZoneInfo, calendar: WorkingCalendar
) -> Occurrence:
    working = calendar.next_working_day(scheduled)
    return Occurrence(cycle_key(scheduled), scheduled, _local_instant(working, schedule.at, zone))


def occurrences(
    schedule: Schedule,
    *,
    timezone: str,
    calendar: WorkingCalendar,
    after: datetime | None,
    until: datetime,
) -> list[Occurrence]:
    """Every occurrence with `after < at <= until`, oldest first.

    With no `after` (nothing handled yet) only the `LOOKBACK` (8 weeks) before `until` is
    considered. There is one occurrence per scheduled local date, whatever the clocks do.
    Should holidays ever push two scheduled dates onto the same moment, that moment counts
    once, for the later cycle, so that `at` always strictly increases.
    """
    if after is not None:
        _aware(after, "after")
    _aware(until, "until")
    lower = after if after is not None else until - LOOKBACK
    if lower >= until:
        return []
    zone = ZoneInfo(timezone)

    # An occurrence after `lower` is due on a local day no earlier than the day before
    # `lower`'s (a wall time moved forward by a gap may cross midnight). A scheduled date
    # earlier still can reach that day only across a run of days off, so start there.
    start = lower.astimezone(zone).date() - timedelta(days=1)
    while not calendar.is_working_day(start - timedelta(days=1)):
        start -= timedelta(days=1)
    # `at` is never earlier in local time than the scheduled date itself.
    end = until.astimezone(zone).date()

    by_moment: dict[datetime, Occurrence] = {}
    day = start + timedelta(days=(schedule.weekday - start.weekday()) % 7)
    while day <= end:
        if schedule.runs_in_week_of(day):
            found = _occurrence(schedule, day, zone, calendar)
            if lower < found.at <= until:
                by_moment[found.at] = found  # scheduled dates ascend: the later one wins
        day += timedelta(weeks=1)
    return [by_moment[moment] for moment in sorted(by_moment)]


def due_now(
    schedule: Schedule,
    *,
    timezone: str,
    calendar: WorkingCalendar,
    watermark: datetime | None,
    now: datetime,
) -> Occurrence | None:
    """The one occurrence to act on at `now`, if any: the latest after `watermark`.

    Missed occurrences are caught up exactly once: after a week (or a month) of downtime
    only the latest is due. Nothing is due while `now` is not a working day in the plan's
    timezone; the caller keeps its watermark, and a tick on the next working day finds the
    occurrence again (or a later one that has replaced it).
    """
    _aware(now, "now")
    if watermark is not None:
        _aware(watermark, "watermark")
    zone = ZoneInfo(timezone)
    if not calendar.is_working_day(now.astimezone(zone).date()):
        return None

    def latest(after: datetime | None) -> Occurrence | None:
        found = occurrences(schedule, timezone=timezone, calendar=calendar, after=after, until=now)
        return found[-1] if found else None

    if watermark is None:
        return latest(None)
    # The latest occurrence is nearly always within a few rotations of `now`; an old
    # watermark need not cost a walk through every week since.
    recent = max(watermark, now - timedelta(weeks=schedule.every_weeks + 2))
    return latest(recent) or (latest(watermark) if recent > watermark else None)


def reminder_due_at(
    sent_at: datetime,
    *,
    remind_after: int,
    schedule: Schedule,
    timezone: str,
    calendar: WorkingCalendar,
) -> datetime:
    """When the one reminder of a prompt sent at `sent_at` is due, as aware UTC.

    It is `remind_after` working days after the local date the prompt went out, at the
    schedule's local time: sent Monday 09:00 → Wednesday 09:00, sent Thursday → Monday.
    With `remind_after=0` it is due on the day the prompt went out (the next working day if
    that was a day off) at the schedule's time, but never before the prompt itself.
    """
    _aware(sent_at, "sent_at")
    if remind_after < 0:
        raise ValueError(f"remind_after must be 0 or more, not {remind_after}")
    zone = ZoneInfo(timezone)
    day = calendar.add_working_days(sent_at.astimezone(zone).date(), remind_after)
    return max(_local_instant(day, schedule.at, zone), sent_at.astimezone(UTC))


# --- who is asked about what ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PromptItem:
    """One milestone in a prompt, with what the lead needs to answer about it."""

    milestone_ref: str
    action_ref: str
    title: str
    due: date | None
    status: MilestoneStatus
    reasons: tuple[str, ...]
    rating: int | None
    note: str | None
    days_overdue: int
    on_behalf_of: str  # the lead's key; differs from the recipient for a delegate
    # The lead's latest revised date and whether their latest answer asked for support.
    revised_due: date | None = None
    needs_support: bool = False

    @classmethod
    def of(
        cls, milestone: Milestone, status: Status, *, action_ref: str, on_behalf_of: str
    ) -> PromptItem:
        """A milestone as a prompt lists it, from its status today."""
        return cls(
            milestone_ref=milestone.ref,
            action_ref=action_ref,
            title=milestone.title,
            due=status.due,
            status=status.status,
            reasons=tuple(r.value for r in status.reasons),
            rating=status.rating,
            note=status.note,
            days_overdue=status.days_overdue,
            on_behalf_of=on_behalf_of,
            revised_due=status.revised_due,
            needs_support=status.needs_support,
        )


@dataclass(frozen=True, slots=True)
class PlannedPrompt:
    """One person's prompt in a cycle: their open milestones, most pressing first."""

    person_key: str
    items: tuple[PromptItem, ...]
    on_behalf_of: tuple[str, ...]  # away leads whose milestones are included; sorted


_GROUPS: dict[MilestoneStatus, int] = {
    MilestoneStatus.OVERDUE: 0,
    MilestoneStatus.AT_RISK: 1,
    MilestoneStatus.DUE_SOON: 2,
    MilestoneStatus.ON_TRACK: 3,
}

_REF_PARTS = re.compile(r"\d+|[^\d.\-]+")


def _natural(ref: str) -> tuple[tuple[int, int | str], ...]:
    """Natural order for references: 1.2 before 1.10, W1.2-3 before W1.2-10."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part.casefold())
        for part in _REF_PARTS.findall(ref)
    )


def _item_order(
    item: PromptItem,
) -> tuple[int, int, date, tuple[tuple[int, int | str], ...], str]:
    group = _GROUPS.get(item.status, len(_GROUPS))
    return (
        group,
        -item.days_overdue,
        item.due or date.max,
        _natural(item.milestone_ref),
        item.action_ref,
    )


def _is_away(person: Person, today: date) -> bool:
    return person.away_until is not None and today <= person.away_until


def _recipient(lead: str, people: Mapping[str, Person], today: date) -> str | None:
    """Who answers for `lead` today: the lead, their delegate, or nobody.

    Only one step is taken: a delegate's own delegate never stands in, so that an answer
    always comes from someone the lead chose.
    """
    person = people.get(lead)
    if person is None:
        return None
    if not _is_away(person, today):
        return person.key
    delegate = people.get(person.delegate_key) if person.delegate_key else None
    if delegate is None or _is_away(delegate, today):
        return None
    return delegate.key


def _is_open(status: Status) -> bool:
    """Whether a milestone can be asked about: not achieved, and with a date that applies."""
    return status.status is not MilestoneStatus.ACHIEVED and status.due is not None


def plan_prompts(
    plan: Plan,
    actions: Sequence[Action],
    updates: Mapping[str, Sequence[Update]],
    people: Sequence[Person],
    *,
    today: date,
    only: str | None = None,
) -> list[PlannedPrompt]:
    """Who is asked about what in a cycle on `today` (the plan's local date).

    Each lead is asked about their open milestones: not achieved, and with a due date (a
    milestone with no date, or no lead, cannot be prompted). A milestone's leads are its own,
    else its action's; joint leads each get a prompt listing the shared milestones. A lead
    who is away is not asked; their delegate is asked instead, in one prompt with anything
    of their own, unless the delegate is away too or unknown, when nobody is asked. A
    milestone appears once per prompt: as the recipient's own when they lead it, else for
    the first of its away leads they stand in for. `only` keeps the prompt of that one
    recipient. Prompts come sorted by recipient.
    """
    directory = {p.key: p for p in people}
    items: dict[str, list[PromptItem]] = {}
    for action in actions:
        for milestone in action.milestones:
            leads = milestone.leads or action.leads
            if not leads:
                continue
            status = status_in_plan(plan, milestone, updates.get(milestone.ref, ()), today=today)
            if not _is_open(status):
                continue
            # recipient -> the lead they answer for (their own key when they lead it)
            chosen: dict[str, str] = {}
            for lead in leads:
                recipient = _recipient(lead, directory, today)
                if recipient is None or (only is not None and recipient != only):
                    continue
                if recipient not in chosen or lead == recipient:
                    chosen[recipient] = lead
            for recipient, lead in chosen.items():
                items.setdefault(recipient, []).append(
                    PromptItem.of(milestone, status, action_ref=action.ref, on_behalf_of=lead)
                )
    return [
        PlannedPrompt(
            person_key=recipient,
            items=tuple(sorted(listed, key=_item_order)),
            on_behalf_of=tuple(sorted({i.on_behalf_of for i in listed} - {recipient})),
        )
        for recipient, listed in sorted(items.items())
    ]


# --- shared mailboxes ---------------------------------------------------------------------


def listed_under(asked: Sequence[tuple[str, Sequence[str]]]) -> dict[str, str]:
    """Whose milestone each reference is, in a combined prompt: `asked` gives each person's
    key and the references their prompt asks about, in the prompt's order; a milestone two of
    them lead is listed, and answered, under the first."""
    whose: dict[str, str] = {}
    for key, refs in asked:
        for ref in refs:
            whose.setdefault(ref, key)
    return whose


@dataclass(frozen=True, slots=True)
class MailboxPrompt:
    """The prompts that go out in one message: one person's, or the prompts of everyone asked
    by email at an address they share (a team mailbox, a PA's), by key, the first carrying
    the rest."""

    prompts: tuple[PlannedPrompt, ...]

    @property
    def carrier(self) -> PlannedPrompt:
        return self.prompts[0]

    def sections(self) -> list[tuple[str, tuple[PromptItem, ...]]]:
        """Each person's key and milestones, each milestone once (`listed_under`); a person
        left with none is left out."""
        whose = listed_under(
            [(p.person_key, [i.milestone_ref for i in p.items]) for p in self.prompts]
        )
        out = []
        for prompt in self.prompts:
            mine = tuple(i for i in prompt.items if whose[i.milestone_ref] == prompt.person_key)
            if mine:
                out.append((prompt.person_key, mine))
        return out


def mailbox_groups(
    prompts: Sequence[PlannedPrompt], mailboxes: Mapping[str, str]
) -> list[MailboxPrompt]:
    """The cycle's prompts as messages: one per prompt, except that the prompts of people
    asked by email at one mailbox make one message between them. `mailboxes` maps the key of
    each person asked by email to their address, compared without case; anyone not in it
    (asked in Slack) keeps a message of their own. Ordered by the first person's key."""
    by_mailbox: dict[str, list[PlannedPrompt]] = {}
    alone: list[MailboxPrompt] = []
    for prompt in prompts:
        address = mailboxes.get(prompt.person_key)
        if address:
            by_mailbox.setdefault(address.strip().casefold(), []).append(prompt)
        else:
            alone.append(MailboxPrompt((prompt,)))
    grouped = [
        MailboxPrompt(tuple(sorted(listed, key=lambda p: p.person_key)))
        for listed in by_mailbox.values()
    ]
    return sorted([*alone, *grouped], key=lambda m: m.carrier.person_key)


# --- a plan's settings ------------------------------------------------------------------


_WEEKDAY_NAMES: dict[str, Weekday] = {
    name: day
    for day in Weekday
    for name in (
        day.name.lower(),
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")[day],
    )
}
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})", re.ASCII)
_SCHEDULE_KEYS = frozenset({"weekday", "at", "every_weeks"})


def _weekday(value: object, where: str) -> Weekday:
    if isinstance(value, Weekday):
        return value
    if isinstance(value, str) and value.strip().lower() in _WEEKDAY_NAMES:
        return _WEEKDAY_NAMES[value.strip().lower()]
    raise ValueError(f"{where}: {value!r} is not a day of the week; write mon, tue, ... sun")


def _time(value: object, where: str) -> time:
    if isinstance(value, time):
        if value.tzinfo is not None:
            raise ValueError(f"{where}: {value!r} has a timezone; times are the plan's own")
        return value
    if isinstance(value, str):
        match = _TIME.fullmatch(value.strip())
        if match and int(match[1]) < 24 and int(match[2]) < 60:
            return time(int(match[1]), int(match[2]))
    hint = ""
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 9:00 as the base-60 number 540.
        hint = ' (YAML reads an unquoted 9:00 as a number: put the time in quotes, "09:00")'
    raise ValueError(f"{where}: {value!r} is not a time of day in 24-hour HH:MM{hint}")


def _whole_number(value: object, where: str, *, least: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= least:
        return value
    raise ValueError(f"{where}: {value!r} is not a whole number of at least {least}")


def _schedule(raw: object, default: Schedule, where: str) -> Schedule:
    if raw is None:
        return default
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: expected weekday, at and every_weeks, not {raw!r}")
    unknown = sorted(str(k) for k in raw if k not in _SCHEDULE_KEYS)
    if unknown:
        raise ValueError(
            f"{where}: unknown setting(s) {', '.join(unknown)}; expected weekday, at, every_weeks"
        )
    weekday, at, every_weeks = default.weekday, default.at, default.every_weeks
    if "weekday" in raw:
        weekday = _weekday(raw["weekday"], f"{where}.weekday")
    if "at" in raw:
        at = _time(raw["at"], f"{where}.at")
    if "every_weeks" in raw:
        every_weeks = _whole_number(raw["every_weeks"], f"{where}.every_weeks", least=1)
    return Schedule(weekday, at, every_weeks)


def _region(value: object) -> HolidayRegion:
    if isinstance(value, str):
        spelled = "-".join(value.strip().lower().replace("_", " ").replace("-", " ").split())
        if spelled in {r.value for r in HolidayRegion}:
            return HolidayRegion(spelled)
    choices = ", ".join(r.value for r in HolidayRegion)
    raise ValueError(f"holidays: {value!r} is not a holiday region; choose one of {choices}")


@dataclass(frozen=True, slots=True)
class CyclePolicy:
    """A plan's cycle settings: its prompt and digest schedules, reminder delay and holidays."""

    prompt: Schedule = DEFAULT_PROMPT_SCHEDULE
    digest: Schedule = DEFAULT_DIGEST_SCHEDULE
    remind_after: int = 2
    region: HolidayRegion = HolidayRegion.ENGLAND_AND_WALES

    @classmethod
    def from_settings(cls, raw: Mapping[str, object]) -> CyclePolicy:
        """The policy in a plan's settings; what they leave out keeps its default.

        `raw` is the plan's whole settings mapping: keys other than `prompt`, `digest`,
        `remind_after` and `holidays` belong to other rules and are left alone. A bad value
        raises ValueError naming the setting and what it should be.
        """
        defaults = cls()
        remind_after, region = defaults.remind_after, defaults.region
        if raw.get("remind_after") is not None:
            remind_after = _whole_number(raw["remind_after"], "remind_after", least=0)
        if raw.get("holidays") is not None:
            region = _region(raw["holidays"])
        return cls(
            prompt=_schedule(raw.get("prompt"), defaults.prompt, "prompt"),
            digest=_schedule(raw.get("digest"), defaults.digest, "digest"),
            remind_after=remind_after,
            region=region,
        )

    def calendar(self, years: Iterable[int]) -> WorkingCalendar:
        """The working calendar of this policy's holiday region for `years`."""
        return WorkingCalendar.for_region(self.region, years)
