"""Email replies read into answers per milestone (DESIGN.md §9)."""

from __future__ import annotations

from datetime import date

import pytest

from bot.domain.child_details import case_number_pattern
from bot.domain.ratings import RATING_WORDS, rating_from_text
from bot.domain.replies import (
    NOTE_LIMIT,
    AskedMilestone,
    LineRefusal,
    ParsedReply,
    Refusal,
    ReplyLine,
    judge,
    judge_answer,
    parse_reply,
    quotes_our_confirmation,
    reply_examples,
    strip_our_text,
    strip_quoted,
)
from tests.unit.test_ratings import WORDS

TODAY = date(2026, 11, 23)

ASKED = (
    AskedMilestone("1.1a", current_rating=3, overdue=False),
    AskedMilestone("1.2", current_rating=3, overdue=False),
    AskedMilestone("W1.2-3", current_rating=None, overdue=False),
    AskedMilestone("W1.2", current_rating=None, overdue=False),
)


def read(text: str, asked: tuple[AskedMilestone, ...] = ASKED) -> ParsedReply:
    return parse_reply(text, asked, today=TODAY)


def one(text: str, asked: tuple[AskedMilestone, ...] = ASKED) -> ReplyLine:
    """The single answer a reply gives, failing with the rejections if there is not one."""
    reply = read(text, asked)
    assert not reply.rejected, reply.rejected
    assert len(reply.accepted) == 1, reply.accepted
    return reply.accepted[0]


def reason(text: str, asked: tuple[AskedMilestone, ...] = ASKED) -> str:
    """The reason the single item of a reply was rejected."""
    reply = read(text, asked)
    assert not reply.accepted, reply.accepted
    assert len(reply.rejected) == 1, reply.rejected
    return reply.rejected[0].reason


# --- DESIGN.md §9 ---------------------------------------------------------------------------


def test_design_example_first_line() -> None:
    """`1.1a 2 Strategy review done; sign-off on 14 Dec` is rating 2 with the rest as note."""
    answer = one("1.1a 2 Strategy review done; sign-off on 14 Dec")
    assert answer == ReplyLine(
        ref="1.1a",
        rating=2,
        note="Strategy review done; sign-off on 14 Dec",
        revised_due=None,
        needs_support=False,
        line_no=1,
    )


def test_design_example_second_line() -> None:
    """`1.2 in progress - revised date 31/01/27 - need support` gives 3, a date and the flag."""
    answer = one("1.2 in progress - revised date 31/01/27 - need support")
    assert answer == ReplyLine(
        ref="1.2",
        rating=3,
        note=None,
        revised_due=date(2027, 1, 31),
        needs_support=True,
        line_no=1,
    )


def test_design_example_whole_reply() -> None:
    """Both example lines in one reply give two answers, in order, with their line numbers."""
    reply = read(
        "Hi,\n\n"
        "1.1a 2 Strategy review done; sign-off on 14 Dec\n"
        "1.2 in progress - revised date 31/01/27 - need support\n\n"
        "Thanks\nAisha\n"
    )
    assert reply.rejected == ()
    assert [(a.ref, a.rating, a.line_no) for a in reply.accepted] == [("1.1a", 2, 3), ("1.2", 3, 4)]


# --- ratings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("word", "value"), WORDS)
def test_every_rating_word(word: str, value: int) -> None:
    """Every word of the §3 scale is read as its rating, in any case, before a note."""
    asked = (AskedMilestone("1.2", current_rating=None, overdue=False),)
    for written in (word, word.upper(), word.title()):
        answer = one(f"1.2 {written} - board paper drafted", asked)
        assert (answer.rating, answer.note) == (value, "board paper drafted")


def test_rating_words_listed_in_reasons_are_the_scale() -> None:
    """The words named in rejection reasons are exactly those `rating_from_text` reads."""
    assert sorted(RATING_WORDS) == sorted(word for word, _ in WORDS)
    assert all(rating_from_text(word) is not None for word in RATING_WORDS)


@pytest.mark.parametrize(
    "text", ["1.2 not started yet", "1.2 Not Started - recruitment paused", "1.2 NOT STARTED"]
)
def test_not_started_is_never_started(text: str) -> None:
    """ "not started" is 4 even though it contains "started" (3)."""
    asked = (AskedMilestone("1.2", current_rating=None, overdue=False),)
    assert one(text, asked).rating == 4


@pytest.mark.parametrize(
    "text",
    [
        "1.2 3 waiting on HR",
        "1.2 rating 3 waiting on HR",
        "1.2 rating: 3 - waiting on HR",
        "1.2 rated 3, waiting on HR",
        "1.2 3/4 waiting on HR",
        "1.2 3 - waiting on HR",
        "1.2 3. waiting on HR",
        "1.2 3 - In progress - waiting on HR",
        "1.2 in progress; waiting on HR",
    ],
)
def test_rating_forms(text: str) -> None:
    """`3`, `rating 3`, `3/4`, `3 -` and the words all give 3, and the label is not a note."""
    answer = one(text)
    assert (answer.rating, answer.note) == (3, "waiting on HR")


