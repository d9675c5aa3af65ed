"""The update page's pure parts (issue 14): reading its form, the client behind a trusted
proxy, the slowing of unknown tokens, and link tokens and their CSRF tokens."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from bot.messages.web_forms import read_absence, read_update
from bot.messages.web_links import csrf_token, csrf_valid, link_hash, new_link_token, well_formed
from bot.signing import Signer
from handlers.web.server import Throttle, client_address, trusted_networks

TODAY = date(2026, 11, 23)
SIGNER = Signer("Vq3xN8r2LmT7pZs1Kd6Wf0Hj4Yc9Ba5E")


def test_the_form_gives_one_answer_per_milestone_given() -> None:
    """Filled milestones become answers; a blank one is left as it is."""
    draft = read_update(
        {"m1-rating": "2", "m1-note": " Done ", "m2-rating": "", "m3-note": "Waiting",
         "m3-revised": "31/01/2027", "m3-support": "on"},
        ["1.1", "1.2", "2.3"],
        today=TODAY,
    )  # fmt: skip
    assert not draft.errors
    assert [(x.ref, x.rating, x.note, x.revised_due, x.needs_support) for x in draft.lines] == [
        ("1.1", 2, "Done", None, False),
        ("2.3", None, "Waiting", date(2027, 1, 31), True),
    ]


def test_bad_fields_are_named_by_their_ids() -> None:
    """A rating outside 1–4, a date that is not one or is past, and support with nothing
    else are each an error on its own field."""
    draft = read_update(
        {"m1-rating": "5", "m2-rating": "3", "m2-revised": "31/02/2027",
         "m3-rating": "1", "m3-revised": "01/01/2020", "m4-support": "on"},
        ["a", "b", "c", "d"],
        today=TODAY,
    )  # fmt: skip
    assert set(draft.errors) == {"m1-rating-1", "m2-revised", "m3-revised", "m4-rating-1"}


def test_evidence_is_read_with_its_milestone() -> None:
    """The evidence field of a milestone goes on its answer; evidence with nothing else, or
    longer than a note may be, is an error on the evidence field itself."""
    draft = read_update(
        {"m1-rating": "1", "m1-evidence": " Waiting times halved ",
         "m2-evidence": "Fewer referrals", "m3-rating": "1", "m3-evidence": "x" * 2001},
        ["1.1", "1.2", "2.3"],
        today=TODAY,
    )  # fmt: skip
    assert [(x.ref, x.evidence) for x in draft.lines] == [
        ("1.1", "Waiting times halved"),
        ("2.3", "x" * 2001),
    ]
    assert set(draft.errors) == {"m2-evidence", "m3-evidence"}
    assert "rating of 1" in draft.errors["m2-evidence"]
    assert draft.values["m1-evidence"] == "Waiting times halved"


def test_the_page_reads_a_date_as_an_email_reply_does() -> None:
    """A revised date or a return date written "Jan 2027" or "14th Dec 2026" is read on the
    update page as in an email reply or `/pulse away`, not refused as no date."""
    draft = read_update(
        {"m1-rating": "3", "m1-revised": "Jan 2027", "m2-rating": "2",
         "m2-revised": "14th Dec 2026"},
        ["1.1", "1.2"],
        today=TODAY,
    )  # fmt: skip
    assert not draft.errors
    assert [x.revised_due for x in draft.lines] == [date(2027, 1, 31), date(2026, 12, 14)]
    away = read_absence({"away": "Jan 2027"}, people=[], own_key="AW", today=TODAY)
    assert (away.away_until, away.errors) == (date(2027, 1, 31), {})


def test_an_empty_form_asks_for_one_answer() -> None:
    """Submitting nothing is an error, not an empty success."""
    assert read_update({}, ["1.1"], today=TODAY).errors == {
        "m1-rating-1": "Choose a rating or write a note for at least one milestone"
    }


def test_the_absence_form_takes_a_known_delegate_and_a_future_date() -> None:
    """The delegate must be someone listed other than oneself; the date today or later."""
    ok = read_absence(
        {"away": "31/12/2026", "delegate": "PB"}, people=["PB"], own_key="AW", today=TODAY
    )
    assert (ok.away_until, ok.delegate, ok.errors) == (date(2026, 12, 31), "PB", {})
    bad = read_absence(
        {"away": "1/1/2020", "delegate": "AW"}, people=["PB"], own_key="AW", today=TODAY
    )
    assert set(bad.errors) == {"away", "delegate"}


def test_forwarded_for_is_believed_only_from_a_trusted_proxy() -> None:
    """The client is the peer, unless the peer is a trusted proxy: then the nearest
    untrusted address in X-Forwarded-For (what a client prepends itself is ignored)."""
    trusted = trusted_networks("10.0.0.0/8, 127.0.0.1")
    assert client_address("203.0.113.5", "1.2.3.4", trusted) == "203.0.113.5"
    assert client_address("127.0.0.1", "6.6.6.6, 198.51.100.7", trusted) == "198.51.100.7"
    assert client_address("127.0.0.1", "198.51.100.7, 10.1.2.3", trusted) == "198.51.100.7"
    assert client_address("127.0.0.1", None, trusted) == "127.0.0.1"


def test_unknown_tokens_are_slowed_per_client_until_the_window_passes() -> None:
    """Ten failures in ten minutes make a client wait; others do not; it ends in time."""
    now = [datetime(2026, 11, 23, 9, tzinfo=UTC)]
    throttle = Throttle(lambda: now[0], allowed=10, window=timedelta(minutes=10))
    for _ in range(10):
        assert throttle.wait("a") == 0
        throttle.failed("a")
    assert 0 < throttle.wait("a") <= 601
    assert throttle.wait("b") == 0
    now[0] += timedelta(minutes=10)
    assert throttle.wait("a") == 0


def test_link_tokens_are_long_random_and_their_csrf_is_bound_to_them() -> None:
    """A token has 256 random bits; its stored hash needs the key; a CSRF token made for
    one link does not pass for another."""
    first, second = new_link_token(), new_link_token()
    assert first != second
    assert well_formed(first)
    assert not well_formed(first[:-1])
    assert len(link_hash(first, SIGNER)) == 64
    assert link_hash(first, SIGNER) != link_hash(first, Signer("p9Lr2Wq7Zx4Nc8Vb1Mt6Ks3Jd0Hf5GaR"))
    one, two = link_hash(first, SIGNER), link_hash(second, SIGNER)
    assert csrf_valid(one, csrf_token(one, SIGNER), SIGNER)
    assert not csrf_valid(two, csrf_token(one, SIGNER), SIGNER)
