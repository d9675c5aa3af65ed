"""People who share an address: aliases (one person, two keys) and shared mailboxes."""

from __future__ import annotations

from bot.domain.leads import Directory, read_leads
from bot.domain.model import Person
from bot.domain.people import Alias, fold_aliases, shared_mailboxes


def person(key: str, name: str, email: str | None, **more: object) -> Person:
    return Person(key, name, email, **more)  # type: ignore[arg-type]


def test_same_name_and_address_is_one_person_with_an_alias() -> None:
    """A second row with the same name and address (any case, any spacing) is folded into
    the first: its key becomes an alias, its other addresses are added."""
    people, aliases = fold_aliases(
        [
            person("AW", "Alex Walker", "alex@council.example"),
            person("MC", "Morgan Clarke", "morgan@council.example"),
            person(
                "AWa", "alex  WALKER", "Alex@Council.example", other_emails=("alex@home.example",)
            ),
        ]
    )
    assert [p.key for p in people] == ["AW", "MC"]
    assert people[0].aliases == ("AWa",)
    assert people[0].other_emails == ("alex@home.example",)
    assert aliases == [Alias("AWa", "AW", "alex  WALKER", "Alex@Council.example")]


def test_same_address_with_different_names_stays_separate_people() -> None:
    """A team mailbox or a PA's address under different names is several people, reported
    as a shared mailbox; people without an address are never folded."""
    rows = [
        person("AW", "Alex Walker", "team@council.example"),
        person("PB", "Priya Bains", "TEAM@council.example"),
        person("X", "Nobody", None),
        person("Y", "Nobody", None),
    ]
    people, aliases = fold_aliases(rows)
    assert people == rows
    assert aliases == []
    assert {a: [p.key for p in ps] for a, ps in shared_mailboxes(people).items()} == {
        "team@council.example": ["AW", "PB"]
    }


def test_a_stored_person_keeps_their_key_and_gains_the_alias() -> None:
    """A new row matching a stored person under another key is their alias, even when the
    file lists it alone; aliases already stored are kept, and delegates named by an alias
    are read as the person."""
    stored = [person("AW", "Alex Walker", "alex@council.example", aliases=("A.W",))]
    people, aliases = fold_aliases(
        [
            person("AWa", "Alex Walker", "alex@council.example"),
            person("MC", "Morgan Clarke", "morgan@council.example", delegate_key="AWa"),
        ],
        known=stored,
    )
    assert [(p.key, p.aliases) for p in people] == [("AW", ("A.W", "AWa")), ("MC", ())]
    assert people[1].delegate_key == "AW"
    assert [a.alias for a in aliases] == ["AWa"]


def test_a_lead_cell_naming_an_alias_is_the_person() -> None:
    """`AWa/MC` reads as AW and MC once AWa is AW's alias; an alias never takes over a key
    someone else has."""
    directory = Directory(
        [
            person("AW", "Alex Walker", "a@x.example", aliases=("AWa", "MC")),
            person("MC", "Morgan Clarke", "m@x.example"),
        ]
    )
    assert read_leads("AWa/MC", directory).keys == ("AW", "MC")