@pytest.mark.parametrize(
    "text", ["1.2 0 nothing yet", "1.2 5", "1.2 5 some note", "1.2 rating 7", "1.2 2.5 ok"]
)
def test_numbers_outside_the_scale_are_rejected(text: str) -> None:
    """A number that is not 1-4 in the rating place is sent back, naming the scale."""
    why = reason(text)
    assert "rating must be 1–4 or one of" in why
    assert "not started" in why


def test_whole_number_written_as_decimal() -> None:
    """`3.0` is 3, but `2.2` is not 2."""
    assert one("1.2 3.0 panel met").rating == 3
    assert "'2.2' is not a rating" in reason("1.2 2.2 panel met")


def test_rating_out_of_five_is_rejected() -> None:
    """`3/5` is not a rating on a four-point scale."""
    assert "out of 4" in reason("1.2 3/5 ok")


def test_rating_keyword_without_a_rating_is_rejected() -> None:
    """`rating high` names a rating that cannot be read, so it is sent back."""
    assert "rating must be 1–4" in reason("1.2 rating high")


def test_misspelt_rating_word_is_rejected_with_a_suggestion() -> None:
    """A lone near-miss of a scale word ("acheived") is sent back, not kept as a note."""
    why = reason("1.2 acheived")
    assert "did you mean 'achieved'" in why


def test_note_only_answer() -> None:
    """Text that is not a rating is a note without a rating."""
    answer = one("1.2 waiting for the finance panel to meet")
    assert (answer.rating, answer.note) == (None, "waiting for the finance panel to meet")


def test_support_only_answer() -> None:
    """A reference with only a support request is recorded without rating or note."""
    answer = one("1.2 need support")
    assert (answer.rating, answer.note, answer.needs_support) == (None, None, True)


def test_bare_reference_has_nothing_to_record() -> None:
    """A reference alone is sent back: there is nothing to record."""
    assert reason("1.2").startswith("nothing to record for 1.2")
    assert reason("1.2 - ").startswith("nothing to record")


# --- references -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "1.1A 2 review done",
        "1.1a: 2 review done",
        "1.1a - 2 review done",
        "1.1a) 2 review done",
        "1.1a. 2 review done",
        "- 1.1a 2 review done",
        "* 1.1a 2 review done",
        "• 1.1a 2 review done",
        "   1.1a   2   review done",
    ],
)
def test_reference_forms(line: str) -> None:
    """References match in any case, after a bullet, and before `:` `-` `)` `.`."""
    answer = one(line)
    assert (answer.ref, answer.rating, answer.note) == ("1.1a", 2, "review done")


def test_canonical_case_is_the_prompts() -> None:
    """A reference written in lower case is recorded as the prompt spelled it."""
    assert one("w1.2-3 2 workshops held").ref == "W1.2-3"
    assert one("w1.2 2 workshops held").ref == "W1.2"


def test_unknown_reference_names_the_asked_ones() -> None:
    """A reference the prompt did not ask about is sent back with the ones it did."""
    asked = (
        AskedMilestone("1.1a", current_rating=None, overdue=False),
        AskedMilestone("1.2", current_rating=None, overdue=False),
    )
    reply = read("9.9 2 done", asked)
    assert reply.accepted == ()
    assert reply.rejected[0].reason == "unknown reference 9.9: this prompt asks about 1.1a, 1.2"
    assert (reply.rejected[0].text, reply.rejected[0].line_no) == ("9.9 2 done", 1)


@pytest.mark.parametrize("line", ["1.1 2 done", "1.1ab 2 done", "W1.2-4 2 done", "1.2.1 2 done"])
def test_prefix_of_an_asked_reference_is_unknown(line: str) -> None:
    """ "1.1" is not "1.1a" and "W1.2-4" is not "W1.2": near misses are unknown references."""
    assert reason(line).startswith("unknown reference ")


def test_unknown_reference_swallows_its_continuation() -> None:
    """Lines after an unknown reference belong to it, not to the previous answer."""
    reply = read("1.2 3 waiting\n9.9 2 done\nmore about 9.9")
    assert reply.accepted[0].note == "waiting"
    assert reply.rejected[0].text == "9.9 2 done\nmore about 9.9"


@pytest.mark.parametrize(
    "line", ["2 workshops held in October", "Q3 figures not in yet", "9.30 meeting with the DCS"]
)
def test_numbers_in_continuation_lines_are_not_references(line: str) -> None:
    """A continuation line starting with a number or "Q3" continues the note."""
    answer = one(f"1.2 3 panel met\n{line}")
    assert answer.note == f"panel met {line}"


def test_reference_shaped_line_with_a_rating_is_a_new_item() -> None:
    """Inside an item, "9.9 2 done" is still an attempt at another answer, not a note."""
    reply = read("1.2 3 panel met\n9.9 2 done")
    assert reply.accepted[0].note == "panel met"
    assert reply.rejected[0].reason.startswith("unknown reference 9.9")


# --- notes across lines -----------------------------------------------------------------------


def test_continuation_lines_join_the_note() -> None:
    """Lines without a reference continue the previous item's note, joined with a space."""
    answer = one("1.2 3 Recruitment panel met;\nshortlist agreed and\ninterviews booked")
    assert answer.note == "Recruitment panel met; shortlist agreed and interviews booked"


def test_bulleted_continuation_lines_keep_their_lines() -> None:
    """Bulleted continuation lines are joined with newlines, without their bullets."""
    answer = one("1.2 3\n- panel met\n- shortlist agreed")
    assert answer.note == "panel met\nshortlist agreed"


