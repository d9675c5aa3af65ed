"""Adaptive Cards for prompts in Teams (version 1.5, the highest Teams renders on every
client): the prompt card, the same card with a refused submission's errors beside its
fields, and the card a recorded answer leaves behind. Pure: no I/O, no clock.

Text people wrote (titles, notes, names) is never Adaptive Card markdown: it goes in a
`TextRun`, which Teams shows as it is, so `**`, links and `<at>…</at>` in a note are only
characters, and with no `msteams.entities` no one is mentioned.

A submission (`Action.Submit`) comes back as a message activity whose `value` holds the
card's `data` and every input by id: `rating:{ref}`, `note:{ref}`, `evidence:{ref}`,
`date:{ref}` (ISO), `support:{ref}` ("true"/"false"). `read_submission` reads it for the
refs of the prompt, never for refs the card sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from bot.domain.contacts import CONTACT_INTRO
from bot.domain.cycles import PromptItem
from bot.domain.model import Contact
from bot.domain.ratings import RATINGS, label
from bot.domain.replies import EVIDENCE_HINT, EVIDENCE_QUESTION, NOTE_LIMIT, ReplyLine
from bot.domain.status import MilestoneStatus

# The outbox channel of the bot's cards (`teams` is the Workflows channel posts').
TEAMS_CHAT = "teams_chat"
CARD_VERSION = "1.5"
# Teams refuses a message of about 28 KB; a prompt's cards stay under this, with room for
# the envelope the SDK adds (ids, conversation, recipient).
MESSAGE_BUDGET = 24_000
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
SUBMIT_KIND = "plan_pulse_answer"
# Evidence of impact, asked the same way in every channel.
_STATUS_WORDS = {
    MilestoneStatus.OVERDUE: "Overdue",
    MilestoneStatus.AT_RISK: "At risk",
    MilestoneStatus.DUE_SOON: "Due soon",
    MilestoneStatus.ON_TRACK: "On track",
    MilestoneStatus.ACHIEVED: "Achieved",
    MilestoneStatus.NO_DATE: "No date",
}


def _day(day: date | None) -> str:
    return day.strftime("%-d %b %Y") if day is not None else "no date"


def _rating_text(rating: int | None) -> str:
    return (
        f"{rating} – {label(rating)}" if rating in RATINGS and rating is not None else "not rated"
    )


def _plain(
    *runs: str | tuple[str, Mapping[str, Any]], spacing: str | None = None
) -> dict[str, Any]:
    """Text shown as written: a RichTextBlock of TextRuns (never parsed as markdown)."""
    inlines = []
    for run in runs:
        text, style = (run, {}) if isinstance(run, str) else run
        inlines.append({"type": "TextRun", "text": text, **style})
    block: dict[str, Any] = {"type": "RichTextBlock", "inlines": inlines}
    if spacing:
        block["spacing"] = spacing
    return block


def _attention(text: str) -> dict[str, Any]:
    return _plain((text, {"color": "Attention", "weight": "Bolder"}), spacing="Small")


def milestone_facts(item: PromptItem) -> str:
    """Due date, status and the last answer, in words."""
    status = _STATUS_WORDS.get(item.status, str(item.status))
    if item.status is MilestoneStatus.OVERDUE and item.days_overdue:
        status += f" by {item.days_overdue} day{'s' if item.days_overdue != 1 else ''}"
    last = f"last rating: {_rating_text(item.rating)}"
    if item.revised_due is not None:
        last += f" · revised date {_day(item.revised_due)}"
    if item.needs_support:
        last += " · support asked"
    return f"Due {_day(item.due)} · {status} · {last}"


def _header(plan_title: str, intro: str, contacts: Sequence[Contact]) -> list[dict[str, Any]]:
    body = [
        _plain((f"{plan_title}: progress update", {"size": "Medium", "weight": "Bolder"})),
        _plain(intro),
    ]
    if contacts:
        names = " or ".join(f"{c.name} <{c.email}>" if c.name else c.email for c in contacts)
        body.append(_plain((f"{CONTACT_INTRO} {names}", {"isSubtle": True})))
    return body


def _milestone(item: PromptItem) -> list[dict[str, Any]]:
    body = [
        _plain((item.milestone_ref, {"weight": "Bolder"}), f" {item.title}"),
        _plain((milestone_facts(item), {"isSubtle": True}), spacing="None"),
    ]
    if item.note:
        body.append(_plain((f"Last note: {item.note}", {"italic": True}), spacing="Small"))
    return body


@dataclass(frozen=True, slots=True)
class CardState:
    """What a card shows in its fields: values to keep, and errors beside them, by input id."""

    values: Mapping[str, str] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)
    message: str = ""


def prompt_card(
    plan_title: str,
    person_name: str,
    items: Sequence[PromptItem],
    prompt_id: int,
    *,
    update_url: str | None,
    contacts: Sequence[Contact] = (),
    state: CardState | None = None,
    part: tuple[int, int] = (1, 1),
) -> dict[str, Any]:
    """The prompt as one Adaptive Card: per milestone its facts and five fields (rating, note,
    what changed for children and families, revised date, support), one Submit,
    and "Open in browser" to the lead's update page. `part` (n, of) for one card of several."""
    state = state or CardState()
    intro = (
        f"Hello {person_name}, how are these milestones going? Rate each one, add a note or a "
        "revised date if there is news, and send them together."
    )
    if part[1] > 1:
        intro += f" (Card {part[0]} of {part[1]}: each card is sent on its own.)"
    body = _header(plan_title, intro, contacts if part[0] == 1 else ())
    if state.message:
        body.append(_attention(state.message))
    for item in items:
        ref = item.milestone_ref
        container: list[dict[str, Any]] = _milestone(item)
        rating_id, note_id, evidence_id, date_id, support_id = (
            f"rating:{ref}",
            f"note:{ref}",
            f"evidence:{ref}",
            f"date:{ref}",
            f"support:{ref}",
        )
        rating: dict[str, Any] = {
            "type": "Input.ChoiceSet",
            "id": rating_id,
            "label": "Rating",
            "style": "compact",
            "placeholder": "Rate progress",
            "choices": [{"title": _rating_text(r), "value": str(r)} for r in RATINGS],
        }
        note: dict[str, Any] = {
            "type": "Input.Text",
            "id": note_id,
            "label": "Note",
            "isMultiline": True,
            "maxLength": NOTE_LIMIT,
            "placeholder": "What has happened since the last update",
        }
        evidence: dict[str, Any] = {
            "type": "Input.Text",
            "id": evidence_id,
            "label": EVIDENCE_QUESTION,
            "isMultiline": True,
            "maxLength": NOTE_LIMIT,
            "placeholder": EVIDENCE_HINT,
        }
        revised: dict[str, Any] = {"type": "Input.Date", "id": date_id, "label": "Revised date"}
        support: dict[str, Any] = {
            "type": "Input.Toggle",
            "id": support_id,
            "title": "I need support",
            "valueOn": "true",
            "valueOff": "false",
            "value": "false",
        }
        for field_input in (rating, note, evidence, revised, support):
            key = field_input["id"]
            if key in state.values:
                field_input["value"] = state.values[key]
            container.append(field_input)
            if key in state.errors:
                container.append(_attention(state.errors[key]))
        body.append(
            {"type": "Container", "separator": True, "spacing": "Medium", "items": container}
        )
    actions: list[dict[str, Any]] = [
        {
            "type": "Action.Submit",
            "title": "Send update",
            "style": "positive",
            # The link and the card's milestones come back with the answers, for the card
            # shown after them.
            "data": {
                "kind": SUBMIT_KIND,
                "prompt": prompt_id,
                "refs": [item.milestone_ref for item in items],
            }
            | ({"url": update_url} if update_url else {}),
        }
    ]
    if update_url:
        actions.append({"type": "Action.OpenUrl", "title": "Open in browser", "url": update_url})
    return _card(body, actions)


