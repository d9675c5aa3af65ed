"""Writing a plan back as the board reads it: one row per milestone, in the plan's own
column headings where it came from a spreadsheet, with the latest rating, note, evidence of
impact, date, revised date, support ask and status of each — and in a form that `pulse import` reads
back without a change. The columns it adds for the board (the milestone's reference, lead
names, the due date, the rating in words) sit beside the plan's own, which stay as written.

The XLSX is made for the board: a Summary sheet with counts and a chart first, ratings as
numbers and dates as dates, the status with its RAG fill, a filter, a frozen header and A4
landscape printing one page wide.

Every cell is data, never a formula, whatever a lead wrote (`=HYPERLINK(...)` in a note is
formula injection, OWASP "CSV Injection"): XLSX text cells are typed as text, and a CSV cell
that a spreadsheet would take for a formula gets a leading `'`, which `pulse import` removes."""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.domain.model import Person
from bot.domain.ratings import RATINGS, label
from bot.domain.status import MilestoneStatus, Status
from handlers.files.columns import EXPORT_DUE_HEADINGS, PLAN_COLUMNS, header_key
from storage.repositories import TrackedPlan

if TYPE_CHECKING:
    from openpyxl.worksheet.worksheet import Worksheet

# What a spreadsheet takes for the start of a formula (OWASP), after any quotes already there:
# those are escaped too, so that `handlers.files.plan_files.unescape_formula` undoes exactly this.
_FORMULA_START = re.compile(r"^'*[=+\-@\t\r]")

# Our field names, in the order a plan table usually has them, with the heading used when
# the plan came from YAML or had no such column.
FIELDS: tuple[tuple[str, str], ...] = (
    ("priority", "Priority"),
    ("ref", "Ref"),
    ("action", "Key actions"),
    ("aim", "Aims"),
    ("leads", "Lead(s)"),
    ("milestones", "Milestones"),
    ("timescale", "Timescales"),
    ("rating", "Progress 1 - 4"),
    ("note", "Notes"),
    ("evidence", "Evidence"),
    ("updated", "Last updated"),
    ("revised", "Revised date"),
    ("support", "Needs support"),
    ("status", "Status"),
    ("networks", "Network(s)"),
)
# Columns the export adds for the board, each right after the plan's own column it explains
# (the action's `Ref`, the leads' initials, the timescale as written, the rating number).
# `pulse import` reads them as output (handlers.files.columns.PLAN_COLUMNS), never as input.
ADDED: Mapping[str, tuple[str, str]] = {
    "ref": ("milestone_ref", "Milestone ref"),
    "leads": ("lead_names", "Lead names"),
    "timescale": ("due", "Due"),
    "rating": ("rating_words", "Rating in words"),
}
DATE_FIELDS = frozenset({"due", "updated", "revised"})

# A cell: text, a rating (a number) or a date; None when empty.
Cell = str | int | date | None


def headings(layout: Sequence[str] | None) -> list[tuple[str, str]]:
    """(field, heading) pairs: the plan's own headings first, in its order, then ours for
    whatever it did not have, each added column right after the one it explains."""
    lookup = {header_key(a): name for name, names in PLAN_COLUMNS.items() for a in names}
    added = {name for name, _ in ADDED.values()}
    chosen: dict[str, str] = {}
    for heading in layout or ():
        name = lookup.get(header_key(heading))
        if name and name not in chosen and name in {n for n, _ in FIELDS} | added:
            chosen[name] = heading
    base = [(name, chosen[name]) for name in chosen]
    base += [(name, heading) for name, heading in FIELDS if name not in chosen]
    out: list[tuple[str, str]] = []
    for name, heading in base:
        if name in added:
            continue
        out.append((name, heading))
        if name in ADDED:
            extra, title = ADDED[name]
            if extra == "due" and header_key(heading) in EXPORT_DUE_HEADINGS:
                # The plan's own timescale heading is "Due": the date beside it says so.
                title = "Due date" if header_key(heading) == "due" else "Due"
            out.append((extra, chosen.get(extra, title)))
    return out


def _status_text(status: Status) -> str:
    if status.status is MilestoneStatus.OVERDUE:
        days = status.days_overdue
        return f"overdue by {days} day{'s' if days != 1 else ''}"
    text = status.status.value.replace("_", " ")
    if status.reasons:
        text += " (" + ", ".join(r.value.replace("_", " ") for r in status.reasons) + ")"
    return text


def _names(people: Sequence[Person]) -> dict[str, str]:
    names: dict[str, str] = {}
    for person in people:
        for key in (person.key, *person.aliases):
            names.setdefault(key, person.name or person.key)
    return names


