"""Reading plan, people and networks files (YAML, CSV, XLSX) into drafts (DESIGN.md §5).

Nothing here writes anything: a file becomes a draft plus a list of every problem found,
with its row, column and value. The importer resolves leads and networks against the
directory and writes only when no problem is an error.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from bot.domain import timescales
from bot.domain.cycles import CyclePolicy
from bot.domain.errors import Problem, TimescaleError
from bot.domain.model import Channel, Network, Person, Plan, Quarters, RiskPolicy, Timescale
from bot.domain.ratings import RATINGS, rating_from_text

# Header aliases, compared after `_header_key` (case, spaces and dashes folded).
PLAN_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "priority": ("priority", "priorities", "workstream", "theme", "priority area"),
    "ref": ("ref", "reference", "ref.", "no.", "no", "id", "action ref", "action reference"),
    "action": (
        "key actions",
        "key action",
        "activity",
        "activities",
        "action",
        "actions",
        "what action is needed?",
    ),
    "aim": ("aims", "aim", "objective", "objectives"),
    "leads": ("lead(s)", "lead", "leads", "lead officer", "owner", "owner(s)"),
    "timescale": ("timescales", "timescale", "due", "due date", "by when", "deadline"),
    "milestones": ("milestones", "milestone", "deliverables"),
    "rating": (
        "progress 1 - 4",
        "progress 1-4",
        "progress (1-4)",
        "progress",
        "rating",
        "progress rating",
    ),
    "networks": ("network(s)", "network", "networks"),
    "note": ("notes", "note", "action update", "progress notes", "update", "comments"),
    # Written by `pulse export` for the board; worked out afresh, so read and ignored.
    "updated": ("last updated", "updated", "date updated"),
    "status": ("status",),
    "revised": ("revised date", "revised due date", "revised due"),
    "support": ("needs support", "support needed", "support"),
}
PEOPLE_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "key": ("key", "initials", "id"),
    "name": ("name", "full name"),
    "email": ("email", "e-mail", "email address"),
    "slack": ("slack", "slack id", "slack user id", "slack_user_id"),
    "prefers": ("prefers", "channel", "preferred channel"),
    "timezone": ("timezone", "time zone", "tz"),
    "delegate": ("delegate",),
    "away_until": ("away until", "away_until", "away"),
    "other_emails": ("other emails", "other_emails", "secondary emails", "also writes from"),
}
NETWORK_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "key": ("key", "id"),
    "name": ("name",),
    "slack_channel": ("slack_channel", "slack channel", "channel", "slack"),
    "coordinators": ("coordinators", "coordinator", "emails", "coordinator emails"),
    "all_actions": ("all_actions", "all actions", "oversight", "plan-wide"),
}

_BULLET = re.compile(r"^\s*(?:[-•*·‒–—▪◦●]|o(?=\s)|\d+[.)](?=\s))\s*")
_PRIORITY = re.compile(
    r"^\s*(?:(?:priority|workstream|theme|ws|p)\s*)?(\d+)(?:\.0+)?\b\s*[-–—:.)]?\s*(.*)$",
    re.IGNORECASE | re.DOTALL,
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_KEY = re.compile(r"^[\w][\w.\-]*$")


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


@dataclass(slots=True)
class PlanDraft:
    plan: Plan
    priorities: dict[int, str]
    actions: list[DraftAction]
    people: list[Person] = field(default_factory=list)
    networks: list[Network] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # Plan settings the file gives (thresholds, cycles, quarters, labels), merged into what is
    # stored; None when it gives none (a CSV or XLSX plan without --settings).
    settings: dict[str, Any] | None = None
    # A spreadsheet plan's own column headings, so that an export can use them.
    layout: list[str] | None = None


# --------------------------------------------------------------------------- tables


def header_key(text: str) -> str:
    """A heading folded for matching: case, spaces, underscores and dash styles ignored."""
    return re.sub(r"[\s_]+", "", str(text).casefold().replace("–", "-").replace("—", "-"))


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).replace("\r\n", "\n").replace("\r", "\n").strip()


def read_table(path: Path) -> list[list[str]]:
    """The rows of a CSV or XLSX file (first sheet) as text, header first."""
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        book = load_workbook(path, read_only=True, data_only=True)
        try:
            sheet = book.worksheets[0]
            return [[_cell_text(v) for v in row] for row in sheet.iter_rows(values_only=True)]
        finally:
            book.close()
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - cp1252 decodes nearly anything
        text = raw.decode("latin-1")
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], ",;\t")
    except csv.Error:
        dialect = csv.excel
    return [[_cell_text(c) for c in row] for row in csv.reader(io.StringIO(text), dialect)]


def _columns(
    header: Sequence[str], aliases: Mapping[str, tuple[str, ...]], problems: list[Problem]
) -> dict[str, int]:
    lookup = {header_key(a): name for name, names in aliases.items() for a in names}
    found: dict[str, int] = {}
    for index, title in enumerate(header):
        if not title.strip():
            continue
        name = lookup.get(header_key(title))
        if name is None:
            problems.append(Problem(1, title, None, "column not recognised; ignored", "warning"))
        elif name in found:
            problems.append(Problem(1, title, None, f"second {name!r} column; ignored", "warning"))
        else:
            found[name] = index
    return found


def _records(
    path: Path,
    aliases: Mapping[str, tuple[str, ...]],
    problems: list[Problem],
    header: list[str] | None = None,
) -> list[tuple[int, dict[str, str]]]:
    """(row number, {column: text}) for each non-empty data row; row 1 is the header."""
    if path.suffix.lower() in (".yaml", ".yml"):
        return _yaml_rows(_load_yaml(path, problems), aliases, path.name, problems)
    rows = read_table(path)
    if not rows:
        problems.append(Problem(None, None, None, "the file is empty"))
        return []
    columns = _columns(rows[0], aliases, problems)
    if header is not None:
        header.extend(cell for cell in rows[0] if cell.strip())
    out = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        out.append((number, {name: row[i] if i < len(row) else "" for name, i in columns.items()}))
    return out


def _load_yaml(path: Path, problems: list[Problem]) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        row = mark.line + 1 if mark is not None else None
        problems.append(Problem(row, None, None, f"not valid YAML: {exc}"))
        return None
    except UnicodeDecodeError as exc:
        problems.append(Problem(None, None, None, f"not UTF-8 text: {exc}"))
        return None


# --------------------------------------------------------------------------- people, networks


def _truthy(text: str) -> bool | None:
    value = text.strip().casefold()
    if value in ("true", "yes", "y", "1", "x"):
        return True
    if value in ("", "false", "no", "n", "0"):
        return False
    return None


def _parse_day(text: str) -> date:
    ts = timescales.parse(text)
    if ts.due is None:
        raise TimescaleError(text, "not a date")
    return ts.due


def people_from_records(
    records: Iterable[tuple[int, dict[str, str]]], problems: list[Problem]
) -> list[Person]:
    people: list[Person] = []
    seen: dict[str, int] = {}
    for row, rec in records:
        key = rec.get("key", "").strip()
        name = rec.get("name", "").strip() or key
        if not key:
            problems.append(Problem(row, "key", "", "a person needs a key"))
            continue
        if not _KEY.match(key):
            problems.append(Problem(row, "key", key, "a key is letters, digits, '.', '-', '_'"))
            continue
        if key.casefold() in seen:
            problems.append(
                Problem(
                    row, "key", key, f"duplicate person key (first on row {seen[key.casefold()]})"
                )
            )
            continue
        seen[key.casefold()] = row
        email = rec.get("email", "").strip() or None
        if email and not _EMAIL.match(email):
            problems.append(Problem(row, "email", email, "not an email address"))
        others = tuple(
            dict.fromkeys(
                a.casefold() for a in re.split(r"[;,\s]+", rec.get("other_emails", "")) if a
            )
        )
        for address in others:
            if not _EMAIL.match(address):
                problems.append(Problem(row, "other_emails", address, "not an email address"))
        prefers_text = rec.get("prefers", "").strip().casefold() or "email"
        if prefers_text not in ("slack", "email"):
            problems.append(Problem(row, "prefers", prefers_text, "must be 'slack' or 'email'"))
            prefers_text = "email"
        tz = rec.get("timezone", "").strip() or None
        if tz:
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                problems.append(Problem(row, "timezone", tz, "unknown timezone"))
                tz = None
        away: date | None = None
        if rec.get("away_until", "").strip():
            try:
                away = _parse_day(rec["away_until"])
            except TimescaleError as exc:
                problems.append(Problem(row, "away_until", rec["away_until"], exc.reason))
        people.append(
            Person(
                key=key,
                name=name,
                email=email,
                slack_user_id=rec.get("slack", "").strip() or None,
                prefers=Channel(prefers_text),
                timezone=tz,
                delegate_key=rec.get("delegate", "").strip() or None,
                away_until=away,
                other_emails=others,
            )
        )
    return people


def networks_from_records(
    records: Iterable[tuple[int, dict[str, str]]], problems: list[Problem]
) -> list[Network]:
    networks: list[Network] = []
    seen: dict[str, int] = {}
    for row, rec in records:
        key = rec.get("key", "").strip()
        if not key or not _KEY.match(key):
            problems.append(
                Problem(row, "key", key, "a network needs a key of letters, digits, '.', '-', '_'")
            )
            continue
        if key.casefold() in seen:
            problems.append(
                Problem(
                    row, "key", key, f"duplicate network key (first on row {seen[key.casefold()]})"
                )
            )
            continue
        seen[key.casefold()] = row
        coordinators = tuple(a for a in re.split(r"[;,\s]+", rec.get("coordinators", "")) if a)
        for address in coordinators:
            if not _EMAIL.match(address):
                problems.append(Problem(row, "coordinators", address, "not an email address"))
        all_actions = _truthy(rec.get("all_actions", ""))
        if all_actions is None:
            problems.append(
                Problem(row, "all_actions", rec.get("all_actions"), "must be true or false")
            )
        networks.append(
            Network(
                key=key,
                name=rec.get("name", "").strip() or key,
                slack_channel=rec.get("slack_channel", "").strip() or None,
                coordinators=coordinators,
                all_actions=bool(all_actions),
            )
        )
    return networks


def read_people(path: Path) -> tuple[list[Person], list[Problem]]:
    problems: list[Problem] = []
    records = _records(path, PEOPLE_COLUMNS, problems)
    return people_from_records(records, problems), problems


def read_networks(path: Path) -> tuple[list[Network], list[Problem]]:
    problems: list[Problem] = []
    records = _records(path, NETWORK_COLUMNS, problems)
    return networks_from_records(records, problems), problems


# --------------------------------------------------------------------------- plans


def milestone_lines(cell: str) -> list[str]:
    """The milestones in a cell: one per bulleted line; unbulleted lines continue the one
    before when the cell uses bullets, and stand alone when it doesn't."""
    lines = [line for line in cell.split("\n") if line.strip()]
    if not lines:
        return []
    bulleted = [bool(_BULLET.match(line)) for line in lines]
    if not any(bulleted):
        return [line.strip() for line in lines]
    out: list[str] = []
    for line, is_bullet in zip(lines, bulleted, strict=True):
        if is_bullet or not out:
            out.append(_BULLET.sub("", line, count=1).strip())
        else:
            out[-1] = f"{out[-1]} {line.strip()}"
    return [line for line in out if line]


