"""Prompts made on demand, outside the scheduled cycle (`bot/services/prompting.py` runs that): the
prompt a lead opens with `/pulse` in Slack, and the milestones it lists. Any channel that
lets a lead ask to answer now (the web form, Teams next) calls the same function."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from bot.domain.cycles import PromptItem, cycle_key, plan_prompts
from bot.domain.status import local_date
from storage.db import Session
from storage.prompts import NewPrompt, PromptRepository
from storage.repositories import PlanRepository, TrackedPlan
from storage.slack_people import SlackPeople


def prompt_item(tracked: TrackedPlan, ref: str, today: date, lead: str) -> PromptItem | None:
    """The milestone `ref` as a prompt lists it, as it stands `today`; None when it is gone."""
    for action in tracked.actions:
        for milestone in action.milestones:
            if milestone.ref != ref:
                continue
            status = tracked.status(milestone, today=today)
            return PromptItem.of(milestone, status, action_ref=action.ref, on_behalf_of=lead)
    return None


def prompt_items(
    tracked: TrackedPlan, refs: Sequence[str], today: date, lead: str
) -> list[PromptItem]:
    found = (prompt_item(tracked, ref, today, lead) for ref in refs)
    return [item for item in found if item is not None]


def led_by(tracked: TrackedPlan, person_key: str, today: date) -> list[PromptItem]:
    """Every live milestone `person_key` leads (its own leads, else its action's)."""
    refs = [
        m.ref
        for action in tracked.actions
        for m in action.milestones
        if person_key in (m.leads or action.leads)
    ]
    return prompt_items(tracked, refs, today, person_key)


async def prompt_on_demand(
    session: Session, *, person_id: int, person_key: str, channel: str, now: datetime
) -> tuple[int, list[PromptItem]] | None:
    """The prompt a person asks to answer now: this cycle's, else one made now from what
    they lead (in the caller's transaction), else their latest. None when there is nothing
    to ask about."""
    people = SlackPeople(session)
    latest = await people.latest_prompt(person_id)
    plans = await people.plans()
    for plan in plans:
        tracked = await PlanRepository(session).tracked(plan.key)
        today = local_date(now, tracked.plan.timezone)
        if latest is not None and latest.plan_id == plan.id:
            if latest.cycle == cycle_key(today):
                return latest.id, prompt_items(tracked, latest.milestone_refs, today, person_key)
        planned = plan_prompts(
            tracked.plan,
            tracked.actions,
            tracked.updates,
            tracked.people,
            today=today,
            only=person_key,
        )
        if not planned or not planned[0].items:
            continue
        mine = planned[0]
        created = await PromptRepository(session).create_many(
            [
                NewPrompt(
                    plan.id,
                    person_id,
                    cycle_key(today),
                    channel,
                    tuple(i.milestone_ref for i in mine.items),
                    mine.on_behalf_of,
                )
            ],
            now=now,
        )
        prompt_id = created.get(person_id)
        if prompt_id is None:  # prompted this cycle meanwhile: use that prompt
            latest = await people.latest_prompt(person_id)
            if latest is None:
                continue
            return latest.id, prompt_items(tracked, latest.milestone_refs, today, person_key)
        return prompt_id, list(mine.items)
    if latest is not None:
        for plan in plans:
            if plan.id == latest.plan_id:
                tracked = await PlanRepository(session).tracked(plan.key)
                today = local_date(now, tracked.plan.timezone)
                return latest.id, prompt_items(tracked, latest.milestone_refs, today, person_key)
    return None