def prompt_cards(
    plan_title: str,
    person_name: str,
    items: Sequence[PromptItem],
    prompt_id: int,
    *,
    update_url: str | None,
    contacts: Sequence[Contact] = (),
    budget: int = MESSAGE_BUDGET,
) -> list[dict[str, Any]]:
    """The prompt as as many cards as it takes to keep each message under `budget` bytes
    (Teams refuses one of about 28 KB): the milestones in order, none cut."""

    def build(chunk: Sequence[PromptItem], part: tuple[int, int]) -> dict[str, Any]:
        return prompt_card(
            plan_title,
            person_name,
            chunk,
            prompt_id,
            update_url=update_url,
            contacts=contacts,
            part=part,
        )

    chunks: list[list[PromptItem]] = [[]]
    for item in items:
        trial = [*chunks[-1], item]
        # Sized as the last of 99 cards: the widest the intro's part numbers make it.
        if chunks[-1] and message_size(build(trial, (99, 99))) > budget:
            chunks.append([item])
        else:
            chunks[-1] = trial
    total = len(chunks)
    return [build(chunk, (n, total)) for n, chunk in enumerate(chunks, start=1)]


def refused_card(
    plan_title: str,
    person_name: str,
    items: Sequence[PromptItem],
    prompt_id: int,
    *,
    update_url: str | None,
    state: CardState,
    budget: int = MESSAGE_BUDGET,
) -> dict[str, Any]:
    """A submitted card shown again with its errors beside their fields and what was typed
    kept, under `budget` bytes: typed notes and evidence can take a card sized for its
    empty fields over Teams' limit. Then only the milestones typed in or refused are shown
    (the others were no answer), and if that is still too much, only the refused ones, with
    what was typed in the refused fields."""

    def build(chunk: Sequence[PromptItem], shown: CardState) -> dict[str, Any]:
        return prompt_card(
            plan_title, person_name, chunk, prompt_id, update_url=update_url, state=shown
        )

    card = build(items, state)
    if message_size(card) <= budget:
        return card
    touched = {
        key.partition(":")[2]
        for key, value in state.values.items()
        if value.strip() and not (key.startswith("support:") and value == "false")
    }
    touched |= {key.partition(":")[2] for key in state.errors}
    narrowed = [item for item in items if item.milestone_ref in touched]
    left_out = " Milestones you left blank are not shown here"
    left_out += ": answer them with Open in browser." if update_url else "."
    message = state.message + left_out
    card = build(narrowed, CardState(state.values, state.errors, message))
    if message_size(card) <= budget:
        return card
    refused = {key.partition(":")[2] for key in state.errors}
    kept = {key: value for key, value in state.values.items() if key in state.errors}
    message = (
        state.message + " Only the milestones with something to put right are shown, with "
        "what was typed in the marked fields; send your other answers again."
    )
    return build(
        [i for i in items if i.milestone_ref in refused], CardState(kept, state.errors, message)
    )