def _priority(text: str) -> tuple[int | None, str]:
    match = _PRIORITY.match(text)
    if match:
        return int(match.group(1)), match.group(2).strip()
    return None, text.strip()


class _PlanBuilder:
    """Collects actions and milestones, assigning references and reporting problems."""

    def __init__(self, plan: Plan, problems: list[Problem]) -> None:
        self.plan = plan
        self.problems = problems
        self.priorities: dict[int, str] = {}
        self._priority_by_title: dict[str, int] = {}
        self.actions: list[DraftAction] = []
        self._by_ref: dict[str, DraftAction] = {}

    def priority(self, text: str, row: int | None, column: str) -> int:
        number, title = _priority(text)
        if number is None:
            existing = self._priority_by_title.get(title.casefold())
            if existing is not None:
                return existing
            number = max(self.priorities, default=0) + 1
        if number in self.priorities:
            if title and not self.priorities[number]:
                self.priorities[number] = title
            elif title and title.casefold() != self.priorities[number].casefold():
                self.problems.append(
                    Problem(
                        row,
                        column,
                        text,
                        f"priority {number} is already titled {self.priorities[number]!r}",
                        "warning",
                    )
                )
        else:
            self.priorities[number] = title
        if title:
            self._priority_by_title.setdefault(title.casefold(), number)
        return number

    def timescale(self, text: str, row: int | None, column: str) -> Timescale | None:
        try:
            ts = timescales.parse(text, plan_start=self.plan.start, quarters=self.plan.quarters)
        except TimescaleError as exc:
            self.problems.append(Problem(row, column, text, exc.reason))
            return None
        for warning in ts.warnings:
            self.problems.append(Problem(row, column, text, warning, "warning"))
        return ts

    def new_action(
        self,
        ref: str | None,
        title: str,
        priority: int,
        aim: str | None,
        row: int | None,
        column: str,
    ) -> DraftAction | None:
        if ref is None:
            n = sum(1 for a in self.actions if a.priority == priority) + 1
            ref = f"{priority}.{n}"
            while ref in self._by_ref:
                n += 1
                ref = f"{priority}.{n}"
        elif ref in self._by_ref:
            first = self._by_ref[ref].row
            self.problems.append(
                Problem(
                    row,
                    column,
                    ref,
                    f"duplicate reference (first used on row {first})"
                    if first
                    else "duplicate reference",
                )
            )
            return None
        action = DraftAction(ref, title, priority, aim, [], [], [], row, len(self.actions))
        self.actions.append(action)
        self._by_ref[ref] = action
        return action

    def finish(self) -> None:
        self._say_how_quarters_were_read()
        refs = {a.ref for a in self.actions}
        for action in self.actions:
            if not action.milestones:
                continue
            if len(action.milestones) == 1:
                action.milestones[0].ref = action.ref
            else:
                for n, milestone in enumerate(action.milestones, start=1):
                    milestone.ref = f"{action.ref}-{n}"
                    if milestone.ref in refs:
                        self.problems.append(
                            Problem(
                                milestone.row,
                                "ref",
                                milestone.ref,
                                "milestone reference clashes with an action reference",
                            )
                        )
            if not any(action.lead_cells):
                self.problems.append(
                    Problem(
                        action.row,
                        "leads",
                        "",
                        f"action {action.ref} has no lead: it shows in digests as 'no lead' "
                        "and cannot be prompted",
                        "warning",
                    )
                )
            for milestone in action.milestones:
                ts = milestone.timescale
                if ts.due is None and ts.recurrence is None and not ts.ongoing and not ts.start:
                    self.problems.append(
                        Problem(
                            milestone.row,
                            "timescale",
                            ts.text,
                            f"milestone {milestone.ref} has no date: it shows in digests as "
                            "'no date' and cannot be prompted",
                            "warning",
                        )
                    )

    def _say_how_quarters_were_read(self) -> None:
        """Once per import: how `Q1 2027` (a quarter or half of a plain year) was read."""
        readings = {
            m.timescale.quarters for a in self.actions for m in a.milestones if m.timescale.quarters
        }
        if not readings:
            return
        if self.plan.quarters is Quarters.FINANCIAL:
            how = "as financial-year quarters (Q1 2027 is April-June 2027), as the plan sets"
        else:
            how = (
                "as calendar quarters (Q1 2027 is January-March 2027); give the plan "
                "'quarters: financial' (--settings) to read them from April"
            )
        self.problems.append(
            Problem(None, "quarters", None, f"quarters of a plain year read {how}", "warning")
        )


