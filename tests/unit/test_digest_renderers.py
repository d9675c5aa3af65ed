"""The digest renderers: Slack Block Kit, HTML email, plain text and Markdown.

Golden files in tests/golden/ pin down each renderer's whole output for one digest that
fills every section; after a deliberate change, review the diff and rewrite them with
`UPDATE_GOLDEN=1 pytest tests/unit/test_digest_renderers.py`. Properties check that no user
text breaks out of its escaping (RELIABILITY.md scenario 16) and that a long digest is
split into posts within Slack's limits without losing anything (scenario 17).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.model import Network, Plan, Update
from digests.content import (
    MIX_KEYS,
    Digest,
    DigestItem,
    DigestSection,
    build_digest,
)
from digests.html import render_html, render_text
from digests.markdown import counts_line, render_markdown, scaled
from digests.slack import NOTE_SHORTENED, TITLE_SHORTENED, escape_mrkdwn, render_slack
from tests.builders import action, milestone, update

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
AS_OF = date(2027, 5, 14)
PLAN = Plan(key="NW", title="North West regional improvement plan")
NORTH = Network(key="north", name="North & Coast network", slack_channel="#north")
OUR_ID = "U0MARYC"
SLACK_IDS = {"MC": OUR_ID}
NAMES = {"MC": "Mary Clark", "AW": "Alex Wood"}
SCENARIO_16 = (
    "<!channel> <!here> <@U123> <https://evil|Council> &amp; *bold* _it_ ~gone~ `code` @channel"
)
# 1.4's evidence of impact (3.3 was achieved without any): a link with an `&`, and markup.
EVIDENCE = (
    "Conferences now within 2 weeks, not 6: <b>audit</b> "
    "https://council.example/audit?year=2027&team=north"
)
# The renderer's own tags: user text may never add to these.
HTML_TAGS = {"html", "head", "meta", "title", "body", "table", "tr", "td", "span", "br"}


# --- golden files -----------------------------------------------------------------------------


def assert_golden(name: str, actual: str) -> None:
    """Compare `actual` with tests/golden/`name`, or rewrite the file when UPDATE_GOLDEN=1."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8", newline="")
        return
    if not path.exists():
        pytest.fail(f"{path} is missing: run with UPDATE_GOLDEN=1 to write it", pytrace=False)
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"tests/golden/{name}",
                tofile="rendered now",
            )
        )
        pytest.fail(
            f"{name} differs from its golden file; if the change is intended, review it and "
            f"rerun with UPDATE_GOLDEN=1:\n{diff}",
            pytrace=False,
        )


# --- building digests -------------------------------------------------------------------------


def day(offset: int) -> date:
    return AS_OF + timedelta(days=offset)


def golden_digest() -> Digest:
    """Every section filled, people awaiting, three priorities, a trend, and hostile text."""
    actions = [
        action(
            "1.1",
            milestone("1.1", day(-3), "Agree the multi-agency safeguarding arrangements"),
        ),
        action("1.2", milestone("1.2", day(20), "Audit of return-home interviews")),
        action("1.3", milestone("1.3", day(5), "Publish the early help strategy")),
        action("1.4", milestone("1.4", day(30), "Recruit two family group conferencers")),
        action("1.5", milestone("1.5", day(100), "Review the threshold document")),
        action(
            "2.1",
            milestone("2.1", day(10), "Tracker for EHC plans <issued> within 20 weeks & more"),
        ),
        action(
            "W2.2",
            milestone("W2.2-1", day(-1), "Case audit *all* teams", leads=("AW", "MC")),
            milestone("W2.2-2", day(7), "Parent carer forum survey", leads=()),
        ),
        action("3.1", milestone("3.1", day(60), "Care leavers' local offer")),
        action("3.2", milestone("3.2", day(-10), "Sufficiency strategy signed off")),
        action("3.3", milestone("3.3", None, "Corporate parenting panel, ongoing")),
    ]
    updates = [
        update(
            "1.1",
            day(-5),
            3,
            note="Draft with partners; sign-off at the June board.",
            revised_due=day(25),
        ),
        update("1.2", day(-2), 4),
        update("1.3", day(-1), 3),
        update("1.4", day(-2), 1, note="Both posts filled."),
        update("1.5", day(-1), 3),
        update("W2.2-1", day(-1), 2, note=f"Scenario 16: {SCENARIO_16}"),
        update("W2.2-2", day(-1), 3),
        update(
            "3.1", day(-1), 3, note="Need a data analyst\n\nfor two days a week", needs_support=True
        ),
        update(
            "3.2",
            day(-1),
            4,
            note="Blocked on budget <script>alert(1)</script>",
            needs_support=True,
        ),
        update("3.3", day(-1), 1),
    ]
    by_ref: dict[str, list[Update]] = {}
    for u in updates:
        by_ref.setdefault(u.milestone_ref, []).append(u)
    return build_digest(
        PLAN,
        NORTH,
        actions,
        by_ref,
        as_of=AS_OF,
        awaiting=["PB", "AW", "MC"],
        prompted=5,
        answered=2,
        priorities={1: "Help & protection", 2: "SEND <local area>", 3: "Children in care"},
        trend=(
            ("2027-W17", {"1": 0, "2": 1, "3": 4, "4": 3, "unrated": 2}),
            ("2027-W18", {"1": 1, "2": 1, "3": 5, "4": 2, "unrated": 1}),
        ),
        names=NAMES,
        evidence={"1.4": EVIDENCE},
    )


