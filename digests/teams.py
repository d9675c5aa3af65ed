"""A digest as Adaptive Cards for a Teams channel, posted through a Workflows webhook.

`render_teams` returns the posts of a Teams digest, in order: each a Workflows message,
`{"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
"content": CARD}]}`, whose card is of version 1.5 (the newest every Teams client renders).
The wording mirrors the Markdown digest (`digests.markdown`): the title, the counts (and how
many were achieved without evidence), the rating mix per priority as a Table (with its
trend), the sections with each milestone's reference, its leads by name and its facts (an
achieved one's evidence, or "achieved, no evidence"), and who is awaiting an update. An
"Open the live view" action links to the web view when the caller gives its address.

Teams refuses a message of about 28 KB: each post is kept under `MAX_POST_BYTES` of JSON as
sent (`post_body`), and a longer digest continues in further posts, each opening with
"continued 2 of 3" (and a section that goes on repeating its heading). Nothing is cut: a
title or note too long for one post (imported sheets have no limit) continues in the next.

User text (titles, references, notes, names of people, networks and priorities) is made
inert for Adaptive Card markdown by `escape_card_text`, since Teams reads markdown in every
TextBlock and Fact:

* `*`, `_`, `~` and the backtick become look-alikes (∗ ˍ ∼ ˋ), as in the Slack digest:
  emphasis has no escape that every Teams client honours;
* a word joiner (U+2060, invisible) follows `<`, `&`, `\\`, `[`, `]` and `{`, so no
  `<at>…</at>` mention, tag, entity, `[text](link)`, backslash escape or `{{DATE()}}`
  function can form, and goes inside `://` and `www.` so that no address is made a link;
* a line that would start a list or a quote (`- `, `1. `, `> `, `#`) starts with a word
  joiner instead, and control characters are dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from digests.content import SECTION_TITLES, Digest, DigestItem, DigestSection
from digests.markdown import (
    AWAITING_EMOJI,
    AWAITING_TITLE,
    EVIDENCE_LABEL,
    MIX_SQUARES,
    NOTHING_TO_REPORT,
    SECTION_EMOJI,
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
    without_controls,
)

Element = dict[str, Any]

CARD_VERSION = "1.5"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
# Teams refuses a message of about 28 KB; Workflows wraps the card on its way. A post is
# kept a thousand bytes below.
MAX_POST_BYTES = 27_000
# A piece of one title or note in one TextBlock: a long one continues in further blocks, so
# that every unit of a post fits in a post with room to spare.
MAX_PIECE_BYTES = 6_000
LIVE_VIEW_TITLE = "Open the live view"
UNEVIDENCED_TITLE = "Achieved without evidence"
SQUARES = 10  # squares in a picture-of-progress bar
TABLE_ROWS = 12  # rows of the picture's table in one post, header included


_NO_NAMES: Mapping[str, str] = MappingProxyType({})

# --- escaping ---------------------------------------------------------------------------------

_JOINER = "\u2060"  # word joiner: invisible, and no markdown token spans it
_LOOK_ALIKES = str.maketrans({"*": "∗", "_": "ˍ", "~": "∼", "`": "ˋ"})
_JOIN_AFTER = re.compile(r"([<&\\\[\]{])")
_LINK_STARTS = re.compile(r"(:)(//)|\b([wW]{3})(\.)")
# What opens a list, a quote or a heading at the start of a line.
_LINE_MARKER = re.compile(r"^([ \t]*)(?=(?:[-+]|\d{1,9}[.)])(?:[ \t]|$)|[>#])", re.MULTILINE)


def escape_card_text(text: str) -> str:
    """User text made inert in an Adaptive Card TextBlock (see the module's docstring):
    line breaks kept, trailing spaces and runs of blank lines dropped."""
    lines = [line.rstrip() for line in without_controls(text).strip().splitlines()]
    shown = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).translate(_LOOK_ALIKES)
    shown = _JOIN_AFTER.sub(lambda m: m.group(1) + _JOINER, shown)
    shown = _LINK_STARTS.sub(
        lambda m: (m.group(1) or m.group(3)) + _JOINER + (m.group(2) or m.group(4)), shown
    )
    return _LINE_MARKER.sub(lambda m: m.group(1) + _JOINER, shown)


def escape_card_line(text: str) -> str:
    """User text made inert and joined into one line (names, titles, references)."""
    return escape_card_text(" ".join(without_controls(text).split()))


# --- sizes ------------------------------------------------------------------------------------


def post_body(message: Mapping[str, Any]) -> bytes:
    """A post as sent: compact JSON in UTF-8. Its length is what Teams counts."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def _size(element: Element) -> int:
    return len(post_body(element))


def _pieces(text: str, limit: int, escape: Callable[[str], str] = escape_card_text) -> list[str]:
    """`text` escaped, in pieces whose JSON is at most `limit` bytes each, broken at a
    space where one is near; one piece when it fits."""
    pieces: list[str] = []
    rest = text
    while rest:
        whole = escape(rest)
        if len(json.dumps(whole, ensure_ascii=False).encode()) <= limit:
            pieces.append(whole)
            break
        low, high = 1, len(rest)
        while low < high:  # the longest prefix that fits
            middle = (low + high + 1) // 2
            if len(json.dumps(escape(rest[:middle]), ensure_ascii=False).encode()) <= limit:
                low = middle
            else:
                high = middle - 1
        cut = rest.rfind(" ", low // 2, low)
        cut = cut if cut > 0 else low
        pieces.append(escape(rest[:cut]))
        rest = rest[cut:].lstrip()
    return pieces or [""]


# --- elements ---------------------------------------------------------------------------------


def _text(text: str, **style: Any) -> Element:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _subtle(text: str, **style: Any) -> Element:
    return _text(text, **{"isSubtle": True, "spacing": "None", **style})


def _heading(text: str, *, first: bool = False) -> Element:
    """A section's heading: with a separator above where the section starts (`first`),
    plain where a post goes on with it."""
    style: dict[str, Any] = {"weight": "Bolder", "size": "Medium"}
    if first:
        style.update(separator=True, spacing="Large")
    return _text(text, **style)


def _cell(text: str, **style: Any) -> Element:
    return {"type": "TableCell", "items": [_text(text, **style)]}


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> Element:
    """A Table whose first row is its header; cells are text already escaped."""
    return {
        "type": "Table",
        "firstRowAsHeader": True,
        "showGridLines": False,
        "columns": [{"width": 3}, {"width": 2}, {"width": 3}][: len(header)],
        "rows": [
            {"type": "TableRow", "cells": [_cell(h, weight="Bolder") for h in header]},
            *({"type": "TableRow", "cells": [_cell(c) for c in row]} for row in rows),
        ],
    }


def _bar(mix: Mapping[str, int]) -> str:
    shares = scaled(mix_counts(mix), SQUARES)
    return "".join(square * n for square, n in zip(MIX_SQUARES, shares, strict=True))


def _name(key: str, names: Mapping[str, str]) -> str:
    return escape_card_line(names.get(key) or key) or "(no name)"


# --- units: what stays together in one post ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Unit:
    """Elements that stay together in one post. `heading` is put first when the unit opens
    a post in the middle of a section, so a reader knows where they are."""

    elements: list[Element]
    heading: Element | None = None


def _title(digest: Digest) -> str:
    return escape_card_line(digest.network_name) + digest_title(digest)


def _header(digest: Digest) -> _Unit:
    counts = digest.counts()
    facts = [{"title": SECTION_TITLES[s], "value": str(counts[s.value])} for s in DigestSection] + [
        {"title": AWAITING_TITLE, "value": str(counts["awaiting"])}
    ]
    if digest.unevidenced():
        facts.append({"title": UNEVIDENCED_TITLE, "value": str(digest.unevidenced())})
    return _Unit(
        [
            _text(_title(digest), size="Large", weight="Bolder"),
            {"type": "FactSet", "facts": facts},
            _subtle(f"{response_line(digest)}.", spacing="Small"),
        ]
    )


def _picture(digest: Digest) -> list[_Unit]:
    """The rating mix per priority as a Table (in parts of `TABLE_ROWS`), the legend, and
    the network's trend as a second Table."""
    rows = [
        [f"{number} · {escape_card_line(title)}", _bar(mix), mix_summary(mix)]
        for number, title, mix in priority_rows(digest)
    ]
    if not rows:
        return []
    title = "Picture of progress"
    header = ["Priority", "Picture", "Ratings"]
    units = []
    for start in range(0, len(rows), TABLE_ROWS - 1):
        heading = _heading(title if start == 0 else f"{title}, continued", first=start == 0)
        units.append(_Unit([heading, _table(header, rows[start : start + TABLE_ROWS - 1])]))
    legend = " · ".join(
        f"{square} {legend_label(key)}"
        for square, key in zip(MIX_SQUARES, ("1", "2", "3", "4", "unrated"), strict=True)
    )
    units[-1].elements.append(_subtle(legend))
    trend = trend_rows(digest)
    if trend:
        units.append(
            _Unit(
                [
                    _heading("Trend across the network"),
                    _table(
                        ["Week", "Picture", "Ratings"],
                        [[period, _bar(mix), mix_summary(mix)] for period, mix in trend],
                    ),
                ]
            )
        )
    return units


def _item_units(
    item: DigestItem, section: DigestSection, names: Mapping[str, str]
) -> list[list[Element]]:
    """A milestone: its reference and title, its leads by name and facts, its last note.
    A title or note too long for one piece goes on in further units."""
    ref = escape_card_line(item.ref) or "(no reference)"
    leads = ", ".join(_name(k, names) for k in item.leads)
    facts = " · ".join([f"Lead: {leads}" if leads else "no lead", *item_facts(item, section)])
    titles = _pieces(" ".join(without_controls(item.title).split()), MAX_PIECE_BYTES)
    first = [_text(f"**{ref}** {titles[0]}", spacing="Medium"), _subtle(facts)]
    units = [first]
    units += [[_subtle(f"{ref}, title continued:"), _text(t)] for t in titles[1:]]
    note = without_controls(item.note or "").strip()
    if note:
        said = f"Note ({item.updated:%d %b %Y}):" if item.updated else "Note:"
        notes = _pieces(note, MAX_PIECE_BYTES)
        units[-1] = [*units[-1], _subtle(f"_{said}_ {notes[0]}")]
        units += [[_subtle(f"{ref}, note continued:"), _subtle(n)] for n in notes[1:]]
    if section is DigestSection.ACHIEVED and item.evidence:
        shown = escape_card_line(evidence_shown(item.evidence))
        units[-1] = [*units[-1], _subtle(f"_{EVIDENCE_LABEL}_ {shown}")]
    return units


def _people_units(people: Sequence[str]) -> list[list[Element]]:
    """Names, comma-separated, in TextBlocks of at most `MAX_PIECE_BYTES` each."""
    units: list[list[Element]] = []
    current = ""
    for person in people:
        candidate = f"{current}, {person}" if current else person
        if current and len(candidate.encode()) > MAX_PIECE_BYTES:
            units.append([_text(current)])
            candidate = person
        current = candidate
    units.append([_text(current)])
    return units


def _units(digest: Digest, names: Mapping[str, str]) -> Iterator[_Unit]:
    """Everything the digest shows, in order, as units that are never split."""
    yield _header(digest)
    yield from _picture(digest)
    for section in DigestSection:
        items = digest.sections[section]
        if not items:
            continue
        title = f"{SECTION_EMOJI[section]} {SECTION_TITLES[section]} ({len(items)})"
        first = True
        for number, group in digest.groups(section):
            label = escape_card_line(group_heading(digest, number)) if number else None
            again = _heading(f"{title} · {label}, continued" if label else f"{title}, continued")
            for index, item in enumerate(group):
                for part, elements in enumerate(_item_units(item, section, names)):
                    if part == 0 and index == 0 and label is not None:
                        elements = [_text(label, weight="Bolder", spacing="Medium"), *elements]
                    if first:
                        elements = [_heading(title, first=True), *elements]
                        first = False
                    yield _Unit(elements, again)
    if digest.awaiting:
        title = f"{AWAITING_EMOJI} {AWAITING_TITLE} ({len(digest.awaiting)})"
        again = _heading(f"{title}, continued")
        people = _people_units([_name(key, names) for key in digest.awaiting])
        for index, elements in enumerate(people):
            yield _Unit([_heading(title, first=True), *elements] if index == 0 else elements, again)
    if not any(digest.sections.values()) and not digest.awaiting:
        yield _Unit([_heading(NOTHING_TO_REPORT, first=True)])


# --- posts ------------------------------------------------------------------------------------


def _message(body: list[Element], actions: list[Element]) -> dict[str, Any]:
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": CARD_SCHEMA,
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
    }
    if actions:
        card["actions"] = actions
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }


