"""Importing a plan with its people and networks: all or nothing (DESIGN.md §5).

Every file is read and every lead and network resolved before anything is written; if any
problem is an error, `ImportFailed` lists them all and the store is untouched. Re-importing
updates actions and milestones by reference; those no longer in the file are retired, never
deleted, and every update stays. An import that would retire more than half of a plan's live
actions is refused unless asked for (`retire_missing`). A sheet's rating never undoes a lead's
answer (`bot.domain.reimport`).

How it is written keeps SQLite's single write lock short, for a Slack click waits on it (and
gives up after 3 s):

- A NEW plan is staged: its people and networks go in first (adding or updating them is
  harmless on its own), then the plan under a key no one can name (`STAGED_PLAN_PREFIX`) and
  retired, so that no listing, cycle, digest or Slack view sees it; then its actions, links,
  milestones and sheet ratings in transactions of `chunk_size` actions each, a short pause
  between them on SQLite unless the store was empty (`_Pauses`); and last one short
  transaction gives it its own key and makes it live. Anyone reading the store sees
  the whole plan or none of it. On any failure the staged plan is deleted again, and one left
  by a crash is deleted by the next import once it is an hour old (`STALE_STAGING`).
- A re-import of an EXISTING plan stays one transaction: it must match actions and
  milestones against the stored ones, retire the missing and weigh sheet ratings against
  answers all at once, and it writes only what changed (nothing for an unchanged file), so
  it is short where it matters. The files are read and the leads resolved before it begins.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import delete, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from bot.domain.child_details import case_number_pattern, child_details
from bot.domain.drafts import DraftAction, DraftMilestone, Listing, PlanDraft
from bot.domain.errors import ImportFailed, PlanKeyNeeded, PlanRetired, Problem
from bot.domain.leads import Directory, read_leads
from bot.domain.matching import Incoming, Matching, Stored, match
from bot.domain.model import Network, Person, Plan
from bot.domain.people import Alias, fold_aliases, shared_mailboxes
from bot.domain.reimport import Answer, Progress, decide
from bot.domain.shifting import add_months, latest_rated_month, months_between, shift_timescale
from bot.domain.status import local_date
from storage.models import (
    STAGED_PLAN_PREFIX,
    ActionLeadRow,
    ActionNetworkRow,
    ActionRow,
    MilestoneRow,
    NetworkRow,
    PersonRow,
    PlanNetworkRow,
    PlanRow,
    PriorityRow,
    UpdateRow,
)
from storage.repositories import (
    NetworkRepository,
    NewUpdate,
    PeopleRepository,
    PlanRepository,
    UpdateRepository,
    apply_changes,
    insert_rows,
    not_staged,
    plan_from_row,
    read_rows,
)

log = logging.getLogger(__name__)

# Actions written per transaction when a new plan is staged: with three milestones each, a
# lead and a rating, about 8,000 rows, a few tenths of a second of SQLite's write lock.
CHUNK_SIZE = 1000
# People written per transaction: a person is one narrow row, so five times as many fit in
# the same few tenths of a second (and each transaction saved is a pause saved).
PEOPLE_PER_ACTION_CHUNK = 5
# The pause between a staged import's long transactions on SQLite (`_Pauses`). A writer
# kept waiting by one (a Slack click) retries every 100 ms once it has waited a third of a
# second, and the lock goes to whoever asks first, not to who waited longest: without a gap
# at least that long, the import's next transaction could take the lock again and again
# before it.
SQLITE_PAUSE = 0.1
# A staged plan this old was left by an import that crashed (a whole import takes seconds).
STALE_STAGING = timedelta(hours=1)
# Called after each chunk of a staged import commits, with the number of actions written so
# far: a place to watch progress, or for a test to look at the store mid-import.
ChunkHook = Callable[[int], Awaitable[None]]


class PlanReader(Protocol):
    """Reads plan, people and networks files into drafts: `handlers.files.plan_files`, which
    `handlers.files.importing.import_plan` hands in (storage reads no files itself)."""

    def read_plan(
        self,
        path: Path,
        *,
        plan_key: str | None,
        existing_title: str | None = None,
        stored: Mapping[str, Plan] | None = None,
        settings: Path | None = None,
        sheet: str | None = None,
    ) -> PlanDraft: ...

    def read_people(self, path: Path) -> tuple[Listing[Person], list[Problem]]: ...

    def read_networks(self, path: Path) -> tuple[Listing[Network], list[Problem]]: ...


@dataclass(slots=True)
class ImportReport:
    """What an import did (or, with --dry-run, would do)."""

    plan_key: str
    dry_run: bool = False
    created_plan: bool = False
    people_added: int = 0
    people_changed: int = 0
    networks_added: int = 0
    networks_changed: int = 0
    actions_added: int = 0
    actions_changed: int = 0
    actions_retired: int = 0
    milestones_added: int = 0
    milestones_changed: int = 0
    milestones_retired: int = 0
    ratings_recorded: int = 0
    warnings: list[Problem] = field(default_factory=list)
    # How a CSV plan file's bytes were read, e.g. "UTF-8" or "Windows-1252".
    encoding: str | None = None
    # Sheet values that differ from a lead's answer, one line each (see bot.domain.reimport).
    conflicts: list[str] = field(default_factory=list)
    # Actions found by their title under a new made-up reference: "1.3 is now 1.4: Title".
    renumbered: list[str] = field(default_factory=list)
    shifted_months: int | None = None  # --shift-dates: by how many months

    def summary(self) -> str:
        shifted = (
            f"; dates shifted by {self.shifted_months} months"
            if self.shifted_months is not None
            else ""
        )
        if self.created_plan:
            verb = "would import new plan" if self.dry_run else "imported new plan"
        else:
            verb = "would re-import plan" if self.dry_run else "re-imported plan"
        return (
            f"{verb} {self.plan_key}: actions +{self.actions_added} "
            f"~{self.actions_changed} retired {self.actions_retired}; milestones "
            f"+{self.milestones_added} ~{self.milestones_changed} retired "
            f"{self.milestones_retired}; people +{self.people_added} ~{self.people_changed}; "
            f"networks +{self.networks_added} ~{self.networks_changed}"
            + (f"; renumbered {len(self.renumbered)}" if self.renumbered else "")
            + f"; ratings recorded {self.ratings_recorded}; conflicts with answers "
            f"{len(self.conflicts)}; warnings {len(self.warnings)}"
            + (f"; read as {self.encoding}" if self.encoding else "")
            + shifted
        )


class _DryRunRollback(Exception):
    """Raised inside the transaction to undo a dry run after counting what it would do."""


def _given_at(ratings_as_of: date | datetime, timezone: str) -> datetime:
    if isinstance(ratings_as_of, datetime):
        moment = ratings_as_of
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo(timezone))
        return moment.astimezone(UTC)
    # A rating "as of" a day is taken at noon there, safely inside the day in every zone.
    return datetime.combine(ratings_as_of, time(12), ZoneInfo(timezone)).astimezone(UTC)


async def import_plan(
    sessions: async_sessionmaker[AsyncSession],
    plan_path: Path,
    *,
    reader: PlanReader,
    now: datetime,
    people_path: Path | None = None,
    networks_path: Path | None = None,
    plan_key: str | None = None,
    ratings_as_of: date | datetime | None = None,
    dry_run: bool = False,
    settings_path: Path | None = None,
    prefer_sheet: bool = False,
    retire_missing: bool = False,
    sheet: str | None = None,
    shift_dates: bool = False,
    chunk_size: int = CHUNK_SIZE,
    chunk_hook: ChunkHook | None = None,
) -> ImportReport:
    """Import `plan_path` (and optional people and networks files): a new plan staged in
    transactions of `chunk_size` actions and switched over at the end, a re-import in one
    transaction (see the module's docstring).

    `settings_path` gives a CSV or XLSX plan its settings (the YAML form's `plan:` block);
    `sheet` picks an XLSX plan's sheet. `shift_dates` moves every date by whole months so
    that the month the ratings were given is `now`'s (in the plan's timezone): for samples.

    Raises `ImportFailed` with every problem, having written nothing, when any is an error.
    With `prefer_sheet`, the sheet's rating and note are recorded even over a lead's answer;
    with `retire_missing`, an import may retire more than half of the plan's actions.
    `chunk_hook` is awaited after each chunk of a staged import.
    """
    if not dry_run:
        await purge_staged(sessions, older_than=now - STALE_STAGING)
    problems: list[Problem] = []
    file_people: Listing[Person] = Listing()
    file_networks: Listing[Network] = Listing()
    # The files an error is about, so that the refusal names them and not just the plan.
    failed: list[str] = []
    if people_path is not None:
        file_people, found = reader.read_people(people_path)
        problems += [_tag(p, people_path) for p in found]
        failed += [str(people_path)] if _has_error(found) else []
    if networks_path is not None:
        file_networks, found = reader.read_networks(networks_path)
        problems += [_tag(p, networks_path) for p in found]
        failed += [str(networks_path)] if _has_error(found) else []

    # The files are read and every lead resolved with no transaction open (SQLite's write
    # lock is taken when one begins): only the writing holds the lock, so Slack clicks and
    # replies are kept waiting for the write alone.
    ready = await _prepare(
        sessions,
        plan_path,
        reader,
        plan_key=plan_key,
        problems=problems,
        file_people=file_people,
        file_networks=file_networks,
        failed=failed,
        settings_path=settings_path,
        retire_missing=retire_missing,
        sheet=sheet,
    )
    draft = ready.draft
    shifted = None
    if shift_dates:
        shifted, ratings_as_of = _shift_dates(draft, now, ratings_as_of)
    report = ImportReport(
        draft.plan.key,
        dry_run=dry_run,
        warnings=[p for p in problems if p.severity != "error"],
        encoding=draft.encoding,
        shifted_months=shifted,
    )
    if ready.new_plan and not dry_run:
        await _import_staged(
            sessions,
            plan_path,
            ready,
            now=now,
            ratings_as_of=ratings_as_of or now,
            report=report,
            chunk_size=max(1, chunk_size),
            chunk_hook=chunk_hook,
        )
        log.info("%s", report.summary())
        return report
    try:
        async with sessions() as session, session.begin():
            await _plan_row(session, plan_path, draft)  # again, under the lock
            await _write(
                session,
                draft,
                people=ready.people,
                networks=ready.networks,
                leads_by_action=ready.leads_by_action,
                now=now,
                ratings_as_of=ratings_as_of or now,
                report=report,
                prefer_sheet=prefer_sheet,
            )
            if dry_run:
                raise _DryRunRollback
    except _DryRunRollback:
        pass
    log.info("%s", report.summary())
    return report


async def _child_detail_warnings(session: AsyncSession, draft: PlanDraft) -> list[Problem]:
    """A warning (never the value) for each imported note that looks like it holds a
    child's details; a lead's note would be refused, an imported one is only reported."""
    stored = await session.scalar(select(PlanRow.settings).where(PlanRow.key == draft.plan.key))
    text = {**(stored or {}), **(draft.settings or {})}.get("case_numbers")
    pattern = case_number_pattern(str(text)) if text else None
    warnings = []
    for action in draft.actions:
        for milestone in action.milestones:
            found = child_details(milestone.note or "", case_numbers=pattern)
            if found:
                kinds = ", ".join(dict.fromkeys(d.kind.value for d in found))
                warnings.append(
                    Problem(
                        milestone.row,
                        "Notes",
                        None,
                        f"the note of {milestone.ref or action.ref} looks like it holds a "
                        f"child's details ({kinds}); imported, but rephrase it in the plan",
                        "warning",
                    )
                )
    return warnings


async def _plan_row(session: AsyncSession, plan_path: Path, draft: PlanDraft) -> PlanRow | None:
    """The stored plan the draft goes into, or None for a new one; refuses a retired plan,
    and a new plan keyed by the file's name beside others (a forgotten --plan)."""
    plan_row = await PlanRepository(session).row(draft.plan.key)
    if plan_row is None and draft.key_from_file_name:
        # `pulse import plan.csv` beside a plan keyed otherwise is a forgotten --plan, not
        # a second plan whose leads would then be asked twice.
        others = await PlanRepository(session).keys(retired_too=True)
        if others:
            raise PlanKeyNeeded(plan_path.name, draft.plan.key, others)
    if plan_row is not None and plan_row.retired_at is not None:
        raise PlanRetired(draft.plan.key, "nothing was imported")
    return plan_row


@dataclass(slots=True)
class _Ready:
    """A plan read, checked and resolved, ready to write."""

    draft: PlanDraft
    people: list[Person]
    networks: list[Network]
    leads_by_action: dict[str, tuple[str, ...]]
    # No plan had its key when the store was read: it is staged (see the module's docstring).
    new_plan: bool
    # The store held no plan and no person when it was read: no one can be answering or
    # changing anything, so no writer can be kept waiting by the import (see `_Pauses`).
    empty_store: bool = False


async def _prepare(
    sessions: async_sessionmaker[AsyncSession],
    plan_path: Path,
    reader: PlanReader,
    *,
    plan_key: str | None,
    problems: list[Problem],
    file_people: Listing[Person],
    file_networks: Listing[Network],
    failed: list[str],
    settings_path: Path | None,
    retire_missing: bool,
    sheet: str | None,
) -> _Ready:
    """The plan read and checked against the store, with its leads resolved; `problems`
    gains every problem found, and `ImportFailed` lists them when any is an error. Reads the
    store in two short transactions and the files in none."""
    async with sessions() as session:
        existing_title = None
        if plan_key:
            existing = await PlanRepository(session).row(plan_key)
            existing_title = existing.title if existing else None
        # Stored plans keep their settings when a CSV or XLSX re-import does not give them.
        stored = {
            row.key: plan_from_row(row)
            for row in await session.scalars(select(PlanRow).where(not_staged()))
        }
        known = await PeopleRepository(session).all()
        stored_networks = {n.key: n for n in await NetworkRepository(session).all()}
    draft = reader.read_plan(
        plan_path,
        plan_key=plan_key,
        existing_title=existing_title,
        stored=stored,
        settings=settings_path,
        sheet=sheet,
    )
    plan_problems = len(problems)
    problems += draft.problems
    if draft.plan.key.startswith(STAGED_PLAN_PREFIX):
        problems.append(
            Problem(
                None,
                "plan key",
                draft.plan.key,
                f"a plan key may not start with {STAGED_PLAN_PREFIX!r} (it marks a plan "
                "still being imported)",
            )
        )
    async with sessions() as session:
        problems += await _child_detail_warnings(session, draft)
        plan_row = await _plan_row(session, plan_path, draft)
        if plan_row is not None and not retire_missing:
            problems += await _retiring_too_much(session, plan_row.id, draft)
    # A column a file lacks keeps what is stored: only the fields it gives change.
    stored_people = {p.key: p for p in known}
    given_people = draft.people.over(stored_people) + file_people.over(stored_people)
    given_networks = draft.networks.over(stored_networks) + file_networks.over(stored_networks)
    incoming, aliases = fold_aliases(given_people, known=known)
    people = _merge(stored_people, incoming)
    problems += _mailbox_notes(aliases, people, {p.key for p in incoming})
    networks = _merge(stored_networks, given_networks)
    leads_by_action = _resolve(draft, people, networks, problems)
    problems[:] = draft.located(problems)
    for person in people.values():
        if person.delegate_key and person.delegate_key not in people:
            problems.append(
                Problem(
                    None,
                    "delegate",
                    person.delegate_key,
                    f"delegate of {person.key} is not a known person",
                )
            )
    if _has_error(problems[plan_problems:]):
        failed = [str(plan_path), *failed]
    if failed:
        raise ImportFailed(", ".join(failed), problems)
    return _Ready(
        draft,
        incoming,
        given_networks,
        leads_by_action,
        new_plan=plan_row is None,
        empty_store=not stored and not known,
    )


def _shift_dates(
    draft: PlanDraft, now: datetime, ratings_as_of: date | datetime | None
) -> tuple[int, date | datetime | None]:
    """Move the draft's dates (milestones' due and start, the plan's start) by whole months
    so that the month its ratings were given (`ratings_as_of`; without it, the latest due
    date of a rated milestone) is the current one. The months, and `ratings_as_of` moved
    likewise (never past `now`)."""
    today = local_date(now, draft.plan.timezone)
    if ratings_as_of is not None:
        rated_on: date | None = (
            ratings_as_of.date() if isinstance(ratings_as_of, datetime) else ratings_as_of
        )
    else:
        rated = [m.timescale for a in draft.actions for m in a.milestones if m.rating is not None]
        rated_on = latest_rated_month(rated)
    if rated_on is None:
        return 0, ratings_as_of
    months = months_between(rated_on, today)
    for action in draft.actions:
        for milestone in action.milestones:
            milestone.timescale = shift_timescale(milestone.timescale, months)
    if draft.plan.start is not None:
        draft.plan = replace(draft.plan, start=add_months(draft.plan.start, months))
    if ratings_as_of is not None:
        ratings_as_of = min(add_months(rated_on, months), today)
    return months, ratings_as_of


def _mailbox_notes(
    aliases: list[Alias], people: dict[str, Person], imported: set[str]
) -> list[Problem]:
    """Report each alias, and each shared mailbox among the people imported. A stored
    person whose key is now someone's alias is dropped from `people`: leads naming that key
    are that someone from now on (the stored record stays, with its history)."""
    notes = []
    for alias in aliases:
        people.pop(alias.alias, None)
        notes.append(
            Problem(
                None,
                "people",
                alias.alias,
                f"same name and address as {alias.key} ({alias.name}, {alias.email}): "
                f"another key of the same person (an alias of {alias.key})",
                "warning",
            )
        )
    for address, sharing in shared_mailboxes(people.values()).items():
        if imported & {p.key for p in sharing}:
            names = ", ".join(f"{p.key} ({p.name})" for p in sharing)
            notes.append(
                Problem(
                    None,
                    "people",
                    address,
                    f"a shared mailbox: {names} are separate people, asked in one combined "
                    "email prompt a cycle",
                    "warning",
                )
            )
    return notes


def _has_error(problems: list[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)


async def _retiring_too_much(
    session: AsyncSession, plan_id: int, draft: PlanDraft
) -> list[Problem]:
    """An error when the file would retire more than half of the plan's live actions: a
    header-only or truncated sheet, far more often than a plan cut in half. Actions are
    matched as the import will match them (by reference, or by title where made up); the
    milestones counted are those of the actions retired and those no longer named."""
    rows = await session.execute(
        select(ActionRow.id, PriorityRow.number, ActionRow.ref, ActionRow.title)
        .join(PriorityRow, PriorityRow.id == ActionRow.priority_id)
        .where(ActionRow.plan_id == plan_id, ActionRow.retired.is_(False))
    )
    live = [Stored(*row) for row in rows.tuples()]
    matching = match(_incoming(draft), live)
    missing_actions = {s.id for s in live} - matching.claimed
    if 2 * len(missing_actions) <= len(live):
        return []
    milestones = await session.execute(
        select(MilestoneRow.ref, MilestoneRow.action_id).where(
            MilestoneRow.plan_id == plan_id, MilestoneRow.retired.is_(False)
        )
    )
    live_milestones = milestones.tuples().all()
    named = {m.ref for a in draft.actions for m in a.milestones}
    missing_milestones = [
        ref for ref, action in live_milestones if action in missing_actions or ref not in named
    ]
    return [
        Problem(
            None,
            None,
            None,
            f"this file would retire {len(missing_actions)} of the plan's "
            f"{len(live)} actions and {len(missing_milestones)} of its "
            f"{len(live_milestones)} milestones; if that is meant, import it with "
            "--retire-missing",
        )
    ]


def _incoming(draft: PlanDraft) -> list[Incoming]:
    return [Incoming(a.priority, a.ref, a.title, a.by_title) for a in draft.actions]


def _tag(problem: Problem, path: Path) -> Problem:
    column = f"{path.name}: {problem.column}" if problem.column else path.name
    return Problem(problem.row, column, problem.value, problem.reason, problem.severity)


_Keyed = TypeVar("_Keyed", Person, Network)


def _merge(known: dict[str, _Keyed], new: list[_Keyed]) -> dict[str, _Keyed]:
    merged = dict(known)
    for item in new:
        merged[item.key] = item
    return merged


def _resolve(
    draft: PlanDraft,
    people: dict[str, Person],
    networks: dict[str, Network],
    problems: list[Problem],
) -> dict[str, tuple[str, ...]]:
    directory = Directory(people.values())
    network_keys = {k.casefold(): k for k in networks}
    out: dict[str, tuple[str, ...]] = {}
    unknown_leads = 0
    # A network that follows priorities gets every action of them.
    following = [(n.key, set(n.priorities)) for n in networks.values() if n.priorities]
    for key, numbers in following:
        for number in sorted(numbers - set(draft.priorities)):
            problems.append(
                Problem(
                    None,
                    "priorities",
                    str(number),
                    f"network {key} follows priority {number}, which the plan does not have",
                    "warning",
                )
            )
    for action in draft.actions:
        for key, numbers in following:
            if action.priority in numbers and key not in action.network_keys:
                action.network_keys.append(key)
        keys: list[str] = []
        for cell in action.lead_cells:
            reading = read_leads(cell, directory)
            shown = cell if isinstance(cell, str) else ", ".join(cell)
            unknown_leads += len(reading.unknown)
            for part in reading.unknown:
                problems.append(
                    Problem(
                        action.row,
                        "Lead(s)",
                        shown,
                        f"unknown lead {part!r} for action {action.ref}: add them to the people "
                        "file or correct the cell",
                    )
                )
            for warning in reading.warnings:
                problems.append(Problem(action.row, "Lead(s)", shown, warning, "warning"))
            keys += [k for k in reading.keys if k not in keys]
        out[action.ref] = tuple(keys)
        resolved = []
        for key in action.network_keys:
            found = network_keys.get(key.casefold())
            if found is None:
                problems.append(
                    Problem(
                        action.row,
                        "Network(s)",
                        key,
                        f"unknown network for action {action.ref}: add it to the networks file",
                    )
                )
            else:
                resolved.append(found)
        action.network_keys = resolved
    if unknown_leads:
        problems.append(
            Problem(
                None,
                None,
                None,
                "to start a people file from the plan's leads: "
                "pulse people draft PLAN_FILE > people.csv, then fill in the emails",
                "note",
            )
        )
    return out


async def _write(
    session: AsyncSession,
    draft: PlanDraft,
    *,
    people: list[Person],
    networks: list[Network],
    leads_by_action: dict[str, tuple[str, ...]],
    now: datetime,
    ratings_as_of: date | datetime,
    report: ImportReport,
    prefer_sheet: bool,
) -> None:
    report.people_added, report.people_changed = await PeopleRepository(session).upsert(people)
    report.networks_added, report.networks_changed = await NetworkRepository(session).upsert(
        networks
    )
    person_id = await PeopleRepository(session).ids_by_key()
    network_rows = await NetworkRepository(session).rows_by_key()

    plan = draft.plan
    plan_row = await session.scalar(select(PlanRow).where(PlanRow.key == plan.key))
    is_yaml_plan = bool(draft.people or draft.networks) or plan.start is not None
    if plan_row is None:
        report.created_plan = True
        plan_row = PlanRow(
            key=plan.key,
            title=plan.title,
            organisation=plan.organisation,
            timezone=plan.timezone,
            start=plan.start,
            created_at=now,
            updated_at=now,
            settings={},
        )
        session.add(plan_row)
    elif plan.title != plan.key or is_yaml_plan or draft.settings is not None:
        plan_row.title, plan_row.organisation = plan.title, plan.organisation
        plan_row.timezone, plan_row.start = plan.timezone, plan.start
    if draft.settings:
        plan_row.settings = {**(plan_row.settings or {}), **draft.settings}
    if draft.layout is not None:
        plan_row.settings = {**(plan_row.settings or {}), "layout": draft.layout}
    plan_row.updated_at = now
    await session.flush()
    timezone = plan_row.timezone

    # The networks that get this plan's digests: those its actions name and the plan-wide ones
    # that came with it.
    linked = {n for a in draft.actions for n in a.network_keys}
    linked |= {n.key for n in networks if n.all_actions}
    current_links = set(
        (
            await session.scalars(
                select(PlanNetworkRow.network_id).where(PlanNetworkRow.plan_id == plan_row.id)
            )
        ).all()
    )
    for key in sorted(linked):
        if network_rows[key].id not in current_links:
            session.add(PlanNetworkRow(plan_id=plan_row.id, network_id=network_rows[key].id))

    priority_rows = {
        p.number: p
        for p in (
            await session.scalars(select(PriorityRow).where(PriorityRow.plan_id == plan_row.id))
        ).all()
    }
    # A Word or pasted plan (one with places) says what each priority covers and who leads
    # it; a row dropped from it clears what was stored. Other files keep what is stored.
    from_blocks = bool(draft.places)
    for number, title in draft.priorities.items():
        row = priority_rows.get(number)
        if row is None:
            row = PriorityRow(plan_id=plan_row.id, number=number, title=title)
            session.add(row)
            priority_rows[number] = row
        elif title and row.title != title:
            row.title = title
        if from_blocks:
            apply_changes(
                row,
                {
                    "description": draft.descriptions.get(number),
                    "leads": draft.priority_leads.get(number),
                },
            )
    await session.flush()

    number_of = {row.id: number for number, row in priority_rows.items()}
    # Stored actions and milestones are read as plain column tuples (a national plan has
    # tens of thousands), compared in Python, and only those that differ are written.
    action_rows = await _stored(session, ActionRow, plan_row.id, _ACTION_COLUMNS)
    matching = match(
        _incoming(draft),
        [
            Stored(row_id, number_of.get(priority_id), ref, title, retired)
            for row_id, (ref, title, _, priority_id, _, retired) in action_rows.items()
        ],
    )
    report.renumbered += [str(r) for r in matching.renumbered]
    await _free_refs(session, ActionRow, action_rows, [a.ref for a in draft.actions], matching)
    rated: list[tuple[str, int | None, str | None]] = []

    # Actions first, so that new ones have ids; then links and milestones. New rows go in as
    # bulk inserts (a national plan adds tens of thousands), changed ones as bulk updates.
    new_actions: list[dict[str, object]] = []
    changed_actions: list[dict[str, object]] = []
    for action, matched in zip(draft.actions, matching.ids, strict=True):
        values: dict[str, object] = {
            "ref": action.ref,
            "title": action.title,
            "aim": action.aim,
            "priority_id": priority_rows[action.priority].id,
            "position": action.position,
            "retired": False,
        }
        if matched is None:
            new_actions.append({"plan_id": plan_row.id, **values})
            report.actions_added += 1
        elif _differs(action_rows[matched], values, _ACTION_COLUMNS):
            changed_actions.append({"id": matched, **values})
            report.actions_changed += 1
    for row_id, arow in action_rows.items():
        if row_id not in matching.claimed and not arow[-1]:
            changed_actions.append({"id": row_id, "retired": True})
            report.actions_retired += 1
    await _update_rows(session, ActionRow, changed_actions)
    await insert_rows(session, ActionRow, new_actions)
    action_id = await _ids_by_ref(session, ActionRow, plan_row.id)
    current = [(action, action_id[action.ref]) for action in draft.actions]
    leads = {
        aid: {
            (person_id[key], position)
            for position, key in enumerate(leads_by_action.get(action.ref, ()))
        }
        for action, aid in current
    }
    await _relink(session, ActionLeadRow, ActionLeadRow.person_id, plan_row.id, leads)
    nets = {
        aid: {(network_rows[key].id, 0) for key in action.network_keys} for action, aid in current
    }
    await _relink(session, ActionNetworkRow, ActionNetworkRow.network_id, plan_row.id, nets)

    # A milestone is its action's stored one with its reference or, where the action's
    # reference was made up, with its title (bot.domain.matching).
    milestone_rows = await _stored(session, MilestoneRow, plan_row.id, _MILESTONE_COLUMNS)
    drafted = [
        (action, aid, position, ms)
        for action, aid in current
        for position, ms in enumerate(action.milestones)
    ]
    mmatching = match(
        [Incoming(aid, ms.ref, ms.title, action.by_title) for action, aid, _, ms in drafted],
        [Stored(row_id, row[1], row[0], row[2], row[-1]) for row_id, row in milestone_rows.items()],
    )
    await _free_refs(
        session, MilestoneRow, milestone_rows, [ms.ref for *_, ms in drafted], mmatching
    )
    new_milestones: list[dict[str, object]] = []
    changed_milestones: list[dict[str, object]] = []
    for (_, aid, position, ms), matched in zip(drafted, mmatching.ids, strict=True):
        mvalues = _milestone_values(ms, aid, position)
        if matched is None:
            new_milestones.append({"plan_id": plan_row.id, **mvalues})
            report.milestones_added += 1
        elif _differs(milestone_rows[matched], mvalues, _MILESTONE_COLUMNS):
            changed_milestones.append({"id": matched, **mvalues})
            report.milestones_changed += 1
        if ms.rating is not None or ms.note:
            rated.append((ms.ref, ms.rating, ms.note))
    for row_id, mrow in milestone_rows.items():
        if row_id not in mmatching.claimed and not mrow[-1]:
            changed_milestones.append({"id": row_id, "retired": True})
            report.milestones_retired += 1
    await _update_rows(session, MilestoneRow, changed_milestones)
    await insert_rows(session, MilestoneRow, new_milestones)
    milestone_id = await _ids_by_ref(session, MilestoneRow, plan_row.id) if rated else {}

    await _record_sheet_values(
        session,
        plan_row.id,
        [(ref, milestone_id[ref], rating, note) for ref, rating, note in rated],
        timezone=timezone,
        given_at=_given_at(ratings_as_of, timezone),
        now=now,
        prefer_sheet=prefer_sheet,
        report=report,
    )


def _milestone_values(ms: DraftMilestone, action_id: int, position: int) -> dict[str, object]:
    """A milestone row's columns as the plan file gives them (its plan aside)."""
    ts = ms.timescale
    return {
        "ref": ms.ref,
        "action_id": action_id,
        "title": ms.title,
        "timescale_text": ts.text,
        "due": ts.due,
        "start": ts.start,
        "recurrence": ts.recurrence.value if ts.recurrence else None,
        "ongoing": ts.ongoing,
        "position": position,
        "retired": False,
    }


async def _relink(
    session: AsyncSession,
    link: type[ActionLeadRow] | type[ActionNetworkRow],
    column: InstrumentedAttribute[int],
    plan_id: int,
    wanted: dict[int, set[tuple[int, int]]],
) -> None:
    """Make each action's leads (or networks) those `wanted` gives it, as (id, position)
    pairs: only the actions whose links differ are rewritten, so an unchanged plan writes
    nothing."""
    ordered = link is ActionLeadRow
    position = ActionLeadRow.position if ordered else literal(0)
    rows = await read_rows(
        session,
        select(link.action_id, column, position)
        .join(ActionRow, ActionRow.id == link.action_id)
        .where(ActionRow.plan_id == plan_id),
    )
    stored: dict[int, set[tuple[int, int]]] = {}
    for action_id, other, place in rows:
        stored.setdefault(action_id, set()).add((other, place))
    changed = [aid for aid, links in wanted.items() if stored.get(aid, set()) != links]
    stale = [aid for aid in changed if aid in stored]
    for start in range(0, len(stale), 500):
        await session.execute(
            delete(link)
            .where(link.action_id.in_(stale[start : start + 500]))
            .execution_options(synchronize_session=False)
        )
    name = column.key
    fresh: list[dict[str, int]] = [
        {"action_id": aid, name: other, **({"position": place} if ordered else {})}
        for aid in changed
        for other, place in sorted(wanted[aid])
    ]
    await insert_rows(session, link, fresh)


# The columns of a stored action and milestone that a plan file gives, in the order the
# import compares them.
_ACTION_COLUMNS = ("ref", "title", "aim", "priority_id", "position", "retired")
_MILESTONE_COLUMNS = (
    "ref",
    "action_id",
    "title",
    "timescale_text",
    "due",
    "start",
    "recurrence",
    "ongoing",
    "position",
    "retired",
)


async def _stored(
    session: AsyncSession,
    table: type[ActionRow] | type[MilestoneRow],
    plan_id: int,
    names: tuple[str, ...],
) -> dict[int, tuple[Any, ...]]:
    """The plan's stored actions (or milestones) by id: their columns `names`, in order."""
    rows = await read_rows(
        session,
        select(table.id, *(getattr(table, name) for name in names)).where(table.plan_id == plan_id),
    )
    return {row_id: tuple(values) for row_id, *values in rows}


def _differs(stored: tuple[Any, ...], values: dict[str, object], names: tuple[str, ...]) -> bool:
    return stored != tuple(map(values.__getitem__, names))


async def _update_rows(
    session: AsyncSession,
    table: type[ActionRow] | type[MilestoneRow],
    changes: list[dict[str, object]],
) -> None:
    """Write each change (its row's id and the columns to set), grouped by the columns it
    sets so that each group is one statement run for many rows."""
    groups: dict[tuple[str, ...], list[dict[str, object]]] = {}
    for change in changes:
        groups.setdefault(tuple(change), []).append(change)
    for group in groups.values():
        await session.execute(update(table), group)


async def _free_refs(
    session: AsyncSession,
    table: type[ActionRow] | type[MilestoneRow],
    rows: dict[int, tuple[Any, ...]],
    refs: Sequence[str],
    matching: Matching,
) -> None:
    """Give each stored row that changes its reference a placeholder first, and move aside
    each unmatched one whose reference another takes, so that no reference is ever held by
    two rows (references are unique in a plan, checked row by row)."""
    moving = {
        row_id
        for ref, row_id in zip(refs, matching.ids, strict=True)
        if row_id is not None and rows[row_id][0] != ref
    }
    await _update_rows(
        session,
        table,
        [{"id": row_id, "ref": f"~{row_id}"} for row_id in moving]
        + [{"id": row_id, "ref": ref} for row_id, ref in matching.aside.items()],
    )


async def _ids_by_ref(
    session: AsyncSession, table: type[ActionRow] | type[MilestoneRow], plan_id: int
) -> dict[str, int]:
    rows = await read_rows(session, select(table.ref, table.id).where(table.plan_id == plan_id))
    return {ref: row_id for ref, row_id in rows}


async def _record_sheet_values(
    session: AsyncSession,
    plan_id: int,
    rated: list[tuple[str, int, int | None, str | None]],
    *,
    timezone: str,
    given_at: datetime,
    now: datetime,
    prefer_sheet: bool,
    report: ImportReport,
    new_milestones: bool = False,
) -> None:
    """Record each sheet rating and note that is news, and list those that differ from a
    lead's answer as conflicts (recorded too, with `prefer_sheet`). `new_milestones`: they
    were added just now, so nothing is stored for them and nothing needs reading."""
    if not rated:
        return
    updates = UpdateRepository(session)
    stored = {} if new_milestones else await updates.stored_progress(plan_id)
    # Only where the sheet differs from what is stored can an answer be at stake.
    differing = [
        (ref, mid, Progress(rating, note))
        for ref, mid, rating, note in rated
        if mid not in stored or decide(ref, Progress(rating, note), stored[mid], None).record
    ]
    # A milestone with nothing stored has never been answered either.
    answers = await updates.latest_from_people([mid for _, mid, _ in differing if mid in stored])
    recorded: list[NewUpdate] = []
    for ref, mid, sheet in differing:
        found = answers.get(mid)
        answer = (
            Answer(
                found.name or "someone",
                found.rating,
                found.note,
                local_date(found.given_at, timezone),
            )
            if found is not None
            else None
        )
        decision = decide(ref, sheet, stored.get(mid), answer, prefer_sheet=prefer_sheet)
        if decision.conflict is not None:
            report.conflicts.append(decision.conflict)
        if not decision.record:
            continue
        when = given_at
        if found is not None and when <= found.given_at:
            # Preferred over an answer given later than the sheet's date: it must come last
            # to count at all.
            when = max(now, found.given_at + timedelta(seconds=1))
        recorded.append(NewUpdate(mid, sheet.rating, sheet.note, when))
    await updates.add_imported(recorded, recorded_at=now)
    report.ratings_recorded += len(recorded)


async def _import_staged(
    sessions: async_sessionmaker[AsyncSession],
    plan_path: Path,
    ready: _Ready,
    *,
    now: datetime,
    ratings_as_of: date | datetime,
    report: ImportReport,
    chunk_size: int,
    chunk_hook: ChunkHook | None,
) -> None:
    """Write a new plan as the module's docstring says: people and networks, then the plan
    staged, its actions `chunk_size` at a time, each in a transaction of its own, and one
    short switch-over. On any failure the staged plan is deleted again and the error raised.
    """
    draft = ready.draft
    report.created_plan = True
    pauses = _Pauses(sessions, needed=not ready.empty_store)
    person_id, network_id = await _upsert_people_and_networks(
        sessions, ready, report=report, chunk_size=chunk_size, pauses=pauses
    )
    plan_id: int | None = None
    # Catches everything, cancellation and Ctrl-C too, only to delete the staged plan and
    # raise it again: no half-written plan is left behind for the next import to find.
    try:
        async with sessions() as session, session.begin():
            plan_id, priority_id = await _stage_plan(session, draft, now=now)
        timezone = draft.plan.timezone
        for start in range(0, len(draft.actions), chunk_size):
            await pauses.before_long()
            async with sessions() as session, session.begin():
                await _write_chunk(
                    session,
                    plan_id,
                    draft.actions[start : start + chunk_size],
                    ready=ready,
                    priority_id=priority_id,
                    person_id=person_id,
                    network_id=network_id,
                    timezone=timezone,
                    now=now,
                    ratings_as_of=ratings_as_of,
                    report=report,
                )
            if chunk_hook is not None:
                await chunk_hook(min(start + chunk_size, len(draft.actions)))
        async with sessions() as session, session.begin():
            await _switch_over(
                session,
                plan_path,
                draft,
                plan_id,
                linked=_linked(ready),
                network_id=network_id,
                now=now,
            )
    except BaseException:
        if plan_id is not None:
            try:
                await _drop_staged(sessions, plan_id)
            except Exception:  # the next import purges it once stale; the first error matters
                log.exception("could not delete staged plan %s", plan_id)
        raise


async def _upsert_people_and_networks(
    sessions: async_sessionmaker[AsyncSession],
    ready: _Ready,
    *,
    report: ImportReport,
    chunk_size: int,
    pauses: _Pauses,
) -> tuple[dict[str, int], dict[str, int]]:
    """Add or update the people, `chunk_size` a transaction (a national directory has
    thousands), then the networks; the ids of all, by key. A delegate added in a later
    chunk than the person is set by a second pass over those who have one."""
    people = ready.people
    chunk_size *= PEOPLE_PER_ACTION_CHUNK
    for start in range(0, len(people), chunk_size):
        await pauses.before_long()
        async with sessions() as session, session.begin():
            added, changed = await PeopleRepository(session).upsert(
                people[start : start + chunk_size]
            )
        report.people_added += added
        report.people_changed += changed
    if len(people) > chunk_size:
        delegating = [p for p in people if p.delegate_key]
        for start in range(0, len(delegating), chunk_size):
            await pauses.before_long()
            async with sessions() as session, session.begin():
                await PeopleRepository(session).upsert(delegating[start : start + chunk_size])
    async with sessions() as session, session.begin():
        networks = NetworkRepository(session)
        report.networks_added, report.networks_changed = await networks.upsert(ready.networks)
        person_id = {
            key: row_id
            for key, row_id in (await session.execute(select(PersonRow.key, PersonRow.id)))
        }
        network_id = {
            key: row_id
            for key, row_id in (await session.execute(select(NetworkRow.key, NetworkRow.id)))
        }
    return person_id, network_id


class _Pauses:
    """The pauses of a staged import (`SQLITE_PAUSE`): one before each of its long
    transactions (a chunk of people or actions) that follows another, so that a writer kept
    waiting by the one before has the lock first. The short ones (the networks, the staged
    plan, the switch-over) follow without one: a writer waits a few milliseconds more for
    them. None where no one can be waiting: on PostgreSQL, or in a store that held no plan
    and no person when the import began."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, needed: bool) -> None:
        self.sessions = sessions
        self.needed = needed
        self.held = False  # whether a long transaction ran yet

    async def before_long(self) -> None:
        if self.held and self.needed:
            await _pause(self.sessions)
        self.held = True


async def _pause(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Let a writer waiting for SQLite's lock have it (see `SQLITE_PAUSE`). PostgreSQL locks
    rows, and no one else writes the staged plan's, so it needs no pause."""
    engine = sessions.kw.get("bind")
    if engine is not None and engine.dialect.name == "sqlite":
        await asyncio.sleep(SQLITE_PAUSE)


def _linked(ready: _Ready) -> set[str]:
    """The networks that get the plan's digests: those its actions name and the plan-wide
    ones that came with it."""
    linked = {n for a in ready.draft.actions for n in a.network_keys}
    return linked | {n.key for n in ready.networks if n.all_actions}


async def _stage_plan(
    session: AsyncSession, draft: PlanDraft, *, now: datetime
) -> tuple[int, dict[int, int]]:
    """Add the plan under a staged key, retired, with its priorities; its id and theirs by
    number."""
    plan = draft.plan
    settings: dict[str, object] = dict(draft.settings or {})
    if draft.layout is not None:
        settings["layout"] = draft.layout
    row = PlanRow(
        # Keys are at most 64 characters; the real key is there only to tell leftovers apart.
        key=f"{STAGED_PLAN_PREFIX}{plan.key[:40]}~{secrets.token_hex(4)}",
        title=plan.title,
        organisation=plan.organisation,
        timezone=plan.timezone,
        start=plan.start,
        created_at=now,
        updated_at=now,
        retired_at=now,
        settings=settings,
    )
    session.add(row)
    await session.flush()
    # As `_write` does for a new plan: only a Word or pasted plan says what each covers.
    from_blocks = bool(draft.places)
    priorities = {}
    for number, title in draft.priorities.items():
        priority = PriorityRow(plan_id=row.id, number=number, title=title)
        if from_blocks:
            priority.description = draft.descriptions.get(number)
            priority.leads = draft.priority_leads.get(number)
        priorities[number] = priority
    session.add_all(priorities.values())
    await session.flush()
    return row.id, {number: p.id for number, p in priorities.items()}


async def _write_chunk(
    session: AsyncSession,
    plan_id: int,
    actions: Sequence[DraftAction],
    *,
    ready: _Ready,
    priority_id: dict[int, int],
    person_id: dict[str, int],
    network_id: dict[str, int],
    timezone: str,
    now: datetime,
    ratings_as_of: date | datetime,
    report: ImportReport,
) -> None:
    """Add these actions of the staged plan, their leads, networks, milestones and sheet
    ratings, in bulk inserts (the plan is new, so there is nothing to match or compare)."""
    await insert_rows(
        session,
        ActionRow,
        [
            {
                "plan_id": plan_id,
                "ref": action.ref,
                "title": action.title,
                "aim": action.aim,
                "priority_id": priority_id[action.priority],
                "position": action.position,
                "retired": False,
            }
            for action in actions
        ],
    )
    report.actions_added += len(actions)
    action_id = await _ids_of(session, ActionRow, plan_id, [a.ref for a in actions])
    leads = [
        {"action_id": action_id[action.ref], "person_id": pid, "position": position}
        for action in actions
        for pid, position in sorted(
            {
                (person_id[key], position)
                for position, key in enumerate(ready.leads_by_action.get(action.ref, ()))
            }
        )
    ]
    await insert_rows(session, ActionLeadRow, leads)
    nets = [
        {"action_id": action_id[action.ref], "network_id": nid}
        for action in actions
        for nid in sorted({network_id[key] for key in action.network_keys})
    ]
    await insert_rows(session, ActionNetworkRow, nets)
    milestones: list[dict[str, object]] = []
    rated: list[tuple[str, int | None, str | None]] = []
    for action in actions:
        for position, ms in enumerate(action.milestones):
            milestones.append(
                {"plan_id": plan_id, **_milestone_values(ms, action_id[action.ref], position)}
            )
            if ms.rating is not None or ms.note:
                rated.append((ms.ref, ms.rating, ms.note))
    await insert_rows(session, MilestoneRow, milestones)
    report.milestones_added += len(milestones)
    milestone_id = (
        await _ids_of(session, MilestoneRow, plan_id, [ref for ref, *_ in rated]) if rated else {}
    )
    await _record_sheet_values(
        session,
        plan_id,
        [(ref, milestone_id[ref], rating, note) for ref, rating, note in rated],
        timezone=timezone,
        given_at=_given_at(ratings_as_of, timezone),
        now=now,
        prefer_sheet=False,  # a new plan has no answers for the sheet to be preferred over
        report=report,
        new_milestones=True,
    )


async def _ids_of(
    session: AsyncSession,
    table: type[ActionRow] | type[MilestoneRow],
    plan_id: int,
    refs: Sequence[str],
) -> dict[str, int]:
    """The ids of the plan's rows with these references."""
    found: dict[str, int] = {}
    for start in range(0, len(refs), 5000):
        rows = await session.execute(
            select(table.ref, table.id).where(
                table.plan_id == plan_id, table.ref.in_(refs[start : start + 5000])
            )
        )
        found.update({ref: row_id for ref, row_id in rows.tuples()})
    return found


async def _switch_over(
    session: AsyncSession,
    plan_path: Path,
    draft: PlanDraft,
    plan_id: int,
    *,
    linked: set[str],
    network_id: dict[str, int],
    now: datetime,
) -> None:
    """Give the staged plan its own key and make it live, with its networks linked: unless
    a plan took that key meanwhile (another import), or, for a key taken from the file's
    name, another plan appeared."""
    if await _plan_row(session, plan_path, draft) is not None:
        raise ImportFailed(
            str(plan_path),
            [
                Problem(
                    None,
                    "plan key",
                    draft.plan.key,
                    f"plan {draft.plan.key!r} was imported by someone else while this import "
                    "ran; import the file again to re-import it",
                )
            ],
        )
    row = await session.get(PlanRow, plan_id)
    if row is None:  # deleted as stale, so this import took over an hour
        raise ImportFailed(
            str(plan_path),
            [Problem(None, None, None, "the import took too long and was undone; try again")],
        )
    row.key, row.retired_at, row.updated_at = draft.plan.key, None, now
    session.add_all(
        PlanNetworkRow(plan_id=plan_id, network_id=network_id[k]) for k in sorted(linked)
    )
    await session.flush()


async def purge_staged(sessions: async_sessionmaker[AsyncSession], *, older_than: datetime) -> int:
    """Delete the staged plans added before `older_than`: left by imports that crashed.
    Returns how many. Reads first, so an import with nothing to purge writes nothing."""
    async with sessions() as session:
        stale = list(
            (
                await session.scalars(
                    select(PlanRow.id).where(
                        PlanRow.key.like(f"{STAGED_PLAN_PREFIX}%"), PlanRow.created_at < older_than
                    )
                )
            ).all()
        )
    for plan_id in stale:
        log.warning("deleting plan %s left half-imported by an import that stopped", plan_id)
        await _drop_staged(sessions, plan_id)
    return len(stale)


async def _drop_staged(sessions: async_sessionmaker[AsyncSession], plan_id: int) -> None:
    """Delete a staged plan whole, in short transactions like those that wrote it: its
    updates first (an update's milestone is never deleted under it: RESTRICT), then its
    milestones, actions (and with them their links) and the plan with its priorities. Only a
    staged plan's id is ever given, so what is deleted was never seen by anyone."""
    staged = PlanRow.key.like(f"{STAGED_PLAN_PREFIX}%")
    async with sessions() as session:
        actions = list(
            (
                await session.scalars(
                    select(ActionRow.id)
                    .join(PlanRow, PlanRow.id == ActionRow.plan_id)
                    .where(PlanRow.id == plan_id, staged)
                )
            ).all()
        )
    for start in range(0, len(actions), CHUNK_SIZE):
        chunk = actions[start : start + CHUNK_SIZE]
        milestones = select(MilestoneRow.id).where(MilestoneRow.action_id.in_(chunk))
        async with sessions() as session, session.begin():
            await session.execute(delete(UpdateRow).where(UpdateRow.milestone_id.in_(milestones)))
            await session.execute(delete(MilestoneRow).where(MilestoneRow.action_id.in_(chunk)))
            await session.execute(delete(ActionRow).where(ActionRow.id.in_(chunk)))
        await _pause(sessions)
    async with sessions() as session, session.begin():
        await session.execute(delete(PlanRow).where(PlanRow.id == plan_id, staged))