def item(
    ref: str,
    *,
    title: str = "Milestone",
    leads: tuple[str, ...] = ("MC",),
    note: str | None = None,
    days_overdue: int = 0,
    rating: int | None = 3,
    priority: int = 1,
) -> DigestItem:
    return DigestItem(
        ref=ref,
        title=title,
        leads=leads,
        due=day(-days_overdue) if days_overdue else day(10),
        days_overdue=days_overdue,
        rating=rating,
        note=note,
        updated=day(-1),
        reasons=(),
        priority=priority,
        action_ref=ref,
    )


def make_digest(
    sections: Mapping[DigestSection, Sequence[DigestItem]],
    *,
    network_name: str = "North network",
    awaiting: Sequence[str] = (),
    priorities: Mapping[int, str] | None = None,
) -> Digest:
    mix = {1: {"1": 2, "2": 1, "3": 4, "4": 1, "unrated": 1}}
    return Digest(
        plan="NW",
        network="north",
        network_name=network_name,
        as_of=AS_OF,
        sections={s: tuple(sections.get(s, ())) for s in DigestSection},
        awaiting=tuple(awaiting),
        prompted=4,
        answered=3,
        mix=mix,
        priorities=dict(priorities or {1: "Help and protection"}),
        trend=(("2027-W18", {"1": 1, "3": 5, "4": 2, "unrated": 1}),),
    )


# --- walking Slack posts ----------------------------------------------------------------------


