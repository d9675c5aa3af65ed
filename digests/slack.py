"""A digest as Slack Block Kit posts: the parent message, then replies in its thread.

`render_slack` returns the `posts` of a Slack outbox row (`handlers.slack.transport`): a
list of `{"text": ..., "blocks": [...]}`, the first the parent message, the rest replies in
its thread. The wording mirrors the Markdown digest (`digests.markdown`).

It is compact: the counts are a section's fields; within each severity section the
milestones are lines, grouped by priority (one section block per priority, a line per
milestone), their notes (and the achieved ones' evidence) together in one context block
after them; an achieved milestone without evidence says "achieved, no evidence" on its line,
and the counts say how many. People are shown by name
unless they are @-mentioned.

User text is made inert (RELIABILITY.md scenario 16, "Slack ingress hardening"):

* Notes are `plain_text` objects (after the milestone's reference and date), sent as written
  (control characters dropped, line breaks kept). Slack reads no markup, mention or link in
  `plain_text`, so a note's `<!channel>`, `<@U123>`, `<https://evil|Council>`, `*bold*` and
  `@channel` are shown as text. They are not entity-escaped: Slack stores `plain_text` with
  `&`, `<`, `>` as entities itself (they come back so in interaction payloads, bolt-
  python#513), so escaping here would show a note's `&` as `&amp;`. For the limits a plain
  text is counted with those entities. The header block's network name is `plain_text` too.
* Every other piece of user text (titles, references, lead and person keys, the network's
  and priorities' names) sits in `mrkdwn` next to our own markup and mentions. It is
  escaped by `escape_mrkdwn`: `&`, `<`, `>` become `&amp;`, `&lt;`, `&gt;`, so it can never
  open a mention, a link or a `<!…>` command; the formatting characters `*`, `_`, `~` and
  the backtick are swapped for look-alikes (∗ ˍ ∼ ˋ, as jsx-slack does) because mrkdwn has no
  escape for them and a zero-width joiner next to them does not reliably stop Slack's
  parser; lines are joined, so no user text starts a line (`>` quotes).
* Every `mrkdwn` object carries `"verbatim": true`: Slack then links no URL, channel name or
  `@channel` written as plain words, while our own `<@U…>` mentions still work.
* The fallback `text` of a post (what notifications show) holds only our own words, the
  counts and the escaped network name.

Leads are @-mentioned when `slack_ids` knows their Slack user id (a `U…`/`W…` id; anything
else is shown as the key). Slack's limits (scenario 17) are met by continuing in the
thread: at most 50 blocks a post, at most 3,000 characters a text object and about 12,000
characters of text a post. Nothing is dropped: an item is never split between posts, a
section that continues in the next post repeats its heading, and a note too long for one
text object is cut with an explicit "… (note shortened; full text in the export)".
"""

from __future__ import annotations

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

Block = dict[str, Any]

MAX_BLOCKS = 50  # Slack: blocks in one message
MAX_TEXT = 3000  # Slack: characters in one section text or context element
MAX_POST_TEXT = 12_000  # ours: Slack refuses a message somewhat above this (msg_blocks_too_long)
MAX_HEADER = 150  # Slack: characters in a header block
SQUARES = 20  # squares in a picture-of-progress bar

NOTE_SHORTENED = "… (note shortened; full text in the export)"
TITLE_SHORTENED = "… (title shortened; full text in the export)"

# In the order of `content.MIX_KEYS`: 1 achieved, 2 largely, 3 in progress, 4 not started,
# unrated.


