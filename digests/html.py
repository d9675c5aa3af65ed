"""A digest as an email: an HTML document and its plain-text alternative.

`render_html` gives a complete HTML document that Outlook renders (table layout, inline
styles only, no CSS classes, flex or grid, no scripts, no external images) and that opens as
a page in any browser. Nothing in it has a fixed width in pixels: it reflows on a phone
(320-375 px) as on a desktop, up to 640 px wide; bars are shares of their column, counts
three a row, the legend one key a line, and long words (web addresses) wrap. `render_text`
gives the plain-text part of the same email. Both say what the Markdown digest says
(`digests.markdown`), with leads by name when `names` knows them, plus the picture of
progress: the rating mix per priority as stacked bars of coloured table cells (Outlook draws
cell backgrounds; it ignores most CSS), a legend, and the trend of the network's mix over
its last digests.

Every piece of user text goes through Jinja's autoescaping (`& < > " '`), so a note's
`<script>`, `<img onerror=…>` or `</td>` is shown as text and never makes a tag; control
characters other than line breaks and tabs are dropped. The only markup in the output is
the template's own (`digests/templates/digest.html.j2`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from digests.content import MIX_KEYS, SECTION_TITLES, Digest, DigestItem, DigestSection
from digests.markdown import (
    AWAITING_TITLE,
    EVIDENCE_LABEL,
    NOTHING_TO_REPORT,
    counts_line,
    digest_title,
    evidence_shown,
    group_heading,
    item_facts,
    legend_label,
    mix_counts,
    mix_summary,
    priority_rows,
    response_line,
    scaled,
    trend_rows,
    unevidenced_line,
    without_controls,
)

# The bars are as wide as the column they are in (a phone's or a desktop's): each segment is
# a share of 100 per cent, and a single milestone keeps at least `MIN_SEGMENT` per cent.
BAR_SHARES = 100
MIN_SEGMENT = 1
COUNTS_PER_ROW = 3  # the counts' cells: three a row, so that each label fits at 320 px

# The mix colours follow the Slack squares: 🟩 achieved, 🟦 largely, 🟨 in progress,
# 🟥 not started, ⬜ not rated.
MIX_COLOURS: Mapping[str, str] = MappingProxyType(
    {"1": "#2b8a3e", "2": "#1c7ed6", "3": "#f0b400", "4": "#c92a2a", "unrated": "#ced4da"}
)
SECTION_COLOURS: Mapping[DigestSection, str] = MappingProxyType(
    {
        DigestSection.OVERDUE: "#a4161a",
        DigestSection.AT_RISK: "#b35c00",
        DigestSection.NEEDS_SUPPORT: "#6f1d77",
        DigestSection.DUE_SOON: "#1d4e89",
        DigestSection.ACHIEVED: "#2b6a30",
    }
)
AWAITING_COLOUR = "#555555"
TEXT_WIDTH = 76  # characters a line in the plain-text part

_ENVIRONMENT = Environment(
    loader=PackageLoader("digests", "templates"),
    autoescape=select_autoescape(["html.j2"]),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


def _clean(text: str) -> str:
    """User text on one line: control characters dropped, whitespace runs made one space."""
    return " ".join(without_controls(text).split())


def _note_lines(note: str | None) -> list[str]:
    """A note's lines as written, each cleaned, blank ones dropped."""
    lines = (_clean(line) for line in without_controls(note or "").splitlines())
    return [line for line in lines if line]


def _leads(item: DigestItem, names: Mapping[str, str]) -> str:
    shown = ", ".join(_clean(names.get(key) or key) for key in item.leads)
    return f"lead: {shown}" if shown else "no lead"


def _facts(item: DigestItem, section: DigestSection, names: Mapping[str, str]) -> str:
    return " · ".join([_leads(item, names), *item_facts(item, section)])


def _note_label(item: DigestItem) -> str:
    return f"Note ({item.updated:%d %b %Y}):" if item.updated else "Note:"


def _evidence(item: DigestItem, section: DigestSection) -> str:
    """An achieved milestone's evidence as shown (cleaned, cut when long), else ""."""
    if section is not DigestSection.ACHIEVED or not item.evidence:
        return ""
    return evidence_shown(item.evidence)


def _segments(mix: Mapping[str, int]) -> list[dict[str, Any]]:
    """A bar's cells, each with its colour and its width in per cent of the bar."""
    shares = scaled(mix_counts(mix), BAR_SHARES, minimum=MIN_SEGMENT)
    if not any(shares):  # nothing rated or unrated: an empty grey bar
        return [{"colour": "#eeeeee", "width": BAR_SHARES}]
    return [
        {"colour": MIX_COLOURS[key], "width": share}
        for key, share in zip(MIX_KEYS, shares, strict=True)
        if share
    ]


