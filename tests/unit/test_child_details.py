"""Finding a child's identifiers in a note: what is caught, and ordinary plan text that is not."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.child_details import (
    Kind,
    case_number_pattern,
    child_details,
    nhs_number_valid,
    rephrase_reason,
)


def kinds(note: str, pattern: str | None = None) -> list[Kind]:
    compiled = case_number_pattern(pattern) if pattern else None
    return [d.kind for d in child_details(note, case_numbers=compiled)]


def with_check_digit(nine: str) -> str | None:
    """Nine digits with the check digit that makes them a valid NHS number, if any."""
    total = sum(int(d) * w for d, w in zip(nine, range(10, 1, -1), strict=True))
    check = (11 - total % 11) % 11
    return None if check == 10 else nine + str(check)


@pytest.mark.parametrize(
    "note",
    [
        "Child 9434765919 moved placement",
        "NHS no 943 476 5919 seen by the panel",
        "nhs: 943-476-5919.",
    ],
)
def test_a_valid_nhs_number_is_found_with_or_without_spaces(note: str) -> None:
    """A ten-digit number passing the modulus-11 check is an NHS number, however grouped."""
    assert kinds(note) == [Kind.NHS_NUMBER]


def test_ten_digits_failing_the_check_are_not_an_nhs_number() -> None:
    """A ten-digit number whose check digit is wrong is left alone."""
    assert kinds("Call 9434765918 about the contract") == []
    assert not nhs_number_valid("9434765918")


def test_digits_inside_a_longer_number_are_not_an_nhs_number() -> None:
    """Ten digits inside a longer run (a phone number, an invoice) are not read as one."""
    assert kinds("invoice 19434765919 paid, ref AB9434765919") == []


@pytest.mark.parametrize(
    "note",
    [
        "Boy DOB 03/04/2015 placed out of area",
        "d.o.b. 3.4.15",
        "D.O.B: 12 March 2016",
        "child born 1st Jan 2017 to young parents",
        "born in May 2018",
        "DOB 2015-04-03",
    ],
)
def test_a_date_after_dob_or_born_is_found(note: str) -> None:
    """A date written after DOB, d.o.b. or born is a date of birth."""
    assert kinds(note) == [Kind.DATE_OF_BIRTH]


@pytest.mark.parametrize(
    "note",
    [
        "New service born out of the 2019 review",
        "Review due 03/04/2027; revised date 31/01/27",
        "Stubborn 12 March 2016 backlog",
    ],
)
def test_dates_not_after_a_birth_marker_are_ordinary(note: str) -> None:
    """Due dates, and 'born' without a date after it, are plan text."""
    assert kinds(note) == []


@pytest.mark.parametrize("postcode", ["CH41 6AB", "M1 1AE", "EC1A 1BB", "W1A 0AX", "DN551PT"])
def test_a_full_postcode_is_found(postcode: str) -> None:
    """An outward and inward code together, in capitals, is a postcode."""
    assert kinds(f"Family moved to {postcode} last week") == [Kind.POSTCODE]


@pytest.mark.parametrize(
    "note",
    [
        "Hub opened in CH41 for the district",
        "Phase B1 2nd stage approved",
        "Q1 2027 roll-out across W1 and M1",
        "family moved to ch41 6ab",
    ],
)
def test_districts_and_plan_words_are_not_postcodes(note: str) -> None:
    """A district alone, lower-case text and quarter names are not postcodes."""
    assert kinds(note) == []


def test_the_plans_case_number_pattern_is_found() -> None:
    """A plan's own case-number pattern catches its case numbers, and only with it set."""
    note = "Audit of case LCS-123456 complete"
    assert kinds(note, r"LCS-\d{6}") == [Kind.CASE_NUMBER]
    assert kinds(note) == []


def test_a_bad_or_empty_matching_pattern_is_refused() -> None:
    """A pattern that is not a regex, or matches empty text, is refused with a reason."""
    with pytest.raises(ValueError, match="regular expression"):
        case_number_pattern("LCS-(")
    with pytest.raises(ValueError, match="empty"):
        case_number_pattern(r"\d*")


def test_every_finding_is_reported_in_order() -> None:
    """Several identifiers in one note are each found, in the order they appear."""
    note = "DOB 01/02/2014, CH41 6AB, NHS 9434765919"
    assert kinds(note) == [Kind.DATE_OF_BIRTH, Kind.POSTCODE, Kind.NHS_NUMBER]


def test_the_reason_names_the_kinds_but_never_the_values() -> None:
    """A lead is told what kind of detail was found, never the detail itself."""
    found = child_details("DOB 01/02/2014 at CH41 6AB")
    reason = rephrase_reason(found)
    assert "date of birth and postcode" in reason
    assert "rephrase" in reason
    assert "CH41" not in reason
    assert "2014" not in reason


@given(st.from_regex(re.compile(r"[0-9]{9}"), fullmatch=True), st.sampled_from(["", " ", "-"]))
def test_any_number_with_its_check_digit_is_found(nine: str, sep: str) -> None:
    """Every nine digits completed with their check digit are found, in every grouping."""
    number = with_check_digit(nine)
    if number is None:  # these nine digits have no check digit: no NHS number starts so
        assert not any(nhs_number_valid(nine + str(d)) for d in range(10))
        return
    written = f"{number[:3]}{sep}{number[3:6]}{sep}{number[6:]}"
    assert kinds(f"child {written} seen") == [Kind.NHS_NUMBER]


@given(st.from_regex(re.compile(r"[0-9]{9}"), fullmatch=True))
def test_exactly_one_last_digit_makes_a_valid_number(nine: str) -> None:
    """Of the ten possible last digits, at most one passes the check."""
    assert sum(nhs_number_valid(nine + str(d)) for d in range(10)) <= 1


WORDS = st.sampled_from(
    ["review", "board", "quarterly", "in", "progress", "QA", "audit", "31/05/18", "Q1",
     "2027", "CH41", "roll-out", "EHCP", "SEND", "new", "out", "of", "the", "plan", "3"]
)  # fmt: skip


@given(st.lists(WORDS, max_size=12).map(" ".join))
def test_ordinary_plan_text_is_never_refused(note: str) -> None:
    """Notes made of ordinary plan words and dates are never taken for a child's details."""
    assert kinds(note) == []