def message_size(card: Mapping[str, Any]) -> int:
    """The bytes of the message carrying `card`, as posted (compact JSON, UTF-8)."""
    message = card_activity(card, summary="x" * 80)
    return len(json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode())


def recorded_card(
    plan_title: str,
    items: Sequence[PromptItem],
    lines: Sequence[ReplyLine],
    *,
    update_url: str | None,
) -> dict[str, Any]:
    """What the card becomes once its answers are recorded: each answer as it was recorded."""
    by_ref = {line.ref: line for line in lines}
    body = _header(plan_title, "Thank you: your update is recorded.", ())
    for item in items:
        line = by_ref.get(item.milestone_ref)
        container = [_plain((item.milestone_ref, {"weight": "Bolder"}), f" {item.title}")]
        if line is None:
            container.append(_plain(("No answer this time.", {"isSubtle": True}), spacing="None"))
        else:
            said = [f"Rating: {_rating_text(line.rating)}" if line.rating else "No rating"]
            if line.revised_due is not None:
                said.append(f"revised date {_day(line.revised_due)}")
            if line.needs_support:
                said.append("support asked")
            container.append(_plain(" · ".join(said), spacing="None"))
            if line.note:
                container.append(_plain((f"Note: {line.note}", {"italic": True}), spacing="Small"))
            if line.evidence:
                container.append(_plain(f"What changed: {line.evidence}", spacing="Small"))
        body.append({"type": "Container", "separator": True, "items": container})
    actions = (
        [{"type": "Action.OpenUrl", "title": "Open in browser", "url": update_url}]
        if update_url
        else []
    )
    return _card(body, actions)


