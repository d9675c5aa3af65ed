"""The coordinators' live view (issue 14): a network's digest content for any day, filtered
by priority, lead and status; each milestone's history; the rating mix per priority and its
trend; and answers a coordinator records on a lead's behalf or withdraws. The pages are
handlers/web/live.py; this decides what they show and may do.

Access is a link in each digest email, one per coordinator and network, valid for 30 days
and revocable (`pulse web revoke`): only a keyed hash of its token is stored, as for the
update page's links. Reading the view changes nothing; recording goes through the one
answers service (`record_on_behalf`, `withdraw`).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from bot.clock import Clock
from bot.domain.replies import ReplyLine
from bot.domain.status import local_date
from bot.services.answers import OnBehalf, OnBehalfResult, record_on_behalf, withdraw
from bot.signing import Signer
from digests.content import MIX_KEYS, Digest, DigestItem, DigestSection, in_network
from storage.db import Session, Sessions
from storage.live_view import Given, LiveViewRepository, ViewAccess
from storage.personal_data import AuditLog
from storage.repositories import PlanRepository

log = logging.getLogger(__name__)

VIEW_LINK_LIFETIME = timedelta(days=30)
VIEW_PATH = "/v/"
_VIEW_PURPOSE = "view-link"

DigestOf = Callable[[str, str, date], Awaitable[Digest]]  # plan, network, as of


def new_view_token() -> str:
    """A fresh live-view token: 256 random bits, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def view_hash(token: str, signer: Signer) -> str:
    """What is stored for a live-view token and looked up by."""
    return signer.digest(_VIEW_PURPOSE, token).hex()


def view_url(base_url: str, token: str) -> str:
    return base_url.rstrip("/") + VIEW_PATH + token


async def issue_view_links(
    session: Session,
    signer: Signer,
    *,
    plan_id: int,
    network_id: int,
    addresses: Sequence[str],
    base_url: str,
    now: datetime,
) -> dict[str, str]:
    """A new live-view link for each coordinator address, stored in the caller's
    transaction (the digest's): the URL by address."""
    tokens = {address: new_view_token() for address in addresses}
    await LiveViewRepository(session).add_links(
        [(address, view_hash(token, signer)) for address, token in tokens.items()],
        plan_id=plan_id,
        network_id=network_id,
        now=now,
        expires_at=now + VIEW_LINK_LIFETIME,
    )
    return {address: view_url(base_url, token) for address, token in tokens.items()}


async def revoke_view_links(
    session: Session, email: str, *, network_key: str | None, now: datetime, actor: str
) -> int:
    """Revoke a coordinator's live-view links (to one network, or all) and audit it, in the
    caller's transaction; how many were open. The audit names the person by id when the
    address is a person's, and the network, never the address."""
    repository = LiveViewRepository(session)
    revoked = await repository.revoke(email, network_key=network_key, now=now)
    person = await repository.person_named(email)
    await AuditLog(session).append(
        at=now,
        action="view_links_revoked",
        actor=actor,
        channel="cli",
        person_id=person[0] if person is not None else None,
        details={"network": network_key, "links": revoked},
    )
    return revoked


@dataclass(frozen=True, slots=True)
class Filters:
    """What the coordinator asked to see: a day (None: today) and any of a priority, a lead
    and a status (a digest section)."""

    as_of: date | None = None
    priority: int | None = None
    lead: str | None = None
    status: DigestSection | None = None

    def keeps(self, section: DigestSection, item: DigestItem) -> bool:
        return (
            (self.priority is None or item.priority == self.priority)
            and (self.lead is None or self.lead in item.leads)
            and (self.status is None or section is self.status)
        )


@dataclass(frozen=True, slots=True)
class LiveView:
    """Everything the live view shows."""

    access: ViewAccess
    plan_title: str
    digest: Digest
    today: date
    filters: Filters
    rows: tuple[tuple[DigestSection, DigestItem], ...]  # what the filters keep, in order
    priorities: tuple[tuple[int, str], ...]
    leads: tuple[tuple[str, str], ...]  # (key, name) of the network's leads
    names: Mapping[str, str]

    def lead_names(self, item: DigestItem) -> str:
        return ", ".join(self.names.get(k, k) for k in item.leads) or "no lead"

    def mix_rows(self) -> list[tuple[str, list[int]]]:
        """(priority title, counts in `MIX_KEYS` order) per priority."""
        return [
            (self.digest.priority_title(n), [self.digest.mix[n].get(k, 0) for k in MIX_KEYS])
            for n in sorted(self.digest.mix)
        ]

    def trend_rows(self) -> list[tuple[str, list[int]]]:
        """(period, counts) for each earlier digest, oldest first, then now."""
        now = [sum(self.digest.mix[n].get(k, 0) for n in self.digest.mix) for k in MIX_KEYS]
        earlier = [
            (period, [mix.get(k, 0) for k in MIX_KEYS])
            for period, mix in self.digest.trend
            if period != self.digest.period
        ]
        return [*earlier, (f"{self.digest.period} (now)", now)]


@dataclass(frozen=True, slots=True)
class History:
    """A milestone's every answer, as the view shows it."""

    ref: str
    title: str
    leads: tuple[tuple[str, str], ...]  # (key, name)
    answers: tuple[Given, ...]
    names: Mapping[str, str] = field(default_factory=dict)


