"""Which stored action (or milestone) a re-imported one is (README: "Re-importing").

A plan with a reference column names its actions: a re-imported action is the stored one
with its reference. A Word or pasted plan usually has none, and the references the import
makes up (`1.1a`, `2.3`) are places in the table: a row inserted above moves every later
one. Such an action is the stored one of the same group (its priority; for a milestone, its
action) with the same title, compared after folding case, runs of spaces and curly quotes;
never the one at the same place. A title edited between imports makes a new action, and the
old one is retired with its answers (an edit in place, where the position stays too, is
still a new action: a title is all there is to go by). A matched action takes its new
reference; each change is reported ("1.3 is now 1.4: Train staff").

Titles repeated within a group pair up in order. A live stored row is preferred to a retired
one, so that an action dropped and later restored gets its history back. A stored row left
unmatched whose reference another now takes is moved aside to `REF~ID`, so that references
stay unique in the plan and its history stays with it.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

_QUOTES = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"'})


def title_key(title: str) -> str:
    """A title as matching compares it: case folded, spaces collapsed, quotes straight."""
    if not title.isascii():  # translating is slow, and only non-ASCII text has curly quotes
        title = title.translate(_QUOTES)
    return " ".join(title.casefold().split())


@dataclass(frozen=True, slots=True)
class Stored:
    """A stored action or milestone: its id, group, reference, title, and whether retired."""

    id: int
    group: Hashable
    ref: str
    title: str
    retired: bool = False


@dataclass(frozen=True, slots=True)
class Incoming:
    """An action or milestone as the file gives it; `by_title` when its reference was made
    up from its place (the file has no reference for it)."""

    group: Hashable
    ref: str
    title: str
    by_title: bool


@dataclass(frozen=True, slots=True)
class Renumbered:
    """A stored row matched by title whose reference changes."""

    old: str
    new: str
    title: str

    def __str__(self) -> str:
        return f"{self.old} is now {self.new}: {self.title}"


@dataclass(frozen=True, slots=True)
class Matching:
    """`ids[i]` is the stored id of `incoming[i]` (None: new); `renumbered` lists the
    reference changes of those matched by title; `aside` gives each unmatched stored row
    whose reference is taken by another its new reference."""

    ids: tuple[int | None, ...]
    renumbered: tuple[Renumbered, ...]
    aside: dict[int, str]
    # The stored ids matched: the others are retired.
    claimed: frozenset[int]


def match(incoming: Sequence[Incoming], stored: Sequence[Stored]) -> Matching:
    """Pair each incoming row with the stored row it is, by reference or by title."""
    by_ref = {s.ref: s for s in stored}
    claimed: set[int] = set()
    ids: list[int | None] = [None] * len(incoming)
    for i, item in enumerate(incoming):
        found = by_ref.get(item.ref)
        if not item.by_title and found is not None and found.id not in claimed:
            ids[i] = found.id
            claimed.add(found.id)
    # Live rows first, then retired, each in stored order: titles repeated pair in order.
    candidates: dict[tuple[Hashable, str], deque[Stored]] = defaultdict(deque)
    for s in sorted(stored, key=lambda s: s.retired):
        if s.id not in claimed:
            candidates[(s.group, title_key(s.title))].append(s)
    renumbered: list[Renumbered] = []
    for i, item in enumerate(incoming):
        if not item.by_title:
            continue
        queue = candidates.get((item.group, title_key(item.title)))
        while queue and queue[0].id in claimed:
            queue.popleft()
        if not queue:
            continue
        found = queue.popleft()
        ids[i] = found.id
        claimed.add(found.id)
        if found.ref != item.ref and not found.retired:
            renumbered.append(Renumbered(found.ref, item.ref, item.title))
    taken = {item.ref for item in incoming}
    aside = {s.id: f"{s.ref}~{s.id}" for s in stored if s.id not in claimed and s.ref in taken}
    return Matching(tuple(ids), tuple(renumbered), aside, frozenset(claimed))
