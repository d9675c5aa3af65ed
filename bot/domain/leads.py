"""Lead cells (`AW/MC`, `DC / PB`, `GR / S Murray`, `Joe Bannham - Head of Practice`) read
into person keys against the people directory (DESIGN.md §5).

Whole names and keys are tried first, then the cell's parts split on `/ , ; & and`, then
each part's words by longest match against keys and names (`CMc AW MC` is CMc, AW and MC;
`SP Ben Sd` is SP and Ben Sd, not Ben and Sd). A job title after a dash is dropped, and so
are connecting words (`working with`, `the`) and trailing punctuation, as a "Who should be
involved?" column writes them. Keys and names match whatever their case, with runs of
spaces as one and curly quotes as straight ones. Letters from other
scripts that look like Latin ones (a Cyrillic `МС`) are folded to Latin and reported, so a
look-alike never becomes a new person. Anything left unresolved is reported, never guessed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.domain.model import Person

# Cyrillic and Greek capitals and small letters that render like Latin ones.
_LOOKALIKES = str.maketrans(
    "АВЕЅІЈКМНОРСТХУаеіјорсхуѕԁԛԝΑΒΕΖΗΙΚΜΝΟΡΤΥΧον",
    "ABESIJKMHOPCTXYaeijopcxysdqwABEZHIKMNOPTYXov",
)
_ROLE = re.compile(r"\s+[-–—]\s+.*$|\s*\(.*\)\s*$")
_PARTS = re.compile(r"\s*(?:/|\\|,|;|&|\+|\band\b|\n)\s*", re.IGNORECASE)
_CONNECTING = re.compile(r"^(?:(?:working\s+with|together\s+with|with|the|and)\b\s*)+", re.I)
_TRAILING = re.compile(r"[\s.,;:!?]+$")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


@dataclass(frozen=True, slots=True)
class LeadReading:
    """The keys a lead cell names, and what could not be read (errors) or was folded."""

    keys: tuple[str, ...]
    unknown: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def fold_lookalikes(text: str) -> str:
    """NFKC-normalise and fold look-alike letters from other scripts to Latin."""
    return unicodedata.normalize("NFKC", text).translate(_LOOKALIKES)


def _norm(text: str) -> str:
    return " ".join(fold_lookalikes(text).translate(_QUOTES).replace(".", " ").split()).casefold()


def same_key(text: str) -> str:
    """A person key as it is compared: case, runs of spaces and curly quotes folded."""
    return " ".join(fold_lookalikes(text).translate(_QUOTES).split()).casefold()


class Directory:
    """People looked up by key, alias, full name and "initial surname"."""

    def __init__(self, people: Iterable[Person]) -> None:
        self._exact: dict[str, str] = {}
        short: dict[str, set[str]] = {}
        for person in people:
            self._exact[_norm(person.key)] = person.key
        for person in people:  # an alias never takes the key of someone else
            for alias in person.aliases:
                self._exact.setdefault(_norm(alias), person.key)
        for person in people:
            self._exact.setdefault(_norm(person.name), person.key)
            words = _norm(person.name).split()
            if len(words) >= 2:
                short.setdefault(f"{words[0][0]} {words[-1]}", set()).add(person.key)
        # "S Murray" only resolves when one person fits it.
        self._short = {k: next(iter(v)) for k, v in short.items() if len(v) == 1}

    def find(self, text: str) -> str | None:
        norm = _norm(text)
        return self._exact.get(norm) or self._short.get(norm)

    def __contains__(self, key: str) -> bool:
        return _norm(key) in self._exact


def read_leads(cell: str | Sequence[str], directory: Directory) -> LeadReading:
    """The person keys named by a lead cell (or a list of names/keys from a YAML plan)."""
    cells = [cell] if isinstance(cell, str) else list(cell)
    keys: list[str] = []
    unknown: list[str] = []
    warnings: list[str] = []
    for text in cells:
        if not text or not text.strip():
            continue
        folded = unicodedata.normalize("NFKC", text).translate(_LOOKALIKES)
        if folded != unicodedata.normalize("NFKC", text):
            warnings.append(
                f"lead {text.strip()!r} has look-alike letters from another script; "
                f"read as {folded.strip()!r}"
            )
        for found in _read_cell(folded, directory, unknown):
            if found not in keys:
                keys.append(found)
    return LeadReading(tuple(keys), tuple(unknown), tuple(warnings))


def _read_cell(text: str, directory: Directory, unknown: list[str]) -> list[str]:
    whole = _match(text, directory)
    if whole:
        return [whole]
    found: list[str] = []
    for raw in _PARTS.split(text):
        part = _TRAILING.sub("", _CONNECTING.sub("", raw.strip()))
        if not part:
            continue
        key = _match(part, directory)
        if key:
            found.append(key)
            continue
        keys = longest_match(_ROLE.sub("", part).split(), directory)
        if keys is not None and len(keys) > 1:
            found.extend(keys)
        else:
            unknown.append(part)
    return found


def longest_match(words: Sequence[str], directory: Directory) -> list[str] | None:
    """The keys that `words` spell, each the longest run of words naming someone, left to
    right; None when some word is not part of any."""
    keys: list[str] = []
    start = 0
    while start < len(words):
        for end in range(len(words), start, -1):
            key = directory.find(" ".join(words[start:end]))
            if key:
                keys.append(key)
                start = end
                break
        else:
            return None
    return keys


def _match(text: str, directory: Directory) -> str | None:
    return directory.find(text) or directory.find(_ROLE.sub("", text))


def lead_parts(cell: str) -> list[str]:
    """The people a lead cell names as written, without a directory to read them against:
    its parts split on `/ , ; & and`, connecting words, trailing punctuation and job titles
    after a dash dropped (`AW/MC` is AW and MC; `Joe Bannham - Head of …` is Joe Bannham)."""
    parts: list[str] = []
    for raw in _PARTS.split(unicodedata.normalize("NFKC", cell).translate(_QUOTES)):
        part = " ".join(_ROLE.sub("", _TRAILING.sub("", _CONNECTING.sub("", raw.strip()))).split())
        if part and part not in parts:
            parts.append(part)
    return parts


def draft_people(cells: Iterable[str], names: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(key, name) for each distinct person the lead cells name, as `pulse people draft`
    writes them: the key as written; the name where a part or one of `names` (an "Overall
    lead" row) spells out a name whose initials are the key, else the key again."""
    found: dict[str, str] = {}
    for cell in cells:
        for part in lead_parts(cell):
            found.setdefault(same_key(part), part)
    spelled = [
        p
        for p in [*found.values(), *(n for c in names for n in lead_parts(c))]
        if len(p.split()) >= 2
    ]
    out: list[tuple[str, str]] = []
    for key in found.values():
        name = next(
            (n for n in spelled if n != key and _initials(n) == key.replace(".", "").casefold()),
            key,
        )
        out.append((key, name))
    # "Joe Bannham" written out in one cell and "JB" in another are one person: JB.
    named = {same_key(name) for key, name in out if name != key}
    return [(key, name) for key, name in out if same_key(key) not in named]


def _initials(name: str) -> str:
    return "".join(word[0] for word in name.split() if word[0].isalpha()).casefold()