def text_objects(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        if value.get("type") in ("mrkdwn", "plain_text"):
            yield value
        else:
            for inner in value.values():
                yield from text_objects(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from text_objects(inner)


def counted(text_object: Mapping[str, Any]) -> int:
    """A text object's length, counted the way that is longest: UTF-16 units, with `&<>` as
    the entities Slack stores plain text with."""
    text = str(text_object["text"])
    if text_object["type"] == "plain_text":
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return len(text.encode("utf-16-le")) // 2


def post_length(post: Mapping[str, Any]) -> int:
    return sum(counted(t) for t in text_objects(post["blocks"])) + counted(
        {"type": "mrkdwn", "text": post["text"]}
    )


def parsed_texts(posts: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every text Slack parses for markup: the posts' fallback text and mrkdwn text objects."""
    texts = [str(post["text"]) for post in posts]
    blocks = [post["blocks"] for post in posts]
    return texts + [str(t["text"]) for t in text_objects(blocks) if t["type"] == "mrkdwn"]


def item_refs(posts: Sequence[Mapping[str, Any]]) -> Counter[str]:
    """The reference of every item section across the posts, counted."""
    found: Counter[str] = Counter()
    for post in posts:
        for block in post["blocks"]:
            if block["type"] == "section":
                text = block["text"]["text"]
                found.update(re.findall(r"^• \*([^*\s]+)\* .* · (?:lead: |no lead)", text, re.M))
    return found


# --- golden -----------------------------------------------------------------------------------


def test_slack_golden() -> None:
    """The Slack posts of the fixed digest, as pretty-printed JSON, match the golden file."""
    posts = render_slack(golden_digest(), slack_ids=SLACK_IDS)
    assert_golden("digest.slack.json", json.dumps(posts, indent=2, ensure_ascii=False) + "\n")


def test_html_golden() -> None:
    """The HTML email of the fixed digest matches the golden file."""
    assert_golden("digest.html", render_html(golden_digest(), names=NAMES))


def test_text_golden() -> None:
    """The plain-text part of the email of the fixed digest matches the golden file."""
    assert_golden("digest.txt", render_text(golden_digest(), names=NAMES))


def test_markdown_golden() -> None:
    """The Markdown of the fixed digest matches the golden file."""
    assert_golden("digest.md", render_markdown(golden_digest()))


def test_golden_digest_fills_every_section() -> None:
    """The golden fixture exercises every section, people awaiting, the picture and the trend."""
    digest = golden_digest()
    assert all(digest.sections[s] for s in DigestSection)
    assert digest.awaiting
    assert len(digest.mix) == 3
    assert digest.trend


def test_every_rendering_shows_the_leads_revised_date_and_support_ask() -> None:
    """An overdue item's revised date and support ask (neither a reason for an overdue
    milestone) are shown in Slack, HTML, plain text and Markdown alike."""
    digest = golden_digest()
    slack = json.dumps(render_slack(digest, slack_ids=SLACK_IDS), ensure_ascii=False)
    for rendered in (
        slack,
        render_html(digest, names=NAMES),
        render_text(digest, names=NAMES),
        render_markdown(digest),
    ):
        assert "revised date 08 Jun 2027" in rendered
        assert "Sufficiency strategy signed off" in rendered
        assert "needs support" in rendered
    overdue = render_text(digest, names=NAMES).split("Overdue (")[1].split("At risk (")[0]
    first, second = overdue.split("- 1.1")  # 3.2 is the more overdue
    assert "needs support" in first
    assert "revised date" not in first
    assert "revised date 08 Jun 2027" in second
    assert "needs support" not in second


def test_every_rendering_flags_achieved_without_evidence_and_shows_evidence() -> None:
    """3.3 (achieved, nothing stored) reads "achieved, no evidence" and is counted; 1.4's
    evidence is shown under it, escaped for each medium; in Slack, HTML, text and Markdown."""
    digest = golden_digest()
    slack = render_slack(digest, slack_ids=SLACK_IDS)
    html = render_html(digest, names=NAMES)
    text = render_text(digest, names=NAMES)
    markdown = render_markdown(digest)
    for rendered in (json.dumps(slack, ensure_ascii=False), html, text, markdown):
        assert "1 achieved without evidence" in rendered
        assert rendered.count("achieved, no evidence") == 1
    achieved = text.split("Achieved this week (")[1].split("Awaiting update (")[0]
    assert "- 3.3 Corporate parenting panel" in achieved.split("achieved, no evidence")[0]
    assert "Evidence:\n    Conferences now within 2 weeks, not 6: <b>audit</b>" in achieved
    assert "https://council.example/audit?year=2027&team=north" in achieved
    assert "&lt;b&gt;audit&lt;/b&gt; https://council.example/audit?year=2027&amp;team=north" in html
    assert "<b>" not in html
    assert "\\<b\\>audit\\</b\\>" in markdown
    notes = [
        element["text"]
        for post in slack
        for block in post["blocks"]
        if block["type"] == "context"
        for element in block["elements"]
    ]
    assert f"1.4 Evidence: {EVIDENCE}" in notes


def test_long_evidence_is_cut_at_a_word_in_every_digest() -> None:
    """Evidence of 2,000 characters is shown as its first words and "…", not whole."""
    long = "Fewer children wait " * 100
    achieved = item("1.1", rating=1)._replace(evidence=long)
    digest = make_digest({DigestSection.ACHIEVED: [achieved]})
    slack = json.dumps(render_slack(digest), ensure_ascii=False)
    for rendered in (slack, render_html(digest), render_text(digest), render_markdown(digest)):
        assert "Fewer children wait Fewer" in rendered
        assert "wait…" in rendered
        assert long.strip() not in rendered
        assert "achieved, no evidence" not in rendered


# --- grouping by priority ----------------------------------------------------------------------


def long_sections() -> Digest:
    """Seven at-risk and seven overdue items, from two priorities, interleaved."""
    at_risk = [item(f"{1 + n % 2}.{n}", priority=1 + n % 2) for n in range(7)]
    overdue = [
        item(f"{1 + n % 2}.{n + 7}", priority=1 + n % 2, days_overdue=9 - n) for n in range(7)
    ]
    return make_digest(
        {DigestSection.AT_RISK: at_risk, DigestSection.OVERDUE: overdue},
        priorities={1: "Help and protection", 2: "SEND <!channel> & *all*"},
    )


def test_a_long_section_is_grouped_by_priority_in_every_medium() -> None:
    """At risk (7 items from two priorities) reads as two groups, priority 1 first, each
    under its escaped priority title; overdue stays most-overdue-first, ungrouped."""
    digest = long_sections()
    markdown = render_markdown(digest)
    first = markdown.index("### Priority 1 · Help and protection")
    second = markdown.index("### Priority 2 · SEND \\<!channel\\> \\& \\*all\\*")
    at_risk = markdown[markdown.index("## At risk") :]
    assert first < second
    assert all(markdown.index(f"**1.{n}**") < second for n in (0, 2, 4, 6))
    assert all(markdown.index(f"**2.{n}**") > second for n in (1, 3, 5))
    assert "### " not in markdown[: markdown.index("## At risk")]  # overdue: no groups
    assert at_risk.count("### ") == 2
    text = render_text(digest)
    assert "Priority 1 · Help and protection:" in text
    assert "Priority 2 · SEND <!channel> & *all*:" in text
    html = render_html(digest)
    assert "Priority 2 · SEND &lt;!channel&gt; &amp; *all*" in html
    slack = "\n".join(parsed_texts(render_slack(digest)))
    assert "*Priority 1 · Help and protection*" in slack
    assert "<!channel>" not in slack
    assert "*Priority 2 · SEND &lt;!channel&gt; &amp; \u2217all\u2217*" in slack


def test_a_short_section_stays_one_list() -> None:
    digest = make_digest(
        {DigestSection.AT_RISK: [item("1.1"), item("2.1", priority=2)]},
        priorities={1: "Help and protection", 2: "SEND"},
    )
    assert "### " not in render_markdown(digest)
    assert digest.groups(DigestSection.AT_RISK) == [(None, digest.sections[DigestSection.AT_RISK])]


# --- Slack: content ---------------------------------------------------------------------------


def test_slack_parent_fallback_text_summarises_the_counts() -> None:
    """The parent post's notification text names the network, the period and every count."""
    digest = golden_digest()
    text = render_slack(digest)[0]["text"]
    assert "North &amp; Coast network" in text
    assert "week of 10 May 2027" in text
    assert "2027-W19" not in text
    assert counts_line(digest) in text
    assert "Response rate: 40%" in text


def test_slack_mentions_only_leads_with_a_known_slack_id() -> None:
    """A lead in `slack_ids` is @-mentioned; others, and ids that are not user ids, show keys."""
    digest = make_digest(
        {DigestSection.OVERDUE: [item("1.1", leads=("MC", "AW", "ZZ"), days_overdue=2)]},
        awaiting=("AW", "MC"),
    )
    posts = render_slack(digest, slack_ids={"MC": OUR_ID, "ZZ": "!channel"})
    texts = "\n".join(parsed_texts(posts))
    assert f"lead: <@{OUR_ID}>, AW, ZZ" in texts
    assert f"AW, <@{OUR_ID}>" in texts  # awaiting update
    assert "<!channel>" not in texts


def test_slack_item_shows_every_fact() -> None:
    """An item is one line under its priority: reference, title, leads, due date, days
    overdue, rating, support ask and reasons; its note follows in the context below."""
    posts = render_slack(golden_digest(), slack_ids=SLACK_IDS)
    blocks = [b for p in posts for b in p["blocks"]]
    index = next(i for i, b in enumerate(blocks) if "• *3.2*" in b.get("text", {}).get("text", ""))
    assert blocks[index]["text"]["text"].splitlines()[-2:] == [
        "*Priority 3 · Children in care*",
        f"• *3.2* Sufficiency strategy signed off · lead: <@{OUR_ID}> · due 04 May 2027 · "
        "10 days overdue · rated 4 (Not achieved / not started) · needs support",
    ]
    assert blocks[index + 1] == {
        "type": "context",
        "elements": [
            {
                "type": "plain_text",
                "text": "3.2 (13 May 2027): Blocked on budget <script>alert(1)</script>",
                "emoji": False,
            },
        ],
    }


def test_slack_is_compact_counts_as_fields_and_milestones_as_lines_by_priority() -> None:
    """The counts are a section's fields; each severity section is one block of lines per
    priority, whatever its length, with people by name unless they are mentioned."""
    posts = render_slack(golden_digest(), slack_ids=SLACK_IDS)
    blocks = posts[0]["blocks"]
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert fields[0] == "🔴 Overdue: *3*"
    assert fields[-2] == "⏳ Awaiting update: *3*"
    assert fields[-1] == "⚠️ 1 achieved without evidence"
    assert len(fields) == 7
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    overdue = [t for t in sections if "• *3.2*" in t or "• *1.1*" in t or "• *W2.2-1*" in t][:3]
    assert overdue[0].startswith("*🔴 Overdue (3)*\n*Priority 1 · Help &amp; protection*\n")
    assert [t.count("\n• ") for t in overdue] == [1, 1, 1]
    assert "lead: Alex Wood, <@U0MARYC>" in "\n".join(sections)
    assert sections[-1] == "Alex Wood, <@U0MARYC>, PB"
    # Forty overdue milestones with short notes, in two priorities: one post of a few
    # blocks (a block of lines and one of notes per ten), not two blocks per milestone.
    forty = [
        item(f"{n % 2 + 1}.{n}", note=f"note {n}", days_overdue=n + 1, priority=n % 2 + 1)
        for n in range(40)
    ]
    priorities = {1: "Help and protection", 2: "SEND"}
    posts = render_slack(make_digest({DigestSection.OVERDUE: forty}, priorities=priorities))
    assert len(posts) == 1
    assert len(posts[0]["blocks"]) <= 15
    assert sum(item_refs(posts).values()) == 40


def test_slack_scenario_16_note_is_plain_text_exactly_as_written() -> None:
    """A note with mentions, links, entities and formatting is sent as plain_text, unchanged."""
    digest = make_digest({DigestSection.AT_RISK: [item("1.1", note=SCENARIO_16)]})
    posts = render_slack(digest)
    notes = [t for t in text_objects(posts[0]["blocks"]) if t["type"] == "plain_text"]
    said = f"1.1 ({day(-1):%d %b %Y}): "
    assert {"type": "plain_text", "text": said + SCENARIO_16, "emoji": False} in notes
    assert all("<!channel>" not in t and "<@U123>" not in t for t in parsed_texts(posts))


def test_slack_scenario_16_title_is_escaped_in_mrkdwn() -> None:
    """A title with mentions, links, entities and formatting is escaped and shown verbatim."""
    digest = make_digest({DigestSection.AT_RISK: [item("1.1", title=SCENARIO_16)]})
    posts = render_slack(digest)
    section = next(t for t in text_objects(posts[0]["blocks"]) if "• *1.1*" in str(t["text"]))
    assert section["verbatim"] is True
    assert (
        section["text"]
        .splitlines()[-1]
        .startswith(
            "• *1.1* &lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt; &lt;https://evil|Council&gt; "
            "&amp;amp; ∗bold∗ ˍitˍ ∼gone∼ ˋcodeˋ @channel · lead: "
        )
    )


def test_slack_empty_digest_says_nothing_to_report() -> None:
    """A digest with nothing in it is one post that says so."""
    posts = render_slack(make_digest({}))
    assert len(posts) == 1
    assert "Nothing overdue, at risk or due soon." in "\n".join(parsed_texts(posts))


def test_slack_picture_has_a_bar_of_twenty_squares_per_priority_and_the_trend() -> None:
    """The picture shows each priority's mix as 20 squares, a legend, and a line per period."""
    posts = render_slack(golden_digest())
    picture = next(t["text"] for t in text_objects(posts[0]["blocks"]) if "Picture" in t["text"])
    bars = [line.split("  ")[0] for line in picture.splitlines()]
    bars = [bar for bar in bars if re.fullmatch("[🟩🟦🟨🟥⬜]+", bar)]
    assert [len(bar) for bar in bars] == [20, 20, 20]
    trend = [line for line in picture.splitlines() if line.startswith("week of")]
    assert [line.split(": ")[0] for line in trend] == [
        "week of 26 April 2027",
        "week of 3 May 2027",
        "week of 10 May 2027 (now)",
    ]
    assert "🟩 1 Achieved" in picture


# --- Slack: escaping properties ---------------------------------------------------------------

HOSTILE = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U123>",
    "<@W999|boss>",
    "<#C123>",
    "<!subteam^S1>",
    "<https://evil.example|Council>",
    "<http://x>",
    "<mailto:a@b.c|mail>",
    "&amp;",
    "&lt;!channel&gt;",
    "&",
    "<",
    ">",
    "*bold*",
    "_it_",
    "~gone~",
    "`code`",
    "```block```",
    "@channel",
    "@here",
    "\n> quoted",
    ":smile:",
    "<!date^1392734382^{date}|x>",
]
user_text = st.one_of(
    st.text(max_size=80),
    st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=8)), max_size=10).map("".join),
)