def notice_card(text: str) -> dict[str, Any]:
    """A card of one plain message (a prompt that can no longer be answered here)."""
    return _card([_plain(text)], [])


def _card(body: list[dict[str, Any]], actions: list[dict[str, Any]]) -> dict[str, Any]:
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": CARD_VERSION,
        "body": body,
    }
    if actions:
        card["actions"] = actions
    return card


def card_activity(card: Mapping[str, Any], *, summary: str) -> dict[str, Any]:
    """A message activity carrying one card; `summary` is what notifications show."""
    return {
        "type": "message",
        "summary": summary,
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "content": dict(card)}],
    }


def submitted_refs(value: Mapping[str, Any], answerable: Sequence[str]) -> list[str]:
    """The milestones of the submitted card: those it names that this writer may answer
    (all they may answer when it names none)."""
    named = value.get("refs")
    if not isinstance(named, list) or not all(isinstance(r, str) for r in named):
        return list(answerable)
    wanted = set(named)
    return [ref for ref in answerable if ref in wanted]


@dataclass(frozen=True, slots=True)
class Submission:
    """A submitted card, read: its prompt, the answers in it, and what could not be read."""

    prompt_id: int
    lines: tuple[ReplyLine, ...]
    errors: Mapping[str, str]
    values: Mapping[str, str]


def submitted_prompt(value: object) -> int | None:
    """The prompt a card submission answers; None when it is not one of our cards'."""
    if not isinstance(value, Mapping) or value.get("kind") != SUBMIT_KIND:
        return None
    prompt = value.get("prompt")
    if isinstance(prompt, bool) or not isinstance(prompt, int | str):
        return None
    text = str(prompt)
    return int(text) if text.isascii() and text.isdigit() and len(text) < 12 else None


def read_submission(
    value: Mapping[str, Any], prompt_id: int, refs: Sequence[str], *, today: date
) -> Submission:
    """The answers in a card's `value` for `refs`; a milestone left blank is no answer.
    Values a card could not have sent are errors by field, never answers."""
    lines: list[ReplyLine] = []
    errors: dict[str, str] = {}
    values: dict[str, str] = {}

    def text(key: str) -> str:
        raw = value.get(key)
        if isinstance(raw, str):
            values[key] = raw
            return raw.strip()
        return ""

    for ref in refs:
        rating: int | None = None
        chosen = text(f"rating:{ref}")
        if chosen:
            if chosen in {str(r) for r in RATINGS}:
                rating = int(chosen)
            else:
                errors[f"rating:{ref}"] = "Choose a rating from the list."
        note = text(f"note:{ref}")
        if len(note) > NOTE_LIMIT:
            errors[f"note:{ref}"] = (
                f"A note can be at most {NOTE_LIMIT} characters; this one has {len(note)}."
            )
        evidence = text(f"evidence:{ref}")
        if len(evidence) > NOTE_LIMIT:
            errors[f"evidence:{ref}"] = (
                f"What changed can be at most {NOTE_LIMIT} characters; this has {len(evidence)}."
            )
        revised: date | None = None
        picked = text(f"date:{ref}")
        if picked:
            try:
                revised = date.fromisoformat(picked)
            except ValueError:
                errors[f"date:{ref}"] = "Pick the revised date from the calendar."
            else:
                if revised < today:
                    errors[f"date:{ref}"] = "The revised date is in the past."
        support = text(f"support:{ref}") == "true"
        if any(f"{kind}:{ref}" in errors for kind in ("rating", "note", "evidence", "date")):
            continue  # refused field by field; nothing of it is an answer
        if rating is None and not note and not evidence and revised is None and not support:
            continue
        lines.append(
            ReplyLine(ref, rating, note or None, revised, support, 0, evidence=evidence or None)
        )
    return Submission(prompt_id, tuple(lines), errors, values)


def teams_payload(
    *,
    service_url: str,
    conversation_id: str,
    activity: Mapping[str, Any],
    fallback: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The outbox payload of a Teams row (handlers/teams/transport.py reads it)."""
    payload: dict[str, Any] = {
        "service_url": service_url,
        "conversation_id": conversation_id,
        "activity": dict(activity),
    }
    if fallback is not None:
        payload["fallback"] = dict(fallback)
    return payload