def test_rating_on_the_line_after_the_reference() -> None:
    """A reference alone on its line takes its rating from the next line."""
    answer = one("1.2\n3 panel met")
    assert (answer.rating, answer.note, answer.line_no) == (3, "panel met", 1)


def test_blank_line_ends_an_item() -> None:
    """Text after a blank line that does not start with a reference is not part of a note."""
    reply = read("1.2 3 panel met\n\nLet me know if you need anything else.\nAisha")
    assert reply.accepted[0].note == "panel met"
    assert reply.rejected == ()


def test_greeting_and_sign_off_are_ignored() -> None:
    """Greetings before the first item and sign-offs after the last are neither notes nor errors."""
    reply = read(
        "Hi Plan Pulse,\nHere are my updates:\n\n1.1a 2 review done\n1.2 3 panel met\n"
        "Thanks,\nAisha Patel\nHead of Service"
    )
    assert reply.rejected == ()
    assert [a.note for a in reply.accepted] == ["review done", "panel met"]


@pytest.mark.parametrize(
    "closing", ["Thanks", "Many thanks!", "Kind regards", "Regards,", "Best wishes", "Cheers"]
)
def test_sign_off_without_a_blank_line_ends_the_item(closing: str) -> None:
    """A sign-off right after an item ends it, and the name after it is ignored."""
    answer = one(f"1.2 3 panel met\n{closing}\nAisha")
    assert answer.note == "panel met"


def test_trailing_full_stop_stays_in_the_note() -> None:
    """The note keeps its own punctuation; only separators are tidied."""
    assert one("1.2 3 - Panel met. Shortlist agreed.").note == "Panel met. Shortlist agreed."


def test_long_repetitive_text_is_read() -> None:
    """Hundreds of repeated numbers or thousands of separators neither fail nor hang."""
    assert one("1.2 3 " + "1 " * 900).rating == 3
    assert one("1.2 3 " + "1-" * 900).note == "1-" * 900
    assert one("1.2 3 " + "- " * 5000 + "panel met").note == "panel met"
    assert "limit is 2000" in reason("1.2 " + "1 " * 5000)


def test_rejected_text_includes_continuation_lines() -> None:
    """A rejected item is shown with all of its lines, and the line it started on."""
    reply = read("1.2 3 panel met\n1.1a 5 review\nstill going")
    assert reply.rejected[0].text == "1.1a 5 review\nstill going"
    assert reply.rejected[0].line_no == 2


def test_note_at_the_limit_is_accepted_and_longer_is_rejected() -> None:
    """Notes up to 2000 characters are recorded; longer ones are sent back with the limit."""
    assert one("1.2 3 " + "x" * NOTE_LIMIT).note == "x" * NOTE_LIMIT
    why = reason("1.2 3 " + "x" * (NOTE_LIMIT + 1))
    assert "2001 characters" in why
    assert "2000" in why


# --- revised dates ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("revised date 31/01/27", date(2027, 1, 31)),
        ("revised date 31/1/2027", date(2027, 1, 31)),
        ("revised date 2027-01-31", date(2027, 1, 31)),
        ("revised date 14 Dec 2026", date(2026, 12, 14)),
        ("revised date 14th December 2026", date(2026, 12, 14)),
        ("revised date: 31.01.27", date(2027, 1, 31)),
        ("revised due date 31/01/27", date(2027, 1, 31)),
        ("revised 31/01/27", date(2027, 1, 31)),
        ("new date 31/01/27", date(2027, 1, 31)),
        ("by 31/01/27", date(2027, 1, 31)),
        ("by 14 Dec", date(2026, 12, 14)),
        ("by 14 December", date(2026, 12, 14)),
        ("by 14/12", date(2026, 12, 14)),
        ("by 14 Dec 26", date(2026, 12, 14)),
        ("by Jan 2027", date(2027, 1, 31)),
    ],
)
def test_revised_dates(written: str, expected: date) -> None:
    """Revised dates are day-first; a day and month alone is the next such day."""
    answer = one(f"1.2 3 panel delayed - {written}")
    assert (answer.revised_due, answer.note) == (expected, "panel delayed")


def test_day_and_month_without_year_is_on_or_after_today() -> None:
    """ "14 Dec" is this year's when it is still to come (or today), else next year's."""
    asked = (AskedMilestone("1.2", current_rating=None, overdue=False),)
    line = "1.2 3 by 14 Dec"
    assert parse_reply(line, asked, today=date(2026, 12, 14)).accepted[0].revised_due == date(
        2026, 12, 14
    )
    assert parse_reply(line, asked, today=date(2026, 12, 15)).accepted[0].revised_due == date(
        2027, 12, 14
    )


def test_29_february_without_year_is_the_next_leap_day() -> None:
    """ "29 Feb" is the next 29 February that exists."""
    assert one("1.2 3 revised date 29 Feb").revised_due == date(2028, 2, 29)


def test_revised_date_in_the_middle_of_a_note() -> None:
    """A revised date phrase is taken out of the note wherever it stands."""
    answer = one("1.2 3 sign-off moved by 31/01/27 at the board's request")
    assert answer.revised_due == date(2027, 1, 31)
    assert answer.note == "sign-off moved at the board's request"


