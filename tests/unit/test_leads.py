"""Lead cells read into person keys against the people directory (DESIGN.md §5)."""

from __future__ import annotations

import pytest
import yaml

from bot.domain.leads import Directory, draft_people, read_leads
from bot.domain.model import Person

PEOPLE = (
    Person(key="AW", name="Alison Walker"),
    Person(key="MC", name="Mark Cooper"),
    Person(key="DC", name="Diane Carter"),
    Person(key="PB", name="Paul Bennett"),
    Person(key="GR", name="Gill Roberts"),
    Person(key="SMurray", name="Sarah Murray"),
    Person(key="JB", name="Joe Bannham"),
)
DIRECTORY = Directory(PEOPLE)


@pytest.mark.parametrize(
    ("cell", "keys"),
    [
        ("AW/MC", ("AW", "MC")),
        ("DC / PB", ("DC", "PB")),
        ("AW, MC", ("AW", "MC")),
        ("MC", ("MC",)),
        ("mc", ("MC",)),
        ("Mark Cooper", ("MC",)),
        ("Paul Bennett / AW", ("PB", "AW")),
    ],
)
def test_keys_and_whole_names_split_on_slashes_and_commas(cell: str, keys: tuple[str, ...]) -> None:
    """A cell of keys or whole names separated by slashes or commas names each person once."""
    reading = read_leads(cell, DIRECTORY)
    assert reading.keys == keys
    assert reading.unknown == ()
    assert reading.warnings == ()


def test_initial_and_surname_resolves_to_the_one_person_who_fits() -> None:
    """In "GR / S Murray" the initial-and-surname part is read as the only S… Murray."""
    reading = read_leads("GR / S Murray", DIRECTORY)
    assert reading.keys == ("GR", "SMurray")
    assert reading.unknown == ()


def test_job_title_after_a_dash_is_dropped() -> None:
    """A job title after a dash is dropped: "Joe Bannham - Head of …" is Joe Bannham."""
    reading = read_leads("Joe Bannham - Head of Practice Improvement", DIRECTORY)
    assert reading.keys == ("JB",)
    assert reading.unknown == ()


def test_cyrillic_lookalike_initials_are_folded_with_a_warning() -> None:
    """A Cyrillic "МС" is read as MC and reported, never made into a new person."""
    cell = "\u041c\u0421"  # CYRILLIC CAPITAL EM, CYRILLIC CAPITAL ES
    assert cell != "MC"
    reading = read_leads(cell, DIRECTORY)
    assert reading.keys == ("MC",)
    assert reading.unknown == ()
    assert len(reading.warnings) == 1


def test_cyrillic_lookalike_inside_a_joint_lead_cell() -> None:
    """A look-alike part among Latin ones is folded too: "AW/МС" is AW and MC, with a warning."""
    reading = read_leads("AW/\u041c\u0421", DIRECTORY)
    assert reading.keys == ("AW", "MC")
    assert reading.warnings


def test_unknown_initials_are_reported_not_invented() -> None:
    """A part that matches no one is listed in `unknown`; the known parts still resolve."""
    reading = read_leads("AW/XY", DIRECTORY)
    assert reading.keys == ("AW",)
    assert reading.unknown == ("XY",)


def test_ambiguous_initial_and_surname_is_reported_never_guessed() -> None:
    """An "S Murray" that two people fit (Sarah and Steve) is unknown, never a guess."""
    directory = Directory((*PEOPLE, Person(key="StM", name="Steve Murray")))
    reading = read_leads("GR / S Murray", directory)
    assert reading.keys == ("GR",)
    assert reading.unknown == ("S Murray",)


def test_ambiguous_initial_and_surname_alone() -> None:
    """A cell that is only an ambiguous "S Murray" names nobody and reports the cell."""
    directory = Directory((*PEOPLE, Person(key="StM", name="Steve Murray")))
    reading = read_leads("S Murray", directory)
    assert reading.keys == ()
    assert reading.unknown == ("S Murray",)


