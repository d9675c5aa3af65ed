"""What a network's digest contains (DESIGN.md §10) and its JSON shape (DESIGN.md §12)."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.model import Action, Milestone, Network, Plan, Recurrence, Timescale, Update
from digests.content import Digest, _ref_key, build_digest, week_title
from tests.builders import action, milestone, update

AS_OF = date(2027, 5, 14)
PLAN = Plan(key="NW", title="North West regional improvement plan")
NORTH = Network(key="north", name="North network", slack_channel="#north")
SOUTH = Network(key="south", name="South network")
OVERSIGHT = Network(key="board", name="Oversight board", all_actions=True)

SECTIONS = ("overdue", "at_risk", "needs_support", "due_soon", "achieved")
EXCLUSIVE = ("overdue", "at_risk", "due_soon", "achieved")
REASONS = {"not_started", "revised_later", "worsening", "needs_support", "stale", "never_rated"}
ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def day(offset: int) -> date:
    return AS_OF + timedelta(days=offset)


def single(ref: str, due: date | None, *, networks: tuple[str, ...] = ("north",)) -> Action:
    """An action with its one milestone, which shares its reference."""
    return action(ref, milestone(ref, due), networks=networks)


def digest(
    actions: Iterable[Action],
    updates: Iterable[Update] = (),
    *,
    network: Network = NORTH,
    as_of: date = AS_OF,
    awaiting: Sequence[str] = (),
) -> Digest:
    by_ref: dict[str, list[Update]] = {}
    for u in updates:
        by_ref.setdefault(u.milestone_ref, []).append(u)
    return build_digest(
        PLAN,
        network,
        list(actions),
        by_ref,
        as_of=as_of,
        awaiting=awaiting,
        prompted=3,
        answered=1,
    )


def refs(d: Digest | Mapping[str, Any], section: str) -> list[str]:
    data = d.to_json() if isinstance(d, Digest) else d
    return [item["ref"] for item in data[section]]


def all_refs(d: Digest) -> set[str]:
    return {ref for section in SECTIONS for ref in refs(d, section)}


# --- membership -------------------------------------------------------------------------------


def test_network_sees_only_actions_that_list_it() -> None:
    """A network's digest holds only the actions that name that network."""
    actions = [
        single("1.1", day(-5), networks=("north",)),
        single("1.2", day(-5), networks=("south",)),
        single("1.3", day(-5), networks=("north", "south")),
        single("1.4", day(-5), networks=()),
    ]
    assert all_refs(digest(actions, network=NORTH)) == {"1.1", "1.3"}
    assert all_refs(digest(actions, network=SOUTH)) == {"1.2", "1.3"}


def test_all_actions_network_sees_every_action() -> None:
    """A plan-wide oversight network gets every action, whichever networks it lists."""
    actions = [
        single("1.1", day(-5), networks=("north",)),
        single("1.2", day(-5), networks=("south",)),
        single("1.3", day(-5), networks=()),
    ]
    assert all_refs(digest(actions, network=OVERSIGHT)) == {"1.1", "1.2", "1.3"}


# --- sections ---------------------------------------------------------------------------------


def _one_of_each() -> tuple[list[Action], list[Update]]:
    actions = [
        single("1.1", day(-3)),  # overdue
        single("1.2", day(20)),  # at risk: not started
        single("1.3", day(5)),  # due soon
        single("1.4", day(30)),  # achieved this week
        single("1.5", day(100)),  # on track
        single("1.6", None),  # no date
        single("1.7", day(60)),  # at risk: needs support
        single("1.8", day(-10)),  # overdue and needs support
    ]
    updates = [
        update("1.1", day(-5), 3, revised_due=day(20)),
        update("1.2", day(-2), 4),
        update("1.3", day(-1), 3),
        update("1.4", day(-2), 1),
        update("1.5", day(-1), 3),
        update("1.6", day(-1), 3),
        update("1.7", day(-1), 3, needs_support=True, note="Need a data analyst"),
        update("1.8", day(-1), 4, needs_support=True, note="Blocked on budget"),
    ]
    return actions, updates


