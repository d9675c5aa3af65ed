"""What the Slack app asks of the database besides answers: who a Slack user is, their
latest prompt, and their absence (`/pulse away`, `/pulse delegate`). Never commits;
returns read models, never ORM rows."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import PersonRow, PlanRow, PromptRow
from storage.personal_data import AuditLog
from storage.prompts import StoredPrompt, stored_prompt
from storage.repositories import PersonRecord, StoredPlan, person_record, stored_plan


class SlackPeople:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_slack_id(self, slack_user_id: str) -> PersonRecord | None:
        """The person with this Slack user id (the first, should two share it)."""
        found: PersonRow | None = await self.session.scalar(
            select(PersonRow)
            .where(PersonRow.slack_user_id == slack_user_id)
            .order_by(PersonRow.id)
            .limit(1)
        )
        return person_record(found) if found is not None else None

    async def latest_prompt(self, person_id: int) -> StoredPrompt | None:
        latest: PromptRow | None = await self.session.scalar(
            select(PromptRow)
            .where(PromptRow.person_id == person_id)
            .order_by(PromptRow.created_at.desc(), PromptRow.id.desc())
            .limit(1)
        )
        return stored_prompt(latest) if latest is not None else None

    async def plans(self) -> list[StoredPlan]:
        """The plans still in use (a retired plan prompts nobody)."""
        rows = await self.session.scalars(
            select(PlanRow).where(PlanRow.retired_at.is_(None)).order_by(PlanRow.key)
        )
        return [stored_plan(row) for row in rows.all()]

    async def set_away(
        self, person_id: int, until: date | None, *, at: datetime, channel: str
    ) -> None:
        """Set (or clear) the person's absence, themselves, through `channel`; audited."""
        person = await self.session.get(PersonRow, person_id)
        if person is not None and person.away_until != until:
            person.away_until = until
            action = "away_set" if until else "away_cleared"
            await self._audit(action, person_id, at, until, channel)

    async def set_delegate(
        self, person_id: int, delegate_id: int | None, *, at: datetime, channel: str
    ) -> None:
        """Name (or clear) the person's delegate, themselves, through `channel`; audited."""
        person = await self.session.get(PersonRow, person_id)
        if person is not None and person.delegate_id != delegate_id:
            person.delegate_id = delegate_id
            action = "delegate_set" if delegate_id else "delegate_cleared"
            await self._audit(action, person_id, at, None, channel, delegate_id=delegate_id)

    async def _audit(
        self,
        action: str,
        person_id: int,
        at: datetime,
        until: date | None,
        channel: str,
        **details: int | None,
    ) -> None:
        await AuditLog(self.session).append(
            at=at,
            action=action,
            actor=f"person:{person_id}",
            channel=channel,
            person_id=person_id,
            details={**({"until": until.isoformat()} if until else {}), **details},
        )
