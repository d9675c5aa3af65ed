"""A board pack as a Word document (`pulse pack --format docx`), ready for a committee
papers system: real headings (Title, Heading 1–3 styles, so the navigation pane and a table
of contents find them), tables whose header row repeats on every page, and the rating-mix
trend of each priority as a PNG chart with alt text.

Tables are written row by row as the table XML itself, never through python-docx's
`table.cell(r, c)` or `row.cells` (which rebuild the whole table's grid on every call and
make a large table quadratic), nor even its element tree: python-docx builds each table with
its header row and leaves a marker where the rows go, and the rows are written as text
straight into `word/document.xml` when the file is saved, in the very XML python-docx makes
for a row. A national pack has ninety thousand rows; as elements they were most of its time.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: draw into memory only

from docx import Document
from docx.document import Document as DocumentObject
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm
from docx.table import Table
from lxml import etree
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imsave

from digests.content import MIX_KEYS
from digests.html import MIX_COLOURS
from digests.markdown import legend_label
from digests.pack import (
    CHANGE_TITLES,
    Change,
    Exception_,
    Pack,
    PackLine,
    long_date,
)
from digests.pack_html import (
    EXCEPTION_TITLES,
    pack_title,
    period_line,
    rate_text,
    trend_alt,
)

LINE_COLUMNS = ("Milestone", "Action", "Aim", "Leads", "Due")
# Where a table's rows go in the saved document.xml, until they are written there.
_MARK = "pack-rows-"
_MARKS = re.compile(rb"<!--" + _MARK.encode() + rb"(\d+)-->")
# One cell as python-docx writes it: its width, one paragraph, one run.
_CELL = (
    '<w:tc><w:tcPr><w:tcW w:type="dxa" w:w="{width}"/></w:tcPr>'
    '<w:p><w:r><w:t xml:space="preserve">{{}}</w:t></w:r></w:p></w:tc>'
)
# Text that needs more than copying into a w:t: markup characters, tabs and line breaks
# (elements of their own in a run, as python-docx makes them; a vertical tab is Word's own
# line break, pasted with a plan from Word), and the characters XML 1.0 cannot hold at all
# (dropped: lxml refuses them, and so the pack could not be written at all).
_SPECIAL = re.compile("[&<>\x00-\x1f\ud800-\udfff\ufffe\uffff]")
_BREAK = '</w:t><w:br/><w:t xml:space="preserve">'
_ESCAPES = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    "\t": '</w:t><w:tab/><w:t xml:space="preserve">',
    "\n": _BREAK,
    "\r": _BREAK,
    "\v": _BREAK,
}
# Rows written to the zip at a time.
_BATCH = 2000


def _xml_text(text: str) -> str:
    """`text` as the content of a w:t element."""
    return _SPECIAL.sub(lambda m: _ESCAPES.get(m[0], ""), text)


@dataclass
class _Rows:
    """The body rows of the document's tables, by marker, kept as values until saved."""

    tables: list[tuple[str, Sequence[Sequence[str]]]] = field(default_factory=list)

    def mark(self, table: Table, rows: Sequence[Sequence[str]]) -> None:
        """Leave a marker after `table`'s header row where `rows` will be written."""
        widths = [column.get(qn("w:w")) for column in table._tbl.tblGrid.gridCol_lst]
        template = "<w:tr>" + "".join(_CELL.format(width=w) for w in widths) + "</w:tr>"
        table._tbl.append(etree.Comment(f"{_MARK}{len(self.tables)}"))
        self.tables.append((template, rows))

    def xml(self, index: int) -> Iterator[bytes]:
        """The rows of the table marked `index`, as XML, a batch at a time."""
        template, rows = self.tables[index]
        for start in range(0, len(rows), _BATCH):
            batch = []
            for values in rows[start : start + _BATCH]:
                if _SPECIAL.search("".join(values)):
                    values = [_xml_text(v) for v in values]
                batch.append(template.format(*values))
            yield "".join(batch).encode()

    def save(self, document: DocumentObject, path: Path) -> None:
        """Save `document` to `path` with every marked table's rows written in."""
        skeleton = io.BytesIO()
        document.save(skeleton)
        with (
            zipfile.ZipFile(skeleton) as source,
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out,
        ):
            for item in source.infolist():
                data = source.read(item)
                if item.filename != "word/document.xml":
                    out.writestr(item, data)
                    continue
                with out.open(item.filename, "w") as part:
                    written = 0
                    for mark in _MARKS.finditer(data):
                        part.write(data[written : mark.start()])
                        for chunk in self.xml(int(mark[1])):
                            part.write(chunk)
                        written = mark.end()
                    part.write(data[written:])