def test_each_milestone_is_in_the_section_of_its_status() -> None:
    """Overdue, at-risk, due-soon and achieved milestones land in the matching section."""
    d = digest(*_one_of_each())
    assert refs(d, "overdue") == ["1.8", "1.1"]
    assert refs(d, "at_risk") == ["1.2", "1.7"]
    assert refs(d, "due_soon") == ["1.3"]
    assert refs(d, "achieved") == ["1.4"]


def test_each_milestone_is_in_at_most_one_exclusive_section() -> None:
    """No milestone is in more than one of overdue, at risk, due soon and achieved."""
    d = digest(*_one_of_each())
    seen = [ref for section in EXCLUSIVE for ref in refs(d, section)]
    assert len(seen) == len(set(seen))


def test_on_track_and_no_date_milestones_are_in_no_section() -> None:
    """A milestone that is on track or has no date is in none of the digest's lists."""
    d = digest(*_one_of_each())
    assert "1.5" not in all_refs(d)
    assert "1.6" not in all_refs(d)


def test_needs_support_repeats_items_from_other_sections() -> None:
    """Every milestone whose latest update asks for support is repeated under needs support."""
    d = digest(*_one_of_each())
    assert refs(d, "needs_support") == ["1.8", "1.7"]  # earliest due first
    assert "1.7" in refs(d, "at_risk")
    assert "1.8" in refs(d, "overdue")
    data = d.to_json()
    at_risk = {i["ref"]: i for i in data["at_risk"]}
    support = {i["ref"]: i for i in data["needs_support"]}
    assert support["1.7"] == at_risk["1.7"]
    assert support["1.7"]["note"] == "Need a data analyst"
    assert "needs_support" in support["1.7"]["reasons"]


def test_an_earlier_ask_for_support_is_not_repeated() -> None:
    """Only the latest update's ask puts a milestone in the needs-support section."""
    actions = [single("1.1", day(20))]
    updates = [update("1.1", day(-5), 3, needs_support=True), update("1.1", day(-1), 3)]
    assert refs(digest(actions, updates), "needs_support") == []


@pytest.mark.parametrize(
    ("days_ago", "shown"),
    [(0, True), (1, True), (6, True), (7, False), (30, False)],
)
def test_achieved_only_when_rated_one_in_the_seven_days_up_to_as_of(
    days_ago: int, shown: bool
) -> None:
    """Reading "the 7 days up to the digest's date" as as_of-6 .. as_of inclusive, 7 days out."""
    d = digest([single("1.1", day(30))], [update("1.1", day(-days_ago), 1)])
    assert refs(d, "achieved") == (["1.1"] if shown else [])
    assert all_refs(d) == ({"1.1"} if shown else set())


def test_achieved_after_as_of_is_not_shown() -> None:
    """A rating 1 given after the digest's date does not exist yet for that digest."""
    d = digest([single("1.1", day(30))], [update("1.1", day(-1), 3), update("1.1", day(1), 1)])
    assert refs(d, "achieved") == []


# --- ordering ---------------------------------------------------------------------------------


def test_overdue_ordered_by_days_overdue_then_reference() -> None:
    """Overdue lists the most days overdue first, then references in natural order."""
    actions = [
        single("2.10", day(-3)),
        single("2.2", day(-3)),
        single("9.1", day(-1)),
        single("1.1", day(-40)),
        single("2.9", day(-3)),
    ]
    d = digest(actions, [update(a.ref, day(-1), 3) for a in actions])
    assert refs(d, "overdue") == ["1.1", "2.2", "2.9", "2.10", "9.1"]
    assert [i["days_overdue"] for i in d.to_json()["overdue"]] == [40, 3, 3, 3, 1]