@pytest.mark.parametrize(
    ("written", "why"),
    [
        ("revised date 31/09/26", "September has 30 days"),
        ("revised date 29/02/27", "February 2027 has 28 days"),
        ("by 31 Sep", "September has 30 days"),
        ("new date 2027-13-01", "no month 13"),
        ("revised date tbc", "could not read a date after 'revised date'"),
        ("revised date next month", "could not read a date after 'revised date'"),
        ("new date: next month", "could not read a date after 'new date'"),
        ("revised date", "could not read a date"),
        ("by 31/01/20", "before today"),
        ("revised date 31/01/27 then by 14 Dec 2026", "more than one revised date"),
    ],
)
def test_unusable_revised_dates_are_rejected(written: str, why: str) -> None:
    """An impossible, unreadable, past or doubled revised date sends the line back."""
    assert why in reason(f"1.2 3 panel delayed - {written}")


@pytest.mark.parametrize(
    "text",
    [
        "1.2 3 agreed a new date with the panel",
        "1.2 3 policy revised after consultation",
        "1.2 3 sign-off by the board next month",
        "1.2 3 waiting on 2.1 by 2.1 lead",
    ],
)
def test_date_words_without_a_date_stay_in_the_note(text: str) -> None:
    """ "new date", "revised" and "by" without a date after them are ordinary note text."""
    answer = one(text)
    assert answer.revised_due is None
    assert answer.note == text.removeprefix("1.2 3 ")


def test_same_revised_date_twice_is_one_date() -> None:
    """Writing the same revised date twice is not a conflict."""
    assert one("1.2 3 revised date 31/01/27; by 31/1/2027").revised_due == date(2027, 1, 31)


# --- needs support ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "marker",
    [
        "need support",
        "needs support",
        "Need help",
        "help needed",
        "help",
        "HELP!",
        "I need some help",
        "need support please",
    ],
)
def test_need_support_variants(marker: str) -> None:
    """Every support phrase sets the flag and is taken out of the note."""
    answer = one(f"1.2 3 panel delayed - {marker}")
    assert (answer.needs_support, answer.note) == (True, "panel delayed")


def test_support_in_a_sentence_keeps_the_sentence() -> None:
    """A support request inside a sentence sets the flag and stays in the note."""
    answer = one("1.2 3 need support from the CFO on the business case")
    assert answer.needs_support is True
    assert answer.note == "need support from the CFO on the business case"


@pytest.mark.parametrize(
    "text", ["1.2 3 no help needed", "1.2 3 we don't need support", "1.2 3 helpful meeting"]
)
def test_no_support_requested(text: str) -> None:
    """Negated requests and words that merely contain "help" do not set the flag."""
    answer = one(text)
    assert answer.needs_support is False
    assert answer.note == text.removeprefix("1.2 3 ")


def test_support_after_a_full_stop() -> None:
    """ "Going well. Need support." keeps the first sentence as the note."""
    answer = one("1.2 3 Going well. Need support.")
    assert (answer.note, answer.needs_support) == ("Going well.", True)


# --- the note rule ----------------------------------------------------------------------------

RATED_2 = (AskedMilestone("1.2", current_rating=2, overdue=False),)
OVERDUE = (AskedMilestone("1.2", current_rating=None, overdue=True),)


def test_worse_rating_without_note_is_rejected() -> None:
    """A rating worse than the current one needs a note, and the reason says so and why."""
    why = reason("1.2 3", RATED_2)
    assert why.startswith("a note is required")
    assert "worse than the current rating 2" in why


def test_worse_rating_with_a_revised_date_but_no_note_is_rejected() -> None:
    """A revised date or a support request is not a note."""
    assert reason("1.2 4 revised date 31/01/27 - need support", RATED_2).startswith(
        "a note is required"
    )


def test_worse_rating_with_note_is_accepted() -> None:
    """A worse rating with a note is recorded."""
    answer = one("1.2 3 lead left; post being re-advertised", RATED_2)
    assert (answer.rating, answer.note) == (3, "lead left; post being re-advertised")


def test_same_or_better_rating_needs_no_note() -> None:
    """Keeping or improving the rating needs no note."""
    assert one("1.2 2", RATED_2).rating == 2
    assert one("1.2 done", RATED_2).rating == 1


def test_three_on_overdue_without_note_is_rejected() -> None:
    """A 3 on an overdue milestone needs a note, and the reason says it is overdue."""
    why = reason("1.2 3", OVERDUE)
    assert why.startswith("a note is required")
    assert "overdue" in why


def test_four_on_overdue_without_note_is_rejected() -> None:
    """A 4 on an overdue milestone needs a note."""
    assert reason("1.2 not started", OVERDUE).startswith("a note is required")


def test_two_on_overdue_without_note_is_accepted() -> None:
    """A 2 on an overdue milestone needs no note."""
    assert one("1.2 2", OVERDUE).rating == 2


def test_three_on_overdue_with_note_is_accepted() -> None:
    """A 3 on an overdue milestone with a note is recorded."""
    assert one("1.2 3 waiting on the provider", OVERDUE).note == "waiting on the provider"


def test_note_on_a_continuation_line_satisfies_the_rule() -> None:
    """The note may be on the lines after the rating."""
    assert one("1.2 3\nwaiting on the provider", OVERDUE).note == "waiting on the provider"


# --- duplicates -------------------------------------------------------------------------------