_NO_IDS: Mapping[str, str] = MappingProxyType({})
_SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
_LOOK_ALIKES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", "*": "∗", "_": "ˍ", "~": "∼", "`": "ˋ"}
)


def escape_mrkdwn(text: str) -> str:
    """User text made inert in a mrkdwn text object (see the module's docstring)."""
    return " ".join(without_controls(text).split()).translate(_LOOK_ALIKES)


def utf16_length(text: str) -> int:
    """A text's length as Slack counts it: in UTF-16 code units (an emoji may count 2)."""
    return len(text.encode("utf-16-le")) // 2


def plain_length(text: str) -> int:
    """A `plain_text` text's length as Slack may count it: with `&`, `<`, `>` as the
    entities Slack stores them as, so never less than what Slack counts."""
    return utf16_length(text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": False}


def _section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(text)}


def _context(*elements: dict[str, Any]) -> Block:
    return {"type": "context", "elements": list(elements)}


def _text_objects(value: Any) -> Iterator[dict[str, Any]]:
    """Every text object inside a block (or a list of them)."""
    if isinstance(value, dict):
        if value.get("type") in ("mrkdwn", "plain_text") and isinstance(value.get("text"), str):
            yield value
        else:
            for inner in value.values():
                yield from _text_objects(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _text_objects(inner)


def text_length(text_object: Mapping[str, Any]) -> int:
    """One text object's length: mrkdwn as sent (already escaped), plain_text as stored."""
    text = str(text_object["text"])
    return plain_length(text) if text_object["type"] == "plain_text" else utf16_length(text)


def block_length(block: Block) -> int:
    """The characters of text in one block, as Slack may count them."""
    return sum(text_length(t) for t in _text_objects(block))


def _shortened(text: str, limit: int, marker: str, *, measure: Callable[[str], int]) -> str:
    """`text` if `measure(text)` is within `limit`, else its longest prefix that fits with
    `marker` after it (never silently: the marker says it was cut)."""
    if measure(text) <= limit:
        return text
    low, high = 0, len(text)
    while low < high:  # the longest prefix whose shortened form fits
        middle = (low + high + 1) // 2
        if measure(text[:middle].rstrip() + marker) <= limit:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + marker


def _note_text(note: str) -> str:
    """A note as shown: line breaks kept, trailing spaces and runs of blank lines dropped."""
    lines = [line.rstrip() for line in without_controls(note).strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


# --- the picture of progress ------------------------------------------------------------------

PRIORITY_TITLE_ROOM = 200  # a priority's name in the picture is a label, not an item


def _bar(mix: Mapping[str, int]) -> str:
    shares = scaled(mix_counts(mix), SQUARES)
    return "".join(square * n for square, n in zip(MIX_SQUARES, shares, strict=True))


def _picture(digest: Digest) -> list[str]:
    """The lines of the picture: a bar per priority, the legend, and the trend."""
    rows = priority_rows(digest)
    if not rows:
        return []
    lines = ["*Picture of progress*"]
    for number, title, mix in rows:
        name = _shortened(title, PRIORITY_TITLE_ROOM, "…", measure=utf16_length)
        lines.append(f"*{number}* {escape_mrkdwn(name)}")
        lines.append(f"{_bar(mix)}  {mix_summary(mix)}")
    lines.append(
        " · ".join(
            f"{square} {legend_label(key)}"
            for square, key in zip(MIX_SQUARES, ("1", "2", "3", "4", "unrated"), strict=True)
        )
    )
    trend = trend_rows(digest)
    if trend:
        lines += ["", "*Trend across the network*"]
        lines += [f"{period}: {_bar(mix)}  {mix_summary(mix)}" for period, mix in trend]
    return lines


def _line_blocks(lines: Sequence[str]) -> list[Block]:
    """Lines packed into as few section blocks as fit `MAX_TEXT` each."""
    blocks: list[Block] = []
    current: list[str] = []
    for line in lines:
        if current and utf16_length("\n".join([*current, line])) > MAX_TEXT:
            blocks.append(_section("\n".join(current)))
            current = []
        current.append(line)
    if current:
        blocks.append(_section("\n".join(current)))
    return blocks


# --- items ------------------------------------------------------------------------------------


def _person(key: str, slack_ids: Mapping[str, str], names: Mapping[str, str]) -> str:
    """A person as mrkdwn: a mention when their Slack id is known, else their name (or key
    when no name is stored), escaped."""
    user_id = slack_ids.get(key)
    if user_id is not None and _SLACK_USER_ID.fullmatch(user_id):
        return f"<@{user_id}>"
    return escape_mrkdwn(names.get(key) or key) or "(no key)"  # Slack refuses an empty text


def _item_line(
    item: DigestItem,
    section: DigestSection,
    slack_ids: Mapping[str, str],
    names: Mapping[str, str],
    room: int,
) -> str:
    """One milestone on one line: reference, title, leads and facts, within `room`."""
    leads = ", ".join(_person(k, slack_ids, names) for k in item.leads)
    facts = " · ".join([f"lead: {leads}" if leads else "no lead", *item_facts(item, section)])
    head = f"• *{escape_mrkdwn(item.ref)}* "
    tail = f" · {facts}"
    title = _shortened(
        item.title,
        room - utf16_length(head + tail),
        TITLE_SHORTENED,
        measure=lambda t: utf16_length(escape_mrkdwn(t)),
    )
    return head + escape_mrkdwn(title) + tail


def _note_element(item: DigestItem) -> dict[str, Any] | None:
    """The item's last note as one plain_text element, `1.2-1 (13 May 2027): …`."""
    note = _note_text(item.note or "")
    if not note:
        return None
    said = f"{' '.join(without_controls(item.ref).split())} "
    said += f"({item.updated:%d %b %Y}): " if item.updated else ": "
    room = MAX_TEXT - plain_length(said)
    return _plain(said + _shortened(note, room, NOTE_SHORTENED, measure=plain_length))


def _evidence_element(item: DigestItem, section: DigestSection) -> dict[str, Any] | None:
    """An achieved milestone's evidence as one plain_text element, `1.2-1 Evidence: …`."""
    if section is not DigestSection.ACHIEVED or not item.evidence:
        return None
    said = f"{' '.join(without_controls(item.ref).split())} {EVIDENCE_LABEL} "
    return _plain(said + evidence_shown(item.evidence))


# --- packing into posts -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Unit:
    """Blocks that stay together in one post. `heading` is put first when the unit opens a
    post in the middle of a section, so a reader of the thread knows where they are."""

    blocks: list[Block]
    heading: Block | None = None


def _group_text(digest: Digest, number: int) -> str:
    return escape_mrkdwn(group_heading(digest, number))


def _heading(text: str) -> Block:
    return _section(f"*{text}*")


def _header(digest: Digest) -> list[Block]:
    """The title, then the counts as a section's fields (two columns in Slack) under the
    response rate."""
    title = " ".join(without_controls(f"{digest.network_name}{digest_title(digest)}").split())
    first: Block
    if plain_length(title) <= MAX_HEADER:
        first = {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": False}}
    else:  # too long for a header block: a bold section says the same
        first = _section(f"*{escape_mrkdwn(digest.network_name)}*{digest_title(digest)}")
    counts = digest.counts()
    fields = [
        _mrkdwn(f"{SECTION_EMOJI[s]} {SECTION_TITLES[s]}: *{counts[s.value]}*")
        for s in DigestSection
    ]
    fields.append(_mrkdwn(f"{AWAITING_EMOJI} {AWAITING_TITLE}: *{counts['awaiting']}*"))
    unevidenced = unevidenced_line(digest)
    if unevidenced:
        fields.append(_mrkdwn(f"{NO_EVIDENCE_EMOJI} {unevidenced}"))
    return [first, {"type": "section", "text": _mrkdwn(response_line(digest)), "fields": fields}]


def _people_blocks(people: Sequence[str]) -> list[Block]:
    """People, comma-separated, in as few section blocks as fit `MAX_TEXT` each."""
    blocks: list[Block] = []
    current = ""
    for person in people:
        candidate = f"{current}, {person}" if current else person
        if current and utf16_length(candidate) > MAX_TEXT:
            blocks.append(_section(current))
            candidate = person
        current = candidate
    blocks.append(_section(current))
    return blocks


NO_EVIDENCE_EMOJI = "⚠️"
MAX_NOTES = 10  # Slack: elements in one context block
# Ours: the text of one unit (a block of lines and its notes) when it holds more than one
# milestone, so that units pack into posts of `MAX_POST_TEXT` without much left over.
UNIT_TEXT = 4000


def _priority_groups(
    digest: Digest, section: DigestSection
) -> list[tuple[int, tuple[DigestItem, ...]]]:
    """The section's items by priority, priorities in order, each keeping the section's
    order (overdue: most overdue first)."""
    items = digest.sections[section]
    numbers = sorted({item.priority for item in items})
    return [(n, tuple(item for item in items if item.priority == n)) for n in numbers]


def _group_units(
    digest: Digest,
    section: DigestSection,
    number: int,
    items: Sequence[DigestItem],
    slack_ids: Mapping[str, str],
    names: Mapping[str, str],
    opening: str | None = None,
) -> list[list[Block]]:
    """A priority's milestones as lines under its heading in a section block (continued in
    another block when too long), each followed by a context block with their notes.
    `opening`, the section's own title, is the first line of the first block."""
    heading = f"*{_group_text(digest, number)}*"
    if opening is not None:
        heading = f"{opening}\n{heading}"
    again = f"*{_group_text(digest, number)}, continued*"
    room = MAX_TEXT - max(utf16_length(again), utf16_length(heading)) - 1
    out: list[list[Block]] = []
    lines: list[str] = []
    notes: list[dict[str, Any]] = []
    text = notes_text = 0  # the section's text so far (with its heading), the notes'

    def close() -> None:
        blocks: list[Block] = [_section("\n".join([again if out else heading, *lines]))]
        if notes:
            blocks.append(_context(*notes))
        out.append(blocks)

    for item in items:
        line = _item_line(item, section, slack_ids, names, room)
        said = [e for e in (_note_element(item), _evidence_element(item, section)) if e]
        line_text = utf16_length(line) + 1  # and its line break
        note_text = sum(text_length(e) for e in said)
        if lines and (
            text + line_text > MAX_TEXT
            or len(notes) + len(said) > MAX_NOTES
            or text + line_text + notes_text + note_text > UNIT_TEXT
        ):
            close()
            lines, notes, notes_text = [], [], 0
        if not lines:
            text = utf16_length(again if out else heading)
        lines.append(line)
        text += line_text
        notes += said
        notes_text += note_text
    if lines:
        close()
    return out


def _units(digest: Digest, slack_ids: Mapping[str, str], names: Mapping[str, str]) -> list[_Unit]:
    """Everything the digest shows, in order, as units that are never split."""
    units = [_Unit(_header(digest))]
    units += [_Unit([block]) for block in _line_blocks(_picture(digest))]
    for section in DigestSection:
        items = digest.sections[section]
        if not items:
            continue
        title = f"{SECTION_EMOJI[section]} {SECTION_TITLES[section]} ({len(items)})"
        again = _heading(f"{title}, continued")
        opening: str | None = f"*{title}*"
        for number, group in _priority_groups(digest, section):
            chunks = _group_units(digest, section, number, group, slack_ids, names, opening)
            for index, blocks in enumerate(chunks):
                if opening is not None and index == 0:
                    blocks = [{"type": "divider"}, *blocks]
                units.append(_Unit(blocks, again))
            opening = None
    if digest.awaiting:
        title = f"{AWAITING_EMOJI} {AWAITING_TITLE} ({len(digest.awaiting)})"
        again = _heading(f"{title}, continued")
        people = _people_blocks([_person(key, slack_ids, names) for key in digest.awaiting])
        for index, block in enumerate(people):
            blocks = [{"type": "divider"}, _heading(title), block] if index == 0 else [block]
            units.append(_Unit(blocks, again))
    if not any(digest.sections.values()) and not digest.awaiting:
        units.append(_Unit([{"type": "divider"}, _section(NOTHING_TO_REPORT)]))
    return units


def _summary(digest: Digest) -> str:
    """The parent's fallback text, what a notification shows: the counts."""
    name = escape_mrkdwn(digest.network_name)
    return f"{name}{digest_title(digest)}. {counts_line(digest)}. {response_line(digest)}."


def _part_line(digest: Digest, part: int, parts: int) -> str:
    name = escape_mrkdwn(digest.network_name)
    return f"{name}{digest_title(digest)}, continued: part {part} of {parts}"


def _thread_line(parts: int) -> str:
    more = parts - 1
    return f"Continued in the thread: {more} more part{'s' if more != 1 else ''}."


def _length(blocks: Sequence[Block]) -> int:
    return sum(block_length(b) for b in blocks)


def render_slack(
    digest: Digest,
    *,
    slack_ids: Mapping[str, str] = _NO_IDS,
    names: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The digest as Slack posts, `[{"text": ..., "blocks": [...]}, ...]`, the parent first.

    `slack_ids` maps person keys to Slack user ids: those leads (and those awaiting an
    update) are @-mentioned, everyone else is shown by name (`names`, else the digest's
    own), or by key when no name is stored.
    """
    names = digest.names if names is None else names
    # Each post keeps room for what is added once the number of posts is known: the
    # parent's fallback text and "continued in the thread" line, or a reply's fallback text
    # and its "part n of N" line (one block either way).
    extra = max(
        utf16_length(_summary(digest)) + utf16_length(_thread_line(9999)),
        2 * utf16_length(_part_line(digest, 9999, 9999)),
    )
    block_room = MAX_BLOCKS - 1
    text_room = MAX_POST_TEXT - extra

    posts: list[list[Block]] = []
    for unit in _units(digest, slack_ids, names):
        if (
            posts
            and len(posts[-1]) + len(unit.blocks) <= block_room
            and _length(posts[-1]) + _length(unit.blocks) <= text_room
        ):
            posts[-1].extend(unit.blocks)
            continue
        opening = list(unit.blocks)
        if posts and opening[0]["type"] == "divider":
            opening = opening[1:]  # the post's own start divides it from what went before
        elif posts and unit.heading is not None:
            opening = [unit.heading, *opening]
        posts.append(opening)

    parts = len(posts)
    out: list[dict[str, Any]] = []
    for number, blocks in enumerate(posts, start=1):
        if number == 1:
            if parts > 1:
                blocks.append(_context(_mrkdwn(_thread_line(parts))))
            out.append({"text": _summary(digest), "blocks": blocks})
        else:
            line = _part_line(digest, number, parts)
            out.append({"text": line, "blocks": [_context(_mrkdwn(line)), *blocks]})
    return out
