"""Which stored action a re-imported one is: by reference, or by title where it has none."""

from __future__ import annotations

from bot.domain.matching import Incoming, Stored, match, title_key


def _stored(*titles: str, group: int = 1) -> list[Stored]:
    return [Stored(10 + n, group, f"{group}.{n + 1}", t) for n, t in enumerate(titles)]


def _incoming(*titles: str, group: int = 1) -> list[Incoming]:
    return [Incoming(group, f"{group}.{n + 1}", t, by_title=True) for n, t in enumerate(titles)]


def test_a_row_inserted_above_keeps_each_action_its_stored_row() -> None:
    """An action inserted first is new; the others keep their rows under references one on."""
    found = match(_incoming("New work", "Audit", "Train"), _stored("Audit", "Train"))
    assert found.ids == (None, 10, 11)
    assert [str(r) for r in found.renumbered] == ["1.1 is now 1.2: Audit", "1.2 is now 1.3: Train"]
    assert found.aside == {}


def test_titles_match_after_folding_case_spaces_and_quotes() -> None:
    """Case, runs of spaces and curly quotes do not make a different action."""
    assert title_key("  Review the  ‘front door’ ") == title_key("review the 'FRONT door'")
    found = match(_incoming("Review the  ‘front door’"), _stored("review the 'front door'"))
    assert found.ids == (10,)
    assert found.renumbered == ()


def test_an_edited_title_is_a_new_action_and_the_old_one_is_retired() -> None:
    """A title edited between imports is not matched by its place: the old row is left
    unmatched (retired by the importer) and its reference moved aside for the new one."""
    found = match(_incoming("Audit all assessments"), _stored("Audit assessments"))
    assert found.ids == (None,)
    assert found.claimed == frozenset()
    assert found.aside == {10: "1.1~10"}


def test_titles_match_only_within_their_priority() -> None:
    """The same title under another priority is another action."""
    found = match(_incoming("Audit", group=2), _stored("Audit", group=1))
    assert found.ids == (None,)


def test_given_references_match_by_reference_whatever_the_title() -> None:
    """A plan with a reference column keeps matching by reference; titles may change."""
    incoming = [Incoming(1, "1.1", "Audit everything", by_title=False)]
    assert match(incoming, _stored("Audit")).ids == (10,)


def test_repeated_titles_pair_in_order_and_live_rows_come_before_retired() -> None:
    """Two actions of one title take the stored ones in order; a restored action takes
    back a retired row only when no live one is left."""
    stored = [
        Stored(1, 1, "1.1", "Report", retired=True),
        Stored(2, 1, "1.2", "Report"),
        Stored(3, 1, "1.3", "Report"),
    ]
    found = match(_incoming("Report", "Report", "Report"), stored)
    assert found.ids == (2, 3, 1)
    assert [str(r) for r in found.renumbered] == [
        "1.2 is now 1.1: Report",
        "1.3 is now 1.2: Report",
    ]


def test_rows_swapped_keep_their_answers() -> None:
    """Two rows swapped in the table swap references, each keeping its stored row."""
    found = match(_incoming("Train", "Audit"), _stored("Audit", "Train"))
    assert found.ids == (11, 10)
    assert found.aside == {}