@dataclass(slots=True)
class Export:
    """The (field, heading) columns and one row per milestone, with each row's priority,
    status and rating for the summary and the status fills."""

    columns: list[tuple[str, str]]
    body: list[list[Cell]] = field(default_factory=list)
    priorities: list[str] = field(default_factory=list)
    kinds: list[MilestoneStatus] = field(default_factory=list)
    ratings: list[int | None] = field(default_factory=list)


def rows(
    tracked: TrackedPlan,
    statuses: Mapping[str, Status],
    layout: Sequence[str] | None,
    evidence: Mapping[str, str] | None = None,
) -> Export:
    """One row per milestone: ratings as numbers, dates as dates, the rest as text;
    `evidence` is each milestone's evidence of impact by reference (none: absent)."""
    evidence = evidence or {}
    columns = headings(layout)
    titles = {p.number: p.title for p in tracked.priorities}
    names = _names(tracked.people)
    out = Export(columns)
    for action in tracked.actions:
        implicit = len(action.milestones) == 1 and action.milestones[0].title == action.title
        for milestone in action.milestones:
            status = statuses[milestone.ref]
            title = titles.get(action.priority, "")
            values: dict[str, Cell] = {
                "priority": f"{action.priority} - {title}" if title else str(action.priority),
                "ref": action.ref,
                "milestone_ref": milestone.ref,
                "action": action.title,
                "aim": action.aim or "",
                "leads": "/".join(milestone.leads),
                "lead_names": ", ".join(names.get(k, k) for k in milestone.leads),
                "milestones": "" if implicit else milestone.title,
                "timescale": milestone.timescale.text,
                "due": status.due,
                "rating": status.rating,
                "rating_words": label(status.rating) if status.rating is not None else "",
                "note": status.note or "",
                "evidence": evidence.get(milestone.ref, ""),
                "updated": status.updated,
                "revised": status.revised_due,
                "support": "yes" if status.needs_support else "",
                "status": _status_text(status),
                "networks": ";".join(action.networks),
            }
            out.body.append([values[name] for name, _ in columns])
            out.priorities.append(str(values["priority"]))
            out.kinds.append(status.status)
            out.ratings.append(status.rating)
    return out


def escape_formula(text: str) -> str:
    """A CSV cell that no spreadsheet runs as a formula: a `'` before `= + - @`, tab or CR."""
    return "'" + text if _FORMULA_START.match(text) else text


def _text(cell: Cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, date):
        return cell.strftime("%d/%m/%Y")
    return escape_formula(str(cell))


def write_csv(path: Path, export: Export) -> None:
    # UTF-8 with a byte-order mark: Excel then opens accents and dashes correctly.
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([escape_formula(heading) for _, heading in export.columns])
        writer.writerows([_text(cell) for cell in row] for row in export.body)


# Status fills, red-amber-green (and blue for achieved), as boards read them; the status word
# is always in the cell too, so nothing is told by colour alone.
FILLS: Mapping[MilestoneStatus, str] = {
    MilestoneStatus.OVERDUE: "F4B6B6",
    MilestoneStatus.AT_RISK: "FFD98C",
    MilestoneStatus.DUE_SOON: "C8E6B9",
    MilestoneStatus.ON_TRACK: "C8E6B9",
    MilestoneStatus.ACHIEVED: "BDD7EE",
}
STATUS_HEADINGS: tuple[tuple[MilestoneStatus, str], ...] = (
    (MilestoneStatus.OVERDUE, "Overdue"),
    (MilestoneStatus.AT_RISK, "At risk"),
    (MilestoneStatus.DUE_SOON, "Due soon"),
    (MilestoneStatus.ON_TRACK, "On track"),
    (MilestoneStatus.ACHIEVED, "Achieved"),
    (MilestoneStatus.NO_DATE, "No date"),
)
_WIDTHS: Mapping[str, int] = {
    "action": 44,
    "milestones": 44,
    "note": 44,
    "evidence": 44,
    "aim": 30,
    "priority": 24,
    "lead_names": 24,
    "status": 22,
    "rating_words": 22,
    "timescale": 18,
    "networks": 16,
    "ref": 8,
    "milestone_ref": 10,
    "rating": 10,
    "leads": 12,
    "support": 10,
}
_HEADER_FILL = "DDE6F0"


def _as_text(sheet: Worksheet) -> None:
    """Every text cell stays text: openpyxl makes any text starting with `=` a formula, and
    the quote prefix keeps Excel from making one of `= + - @` when someone edits the cell."""
    for cells in sheet.iter_rows():
        for cell in cells:
            if cell.data_type == "f":
                cell.data_type = "s"
                cell.quotePrefix = True
            elif isinstance(cell.value, str) and _FORMULA_START.match(cell.value):
                cell.quotePrefix = True


def _page_header(title: str, as_of: date) -> str:
    # `&` starts a header code in Excel; a header holds at most 255 characters.
    text = f"{title[:180]} — progress as of {as_of.day} {as_of:%B %Y}"
    return text.replace("&", "&&")