def _repeat_header(table: Table) -> None:
    """Mark the first row as a header row, repeated at the top of each page."""
    properties = table.rows[0]._tr.get_or_add_trPr()
    header = OxmlElement("w:tblHeader")
    header.set(qn("w:val"), "true")
    properties.append(header)


def _table(
    document: DocumentObject,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    pending: _Rows,
) -> None:
    table = document.add_table(rows=1, cols=len(header))
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, header, strict=True):
        cell.text = text
        for run in cell.paragraphs[0].runs:
            run.bold = True
    _repeat_header(table)
    if rows:
        pending.mark(table, rows)


def _line_rows(lines: Sequence[PackLine]) -> list[list[str]]:
    return [
        [
            f"{line.ref} {line.title}",
            f"{line.action_ref} {line.action_title}",
            line.aim or "",
            ", ".join(line.leads) or "no lead",
            long_date(line.due) if line.due else "no date",
            line.detail,
        ]
        for line in lines
    ]


def _grouped(
    document: DocumentObject, pack: Pack, lines: Sequence[PackLine], last: str, pending: _Rows
) -> None:
    for number, group in pack.by_priority(lines):
        document.add_heading(f"{number} {pack.priority_title(number)}", level=3)
        _table(document, (*LINE_COLUMNS, last), _line_rows(group), pending)


class TrendCharts:
    """The rating-mix trend of each priority (its mix on each trend day) as stacked
    horizontal bars, one PNG a priority.

    Every priority's chart has the same frame: the days, the axis, its label and the legend,
    whose text is most of a chart's drawing. The frame is drawn once; each chart is a copy
    of it with that priority's bars drawn over, and the axes' edges drawn over those, as a
    whole drawing stacks them.
    """

    def __init__(self, pack: Pack) -> None:
        self.pack = pack
        days = [long_date(d) for d in pack.trend_days]
        height = 0.3 * len(days) + 1.3
        self.figure = Figure(figsize=(6.5, height), dpi=120)
        self.canvas = FigureCanvasAgg(self.figure)
        # Fixed margins (in inches, as fractions): tight_layout would draw the figure twice.
        self.figure.subplots_adjust(
            left=1.5 / 6.5, right=0.97, top=1 - 0.15 / height, bottom=1.0 / height
        )
        self.axes = axes = self.figure.add_subplot()
        rows = list(range(len(days)))  # positions, labelled with the days below
        empty = [0.0] * len(rows)  # bars with no width draw nothing: the frame only
        self.bars = {
            key: axes.barh(rows, empty, color=MIX_COLOURS[key], label=legend_label(key)).patches
            for key in MIX_KEYS
        }
        axes.set_yticks(rows, days, fontsize=8)
        axes.tick_params(axis="x", labelsize=8)
        axes.invert_yaxis()  # oldest at the top, as the page reads
        axes.set_xlim(0, 100)
        axes.set_xlabel("% of milestones", fontsize=8)
        self.figure.legend(loc="lower center", ncol=3, fontsize=7, frameon=False)
        # The edges are drawn over each chart's bars, so not into the frame beneath them.
        for spine in axes.spines.values():
            spine.set_visible(False)
        self.canvas.draw()  # type: ignore[no-untyped-call]
        self.frame = self.canvas.copy_from_bbox(self.figure.bbox)  # type: ignore[no-untyped-call]
        for spine in axes.spines.values():
            spine.set_visible(True)

    def png(self, number: int) -> bytes:
        """The chart of priority `number`."""
        points = self.pack.mix.get(number) or [dict.fromkeys(MIX_KEYS, 0)] * len(
            self.pack.trend_days
        )
        self.canvas.restore_region(self.frame)  # type: ignore[no-untyped-call]
        left = [0.0] * len(points)
        for key, bars in self.bars.items():
            widths = [100 * mix[key] / (sum(mix.values()) or 1) for mix in points]
            for bar, x, width in zip(bars, left, widths, strict=True):
                bar.set_x(x)
                bar.set_width(width)
                self.axes.draw_artist(bar)
            left = [a + b for a, b in zip(left, widths, strict=True)]
        for spine in self.axes.spines.values():
            self.axes.draw_artist(spine)
        out = io.BytesIO()
        pixels = self.canvas.buffer_rgba()  # type: ignore[no-untyped-call]
        imsave(out, pixels, format="png", dpi=self.figure.dpi)
        return out.getvalue()