def test_same_reference_twice_keeps_the_first() -> None:
    """A second answer for the same milestone is sent back; the first is recorded."""
    reply = read("1.2 3 panel met\n1.2 2 shortlist agreed")
    assert [(a.rating, a.note) for a in reply.accepted] == [(3, "panel met")]
    assert reply.rejected[0].reason == "answered twice in this reply; the first answer was kept"
    assert reply.rejected[0].line_no == 2


def test_duplicate_in_another_case_is_still_a_duplicate() -> None:
    """ "w1.2" and "W1.2" are the same milestone."""
    reply = read("W1.2 2 ok\nw1.2 3 ok")
    assert len(reply.accepted) == 1
    assert "answered twice" in reply.rejected[0].reason


def test_answer_after_a_rejected_one_is_recorded() -> None:
    """When the first answer was rejected, a corrected one later in the reply is recorded."""
    reply = read("1.2 7 oops\n1.2 3 panel met")
    assert [a.rating for a in reply.accepted] == [3]
    assert reply.rejected[0].line_no == 1


def test_asked_milestones_listed_twice_are_asked_once() -> None:
    """A prompt listing a reference twice (in different case) asks about it once."""
    asked = (
        AskedMilestone("1.2", current_rating=None, overdue=False),
        AskedMilestone("1.2", current_rating=None, overdue=False),
    )
    assert reason("9.9 2 ok", asked) == "unknown reference 9.9: this prompt asks about 1.2"


def test_no_asked_milestones() -> None:
    """With nothing asked, any reference is unknown and says so."""
    assert reason("1.2 3 ok", ()) == "unknown reference 1.2: this prompt asks about no milestones"


# --- strip_quoted -----------------------------------------------------------------------------

ANSWER = "1.1a 2 review done\n1.2 3 panel met"
PROMPT = (
    "Please rate your milestones:\n"
    "1.1a Strategy review (current rating 3)\n"
    "1.2 Recruitment panel (current rating 3)\n"
)


def test_gmail_quote_header() -> None:
    """Everything from Gmail's "On ... wrote:" line is cut, and quoted lines go with it."""
    body = (
        f"{ANSWER}\n\n"
        "On Mon, 23 Nov 2026 at 09:00, Plan Pulse <pulse@council.gov.uk> wrote:\n\n"
        + "".join(f"> {line}\n" for line in PROMPT.splitlines())
    )
    assert strip_quoted(body) == ANSWER


def test_gmail_quote_header_wrapped() -> None:
    """Gmail's header wrapped over two lines is still a quote header."""
    body = (
        f"{ANSWER}\n\nOn Mon, 23 Nov 2026 at 09:00, Plan Pulse <\n"
        f"pulse@council.gov.uk> wrote:\n\n{PROMPT}"
    )
    assert strip_quoted(body) == ANSWER


def test_outlook_header_block() -> None:
    """Outlook's "From: / Sent: / To: / Subject:" block and the prompt under it are cut."""
    body = (
        f"{ANSWER}\n"
        "From: Plan Pulse <pulse@council.gov.uk>\n"
        "Sent: 23 November 2026 09:00\n"
        "To: Aisha Patel <aisha.patel@council.gov.uk>\n"
        "Subject: Plan Pulse: your milestones [PP-7Q2K9]\n\n"
        f"{PROMPT}"
    )
    assert strip_quoted(body) == ANSWER


def test_outlook_bold_header_after_rule() -> None:
    """Outlook's underscore rule and "*From:*" header (HTML turned to text) are cut."""
    body = (
        f"{ANSWER}\n\n"
        "________________________________\n"
        "*From:* Plan Pulse <pulse@council.gov.uk>\n*Sent:* 23 November 2026 09:00\n\n"
        f"{PROMPT}"
    )
    assert strip_quoted(body) == ANSWER


def test_outlook_from_after_blank_line() -> None:
    """A "From:" header after a blank line starts the quoted message."""
    assert strip_quoted(f"{ANSWER}\n\nFrom: Plan Pulse\n{PROMPT}") == ANSWER


def test_original_message_separator() -> None:
    """ "-----Original Message-----" and everything after it are cut."""
    body = f"{ANSWER}\n-----Original Message-----\nFrom: pulse@council.gov.uk\n{PROMPT}"
    assert strip_quoted(body) == ANSWER


@pytest.mark.parametrize(
    "footer",
    ["Sent from my iPhone", "Sent from my iPad", "Get Outlook for iOS", "Get Outlook for Android"],
)
def test_mobile_footers(footer: str) -> None:
    """ "Sent from my iPhone"-style footers end the reply."""
    body = f"{ANSWER}\n\n{footer}\n\n> On 23 Nov 2026, at 09:00, Plan Pulse wrote:\n> {PROMPT}"
    assert strip_quoted(body) == ANSWER


@pytest.mark.parametrize("delimiter", ["-- ", "--"])
def test_signature_delimiter(delimiter: str) -> None:
    """A signature delimiter line and the signature after it are cut."""
    body = f"{ANSWER}\n{delimiter}\nAisha Patel\nHead of Service\n1.2 tel 01234 567890"
    assert strip_quoted(body) == ANSWER