def _rating(text: str, row: int | None, column: str, problems: list[Problem]) -> int | None:
    if not text.strip():
        return None
    rating = rating_from_text(text)
    if rating is None:
        problems.append(
            Problem(
                row, column, text, "a rating is 1-4 or a word of the scale (e.g. 'in progress')"
            )
        )
    return rating


def plan_from_records(
    plan: Plan, records: Sequence[tuple[int, dict[str, str]]], problems: list[Problem]
) -> PlanDraft:
    """A draft from table rows: one row per action or per milestone, DESIGN.md §5."""
    builder = _PlanBuilder(plan, problems)
    current: DraftAction | None = None
    priority_text = ""
    if records and "action" not in records[0][1] and "milestones" not in records[0][1]:
        problems.append(
            Problem(
                1,
                None,
                None,
                "no action column: expected one of 'Key actions', 'Activity', 'Action'",
            )
        )
        return PlanDraft(plan, {}, [], problems=problems)
    for row, rec in records:
        if rec.get("priority", "").strip():
            priority_text = rec["priority"]
        priority = builder.priority(priority_text or "1", row, "Priority")
        ref = rec.get("ref", "").strip() or None
        title = " ".join(rec.get("action", "").split())
        same_action = current is not None and (
            (ref is not None and ref == current.ref)
            or (
                ref is None
                and (not title or title == current.title)
                and current.priority == priority
            )
        )
        if not same_action:
            if not title and ref is None:
                problems.append(Problem(row, "Key actions", "", "a row needs an action"))
                continue
            current = builder.new_action(
                ref, title or "(untitled)", priority, rec.get("aim", "").strip() or None, row, "Ref"
            )
            if current is None:
                continue
        assert current is not None
        if rec.get("leads", "").strip():
            current.lead_cells.append(rec["leads"])
        for key in re.split(r"[;,\n]+", rec.get("networks", "")):
            if key.strip() and key.strip() not in current.network_keys:
                current.network_keys.append(key.strip())
        rating = _rating(rec.get("rating", ""), row, "Progress", problems)
        note = rec.get("note", "").strip() or None
        action_ts_text = rec.get("timescale", "").strip()
        lines = milestone_lines(rec.get("milestones", ""))
        if not lines:
            ts = builder.timescale(action_ts_text, row, "Timescales")
            if ts is not None:
                current.milestones.append(DraftMilestone(current.title, ts, rating, note, row))
            continue
        for line in lines:
            line_title, line_ts = timescales.split_milestone(line)
            column = "Milestones"
            # A line's own date wins; a line that only says "quarterly" or "rolling" does not
            # override a date in the row's Timescales cell.
            if action_ts_text and not _names_a_date(line_ts):
                line_title, line_ts, column = line, action_ts_text, "Timescales"
            ts = builder.timescale(line_ts, row, column)
            if ts is not None:
                current.milestones.append(DraftMilestone(line_title or line, ts, rating, note, row))
    builder.finish()
    return PlanDraft(plan, builder.priorities, builder.actions, problems=problems)


