"""The Teams digest renderer: Adaptive Cards Teams renders (npm's parser, version 1.5, under
28 KB a post), split into posts without losing anything, and user text that can never form
card markdown, a mention or a link."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from digests.content import DigestSection
from digests.teams import (
    LIVE_VIEW_TITLE,
    MAX_POST_BYTES,
    escape_card_line,
    escape_card_text,
    post_body,
    render_teams,
)
from tests.adaptive_cards import validate_cards
from tests.unit.test_digest_renderers import (
    NAMES,
    SCENARIO_16,
    big_digest,
    golden_digest,
    item,
    make_digest,
)

LIVE = "https://pulse.council.example/live/north"


def cards(posts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a["content"] for p in posts for a in p["attachments"]]


def texts(value: Any) -> list[str]:
    """Every text of a card (TextBlocks, facts, table cells), in order."""
    if isinstance(value, dict):
        found = [value["text"]] if isinstance(value.get("text"), str) else []
        if "title" in value and "value" in value:
            found.append(f"{value['title']}: {value['value']}")
        return found + [t for k, v in value.items() if k != "text" for t in texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in texts(v)]
    return []


def elements_of(value: Any, kind: str) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        own = [value] if value.get("type") == kind else []
        return own + [e for v in value.values() for e in elements_of(v, kind)]
    if isinstance(value, list):
        return [e for v in value for e in elements_of(v, kind)]
    return []


def test_the_digest_is_one_valid_card_with_title_counts_sections_and_names() -> None:
    """A digest that fits is one 1.5 card Teams parses, with the network's title, every
    count, each section's milestones by reference, and leads by name."""
    posts = render_teams(golden_digest(), names=NAMES)
    assert len(posts) == 1
    [card] = cards(posts)
    assert card["version"] == "1.5"
    assert validate_cards([card]) == [[]]
    shown = "\n".join(texts(card))
    assert "North &\u2060 Coast network: digest for the week of 10 May 2027" in shown
    assert "Overdue: 3" in shown
    assert "Awaiting update: 3" in shown
    for heading in ("Overdue (3)", "At risk (3)", "Needs support (2)", "Achieved this week"):
        assert heading in shown
    assert "**W2.2-1** Case audit ∗all∗ teams" in shown
    assert "Lead: Alex Wood, Mary Clark" in shown
    assert "Mary Clark" in shown


def test_the_rating_mix_is_a_table_per_priority_with_its_trend() -> None:
    """The picture of progress is a Table Teams renders: a row per priority with its bar
    and counts, and a second table of the network's trend."""
    [card] = cards(render_teams(golden_digest(), names=NAMES))
    tables = elements_of(card, "Table")
    assert len(tables) == 2
    rows = [texts(row) for row in tables[0]["rows"]]
    assert rows[0] == ["Priority", "Picture", "Ratings"]
    assert rows[1][0] == "1 · Help &\u2060 protection"
    assert len(rows[1][1]) == 10  # ten squares
    assert rows[1][2] == "1 achieved · 3 in progress · 1 not started"
    assert [r[0] for r in (texts(row) for row in tables[1]["rows"][1:])] == [
        "week of 26 April 2027",
        "week of 3 May 2027",
        "week of 10 May 2027 (now)",
    ]


def test_the_live_view_button_is_there_only_with_an_address() -> None:
    """With the live view's address every post has an "Open the live view" button to it;
    without one, no post has a button."""
    with_link = cards(render_teams(big_digest(), names=NAMES, live_view=LIVE))
    assert all(
        c["actions"] == [{"type": "Action.OpenUrl", "title": LIVE_VIEW_TITLE, "url": LIVE}]
        for c in with_link
    )
    assert all("actions" not in c for c in cards(render_teams(big_digest(), names=NAMES)))


def test_a_long_digest_is_split_into_valid_posts_under_28_kb_losing_nothing() -> None:
    """200 items (one with a 10,000-character note) and 300 people awaiting become several
    posts, each under 28 KB and valid, saying which part it is; every item and person is
    shown once and every note whole."""
    digest = big_digest()
    posts = render_teams(digest, names=NAMES, live_view=LIVE)
    assert len(posts) > 2
    assert all(len(post_body(p)) < MAX_POST_BYTES for p in posts)
    assert validate_cards(cards(posts)) == [[]] * len(posts)
    shown = [texts(c) for c in cards(posts)]
    assert f"Continued in {len(posts) - 1} more posts." in shown[0]
    for part, lines in enumerate(shown[1:], start=2):
        assert lines[0].endswith(f"continued {part} of {len(posts)}")
    everything = "\n".join(t for lines in shown for t in lines)
    for section in DigestSection:
        for listed in digest.sections[section]:
            assert f"**{listed.ref}** " in everything
    refs = re.findall(r"\*\*(R\d{3})\*\*", everything)
    assert len(refs) == sum(len(items) for items in digest.sections.values())
    for n in range(300):
        assert everything.count(f"P{n:03d}") == 1
    joined = "".join(everything.split())
    assert "x" * 10_000 in re.sub(r"R013,notecontinued:", "", joined)


