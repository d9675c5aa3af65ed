"""Outbound email bytes: valid MIME that any client parses, with the headers and tokens
replies are matched by, and user text escaped in the HTML part."""

from __future__ import annotations

from datetime import UTC, date, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.cycles import PromptItem
from bot.domain.model import Contact, Person, Plan
from bot.domain.replies import (
    AskedMilestone,
    RejectedLine,
    ReplyLine,
    parse_reply,
    quotes_our_confirmation,
    strip_our_text,
)
from bot.domain.status import MilestoneStatus
from bot.messages.emails import (
    confirmation_email,
    find_tokens,
    new_token,
    prompt_email,
    token_hash,
)

NOW = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
PLAN = Plan("wirral", "Wirral Children and Young People's Improvement Plan 2017-2019")
PERSON = Person("JB", "Joe Bannham", "joe.bannham@wirral.example")


def item(ref: str, note: str | None = None, title: str = "Agree next phase") -> PromptItem:
    return PromptItem(
        ref,
        ref.split("-")[0],
        title,
        date(2026, 11, 30),
        MilestoneStatus.DUE_SOON,
        (),
        3,
        note,
        0,
        "JB",
    )


def parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=default)
    assert isinstance(message, EmailMessage)
    assert message.defects == []
    for part in message.walk():
        assert part.defects == []
    return message


def test_prompt_is_multipart_text_and_html_with_reply_headers() -> None:
    """A prompt parses without defects into text and HTML parts, with the headers that keep
    auto-replies away and the token replies are matched by."""
    token = new_token()
    out = prompt_email(
        plan=PLAN,
        person=PERSON,
        items=[item("1.1-1")],
        token=token,
        mail_from="Plan Pulse <pulse@wirral.example>",
        now=NOW,
    )
    message = parse(out.raw)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "OOF, AutoReply"
    assert message["Message-ID"] == out.message_id
    assert out.message_id.endswith("@wirral.example>")
    assert str(message["To"]) == "Joe Bannham <joe.bannham@wirral.example>"
    assert find_tokens(str(message["Subject"])) == [token]
    assert find_tokens(out.message_id) == [token]
    assert b"\r\n" in out.raw
    assert b"\n" not in out.raw.replace(b"\r\n", b"")


def test_prompt_shows_the_last_revised_date_and_support_ask() -> None:
    """A milestone's last answers' revised date and support ask are shown with its last
    rating and note, in the text and the HTML part alike; a milestone without them shows
    neither."""
    asked = PromptItem(
        "1.1-1",
        "1.1",
        "Agree next phase",
        date(2026, 11, 30),
        MilestoneStatus.OVERDUE,
        (),
        3,
        "Waiting on partners",
        5,
        "JB",
        revised_due=date(2027, 1, 31),
        needs_support=True,
    )
    out = prompt_email(
        plan=PLAN,
        person=PERSON,
        items=[asked, item("1.1-2")],
        token=new_token(),
        mail_from="pulse@wirral.example",
        now=NOW,
    )
    text, html = (p.get_content() for p in parse(out.raw).iter_parts())
    assert "last answer: revised date 31 Jan 2027 · support asked" in text
    assert text.count("last answer:") == 1
    assert "revised date 31 Jan 2027 · support asked</span>" in html
    assert html.count("support asked") == 1


def test_reminder_threads_under_the_prompt() -> None:
    """A reminder says so in its subject and points at the prompt it follows."""
    out = prompt_email(
        plan=PLAN,
        person=PERSON,
        items=[item("1.1-1")],
        token=new_token(),
        mail_from="pulse@wirral.example",
        now=NOW,
        reminder=True,
        in_reply_to="<pp.abc.prompt@wirral.example>",
    )
    message = parse(out.raw)
    assert str(message["Subject"]).startswith("Reminder:")
    assert message["In-Reply-To"] == "<pp.abc.prompt@wirral.example>"


def test_non_ascii_names_and_long_subjects_are_encoded_and_folded() -> None:
    """Accented names and long titles come back intact; no header line exceeds 78 columns."""
    plan = Plan("p", "Plan d'amélioration des services à l'enfance — " + "très long " * 6)
    person = Person("ZO", "Zoë O'Brien", "zoe@council.example")
    out = prompt_email(
        plan=plan,
        person=person,
        items=[item("1.1")],
        token=new_token(),
        mail_from="pulse@council.example",
        now=NOW,
    )
    message = parse(out.raw)
    assert str(message["To"]) == "Zoë O'Brien <zoe@council.example>"
    assert plan.title.split()[0] in str(message["Subject"])
    head = out.raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    assert "Zoë O'Brien" in text.get_content()


