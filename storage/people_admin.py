"""People changed without a re-import: `pulse people set` (name, addresses, channel,
timezone) and `pulse actions reassign` (one lead's live actions to another). Each change
is appended to the audit log in the caller's transaction, by internal id and field name,
never with the name or address itself (the audit log is not rewritten by an erasure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.errors import PersonChangeError, PersonNotFound, PlanNotFound
from storage.models import ActionLeadRow, ActionRow, PersonRow, PlanRow
from storage.personal_data import AuditLog
from storage.repositories import not_staged

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SLACK_ID = re.compile(r"^[UW][A-Z0-9]{2,31}$")
KNOWN_SHOWN = 40  # keys listed in an unknown-key message; more are elided


@dataclass(frozen=True, slots=True)
class PersonChanges:
    """What `pulse people set` was asked to change; None leaves a field as it is, and ""
    clears an optional one (Slack id, timezone)."""

    name: str | None = None
    email: str | None = None
    slack_user_id: str | None = None
    prefers: str | None = None
    timezone: str | None = None


async def known_person(session: AsyncSession, key: str, *, where: str = "the store") -> PersonRow:
    """The person with this key or alias, not forgotten; else PersonNotFound listing the
    valid keys."""
    found = await session.scalar(
        select(PersonRow).where(PersonRow.key == key, PersonRow.erased_at.is_(None))
    )
    if found is None:
        candidates = await session.scalars(
            select(PersonRow).where(PersonRow.aliases.contains(key), PersonRow.erased_at.is_(None))
        )
        found = next((p for p in candidates if key in p.aliases.split(";")), None)
    if found is None:
        keys = (
            await session.scalars(
                select(PersonRow.key).where(PersonRow.erased_at.is_(None)).order_by(PersonRow.key)
            )
        ).all()
        shown = list(keys[:KNOWN_SHOWN]) + (["…"] if len(keys) > KNOWN_SHOWN else [])
        raise PersonNotFound(key, where, shown)
    return found


def _checked(changes: PersonChanges) -> dict[str, str | None]:
    """The columns to write, each value checked; PersonChangeError names the first bad one."""
    values: dict[str, str | None] = {}
    if changes.name is not None:
        name = " ".join(changes.name.split())
        if not name:
            raise PersonChangeError("--name cannot be empty")
        values["name"] = name
    if changes.email is not None:
        email = changes.email.strip()
        if not _EMAIL.match(email):
            raise PersonChangeError(f"--email: not an email address: {changes.email!r}")
        values["email"] = email
    if changes.slack_user_id is not None:
        slack = changes.slack_user_id.strip()
        if slack and not _SLACK_ID.match(slack):
            raise PersonChangeError(
                f"--slack: not a Slack member id (like U0123ABCD): {changes.slack_user_id!r}"
            )
        values["slack_user_id"] = slack or None
    if changes.prefers is not None:
        prefers = changes.prefers.strip().casefold()
        if prefers not in ("email", "slack", "teams"):
            raise PersonChangeError(
                f"--prefers must be email, slack or teams, not {changes.prefers!r}"
            )
        values["prefers"] = prefers
    if changes.timezone is not None:
        tz = changes.timezone.strip()
        if tz:
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise PersonChangeError(f"--timezone: unknown timezone {tz!r}") from None
        values["timezone"] = tz or None
    if not values:
        raise PersonChangeError(
            "nothing to change: give --name, --email, --slack, --prefers or --timezone"
        )
    return values


async def set_person(
    session: AsyncSession,
    key: str,
    changes: PersonChanges,
    *,
    now: datetime,
    actor: str,
    channel: str = "cli",
) -> tuple[str, list[str]]:
    """Change a person's details in the caller's transaction, and audit it. Returns their
    key and the fields that changed (an empty list when each was already so)."""
    values = _checked(changes)
    person = await known_person(session, key)
    if values.get("prefers") == "slack" and not values.get("slack_user_id", person.slack_user_id):
        raise PersonChangeError(f"{person.key} has no Slack id: give --slack too")
    changed = {k: v for k, v in values.items() if getattr(person, k) != v}
    if "email" in changed:
        # A new address starts with a clean record: the bounces were the old one's.
        changed["email_bounced_at"] = None
    if not changed:
        return person.key, []
    await session.execute(update(PersonRow).where(PersonRow.id == person.id).values(**changed))
    fields = sorted(k for k in changed if k != "email_bounced_at")
    await AuditLog(session).append(
        at=now,
        action="person_changed",
        actor=actor,
        channel=channel,
        person_id=person.id,
        details={"fields": fields},
    )
    return person.key, fields


@dataclass(frozen=True, slots=True)
class Reassigned:
    """What `pulse actions reassign` moved: "plan ref" of each action."""

    from_key: str
    to_key: str
    actions: tuple[str, ...]


async def reassign_actions(
    session: AsyncSession,
    *,
    from_key: str,
    to_key: str,
    plan_key: str | None,
    now: datetime,
    actor: str,
    channel: str = "cli",
) -> Reassigned:
    """Move every live action `from_key` leads (in `plan_key`, or in every plan) to
    `to_key`, in the caller's transaction, and audit it per plan. An action both already
    lead is left with `to_key` alone."""
    source = await known_person(session, from_key)
    target = await known_person(session, to_key)
    if source.id == target.id:
        raise PersonChangeError("--from and --to are the same person")
    plans = select(PlanRow.id, PlanRow.key).where(not_staged())  # none still importing
    if plan_key is not None:
        found = await session.scalar(select(PlanRow.id).where(PlanRow.key == plan_key))
        if found is None:
            raise PlanNotFound(plan_key)
        plans = plans.where(PlanRow.id == found)
    rows = (
        await session.execute(
            select(ActionRow.id, PlanRow.key, ActionRow.ref)
            .join(PlanRow, PlanRow.id == ActionRow.plan_id)
            .join(ActionLeadRow, ActionLeadRow.action_id == ActionRow.id)
            .where(
                ActionLeadRow.person_id == source.id,
                ActionRow.retired.is_(False),
                ActionRow.plan_id.in_(select(plans.subquery().c.id)),
            )
            .order_by(PlanRow.key, ActionRow.position, ActionRow.id)
        )
    ).all()
    if not rows:
        where = f" in plan {plan_key!r}" if plan_key else ""
        raise PersonChangeError(f"{source.key} leads no live actions{where}; nothing to move")
    ids = [r[0] for r in rows]
    both = set(
        (
            await session.scalars(
                select(ActionLeadRow.action_id).where(
                    ActionLeadRow.person_id == target.id, ActionLeadRow.action_id.in_(ids)
                )
            )
        ).all()
    )
    if both:
        await session.execute(
            delete(ActionLeadRow).where(
                ActionLeadRow.person_id == source.id, ActionLeadRow.action_id.in_(both)
            )
        )
    if rest := [i for i in ids if i not in both]:
        await session.execute(
            update(ActionLeadRow)
            .where(ActionLeadRow.person_id == source.id, ActionLeadRow.action_id.in_(rest))
            .values(person_id=target.id)
        )
    by_plan: dict[str, list[str]] = {}
    for _, plan, ref in rows:
        by_plan.setdefault(plan, []).append(ref)
    log = AuditLog(session)
    for plan, refs in by_plan.items():
        await log.append(
            at=now,
            action="actions_reassigned",
            actor=actor,
            channel=channel,
            person_id=source.id,
            plan_key=plan,
            details={"to_person_id": target.id, "actions": refs},
        )
    return Reassigned(source.key, target.key, tuple(f"{p} {r}" for _, p, r in rows))
