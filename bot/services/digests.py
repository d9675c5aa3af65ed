"""Posting digests: once per (plan, network, period), on the plan's digest schedule or by
hand, through the outbox — to the network's Slack channel, to its Teams channel (one row
per post, `bot.services.teams_digests`) and to each coordinator by email.

The `digests` row is the decision: it is inserted with `ON CONFLICT DO NOTHING` in the same
transaction as the outbox rows, so restarts and replicas post a period's digest once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from bot.domain.errors import PlanRetired
from bot.domain.model import Plan
from bot.domain.status import local_date
from bot.messages.emails import digest_email
from bot.metrics import count_digest_posted
from bot.services.live_view import issue_view_links
from bot.services.prompting import due_occurrence
from bot.services.teams_digests import live_view_link, teams_messages
from digests.content import Digest
from digests.html import render_html, render_text
from digests.slack import render_slack
from storage.digest_posts import DigestRepository
from storage.models import NetworkRow, PersonRow
from storage.outbox import NewMessage, OutboxRepository
from storage.repositories import PlanRepository
from storage.watermarks import WatermarkRepository

if TYPE_CHECKING:
    from bot.app import PlanPulse

log = logging.getLogger(__name__)
DIGEST_JOB = "digest"


@dataclass(frozen=True, slots=True)
class Posted:
    plan: str
    network: str
    period: str
    posted: bool  # False: this period's digest was already posted
    messages: int


class DigestPoster:
    def __init__(self, pulse: PlanPulse) -> None:
        self.pulse = pulse

    async def tick(self, now: datetime) -> list[Posted]:
        """Post every plan's digests whose schedule has come (catch-up once, as prompts)."""
        posted: list[Posted] = []
        async with self.pulse.sessions() as session:
            keys = await PlanRepository(session).keys()
        for key in keys:
            # A plan's first digest is its next scheduled one: a digest "caught up" from
            # before the plan was loaded would report a week nobody was asked about.
            due = await due_occurrence(
                self.pulse.sessions,
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
        plan = (await self.pulse.tracked(plan_key)).plan
        day = as_of or local_date(now, plan.timezone)
        digests = await self.pulse.digests(plan_key, network=network, as_of=day)
        results: list[Posted] = []
        async with self.pulse.sessions() as session, session.begin():
            plan_row = await PlanRepository(session).row(plan_key)
            assert plan_row is not None
            if plan_row.retired_at is not None:
                raise PlanRetired(plan_key, "it gets no digests")
            networks = {n.key: n for n in (await session.scalars(select(NetworkRow))).all()}
            people = (await session.scalars(select(PersonRow))).all()
            slack_ids = {p.key: p.slack_user_id for p in people if p.slack_user_id}
            names = {p.key: p.name for p in people}
            repo = DigestRepository(session)
            outbox = OutboxRepository(session)
            for digest in digests:
                row = networks[digest.network]
                digest_id = await repo.create(
                    plan_id=plan_row.id,
                    network_id=row.id,
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
                    self.pulse.settings.signer(),
                    plan_id=plan_row.id,
                    network_id=row.id,
                    addresses=_addresses(row.coordinators),
                    base_url=self.pulse.settings.web_base_url,
                    now=now,
                )
                messages = self._messages(
                    digest,
                    digest_id,
                    plan_row.title,
                    row,
                    names,
                    slack_ids,
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
                await WatermarkRepository(session).advance(plan_row.id, DIGEST_JOB, advance_to)
        return results

    def _messages(
        self,
        digest: Digest,
        digest_id: int,
        plan_title: str,
        network: NetworkRow,
        names: dict[str, str],
        slack_ids: Mapping[str, str],
        *,
        now: datetime,
        view_urls: Mapping[str, str] | None = None,
    ) -> list[NewMessage]:
        settings = self.pulse.settings
        messages: list[NewMessage] = []
        if settings.slack_enabled and network.slack_channel:
            posts = render_slack(digest, slack_ids=slack_ids)
            if settings.web_sign_in == "oidc":
                # Everyone in the channel sees a post: it links to the live view only where
                # opening it needs a sign-in, never with a token of its own.
                live = f"{settings.web_base_url}/live"
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
                    kind="digest",
                    channel="slack",
                    recipient=network.slack_channel,
                    payload={"channel": network.slack_channel, "posts": posts},
                )
            )
        if network.teams_webhook:
            live_view = live_view_link(settings.web_base_url, digest)
            messages += teams_messages(digest, digest_id, names=names, live_view=live_view)
        html = render_html(digest, names=names)
        text = render_text(digest)
        plan = Plan(key=digest.plan, title=plan_title)
        for address in _addresses(network.coordinators):
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
                    kind="digest",
                    channel="email",
                    recipient=address,
                    payload=email.payload(),
                    message_id=email.message_id,
                )
            )
        return messages


def _addresses(coordinators: str) -> Sequence[str]:
    return [a for a in coordinators.split(";") if a.strip()]


def _overall_mix(digest: Digest) -> dict[str, object]:
    total: dict[str, int] = {}
    for mix in digest.mix.values():
        for key, count in mix.items():
            total[key] = total.get(key, 0) + count
    return dict(total)
