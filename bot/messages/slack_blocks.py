"""Block Kit for prompts in Slack (DESIGN.md §8): the prompt DM, the "Update with notes"
modal, the summary that replaces a DM once answered, and the App Home tab.

Pure: no I/O and no clock. User text (titles, notes) is shown as `plain_text`, or escaped
with `escape_mrkdwn` inside `verbatim` mrkdwn, so `<!channel>` in a note never pings anyone
(RELIABILITY.md scenario 16).

Values the bot reads back are shaped so a tampered one is recognised:

- a rating option's value is `"{prompt_id}:{ref}:{rating}"` (`parse_choice`);
- the modal's `private_metadata` is JSON `{"prompt": id, "page": n, "channel": c, "ts": ts}`
  (`parse_metadata`); its input blocks are `rating:{ref}`, `note:{ref}`, `evidence:{ref}`,
  `date:{ref}` and `support:{ref}` (`read_update`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from bot.domain.contacts import CONTACT_INTRO
from bot.domain.cycles import PromptItem
from bot.domain.model import Contact
from bot.domain.ratings import DEFAULT_LABELS, RATINGS
from bot.domain.replies import EVIDENCE_HINT, EVIDENCE_QUESTION, NOTE_LIMIT, ReplyLine
from bot.domain.status import MilestoneStatus
from digests.slack import escape_mrkdwn

__all__ = [
    "EVIDENCE_HINT",
    "EVIDENCE_QUESTION",
    "MAX_MESSAGE_BLOCKS",
    "MAX_VIEW_BLOCKS",
    "HomePlan",
    "ModalDraft",
    "ModalMetadata",
    "home_view",
    "mark_recorded",
    "milestone_line",
    "page_count",
    "page_items",
    "parse_choice",
    "parse_metadata",
    "prompt_blocks",
    "read_update",
    "summary_blocks",
    "update_modal",
]

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
_TEXT_LIMIT = 2900  # under the 3,000 characters of a section's text
_OPTION_LIMIT = 75  # an option's text
_HEADER_LIMIT = 150
# Evidence of impact, asked the same way in every channel.
# An address safe inside `<mailto:…|…>`: nothing that ends the link or starts another.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%'*+/=?^_{}~-]+@[A-Za-z0-9.-]+")

_STATUS_WORDS = {
    MilestoneStatus.OVERDUE: "Overdue",
    MilestoneStatus.AT_RISK: "At risk",
    MilestoneStatus.DUE_SOON: "Due soon",
    MilestoneStatus.ON_TRACK: "On track",
    MilestoneStatus.ACHIEVED: "Achieved",
    MilestoneStatus.NO_DATE: "No date",
}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plain(text: str, limit: int = _TEXT_LIMIT) -> dict[str, Any]:
    return {"type": "plain_text", "text": _cut(text, limit) or " ", "emoji": False}


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": _cut(text, _TEXT_LIMIT), "verbatim": True}


def _day(day: date | None) -> str:
    return day.strftime("%-d %b %Y") if day is not None else "no date"


def _rating_text(rating: int | None) -> str:
    if rating is None or rating not in DEFAULT_LABELS:
        return "not rated"
    return f"{rating} – {DEFAULT_LABELS[rating]}"


def _option(rating: int, value: str) -> dict[str, Any]:
    return {"text": _plain(_rating_text(rating), _OPTION_LIMIT), "value": value}


def milestone_line(item: PromptItem) -> str:
    """The milestone's reference, title, due date, status and last rating, with the
    revised date and support ask of the last answers, escaped."""
    status = _STATUS_WORDS.get(item.status, str(item.status))
    if item.status is MilestoneStatus.OVERDUE and item.days_overdue:
        status += f" by {item.days_overdue} day{'s' if item.days_overdue != 1 else ''}"
    last = f"last rating: {_rating_text(item.rating)}"
    if item.revised_due is not None:
        last += f" · revised date {_day(item.revised_due)}"
    if item.needs_support:
        last += " · support asked"
    return (
        f"*{escape_mrkdwn(item.milestone_ref)}* {escape_mrkdwn(item.title)}\n"
        f"Due {_day(item.due)} · {status} · {last}"
    )


def _note_context(ref: str, note: str | None, *, label: str = "Last note") -> dict[str, Any]:
    return {
        "type": "context",
        "block_id": f"note:{ref}"[:255],
        "elements": [_plain(f"{label}: {note}")],
    }


def _evidence_context(ref: str, evidence: str) -> dict[str, Any]:
    return {
        "type": "context",
        "block_id": f"evidence:{ref}"[:255],
        "elements": [_plain(f"What changed: {evidence}")],
    }


def _rating_select(prompt_id: int, item: PromptItem) -> dict[str, Any]:
    ref = item.milestone_ref
    return {
        "type": "static_select",
        "action_id": "rate",
        "placeholder": _plain("Rate progress", _OPTION_LIMIT),
        "options": [_option(r, f"{prompt_id}:{ref}:{r}") for r in RATINGS],
    }


def contact_block(contacts: Sequence[Contact]) -> dict[str, Any]:
    """Whom to ask about the plan, as a context line: names escaped, each address a
    `mailto:` link when it is a plain one (no character that would end the link)."""
    names = []
    for contact in contacts:
        shown = escape_mrkdwn(contact.email)
        if _PLAIN_ADDRESS.fullmatch(contact.email):
            shown = f"<mailto:{contact.email}|{shown}>"
        names.append(f"{escape_mrkdwn(contact.name)} &lt;{shown}&gt;" if contact.name else shown)
    text = f"{CONTACT_INTRO} " + " or ".join(names)
    return {"type": "context", "elements": [_mrkdwn(text)]}


def prompt_blocks(
    plan_title: str,
    person_name: str,
    items: Sequence[PromptItem],
    prompt_id: int,
    *,
    contacts: Sequence[Contact] = (),
) -> list[list[dict[str, Any]]]:
    """The prompt DM as one or more posts, each within Slack's 50 blocks: the first has the
    header, whom to ask about the plan (`contacts`) and the "Update with notes" button;
    later ones become thread replies."""
    header = {
        "type": "header",
        "text": _plain(f"{plan_title}: progress update", _HEADER_LIMIT),
    }
    intro = {
        "type": "section",
        "text": _plain(
            f"Hello {person_name}, how are these milestones going? Pick a rating to record "
            "it at once, or use Update with notes to add notes, revised dates or ask for "
            "support."
        ),
    }
    button = {
        "type": "actions",
        "block_id": "update",
        "elements": [
            {
                "type": "button",
                "action_id": "open_update",
                "text": _plain("Update with notes", _OPTION_LIMIT),
                "style": "primary",
                "value": str(prompt_id),
            }
        ],
    }
    posts: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = [header, intro]
    if contacts:
        current.append(contact_block(contacts))
    reserve = 1  # the button's block in the first post
    for item in items:
        blocks = [
            {
                "type": "section",
                "block_id": f"m:{item.milestone_ref}"[:255],
                "text": _mrkdwn(milestone_line(item)),
                "accessory": _rating_select(prompt_id, item),
            }
        ]
        if item.note:
            blocks.append(_note_context(item.milestone_ref, item.note))
        if len(current) + len(blocks) + reserve > MAX_MESSAGE_BLOCKS:
            if reserve:
                current.append(button)
                reserve = 0
            posts.append(current)
            current = []
        current.extend(blocks)
    if reserve:
        current.append(button)
    posts.append(current)
    return posts


def with_update_link(posts: Sequence[Mapping[str, Any]], url: str) -> list[dict[str, Any]]:
    """Prompt posts (`{"text", "blocks"}`) with an "Update in your browser" link button beside
    "Update with notes": the lead's update page (handlers/web)."""
    link = {
        "type": "button",
        "action_id": "open_web",
        "text": _plain("Update in your browser", _OPTION_LIMIT),
        "url": url,
    }
    out = []
    for post in posts:
        blocks = [
            {**block, "elements": [*block["elements"], link]}
            if block.get("block_id") == "update"
            else dict(block)
            for block in post.get("blocks", ())
        ]
        out.append({**post, "blocks": blocks})
    return out