SIGNED_IN_LINK_LIFETIME = timedelta(hours=8)


@dataclass(frozen=True, slots=True)
class Coordinated:
    """A plan's network a signed-in coordinator sees."""

    plan_key: str
    plan_title: str
    network_key: str
    network_name: str


class LiveViews:
    """The live view's use-cases, one unit of work each."""

    def __init__(self, sessions: Sessions, *, clock: Clock, digest_of: DigestOf) -> None:
        self.sessions = sessions
        self.clock = clock
        self.digest_of = digest_of

    async def open(self, token_hash: str) -> ViewAccess | None:
        """The link's access, or None when it is unknown, expired or revoked. Reads only."""
        async with self.sessions() as session:
            access = await LiveViewRepository(session).find(token_hash)
        if access is None or not access.open_at(self.clock()):
            return None
        return access

    async def view(self, access: ViewAccess, filters: Filters) -> LiveView:
        async with self.sessions() as session:
            tracked = await PlanRepository(session).tracked(access.plan_key)
            names = await LiveViewRepository(session).names()
        today = local_date(self.clock(), tracked.plan.timezone)
        digest = await self.digest_of(access.plan_key, access.network_key, filters.as_of or today)
        rows = tuple(
            (section, item)
            for section in DigestSection
            for item in digest.sections[section]
            if filters.keeps(section, item)
        )
        network = tracked.network(access.network_key)
        actions = [a for a in tracked.actions if in_network(a, network)]
        lead_keys = sorted(
            {k for a in actions for m in a.milestones for k in (m.leads or a.leads)},
            key=lambda k: (names.get(k) or k).lower(),
        )
        numbers = sorted({a.priority for a in actions})
        return LiveView(
            access=access,
            plan_title=tracked.plan.title,
            digest=digest,
            today=today,
            filters=filters,
            rows=rows,
            priorities=tuple((n, digest.priority_title(n)) for n in numbers),
            leads=tuple((k, names.get(k, k)) for k in lead_keys),
            names=names,
        )

    async def history(self, access: ViewAccess, ref: str) -> History | None:
        """A milestone's history, when it is one of the network's; else None."""
        async with self.sessions() as session:
            tracked = await PlanRepository(session).tracked(access.plan_key, refs=[ref])
            network = tracked.network(access.network_key)
            for action in tracked.actions:
                if not in_network(action, network):
                    continue
                for milestone in action.milestones:
                    if milestone.ref == ref:
                        repository = LiveViewRepository(session)
                        names = await repository.names()
                        answers = await repository.history(access.plan_key, ref)
                        leads = milestone.leads or action.leads
                        return History(
                            ref,
                            milestone.title,
                            tuple((k, names.get(k, k)) for k in leads),
                            tuple(answers),
                            names,
                        )
        return None

    async def record(
        self,
        access: ViewAccess,
        line: ReplyLine,
        *,
        for_person: str,
        submission: str,
    ) -> OnBehalfResult:
        """Record an answer on a lead's behalf, of a milestone of the network's."""
        if await self.history(access, line.ref) is None:
            return OnBehalfResult(reason=f"{line.ref} is not one of this network's milestones")
        now = self.clock()
        async with self.sessions() as session, session.begin():
            return await record_on_behalf(
                session,
                OnBehalf(
                    access.plan_key,
                    line,
                    for_person,
                    access.email,
                    now,
                    f"view:{submission}",
                ),
            )

    async def withdraw(self, access: ViewAccess, ref: str, update_id: int) -> str | None:
        """Withdraw one of the network's milestone's answers; None when done, else why not."""
        history = await self.history(access, ref)
        if history is None or all(a.id != update_id for a in history.answers):
            return f"that answer is not one of {ref}'s"
        async with self.sessions() as session, session.begin():
            return await withdraw(
                session,
                plan_key=access.plan_key,
                update_id=update_id,
                recorded_by=access.email,
                now=self.clock(),
            )

    async def coordinated_by(self, email: str) -> list[Coordinated]:
        """The networks whose coordinators include `email`: what a coordinator signed in
        with that address sees."""
        async with self.sessions() as session:
            found = await LiveViewRepository(session).coordinated_by(email)
        return [Coordinated(p, t, n, name) for _, p, t, _, n, name in found]

    async def open_signed_in(
        self, email: str, plan_key: str, network_key: str, signer: Signer, base_url: str
    ) -> str | None:
        """A short-lived live-view link for a signed-in coordinator of that network (8
        hours, stored like the emailed ones); None when they are not one of its
        coordinators."""
        now = self.clock()
        async with self.sessions() as session, session.begin():
            for plan_id, p, _, network_id, n, _ in await LiveViewRepository(session).coordinated_by(
                email
            ):
                if (p, n) != (plan_key, network_key):
                    continue
                token = new_view_token()
                await LiveViewRepository(session).add_links(
                    [(email, view_hash(token, signer))],
                    plan_id=plan_id,
                    network_id=network_id,
                    now=now,
                    expires_at=now + SIGNED_IN_LINK_LIFETIME,
                )
                return view_url(base_url, token)
        return None