def _names_a_date(text: str) -> bool:
    if not text.strip():
        return False
    try:
        parsed = timescales.parse(text)
    except TimescaleError:
        return True  # an impossible date is still a date: let it be reported
    return parsed.due is not None or parsed.start is not None


def _policy(raw: object, problems: list[Problem]) -> RiskPolicy:
    if raw is None:
        return RiskPolicy()
    if not isinstance(raw, Mapping):
        problems.append(Problem(None, "plan.thresholds", repr(raw), "expected a mapping"))
        return RiskPolicy()
    known = RiskPolicy.__dataclass_fields__
    values: dict[str, int] = {}
    for name, value in raw.items():
        if name not in known:
            problems.append(
                Problem(None, f"plan.thresholds.{name}", repr(value), "unknown threshold")
            )
        elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems.append(
                Problem(
                    None,
                    f"plan.thresholds.{name}",
                    repr(value),
                    "a threshold is a whole number of days",
                )
            )
        else:
            values[name] = value
    return RiskPolicy(**values)


def _yaml_date(value: object, column: str, problems: list[Problem]) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    try:
        return _parse_day(str(value))
    except TimescaleError as exc:
        problems.append(Problem(None, column, str(value), exc.reason))
        return None


def plan_from_yaml(
    data: Any,
    plan_key: str | None,
    fallback_key: str,
    problems: list[Problem],
    stored: Mapping[str, Plan] | None = None,
) -> PlanDraft:
    """A draft from the full YAML form (see examples/wirral/plan.yaml)."""
    if not isinstance(data, Mapping):
        problems.append(
            Problem(None, None, None, "a YAML plan is a mapping with 'plan' and 'priorities'")
        )
        return PlanDraft(
            Plan(plan_key or fallback_key, plan_key or fallback_key), {}, [], problems=problems
        )
    meta = data.get("plan") or {}
    if not isinstance(meta, Mapping):
        problems.append(Problem(None, "plan", repr(meta), "expected a mapping"))
        meta = {}
    key = plan_key or str(meta.get("key") or fallback_key)
    before = stored.get(key) if stored else None
    # The full form says everything about the plan; a setting it leaves out is the default,
    # except `quarters`, new since, which keeps what is stored.
    base = Plan(key=key, title=key, quarters=before.quarters if before else Quarters.CALENDAR)
    plan, settings = plan_settings({**meta, "key": key}, base, problems, unknown="warning")
    people: list[Person] = []
    networks: list[Network] = []
    if data.get("people"):
        people = people_from_records(
            _yaml_rows(data["people"], PEOPLE_COLUMNS, "people", problems), problems
        )
    if data.get("networks"):
        networks = networks_from_records(
            _yaml_rows(data["networks"], NETWORK_COLUMNS, "networks", problems), problems
        )
    builder = _PlanBuilder(plan, problems)
    priorities = data.get("priorities") or []
    if not isinstance(priorities, list):
        problems.append(Problem(None, "priorities", None, "expected a list"))
        priorities = []
    for p_index, prio in enumerate(priorities):
        where = f"priorities[{p_index}]"
        if not isinstance(prio, Mapping):
            problems.append(Problem(None, where, repr(prio), "expected a mapping"))
            continue
        number = builder.priority(
            f"{prio.get('number', '')} {prio.get('title', '')}".strip() or str(p_index + 1),
            None,
            where,
        )
        for a_index, item in enumerate(prio.get("actions") or []):
            a_where = f"{where}.actions[{a_index}]"
            if not isinstance(item, Mapping) or not str(item.get("title") or "").strip():
                problems.append(Problem(None, a_where, None, "an action needs a title"))
                continue
            ref = str(item["ref"]).strip() if item.get("ref") not in (None, "") else None
            action = builder.new_action(
                ref,
                " ".join(str(item["title"]).split()),
                number,
                str(item["aim"]).strip() if item.get("aim") else None,
                None,
                f"{a_where}.ref",
            )
            if action is None:
                continue
            leads = item.get("leads") or []
            action.lead_cells.append(
                [str(x) for x in leads] if isinstance(leads, list) else str(leads)
            )
            nets = item.get("networks") or []
            action.network_keys.extend(
                str(x)
                for x in (nets if isinstance(nets, list) else re.split(r"[;,]\s*", str(nets)))
            )
            milestones = item.get("milestones") or [
                {
                    "title": action.title,
                    "timescale": item.get("timescale", ""),
                    "rating": item.get("rating"),
                    "note": item.get("note"),
                }
            ]
            for m_index, ms in enumerate(milestones):
                m_where = f"{a_where}.milestones[{m_index}]"
                if not isinstance(ms, Mapping):
                    problems.append(Problem(None, m_where, repr(ms), "expected a mapping"))
                    continue
                ts = builder.timescale(
                    _cell_text(ms.get("timescale", "")), None, f"{m_where}.timescale"
                )
                rating = _rating(_cell_text(ms.get("rating")), None, f"{m_where}.rating", problems)
                if ts is not None:
                    action.milestones.append(
                        DraftMilestone(
                            " ".join(str(ms.get("title") or action.title).split()),
                            ts,
                            rating,
                            str(ms["note"]).strip() if ms.get("note") else None,
                            None,
                        )
                    )
    builder.finish()
    draft = PlanDraft(plan, builder.priorities, builder.actions, people, networks, problems)
    draft.settings = settings
    return draft


