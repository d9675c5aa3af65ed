"""Pasted tables: the tab-separated text that copying a Word or Excel table gives.

UTF-8 (with or without a byte order mark), or UTF-16 with its byte order mark as Excel's
"Unicode text" saves it, decoded as CSV files are (`handlers.files.plan_files.decode_text`). Excel
quotes a cell holding a line break, so the text is read as tab-separated CSV.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from handlers.files.columns import decode_text
from handlers.files.layout import Block, Grid


def read_blocks(path: Path) -> list[Block]:
    """The pasted text as one table (title rows above its header included)."""
    text, _ = decode_text(path.read_bytes())
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    rows = [
        [cell.strip() for cell in row]
        for row in csv.reader(io.StringIO(text), delimiter="\t", quotechar='"')
    ]
    width = max((len(r) for r in rows), default=0)
    return [Grid("the pasted table", [r + [""] * (width - len(r)) for r in rows])]
