"""Who a prompt names for questions about the plan: "Questions about this plan? Contact
NAME <email>".

The plan's `contact` setting wins when it is set. Otherwise the coordinators of the
networks that follow the lead's actions: networks that follow some of their actions
before those that follow every action (a board that sees everything is the last place to
ask), and among them those that follow more of the lead's actions first. At most two,
each address once; a coordinator's name is theirs in the people list when they are in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bot.domain.model import Action, Contact, Network, Person, Plan

MAX_CONTACTS = 2
CONTACT_INTRO = "Questions about this plan? Contact"


def prompt_contacts(
    plan: Plan,
    *,
    action_refs: Iterable[str],
    actions: Sequence[Action],
    networks: Sequence[Network],
    people: Sequence[Person],
) -> tuple[Contact, ...]:
    """The one or two people a prompt about `action_refs` names for questions; none when
    the plan sets no contact and no network following those actions has a coordinator."""
    if plan.contact:
        return _distinct(plan.contact)
    wanted = set(action_refs)
    covering: dict[str, int] = {}
    for action in actions:
        if action.ref in wanted:
            for key in action.networks:
                covering[key] = covering.get(key, 0) + 1
    ranked = sorted(
        (n for n in networks if n.all_actions or n.key in covering),
        key=lambda n: (n.all_actions, -covering.get(n.key, 0), n.key),
    )
    names: dict[str, str] = {}
    for person in people:
        for address in (person.email, *person.other_emails):
            if address:
                names.setdefault(address.casefold(), person.name)
    return _distinct(
        Contact(names.get(address.strip().casefold(), ""), address.strip())
        for network in ranked
        for address in network.coordinators
        if address.strip()
    )


def _distinct(contacts: Iterable[Contact]) -> tuple[Contact, ...]:
    seen: set[str] = set()
    kept: list[Contact] = []
    for contact in contacts:
        if contact.email.casefold() in seen:
            continue
        seen.add(contact.email.casefold())
        kept.append(contact)
        if len(kept) == MAX_CONTACTS:
            break
    return tuple(kept)


def contact_line(contacts: Sequence[Contact]) -> str:
    """`Questions about this plan? Contact Jo Bloggs <jo@…> or sam@…`, as plain text."""
    return f"{CONTACT_INTRO} " + " or ".join(
        f"{c.name} <{c.email}>" if c.name else c.email for c in contacts
    )
