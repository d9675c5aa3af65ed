"""Out-of-office return dates and delivery-report classification (bot.domain.autoreplies)."""

from __future__ import annotations

from datetime import date

import pytest

from bot.domain.autoreplies import Bounce, classify_bounces, return_date, verp_recipient

TODAY = date(2026, 6, 1)  # a Monday


@pytest.mark.parametrize(
    ("text", "away_until"),
    [
        ("I will be back on 15 June.", date(2026, 6, 14)),
        ("I am away until Monday 11 June.", date(2026, 6, 11)),
        ("Returning 15/06/2026.", date(2026, 6, 14)),
        ("back in the office on June 15th, 2026", date(2026, 6, 14)),
        ("on leave until 2026-06-19", date(2026, 6, 19)),
        ("back on Monday", date(2026, 6, 7)),
        ("out until 3rd of July", date(2026, 7, 3)),
        ("Je serai de retour le 15 juin.", date(2026, 6, 14)),
        ("Ich bin bis zum 12.06.2026 nicht erreichbar.", date(2026, 6, 12)),
        ("Estaré fuera hasta el 20 de junio.", date(2026, 6, 20)),
        ("Ik ben terug op 15 juni.", date(2026, 6, 14)),
        ("away until 10 January", date(2027, 1, 10)),  # no year: the next one
    ],
)
def test_return_dates_are_read(text: str, away_until: date) -> None:
    """An out-of-office's return date gives the last day away, in several languages."""
    assert return_date(text, today=TODAY) == away_until


@pytest.mark.parametrize(
    "text",
    [
        "I am out of the office with limited access to email.",
        "I was away until 15/05/2026.",  # past
        "back on 31 February",  # no such day
        "back on 15 June 2029",  # more than a year away
        "",
    ],
)
def test_no_usable_return_date(text: str) -> None:
    """Text without a plausible future return date marks nobody away."""
    assert return_date(text, today=TODAY) is None


def test_hard_and_soft_bounces() -> None:
    """5.x.x is hard, 4.x.x or a delayed action soft, and delivered recipients are no failure."""
    found = classify_bounces(
        [
            {"final-recipient": "rfc822; a@x.example", "action": "failed", "status": "5.1.1"},
            {"final-recipient": "rfc822;b@x.example", "action": "delayed", "status": "4.4.7"},
            {"final-recipient": "rfc822; c@x.example", "action": "delivered", "status": "2.0.0"},
        ]
    )
    assert found == (Bounce("a@x.example", True, "5.1.1"), Bounce("b@x.example", False, "4.4.7"))


def test_generic_status_takes_the_diagnostic_detail() -> None:
    """A generic 5.0.0 with a 5.1.1 in the diagnostic reports 5.1.1; no Status uses the SMTP
    reply code."""
    assert classify_bounces(
        [
            {
                "final-recipient": "rfc822; a@x.example",
                "status": "5.0.0",
                "diagnostic-code": "smtp; 550-5.1.1 no such user",
            },
            {"final-recipient": "rfc822; b@x.example", "diagnostic-code": "smtp; 552 full"},
        ]
    ) == (Bounce("a@x.example", True, "5.1.1"), Bounce("b@x.example", True, "5.0.0"))


def test_the_address_we_sent_to_wins_over_a_forwarding_target() -> None:
    """With one failed recipient, the original message's recipient is the one counted;
    otherwise Original-Recipient beats Final-Recipient."""
    fields = {"final-recipient": "rfc822; d@old.example", "status": "5.1.1"}
    assert classify_bounces([fields], sent_to="Dana@Council.example") == (
        Bounce("dana@council.example", True, "5.1.1"),
    )
    both = {**fields, "original-recipient": "rfc822;dana@council.example"}
    assert classify_bounces([both])[0].address == "dana@council.example"


def test_verp_addresses_decode_to_the_recipient() -> None:
    """`pulse+dana=council.example@ours` names dana@council.example; other addresses nothing."""
    own = "pulse@bot.example"
    assert verp_recipient("pulse+dana.cole=council.example@bot.example", own_address=own) == (
        "dana.cole@council.example"
    )
    assert verp_recipient("<Pulse+A=B.example@BOT.example>", own_address=own) == "a@b.example"
    assert verp_recipient("pulse@bot.example", own_address=own) is None
    assert verp_recipient("other+a=b.example@bot.example", own_address=own) is None
    assert verp_recipient("pulse+a=b.example@elsewhere.example", own_address=own) is None