def test_inline_quotes_are_dropped() -> None:
    """Lines quoted with ">" between answers are dropped and the answers kept."""
    body = "> 1.1a Strategy review\n1.1a 2 review done\n> 1.2 Recruitment panel\n1.2 3 panel met"
    assert strip_quoted(body) == ANSWER


def test_text_without_quotes_is_unchanged() -> None:
    """A reply with nothing quoted comes back as written, less trailing blank lines."""
    body = "Hi,\n\n1.1a 2 review done - see the From: line in the paper\n\n"
    assert strip_quoted(body) == body.rstrip()


def test_dashes_in_a_note_are_not_a_signature() -> None:
    """Only a line that is exactly "--" or "-- " is a signature delimiter."""
    body = "1.2 3 panel met -- shortlist agreed\n---\nmore"
    assert strip_quoted(body) == body


def test_stripped_reply_parses_without_reading_the_quoted_prompt() -> None:
    """A whole Gmail reply, stripped then parsed, records only what the lead wrote."""
    body = (
        "Hi,\n\n1.1a 2 review done\n\nThanks\nAisha\n\n"
        "On Mon, 23 Nov 2026 at 09:00, Plan Pulse <pulse@council.gov.uk> wrote:\n"
        "1.1a Strategy review (current rating 3)\n1.2 Recruitment panel (current rating 3)\n"
    )
    reply = read(strip_quoted(body))
    assert [(a.ref, a.rating, a.note) for a in reply.accepted] == [("1.1a", 2, "review done")]
    assert reply.rejected == ()


# --- the prompt's examples, "no change", "did you mean" -------------------------------------

OVERDUE_3 = AskedMilestone("1.1-1", current_rating=3, overdue=True, latest_rating=3)


def test_examples_use_the_prompts_own_references_and_notes() -> None:
    """The examples of a prompt whose first milestone is overdue at 3 name its first two
    milestones, each with a note and a revised date still to come, and are both recorded."""
    asked = (OVERDUE_3, AskedMilestone("1.1-2", current_rating=1, overdue=False))
    examples = reply_examples(asked, today=TODAY)
    assert [line.split()[0] for line in examples] == ["1.1-1", "1.1-2"]
    reply = read("\n".join(examples), asked)
    assert reply.rejected == ()
    first, second = reply.accepted
    assert (first.rating, first.needs_support, first.note) == (
        3,
        True,
        "waiting on partner sign-off",
    )
    assert first.revised_due is not None
    assert first.revised_due > TODAY
    assert (second.rating, second.note) == (2, "Strategy review done; sign-off on 14 Dec")


def test_one_milestone_gets_one_example() -> None:
    """A prompt about one milestone shows one example: two would answer it twice."""
    assert len(reply_examples((OVERDUE_3,), today=TODAY)) == 1


@pytest.mark.parametrize("written", ["1.1.1", "1,1-1", "11-1", "1-1-1"])
def test_a_reference_written_with_other_separators_gets_did_you_mean(written: str) -> None:
    """`1.1.1`, `1,1-1`, `11-1` and `1-1-1` are sent back with "did you mean 1.1-1?"."""
    asked = (OVERDUE_3, AskedMilestone("2.1", current_rating=None, overdue=False))
    why = reason(f"{written} 2 Panel met", asked)
    assert why.startswith(f"unknown reference {written}: did you mean 1.1-1?")


def test_a_misspelt_reference_with_no_change_under_an_answer_is_not_folded_into_its_note() -> None:
    """`1.1.1 no change` on the line after another answer is sent back with "did you mean",
    not added to the note above it."""
    asked = (OVERDUE_3, AskedMilestone("2.1", current_rating=3, overdue=False))
    reply = read("2.1 2 Panel met\n1.1.1 no change", asked)
    assert [(a.ref, a.note) for a in reply.accepted] == [("2.1", "Panel met")]
    assert [r.reason.split("?")[0] for r in reply.rejected] == [
        "unknown reference 1.1.1: did you mean 1.1-1"
    ]


def test_an_unrelated_reference_gets_no_suggestion() -> None:
    """A reference that is no asked one in other clothes gets the plain reason."""
    assert "did you mean" not in reason("7.7 2 Panel met")


def test_a_number_starting_a_note_is_not_taken_for_a_reference() -> None:
    """`21 workshops held` after a blank line is not read as a misspelt `2.1`."""
    asked = (AskedMilestone("2.1", current_rating=None, overdue=False),)
    assert read("21 workshops held", asked) == ParsedReply((), ())


def test_no_change_reconfirms_the_latest_rating_note_and_support() -> None:
    """`1.2 no change` records the latest rating again, keeping its note and support ask."""
    asked = (
        AskedMilestone(
            "1.2",
            current_rating=2,
            overdue=False,
            latest_rating=2,
            latest_note="Panel met",
            latest_support=True,
        ),
    )
    line = one("1.2 no change", asked)
    assert (line.rating, line.note, line.needs_support) == (2, "Panel met", True)
    line = one("1.2 No change - still waiting on the board", asked)
    assert (line.rating, line.note) == (2, "still waiting on the board")


def test_no_change_on_an_overdue_milestone_asks_for_a_note() -> None:
    """`no change` on an overdue milestone rated 3 is sent back asking for a note; with one
    it is recorded."""
    assert reason("1.1-1 no change", (OVERDUE_3,)).startswith("a note is required")
    assert one("1.1-1 unchanged; waiting on the panel", (OVERDUE_3,)).rating == 3


