"""People who share an email address (DESIGN.md §2, issue "Shared mailboxes").

Two rows of a people file with the same address and the same name are one person with two
keys: the second key becomes an alias of the first (`fold_aliases`), so a lead cell naming
either finds the one person. The same address under different names is a shared mailbox —
a team mailbox, or a PA who answers for several people (`shared_mailboxes`): they stay
separate people, and each cycle sends that address one combined prompt (see
`bot.domain.cycles.mailbox_groups`).

Pure: no I/O. Addresses compare without case, names without case and extra spaces.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from bot.domain.model import Person


@dataclass(frozen=True, slots=True)
class Alias:
    """`alias` is another key of the person `key`: same name, same address."""

    alias: str
    key: str
    name: str
    email: str


def mailbox(address: str | None) -> str | None:
    """An address as mailboxes compare: without case and surrounding space."""
    return address.strip().casefold() or None if address else None


def _identity(person: Person) -> tuple[str, str] | None:
    address = mailbox(person.email)
    if address is None:
        return None
    return address, " ".join(person.name.split()).casefold()


def _union(*groups: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for group in groups for item in group))


def fold_aliases(
    people: Sequence[Person], *, known: Sequence[Person] = ()
) -> tuple[list[Person], list[Alias]]:
    """`people` (rows read from a file, in order) with the rows of one person — same name,
    same address — folded into one, and the aliases that made.

    The person's key is that of the first of those rows already stored, else of the first
    `known` (stored) person with that name and address, else of the first row; every other
    row's key becomes an alias, and its other addresses are added. A stored person matched
    is returned (with the alias) even when the file does not list them. Delegates named by
    an alias are read as the person. Aliases a stored person already has are kept.
    """
    stored = {p.key: p for p in known}
    stored_first: dict[tuple[str, str], str] = {}
    for person in known:
        identity = _identity(person)
        if identity is not None:
            stored_first.setdefault(identity, person.key)
    groups: dict[tuple[str, str] | str, list[Person]] = {}
    for person in people:  # a row without an address is only ever itself
        groups.setdefault(_identity(person) or person.key, []).append(person)
    listed = {p.key for p in people}
    out: list[Person] = []
    found: list[Alias] = []
    for group, rows in groups.items():
        in_store = [p.key for p in rows if p.key in stored]
        if in_store:
            key = in_store[0]
        elif isinstance(group, tuple) and stored_first.get(group, "") in stored.keys() - listed:
            key = stored_first[group]  # the file does not list them (under this address)
        else:
            key = rows[0].key
        base = next((p for p in rows if p.key == key), None) or stored[key]
        others = [p for p in rows if p.key != key]
        previous = stored.get(key)
        out.append(
            replace(
                base,
                aliases=_union(
                    previous.aliases if previous else (),
                    *(p.aliases for p in rows),
                    (p.key for p in others),
                ),
                other_emails=_union(base.other_emails, *(p.other_emails for p in others)),
            )
        )
        found += [Alias(p.key, key, p.name, p.email or "") for p in others]
    by_alias = {a.alias: a.key for a in found}
    return [
        replace(p, delegate_key=by_alias[p.delegate_key]) if p.delegate_key in by_alias else p
        for p in out
    ], found


def shared_mailboxes(people: Iterable[Person]) -> dict[str, tuple[Person, ...]]:
    """Addresses that more than one person (by name) uses, each with its people by key."""
    by_address: dict[str, list[Person]] = {}
    for person in people:
        address = mailbox(person.email)
        if address is not None:
            by_address.setdefault(address, []).append(person)
    return {
        address: tuple(sorted(listed, key=lambda p: p.key))
        for address, listed in sorted(by_address.items())
        if len(listed) > 1
    }
