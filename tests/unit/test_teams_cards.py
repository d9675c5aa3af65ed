"""Adaptive Cards for prompts in Teams: valid for Teams whatever their length, text people
wrote shown as written, and a submission read only as a card could have sent it."""

from __future__ import annotations

from datetime import date
from typing import Any

from bot.domain.cycles import PromptItem
from bot.domain.replies import NOTE_LIMIT, ReplyLine
from bot.domain.status import MilestoneStatus
from bot.messages.teams_cards import (
    MESSAGE_BUDGET,
    card_activity,
    message_size,
    prompt_cards,
    read_submission,
    submitted_prompt,
    submitted_refs,
)
from tests.adaptive_cards import validate_cards

TODAY = date(2026, 11, 23)
LINK = "https://pulse.council.example/u/" + "a" * 43


def _item(n: int, *, title: str = "", note: str | None = None) -> PromptItem:
    return PromptItem(
        milestone_ref=f"1.{n}-1",
        action_ref=f"1.{n}",
        title=title or f"Family hubs blueprint agreed with every partner, milestone {n} " * 2,
        due=date(2026, 12, 1),
        status=MilestoneStatus.DUE_SOON,
        reasons=(),
        rating=3,
        note=note if note is not None else "Drafting with partners; the board meets soon. " * 3,
        days_overdue=0,
        on_behalf_of="DC",
    )


def _refs(card: Any) -> list[str]:
    return [
        str(i["id"]).partition(":")[2]
        for block in card["body"]
        if block.get("type") == "Container"
        for i in block["items"]
        if str(i.get("id", "")).startswith("rating:")
    ]


def test_a_long_prompt_is_several_valid_cards_under_teams_size_limit() -> None:
    """Forty milestones become several cards, each a valid 1.5 card in a message under the
    budget, holding every milestone once, in order, each card with its own Submit."""
    items = [_item(n) for n in range(40)]
    cards = prompt_cards("Plan", "Dana Cole", items, 7, update_url=LINK)
    assert len(cards) > 1
    assert all(message_size(card) <= MESSAGE_BUDGET for card in cards)
    assert validate_cards(cards) == [[] for _ in cards]
    assert [ref for card in cards for ref in _refs(card)] == [i.milestone_ref for i in items]
    for card in cards:
        (submit,) = [a for a in card["actions"] if a["type"] == "Action.Submit"]
        assert submit["data"]["refs"] == _refs(card)


def test_a_short_prompt_is_one_card() -> None:
    """Three milestones fit one card, which says nothing about parts."""
    (card,) = prompt_cards("Plan", "Dana", [_item(n) for n in range(3)], 7, update_url=None)
    assert "Card 1 of" not in str(card)
    assert [a["type"] for a in card["actions"]] == ["Action.Submit"]


def test_markup_people_wrote_is_never_card_markdown() -> None:
    """A title and note holding `<at>`, `**` and a link appear only as TextRun text."""
    markup = "<at>All</at> **now** [x](https://evil.example)"
    (card,) = prompt_cards(
        "Plan", "Dana", [_item(1, title=markup, note=markup)], 7, update_url=None
    )
    text_blocks = [b for b in card["body"] if b.get("type") == "TextBlock"]
    assert markup not in str(text_blocks)
    runs = [
        run["text"]
        for block in card["body"]
        for inner in ([block] if block.get("type") == "RichTextBlock" else block.get("items", []))
        if inner.get("type") == "RichTextBlock"
        for run in inner["inlines"]
    ]
    assert f" {markup}" in runs
    assert f"Last note: {markup}" in runs
    assert "entities" not in card_activity(card, summary="s")


def test_a_submission_is_read_only_as_a_card_could_send_it() -> None:
    """Ratings outside the scale, unreadable or past dates and overlong notes are errors by
    field; blank milestones are no answer; the toggle asks for support."""
    refs = ["1.1-1", "1.2-1", "1.3-1", "1.4-1"]
    value = {
        "rating:1.1-1": "2",
        "note:1.1-1": "  Agreed at the board ",
        "support:1.1-1": "true",
        "date:1.1-1": "2027-01-31",
        "rating:1.2-1": "5",
        "date:1.2-1": "2020-01-01",
        "note:1.3-1": "x" * (NOTE_LIMIT + 1),
        "rating:1.4-1": "",
        "note:1.4-1": "",
        "support:1.4-1": "false",
        "rating:9.9-9": "1",
    }
    read = read_submission(value, 7, refs, today=TODAY)
    assert read.lines == (ReplyLine("1.1-1", 2, "Agreed at the board", date(2027, 1, 31), True, 0),)
    assert read.errors == {
        "rating:1.2-1": "Choose a rating from the list.",
        "date:1.2-1": "The revised date is in the past.",
        "note:1.3-1": f"A note can be at most {NOTE_LIMIT} characters; "
        f"this one has {NOTE_LIMIT + 1}.",
    }
    assert read_submission({"date:1.1-1": "31/01/27"}, 7, refs, today=TODAY).errors == {
        "date:1.1-1": "Pick the revised date from the calendar."
    }