def test_at_risk_ordered_by_due_date_then_natural_reference() -> None:
    """At risk lists the earliest due first, then references with 1.2 before 1.10."""
    actions = [
        single("1.10", day(20)),
        single("1.2", day(20)),
        single("1.9", day(20)),
        single("3.1", day(10)),
        single("1.1", day(40)),
    ]
    d = digest(actions, [update(a.ref, day(-1), 4) for a in actions])
    assert refs(d, "at_risk") == ["3.1", "1.2", "1.9", "1.10", "1.1"]


def test_due_soon_ordered_by_due_date_then_natural_reference() -> None:
    """Due soon lists the earliest due first, then references in natural order."""
    actions = [
        action("W1.2", *(milestone(f"W1.2-{n}", day(7)) for n in (10, 2, 1))),
        single("1.10", day(3)),
        single("1.2", day(3)),
    ]
    updates = [update(m.ref, day(-1), 3) for a in actions for m in a.milestones]
    d = digest(actions, updates)
    assert refs(d, "due_soon") == ["1.2", "1.10", "W1.2-1", "W1.2-2", "W1.2-10"]


def test_achieved_ordered_by_due_date_then_natural_reference() -> None:
    """Achieved lists the earliest due first, then references in natural order."""
    actions = [single("1.10", day(30)), single("1.2", day(30)), single("1.3", day(10))]
    d = digest(actions, [update(a.ref, day(-2), 1) for a in actions])
    assert refs(d, "achieved") == ["1.3", "1.2", "1.10"]


# --- header -----------------------------------------------------------------------------------


def test_counts_match_list_lengths() -> None:
    """The header's counts are the lengths of the lists, awaiting included."""
    data = digest(*_one_of_each(), awaiting=["PB", "AW"]).to_json()
    assert data["counts"] == {
        "overdue": 2,
        "at_risk": 2,
        "needs_support": 2,
        "due_soon": 1,
        "achieved": 1,
        "awaiting": 2,
    }
    for key, count in data["counts"].items():
        assert count == len(data[key])
    assert sorted(data["awaiting"]) == ["AW", "PB"]


@pytest.mark.parametrize(
    ("as_of", "period"),
    [
        (date(2027, 1, 1), "2026-W53"),
        (date(2026, 12, 28), "2026-W53"),
        (date(2027, 1, 4), "2027-W01"),
        (date(2027, 5, 14), "2027-W19"),
        (date(2024, 12, 30), "2025-W01"),
    ],
)
def test_period_is_the_iso_week(as_of: date, period: str) -> None:
    """The period is the ISO week of the digest's date, written YYYY-Www."""
    d = digest([], as_of=as_of)
    assert d.period == period
    assert d.to_json()["period"] == period


# --- JSON shape -------------------------------------------------------------------------------


def _check_item(item: Mapping[str, Any], section: str) -> None:
    assert set(item) == {
        "ref", "title", "leads", "lead_names", "due", "days_overdue", "rating", "note",
        "updated", "revised_due", "needs_support", "reasons", "evidence",
    }  # fmt: skip
    assert type(item["ref"]) is str
    assert type(item["title"]) is str
    assert type(item["leads"]) is list
    assert all(type(lead) is str for lead in item["leads"])
    assert item["due"] is None or (type(item["due"]) is str and ISO_DAY.fullmatch(item["due"]))
    assert type(item["days_overdue"]) is int
    if section != "needs_support":  # it repeats items from every other section
        assert (item["days_overdue"] > 0) == (section == "overdue")
        assert bool(item["reasons"]) == (section == "at_risk")
    assert item["rating"] is None or (type(item["rating"]) is int and 1 <= item["rating"] <= 4)
    assert item["note"] is None or type(item["note"]) is str
    assert item["updated"] is None or (
        type(item["updated"]) is str and ISO_DAY.fullmatch(item["updated"])
    )
    assert item["revised_due"] is None or (
        type(item["revised_due"]) is str and ISO_DAY.fullmatch(item["revised_due"])
    )
    assert type(item["needs_support"]) is bool
    assert item["evidence"] is None or (type(item["evidence"]) is str and item["rating"] == 1)
    if section == "needs_support" or "needs_support" in item["reasons"]:
        assert item["needs_support"] is True
    assert type(item["reasons"]) is list
    assert set(item["reasons"]) <= REASONS


