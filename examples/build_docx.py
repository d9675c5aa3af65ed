"""Builds each example's plan.docx from the text of its seed, in the seed's own layout.

    python examples/build_docx.py            # rewrite examples/*/plan.docx
    python examples/build_docx.py --check    # fail if a committed plan.docx is out of date

A table is given as rows of cells. A cell `"^"` is merged into the cell above it, `"<"` into
the cell on its left, as a Word author merges them; a cell with line breaks becomes one
paragraph per line.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
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
    # Merge first, then write: python-docx joins the text of cells it merges.
    origin: dict[tuple[int, int], tuple[int, int]] = {}
    for r, row in enumerate(rows):
        for c in range(width):
            value = row[c] if c < len(row) else ""
            if value == UP:
                origin[(r, c)] = origin.get((r - 1, c), (r - 1, c))
            elif value == LEFT:
                origin[(r, c)] = origin.get((r, c - 1), (r, c - 1))
    cells = [list(row.cells) for row in table.rows]  # read once: each .cell() rebuilds the grid
    for (r, c), (r0, c0) in origin.items():
        cells[r0][c0].merge(cells[r][c])
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
    # A fixed creation time, so that the same rows always give the same file.
    document.core_properties.author = "Plan Pulse examples"
    return document


def main(argv: Sequence[str]) -> int:  # pragma: no cover - filled in with the examples
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