def mark_recorded(
    blocks: Sequence[Mapping[str, Any]], ref: str, rating: int, *, when: str
) -> list[dict[str, Any]]:
    """A prompt post's blocks after `rating` was recorded for `ref`: its select shows the
    rating, and a line under it says so (for a 1, that what changed for children and
    families can be added with Update with notes). Other milestones are left as they were."""
    section_id = f"m:{ref}"[:255]
    done_id = f"done:{ref}"[:255]
    after = (
        ". What changed for children and families? Add it with Update with notes."
        if rating == 1
        else ""
    )
    out: list[dict[str, Any]] = []
    for block in blocks:
        if block.get("block_id") == done_id:
            continue  # replaced below
        copy = dict(block)
        out.append(copy)
        if copy.get("block_id") != section_id:
            continue
        accessory = dict(copy.get("accessory") or {})
        for option in accessory.get("options", []):
            if str(option.get("value", "")).endswith(f":{ref}:{rating}"):
                accessory["initial_option"] = option
        copy["accessory"] = accessory
        out.append(
            {
                "type": "context",
                "block_id": done_id,
                "elements": [_plain(f"✓ Recorded {_rating_text(rating)} ({when}){after}")],
            }
        )
    return out[:MAX_MESSAGE_BLOCKS]


def summary_blocks(recorded: Sequence[ReplyLine]) -> list[dict[str, Any]]:
    """What was recorded, to replace the prompt DM once the modal is submitted."""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": _plain("Thank you. This is what was recorded:")}
    ]
    if not recorded:
        blocks = [{"type": "section", "text": _plain("Nothing new was recorded.")}]
    for line in recorded:
        parts = [f"{line.ref}: {_rating_text(line.rating) if line.rating else 'note only'}"]
        if line.revised_due is not None:
            parts.append(f"revised date {_day(line.revised_due)}")
        if line.needs_support:
            parts.append("support needed")
        blocks.append({"type": "section", "text": _plain(" · ".join(parts))})
        if line.note:
            blocks.append(_note_context(line.ref, line.note, label="Note"))
        if line.evidence:
            blocks.append(_evidence_context(line.ref, line.evidence))
    if len(blocks) > MAX_MESSAGE_BLOCKS:
        more = len(blocks) - MAX_MESSAGE_BLOCKS + 1
        blocks = blocks[: MAX_MESSAGE_BLOCKS - 1]
        blocks.append({"type": "context", "elements": [_plain(f"and {more} more lines")]})
    return blocks


