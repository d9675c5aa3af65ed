"""Builds each example's plan.docx from the text of its seed, in the seed's own layout.

    python examples/build_docx.py            # rewrite examples/*/plan.docx
    python examples/build_docx.py --check    # fail if a committed plan.docx is out of date

A table is given as rows of cells. A cell `"^"` is merged into the cell above it, `"<"` into
the cell on its left, as a Word author merges them; a cell with line breaks becomes one
paragraph per line.
"""

from __future__ import annotations

import csv
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import groupby
from pathlib import Path
from typing import Any

from docx import Document
from docx.document import Document as DocumentObject
from docx.shared import Pt

HERE = Path(__file__).resolve().parent
UP, LEFT = "^", "<"


def plan_table(document: DocumentObject, rows: Sequence[Sequence[str]]) -> Any:
    """Add a table with merged cells to `document`, as described in this module's docstring."""
    width = max(len(r) for r in rows)
    table = document.add_table(rows=len(rows), cols=width)
    table.style = "Table Grid"
    # Merges are written as Word writes them (w:vMerge, w:gridSpan) in one pass over the
    # cells, read once: python-docx's cell.merge() and table.cell() redo the grid per call.
    cells = [list(row.cells) for row in table.rows]
    origin: dict[tuple[int, int], tuple[int, int]] = {}
    for r, row in enumerate(rows):
        for c in range(width):
            value = row[c] if c < len(row) else ""
            tc = cells[r][c]._tc
            if value == UP:
                origin[(r, c)] = origin.get((r - 1, c), (r - 1, c))
                above = cells[r - 1][c]._tc
                if above.vMerge is None:
                    above.vMerge = "restart"
                tc.vMerge = "continue"
            elif value == LEFT:
                o = origin[(r, c)] = origin.get((r, c - 1), (r, c - 1))
                first = cells[o[0]][o[1]]._tc
                first.grid_span = first.grid_span + 1
                tc.getparent().remove(tc)
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if (r, c) in origin or not value:
                continue
            lines = value.split("\n")
            cell = cells[r][c]
            cell.paragraphs[0].text = lines[0]
            for line in lines[1:]:
                cell.add_paragraph(line)
    return table


def new_document() -> DocumentObject:
    document = Document()
    document.styles["Normal"].font.size = Pt(10)
    # Fixed properties, so that the same rows give the same document.
    document.core_properties.author = "Plan Pulse examples"
    document.core_properties.created = document.core_properties.modified = datetime(2026, 1, 1)
    return document


def _csv_rows(name: str) -> list[dict[str, str]]:
    with (HERE / name / "plan.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _lines(cell: str) -> str:
    """A bulleted CSV cell as Word paragraphs: one line per milestone, without the bullet."""
    return "\n".join(line.removeprefix("- ").strip() for line in cell.splitlines() if line.strip())


def wirral(document: DocumentObject) -> None:
    """Appendix One of the Wirral plan: a `Workstream N - …` row across each table, then
    Activity | Lead | Milestones, as the seed lays it out (refs, ratings, networks left out)."""
    document.add_heading("Wirral Children and Young People's Improvement Plan 2017-2019", 0)
    document.add_paragraph("Update April 2018")
    document.add_paragraph("APPENDIX 1 – ACTION PLAN")
    for priority, group in groupby(_csv_rows("wirral"), key=lambda r: r["Priority"]):
        rows: list[list[str]] = [
            [f"Workstream {priority}", LEFT, LEFT],
            ["Activity", "Lead", "Milestones"],
        ]
        rows += [[r["Key actions"], r["Lead(s)"], _lines(r["Milestones"])] for r in group]
        plan_table(document, rows)
        document.add_paragraph("")


def west_midlands(document: DocumentObject) -> None:
    """The West Midlands priorities as Word tables: a `Priority N | title` row, an Overall
    lead row, then the actions the example adds (the seed has no action table)."""
    document.add_heading("West Midlands ADCS Network: Regional Priority Plan 2022-2024", 0)
    document.add_paragraph("Progress is rated 1 (achieved) to 4 (not started).")
    plan_table(document, [["Rating", "Meaning"], ["1", "Achieved"], ["2", "On track"],
                          ["3", "Some delay"], ["4", "Not started"]])  # fmt: skip
    for priority, group in groupby(_csv_rows("west-midlands"), key=lambda r: r["Priority"]):
        number, title = priority.split(" - ", 1)
        rows: list[list[str]] = [
            [f"Priority {number}", title, LEFT, LEFT, LEFT, LEFT],
            ["Overall lead", "Regional Priority Plan Oversight Group", LEFT, LEFT, LEFT, LEFT],
            ["Key actions", "Lead(s)", "Timescales", "Milestones", "Progress 1 - 4", "Network(s)"],
        ]
        rows += [
            [
                r["Key actions"],
                r["Lead(s)"],
                r["Timescales"],
                _lines(r["Milestones"]),
                r["Progress 1 - 4"],
                "\n".join(r["Network(s)"].split(";")),
            ]
            for r in group
        ]
        plan_table(document, rows)
        document.add_paragraph("")


def from_source(name: str) -> Callable[[DocumentObject], None]:
    """A plan kept as `source.txt` beside it: the seed's text, `# ` for a heading, and
    tab-separated table rows (`\\n` for a new paragraph in a cell), a blank line after each."""

    def build(document: DocumentObject) -> None:
        table: list[list[str]] = []
        lines = (HERE / name / "source.txt").read_text(encoding="utf-8").splitlines()
        for line in [*lines, ""]:
            if "\t" in line:
                table.append([cell.replace("\\n", "\n") for cell in line.split("\t")])
                continue
            if table:
                plan_table(document, table)
                table = []
            if line.startswith("# "):
                document.add_heading(line[2:], 1)
            elif line.strip():
                document.add_paragraph(line)

    return build


EXAMPLES: dict[str, Callable[[DocumentObject], None]] = {
    "wirral": wirral,
    "west-midlands": west_midlands,
    "nw-regional": from_source("nw-regional"),
    "nw-sector-led": from_source("nw-sector-led"),
}


def build(name: str, path: Path) -> Path:
    """Write the example `name` as a Word document at `path`."""
    document = new_document()
    EXAMPLES[name](document)
    document.save(str(path))
    return path


def main(argv: Sequence[str]) -> int:
    if "--check" in argv:
        from handlers.files.word import read_blocks  # the reader the import uses

        stale = []
        with tempfile.TemporaryDirectory() as folder:
            for name in EXAMPLES:
                fresh = build(name, Path(folder) / f"{name}.docx")
                if read_blocks(fresh) != read_blocks(HERE / name / "plan.docx"):
                    stale.append(name)
        for name in stale:
            print(f"examples/{name}/plan.docx is out of date: run examples/build_docx.py")
        return 1 if stale else 0
    for name in EXAMPLES:
        print(build(name, HERE / name / "plan.docx"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