# The keys of a plan's settings: the YAML form's `plan:` block, or a `--settings` file.
PLAN_SETTINGS = (
    "key", "title", "organisation", "timezone", "start", "quarters", "labels", "thresholds",
    "cycles",
)  # fmt: skip


def plan_settings(
    meta: Mapping[Any, Any], base: Plan, problems: list[Problem], *, unknown: str = "error"
) -> tuple[Plan, dict[str, Any]]:
    """`base` with the plan settings in `meta` applied, and the settings to store with it.

    A setting left out of `meta` keeps its value in `base`. Each bad value is a problem
    named `plan.<setting>`; an unknown setting is a problem of severity `unknown`.
    """
    for name in meta:
        if name not in PLAN_SETTINGS:
            problems.append(
                Problem(None, f"plan.{name}", None, "unknown plan setting; ignored", unknown)
            )
    changes: dict[str, Any] = {}
    stored: dict[str, Any] = {}
    if meta.get("key") not in (None, "") and str(meta["key"]) != base.key:
        problems.append(
            Problem(
                None, "plan.key", str(meta["key"]), f"these settings are not for plan {base.key}"
            )
        )
    if "title" in meta:
        changes["title"] = str(meta.get("title") or base.key)
    if "organisation" in meta:
        changes["organisation"] = str(meta["organisation"]) if meta["organisation"] else None
    if "timezone" in meta:
        timezone = str(meta.get("timezone") or "Europe/London")
        try:
            ZoneInfo(timezone)
            changes["timezone"] = timezone
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(Problem(None, "plan.timezone", timezone, "unknown timezone"))
    if "start" in meta:
        changes["start"] = _yaml_date(meta.get("start"), "plan.start", problems)
    if meta.get("thresholds") is not None:
        changes["policy"] = _policy(meta["thresholds"], problems)
        stored["thresholds"] = asdict(changes["policy"])
    if meta.get("quarters") is not None:
        text = str(meta["quarters"]).strip().casefold()
        if text in set(Quarters):
            changes["quarters"] = stored["quarters"] = Quarters(text)
        else:
            problems.append(
                Problem(
                    None, "plan.quarters", str(meta["quarters"]), "must be calendar or financial"
                )
            )
    if meta.get("labels") is not None:
        labels = _labels(meta["labels"], problems)
        if labels is not None:
            stored["labels"] = labels
    raw_cycles = meta.get("cycles")
    if raw_cycles is not None:
        try:
            if not isinstance(raw_cycles, Mapping):
                raise ValueError("expected a mapping with prompt, digest, remind_after, holidays")
            CyclePolicy.from_settings(raw_cycles)
            stored["cycles"] = _plain(raw_cycles)
        except ValueError as exc:
            problems.append(Problem(None, "plan.cycles", None, str(exc)))
    return replace(base, **changes), stored