def test_no_change_alone_covers_every_milestone_not_answered() -> None:
    """`No change` on a line of its own re-confirms every asked milestone the reply does not
    answer itself, only those the writer may answer, and says which it could not."""
    asked = (
        AskedMilestone("1.1a", current_rating=3, overdue=False),
        AskedMilestone("1.2", current_rating=2, overdue=False),
        AskedMilestone("W1.2", current_rating=None, overdue=False),
        AskedMilestone("2.1", current_rating=4, overdue=False),
    )
    reply = parse_reply(
        "1.1a 2 Panel met\n\nNo change for the rest.",
        asked,
        today=TODAY,
        answerable={"1.1a", "1.2", "W1.2"},
    )
    assert [(line.ref, line.rating) for line in reply.accepted] == [("1.1a", 2), ("1.2", 2)]
    [never] = reply.rejected
    assert never.text == "No change for the rest. (W1.2)"
    assert "no rating yet" in never.reason


def test_judge_answer_is_the_note_rule_for_any_channel() -> None:
    """A Slack click or form line is judged like an email line: worse without a note is sent
    back; "no change" in a note takes the latest rating."""
    asked = AskedMilestone("1.2", current_rating=2, overdue=False)
    assert isinstance(judge_answer(asked, ReplyLine("1.2", 3, None, None, False, 0)), str)
    kept = judge_answer(asked, ReplyLine("1.2", None, "No change", None, False, 0))
    assert isinstance(kept, ReplyLine)
    assert kept.rating == 2


def test_our_own_confirmation_lines_are_not_answers() -> None:
    """A confirmation quoted inline (no quote marks) is cut off before it is read: its item
    lines would otherwise be taken as answers."""
    text = (
        "I am out of the office until Monday.\n\n"
        "Hello Joe Bannham,\n\n"
        "Thank you. Recorded from your reply:\n\n"
        "  1.2: rating 2 (Largely achieved, some tasks outstanding), needs support\n"
        "      note: Panel met\n"
    )
    assert read(strip_our_text(text)) == ParsedReply((), ())
    only_item = "Auto reply\n1.2: rating 3 (In progress), revised date 31 Jan 2027\n"
    assert strip_our_text(only_item) == "Auto reply"
    assert strip_our_text("1.2: rating 3 (mostly fine)") == "1.2: rating 3 (mostly fine)"
    assert quotes_our_confirmation("> Nothing could be recorded from your reply.")
    assert not quotes_our_confirmation("1.2 3 Nothing to add")


def test_a_note_with_an_nhs_number_is_sent_back_in_every_channel() -> None:
    """`judge`, which every channel calls, refuses a note carrying a valid NHS number and
    names the kind of detail, never the number."""
    milestone = AskedMilestone("1.2", current_rating=3, overdue=False)
    judged = judge(milestone, ReplyLine("1.2", 2, "Seen re 943 476 5919 today", None, False, 1))
    assert isinstance(judged, LineRefusal)
    assert judged.refusal is Refusal.CHILD_DETAILS
    assert "NHS number" in judged.reason
    assert "5919" not in judged.reason


def test_a_plans_own_case_numbers_are_refused_only_where_the_plan_sets_them() -> None:
    """`LCS-123456` passes as ordinary text, and is refused once the plan's pattern names
    such numbers."""
    milestone = AskedMilestone("1.2", current_rating=3, overdue=False)
    line = ReplyLine("1.2", 2, "Audit of LCS-123456 done", None, False, 1)
    assert judge(milestone, line) == line
    judged = judge(milestone, line, case_numbers=case_number_pattern(r"LCS-\d{6}"))
    assert isinstance(judged, LineRefusal)
    assert "case number" in judged.reason


def test_evidence_goes_only_with_an_achieved_rating() -> None:
    """Evidence of impact is kept with a rating of 1, and sent back with any other rating,
    saying to put it in the note instead."""
    milestone = AskedMilestone("1.2", current_rating=2, overdue=False)
    achieved = ReplyLine("1.2", 1, "Done", None, False, 1, evidence="Fewer repeat referrals")
    assert judge(milestone, achieved) == achieved
    judged = judge(milestone, ReplyLine("1.2", 2, "Nearly", None, False, 1, evidence="Some"))
    assert isinstance(judged, LineRefusal)
    assert judged.refusal is Refusal.EVIDENCE_NOT_ACHIEVED
    assert "rating of 1" in judged.reason
    assert "note" in judged.reason


def test_no_change_on_an_achieved_milestone_keeps_its_evidence() -> None:
    """`No change` on a milestone already rated 1 may carry evidence: the kept rating is 1."""
    milestone = AskedMilestone("1.2", current_rating=1, overdue=False)
    kept = judge(milestone, ReplyLine("1.2", None, "No change", None, False, 1, evidence="x"))
    assert isinstance(kept, ReplyLine)
    assert (kept.rating, kept.evidence) == (1, "x")


def test_evidence_with_a_childs_details_is_sent_back() -> None:
    """Evidence travels into board packs: one naming a child's NHS number is sent back to be
    rephrased, like a note, saying it is the evidence, without repeating the number."""
    milestone = AskedMilestone("1.2", current_rating=2, overdue=False)
    line = ReplyLine("1.2", 1, "Done", None, False, 1, evidence="943 476 5919 now settled")
    judged = judge(milestone, line)
    assert isinstance(judged, LineRefusal)
    assert judged.refusal is Refusal.CHILD_DETAILS
    assert "5919" not in judged.reason
    assert judged.reason.startswith("this evidence looks like it holds a child's details")
    assert judged.about_evidence