@given(title=user_text, note=user_text, lead=user_text, network=user_text)
@settings(max_examples=200, deadline=None)
def test_slack_user_text_never_breaks_out(title: str, note: str, lead: str, network: str) -> None:
    """No title, note, lead key or network name can mention, link or format in Slack."""
    sections = {
        DigestSection.OVERDUE: [item("1.1", title=title, note=note, leads=(lead, "MC"))],
        DigestSection.NEEDS_SUPPORT: [item("1.1", title=title, note=note, leads=(lead, "MC"))],
    }
    digest = make_digest(sections, network_name=network, awaiting=(lead, "MC"))
    posts = render_slack(digest, slack_ids=SLACK_IDS)
    for text_object in text_objects([p["blocks"] for p in posts]):
        if text_object["type"] == "mrkdwn":
            assert text_object.get("verbatim") is True
        assert counted(text_object) <= 3000
    for text in parsed_texts(posts):
        ours_removed = text.replace(f"<@{OUR_ID}>", "")
        assert "<" not in ours_removed
        assert ">" not in ours_removed
        assert re.fullmatch(r"(?:[^&]|&amp;|&lt;|&gt;)*", ours_removed, re.DOTALL)
    # The title is in its section escaped, never raw.
    sections_text = "\n".join(parsed_texts(posts))
    assert f"*1.1* {escape_mrkdwn(title)}" in sections_text
    if note.strip():
        assert any(
            t["type"] == "plain_text" and t["text"].strip()
            for t in text_objects([p["blocks"] for p in posts])
        )