def test_a_note_longer_than_a_post_continues_in_the_next() -> None:
    """A 60,000-byte note (imported sheets have no limit) is shown whole across posts, each
    under 28 KB."""
    note = " ".join(f"word{n}" for n in range(9000))
    digest = make_digest({DigestSection.AT_RISK: [item("1.1", note=note)]})
    posts = render_teams(digest, names=NAMES)
    assert len(posts) >= 3
    assert all(len(post_body(p)) < MAX_POST_BYTES for p in posts)
    words = " ".join(t for c in cards(posts) for t in texts(c)).split()
    assert [w for w in words if w.startswith("word")] == note.split()


def test_scenario_16_and_at_mentions_in_a_note_are_inert() -> None:
    """A note with `<at>`, a link, bold, italics, code and a date function shows its words,
    and none of them forms card markdown, a mention or a link."""
    note = f"<at>Mary Clark</at> [docs](https://evil.example) {SCENARIO_16} {{{{DATE(x)}}}}"
    digest = make_digest({DigestSection.AT_RISK: [item("1.1", note=note)]})
    shown = "\n".join(texts(cards(render_teams(digest, names=NAMES))))
    assert "Mary Clark" in shown
    assert "docs" in shown
    assert "bold" in shown
    for live in ("<at>", "](", "://", "*bold*", "_it_", "~gone~", "`code`", "{{", "&amp;"):
        assert live not in shown


MARKUP = re.compile(r"<[a-zA-Z/!@]|&[a-zA-Z#]|\]\(|://|\{\{|[*_~`]|\\[^\u2060]|www\.")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("<>&*_~`[](){}\\/:.wW#-+1 \nat")), max_size=60))
def test_escaped_text_has_no_markup_left(text: str) -> None:
    """Whatever the text, its escaped form has no tag, entity, link, emphasis, escape or
    date function left, no line that opens a list or quote, and the same words."""
    shown = escape_card_text(text)
    assert not MARKUP.search(shown)
    assert not re.search(r"^[ \t]*(?:[-+]|\d+[.)])(?:[ \t]|$)|^[ \t]*[>#]", shown, re.MULTILINE)
    assert shown.replace("\u2060", "").translate(str.maketrans("∗ˍ∼ˋ", "*_~`")).split() == (
        "\n".join(line.rstrip() for line in text.strip().splitlines()).split()
    )


def test_a_one_line_text_is_joined_and_escaped() -> None:
    """Names and titles are one line: runs of spaces and line breaks become one space."""
    assert escape_card_line("  Mary\n\n*Clark*  ") == "Mary ∗Clark∗"


def test_control_characters_are_dropped_and_json_stays_small() -> None:
    """Control characters in user text never reach the card, so no \\u escape inflates it."""
    digest = make_digest({DigestSection.AT_RISK: [item("1.1", note="a\x00b\x1bc")]})
    body = post_body(render_teams(digest)[0]).decode()
    assert "abc" in body
    assert "\\u00" not in json.dumps(json.loads(body), ensure_ascii=False)


def test_the_card_flags_achieved_without_evidence_and_shows_evidence_inert() -> None:
    """The counts say how many were achieved without evidence, 3.3 reads "achieved, no
    evidence", and 1.4's evidence is shown with no tag or link formed; the card is valid."""
    [card] = cards(render_teams(golden_digest(), names=NAMES))
    assert validate_cards([card]) == [[]]
    shown = "\n".join(texts(card))
    assert "Achieved without evidence: 1" in shown
    assert shown.count("achieved, no evidence") == 1
    assert "rated 1 (Achieved) · achieved, no evidence" in shown
    assert (
        "_Evidence:_ Conferences now within 2 weeks, not 6: <\u2060b>audit<\u2060/b> "
        "https:\u2060//council.example/audit?year=2027&\u2060team=north"
    ) in shown