# --- the modal ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModalMetadata:
    prompt_id: int
    page: int = 0
    channel: str | None = None
    ts: str | None = None

    def dumps(self) -> str:
        return json.dumps(
            {"prompt": self.prompt_id, "page": self.page, "channel": self.channel, "ts": self.ts}
        )


def parse_metadata(text: object) -> ModalMetadata | None:
    """The modal's private metadata, or None when it is not ours."""
    try:
        raw = json.loads(str(text))
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    prompt, page = raw.get("prompt"), raw.get("page", 0)
    channel, ts = raw.get("channel"), raw.get("ts")
    if type(prompt) is not int or type(page) is not int or page < 0:
        return None
    if not (channel is None or isinstance(channel, str)) or not (ts is None or isinstance(ts, str)):
        return None
    return ModalMetadata(prompt, page, channel, ts)


_PER_MILESTONE = 7  # section, five inputs, divider
_PER_PAGE = (MAX_VIEW_BLOCKS - 1) // _PER_MILESTONE


def page_count(items: Sequence[PromptItem]) -> int:
    return max(1, -(-len(items) // _PER_PAGE))


def page_items(items: Sequence[PromptItem], page: int) -> Sequence[PromptItem]:
    return items[page * _PER_PAGE : (page + 1) * _PER_PAGE]


def update_modal(
    prompt_id: int,
    items: Sequence[PromptItem],
    *,
    page: int = 0,
    channel: str | None = None,
    ts: str | None = None,
) -> dict[str, Any]:
    """The "Update with notes" modal: per milestone an optional rating, note, what changed
    for children and families (evidence, with a rating of 1), revised date and
    needs-support box; at most 100 blocks, so long prompts have pages."""
    pages = page_count(items)
    page = min(max(page, 0), pages - 1)
    blocks: list[dict[str, Any]] = []
    if pages > 1:
        blocks.append(
            {"type": "context", "elements": [_plain(f"Page {page + 1} of {pages}")]},
        )
    for item in page_items(items, page):
        ref = item.milestone_ref
        blocks.append({"type": "section", "text": _mrkdwn(milestone_line(item))})
        blocks.append(
            {
                "type": "input",
                "block_id": f"rating:{ref}"[:255],
                "optional": True,
                "label": _plain("Rating", 2000),
                "element": {
                    "type": "static_select",
                    "action_id": "rating",
                    "options": [_option(r, str(r)) for r in RATINGS],
                },
            }
        )
        blocks.append(
            {
                "type": "input",
                "block_id": f"note:{ref}"[:255],
                "optional": True,
                "label": _plain("Note", 2000),
                "hint": _plain(
                    "Needed when the rating gets worse, or is 3 or 4 on an overdue milestone."
                ),
                "element": {
                    "type": "plain_text_input",
                    "action_id": "note",
                    "multiline": True,
                    "max_length": NOTE_LIMIT,
                },
            }
        )
        blocks.append(
            {
                "type": "input",
                "block_id": f"evidence:{ref}"[:255],
                "optional": True,
                "label": _plain(EVIDENCE_QUESTION, 2000),
                "hint": _plain(EVIDENCE_HINT, 2000),
                "element": {
                    "type": "plain_text_input",
                    "action_id": "evidence",
                    "multiline": True,
                    "max_length": NOTE_LIMIT,
                },
            }
        )
        blocks.append(
            {
                "type": "input",
                "block_id": f"date:{ref}"[:255],
                "optional": True,
                "label": _plain("Revised date", 2000),
                "element": {"type": "datepicker", "action_id": "revised"},
            }
        )
        blocks.append(
            {
                "type": "input",
                "block_id": f"support:{ref}"[:255],
                "optional": True,
                "label": _plain("Support", 2000),
                "element": {
                    "type": "checkboxes",
                    "action_id": "support",
                    "options": [{"text": _plain("Needs support", 75), "value": "yes"}],
                },
            }
        )
        blocks.append({"type": "divider"})
    if not items:
        blocks.append({"type": "section", "text": _plain("You have no open milestones.")})
    last = page == pages - 1
    return {
        "type": "modal",
        "callback_id": "pulse_update",
        "private_metadata": ModalMetadata(prompt_id, page, channel, ts).dumps(),
        "title": _plain("Progress update", 24),
        "submit": _plain("Save" if last else "Save and next", 24),
        "close": _plain("Cancel", 24),
        "blocks": blocks,
    }


@dataclass(frozen=True, slots=True)
class ModalDraft:
    """What the modal said about the milestones of one page, before the note rule."""

    lines: tuple[ReplyLine, ...]
    errors: dict[str, str]  # input block id -> message


def read_update(values: Mapping[str, Any], refs: Sequence[str], *, today: date) -> ModalDraft:
    """The answers in a submitted modal's `state.values` for `refs`; a milestone left
    blank is no answer. Values a client could not have sent are errors, never answers."""
    lines: list[ReplyLine] = []
    errors: dict[str, str] = {}

    def field(kind: str, ref: str, action: str) -> Mapping[str, Any]:
        block = values.get(f"{kind}:{ref}"[:255])
        found = block.get(action) if isinstance(block, Mapping) else None
        return found if isinstance(found, Mapping) else {}

    for ref in refs:
        rating: int | None = None
        option = field("rating", ref, "rating").get("selected_option")
        if isinstance(option, Mapping):
            value = str(option.get("value", ""))
            if value in {str(r) for r in RATINGS}:
                rating = int(value)
            else:
                errors[f"rating:{ref}"[:255]] = "Choose a rating from the list."
        note_value = field("note", ref, "note").get("value")
        note = note_value.strip() if isinstance(note_value, str) else ""
        if len(note) > NOTE_LIMIT:
            errors[f"note:{ref}"[:255]] = (
                f"A note can be at most {NOTE_LIMIT} characters; this one has {len(note)}."
            )
        evidence_value = field("evidence", ref, "evidence").get("value")
        evidence = evidence_value.strip() if isinstance(evidence_value, str) else ""
        if len(evidence) > NOTE_LIMIT:
            errors[f"evidence:{ref}"[:255]] = (
                f"What changed can be at most {NOTE_LIMIT} characters; this has {len(evidence)}."
            )
        revised: date | None = None
        picked = field("date", ref, "revised").get("selected_date")
        if isinstance(picked, str) and picked:
            try:
                revised = date.fromisoformat(picked)
            except ValueError:
                errors[f"date:{ref}"[:255]] = "Pick the revised date from the calendar."
            else:
                if revised < today:
                    errors[f"date:{ref}"[:255]] = "The revised date is in the past."
        ticked = field("support", ref, "support").get("selected_options")
        support = isinstance(ticked, list) and any(
            isinstance(o, Mapping) and o.get("value") == "yes" for o in ticked
        )
        if rating is None and not note and not evidence and revised is None and not support:
            continue
        lines.append(
            ReplyLine(ref, rating, note or None, revised, support, 0, evidence=evidence or None)
        )
    return ModalDraft(tuple(lines), errors)


def parse_choice(value: object) -> tuple[int, str, int] | None:
    """(prompt id, milestone ref, rating) from a rating option's value; None when tampered."""
    if not isinstance(value, str) or len(value) > 150:
        return None
    head, sep, rest = value.partition(":")
    ref, sep2, rating = rest.rpartition(":")
    if not sep or not sep2 or not ref or not head.isascii() or not head.isdigit():
        return None
    if rating not in {str(r) for r in RATINGS}:
        return None
    return int(head), ref, int(rating)


# --- App Home -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HomePlan:
    """One plan on App Home: its title, the person's milestones in it, and the evidence of
    impact given for them, by milestone reference."""

    title: str
    items: Sequence[PromptItem]
    evidence: Mapping[str, str] = field(default_factory=dict)


def home_view(person_name: str, plans: Sequence[HomePlan]) -> dict[str, Any]:
    """The App Home tab: the person's milestones, plan by plan, with their status, and for
    those rated 1 what changed for children and families."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(f"Milestones for {person_name}", _HEADER_LIMIT)}
    ]
    shown = 0
    for plan in plans:
        blocks.append({"type": "section", "text": _plain(plan.title)})
        for item in plan.items:
            if len(blocks) + 4 > MAX_VIEW_BLOCKS:
                break
            blocks.append({"type": "section", "text": _mrkdwn(milestone_line(item))})
            if item.note:
                blocks.append(_note_context(item.milestone_ref, item.note))
            evidence = plan.evidence.get(item.milestone_ref)
            if evidence and item.rating == 1:
                blocks.append(
                    {"type": "context", "elements": [_plain(f"What changed: {evidence}")]}
                )
            shown += 1
        blocks.append({"type": "divider"})
    if not shown:
        blocks.append({"type": "section", "text": _plain("You lead no open milestones.")})
    blocks.append(
        {
            "type": "context",
            "elements": [_plain("Type /pulse to give an update, or /pulse help.")],
        }
    )
    return {"type": "home", "blocks": blocks[:MAX_VIEW_BLOCKS]}