def test_json_has_exactly_the_keys_and_types_of_the_design() -> None:
    """to_json gives exactly the keys and value types of DESIGN.md §12."""
    data = digest(*_one_of_each(), awaiting=["PB", "AW"]).to_json()
    assert set(data) == {"plan", "network", "as_of", "period", "counts", *SECTIONS, "awaiting"}
    assert data["plan"] == "NW"
    assert data["network"] == "north"
    assert data["as_of"] == "2027-05-14"
    assert type(data["period"]) is str
    assert re.fullmatch(r"\d{4}-W\d{2}", data["period"])
    assert set(data["counts"]) == {*SECTIONS, "awaiting"}
    assert all(type(v) is int for v in data["counts"].values())
    assert type(data["awaiting"]) is list
    assert all(type(k) is str for k in data["awaiting"])
    for section in SECTIONS:
        assert type(data[section]) is list
        assert data[section], f"fixture should fill {section}"
        for item in data[section]:
            _check_item(item, section)


def test_json_item_values() -> None:
    """An item carries the milestone's reference, title, leads, due date, rating, note and day."""
    actions = [action("1.1a", milestone("1.1a", day(-4), leads=("MC", "AW"), title="Review"))]
    updates = [
        update("1.1a", day(-20), 3, note="Started"),
        update("1.1a", day(-2), 4, note="Waiting for sign-off"),
    ]
    item = digest(actions, updates).to_json()["overdue"][0]
    assert item == {
        "ref": "1.1a",
        "title": "Review",
        "leads": ["MC", "AW"],
        "lead_names": ["MC", "AW"],
        "due": day(-4).isoformat(),
        "days_overdue": 4,
        "rating": 4,
        "note": "Waiting for sign-off",
        "updated": day(-2).isoformat(),
        "revised_due": None,
        "needs_support": False,
        "reasons": [],
        "evidence": None,
    }


def test_achieved_milestones_carry_their_evidence_or_are_counted_without() -> None:
    """An achieved milestone shows its stored evidence; one achieved without evidence is
    counted as such; evidence of a milestone not achieved now is not shown as its evidence."""
    actions = [
        single("1.1", day(10)),
        single("1.2", day(12)),
        single("1.3", day(14)),
        single("1.4", day(20)),
    ]
    updates = [
        update("1.1", day(-1), 1),
        update("1.2", day(-1), 1),
        update("1.3", day(-1), 1),
        update("1.4", day(-1), 3, needs_support=True),
    ]
    by_ref: dict[str, list[Update]] = {}
    for u in updates:
        by_ref.setdefault(u.milestone_ref, []).append(u)
    built = build_digest(
        PLAN,
        NORTH,
        actions,
        by_ref,
        as_of=AS_OF,
        evidence={"1.2": "Fewer children wait for a plan", "1.4": "An older achievement"},
    )
    achieved = {item["ref"]: item["evidence"] for item in built.to_json()["achieved"]}
    assert achieved == {"1.1": None, "1.2": "Fewer children wait for a plan", "1.3": None}
    assert built.to_json()["needs_support"][0]["evidence"] is None
    assert built.unevidenced() == 2
    assert built.counts()["achieved"] == 3  # the counts of DESIGN.md §12 are unchanged


@pytest.mark.parametrize(
    ("period", "title"),
    [
        ("2018-W23", "week of 4 June 2018"),
        ("2027-W01", "week of 4 January 2027"),
        ("2026-W53", "week of 28 December 2026"),
        ("2027-W53", "2027-W53"),  # no such week: shown as it is
    ],
)
def test_a_period_reads_as_the_week_of_its_monday(period: str, title: str) -> None:
    """People read a digest's ISO week as the date of its Monday."""
    assert week_title(period) == title


