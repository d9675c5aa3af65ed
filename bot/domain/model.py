"""The vocabulary of DESIGN.md §2 as frozen dataclasses: plans, actions, milestones, people,
networks and updates. Pure data, no I/O: every rule in `bot.domain` works on these."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import NamedTuple


class Recurrence(StrEnum):
    """How often a recurring milestone falls due: at the end of each calendar period."""

    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    ANNUAL = "annual"


class Quarters(StrEnum):
    """How `Q1 2027` (a quarter or half of a plain year) is read: a plan setting.

    `Q1 2027/28` always names a financial year, which starts in April (UK public sector).
    """

    CALENDAR = "calendar"  # Q1 2027 is January–March 2027
    FINANCIAL = "financial"  # Q1 2027 is April–June 2027


class Channel(StrEnum):
    """Where a person prefers to be asked."""

    SLACK = "slack"
    EMAIL = "email"
    TEAMS = "teams"


class Source(StrEnum):
    """Where an update came from."""

    SLACK = "slack"
    EMAIL = "email"
    CLI = "cli"
    IMPORT = "import"
    WEB = "web"  # the update page a prompt links to
    TEAMS = "teams"  # a prompt's Adaptive Card in Teams
    COORDINATOR = "coordinator"  # recorded by a coordinator on a lead's behalf


@dataclass(frozen=True, slots=True)
class Timescale:
    """The meaning of a timescale cell (DESIGN.md §4).

    `due` is the fixed due date, if any. A recurring timescale falls due at the end of each
    period from `start` (or from the beginning, when there is no start); its due date for a
    given day is worked out by `bot.domain.timescales.due_on`. `ongoing` marks work with no end.
    """

    text: str
    due: date | None = None
    start: date | None = None
    recurrence: Recurrence | None = None
    ongoing: bool = False
    warnings: tuple[str, ...] = ()
    # Set when the text names a quarter or half of a plain year (`Q1 2027`): the reading used.
    quarters: Quarters | None = None


@dataclass(frozen=True, slots=True)
class RiskPolicy:
    """The thresholds of DESIGN.md §6, in calendar days; a plan may override each."""

    due_soon_window: int = 14
    not_started_window: int = 42
    stale_after: int = 21
    stale_horizon: int = 56
    achieved_window: int = 7


@dataclass(frozen=True, slots=True)
class Person:
    key: str
    name: str
    email: str | None = None
    slack_user_id: str | None = None
    prefers: Channel = Channel.EMAIL
    timezone: str | None = None
    delegate_key: str | None = None
    away_until: date | None = None
    # Further addresses they write from (lower case): a reply from one counts as theirs.
    other_emails: tuple[str, ...] = ()
    # Further keys plans use for them (a second people-file row with their name and address).
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Network:
    key: str
    name: str
    slack_channel: str | None = None
    coordinators: tuple[str, ...] = ()
    all_actions: bool = False
    # The plan priorities whose every action the network follows (from the networks file at
    # import; links are made then, not stored as a rule).
    priorities: tuple[int, ...] = ()
    # The Workflows webhook its digest is posted to in Teams. The URL carries the flow's
    # signature, so it is kept out of the repr (and so out of any log line or traceback).
    teams_webhook: str | None = field(default=None, repr=False)


class Milestone(NamedTuple):
    ref: str
    title: str
    timescale: Timescale
    action_ref: str
    leads: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Action:
    ref: str
    title: str
    priority: int
    leads: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    aim: str | None = None
    milestones: tuple[Milestone, ...] = ()


@dataclass(frozen=True, slots=True)
class Priority:
    number: int
    title: str
    # What the priority covers ("Key areas") and its overall lead(s) as the plan writes them.
    description: str | None = None
    leads: str | None = None


@dataclass(frozen=True, slots=True)
class Contact:
    """Someone a lead can ask about the plan: a name (may be empty) and an address."""

    name: str
    email: str


@dataclass(frozen=True, slots=True)
class Plan:
    key: str
    title: str
    organisation: str | None = None
    timezone: str = "Europe/London"
    start: date | None = None
    policy: RiskPolicy = field(default_factory=RiskPolicy)
    quarters: Quarters = Quarters.CALENDAR
    # The `contact` plan setting: who every prompt names for questions, instead of the
    # coordinators of the lead's networks.
    contact: tuple[Contact, ...] = ()
    # The `case_numbers` plan setting: a regular expression for the plan's own case or ID
    # numbers, which a lead's note must not carry (bot.domain.child_details).
    case_numbers: str | None = None


class Update(NamedTuple):
    """One answer about one milestone. `given_at` is timezone-aware (UTC in storage)."""

    milestone_ref: str
    given_at: datetime
    rating: int | None = None
    note: str | None = None
    revised_due: date | None = None
    needs_support: bool = False
    source: Source = Source.CLI
    person_key: str | None = None
    external_id: str | None = None
    id: int | None = None  # its stored id, once stored
    # With a rating of 1 (achieved): what changed for children and families, or a link to
    # the evidence of it. Optional; None when not given.
    evidence: str | None = None