def test_a_refusal_is_placed_beside_the_field_it_is_about() -> None:
    """A form shows evidence refused for its rating, or for a child's details only it holds,
    beside the evidence field; details in the note, and the note rule, beside the note."""
    from bot.domain.replies import refused_field

    milestone = AskedMilestone("1.2", current_rating=2, overdue=True)
    cases = {
        ReplyLine("1.2", 2, "Nearly", None, False, 0, evidence="Some"): "evidence",
        ReplyLine("1.2", 1, "Done", None, False, 0, evidence="943 476 5919 ok"): "evidence",
        ReplyLine("1.2", 1, "943 476 5919 ok", None, False, 0, evidence="Fine"): "note",
        ReplyLine("1.2", 1, "943 476 5919", None, False, 0, evidence="9434765919"): "note",
        ReplyLine("1.2", 3, None, None, False, 0, evidence=None): "note",
    }
    for line, field_name in cases.items():
        judged = judge(milestone, line)
        assert isinstance(judged, LineRefusal)
        assert refused_field(judged) == field_name, line


def test_evidence_on_a_following_line_is_recorded_with_a_rating_of_1() -> None:
    """`evidence:` on the line after an achieved item is that milestone's evidence of impact,
    apart from its note."""
    [answer] = read("1.2 1 Commissioned\n evidence: waiting times down from 12 to 6 weeks").accepted
    assert (answer.rating, answer.note) == (1, "Commissioned")
    assert answer.evidence == "waiting times down from 12 to 6 weeks"


def test_evidence_on_the_items_own_line_runs_to_the_items_end() -> None:
    """`evidence:` right after the rating takes the rest of the item, links and wrapped lines
    too, and the next item is read as usual."""
    reply = read(
        "1.2 1 evidence: see https://example.org/report?year=2026\nand the survey\n"
        "W1.2 2 - Evidence of impact: nothing yet"
    )
    first = reply.accepted[0]
    assert (first.ref, first.rating, first.note) == ("1.2", 1, None)
    assert first.evidence == "see https://example.org/report?year=2026 and the survey"
    assert reply.rejected[0].refusal is Refusal.EVIDENCE_NOT_ACHIEVED


def test_evidence_with_another_rating_is_sent_back_and_the_rest_recorded() -> None:
    """Evidence given with a rating of 2 sends that item back saying why; the reply's other
    lines are still recorded."""
    reply = read("1.2 2 Nearly there\nevidence: fewer referrals\n\n1.1a 2 Review done")
    assert [line.ref for line in reply.accepted] == ["1.1a"]
    [rejected] = reply.rejected
    assert rejected.text == "1.2 2 Nearly there\nevidence: fewer referrals"
    assert rejected.refusal is Refusal.EVIDENCE_NOT_ACHIEVED
    assert "rating of 1" in rejected.reason


def test_evidence_is_read_as_written_not_as_dates_or_support() -> None:
    """A date or `need support` after `evidence:` belongs to the evidence; before it they
    are read as usual."""
    [answer] = read("1.2 1 done - need support - evidence: seen by 14 Dec, help offered").accepted
    assert answer.needs_support is True
    assert answer.revised_due is None
    assert answer.evidence == "seen by 14 Dec, help offered"


def test_evidence_after_a_blank_line_belongs_to_the_last_item() -> None:
    """An `evidence:` line set apart by a blank line is still the last item's evidence, not
    text after the item's end; other text there is still ignored."""
    reply = read("1.1a 2 Review done\n1.2 1 Commissioned\n\nEvidence: waits halved\n\nJo")
    assert [(line.ref, line.evidence) for line in reply.accepted] == [
        ("1.1a", None),
        ("1.2", "waits halved"),
    ]
    assert read("Evidence: waits halved\n1.2 1 Commissioned").accepted[0].evidence is None


def test_empty_evidence_is_sent_back() -> None:
    """`evidence:` with nothing after it is sent back saying what to write."""
    [rejected] = read("1.2 1 Commissioned\nevidence:").rejected
    assert "children and families" in rejected.reason
    assert read("1.2 1 Commissioned\nevidence:").accepted == ()


def test_evidence_over_the_limit_is_sent_back() -> None:
    """Evidence longer than a note may be is sent back, suggesting a link instead."""
    [rejected] = read("1.2 1 done\nevidence: " + "x" * (NOTE_LIMIT + 1)).rejected
    assert "link" in rejected.reason


def test_evidence_without_a_rating_says_to_rate_it_1() -> None:
    """Evidence with no rating chosen is sent back asking for a rating of 1 with it, not
    saying the milestone "is rated nothing"."""
    milestone = AskedMilestone("1.2", current_rating=1, overdue=False)
    judged = judge(milestone, ReplyLine("1.2", None, None, None, False, 0, evidence="Waits down"))
    assert isinstance(judged, LineRefusal)
    assert judged.about_evidence
    assert "rate 1.2 1 with it" in judged.reason
    assert "nothing" not in judged.reason
