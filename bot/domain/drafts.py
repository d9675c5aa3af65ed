"""A plan, people or networks file as read, before the importer resolves its leads and
networks against the directory: what handlers/files/ produces and storage/importer.py writes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from bot.domain.errors import Problem
from bot.domain.model import Network, Person, Plan, Timescale

# The column labels problems are reported under, and the plan field each one is.
_FIELD_OF_LABEL = {
    "Priority": "priority",
    "Ref": "ref",
    "ref": "ref",
    "Key actions": "action",
    "Lead(s)": "leads",
    "leads": "leads",
    "Timescales": "timescale",
    "timescale": "timescale",
    "Milestones": "milestones",
    "Progress": "rating",
    "Network(s)": "networks",
}


@dataclass(slots=True)
class DraftMilestone:
    title: str
    timescale: Timescale
    rating: int | None
    note: str | None
    row: int | None
    ref: str = ""


@dataclass(slots=True)
class DraftAction:
    """An action as read; `lead_cells` and `network_keys` are resolved by the importer."""

    ref: str
    title: str
    priority: int
    aim: str | None
    lead_cells: list[str | list[str]]
    network_keys: list[str]
    milestones: list[DraftMilestone]
    row: int | None
    position: int = 0
    # The file gives no reference: `ref` was made from the action's place, so a re-import
    # finds the stored action by its title instead (bot.domain.matching).
    by_title: bool = False


_Listed = TypeVar("_Listed", Person, Network)


@dataclass(slots=True)
class Listing(Generic[_Listed]):
    """People or networks as a file lists them, with the fields it has no column for.

    A file that lacks a column says nothing about it: `over` keeps the stored value of each
    such field, so a people file without a `slack` column leaves everyone's Slack id alone.
    """

    items: list[_Listed] = field(default_factory=list)
    # key -> names of the model's fields that the file did not give for it
    unstated: dict[str, frozenset[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    def over(self, stored: Mapping[str, _Listed]) -> list[_Listed]:
        """The items, each field the file did not give taken from `stored` where it has one."""
        out: list[_Listed] = []
        for item in self.items:
            before = stored.get(item.key)
            missing = self.unstated.get(item.key)
            if before is not None and missing:
                item = replace(item, **{name: getattr(before, name) for name in missing})
            out.append(item)
        return out


@dataclass(slots=True)
class PlanDraft:
    plan: Plan
    priorities: dict[int, str]
    actions: list[DraftAction]
    people: Listing[Person] = field(default_factory=Listing)
    networks: Listing[Network] = field(default_factory=Listing)
    problems: list[Problem] = field(default_factory=list)
    # Plan settings the file gives (thresholds, cycles, quarters, labels), merged into what is
    # stored; None when it gives none (a CSV or XLSX plan without --settings).
    settings: dict[str, Any] | None = None
    # A spreadsheet plan's own column headings, so that an export can use them.
    layout: list[str] | None = None
    # How a CSV plan's bytes were read ("UTF-8", "UTF-16", "Windows-1252"); None otherwise.
    encoding: str | None = None
    # The plan's key was made from the file's name: neither --plan nor the file gave one.
    key_from_file_name: bool = False
    # Where each row number of a Word or pasted plan is in the file ("table 4, row 7").
    places: dict[int, str] = field(default_factory=dict)
    # A Word plan's "Key areas" and "Overall lead" rows, by priority number.
    descriptions: dict[int, str] = field(default_factory=dict)
    priority_leads: dict[int, str] = field(default_factory=dict)

    # The file's own heading of each column read, by field ("leads": "Who should be involved?").
    headers: dict[str, str] = field(default_factory=dict)

    def located(self, problems: Iterable[Problem]) -> list[Problem]:
        """`problems` in the file's own words: its places ("table 4, row 7") for row numbers
        and its headings for the columns we name by our field names."""
        out = []
        for p in problems:
            if p.row is not None and p.row in self.places and p.place is None:
                p = replace(p, place=self.places[p.row])
            name = _FIELD_OF_LABEL.get(p.column or "")
            if name is not None and name in self.headers and p.column != self.headers[name]:
                p = replace(p, column=self.headers[name])
            out.append(p)
        return out
