"""A plan's column headings and a text file's encoding: what every plan reader (CSV, XLSX,
Word, pasted text) and the export share."""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping, Sequence

# Header aliases, compared after `_header_key` (case, spaces and dashes folded).
PLAN_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "priority": ("priority", "priorities", "workstream", "theme", "priority area"),
    "ref": ("ref", "reference", "ref.", "no.", "no", "id", "action ref", "action reference"),
    "action": (
        "key actions",
        "key action",
        "activity",
        "activities",
        "action",
        "actions",
        "what action is needed?",
    ),
    "aim": ("aims", "aim", "objective", "objectives"),
    "leads": (
        "lead(s)",
        "lead",
        "leads",
        "lead officer",
        "owner",
        "owner(s)",
        "who should be involved?",
        "who",
        "responsible",
    ),
    "timescale": ("timescales", "timescale", "due", "due date", "by when", "deadline"),
    "milestones": ("milestones", "milestone", "deliverables", "concrete next steps", "next steps"),
    "rating": (
        "progress 1 - 4",
        "progress 1-4",
        "progress (1-4)",
        "progress",
        "rating",
        "progress rating",
    ),
    "networks": ("network(s)", "network", "networks"),
    "note": ("notes", "note", "action update", "progress notes", "update", "comments"),
    # Written by `pulse export` for the board; worked out afresh, so read and ignored.
    "updated": ("last updated", "updated", "date updated"),
    "status": ("status",),
    "revised": ("revised date", "revised due date", "revised due"),
    "support": ("needs support", "support needed", "support"),
    # Added by `pulse export` beside the plan's own columns (the milestone's reference beside
    # the action's, lead names beside initials, the rating in words, the due date beside the
    # timescale as written) and the evidence of impact: output, read and ignored too.
    "milestone_ref": ("milestone ref", "milestone reference"),
    "lead_names": ("lead names", "lead name"),
    "rating_words": ("rating in words",),
    "evidence": ("evidence", "evidence of impact"),
}
# A second timescale column headed so is the due date `pulse export` adds beside the
# timescale as written: output, not a second timescale.
EXPORT_DUE_HEADINGS = frozenset({"due", "duedate"})
_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)


def header_key(text: str) -> str:
    """A heading folded for matching: case, spaces, underscores and dash styles ignored."""
    return re.sub(r"[\s_]+", "", str(text).casefold().replace("–", "-").replace("—", "-"))


def plan_header(row: Sequence[str]) -> dict[str, int] | None:
    """{field: column} when `row` is a plan's header row: two headings we know, one of them
    an action's or a milestone's."""
    lookup = _plan_lookup()
    found: dict[str, int] = {}
    for index, cell in enumerate(row):
        name = lookup.get(header_key(cell)) if cell.strip() else None
        if name is not None and name not in found:
            found[name] = index
    if len(found) >= 2 and ("action" in found or "milestones" in found):
        return found
    return None


def _plan_lookup() -> dict[str, str]:
    return {header_key(a): name for name, names in PLAN_COLUMNS.items() for a in names}


def decode_text(raw: bytes) -> tuple[str, str]:
    """The text of a CSV file and the name of the encoding it was read in.

    A UTF-16 byte-order mark means UTF-16. Otherwise the file is UTF-8 whenever it holds any
    UTF-8 beyond ASCII: stray bytes that are not (one pasted from an older file) are kept as
    lone surrogates for `read_table` to report by row, instead of the whole file being read
    as Windows-1252 and every curly quote turning into `â€™`. Only a file with no UTF-8 in it
    at all is read as Windows-1252 (Excel's "CSV" on Windows).
    """
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # A lone surrogate or an odd last byte is kept as a lone surrogate, reported by row.
        text = raw[: len(raw) // 2 * 2].decode("utf-16", "surrogatepass")
        return text + "\udcff" * (len(raw) % 2), "UTF-16"
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return raw.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    if _UTF8_MULTIBYTE.search(raw):
        return raw.decode("utf-8", "surrogateescape"), "UTF-8"
    try:
        return raw.decode("cp1252"), "Windows-1252"
    except UnicodeDecodeError:  # the five bytes cp1252 leaves undefined
        return raw.decode("latin-1"), "Latin-1"
