"""A board pack as a Word document (`pulse pack --format docx`), ready for a committee
papers system: real headings (Title, Heading 1–3 styles, so the navigation pane and a table
of contents find them), tables whose header row repeats on every page, and the rating-mix
trend of each priority as a PNG chart with alt text.

Tables are written row by row: each row is added once and its own cell elements filled,
never through `table.cell(r, c)` or `row.cells`, which rebuild the whole table's grid on
every call and make a large table quadratic.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: draw into memory only

from docx import Document
from docx.document import Document as DocumentObject
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm
from docx.table import Table, _Cell
from matplotlib.figure import Figure

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
_TEXT = qn("w:t")


def _repeat_header(table: Table) -> None:
    """Mark the first row as a header row, repeated at the top of each page."""
    properties = table.rows[0]._tr.get_or_add_trPr()
    header = OxmlElement("w:tblHeader")
    header.set(qn("w:val"), "true")
    properties.append(header)


def _table(document: DocumentObject, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    table = document.add_table(rows=1, cols=len(header))
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, header, strict=True):
        cell.text = text
        for run in cell.paragraphs[0].runs:
            run.bold = True
    _repeat_header(table)
    # Every row is a copy of one prototype row with its text put in: the same XML python-
    # docx makes, a hundred times faster than its element builders (~2 ms a row).
    prototype = table.add_row()._tr
    for tc in prototype.tc_lst:
        _Cell(tc, table).text = "-"  # one w:t in each cell
    for t in prototype.iter(_TEXT):
        t.set(qn("xml:space"), "preserve")
    table._tbl.remove(prototype)
    for values in rows:
        if any("\n" in v or "\t" in v for v in values):
            # Line breaks and tabs are elements of their own: python-docx makes them.
            tr = table.add_row()._tr
            for tc, text in zip(tr.tc_lst, values, strict=True):
                _Cell(tc, table).text = text  # its own cells, never `row.cells`
            continue
        tr = copy.deepcopy(prototype)
        for t, text in zip(tr.iter(_TEXT), values, strict=True):
            t.text = text
        table._tbl.append(tr)


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


def _grouped(document: DocumentObject, pack: Pack, lines: Sequence[PackLine], last: str) -> None:
    for number, group in pack.by_priority(lines):
        document.add_heading(f"{number} {pack.priority_title(number)}", level=3)
        _table(document, (*LINE_COLUMNS, last), _line_rows(group))


def trend_png(pack: Pack, number: int) -> bytes:
    """One priority's rating mix on each trend day, as stacked horizontal bars."""
    points = pack.mix.get(number) or ()
    days = [long_date(d) for d in pack.trend_days]
    height = 0.3 * len(days) + 1.3
    figure = Figure(figsize=(6.5, height), dpi=120)
    # Fixed margins (in inches, as fractions): tight_layout would draw the figure twice.
    figure.subplots_adjust(left=1.5 / 6.5, right=0.97, top=1 - 0.15 / height, bottom=1.0 / height)
    axes = figure.add_subplot()
    left = [0.0] * len(points)
    rows = list(range(len(points)))  # positions, labelled with the days below
    for key in MIX_KEYS:
        widths = [100 * mix[key] / (sum(mix.values()) or 1) for mix in points]
        axes.barh(rows, widths, left=left, color=MIX_COLOURS[key], label=legend_label(key))
        left = [a + b for a, b in zip(left, widths, strict=True)]
    axes.set_yticks(rows, days, fontsize=8)
    axes.tick_params(axis="x", labelsize=8)
    axes.invert_yaxis()  # oldest at the top, as the page reads
    axes.set_xlim(0, 100)
    axes.set_xlabel("% of milestones", fontsize=8)
    figure.legend(loc="lower center", ncol=3, fontsize=7, frameon=False)
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def _picture(document: DocumentObject, png: bytes, alt: str) -> None:
    shape = document.add_picture(io.BytesIO(png), width=Cm(16))
    # The picture's description is what a screen reader says and Word shows as alt text.
    shape._inline.docPr.set("descr", alt)
    shape._inline.docPr.set("title", alt.split(":")[0])


def _mix_section(document: DocumentObject, pack: Pack) -> None:
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
    )
    for number in sorted(pack.mix):
        document.add_heading(f"{number} {pack.priority_title(number)}: trend", level=2)
        _picture(document, trend_png(pack, number), trend_alt(pack, number))


def write_pack_docx(pack: Pack, path: Path) -> None:
    document = Document()
    document.core_properties.title = pack_title(pack)
    document.add_heading(pack_title(pack), level=0)
    document.add_paragraph(f"{period_line(pack)}. {pack.milestones} milestones.")
    body = document.element.body
    before = len(body)
    _mix_section(document, pack)
    charts = list(body)[before - 1 : len(body) - 1]

    document.add_heading("What changed", level=1)
    changed = False
    for change in Change:
        if pack.changes[change]:
            changed = True
            document.add_heading(CHANGE_TITLES[change], level=2)
            _grouped(document, pack, pack.changes[change], "What changed")
    if not changed:
        document.add_paragraph("Nothing changed in this period.")

    document.add_heading("Exceptions", level=1)
    for exception in Exception_:
        if pack.exceptions[exception]:
            document.add_heading(EXCEPTION_TITLES[exception], level=2)
            _grouped(document, pack, pack.exceptions[exception], "Why")
    if pack.silent:
        document.add_heading("No answer for several cycles", level=2)
        _table(
            document,
            ("Lead", "Cycles without an answer"),
            [(s.name, str(s.cycles)) for s in pack.silent],
        )
    if not pack.silent and not any(pack.exceptions.values()):
        document.add_paragraph("No exceptions.")

    document.add_heading("Achieved", level=1)
    if pack.unevidenced:
        document.add_paragraph().add_run(pack.unevidenced_line()).bold = True
    if pack.achieved:
        _grouped(document, pack, pack.achieved, "Evidence")
    else:
        document.add_paragraph("No milestone was achieved in this period.")

    document.add_heading("Response rate", level=1)
    document.add_heading("Per network", level=2)
    _table(
        document,
        ("Network", "Answered"),
        [(r.name, rate_text(r.answered, r.prompted)) for r in pack.network_responses],
    )
    document.add_heading("Per lead", level=2)
    if pack.lead_responses:
        _table(
            document,
            ("Lead", "Answered"),
            [(r.name, rate_text(r.answered, r.prompted)) for r in pack.lead_responses],
        )
    else:
        document.add_paragraph("No lead was asked in this period.")

    # The charts' part is written while the document is short and moved to the end after:
    # python-docx numbers each new picture by searching the whole document for ids.
    body = document.element.body
    for element in charts:
        body.remove(element)
        body.insert(len(body) - 1, element)  # before the section properties, which end it
    document.save(str(path))