@given(st.text())
def test_escape_mrkdwn_leaves_no_markup(text: str) -> None:
    """Escaped text has no angle brackets, no raw ampersand, no formatting character, one line."""
    escaped = escape_mrkdwn(text)
    assert not set(escaped) & set("<>*_~`\n\x00\x1b")
    assert re.fullmatch(r"(?:[^&]|&amp;|&lt;|&gt;)*", escaped, re.DOTALL)


# --- Slack: limits ----------------------------------------------------------------------------


def big_digest(count: int = 200) -> Digest:
    """`count` items spread over the four exclusive sections, with notes of many lengths,
    and evidence (or none) on the achieved ones."""
    exclusive = [
        DigestSection.OVERDUE,
        DigestSection.AT_RISK,
        DigestSection.DUE_SOON,
        DigestSection.ACHIEVED,
    ]
    sections: dict[DigestSection, list[DigestItem]] = {s: [] for s in exclusive}
    for n in range(count):
        length = (n * 389) % 2900
        note = None if n % 7 == 0 else ("Progress & <notes> " * 200)[:length] or "ok"
        if n == 13:
            note = "x" * 10_000
        section = exclusive[n % 4]
        achieved = section is DigestSection.ACHIEVED
        listed = item(
            f"R{n:03d}",
            title=f"Milestone number {n} with a reasonably long title for a plan",
            note=note,
            days_overdue=3 if section is DigestSection.OVERDUE else 0,
            leads=("MC", "AW"),
            rating=1 if achieved else 3,
        )
        if achieved and n % 3:  # evidence of many lengths for two in three achieved
            listed = listed._replace(evidence=("What changed & <why> " * 40)[: 20 + n * 7])
        sections[section].append(listed)
    return make_digest(sections, awaiting=[f"P{n:03d}" for n in range(300)])


