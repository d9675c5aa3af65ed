"""Word documents (.docx) as blocks: each table as Word shows it, and the text between.

Rows are read from the table's XML (`w:tr`/`w:tc` with `w:gridSpan` and `w:vMerge`), never
with `table.cell(r, c)`, which rebuilds the whole grid on every call. A cell merged down
over several rows reads as its text on each of them (an aim merged over four actions
belongs to each); a cell merged across several columns reads as its text in the first of
them and empty cells after, as Word shows one wide cell.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from docx import Document
from docx.oxml.ns import qn

from handlers.files.layout import Block, Grid, Text

_P, _TBL, _TR, _TC, _SDT = qn("w:p"), qn("w:tbl"), qn("w:tr"), qn("w:tc"), qn("w:sdt")
_SDT_CONTENT, _VAL = qn("w:sdtContent"), qn("w:val")
_R, _HYPERLINK, _T, _BR, _TYPE = qn("w:r"), qn("w:hyperlink"), qn("w:t"), qn("w:br"), qn("w:type")
_RUN_TEXT = {qn("w:tab"): "\t", qn("w:ptab"): "\t", qn("w:cr"): "\n", qn("w:noBreakHyphen"): "-"}


def read_blocks(path: Path) -> list[Block]:
    """The paragraphs and tables of the document's body, in document order."""
    document = Document(str(path))
    blocks: list[Block] = []
    tables = 0
    styles = {str(s.style_id): str(s.name or "") for s in document.styles}
    for element in _children(document.element.body):
        if element.tag == _P:
            text = _paragraph_text(element)
            if text.strip():
                blocks.append(Text(text.strip(), heading=_is_heading(element, styles)))
        elif element.tag == _TBL:
            tables += 1
            blocks.append(Grid(f"table {tables}", _table_rows(element)))
    return blocks


def _children(parent: Any) -> Iterator[Any]:
    """Block-level children, looking through content controls (`w:sdt`)."""
    for child in parent.iterchildren():
        if child.tag == _SDT:
            for content in child.iterchildren(_SDT_CONTENT):
                yield from _children(content)
        else:
            yield child


def _is_heading(p: Any, styles: dict[str, str]) -> bool:
    """Styled as a heading or a title, or given an outline level."""
    pr = p.find(qn("w:pPr"))
    if pr is None:
        return False
    if pr.find(qn("w:outlineLvl")) is not None:
        return True
    style = pr.find(qn("w:pStyle"))
    style_id = str(style.get(_VAL, "")) if style is not None else ""
    name = styles.get(style_id, style_id).casefold()
    return name.startswith(("heading", "title"))


def _paragraph_text(p: Any) -> str:
    """The paragraph's text as Word shows it: what python-docx's `CT_P.text` gives (runs
    and hyperlinks' runs; tabs, line breaks and non-breaking hyphens), walked directly
    rather than by an XPath query per paragraph and per run (most of a big plan's reading)."""
    out: list[str] = []
    for child in p.iterchildren(_R, _HYPERLINK):
        for run in child.iterchildren(_R) if child.tag == _HYPERLINK else (child,):
            for element in run.iterchildren():
                tag = element.tag
                if tag == _T:
                    out.append(element.text or "")
                elif tag == _BR:
                    if element.get(_TYPE, "textWrapping") == "textWrapping":
                        out.append("\n")
                elif tag in _RUN_TEXT:
                    out.append(_RUN_TEXT[tag])
    return "".join(out)


def _cell_text(tc: Any) -> str:
    lines = [_paragraph_text(p).strip() for p in _children(tc) if p.tag == _P]
    return "\n".join(line for line in lines if line)


def _table_rows(tbl: Any) -> list[list[str]]:
    rows: list[list[str]] = []
    above: dict[int, str] = {}  # grid column -> text of the cell a vMerge continues
    for tr in tbl.iterchildren(_TR):
        row: list[str] = []
        column = _grid_skip(tr, "w:gridBefore")
        row.extend([""] * column)
        for tc in (c for c in _children(tr) if c.tag == _TC):
            span, merge = _cell_props(tc)
            if merge == "continue":
                text = above.get(column, "")
            else:
                text = _cell_text(tc)
                if merge == "restart":
                    above[column] = text
                else:
                    above.pop(column, None)
            row.append(text)
            row.extend([""] * (span - 1))
            column += span
        rows.append(row)
    width = max((len(r) for r in rows), default=0)
    return [r + [""] * (width - len(r)) for r in rows]


def _grid_skip(tr: Any, name: str) -> int:
    pr = tr.find(qn("w:trPr"))
    if pr is None:
        return 0
    skip = pr.find(qn(name))
    return int(skip.get(_VAL, "0")) if skip is not None else 0


def _cell_props(tc: Any) -> tuple[int, str | None]:
    """The cell's column span, and 'restart'/'continue' when it is merged down."""
    pr = tc.find(qn("w:tcPr"))
    if pr is None:
        return 1, None
    span_el = pr.find(qn("w:gridSpan"))
    span = max(1, int(span_el.get(_VAL, "1"))) if span_el is not None else 1
    merge_el = pr.find(qn("w:vMerge"))
    merge = None
    if merge_el is not None:
        merge = "restart" if merge_el.get(_VAL) == "restart" else "continue"
    return span, merge
