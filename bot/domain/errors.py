"""Every error Plan Pulse raises on purpose is a `PulseError`; these are defined here, and
the few that belong to one channel's wire protocol are defined beside it (marked *).

    PulseError                  base: a message a person can act on
    ├── TimescaleError          a timescale or a day that names an impossible or unreadable
    │                           date, or no one day where one is needed (`read_day`)
    ├── ImportFailed            a plan, people or networks file with problems; nothing written
    ├── PlanNotFound            a plan key that is not in the store
    ├── PlanRetired             a plan retired with `pulse plans retire`: no prompts or digests
    ├── PlanKeyNeeded           a plan key taken from a file name while other plans exist
    ├── NetworkNotFound         a network key that is not in the store or not in the plan
    ├── PersonNotFound          a person key that is not in the store or not in the plan
    ├── ConfigError             settings that cannot work (placeholder secrets, bad URLs)
    ├── OutboxEntryError        an outbox message that is not there, or not to be settled so
    ├── PersonalDataError       a subject-access export or erasure that cannot be done
    ├── PersonChangeError       a `pulse people set` or `actions reassign` that cannot be done
    ├── BackupError             a backup that could not be made; nothing written at its target
    ├── AlreadyRunning *        another `pulse run` holds the database (bot/locks.py)
    ├── TokenUnavailable *      no OAuth2 token for SMTP or IMAP (handlers/email/xoauth2.py)
    ├── SmtpLoginRefused *      the SMTP server refused our login (handlers/email/smtp.py)
    └── ImapError *             the IMAP server (handlers/email/imap.py): ImapLoginRefused,
                                ImapUnavailable, ImapCommandRefused

Handlers turn these into messages for leads and admins; tracebacks go to the log only.
A refused answer is not an error of this kind: the answers service says why it refused
(`AnswerRefused`, a `Refusal` with its reason) and the channel tells the person at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class PulseError(Exception):
    """Base of every deliberate Plan Pulse error."""


class TimescaleError(PulseError):
    """A timescale that cannot be read without guessing, e.g. `31/09/18`."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"{reason}: {text!r}")
        self.text = text
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in an input file: where it is, what was there, and why it is wrong."""

    row: int | None
    column: str | None
    value: str | None
    reason: str
    severity: str = "error"  # "error" stops the import; "warning" and "note" are reported
    # Where the file's own words put it ("table 4, row 7"), said instead of `row`.
    place: str | None = None

    def __str__(self) -> str:
        where = []
        if self.place:
            where.append(self.place)
        elif self.row is not None:
            where.append(f"row {self.row}")
        if self.column:
            where.append(f"column {self.column!r}")
        place = ", ".join(where) or "file"
        value = f" value {self.value!r}:" if self.value is not None else ""
        return f"{self.severity}: {place}:{value} {self.reason}"


class ImportFailed(PulseError):
    """A file had errors; nothing was written. `problems` lists every one of them."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        errors = [p for p in problems if p.severity == "error"]
        super().__init__(f"{source}: {len(errors)} problem(s); nothing was imported")
        self.source = source
        self.problems = tuple(problems)


class PlanNotFound(PulseError):
    def __init__(self, key: str) -> None:
        super().__init__(f"no plan with key {key!r}; import it first (pulse import)")
        self.key = key


class PlanRetired(PulseError):
    def __init__(self, key: str, refused: str) -> None:
        super().__init__(f"plan {key!r} is retired (see pulse plans): {refused}")
        self.key = key


class PlanKeyNeeded(PulseError):
    """A plan key taken from the file's name would make a second plan beside the others."""

    def __init__(self, file_name: str, key: str, others: Sequence[str]) -> None:
        names = ", ".join(others)
        super().__init__(
            f"{file_name} names no plan key, so it would become a new plan {key!r} beside "
            f"{names}: give --plan {others[0]} to import it into that plan, or "
            f"--plan {key} if a new plan is meant; nothing was imported"
        )
        self.key = key


class NetworkNotFound(PulseError):
    def __init__(self, key: str, plan_key: str, known: Sequence[str] = ()) -> None:
        super().__init__(f"plan {plan_key!r} has no network {key!r}" + _choices(known))
        self.key = key


class PersonNotFound(PulseError):
    def __init__(self, key: str, where: str, known: Sequence[str] = ()) -> None:
        super().__init__(f"{where} has no person {key!r}" + _choices(known))
        self.key = key


def _choices(known: Sequence[str]) -> str:
    """The valid keys, for a message about one that is not among them."""
    return f"; known: {', '.join(known)}" if known else ""


class ConfigError(PulseError):
    """Settings that cannot work."""


class OutboxEntryError(PulseError):
    """`pulse outbox retry|resolve` on a message that does not exist or is not failed or
    waiting for review."""


class PersonalDataError(PulseError):
    """A subject-access export or an erasure that cannot be done as asked: an unknown
    person, someone still leading actions, a person already forgotten."""


class PersonChangeError(PulseError):
    """`pulse people set` or `pulse actions reassign` asked for something that cannot be:
    a malformed address or id, an unknown timezone, nothing to move."""


class BackupError(PulseError):
    """A backup that could not be made; nothing was written at its target."""