def test_only_our_cards_submissions_are_taken() -> None:
    """A value without our kind, or with a prompt that is not a number, is no submission;
    a card's milestones are only those the writer may answer."""
    assert submitted_prompt({"kind": "plan_pulse_answer", "prompt": 12}) == 12
    assert submitted_prompt({"kind": "plan_pulse_answer", "prompt": "12"}) == 12
    assert submitted_prompt({"kind": "other", "prompt": 12}) is None
    assert submitted_prompt({"kind": "plan_pulse_answer", "prompt": "1; drop"}) is None
    assert submitted_prompt({"kind": "plan_pulse_answer", "prompt": True}) is None
    assert submitted_prompt("text") is None
    assert submitted_refs({"refs": ["1.2-1", "9.9"]}, ["1.1-1", "1.2-1"]) == ["1.2-1"]
    assert submitted_refs({}, ["1.1-1", "1.2-1"]) == ["1.1-1", "1.2-1"]


def test_every_milestone_on_every_card_asks_for_evidence_and_the_split_makes_room() -> None:
    """Each milestone of a long prompt has its own optional, multiline evidence field after
    its note, and the cards, split with those fields counted, stay valid and under budget."""
    items = [_item(n) for n in range(40)]
    cards = prompt_cards("Plan", "Dana Cole", items, 7, update_url=LINK)
    assert all(message_size(card) <= MESSAGE_BUDGET for card in cards)
    assert validate_cards(cards) == [[] for _ in cards]
    for card in cards:
        for block in card["body"]:
            if block.get("type") != "Container":
                continue
            ids = [i.get("id") for i in block["items"]]
            ref = next(str(i) for i in ids if i).partition(":")[2]
            at = ids.index(f"evidence:{ref}")
            assert ids[at - 1] == f"note:{ref}"
            evidence = block["items"][at]
            assert (evidence["type"], evidence["isMultiline"]) == ("Input.Text", True)
            assert "isRequired" not in evidence


def test_evidence_is_read_from_a_submission_and_a_too_long_one_refused() -> None:
    """A card's evidence field is read into the answer; one over 2,000 characters is an
    error beside that field and the milestone's answer is not taken."""
    value = {
        "rating:1.1-1": "1",
        "evidence:1.1-1": " Fewer repeat referrals ",
        "rating:1.2-1": "1",
        "evidence:1.2-1": "x" * (NOTE_LIMIT + 1),
    }
    read = read_submission(value, 7, ["1.1-1", "1.2-1"], today=TODAY)
    assert [(line.ref, line.evidence) for line in read.lines] == [
        ("1.1-1", "Fewer repeat referrals")
    ]
    assert list(read.errors) == ["evidence:1.2-1"]


def test_a_refused_card_with_long_typed_text_stays_under_teams_size_limit() -> None:
    """A full card shown again after a refusal, with what was typed kept, stays a valid card
    under the budget: with a few long answers typed it keeps just those milestones and says
    why; with every milestone typed in at length it keeps only the refused milestone, with
    its refused field's text."""
    from bot.messages.teams_cards import CardState, refused_card

    items = [_item(n) for n in range(40)]
    first = prompt_cards("Plan", "Dana Cole", items, 7, update_url=LINK)[0]
    on_card = [i for i in items if i.milestone_ref in _refs(first)]
    long = "Families see one worker from first contact; " * 40  # 1,800 characters
    errors = {f"evidence:{on_card[0].milestone_ref}": "Evidence goes with a rating of 1."}
    few = {f"note:{i.milestone_ref}": long for i in on_card[:3]}
    few |= {f"evidence:{i.milestone_ref}": long for i in on_card[:3]}
    every = {f"{kind}:{i.milestone_ref}": long for i in on_card for kind in ("note", "evidence")}
    every |= {f"support:{i.milestone_ref}": "false" for i in on_card}
    for typed, shown_refs, says in (
        (few, [i.milestone_ref for i in on_card[:3]], "Milestones you left blank"),
        (every, [on_card[0].milestone_ref], "send your other answers again"),
    ):
        state = CardState({**typed, **{f"support:{i.milestone_ref}": "false" for i in on_card}})
        state = CardState(state.values, errors, "Nothing was recorded.")
        card = refused_card("Plan", "Dana Cole", on_card, 7, update_url=LINK, state=state)
        assert message_size(card) <= MESSAGE_BUDGET
        assert validate_cards([card]) == [[]]
        assert _refs(card) == shown_refs
        assert says in str(card)
        kept = [
            i
            for b in card["body"]
            if b.get("type") == "Container"
            for i in b["items"]
            if i.get("value") == long
        ]
        assert kept, "what was typed in the refused field is kept"