def _labels(raw: object, problems: list[Problem]) -> dict[str, str] | None:
    """A rating scale's labels: {1: "Achieved", ...}, each rating at most once."""
    if not isinstance(raw, Mapping):
        problems.append(
            Problem(None, "plan.labels", repr(raw), "expected a mapping of 1-4 to labels")
        )
        return None
    labels: dict[str, str] = {}
    for rating, label in raw.items():
        number = int(rating) if str(rating).strip() in {str(r) for r in RATINGS} else None
        if number is None or not isinstance(label, str) or not label.strip():
            problems.append(
                Problem(
                    None,
                    f"plan.labels.{rating}",
                    repr(label),
                    "a label is a rating 1-4 and its words",
                )
            )
            continue
        labels[str(number)] = " ".join(label.split())
    return labels


def read_settings(path: Path, base: Plan, problems: list[Problem]) -> tuple[Plan, dict[str, Any]]:
    """A plan's settings from a `--settings` file: the YAML form's `plan:` block alone."""
    found: list[Problem] = []
    data = _load_yaml(path, found) if path.suffix.lower() in (".yaml", ".yml") else None
    if data is None and not found:
        found.append(Problem(None, None, None, "a settings file is YAML: the plan: block alone"))
    if isinstance(data, Mapping) and "plan" in data:
        others = sorted(str(k) for k in data if k != "plan")
        if others:
            found.append(
                Problem(
                    None,
                    None,
                    None,
                    f"a settings file holds the plan: block alone, not {', '.join(others)}",
                )
            )
        data = data["plan"]
    plan = base
    settings: dict[str, Any] = {}
    if data is not None and not isinstance(data, Mapping):
        found.append(Problem(None, None, repr(data), "expected a mapping of plan settings"))
    elif isinstance(data, Mapping):
        plan, settings = plan_settings(data, base, found)
    for problem in found:
        column = f"{path.name}: {problem.column}" if problem.column else path.name
        problems.append(
            Problem(problem.row, column, problem.value, problem.reason, problem.severity)
        )
    return plan, settings


