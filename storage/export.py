"""Writing a plan back as the board reads it: one row per milestone, in the plan's own
column headings where it came from a spreadsheet, with the latest rating, note, date,
revised date, support ask and status of each — and in a form that `pulse import` reads
back without a change.

Every cell is data, never a formula, whatever a lead wrote (`=HYPERLINK(...)` in a note is
formula injection, OWASP "CSV Injection"): XLSX cells are typed as text, and a CSV cell that
a spreadsheet would take for a formula gets a leading `'`, which `pulse import` removes.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path

from bot.domain.status import MilestoneStatus, Status
from storage.plan_files import PLAN_COLUMNS, header_key
from storage.repositories import TrackedPlan

# What a spreadsheet takes for the start of a formula (OWASP), after any quotes already there:
# those are escaped too, so that `storage.plan_files.unescape_formula` undoes exactly this.
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
    ("updated", "Last updated"),
    ("revised", "Revised date"),
    ("support", "Needs support"),
    ("status", "Status"),
    ("networks", "Network(s)"),
)


def headings(layout: Sequence[str] | None) -> list[tuple[str, str]]:
    """(field, heading) pairs: the plan's own headings first, in its order, then ours for
    whatever it did not have."""
    lookup = {header_key(a): name for name, names in PLAN_COLUMNS.items() for a in names}
    chosen: dict[str, str] = {}
    for heading in layout or ():
        name = lookup.get(header_key(heading))
        if name and name not in chosen:
            chosen[name] = heading
    out = [(name, chosen[name]) for name in chosen]
    out += [(name, heading) for name, heading in FIELDS if name not in chosen]
    return out


def _status_text(status: Status) -> str:
    if status.status is MilestoneStatus.OVERDUE:
        return f"overdue by {status.days_overdue} days"
    text = status.status.value.replace("_", " ")
    if status.reasons:
        text += " (" + ", ".join(r.value.replace("_", " ") for r in status.reasons) + ")"
    return text


def rows(
    tracked: TrackedPlan, statuses: Mapping[str, Status], layout: Sequence[str] | None
) -> tuple[list[tuple[str, str]], list[list[str]]]:
    """The (field, heading) columns and one row per milestone."""
    columns = headings(layout)
    titles = {p.number: p.title for p in tracked.priorities}
    out: list[list[str]] = []
    for action in tracked.actions:
        implicit = len(action.milestones) == 1 and action.milestones[0].title == action.title
        for milestone in action.milestones:
            status = statuses[milestone.ref]
            title = titles.get(action.priority, "")
            values = {
                "priority": f"{action.priority} - {title}" if title else str(action.priority),
                "ref": action.ref,
                "action": action.title,
                "aim": action.aim or "",
                "leads": "/".join(milestone.leads),
                "milestones": "" if implicit else milestone.title,
                "timescale": milestone.timescale.text,
                "rating": str(status.rating) if status.rating is not None else "",
                "note": status.note or "",
                "updated": status.updated.strftime("%d/%m/%Y") if status.updated else "",
                "revised": status.revised_due.strftime("%d/%m/%Y") if status.revised_due else "",
                "support": "yes" if status.needs_support else "",
                "status": _status_text(status),
                "networks": ";".join(action.networks),
            }
            out.append([values[name] for name, _ in columns])
    return columns, out


def escape_formula(text: str) -> str:
    """A CSV cell that no spreadsheet runs as a formula: a `'` before `= + - @`, tab or CR."""
    return "'" + text if _FORMULA_START.match(text) else text


def write_csv(path: Path, columns: Sequence[tuple[str, str]], body: list[list[str]]) -> None:
    # UTF-8 with a byte-order mark: Excel then opens accents and dashes correctly.
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([escape_formula(heading) for _, heading in columns])
        writer.writerows([escape_formula(cell) for cell in row] for row in body)


def write_xlsx(
    path: Path,
    columns: Sequence[tuple[str, str]],
    body: list[list[str]],
    *,
    title: str,
    as_of: date,
) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Plan"
    sheet.append([heading for _, heading in columns])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDE6F0")
    wide = {"action", "milestones", "note", "aim"}
    names = [name for name, _ in columns]
    for row in body:
        sheet.append(row)
    for cells in sheet.iter_rows():
        for cell in cells:
            if cell.data_type == "f":
                # openpyxl makes any text starting with `=` a formula: this is text, and the
                # quote prefix keeps Excel from making it one when someone edits the cell.
                cell.data_type = "s"
                cell.quotePrefix = True
            elif isinstance(cell.value, str) and _FORMULA_START.match(cell.value):
                cell.quotePrefix = True
    for index, name in enumerate(names, start=1):
        letter = sheet.cell(row=1, column=index).column_letter
        sheet.column_dimensions[letter].width = 48 if name in wide else 16
        for cell in sheet[letter][1:]:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    sheet.freeze_panes = "A2"
    book.properties.title = f"{title} — progress as of {as_of:%d %B %Y}"
    book.save(path)
