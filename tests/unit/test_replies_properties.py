"""Properties of reply parsing that must hold for any text a lead (or a mail client) sends."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.replies import AskedMilestone, parse_reply, reply_examples, strip_quoted

TODAY = date(2026, 11, 23)

REFS = st.sampled_from(["1.1a", "1.2", "2.1", "W1.2", "W1.2-3", "3.4b-2", "10.1"])
ASKED = st.lists(
    st.builds(
        AskedMilestone,
        ref=REFS,
        current_rating=st.none() | st.integers(1, 4),
        overdue=st.booleans(),
    ),
    max_size=5,
)

# Words a generated note must avoid: the scale's words, the markers of dates, support and
# ratings, and the sign-offs.
RESERVED = {
    "achieved", "done", "complete", "completed", "largely", "mostly", "in", "progress",
    "progressing", "on", "track", "started", "not", "no", "rating", "rated", "revised", "new",
    "date", "by", "due", "need", "needs", "help", "support", "needed", "please", "thanks",
    "regards", "best", "cheers", "ta", "start", "achieve", "evidence",
}  # fmt: skip
WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=10).filter(
    lambda w: w not in RESERVED
)
NOTES = st.lists(WORDS, min_size=1, max_size=8).map(" ".join)

# Text built from the pieces replies are made of, so that generated text reaches the grammar.
PIECES = st.sampled_from(
    [
        "1.1a", "1.2", "W1.2-3", "9.9", "2", "3/4", "rating", "done", "not started", "in progress",
        "revised date", "by", "31/01/27", "31/09/26", "14 Dec", "2027-01-31", "need support",
        "help", "no", "-", ";", ":", ",", ".", "\n", "\n\n", " ", "Thanks", "> ", "--", "\x00",
        "evidence:", "Evidence of impact =", "1",
    ]
)  # fmt: skip
REPLIES = st.text() | st.lists(PIECES | st.text(max_size=5), max_size=30).map("".join)


@given(text=REPLIES, asked=ASKED, today=st.dates())
def test_never_raises(text: str, asked: list[AskedMilestone], today: date) -> None:
    """parse_reply gives a result for any text, prompt and day, and strip_quoted too."""
    parse_reply(text, asked, today=today)
    parse_reply(strip_quoted(text), asked, today=today)


@given(text=REPLIES, asked=ASKED)
def test_accepted_answers_are_about_asked_milestones(
    text: str, asked: list[AskedMilestone]
) -> None:
    """Every accepted answer names an asked reference, spelled as asked, at most once."""
    reply = parse_reply(text, asked, today=TODAY)
    refs = [a.ref for a in reply.accepted]
    assert set(refs) <= {m.ref for m in asked}
    assert len(refs) == len({r.casefold() for r in refs})


@given(text=REPLIES, asked=ASKED)
def test_ratings_are_on_the_scale(text: str, asked: list[AskedMilestone]) -> None:
    """Every accepted rating is 1-4 or None, every answer records something."""
    reply = parse_reply(text, asked, today=TODAY)
    for answer in reply.accepted:
        assert answer.rating is None or answer.rating in (1, 2, 3, 4)
        assert answer.rating or answer.note or answer.revised_due or answer.needs_support
        assert answer.revised_due is None or answer.revised_due >= TODAY
        assert answer.evidence is None or (answer.rating == 1 and answer.evidence.strip())


@given(text=REPLIES, asked=ASKED)
def test_line_numbers_point_into_the_text(text: str, asked: list[AskedMilestone]) -> None:
    """Every answer and rejection names a line of the text, in order."""
    reply = parse_reply(text, asked, today=TODAY)
    count = len(text.replace("\x00", "").splitlines())
    numbers = [a.line_no for a in reply.accepted] + [r.line_no for r in reply.rejected]
    assert all(1 <= n <= count for n in numbers)
    assert [a.line_no for a in reply.accepted] == sorted(a.line_no for a in reply.accepted)


@given(ref=REFS, rating=st.integers(1, 4), note=NOTES, shout=st.booleans())
def test_valid_line_round_trips(ref: str, rating: int, note: str, shout: bool) -> None:
    """`REF RATING note` gives back the reference, the rating and the note."""
    asked = [AskedMilestone(ref, current_rating=None, overdue=False)]
    written = ref.upper() if shout else ref
    reply = parse_reply(f"{written} {rating} {note}", asked, today=TODAY)
    assert reply.rejected == ()
    [answer] = reply.accepted
    assert (answer.ref, answer.rating, answer.note) == (ref, rating, note)
    assert (answer.revised_due, answer.needs_support, answer.line_no) == (None, False, 1)


@given(ref=REFS, note=NOTES, evidence=NOTES, same_line=st.booleans())
def test_evidence_round_trips(ref: str, note: str, evidence: str, same_line: bool) -> None:
    """`REF 1 note` with `evidence: text` on its line or the next gives back both, apart."""
    asked = [AskedMilestone(ref, current_rating=None, overdue=False)]
    joint = " - " if same_line else "\n"
    reply = parse_reply(f"{ref} 1 {note}{joint}evidence: {evidence}", asked, today=TODAY)
    assert reply.rejected == ()
    [answer] = reply.accepted
    assert (answer.rating, answer.note, answer.evidence) == (1, note, evidence)


@given(text=REPLIES)
def test_strip_quoted_keeps_a_prefix_of_unquoted_lines(text: str) -> None:
    """strip_quoted only removes lines: what it keeps is unquoted lines of the text, in order."""
    kept = strip_quoted(text).splitlines()
    source = iter(line.rstrip() for line in text.splitlines())
    for line in kept:
        assert not line.lstrip().startswith(">")
        assert any(line == candidate for candidate in source)


# A line's start: references in any case, the characters `re` counts as equal to ASCII
# letters when ignoring case ("ſ", the Kelvin sign, dotless and dotted i), separators.
LINE_START = st.text(alphabet="1234.-aAbBsSwWkKiI ſKıİ:)=–—\t.x9ß", max_size=8)


@given(
    st.lists(
        st.sampled_from(["1.1", "1.1-2", "W1.2", "1.10", "1a", "S1.2", "k2", "ı1"]), min_size=1
    )
    | st.lists(st.text(alphabet="1.2-aAsSkKſKıİ", min_size=1, max_size=4), min_size=1),
    st.sampled_from(["", "1.1", "w1.2", "S1.2", "ſ1.2", "K2", "1A"]),
    LINE_START,
)
def test_asked_references_are_matched_as_the_pattern_matches_them(
    refs: list[str], head: str, tail: str
) -> None:
    """Matching a line against the asked references without compiling a pattern per reply
    finds exactly what the compiled pattern finds: which reference, and where it ends."""
    from bot.domain.replies import _asked_pattern, _AskedRefs

    unique = tuple({ref.casefold(): ref for ref in reversed(refs)}.values())
    body = head + tail
    pattern = _asked_pattern(unique)
    found = pattern.match(body) if pattern is not None else None
    expected = (int(found.lastgroup[1:]), found.end()) if found and found.lastgroup else None
    assert _AskedRefs(unique).match(body) == expected


LATEST = st.builds(
    AskedMilestone,
    ref=REFS,
    current_rating=st.none() | st.integers(1, 4),
    overdue=st.booleans(),
    latest_rating=st.none() | st.integers(1, 4),
)


@given(asked=st.lists(LATEST, min_size=1, max_size=6), today=st.dates(max_value=date(2090, 1, 1)))
def test_a_prompts_examples_are_accepted_as_they_stand(
    asked: list[AskedMilestone], today: date
) -> None:
    """Whatever a prompt's milestones (overdue, rated worse, never rated), its examples each
    name a milestone of their own and, sent back together, are all recorded."""
    examples = reply_examples(asked, today=today)
    assert examples
    refs = [line.split()[0] for line in examples]
    assert len(set(refs)) == len(refs)
    reply = parse_reply("\n".join(examples), asked, today=today)
    assert reply.rejected == ()
    assert [line.ref for line in reply.accepted] == refs