def _plain(value: Any) -> Any:
    """YAML values as JSON-storable ones (times as HH:MM)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, time):
        return value.strftime("%H:%M")
    return value


def _yaml_rows(
    items: object, aliases: Mapping[str, tuple[str, ...]], where: str, problems: list[Problem]
) -> list[tuple[int, dict[str, str]]]:
    if not isinstance(items, list):
        problems.append(Problem(None, where, None, "expected a list"))
        return []
    lookup = {header_key(a): name for name, names in aliases.items() for a in names}
    out: list[tuple[int, dict[str, str]]] = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, Mapping):
            problems.append(Problem(index, where, repr(item), "expected a mapping"))
            continue
        row: dict[str, str] = {}
        for k, v in item.items():
            name = lookup.get(header_key(str(k)))
            if name is not None:
                row[name] = (
                    ";".join(_cell_text(x) for x in v) if isinstance(v, list) else _cell_text(v)
                )
        out.append((index, row))
    return out


def read_plan(
    path: Path,
    *,
    plan_key: str | None,
    existing_title: str | None = None,
    stored: Mapping[str, Plan] | None = None,
    settings: Path | None = None,
) -> PlanDraft:
    """A draft of the plan in `path` (YAML, CSV or XLSX) with every problem found.

    `stored` holds the plans already imported, by key: a CSV or XLSX plan keeps the stored
    plan's settings, with those of the `settings` file (the YAML form's `plan:` block)
    applied over them.
    """
    problems: list[Problem] = []
    fallback = re.sub(r"[^a-z0-9]+", "-", path.stem.casefold()).strip("-") or "plan"
    if path.suffix.lower() in (".yaml", ".yml"):
        if settings is not None:
            problems.append(
                Problem(
                    None,
                    None,
                    settings.name,
                    "--settings is for CSV and XLSX plans; a YAML plan has its own plan: block",
                )
            )
        return plan_from_yaml(_load_yaml(path, problems), plan_key, fallback, problems, stored)
    key = plan_key or fallback
    plan = (stored or {}).get(key) or Plan(key=key, title=existing_title or key)
    given: dict[str, Any] | None = None
    if settings is not None:
        plan, given = read_settings(settings, plan, problems)
    layout: list[str] = []
    draft = plan_from_records(plan, _records(path, PLAN_COLUMNS, problems, layout), problems)
    draft.layout = layout or None
    draft.settings = given
    return draft