def _continued(digest: Digest, part: int, parts: int) -> Element:
    return _subtle(f"{_title(digest)}, continued {part} of {parts}", spacing="Default")


def _more(parts: int) -> Element:
    more = parts - 1
    return _subtle(
        f"Continued in {more} more post{'s' if more != 1 else ''}.",
        spacing="Medium",
        separator=True,
    )


def render_teams(
    digest: Digest, *, names: Mapping[str, str] | None = None, live_view: str | None = None
) -> list[dict[str, Any]]:
    """The digest as Workflows messages, in the order they are posted.

    `names` maps person keys to their names (by default the digest's own): leads and people
    awaiting an update are shown by name (by key when it has none). `live_view`, an https
    address, adds an "Open the live view" button to every post.
    """
    names = digest.names if names is None else names
    actions = (
        [{"type": "Action.OpenUrl", "title": LIVE_VIEW_TITLE, "url": live_view}]
        if live_view
        else []
    )
    # Room for a post's elements: the message around them, and what is added once the number
    # of posts is known (a "continued n of N" line, or a "continued in N more posts" one).
    reserve = max(_size(_continued(digest, 9999, 9999)), _size(_more(9999))) + 2
    room = MAX_POST_BYTES - len(post_body(_message([], actions))) - reserve

    posts: list[list[Element]] = []
    used: list[int] = []
    for unit in _units(digest, names):
        size = sum(_size(e) + 1 for e in unit.elements)
        if posts and used[-1] + size <= room:
            posts[-1].extend(unit.elements)
            used[-1] += size
            continue
        opening = list(unit.elements)
        if posts and unit.heading is not None and opening[0].get("separator") is not True:
            opening = [unit.heading, *opening]
        posts.append(opening)
        used.append(sum(_size(e) + 1 for e in opening))

    parts = len(posts)
    out = []
    for number, body in enumerate(posts, start=1):
        if number > 1:
            body = [_continued(digest, number, parts), *body]
        elif parts > 1:
            body = [*body, _more(parts)]
        message = _message(body, actions)
        if len(post_body(message)) >= MAX_POST_BYTES:  # units are far smaller than a post
            raise AssertionError(f"a Teams post of {len(post_body(message))} bytes")
        out.append(message)
    return out


def check_message(network_name: str, *, sent_at: str) -> dict[str, Any]:
    """The card `pulse check --teams` posts, for an admin to see arrive in the channel."""
    return _message(
        [
            _text("Plan Pulse: test post", size="Medium", weight="Bolder"),
            _text(
                f"The digests of {escape_card_line(network_name)} will be posted to this "
                "channel. Nothing to do: this card only checks the way here."
            ),
            _subtle(f"Sent {sent_at} by `pulse check --teams`.".replace("`", "")),
        ],
        [],
    )
