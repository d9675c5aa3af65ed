"""Finding a plan in the tables of a document as people lay it out (DESIGN.md §5).

A Word plan is one table per priority: a `Priority 3 | Continue to raise…` row across the
top, `Key areas` and `Overall lead` rows, then a header row (`Aims | Key actions | Lead(s) |
Timescales | Progress 1 - 4`) and the actions. A pasted table or a spreadsheet is the same
thing in one grid. This module reads those blocks into the rows `plan_from_records` takes:
every table whose header row matches our column aliases, in order; the rows above a header,
and the headings just before a table, set the current priority; tables without a header
(a ratings legend, a sign-off block) and the text between tables are skipped and reported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.domain.errors import Problem
from handlers.files.columns import PLAN_COLUMNS, header_key, plan_header


@dataclass(frozen=True, slots=True)
class Text:
    """A paragraph or heading between tables."""

    text: str
    heading: bool = False  # styled as a heading (or title) in the document


@dataclass(frozen=True, slots=True)
class Grid:
    """A table as the application shows it: merged cells already spread out."""

    where: str  # "table 3", "sheet 'Plan'", "the pasted table"
    rows: list[list[str]]


Block = Text | Grid


@dataclass(slots=True)
class PlanRows:
    """What `plan_rows` found: records for `plan_from_records` and where each came from."""

    records: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    places: dict[int, str] = field(default_factory=dict)  # record row -> "table 4, row 7"
    headers: dict[str, str] = field(default_factory=dict)  # field -> the file's own heading
    layout: list[str] = field(default_factory=list)
    # Per priority (as its text reads): the "Key areas" and "Overall lead" rows.
    descriptions: dict[str, str] = field(default_factory=dict)
    leads: dict[str, str] = field(default_factory=dict)


_LOOKUP = {header_key(a): name for name, names in PLAN_COLUMNS.items() for a in names}
_NUMBERED = re.compile(
    r"^\s*(?:priority|workstream|theme|ws)\s*(\d+)\b[\s:.\-–—)]*(.*)$", re.IGNORECASE | re.DOTALL
)
_NAMED = re.compile(r"^\s*(?:priority|workstream|theme)\b\s*[:.\-–—]\s*(.+)$", re.I | re.S)
_TRAILING = re.compile(r"^(.*\S)\s*\((\d+)\)\s*$", re.DOTALL)
_KEY_AREAS = {"keyareas", "keyarea", "keyareasoffocus", "description"}
_OVERALL_LEAD = {"overalllead", "overallleads", "overalllead(s)", "overallleadofficer"}


def priority_text(text: str) -> str | None:
    """`Priority 3: Continue to raise…` or `Create the conditions… (1)` as `3 Continue to
    raise…`, which the plan reader takes as a priority's number and title; None otherwise."""
    text = " ".join(text.split())
    match = _NUMBERED.match(text)
    if match:
        return f"{match.group(1)} {match.group(2).strip()}".strip()
    match = _TRAILING.match(text)
    if match:
        return f"{match.group(2)} {match.group(1).strip()}"
    match = _NAMED.match(text)
    if match:
        return match.group(1).strip()
    return None


