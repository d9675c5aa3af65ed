"""What a re-imported sheet's rating and note do to a milestone (bot.domain.reimport)."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.reimport import Answer, Progress, decide

JOE = Answer("Joe Bannham", 2, "Agreed; sign-off next week", date(2018, 6, 4))
ratings = st.one_of(st.none(), st.integers(1, 4))
notes = st.one_of(st.none(), st.text(max_size=20))


def test_a_differing_sheet_rating_keeps_the_answer_and_says_so() -> None:
    """The sheet's 3 against Joe's answer of 2 is not recorded, and the report says why."""
    decision = decide("1.1-1", Progress(3, None), Progress(2, JOE.note), JOE)
    assert not decision.record
    assert decision.conflict == (
        "1.1-1: the sheet says 3, Joe Bannham answered 2 on 4 Jun 2018; kept the answer"
    )


def test_prefer_sheet_records_the_sheet_and_still_lists_the_difference() -> None:
    """With --prefer-sheet the sheet's value is recorded, and the report names the answer
    it replaced."""
    decision = decide("1.1-1", Progress(3, None), Progress(2, JOE.note), JOE, prefer_sheet=True)
    assert decision.record
    assert decision.conflict is not None
    assert decision.conflict.endswith("took the sheet's (--prefer-sheet)")


def test_a_differing_sheet_note_is_a_conflict_too() -> None:
    """A sheet note that differs from the answer's is listed with both notes, shortened."""
    decision = decide("2.1", Progress(2, "Board minutes say otherwise"), Progress(2, "Done"), JOE)
    assert not decision.record
    assert decision.conflict == (
        '2.1: the sheet\'s note is "Board minutes say otherwise", Joe Bannham answered '
        '"Agreed; sign-off next week" on 4 Jun 2018; kept the answer'
    )


def test_a_blank_sheet_cell_says_nothing_against_an_answer() -> None:
    """The sheet's same rating with no note neither records nor conflicts (an export of the
    plan, re-imported, is exactly this)."""
    assert decide("1.1-1", Progress(2, None), Progress(2, "Agreed"), JOE) == (False, None)


def test_sheet_only_milestones_take_the_sheets_value_when_it_differs() -> None:
    """A milestone never answered by a person takes the sheet's rating or note when either
    differs from what is stored, and nothing when both are the same."""
    assert decide("3.1", Progress(2, None), Progress(3, None), None).record
    assert decide("3.1", Progress(3, "new"), Progress(3, None), None).record
    assert decide("3.1", Progress(3, None), Progress(3, "old"), None).record
    assert decide("3.1", Progress(3, "same"), Progress(3, "same"), None) == (False, None)
    assert decide("3.1", Progress(3, None), None, None).record


@given(ratings, notes, ratings, notes)
def test_an_answer_is_never_overwritten_without_prefer_sheet(
    sheet_rating: int | None,
    sheet_note: str | None,
    stored_rating: int | None,
    stored_note: str | None,
) -> None:
    """Whatever the sheet and the store say, a milestone with an answer records nothing from
    the sheet unless the sheet is preferred; and any difference is reported."""
    sheet = Progress(sheet_rating, sheet_note)
    stored = Progress(stored_rating, stored_note)
    decision = decide("1.1", sheet, stored, JOE)
    assert not decision.record
    preferred = decide("1.1", sheet, stored, JOE, prefer_sheet=True)
    assert preferred.record == (preferred.conflict is not None)
    assert (decision.conflict is None) == (preferred.conflict is None)