def test_long_digest_is_split_within_slacks_limits() -> None:
    """200 items become several posts, each within 50 blocks, 3,000 and 12,000 characters."""
    posts = render_slack(big_digest(), slack_ids=SLACK_IDS)
    assert len(posts) > 1
    for post in posts:
        assert 0 < len(post["blocks"]) <= 50
        assert post["text"]
        for text_object in text_objects(post["blocks"]):
            assert 0 < counted(text_object) <= 3000
        assert post_length(post) <= 12_000


def test_long_digest_loses_no_item_and_no_person() -> None:
    """Every item's reference appears exactly once across the posts, and every person too."""
    digest = big_digest()
    posts = render_slack(digest)
    refs = [i.ref for s in DigestSection for i in digest.sections[s]]
    assert len(refs) == 200
    assert item_refs(posts) == Counter(refs)
    people = ", ".join(
        str(b["text"]["text"])
        for p in posts
        for b in p["blocks"]
        if b["type"] == "section" and str(b["text"]["text"]).startswith("P")
    ).split(", ")
    assert Counter(people) == Counter(digest.awaiting)


def test_long_digest_replies_say_which_part_they_are() -> None:
    """The parent says the digest continues in the thread; each reply says its part and section."""
    posts = render_slack(big_digest())
    parts = len(posts)
    last_block = posts[0]["blocks"][-1]
    assert last_block["type"] == "context"
    assert f"{parts - 1} more parts" in last_block["elements"][0]["text"]
    for number, post in enumerate(posts[1:], start=2):
        assert post["text"].endswith(f"part {number} of {parts}")
        assert post["blocks"][0]["elements"][0]["text"] == post["text"]
        heading = post["blocks"][1]["text"]["text"].splitlines()[0]
        assert re.fullmatch(r"\*.+ \(\d+\)(, continued)?\*", heading)  # where the reader is


def test_needs_support_repeats_are_each_shown_once_per_section() -> None:
    """An item in overdue and needs support appears once in each, even across posts."""
    items = [item(f"S{n:03d}", note="n" * 2500, days_overdue=2) for n in range(30)]
    digest = make_digest({DigestSection.OVERDUE: items, DigestSection.NEEDS_SUPPORT: items})
    posts = render_slack(digest)
    assert item_refs(posts) == Counter({i.ref: 2 for i in items})


def test_very_long_note_is_shortened_with_a_marker() -> None:
    """A 10,000-character note is cut to fit one text object and says that it was cut."""
    note = "Lorem ipsum dolor sit amet. " * 400
    assert len(note) > 10_000
    posts = render_slack(make_digest({DigestSection.AT_RISK: [item("1.1", note=note)]}))
    [shown] = [t for t in text_objects(posts[0]["blocks"]) if t["type"] == "plain_text"][1:]
    assert shown["text"].endswith(NOTE_SHORTENED)
    assert counted(shown) <= 3000
    said = f"1.1 ({day(-1):%d %b %Y}): "
    assert note.startswith(shown["text"].removeprefix(said).removesuffix(NOTE_SHORTENED))
    assert len(shown["text"]) > 2500


