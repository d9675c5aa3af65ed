"""Posting digests: once per (plan, network, period), on the plan's digest schedule or by
hand, through the outbox — to the network's Slack channel, to its Teams channel (one row
per post, `bot.services.teams_digests`) and to each coordinator by email.

The `digests` row is the decision: it is inserted with `ON CONFLICT DO NOTHING` in the same
transaction as the outbox rows, so restarts and replicas post a period's digest once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from bot.clock import Clock
from bot.domain.errors import PlanRetired
from bot.domain.mail_states import OutboxKind
from bot.domain.model import Action, Plan
from bot.domain.status import end_of_day, local_date
from bot.messages.emails import digest_email
from bot.metrics import count_digest_posted
from bot.services.live_view import issue_view_links
from bot.services.prompting import due_occurrence
from bot.services.teams_digests import live_view_link, teams_messages
from bot.settings import Settings
from digests.content import Digest, Shown, build_digest, iso_week, plan_statuses
from digests.html import render_html, render_text
from digests.slack import render_slack
from storage.db import Sessions
from storage.digest_posts import (
    DigestInputs,
    DigestNetwork,
    DigestPrompt,
    DigestReads,
    DigestRepository,
)
from storage.outbox import NewMessage, OutboxRepository
from storage.repositories import PlanRepository
from storage.watermarks import WatermarkRepository

log = logging.getLogger(__name__)
DIGEST_JOB = "digest"


@dataclass(frozen=True, slots=True)
class Posted:
    plan: str
    network: str
    period: str
    posted: bool  # False: this period's digest was already posted
    messages: int


async def plan_digests(
    sessions: Sessions,
    plan_key: str,
    *,
    today: Clock,
    network: str | None = None,
    as_of: date | None = None,
) -> list[Digest]:
    """The digest content of each of the plan's networks (or of one), as of `as_of` (the
    plan's today by default): updates given by the end of that day, and the latest cycle's
    prompts that went out by then."""
    async with sessions() as session:
        plan = await PlanRepository(session).get(plan_key)
        day = as_of or local_date(today(), plan.timezone)
        until = end_of_day(day, plan.timezone)
        inputs = await DigestReads(session).inputs(
            plan_key,
            until=until,
            networks=[network] if network else None,
            before=iso_week(day),
        )
    return build_digests(plan, inputs, day=day, until=until)


def build_digests(plan: Plan, inputs: DigestInputs, *, day: date, until: datetime) -> list[Digest]:
    """Each network's digest from what `DigestReads.inputs` read: who was asked about its
    actions in the cycle, who has not answered by `until`, and its trend."""
    tracked = inputs.tracked
    statuses = plan_statuses(plan, tracked.actions, tracked.updates, as_of=day)
    # Group once: with hundreds of networks, scanning every action per network adds up.
    followed: dict[str, list[Action]] = defaultdict(list)
    for action in tracked.actions:
        for key in action.networks:
            followed[key].append(action)
    sent = [p for p in inputs.prompts if p.sent_at is not None and p.sent_at < until]
    wanted = {ref for prompt in sent for ref in prompt.milestone_refs}
    network_of_ref = {
        m.ref: action.networks
        for action in tracked.actions
        for m in action.milestones
        if m.ref in wanted
    }
    asked: dict[str, list[DigestPrompt]] = defaultdict(list)
    for prompt in sent:
        touched = {key for ref in prompt.milestone_refs for key in network_of_ref.get(ref, ())}
        for key in touched:
            asked[key].append(prompt)
    priorities = {p.number: p.title for p in tracked.priorities}
    names = {key: p.name for p in tracked.people for key in (p.key, *p.aliases) if p.name}
    shown: dict[str, Shown] = {}
    digests = []
    for key in inputs.trends:
        n = tracked.network(key)
        actions = tracked.actions if n.all_actions else followed[n.key]
        mine = sent if n.all_actions else asked[n.key]
        silent = [p.person_key for p in mine if p.answered_at is None or p.answered_at >= until]
        digests.append(
            build_digest(
                plan,
                n,
                actions,
                tracked.updates,
                as_of=day,
                awaiting=silent,
                prompted=len(mine),
                answered=len(mine) - len(silent),
                statuses=statuses,
                priorities=priorities,
                trend=inputs.trends[n.key],
                shown=shown,
                names=names,
                evidence=inputs.evidence,
            )
        )
    return digests


class DigestPoster:
    """Posts digests through the outbox, as `settings` say: to a network's Slack channel when
    Slack is on, to its Teams channel when it has a webhook, and by email to its
    coordinators, each with a link to the live view."""

    def __init__(self, sessions: Sessions, settings: Settings, *, clock: Clock) -> None:
        self.sessions = sessions
        self.settings = settings
        self.clock = clock

    async def tick(self, now: datetime) -> list[Posted]:
        """Post every plan's digests whose schedule has come (catch-up once, as prompts)."""
        posted: list[Posted] = []
        async with self.sessions() as session:
            keys = await PlanRepository(session).keys()
        for key in keys:
            # A plan's first digest is its next scheduled one: a digest "caught up" from
            # before the plan was loaded would report a week nobody was asked about.
            due = await due_occurrence(
                self.sessions,
                key,
                DIGEST_JOB,
                lambda p: p.digest,
                now=now,
                catch_up_first=False,
            )
            if due is not None:
                posted += await self.post(key, now=now, as_of=due.scheduled, advance_to=due.at)
        return posted

    async def post(
        self,
        plan_key: str,
        *,
        now: datetime,
        as_of: date | None = None,
        network: str | None = None,
        advance_to: datetime | None = None,
    ) -> list[Posted]:
        """Enqueue this period's digest of each network (or one) unless already posted."""
        async with self.sessions() as session:
            plan = await PlanRepository(session).get(plan_key)
        day = as_of or local_date(now, plan.timezone)
        digests = await plan_digests(
            self.sessions, plan_key, today=self.clock, network=network, as_of=day
        )
        results: list[Posted] = []
        async with self.sessions() as session, session.begin():
            audience = await DigestReads(session).audience(plan_key)
            assert audience is not None
            if audience.retired:
                raise PlanRetired(plan_key, "it gets no digests")
            repo = DigestRepository(session)
            outbox = OutboxRepository(session)
            for digest in digests:
                target = audience.networks[digest.network]
                digest_id = await repo.create(
                    plan_id=audience.plan_id,
                    network_id=target.id,
                    period=digest.period,
                    as_of=digest.as_of,
                    mix=_overall_mix(digest),
                    now=now,
                )
                if digest_id is None:
                    results.append(Posted(plan_key, digest.network, digest.period, False, 0))
                    continue
                view_urls = await issue_view_links(
                    session,
                    self.settings.signer(),
                    plan_id=audience.plan_id,
                    network_id=target.id,
                    addresses=list(target.coordinators),
                    base_url=self.settings.web_base_url,
                    now=now,
                )
                messages = self._messages(
                    digest,
                    digest_id,
                    audience.plan_title,
                    target,
                    audience.names,
                    audience.slack_ids,
                    now=now,
                    view_urls=view_urls,
                )
                await outbox.enqueue_many(messages, now=now)
                count_digest_posted(session)
                results.append(Posted(plan_key, digest.network, digest.period, True, len(messages)))
                log.info(
                    "digest %s of %s for %s enqueued: %d messages",
                    digest.period,
                    digest.network,
                    plan_key,
                    len(messages),
                )
            if advance_to is not None:
                await WatermarkRepository(session).advance(audience.plan_id, DIGEST_JOB, advance_to)
        return results

    def _messages(
        self,
        digest: Digest,
        digest_id: int,
        plan_title: str,
        network: DigestNetwork,
        names: dict[str, str],
        slack_ids: Mapping[str, str],
        *,
        now: datetime,
        view_urls: Mapping[str, str] | None = None,
    ) -> list[NewMessage]:
        settings = self.settings
        messages: list[NewMessage] = []
        if settings.slack_enabled and network.slack_channel:
            posts = render_slack(digest, slack_ids=slack_ids)
            live = live_view_link(settings.web_base_url, sign_in=settings.web_sign_in)
            if live is not None:
                posts.append(
                    {
                        "text": f"The live view of this network: {live}",
                        "blocks": [
                            {
                                "type": "context",
                                "elements": [
                                    {
                                        "type": "mrkdwn",
                                        "text": f"<{live}|Open the live view> "
                                        "(sign in with your council account)",
                                    }
                                ],
                            }
                        ],
                    }
                )
            messages.append(
                NewMessage(
                    dedupe_key=f"digest:{digest_id}:slack",
                    kind=OutboxKind.DIGEST,
                    channel="slack",
                    recipient=network.slack_channel,
                    payload={"channel": network.slack_channel, "posts": posts},
                )
            )
        if network.teams_webhook:
            live_view = live_view_link(settings.web_base_url, sign_in=settings.web_sign_in)
            messages += teams_messages(digest, digest_id, names=names, live_view=live_view)
        html = render_html(digest, names=names)
        text = render_text(digest)
        plan = Plan(key=digest.plan, title=plan_title)
        for address in network.coordinators:
            email = digest_email(
                plan=plan,
                network_name=network.name,
                period=digest.period_title,  # "week of 4 June 2018", as people read it
                recipient=address,
                html=html,
                text=text,
                mail_from=settings.sender,
                now=now,
                digest_id=digest_id,
                view_url=(view_urls or {}).get(address),
            )
            messages.append(
                NewMessage(
                    dedupe_key=f"digest:{digest_id}:email:{address.lower()}",
                    kind=OutboxKind.DIGEST,
                    channel="email",
                    recipient=address,
                    payload=email.payload(),
                    message_id=email.message_id,
                )
            )
        return messages


def _overall_mix(digest: Digest) -> dict[str, object]:
    total: dict[str, int] = {}
    for mix in digest.mix.values():
        for key, count in mix.items():
            total[key] = total.get(key, 0) + count
    return dict(total)