def _picture(document: DocumentObject, png: bytes, alt: str) -> None:
    shape = document.add_picture(io.BytesIO(png), width=Cm(16))
    # The picture's description is what a screen reader says and Word shows as alt text.
    shape._inline.docPr.set("descr", alt)
    shape._inline.docPr.set("title", alt.split(":")[0])


def _mix_section(document: DocumentObject, pack: Pack, pending: _Rows) -> None:
    document.add_heading("Rating mix per priority", level=1)
    _table(
        document,
        ("Priority", *(legend_label(k) for k in MIX_KEYS)),
        [
            (
                f"{n} {pack.priority_title(n)}",
                *(str(pack.mix_now(n)[k]) for k in MIX_KEYS),
            )
            for n in sorted(pack.mix)
        ],
        pending,
    )
    charts = TrendCharts(pack)
    for number in sorted(pack.mix):
        document.add_heading(f"{number} {pack.priority_title(number)}: trend", level=2)
        _picture(document, charts.png(number), trend_alt(pack, number))


def write_pack_docx(pack: Pack, path: Path) -> None:
    document = Document()
    pending = _Rows()
    document.core_properties.title = pack_title(pack)
    document.add_heading(pack_title(pack), level=0)
    document.add_paragraph(f"{period_line(pack)}. {pack.milestones} milestones.")
    body = document.element.body
    before = len(body)
    _mix_section(document, pack, pending)
    charts = list(body)[before - 1 : len(body) - 1]

    document.add_heading("What changed", level=1)
    changed = False
    for change in Change:
        if pack.changes[change]:
            changed = True
            document.add_heading(CHANGE_TITLES[change], level=2)
            _grouped(document, pack, pack.changes[change], "What changed", pending)
    if not changed:
        document.add_paragraph("Nothing changed in this period.")

    document.add_heading("Exceptions", level=1)
    for exception in Exception_:
        if pack.exceptions[exception]:
            document.add_heading(EXCEPTION_TITLES[exception], level=2)
            _grouped(document, pack, pack.exceptions[exception], "Why", pending)
    if pack.silent:
        document.add_heading("No answer for several cycles", level=2)
        _table(
            document,
            ("Lead", "Cycles without an answer"),
            [(s.name, str(s.cycles)) for s in pack.silent],
            pending,
        )
    if not pack.silent and not any(pack.exceptions.values()):
        document.add_paragraph("No exceptions.")

    document.add_heading("Achieved", level=1)
    if pack.unevidenced:
        document.add_paragraph().add_run(pack.unevidenced_line()).bold = True
    if pack.achieved:
        _grouped(document, pack, pack.achieved, "Evidence", pending)
    else:
        document.add_paragraph("No milestone was achieved in this period.")

    document.add_heading("Response rate", level=1)
    document.add_heading("Per network", level=2)
    _table(
        document,
        ("Network", "Answered"),
        [(r.name, rate_text(r.answered, r.prompted)) for r in pack.network_responses],
        pending,
    )
    document.add_heading("Per lead", level=2)
    if pack.lead_responses:
        _table(
            document,
            ("Lead", "Answered"),
            [(r.name, rate_text(r.answered, r.prompted)) for r in pack.lead_responses],
            pending,
        )
    else:
        document.add_paragraph("No lead was asked in this period.")

    # The charts' part is written while the document is short and moved to the end after:
    # python-docx numbers each new picture by searching the whole document for ids.
    body = document.element.body
    for element in charts:
        body.remove(element)
        body.insert(len(body) - 1, element)  # before the section properties, which end it
    pending.save(document, path)