def plan_rows(blocks: Sequence[Block], problems: list[Problem]) -> PlanRows:
    """The plan's rows in `blocks`, reporting which tables were read and which skipped."""
    out = PlanRows()
    context = ""  # the current priority, as `priority_text` gives it
    from_outside = False  # set by a heading or a row above a header, not by a column
    texts: list[Text] = []  # paragraphs since the last table
    previous: tuple[dict[str, int], int] | None = None  # the last table read: columns, width
    read: list[str] = []
    skipped: list[str] = []
    unknown_headings: dict[str, None] = {}
    number = 0
    for block in blocks:
        if isinstance(block, Text):
            texts.append(block)
            continue
        for paragraph in texts:
            context, from_outside = _heading(paragraph, context, from_outside)
        continuing = previous if not texts else None
        texts = []
        rows = block.rows
        width = max((len(r) for r in rows), default=0)
        header_at = next(
            (i for i, row in enumerate(rows[:15]) if plan_header(row) is not None), None
        )
        if header_at is None:
            if continuing is not None and continuing[1] == width and rows:
                columns, start = continuing[0], 0
                read.append(f"{block.where} (continues the table before)")
            else:
                first = next((c for r in rows for c in r if c.strip()), "")
                skipped.append(f"{block.where} (first cell {_short(first)!r})")
                previous = None
                continue
        else:
            start = header_at + 1
            columns = plan_header(rows[header_at]) or {}
            header = rows[header_at]
            for above in rows[:header_at]:
                context, from_outside = _row_above(above, context, from_outside, out)
            if (
                "priority" in columns
                and header_key(header[columns["priority"]]) == "theme"
                and from_outside
                and "aim" not in columns
            ):
                # A Theme column under a numbered priority heading groups actions: an aim.
                columns["aim"] = columns.pop("priority")
            for name, index in columns.items():
                out.headers.setdefault(name, " ".join(header[index].split()))
            for cell in header:
                if cell.strip() and _LOOKUP.get(header_key(cell)) is None:
                    unknown_headings[" ".join(cell.split())] = None
            if not out.layout:
                out.layout = [" ".join(c.split()) for c in header if c.strip()]
            read.append(block.where)
        previous = (columns, width)
        for index in range(start, len(rows)):
            row = rows[index]
            filled = [(i, c) for i, c in enumerate(row) if c.strip()]
            if not filled:
                continue
            if (len(filled) == 1 and filled[0][0] == 0) or (
                "action" in columns
                and not row[columns["action"]].strip()
                and (
                    filled[0][1].casefold().startswith(("priority", "workstream"))
                    or header_key(filled[0][1]) in _KEY_AREAS | _OVERALL_LEAD
                )
            ):
                before = (context, from_outside)
                context, from_outside = _row_above(row, context, from_outside, out)
                if (context, from_outside) == before and not _is_note_row(row):
                    problems.append(
                        Problem(
                            None,
                            None,
                            filled[0][1],
                            f"{block.where}, row {index + 1}: a row with no action; ignored",
                            "warning",
                        )
                    )
                continue
            number += 1
            record = {name: row[i] if i < len(row) else "" for name, i in columns.items()}
            if not record.get("priority", "").strip():
                record["priority"] = context
            else:
                record["priority"] = priority_text(record["priority"]) or " ".join(
                    record["priority"].split()
                )
            out.records.append((number, record))
            out.places[number] = f"{block.where}, row {index + 1}"
    for heading in unknown_headings:
        problems.append(Problem(None, heading, None, "column not recognised; ignored", "warning"))
    if read:
        problems.append(Problem(None, None, None, f"read {', '.join(read)}", "note"))
    if skipped:
        problems.append(
            Problem(
                None, None, None, f"skipped (no header row we know): {'; '.join(skipped)}", "note"
            )
        )
    if not read:
        problems.append(
            Problem(
                None,
                None,
                None,
                "no table with a header row we know: expected headings such as 'Key actions', "
                "'Lead(s)', 'Timescales'",
            )
        )
    return out


def _heading(paragraph: Text, context: str, from_outside: bool) -> tuple[str, bool]:
    """The priority a paragraph before a table sets: `Priority 2: …`, `… (3)`, or any text
    styled as a heading. `Title (2)` under `Title (1)` is the same priority's second part."""
    text = " ".join(paragraph.text.split())
    trailing = _TRAILING.match(text)
    if trailing and context.split(" ", 1)[-1] == trailing.group(1).strip():
        return context, True
    if _NUMBERED.match(text) or trailing:
        return priority_text(text) or context, True
    if paragraph.heading and len(text) <= 200:
        return text, True
    return context, from_outside


def _is_note_row(row: Sequence[str]) -> bool:
    first = next((c for c in row if c.strip()), "")
    return header_key(first) in _KEY_AREAS | _OVERALL_LEAD


def _row_above(
    row: Sequence[str], context: str, from_outside: bool, out: PlanRows
) -> tuple[str, bool]:
    """A row above a header (or across a table): a priority, its key areas or its lead."""
    cells = list(dict.fromkeys(" ".join(c.split()) for c in row if c.strip()))
    if not cells:
        return context, from_outside
    first = cells[0]
    key = header_key(first.rstrip(":"))
    if key in _KEY_AREAS:
        out.descriptions[context] = "\n".join(c for c in row[1:] if c.strip())
        return context, from_outside
    if key in _OVERALL_LEAD:
        out.leads[context] = " ".join(" ".join(c.split()) for c in row[1:] if c.strip())
        return context, from_outside
    found = (
        priority_text(" ".join(cells)) if _NUMBERED.match(first) or _NAMED.match(first) else None
    )
    if found is None and len(cells) == 1:
        found = priority_text(first) if _TRAILING.match(first) else None
    if found:
        return found, True
    return context, from_outside


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 40 else text[:39] + "…"