def test_very_long_note_of_ampersands_is_counted_as_slack_counts_it() -> None:
    """A note of `&` and `<` is cut by the length Slack stores (with entities), not fewer."""
    posts = render_slack(make_digest({DigestSection.AT_RISK: [item("1.1", note="&<" * 3000)]}))
    shown = [t for t in text_objects(posts[0]["blocks"]) if t["type"] == "plain_text"][-1]
    assert shown["text"].endswith(NOTE_SHORTENED)
    assert counted(shown) <= 3000


def test_very_long_title_is_shortened_with_a_marker() -> None:
    """A title too long for a section is cut with a marker, never silently."""
    title = "Title & more " * 500
    posts = render_slack(make_digest({DigestSection.AT_RISK: [item("1.1", title=title)]}))
    section = next(t for t in text_objects(posts[0]["blocks"]) if "• *1.1*" in str(t["text"]))
    assert TITLE_SHORTENED in section["text"]
    assert counted(section) <= 3000


# --- HTML -------------------------------------------------------------------------------------


class Structure(HTMLParser):
    """Records the markup of a document (tags, comments, declarations) and its text apart."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.markup: list[tuple[str, ...]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.markup.append(("start", tag, repr(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.markup.append(("startend", tag, repr(attrs)))

    def handle_endtag(self, tag: str) -> None:
        self.markup.append(("end", tag))

    def handle_comment(self, data: str) -> None:
        self.markup.append(("comment", data))

    def handle_decl(self, decl: str) -> None:
        self.markup.append(("decl", decl))

    def handle_pi(self, data: str) -> None:
        self.markup.append(("pi", data))

    def unknown_decl(self, data: str) -> None:
        self.markup.append(("unknown", data))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def structure(html: str) -> Structure:
    parser = Structure()
    parser.feed(html)
    parser.close()
    return parser


HTML_HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "</td></tr></table>",
    "<!--",
    "-->",
    "<![CDATA[",
    "]]>",
    "<?php",
    "<!DOCTYPE x>",
    "<style>td{}</style>",
    "&amp;",
    "&lt;b&gt;",
    '"',
    "'",
    "<b>",
    "<br>",
    "\n",
    "&",
    "javascript:",
]
# No control characters other than line breaks and tabs: those are dropped by the renderer,
# which the twin below would have to model.
html_text = st.one_of(
    st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=60),
    st.lists(
        st.one_of(
            st.sampled_from(HTML_HOSTILE),
            st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=8),
        ),
        max_size=10,
    ).map("".join),
)


def html_digest(title: str, note: str, lead: str, network: str) -> Digest:
    return make_digest(
        {
            DigestSection.OVERDUE: [item("1.1", title=title, note=note, leads=(lead, "MC"))],
            DigestSection.DUE_SOON: [item("1.2", title=title, note=note, leads=(lead,))],
        },
        network_name=network,
        awaiting=(lead, "MC"),
        priorities={1: title},
    )


def benign_note(note: str) -> str:
    """A harmless note with as many non-blank lines as `note`."""
    return "\n".join("x" for line in note.splitlines() if line.split())


@given(title=html_text, note=html_text, lead=html_text, network=html_text, name=html_text)
@settings(max_examples=200, deadline=None)
def test_html_user_text_never_creates_markup(
    title: str, note: str, lead: str, network: str, name: str
) -> None:
    """Whatever users write, the HTML has exactly the markup of the same digest with "x" text."""
    hostile = structure(render_html(html_digest(title, note, lead, network), names={"MC": name}))
    twin = structure(render_html(html_digest("x", benign_note(note), "x", "x"), names={"MC": "x"}))
    assert hostile.markup == twin.markup
    assert {m[1] for m in hostile.markup if m[0] in ("start", "end", "startend")} <= HTML_TAGS
    shown = "".join(hostile.text)
    assert " ".join(title.split()) in shown
    for line in note.splitlines():
        assert " ".join(line.split()) in shown


@given(note=html_text)
@settings(max_examples=100, deadline=None)
def test_text_part_shows_user_text_as_written(note: str) -> None:
    """The plain-text part shows a note's words as written, with no markup added or removed."""
    text = render_text(make_digest({DigestSection.AT_RISK: [item("1.1", note=note)]}))
    for line in note.splitlines():
        for word in line.split():
            assert word in text