def _context(digest: Digest, names: Mapping[str, str]) -> dict[str, Any]:
    """Everything the template shows, as plain values; the template escapes them."""
    counts = digest.counts()
    count_cells = [
        {"number": counts[s.value], "label": SECTION_TITLES[s], "colour": SECTION_COLOURS[s]}
        for s in DigestSection
    ]
    count_cells.append(
        {"number": counts["awaiting"], "label": AWAITING_TITLE, "colour": AWAITING_COLOUR}
    )
    count_rows = [
        count_cells[i : i + COUNTS_PER_ROW] for i in range(0, len(count_cells), COUNTS_PER_ROW)
    ]
    sections = [
        {
            "title": SECTION_TITLES[section],
            "colour": SECTION_COLOURS[section],
            "count": len(digest.sections[section]),
            "groups": [
                {
                    "heading": _clean(group_heading(digest, number)) if number else "",
                    "entries": [
                        {
                            "ref": _clean(item.ref),
                            "title": _clean(item.title),
                            "facts": _facts(item, section, names),
                            "note_label": _note_label(item),
                            "note_lines": _note_lines(item.note),
                            "evidence": _evidence(item, section),
                        }
                        for item in group
                    ],
                }
                for number, group in digest.groups(section)
            ],
        }
        for section in DigestSection
        if digest.sections[section]
    ]
    nothing = not any(digest.sections.values()) and not digest.awaiting
    return {
        "title": f"{_clean(digest.network_name)}{digest_title(digest)}",
        "count_rows": count_rows,
        "count_width": 100 // COUNTS_PER_ROW,
        "response_line": response_line(digest),
        "unevidenced": unevidenced_line(digest),
        "evidence_label": EVIDENCE_LABEL,
        "picture": [
            {
                "number": number,
                "title": _clean(title),
                "segments": _segments(mix),
                "summary": mix_summary(mix),
            }
            for number, title, mix in priority_rows(digest)
        ],
        "legend": [{"colour": MIX_COLOURS[key], "label": legend_label(key)} for key in MIX_KEYS],
        "trend": [
            {"period": period, "segments": _segments(mix), "summary": mix_summary(mix)}
            for period, mix in trend_rows(digest)
        ],
        "sections": sections,
        "awaiting_title": AWAITING_TITLE,
        "awaiting": [_clean(names.get(key) or key) for key in digest.awaiting],
        "nothing": NOTHING_TO_REPORT if nothing else "",
        "plan": _clean(digest.plan),
        "network": _clean(digest.network),
    }


def render_html(digest: Digest, *, names: Mapping[str, str] | None = None) -> str:
    """The digest as a complete HTML email document; `names` maps person keys to names
    (by default the digest's own)."""
    names = digest.names if names is None else names
    return _ENVIRONMENT.get_template("digest.html.j2").render(_context(digest, names))


# --- plain text -------------------------------------------------------------------------------


def _wrapped(text: str, *, indent: str = "", first: str | None = None) -> list[str]:
    """`text` wrapped at `TEXT_WIDTH`; words (and web addresses) are never broken."""
    return textwrap.wrap(
        text,
        width=TEXT_WIDTH,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [indent if first is None else first]


def _wrapped_parts(
    parts: Sequence[str], *, indent: str = "", first: str | None = None
) -> list[str]:
    """Parts joined with " · ", each line broken between parts where it can be; a part too
    long for a line of its own is wrapped like any text."""
    opening = indent if first is None else first
    lines: list[list[str]] = [[]]
    for part in parts:
        line = lines[-1]
        prefix = opening if len(lines) == 1 else indent
        candidate = prefix + " · ".join([*line, part])
        if line and len(candidate) + len(" ·") > TEXT_WIDTH:  # keep room for a trailing " ·"
            lines.append([part])
        else:
            line.append(part)
    out: list[str] = []
    for number, line in enumerate(lines):
        text = " · ".join(line) + (" ·" if number < len(lines) - 1 else "")
        out += _wrapped(text, indent=indent, first=opening if number == 0 else indent)
    return out


def _heading(text: str, underline: str) -> list[str]:
    return [text, underline * min(len(text), TEXT_WIDTH)]


def _text_item(item: DigestItem, section: DigestSection, names: Mapping[str, str]) -> list[str]:
    lines = _wrapped(f"{_clean(item.ref)} {_clean(item.title)}", first="- ", indent="  ")
    lines += _wrapped_parts([_leads(item, names), *item_facts(item, section)], indent="  ")
    note = _note_lines(item.note)
    if note:
        lines.append(f"  {_note_label(item)}")
        for line in note:
            lines += _wrapped(line, indent="    ")
    evidence = _evidence(item, section)
    if evidence:
        lines.append(f"  {EVIDENCE_LABEL}")
        lines += _wrapped(evidence, indent="    ")
    return lines


def _text_picture(rows: Sequence[tuple[str, Mapping[str, int]]]) -> list[str]:
    out: list[str] = []
    for name, mix in rows:
        parts = mix_summary(mix).split(" · ")
        out += _wrapped_parts([f"{name}: {parts[0]}", *parts[1:]], first="- ", indent="  ")
    return out


def render_text(digest: Digest, *, names: Mapping[str, str] | None = None) -> str:
    """The digest as plain text, the alternative part of the email: no markup at all;
    people by name (`names`, else the digest's own)."""
    names = digest.names if names is None else names
    lines = _heading(f"{_clean(digest.network_name)}{digest_title(digest)}", "=")
    lines += ["", *_wrapped_parts(counts_line(digest).split(" · ")), "", response_line(digest)]
    rows = priority_rows(digest)
    if rows:
        lines += ["", *_heading("Picture of progress", "-")]
        lines += _text_picture([(f"{n} {_clean(title)}", mix) for n, title, mix in rows])
        trend = trend_rows(digest)
        if trend:
            lines += ["", "Trend across the network:"]
            lines += _text_picture(trend)
    for section in DigestSection:
        items = digest.sections[section]
        if not items:
            continue
        lines += ["", *_heading(f"{SECTION_TITLES[section]} ({len(items)})", "-")]
        for number, group in digest.groups(section):
            if number is not None:
                lines += _wrapped(f"{_clean(group_heading(digest, number))}:")
            for item in group:
                lines += _text_item(item, section, names)
    if digest.awaiting:
        lines += ["", *_heading(f"{AWAITING_TITLE} ({len(digest.awaiting)})", "-")]
        lines += [f"- {_clean(names.get(key) or key)}" for key in digest.awaiting]
    if not any(digest.sections.values()) and not digest.awaiting:
        lines += ["", NOTHING_TO_REPORT]
    return "\n".join(lines) + "\n"