def _print_setup(sheet: Worksheet, *, title: str, as_of: date, rows: int | None = None) -> None:
    """A4 landscape, one page wide, the header row on every page, the plan and day on top."""
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    if rows is not None:
        sheet.print_title_rows = f"1:{rows}"
    sheet.oddHeader.center.text = _page_header(title, as_of)
    sheet.oddFooter.center.text = "Page &P of &N"


def _summary(book: Any, export: Export, *, title: str, as_of: date) -> None:
    """The first sheet: milestones per priority and status, the rating mix per priority, and
    a chart of the rating mix, all as numbers (no formulas)."""
    from openpyxl.chart import BarChart, Reference
    from openpyxl.styles import Alignment, Font, PatternFill

    sheet = book.active
    sheet.title = "Summary"
    sheet.append([title])
    sheet["A1"].font = Font(bold=True, size=14)
    sheet.append([f"Progress as of {as_of.day} {as_of:%B %Y}"])
    sheet.append([])
    order = list(dict.fromkeys(export.priorities))
    by_status = Counter(zip(export.priorities, export.kinds, strict=True))
    by_rating = Counter(zip(export.priorities, export.ratings, strict=True))

    def table(heads: list[str], lines: Sequence[Sequence[object]]) -> tuple[int, int]:
        first = sheet.max_row + 1
        sheet.append(heads)
        for cell in sheet[first]:
            cell.font = Font(bold=True)
            cell.fill = PatternFill("solid", fgColor=_HEADER_FILL)
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        for line in lines:
            sheet.append(line)
        return first, sheet.max_row

    statuses = [
        [p, *(by_status[p, kind] for kind, _ in STATUS_HEADINGS), export.priorities.count(p)]
        for p in order
    ]
    totals: list[object] = ["All priorities"]
    totals += [export.kinds.count(kind) for kind, _ in STATUS_HEADINGS] + [len(export.kinds)]
    # Not "Milestones": with "Priority" that would make this a plan's header row.
    table(["Priority", *(h for _, h in STATUS_HEADINGS), "Total"], [*statuses, totals])
    sheet.cell(row=sheet.max_row, column=1).font = Font(bold=True)
    sheet.append([])
    mix = [[p, *(by_rating[p, r] for r in RATINGS), by_rating[p, None]] for p in order]
    heads = ["Priority", *(f"{r} {label(r)}" for r in RATINGS), "Not rated"]
    first, last = table(heads, mix)
    chart = BarChart()
    chart.type = "bar"
    chart.grouping = "stacked"
    chart.overlap = 100
    chart.title = "Rating mix by priority"
    chart.x_axis.title = "Priority"
    chart.y_axis.title = "Milestones"
    data = Reference(sheet, min_col=2, max_col=len(heads), min_row=first, max_row=last)
    chart.add_data(data, titles_from_data=True)
    chart.set_categories(Reference(sheet, min_col=1, min_row=first + 1, max_row=last))
    chart.height = max(7.5, 1.2 * len(order) + 4)
    chart.width = 24
    sheet.add_chart(chart, f"A{last + 3}")
    sheet.column_dimensions["A"].width = 48
    for letter in "BCDEFGHI":
        sheet.column_dimensions[letter].width = 14
    _as_text(sheet)
    _print_setup(sheet, title=title, as_of=as_of)


def write_xlsx(path: Path, export: Export, *, title: str, as_of: date) -> None:
    """A workbook for the board: a Summary sheet first, then the plan one row per milestone,
    typed, filtered, frozen under its header and set to print on A4 landscape."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    book = Workbook()
    _summary(book, export, title=title, as_of=as_of)
    sheet = book.create_sheet("Plan")
    names = [name for name, _ in export.columns]
    sheet.append([heading for _, heading in export.columns])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor=_HEADER_FILL)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    for row in export.body:
        sheet.append(row)
    _as_text(sheet)
    top = Alignment(wrap_text=True, vertical="top")
    status_at = names.index("status") + 1 if "status" in names else None
    for index, name in enumerate(names, start=1):
        letter = get_column_letter(index)
        sheet.column_dimensions[letter].width = _WIDTHS.get(name, 12)
        for cell in sheet[letter][1:]:
            cell.alignment = top
            if name in DATE_FIELDS:
                cell.number_format = "dd/mm/yyyy"
    if status_at is not None:
        for kind, cell in zip(export.kinds, sheet.iter_rows(min_row=2), strict=True):
            colour = FILLS.get(kind)
            if colour is not None:
                cell[status_at - 1].fill = PatternFill("solid", fgColor=colour)
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(names))}{len(export.body) + 1}"
    _print_setup(sheet, title=title, as_of=as_of, rows=1)
    book.properties.title = f"{title} — progress as of {as_of:%d %B %Y}"
    book.save(path)