@given(st.text(min_size=1, max_size=200))
def test_no_note_breaks_out_of_the_html(note: str) -> None:
    """Whatever a lead wrote, it is shown as text in the HTML part, never as markup."""
    out = prompt_email(
        plan=PLAN,
        person=PERSON,
        items=[item("1.1", note=note + "<b>x</b>")],
        token=new_token(),
        mail_from="pulse@wirral.example",
        now=NOW,
    )
    message = parse(out.raw)
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    content = html.get_content()
    assert "<b>x</b>" not in content
    assert "&lt;b&gt;x&lt;/b&gt;" in content


def test_confirmation_lists_recorded_and_refused_lines() -> None:
    """A confirmation is an auto-reply that says what was recorded and why a line was not."""
    out = confirmation_email(
        plan=PLAN,
        person=PERSON,
        accepted=[ReplyLine("1.1-1", 2, "Signed off", None, False, 1)],
        rejected=[RejectedLine("9.9 1 done", 2, "unknown reference 9.9")],
        token=new_token(),
        mail_from="pulse@wirral.example",
        now=NOW,
        in_reply_to="<reply@x.example>",
    )
    message = parse(out.raw)
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["In-Reply-To"] == "<reply@x.example>"
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "1.1-1: rating 2" in text
    assert "unknown reference 9.9" in text


@pytest.mark.parametrize("token", [new_token() for _ in range(5)])
def test_token_hash_ignores_case(token: str) -> None:
    """A token typed back in lower case is the same token."""
    assert token_hash(token.lower()) == token_hash(token)
    assert len(token) == 26


@given(
    st.sampled_from(["To", "Subject", "In-Reply-To", "X-Auto-Response-Suppress"]),
    st.text(alphabet="ab <>@.[]-", max_size=120),
)
def test_ascii_headers_fold_only_at_spaces_and_only_when_long(name: str, value: str) -> None:
    """An ASCII header unfolds to exactly `Name: value`, and one that fits in 78 columns
    stays on one line."""
    from bot.messages.emails import _fold

    folded = _fold(name, value)
    assert folded.replace("\r\n", "") == f"{name}: {value}"
    if len(name) + 2 + len(value) <= 78:
        assert folded == f"{name}: {value}"


def _plain(raw: bytes) -> str:
    body = parse(raw).get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def test_a_confirmation_that_recorded_nothing_says_not_recorded() -> None:
    """Only a confirmation that recorded something is headed "Recorded"."""
    out = confirmation_email(
        plan=PLAN,
        person=PERSON,
        accepted=[],
        rejected=[RejectedLine("9.9 1 done", 1, "unknown reference 9.9")],
        token=new_token(),
        mail_from="pulse@wirral.example",
        now=NOW,
        in_reply_to=None,
    )
    assert out.subject.startswith("Not recorded: progress update for ")


def test_the_prompt_shows_examples_made_from_its_milestones() -> None:
    """The example lines name the prompt's own first two milestones, not one twice."""
    out = prompt_email(
        plan=PLAN,
        person=PERSON,
        items=[item("1.1-1"), item("1.1-2")],
        token=new_token(),
        mail_from="pulse@wirral.example",
        now=NOW,
    )
    text = _plain(out.raw)
    assert "    1.1-1 in progress - waiting on partner sign-off - revised date 28/02/27" in text
    assert "    1.1-2 2 Strategy review done" in text


def test_our_prompt_and_confirmation_quoted_inline_are_never_answers() -> None:
    """A careless auto-responder that pastes our prompt or confirmation under its own text,
    without quote marks, gives no answer line to read."""
    asked = [AskedMilestone("1.1-1", 3, False), AskedMilestone("1.1-2", 3, False)]
    prompt = prompt_email(
        plan=PLAN,
        person=PERSON,
        items=[item("1.1-1", note="Panel met"), item("1.1-2")],
        token=new_token(),
        mail_from="pulse@wirral.example",
        now=NOW,
        reminder=True,
    )
    confirmation = confirmation_email(
        plan=PLAN,
        person=PERSON,
        accepted=[
            ReplyLine("1.1-1", 2, "Signed off", date(2027, 1, 31), True, 1),
            ReplyLine("1.1-2", None, "Board in January", None, False, 2),
        ],
        rejected=[RejectedLine("1.1-2 9 done", 3, "'9' is not a rating")],
        token=new_token(),
        mail_from="pulse@wirral.example",
        now=NOW,
        in_reply_to=None,
    )
    for out in (prompt, confirmation):
        text = "I am out of the office until Monday.\n\n" + _plain(out.raw)
        reply = parse_reply(strip_our_text(text), asked, today=NOW.date())
        assert (reply.accepted, reply.rejected) == ((), ())
    assert quotes_our_confirmation(_plain(confirmation.raw))