def test_json_items_name_their_leads_beside_their_keys() -> None:
    """`lead_names` gives each lead's stored name beside `leads`, the key where none is
    stored; the keys stay as they were."""
    actions = [action("1.1a", milestone("1.1a", day(-4), leads=("MC", "AW"), title="Review"))]
    names = {"MC": "Mary Clark"}
    built = build_digest(PLAN, NORTH, actions, {}, as_of=AS_OF, names=names).to_json()
    item = built["overdue"][0]
    assert item["leads"] == ["MC", "AW"]
    assert item["lead_names"] == ["Mary Clark", "AW"]


def test_json_item_carries_the_leads_revised_date_and_support_ask() -> None:
    """An overdue item shows the lead's latest revised date and support ask, though neither
    is a reason for an overdue milestone; a later answer naming no date keeps the date."""
    actions = [action("1.1", milestone("1.1", day(-4)))]
    updates = [
        update("1.1", day(-9), 3, note="Slipping", revised_due=day(30)),
        update("1.1", day(-2), 3, note="Still waiting on partners", needs_support=True),
    ]
    item = digest(actions, updates).to_json()["overdue"][0]
    assert item["revised_due"] == day(30).isoformat()
    assert item["needs_support"] is True
    assert item["reasons"] == []


def test_json_item_for_never_rated_milestone_has_nulls() -> None:
    """A milestone with no update shows null rating, note and updated, and never_rated."""
    item = digest([single("1.1", day(10))]).to_json()["at_risk"][0]
    assert item["rating"] is None
    assert item["note"] is None
    assert item["updated"] is None
    assert item["reasons"] == ["never_rated"]


def test_json_item_for_recurring_milestone_shows_the_current_period_due_date() -> None:
    """A quarterly milestone's item is due at the end of the quarter containing as_of."""
    ts = Timescale(text="Quarterly", recurrence=Recurrence.QUARTERLY)
    m = Milestone(ref="2.1", title="Audit", timescale=ts, action_ref="2.1", leads=("MC",))
    item = digest([action("2.1", m)]).to_json()["at_risk"][0]
    assert item["due"] == "2027-06-30"
    assert item["reasons"] == ["never_rated"]


def test_json_round_trips_through_json_dumps() -> None:
    """The digest's JSON is plain JSON: dumping and loading gives it back unchanged."""
    data = digest(*_one_of_each(), awaiting=["PB"]).to_json()
    assert json.loads(json.dumps(data)) == data


# --- natural order of references ------------------------------------------------------------


def natural(ref: str) -> tuple[tuple[int, int | str], ...]:
    """The order a reader expects, spelled out: numbers by value before words, words
    without case, part by part."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part.casefold())
        for part in re.findall(r"\d+|[^\d.\-]+", ref)
    )


@given(
    st.lists(
        st.text(alphabet="0123456789.-WwAbz", min_size=1, max_size=10), min_size=2, max_size=40
    )
)
def test_reference_sort_keys_order_references_naturally(refs: list[str]) -> None:
    """The one-string sort key digests use orders any references as `natural` does:
    1.2 before 1.10, W1.2-3 before W1.2-10, 007 equal to 7."""
    for a, b in itertools.pairwise(refs):
        assert (_ref_key(a) < _ref_key(b)) == (natural(a) < natural(b)), (a, b)
        assert (_ref_key(a) == _ref_key(b)) == (natural(a) == natural(b)), (a, b)


def test_reference_sort_key_examples() -> None:
    refs = ["W1.2-10", "1.10", "W1.2-3", "1.2", "2", "1.2-1", "w1.2-4"]
    assert sorted(refs, key=_ref_key) == [
        "1.2",
        "1.2-1",
        "1.10",
        "2",
        "W1.2-3",
        "w1.2-4",
        "W1.2-10",
    ]
