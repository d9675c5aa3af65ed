"""The Slack prompt's Block Kit: what a lead sees about each milestone before answering."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date

from bot.domain.cycles import PromptItem
from bot.domain.status import MilestoneStatus
from bot.messages.slack_blocks import prompt_blocks, update_modal


def item(ref: str, *, revised: date | None = None, support: bool = False) -> PromptItem:
    return PromptItem(
        ref,
        ref.split("-")[0],
        "Agree next phase",
        date(2026, 11, 30),
        MilestoneStatus.OVERDUE,
        (),
        3,
        "Waiting on partners",
        5,
        "JB",
        revised_due=revised,
        needs_support=support,
    )


def test_prompt_shows_the_last_revised_date_and_support_ask_with_the_last_rating() -> None:
    """A milestone's section in the DM and in the modal gives its last answers' revised date
    and support ask after the last rating; one without them shows neither."""
    items = [item("1.1-1", revised=date(2027, 1, 31), support=True), item("1.1-2")]
    sections = {
        b["block_id"]: b["text"]["text"]
        for post in prompt_blocks("Wirral plan", "Joe Bannham", items, 7)
        for b in post
        if str(b.get("block_id", "")).startswith("m:")
    }
    assert sections["m:1.1-1"].endswith(
        "last rating: 3 – In progress · revised date 31 Jan 2027 · support asked"
    )
    assert sections["m:1.1-2"].endswith("last rating: 3 – In progress")
    modal = json.dumps(update_modal(7, items), ensure_ascii=False)
    assert modal.count("revised date 31 Jan 2027 · support asked") == 1


def test_a_prompt_dm_gets_a_link_button_to_the_update_page() -> None:
    """`with_update_link` puts an "Update in your browser" URL button beside "Update with
    notes" and changes no other block."""
    from bot.messages.slack_blocks import prompt_blocks, with_update_link

    posts = [{"text": "t", "blocks": b} for b in prompt_blocks("Plan", "Joe", [], 7)]
    linked = with_update_link(posts, "https://pulse.example/u/x")
    (update,) = [b for p in linked for b in p["blocks"] if b.get("block_id") == "update"]
    assert [e.get("url") for e in update["elements"]] == [None, "https://pulse.example/u/x"]
    assert update["elements"][1]["text"]["text"] == "Update in your browser"
    assert len(linked[0]["blocks"]) == len(posts[0]["blocks"])


def test_prompt_dm_names_whom_to_ask_with_names_made_inert() -> None:
    """The DM's first post says whom to ask, the name escaped so `<!channel>` pings nobody and
    the address a mailto link; without contacts there is no such line."""
    from bot.domain.model import Contact

    contacts = (Contact("Eve <!channel> *Hart*", "eh.lead@council.example"),)
    first = prompt_blocks("Wirral plan", "Joe", [item("1.1-1")], 7, contacts=contacts)[0]
    lines = [
        e["text"]
        for b in first
        if b["type"] == "context"
        for e in b["elements"]
        if "Questions" in e["text"]
    ]
    assert lines == [
        "Questions about this plan? Contact Eve &lt;!channel&gt; ∗Hart∗ "
        "&lt;<mailto:eh.lead@council.example|eh.lead@council.example>&gt;"
    ]
    plain = prompt_blocks("Wirral plan", "Joe", [item("1.1-1")], 7)[0]
    assert "Questions about" not in json.dumps(plain)


def test_a_long_prompt_pages_the_modal_with_an_evidence_field_per_milestone() -> None:
    """Forty milestones with the longest titles a section holds make modal pages that Slack
    accepts (at most 100 blocks, every text within its limit), each milestone on one page
    once, in order, with its own evidence field."""
    from bot.messages.slack_blocks import page_count
    from tests.block_kit import view_problems

    items = [replace(item(f"1.{n}-1"), title="Review " * 600) for n in range(40)]
    pages = page_count(items)
    assert pages > 2
    seen = []
    for page in range(pages):
        view = update_modal(7, items, page=page)
        assert view_problems(view) == []
        refs = [
            b["block_id"].partition(":")[2]
            for b in view["blocks"]
            if str(b.get("block_id", "")).startswith("evidence:")
        ]
        assert refs == [
            b["block_id"].partition(":")[2]
            for b in view["blocks"]
            if str(b.get("block_id", "")).startswith("rating:")
        ]
        seen += refs
    assert seen == [i.milestone_ref for i in items]


def test_the_modal_reads_evidence_and_refuses_an_overlong_one() -> None:
    """Evidence alone is an answer (the rules judge it after), trimmed; evidence over 2,000
    characters is an error on its own field (and with any error nothing is recorded)."""
    from bot.messages.slack_blocks import read_update

    def values(ref: str, evidence: str) -> dict[str, object]:
        return {f"evidence:{ref}": {"evidence": {"value": evidence}}}

    read = read_update(
        {**values("1.1-1", "  Fewer repeat referrals "), **values("1.1-2", "x" * 2001)},
        ["1.1-1", "1.1-2"],
        today=date(2026, 11, 23),
    )
    assert (read.lines[0].ref, read.lines[0].evidence) == ("1.1-1", "Fewer repeat referrals")
    assert list(read.errors) == ["evidence:1.1-2"]
    assert "2000" in read.errors["evidence:1.1-2"]