def test_list_of_leads_from_a_yaml_plan() -> None:
    """A YAML plan's list of leads (keys or names) is read item by item."""
    leads = yaml.safe_load("leads: [AW, Mark Cooper, GR / PB]")["leads"]
    assert isinstance(leads, list)
    reading = read_leads(leads, DIRECTORY)
    assert reading.keys == ("AW", "MC", "GR", "PB")
    assert reading.unknown == ()


def test_a_person_named_twice_is_listed_once() -> None:
    """The same person by key and by name is one lead."""
    reading = read_leads("MC / Mark Cooper", DIRECTORY)
    assert reading.keys == ("MC",)


def test_empty_cell_names_nobody_and_reports_nothing() -> None:
    """An empty lead cell gives no keys; the "no lead" warning belongs to the importer."""
    reading = read_leads("  ", DIRECTORY)
    assert reading.keys == ()
    assert reading.unknown == ()


PLAN_PEOPLE = Directory(
    (
        Person(key="CMc", name="Claire McCarthy"),
        Person(key="AW", name="Alison Walker"),
        Person(key="MC", name="Mark Cooper"),
        Person(key="SP", name="Sam Patel"),
        Person(key="Ben", name="Ben Jones"),
        Person(key="Ben Sd", name="Ben Sandford"),
        Person(key="Sd", name="Sue Dean"),
        Person(key="S Murray", name="Sarah Murray"),
        Person(key="SLI Board", name="Sector-Led Improvement Board"),
        Person(key="NWADCS", name="North West ADCS"),
        Person(key="NW Chief Executives' Network", name="NW Chief Executives' Network"),
    )
)


@pytest.mark.parametrize(
    ("cell", "keys"),
    [
        ("CMc AW MC", ("CMc", "AW", "MC")),
        ("SP Ben Sd", ("SP", "Ben Sd")),
        ("Ben Sd", ("Ben Sd",)),
        ("s  murray / AW", ("S Murray", "AW")),
        ("SLI Board & MC", ("SLI Board", "MC")),
        ("AW; MC and CMc", ("AW", "MC", "CMc")),
    ],
)
def test_words_are_read_by_longest_match(cell: str, keys: tuple[str, ...]) -> None:
    """A part that is no one's whole key or name is read as the longest keys its words spell."""
    reading = read_leads(cell, PLAN_PEOPLE)
    assert reading.keys == keys
    assert reading.unknown == ()


def test_who_should_be_involved_drops_connecting_words_and_curly_quotes_match() -> None:
    """ "SLI Board, working with NWADCS and the NW Chief Executives’ Network." names three."""
    cell = "SLI Board, working with\n\nNWADCS and the NW Chief Executives\u2019 Network."
    reading = read_leads(cell, PLAN_PEOPLE)
    assert reading.keys == ("SLI Board", "NWADCS", "NW Chief Executives' Network")
    assert reading.unknown == ()


def test_a_word_nobody_is_called_leaves_the_part_unknown() -> None:
    """`SP Zed` is not guessed as SP alone: the whole part is reported."""
    reading = read_leads("SP Zed / AW", PLAN_PEOPLE)
    assert reading.keys == ("AW",)
    assert reading.unknown == ("SP Zed",)


def test_a_people_draft_has_each_lead_once_with_names_spelled_out_elsewhere() -> None:
    """Each lead part once, as written; a name from another cell or an Overall lead row."""
    cells = ["AW/MC", "Joe Bannham - Head of Practice", "JB", "SLI Board, working with the CSMs."]
    assert draft_people([*cells, "aw"], ["Alison Walker"]) == [
        ("AW", "Alison Walker"),
        ("MC", "MC"),
        ("JB", "Joe Bannham"),
        ("SLI Board", "SLI Board"),
        ("CSMs", "CSMs"),
    ]
