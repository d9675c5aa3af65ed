"""Whom a prompt names for questions about the plan: coordinators or the plan's contact."""

from __future__ import annotations

from bot.domain.contacts import contact_line, prompt_contacts
from bot.domain.model import Action, Contact, Network, Person, Plan

PLAN = Plan(key="wirral", title="Wirral plan")
ACTIONS = (
    Action("1.1", "Family hubs", 1, ("AW",), ("early-help",)),
    Action("1.2", "Training", 1, ("PB",), ("early-help", "workforce")),
    Action("2.4", "Microsite", 2, ("PB",), ("workforce",)),
)
NETWORKS = (
    Network("oversight", "Oversight", coordinators=("chair@council.example",), all_actions=True),
    Network("early-help", "Early help", coordinators=("eh.lead@council.example",)),
    Network(
        "workforce",
        "Workforce",
        coordinators=("WF.Lead@council.example", "eh.lead@council.example"),
    ),
    Network("quality", "Quality", coordinators=("q@council.example",)),
)
PEOPLE = (
    Person(
        "WF",
        "Wren Fisher",
        email="wren.fisher@council.example",
        other_emails=("wf.lead@council.example",),
    ),
    Person("EH", "Eve Hart", email="eh.lead@council.example"),
)


def contacts(refs: set[str], plan: Plan = PLAN) -> tuple[Contact, ...]:
    return prompt_contacts(
        plan, action_refs=refs, actions=ACTIONS, networks=NETWORKS, people=PEOPLE
    )


def test_the_network_following_most_of_the_leads_actions_comes_first() -> None:
    """A lead of 1.2 and 2.4 is pointed to the workforce coordinator (both actions) before
    the early help one (one action), each named from the people list."""
    assert contacts({"1.2", "2.4"}) == (
        Contact("Wren Fisher", "WF.Lead@council.example"),
        Contact("Eve Hart", "eh.lead@council.example"),
    )


def test_an_address_coordinating_two_networks_is_named_once() -> None:
    """Eve coordinates early help and workforce: she is named once, and the board that follows
    every action fills the second place."""
    assert contacts({"1.1"}) == (
        Contact("Eve Hart", "eh.lead@council.example"),
        Contact("", "chair@council.example"),
    )


def test_networks_of_other_actions_are_not_named() -> None:
    """The quality network follows none of the lead's actions: never named."""
    assert all(c.email != "q@council.example" for c in contacts({"1.1", "1.2", "2.4"}))


def test_without_networks_only_the_whole_plan_board_is_named() -> None:
    """An action no network follows leaves the all-actions board's coordinator."""
    assert contacts({"9.9"}) == (Contact("", "chair@council.example"),)


def test_the_plans_contact_setting_wins() -> None:
    """With the plan's `contact` set, prompts name it alone, whatever the networks."""
    plan = Plan(
        key="wirral",
        title="Wirral plan",
        contact=(Contact("Plan office", "plans@council.example"),) * 2,
    )
    assert contacts({"1.2"}, plan) == (Contact("Plan office", "plans@council.example"),)


def test_no_coordinator_anywhere_names_nobody() -> None:
    """No contact setting and no coordinator: no contact line at all."""
    assert prompt_contacts(PLAN, action_refs={"1.1"}, actions=ACTIONS, networks=(), people=()) == ()


def test_the_line_reads_as_a_sentence() -> None:
    """One or two contacts, a name with its address in angle brackets, a bare address alone."""
    assert contact_line([Contact("Eve Hart", "eh@x.example"), Contact("", "chair@x.example")]) == (
        "Questions about this plan? Contact Eve Hart <eh@x.example> or chair@x.example"
    )


def test_the_contact_setting_is_read_and_a_bad_one_is_one_clear_problem() -> None:
    """`contact` takes one or two `Name <address>` or bare addresses; anything else, or a
    third, is a problem naming plan.contact and changes nothing."""
    from bot.domain.errors import Problem
    from handlers.files.plan_files import plan_settings

    problems: list[Problem] = []
    plan, stored = plan_settings(
        {"contact": ["Plan Office <plans@x.example>", "b@x.example"]}, PLAN, problems
    )
    assert problems == []
    assert plan.contact == (Contact("Plan Office", "plans@x.example"), Contact("", "b@x.example"))
    assert stored["contact"] == [
        {"name": "Plan Office", "email": "plans@x.example"},
        {"name": "", "email": "b@x.example"},
    ]
    for bad in ("Plan Office", "a@x.example; b@x.example; c@x.example"):
        problems = []
        plan, stored = plan_settings({"contact": bad}, PLAN, problems)
        assert [p.column for p in problems] == ["plan.contact"]
        assert plan.contact == ()
        assert "contact" not in stored
