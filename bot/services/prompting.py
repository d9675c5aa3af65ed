"""The scheduler tick: an idempotent pass that derives from our own tables what is due —
this cycle's prompts, and reminders — and writes each decision with its outbox row in one
transaction. APScheduler only calls it every minute; the database is the truth, and a
stored watermark makes a missed schedule run once on start, never once per missed tick.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.clock import Clock
from bot.domain.contacts import prompt_contacts
from bot.domain.cycles import (
    CyclePolicy,
    MailboxPrompt,
    Occurrence,
    PlannedPrompt,
    PromptItem,
    Schedule,
    WorkingCalendar,
    cycle_key,
    due_now,
    mailbox_groups,
    plan_prompts,
    reminder_due_at,
)
from bot.domain.errors import PersonNotFound, PlanRetired
from bot.domain.mail_states import OutboxKind
from bot.domain.model import Channel, Contact, Person, Plan
from bot.domain.status import local_date
from bot.domain.teams import TeamsConversation
from bot.messages.emails import new_token, prompt_email, token_hash
from bot.messages.slack_blocks import with_update_link
from bot.messages.teams_cards import TEAMS_CHAT, teams_payload
from bot.messages.web_links import LINK_LIFETIME, link_hash, new_link_token, update_url
from bot.signing import Signer
from storage.db import Session, Sessions
from storage.outbox import NewMessage, OutboxRepository
from storage.prompts import NewPrompt, PromptRepository, StoredPrompt
from storage.repositories import (
    PeopleRepository,
    PersonRecord,
    PlanRepository,
    StoredPlan,
    TrackedPlan,
)
from storage.teams_chats import TeamsConversations
from storage.watermarks import WatermarkRepository
from storage.web_links import WebLinks

log = logging.getLogger(__name__)

# (plan, person, items, prompt id, whom to ask about the plan) → the DM's posts
SlackPromptRenderer = Callable[
    [Plan, Person, Sequence[PromptItem], int, Sequence[Contact]], list[dict[str, Any]]
]
SlackLookup = Callable[[str], Awaitable[str | None]]  # email → Slack user id, or None
# (plan, person, items, prompt id, whom to ask, update-page link) → the cards' activities
TeamsPromptRenderer = Callable[
    [Plan, Person, Sequence[PromptItem], int, Sequence[Contact], str | None],
    list[dict[str, Any]],
]
TOKEN_LIFETIME = timedelta(days=42)
PROMPT_JOB = "prompt"


@dataclass(slots=True)
class CycleReport:
    plan: str
    cycle: str
    planned: list[PlannedPrompt] = field(default_factory=list)
    created: int = 0
    already: int = 0
    skipped: list[str] = field(default_factory=list)  # people who cannot be reached
    # People who prefer Slack but whom Slack does not know by their email: asked by email.
    not_in_slack: list[str] = field(default_factory=list)
    # People who prefer Teams but for whom the Teams app is not installed: asked by email.
    not_in_teams: list[str] = field(default_factory=list)


@dataclass(slots=True)
class TickReport:
    cycles: list[CycleReport] = field(default_factory=list)
    reminders: int = 0


def cycle_policy(plan: StoredPlan) -> CyclePolicy:
    raw = plan.settings.get("cycles") or {}
    return CyclePolicy.from_settings(raw if isinstance(raw, dict) else {})


def working_calendar(policy: CyclePolicy, around: datetime) -> WorkingCalendar:
    return WorkingCalendar.for_region(policy.region, range(around.year - 1, around.year + 2))


async def due_occurrence(
    sessions: Sessions,
    plan_key: str,
    job: str,
    schedule: Callable[[CyclePolicy], Schedule],
    *,
    now: datetime,
    catch_up_first: bool,
) -> Occurrence | None:
    """The occurrence of a plan's schedule that is due now, judged from the job's stored
    watermark (catch-up runs once). With no watermark yet, `catch_up_first` says whether
    the latest past occurrence runs; if not, the watermark starts at `now` instead."""
    async with sessions() as session:
        row = await PlanRepository(session).stored(plan_key)
        if row is None:
            return None
        watermark = await WatermarkRepository(session).get(row.id, job)
    if watermark is None and not catch_up_first:
        async with sessions() as session, session.begin():
            await WatermarkRepository(session).advance(row.id, job, now)
        return None
    policy = cycle_policy(row)
    return due_now(
        schedule(policy),
        timezone=row.timezone,
        calendar=working_calendar(policy, now),
        watermark=watermark,
        now=now,
    )


class Cycles:
    """Plans cycles and reminders; shared by the tick and `pulse prompt`."""

    def __init__(
        self,
        sessions: Sessions,
        *,
        mail_from: str,
        clock: Clock,
        slack_prompt: SlackPromptRenderer | None = None,
        slack_lookup: SlackLookup | None = None,
        signer: Signer | None = None,
        web_base_url: str | None = None,
        teams_prompt: TeamsPromptRenderer | None = None,
    ) -> None:
        self.sessions = sessions
        # Set when Teams is on: people who prefer Teams and whose conversation the bot has
        # learnt (the app installed for them) are asked by a card in it.
        self.teams_prompt = teams_prompt
        # Where the update pages are (PULSE_BASE_URL): prompts and reminders link to one
        # when it and a signer are given.
        self.web_base_url = web_base_url
        # Signs the prompt tokens (PULSE_SECRET_KEY); None issues unsigned ones.
        self.signer = signer
        self.mail_from = mail_from
        self.clock = clock
        # Set when Slack is on: people who prefer Slack and have a Slack id are asked by DM.
        self.slack_prompt = slack_prompt
        # Finds the Slack id of someone who prefers Slack but has none yet, by their email.
        self.slack_lookup = slack_lookup

    def channel_for(
        self, person: Person, teams: Mapping[str, TeamsConversation] | None = None
    ) -> str | None:
        """Where this person is asked: Slack or Teams when they prefer it and we can (for
        Teams: `teams` holds their conversation), else email."""
        if self.slack_prompt is not None and person.prefers is Channel.SLACK:
            if person.slack_user_id:
                return "slack"
        if self.teams_prompt is not None and person.prefers is Channel.TEAMS:
            if teams and person.key in teams:
                return "teams"
        return "email" if person.email else None

    async def plan_keys(self) -> list[str]:
        async with self.sessions() as session:
            return await PlanRepository(session).keys()

    async def tick(self, now: datetime | None = None) -> TickReport:
        """One idempotent pass over every plan: due cycles, then due reminders."""
        now = now or self.clock()
        report = TickReport()
        for key in await self.plan_keys():
            cycle = await self._tick_prompts(key, now)
            if cycle is not None:
                report.cycles.append(cycle)
            report.reminders += await self.send_reminders(key, now)
        return report

    async def _tick_prompts(self, plan_key: str, now: datetime) -> CycleReport | None:
        due = await due_occurrence(
            self.sessions, plan_key, PROMPT_JOB, lambda p: p.prompt, now=now, catch_up_first=True
        )
        if due is None:
            return None
        return await self.start_cycle(plan_key, cycle=due.cycle, now=now, advance_to=due.at)

    async def start_cycle(
        self,
        plan_key: str,
        *,
        now: datetime,
        cycle: str | None = None,
        only: str | None = None,
        dry_run: bool = False,
        advance_to: datetime | None = None,
    ) -> CycleReport:
        """Plan this cycle's prompts and enqueue them, with the watermark, in one transaction.

        Prompts are unique per (plan, person, cycle): running it again, or concurrently,
        prompts nobody twice. `cycle` defaults to the current week, so a manual prompt and
        the scheduled one of the same week are the same prompt.
        """
        not_in_slack = [] if dry_run else await self.resolve_slack_ids()
        async with self.sessions() as session, session.begin():
            teams: dict[str, TeamsConversation] = {}
            not_in_teams: list[str] = []
            if self.teams_prompt is not None:
                teams_repo = TeamsConversations(session)
                not_in_teams = await teams_repo.not_known()
            plan_repo = PlanRepository(session)
            tracked = await plan_repo.tracked(plan_key)
            plan_row = await plan_repo.stored(plan_key)
            assert plan_row is not None
            if plan_row.retired:
                raise PlanRetired(plan_key, "it gets no prompts")
            if only is not None and only not in {p.key for p in tracked.people}:
                known = sorted(p.key for p in tracked.people)
                raise PersonNotFound(only, f"plan {plan_key!r}", known)
            today = local_date(now, tracked.plan.timezone)
            report = CycleReport(plan_key, cycle or cycle_key(today))
            report.not_in_slack = not_in_slack
            if self.teams_prompt is not None:
                teams = await teams_repo.for_people(
                    [p.key for p in tracked.people if p.prefers is Channel.TEAMS]
                )
                planned_keys = {p.key for p in tracked.people}
                report.not_in_teams = [k for k in not_in_teams if k in planned_keys]
            report.planned = plan_prompts(
                tracked.plan,
                tracked.actions,
                tracked.updates,
                tracked.people,
                today=today,
                only=only,
            )
            if dry_run:
                return report
            people = {p.key: p for p in await PeopleRepository(session).records()}
            by_key = {p.key: p for p in tracked.people}
            prompts = PromptRepository(session)
            already = await prompts.prompted(plan_row.id, report.cycle)
            wanted: list[tuple[PlannedPrompt, Person]] = []
            for planned in report.planned:
                person = by_key[planned.person_key]
                channel = self.channel_for(person, teams)
                bounced = channel == "email" and people[person.key].bounced
                if channel is None or bounced:
                    report.skipped.append(person.key)
                    log.warning(
                        "cannot prompt %s for %s: %s",
                        person.key,
                        plan_key,
                        "their email bounces" if bounced else "no email address",
                    )
                elif people[person.key].id in already:
                    report.already += 1
                else:
                    wanted.append((planned, person))
            created = await prompts.create_many(
                [
                    NewPrompt(
                        plan_row.id,
                        people[person.key].id,
                        report.cycle,
                        self.channel_for(person, teams) or "email",
                        tuple(item.milestone_ref for item in planned.items),
                        planned.on_behalf_of,
                    )
                    for planned, person in wanted
                ],
                now=now,
            )
            report.already += len(wanted) - len(created)
            report.created = len(created)
            # Another ticker may have prompted some first: only ours go out, and those of
            # people asked by email at one shared mailbox go out together.
            ours = [(p, person) for p, person in wanted if people[person.key].id in created]
            groups = mailbox_groups(
                [planned for planned, _ in ours],
                {
                    person.key: person.email
                    for _, person in ours
                    if person.email and self.channel_for(person, teams) == "email"
                },
            )
            await self._enqueue_prompts(
                session, tracked, groups, created, people, now=now, teams=teams
            )
            if advance_to is not None:
                await WatermarkRepository(session).advance(plan_row.id, PROMPT_JOB, advance_to)
        log.info(
            "cycle %s of %s: %d prompts enqueued, %d already prompted, %d unreachable",
            report.cycle,
            plan_key,
            report.created,
            report.already,
            len(report.skipped),
        )
        return report

    async def resolve_slack_ids(self) -> list[str]:
        """Look up, by email, the Slack id of everyone who prefers Slack and has none; store
        those found. Returns the keys of the people Slack does not know (they are asked by
        email). Slack is asked outside any transaction, so a slow answer blocks no writer."""
        if self.slack_lookup is None or self.slack_prompt is None:
            return []
        async with self.sessions() as session:
            wanted = await PeopleRepository(session).wanting_slack_ids()
        found: dict[str, str] = {}
        missing: list[str] = []
        for key, email in wanted:
            try:
                slack_id = await self.slack_lookup(email)
            except Exception as failed:  # Slack down or refusing: try again next cycle
                log.warning("cannot look up %s in Slack by email: %s", key, failed)
                slack_id = None
            if slack_id:
                found[key] = slack_id
            else:
                missing.append(key)
                log.warning("%s prefers Slack but Slack has nobody with their email", key)
        if found:
            async with self.sessions() as session, session.begin():
                await PeopleRepository(session).set_slack_ids(found)
        return missing

    async def _enqueue_prompts(
        self,
        session: Session,
        tracked: TrackedPlan,
        groups: Sequence[MailboxPrompt],
        created: dict[int, int],
        people: dict[str, PersonRecord],
        *,
        now: datetime,
        teams: Mapping[str, TeamsConversation] | None = None,
    ) -> None:
        """Render each new prompt's message once, freeze it into its outbox row, store its
        token hash. A shared mailbox's prompts go in the first one's message, which alone
        has a token; the others are marked as sent with it."""
        by_key = {p.key: p for p in tracked.people}
        repo = PromptRepository(session)
        tokens: list[tuple[int, str]] = []
        links: list[tuple[int, int, str]] = []
        messages: list[NewMessage] = []
        for group in groups:
            planned = group.carrier
            person = by_key[planned.person_key]
            prompt_id = created[people[person.key].id]
            token = new_token(self.signer)
            tokens.append((prompt_id, token_hash(token, self.signer)))
            link = self._link(links, prompt_id, people[person.key].id)
            contacts = _contacts(tracked, group)
            email = None
            if person.email:
                message = prompt_email(
                    plan=tracked.plan,
                    person=person,
                    items=planned.items,
                    token=token,
                    mail_from=self.mail_from,
                    now=now,
                    shared=_shared(group, by_key),
                    update_url=link,
                    contacts=contacts,
                )
                email = NewMessage(
                    dedupe_key=f"prompt:{prompt_id}",
                    kind=OutboxKind.PROMPT,
                    channel="email",
                    recipient=person.email,
                    payload=message.payload(),
                    message_id=message.message_id,
                    prompt_id=prompt_id,
                )
            if len(group.prompts) > 1:
                await repo.send_with(
                    prompt_id, [created[people[p.person_key].id] for p in group.prompts[1:]]
                )
                log.info(
                    "one prompt for %s to their shared mailbox",
                    ", ".join(p.person_key for p in group.prompts),
                )
            if self.channel_for(person) == "slack" and self.slack_prompt and person.slack_user_id:
                payload: dict[str, Any] = {
                    "channel": person.slack_user_id,
                    "posts": self.slack_prompt(
                        tracked.plan, person, planned.items, prompt_id, contacts
                    ),
                }
                if link is not None:
                    payload["posts"] = with_update_link(payload["posts"], link)
                if email is not None:
                    # A DM that fails for good (account gone, not found) goes by email instead.
                    payload["fallback"] = {
                        "channel": "email",
                        "recipient": email.recipient,
                        "payload": email.payload,
                        "message_id": email.message_id,
                    }
                messages.append(
                    NewMessage(
                        dedupe_key=f"prompt:{prompt_id}",
                        kind=OutboxKind.PROMPT,
                        channel="slack",
                        recipient=person.slack_user_id,
                        payload=payload,
                        prompt_id=prompt_id,
                    )
                )
            elif (
                self.channel_for(person, teams) == "teams"
                and self.teams_prompt is not None
                and teams is not None
            ):
                conversation = teams[person.key]
                activities = self.teams_prompt(
                    tracked.plan, person, planned.items, prompt_id, contacts, link
                )
                # A long prompt is several cards, a row each: one unknown outcome then
                # holds back only its own card.
                for part, activity in enumerate(activities, start=1):
                    messages.append(
                        NewMessage(
                            dedupe_key=f"prompt:{prompt_id}" + (f":{part}" if part > 1 else ""),
                            kind=OutboxKind.PROMPT,
                            channel=TEAMS_CHAT,
                            # The person's key: a Teams user id is personal data, and the
                            # worker logs recipients.
                            recipient=person.key,
                            payload=teams_payload(
                                service_url=conversation.service_url,
                                conversation_id=conversation.conversation_id,
                                activity=activity,
                                # The first card Teams refuses for good goes by email
                                # instead, with every milestone.
                                fallback=_fallback(email) if part == 1 else None,
                            ),
                            prompt_id=prompt_id,
                        )
                    )
            elif email is not None:
                messages.append(email)
        await repo.add_tokens(tokens, expires_at=now + TOKEN_LIFETIME)
        await WebLinks(session).add(links, now=now, expires_at=now + LINK_LIFETIME)
        await OutboxRepository(session).enqueue_many(messages, now=now)

    def _link(
        self, links: list[tuple[int, int, str]], prompt_id: int, person_id: int
    ) -> str | None:
        """A new update-page link for this person's prompt, its hash added to `links`; None
        when the pages are not configured."""
        if self.web_base_url is None or self.signer is None:
            return None
        token = new_link_token()
        links.append((prompt_id, person_id, link_hash(token, self.signer)))
        return update_url(self.web_base_url, token)

    async def send_reminders(self, plan_key: str, now: datetime) -> int:
        """Enqueue the one reminder of each silent prompt whose time has come."""
        async with self.sessions() as session, session.begin():
            plan_repo = PlanRepository(session)
            row = await plan_repo.stored(plan_key)
            if row is None:
                return 0
            policy = cycle_policy(row)
            calendar = working_calendar(policy, now)
            if not calendar.is_working_day(local_date(now, row.timezone)):
                return 0
            prompts = PromptRepository(session)
            waiting = [
                p
                for p in await prompts.awaiting_reminder(row.id)
                if p.sent_at is not None
                and reminder_due_at(
                    p.sent_at,
                    remind_after=policy.remind_after,
                    schedule=policy.prompt,
                    timezone=row.timezone,
                    calendar=calendar,
                )
                <= now
            ]
            if not waiting:
                return 0
            tracked = await plan_repo.tracked(plan_key)
            people_rows = {r.id: r for r in await PeopleRepository(session).records()}
            rows_by_key = {r.key: r for r in people_rows.values()}
            by_key = {p.key: p for p in tracked.people}
            # The silent people of a shared mailbox get one reminder between them, threaded
            # under the combined prompt that asked them.
            by_message: dict[int, list[StoredPrompt]] = {}
            for prompt in waiting:
                by_message.setdefault(prompt.sent_with or prompt.id, []).append(prompt)
            outbox = OutboxRepository(session)
            sent = 0
            for carrier_id, silent in by_message.items():
                still: list[PlannedPrompt] = []
                for prompt in sorted(silent, key=lambda p: people_rows[p.person_id].key):
                    if not await prompts.mark_reminded(prompt.id, now):
                        continue
                    key = people_rows[prompt.person_id].key
                    items = _still_open(tracked, key, prompt.milestone_refs, now)
                    if items:
                        still.append(PlannedPrompt(key, tuple(items), ()))
                if not still:
                    continue
                group = MailboxPrompt(tuple(still))
                person = by_key[group.carrier.person_key]
                if not person.email or rows_by_key[person.key].bounced:
                    continue
                token = new_token(self.signer)
                await prompts.add_tokens(
                    [(carrier_id, token_hash(token, self.signer))], expires_at=now + TOKEN_LIFETIME
                )
                links: list[tuple[int, int, str]] = []
                link = self._link(links, carrier_id, rows_by_key[person.key].id)
                await WebLinks(session).add(links, now=now, expires_at=now + LINK_LIFETIME)
                original = await outbox.message_id_for(f"prompt:{carrier_id}")
                message = prompt_email(
                    plan=tracked.plan,
                    person=person,
                    items=group.carrier.items,
                    token=token,
                    mail_from=self.mail_from,
                    now=now,
                    reminder=True,
                    in_reply_to=original,
                    shared=_shared(group, by_key),
                    update_url=link,
                    contacts=_contacts(tracked, group),
                )
                await outbox.enqueue(
                    dedupe_key=f"reminder:{carrier_id}",
                    kind=OutboxKind.REMINDER,
                    channel="email",
                    recipient=person.email,
                    payload=message.payload(),
                    message_id=message.message_id,
                    prompt_id=carrier_id,
                    now=now,
                )
                sent += 1
            if sent:
                log.info("%d reminders enqueued for %s", sent, plan_key)
            return sent


def _fallback(email: NewMessage | None) -> dict[str, Any] | None:
    if email is None:
        return None
    return {
        "channel": "email",
        "recipient": email.recipient,
        "payload": email.payload,
        "message_id": email.message_id,
    }


def _shared(
    group: MailboxPrompt, by_key: Mapping[str, Person]
) -> list[tuple[Person, Sequence[PromptItem]]]:
    """The sections of a shared mailbox's combined prompt; none for one person's prompt."""
    if len(group.prompts) == 1:
        return []
    return [(by_key[key], items) for key, items in group.sections()]


def _contacts(tracked: TrackedPlan, group: MailboxPrompt) -> tuple[Contact, ...]:
    """Whom a (combined) prompt names for questions: from the actions it asks about."""
    return prompt_contacts(
        tracked.plan,
        action_refs={item.action_ref for p in group.prompts for item in p.items},
        actions=tracked.actions,
        networks=tracked.networks,
        people=tracked.people,
    )


def _still_open(
    tracked: TrackedPlan, person_key: str, refs: Sequence[str], now: datetime
) -> list[PromptItem]:
    today = local_date(now, tracked.plan.timezone)
    planned = plan_prompts(
        tracked.plan,
        tracked.actions,
        tracked.updates,
        tracked.people,
        today=today,
        only=person_key,
    )
    wanted = set(refs)
    return [item for p in planned for item in p.items if item.milestone_ref in wanted]