def test_html_is_outlook_safe() -> None:
    """The HTML uses tables and inline styles only: no classes, style sheets, scripts or images."""
    html = render_html(golden_digest(), names=NAMES)
    assert html.startswith("<!DOCTYPE html>")
    parsed = structure(html)
    tags = {m[1] for m in parsed.markup if m[0] in ("start", "end", "startend")}
    assert tags <= HTML_TAGS
    for forbidden in ("class=", "<style", "<script", "<img", "<link", "display:", " src=", "href="):
        assert forbidden not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    open_tags: list[str] = []
    for kind, tag, *_ in parsed.markup:
        if kind == "start" and tag not in ("meta", "br"):
            open_tags.append(tag)
        elif kind == "end":
            assert open_tags.pop() == tag
    assert open_tags == []


def test_renderers_drop_control_characters() -> None:
    """NUL, escape and other control characters in a note reach neither email nor Slack."""
    note = "Budget\x00 agreed\x1b[31m by\x07 the board"
    digest = make_digest({DigestSection.AT_RISK: [item("1.1", note=note)]})
    for rendered in (render_html(digest), render_text(digest)):
        assert "Budget agreed[31m by the board" in rendered
        assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", rendered)
    posts = render_slack(digest)
    said = f"1.1 ({day(-1):%d %b %Y}): "
    shown = {"type": "plain_text", "text": said + "Budget agreed[31m by the board", "emoji": False}
    assert shown in list(text_objects(posts[0]["blocks"]))


def test_html_shows_leads_and_people_by_name_when_known() -> None:
    """Leads and people awaiting are named when `names` has them, else shown by key."""
    html = render_html(golden_digest(), names=NAMES)
    assert "lead: Alex Wood, Mary Clark" in html
    assert "PB" in html
    assert ">MC<" not in html


def test_html_picture_bars_fill_their_width() -> None:
    """Each bar is as wide as its column, its cells' shares adding up to 100 per cent, with
    no width in pixels anywhere but the 12 px legend keys and the 640 px of Outlook's column."""
    html = render_html(golden_digest())
    bars = re.findall(r'<table role="presentation" width="100%"[^>]*><tr>(.*?)</tr></table>', html)
    widths = [[int(w) for w in re.findall(r'<td width="(\d+)%"', cells)] for cells in bars]
    widths = [w for w in widths if w]
    assert len(widths) == 3 + 3  # three priorities, two earlier periods and now
    for cells in widths:
        assert sum(cells) == 100
    assert set(re.findall(r'width="(\d+)"', html)) <= {"12", "640"}
    assert set(re.findall(r"[^-]width:(\d+)px", html)) <= {"12"}


def test_text_part_has_no_markup() -> None:
    """The plain-text part has no HTML or Markdown markup of ours."""
    text = render_text(make_digest({DigestSection.AT_RISK: [item("1.1")]}))
    assert "<" not in text
    assert "**" not in text
    assert "At risk (1)" in text


def test_every_renderer_says_when_there_is_nothing_to_report() -> None:
    """An empty digest says "Nothing overdue, at risk or due soon." in every medium."""
    digest = make_digest({})
    assert "Nothing overdue, at risk or due soon." in render_html(digest)
    assert "Nothing overdue, at risk or due soon." in render_text(digest)
    assert "Nothing overdue, at risk or due soon." in render_markdown(digest)


# --- the picture's arithmetic -----------------------------------------------------------------


@given(
    counts=st.lists(st.integers(min_value=0, max_value=500), min_size=5, max_size=5),
    width=st.sampled_from([20, 240, 480]),
)
def test_scaled_shares_fill_the_width_and_keep_every_rating_visible(
    counts: list[int], width: int
) -> None:
    """Shares add up to the width, and every non-zero count gets at least the minimum."""
    minimum = 1 if width == 20 else 4
    shares = scaled(counts, width, minimum=minimum)
    if sum(counts) == 0:
        assert shares == [0] * 5
        return
    assert sum(shares) == width
    for count, share in zip(counts, shares, strict=True):
        assert (share >= minimum) if count else (share == 0)


def test_scaled_is_proportional() -> None:
    """Counts that divide evenly are shared exactly in proportion."""
    assert scaled([5, 5, 10, 0, 0], 20) == [5, 5, 10, 0, 0]
    assert scaled([1, 0, 0, 0, 0], 20) == [20, 0, 0, 0, 0]
    assert scaled([1, 99, 0, 0, 0], 20) == [1, 19, 0, 0, 0]


def _mix_total(mixes: Iterable[Mapping[str, int]]) -> int:
    return sum(sum(int(m.get(k, 0)) for k in MIX_KEYS) for m in mixes)


def test_golden_mix_counts_every_milestone_of_the_network() -> None:
    """The picture's mix covers all eleven milestones of the fixture, rated or not."""
    assert _mix_total(golden_digest().mix.values()) == 11