def test_a_prompt_with_a_link_has_a_table_button_and_the_plain_url() -> None:
    """With an update link, the HTML has an "Update in your browser" button built from a
    table cell (as Outlook renders it) and the text part has the URL on its own line."""
    url = "https://pulse.council.example/u/" + "a" * 43
    out = prompt_email(
        plan=PLAN,
        person=PERSON,
        items=[item("1.1-1")],
        token=new_token(),
        mail_from="pulse@wirral.example",
        now=NOW,
        update_url=url,
    )
    message = parse(out.raw)
    text, html = (p.get_content() for p in message.iter_parts())
    assert url in [line.strip() for line in text.splitlines()]
    assert f'<a href="{url}"' in html
    assert 'bgcolor="#1d4f91"' in html
    assert "Update in your browser</a>" in html


def test_a_prompt_without_a_link_has_no_button() -> None:
    """Without an update link the prompt is as before: the reply form alone."""
    out = prompt_email(
        plan=PLAN,
        person=PERSON,
        items=[item("1.1-1")],
        token=new_token(),
        mail_from="pulse@wirral.example",
        now=NOW,
    )
    assert b"Update in your browser" not in out.raw


def test_prompt_and_reminder_name_whom_to_ask_escaped_in_html() -> None:
    """Both parts of a prompt and of its reminder end with whom to ask about the plan; the
    HTML escapes the name and the angle brackets; without contacts neither part has it."""
    contacts = [Contact("Sam & <b>Jo</b>", "plans@wirral.example")]
    for reminder in (False, True):
        message = parse(
            prompt_email(
                plan=PLAN,
                person=PERSON,
                items=[item("1.1-1")],
                token=new_token(),
                mail_from="pulse@wirral.example",
                now=NOW,
                reminder=reminder,
                contacts=contacts,
            ).raw
        )
        text, html = (p.get_content() for p in message.iter_parts())
        assert "Questions about this plan? Contact Sam & <b>Jo</b> <plans@wirral.example>" in text
        assert (
            "Questions about this plan? Contact Sam &amp; &lt;b&gt;Jo&lt;/b&gt; "
            "&lt;plans@wirral.example&gt;"
        ) in html
    bare = parse(
        prompt_email(
            plan=PLAN,
            person=PERSON,
            items=[item("1.1-1")],
            token=new_token(),
            mail_from="pulse@wirral.example",
            now=NOW,
        ).raw
    )
    assert "Questions about" not in bare.as_string()


def test_prompt_and_reminder_say_evidence_may_go_with_a_rating_of_1() -> None:
    """The prompt and its reminder tell the lead, in both parts, that with a rating of 1 they
    may add an `evidence:` line saying what changed for children and families."""
    for reminder in (False, True):
        out = prompt_email(
            plan=PLAN,
            person=PERSON,
            items=[item("1.1-1")],
            token=new_token(),
            mail_from="pulse@wirral.example",
            now=NOW,
            reminder=reminder,
        )
        text, html = (p.get_content() for p in parse(out.raw).iter_parts())
        assert 'With a rating of 1 you may add a line "evidence: what changed for children' in text
        assert "<code>evidence: what changed for children and families</code>" in html
        assert "a link to the evidence" in " ".join(text.split())


def test_confirmation_lists_the_recorded_evidence_escaped_in_html() -> None:
    """A confirmation shows the evidence recorded with an answer, each of its lines under the
    answer in the text part, and as text (never markup) in the HTML part."""
    evidence = "Waiting times <b>halved</b>\nsee https://example.org/r?a=1&b=2"
    out = confirmation_email(
        plan=PLAN,
        person=PERSON,
        accepted=[ReplyLine("1.1-1", 1, "Commissioned", None, False, 1, evidence=evidence)],
        rejected=[],
        token=new_token(),
        mail_from="pulse@wirral.example",
        now=NOW,
        in_reply_to=None,
    )
    text, html = (p.get_content().replace("\r\n", "\n") for p in parse(out.raw).iter_parts())
    assert "      evidence: Waiting times <b>halved</b>\n" in text
    assert "\n                see https://example.org/r?a=1&b=2" in text
    assert "Evidence: Waiting times &lt;b&gt;halved&lt;/b&gt;" in html
    assert "<b>halved</b>" not in html
    assert "a=1&amp;b=2" in html
