"""A lead's absence, set by the lead in any channel: away until a day, back, who answers for
them meanwhile, or nobody. Slack's `/pulse`, the Teams chat and the update page read their
own input (a mention, a name, form fields) and render the outcome; what is allowed and what
is recorded and audited is decided here, once (the rules: bot/domain/absences.py).

Each call runs inside the caller's unit of work, so that finding the lead and changing their
absence are one transaction. Nothing is changed when a request is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from bot.domain.absences import AbsenceOutcome, AbsenceRefusal, day_back, delegate_refusal
from bot.domain.status import local_date
from storage.db import Session
from storage.repositories import PeopleRepository
from storage.slack_people import SlackPeople
from storage.teams_chats import TeamsConversations

__all__ = [
    "AbsenceOutcome",
    "AbsenceRequest",
    "Absences",
    "ByKey",
    "ByName",
    "BySlackId",
    "Lead",
    "Named",
]


class Lead(Protocol):
    """Who asks: the lead whose absence changes (a Slack or Teams person, a link's person)."""

    @property
    def id(self) -> int: ...

    @property
    def timezone(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class BySlackId:
    """A delegate named by a Slack mention."""

    user: str


@dataclass(frozen=True, slots=True)
class ByName:
    """A delegate named by full name (or key), in any case, as in the Teams chat."""

    name: str


@dataclass(frozen=True, slots=True)
class ByKey:
    """A delegate chosen by person key, as from the update page's list."""

    key: str


Named = BySlackId | ByName | ByKey


@dataclass(frozen=True, slots=True)
class AbsenceRequest:
    """What the lead asks. `away`: the day back as written ("" none given), None to leave it;
    `back`: clear the absence; `delegate`: who answers for them, `no_delegate`: nobody;
    `delegate_until`: with a delegate, the day back as written (None: leave it)."""

    away: str | None = None
    back: bool = False
    delegate: Named | None = None
    no_delegate: bool = False
    delegate_until: str | None = None


class Absences:
    """Decides and records absences within one session, through one channel."""

    def __init__(self, session: Session, *, channel: str, now: datetime) -> None:
        self.session = session
        self.channel = channel
        self.now = now

    async def ask(self, lead: Lead, request: AbsenceRequest) -> AbsenceOutcome:
        """Check everything first, then record it all (audited as the lead's own, through
        the channel), or nothing when anything is refused."""
        today = local_date(self.now, lead.timezone or "Europe/London")
        refusals: dict[str, AbsenceRefusal] = {}
        until: date | None = None
        day_text = request.away if request.away is not None else request.delegate_until
        if day_text is not None and not request.back:
            read = day_back(day_text, today)
            if isinstance(read, AbsenceRefusal):
                refusals["away"] = read
            else:
                until = read
        delegate_id: int | None = None
        delegate_name: str | None = None
        if request.delegate is not None and not request.no_delegate:
            found = await self._find(request.delegate)
            if found is None and _blank(request.delegate):
                refusals["delegate"] = AbsenceRefusal.NO_NAME
            else:
                delegate_id, delegate_name = found or (None, None)
                refused = delegate_refusal(lead.id, delegate_id)
                if refused is not None:
                    refusals["delegate"] = refused
        if refusals:
            return AbsenceOutcome(refusals)
        people = SlackPeople(self.session)
        outcome = AbsenceOutcome({})
        if request.no_delegate or request.delegate is not None:
            await people.set_delegate(lead.id, delegate_id, at=self.now, channel=self.channel)
            outcome = AbsenceOutcome({}, delegate_name=delegate_name, delegate_set=True)
        if request.back or day_text is not None:
            await people.set_away(lead.id, until, at=self.now, channel=self.channel)
            outcome = AbsenceOutcome(
                {},
                away_until=until,
                away_set=True,
                delegate_name=outcome.delegate_name,
                delegate_set=outcome.delegate_set,
            )
        return outcome

    async def _find(self, named: Named) -> tuple[int, str] | None:
        """The named person still in Plan Pulse (not erased): their id and name."""
        if isinstance(named, BySlackId):
            record = await SlackPeople(self.session).by_slack_id(named.user)
            found = None if record is None or record.erased else (record.id, record.name)
        elif isinstance(named, ByName):
            ref = await TeamsConversations(self.session).person_by_name(named.name)
            found = None if ref is None else (ref.id, ref.name)
        else:
            repo = PeopleRepository(self.session)
            person_id = await repo.id_of(named.key) if named.key else None
            record = await repo.record(person_id) if person_id is not None else None
            found = None if record is None or record.erased else (record.id, record.name)
        return found


def _blank(named: Named) -> bool:
    if isinstance(named, BySlackId):
        return not named.user.strip()
    if isinstance(named, ByName):
        return not named.name.strip()
    return not named.key.strip()
