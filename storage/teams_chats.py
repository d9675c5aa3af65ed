"""Each person's Teams conversation with the bot (README "Microsoft Teams"): stored when the
app is installed for them, read when their prompt is sent. Never commits.

The Teams user id and the conversation are personal data: exported with the person
(storage/personal_data.py) and deleted with them; never logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.model import Channel
from bot.domain.teams import TeamsConversation
from storage.models import PersonRow, TeamsConversationRow
from storage.repositories import utc


def _conversation(row: TeamsConversationRow) -> TeamsConversation:
    return TeamsConversation(
        teams_user_id=row.teams_user_id,
        conversation_id=row.conversation_id,
        service_url=row.service_url,
        tenant_id=row.tenant_id,
        aad_object_id=row.aad_object_id,
    )


@dataclass(frozen=True, slots=True)
class PersonRef:
    """Who a command is about: enough to name them and to change their absence."""

    id: int
    key: str
    name: str
    timezone: str | None


def _ref(row: PersonRow) -> PersonRef:
    return PersonRef(row.id, row.key, row.name, row.timezone)


class TeamsConversations:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def person_by_email(self, email: str) -> str | None:
        """The key of the one person (not forgotten) who has this address, or None."""
        address = email.strip().lower()
        if not address:
            return None
        rows = (
            await self.session.scalars(
                select(PersonRow).where(
                    PersonRow.erased_at.is_(None),
                    or_(
                        func.lower(PersonRow.email) == address,
                        PersonRow.other_emails.contains(address),
                    ),
                )
            )
        ).all()
        matching = [
            r
            for r in rows
            if (r.email or "").lower() == address or address in r.other_emails.split(";")
        ]
        return matching[0].key if len(matching) == 1 else None

    async def person(self, key: str) -> PersonRef:
        row = await self.session.scalar(select(PersonRow).where(PersonRow.key == key))
        if row is None:
            raise LookupError(key)
        return _ref(row)

    async def person_by_name(self, name: str) -> PersonRef | None:
        """The one person (not forgotten) with this name or key, in any case; else None."""
        wanted = " ".join(name.split()).casefold()
        if not wanted:
            return None
        rows = (
            await self.session.scalars(
                select(PersonRow).where(
                    PersonRow.erased_at.is_(None),
                    or_(func.lower(PersonRow.name) == wanted, func.lower(PersonRow.key) == wanted),
                )
            )
        ).all()
        return _ref(rows[0]) if len(rows) == 1 else None

    async def remember(
        self, person_key: str, conversation: TeamsConversation, *, now: datetime
    ) -> bool:
        """Store (or replace) this person's conversation; False when there is no such person."""
        person_id = await self.session.scalar(
            select(PersonRow.id).where(PersonRow.key == person_key, PersonRow.erased_at.is_(None))
        )
        if person_id is None:
            return False
        await self.session.execute(
            delete(TeamsConversationRow).where(
                or_(
                    TeamsConversationRow.person_id == person_id,
                    TeamsConversationRow.teams_user_id == conversation.teams_user_id,
                )
            )
        )
        self.session.add(
            TeamsConversationRow(
                person_id=person_id,
                teams_user_id=conversation.teams_user_id,
                aad_object_id=conversation.aad_object_id,
                tenant_id=conversation.tenant_id,
                conversation_id=conversation.conversation_id,
                service_url=conversation.service_url,
                updated_at=utc(now),
            )
        )
        await self.session.flush()
        return True

    async def forget_user(self, teams_user_id: str) -> bool:
        """The app was removed: that conversation is no longer ours to post to."""
        result = await self.session.execute(
            delete(TeamsConversationRow).where(TeamsConversationRow.teams_user_id == teams_user_id)
        )
        return bool(getattr(result, "rowcount", 0))

    async def person_for_user(self, teams_user_id: str) -> str | None:
        """The key of the person whose Teams user id this is."""
        key: str | None = await self.session.scalar(
            select(PersonRow.key)
            .join(TeamsConversationRow, TeamsConversationRow.person_id == PersonRow.id)
            .where(
                TeamsConversationRow.teams_user_id == teams_user_id,
                PersonRow.erased_at.is_(None),
            )
        )
        return key

    async def for_people(self, person_keys: Sequence[str]) -> dict[str, TeamsConversation]:
        """The stored conversations of these people, by person key."""
        if not person_keys:
            return {}
        rows = (
            await self.session.execute(
                select(PersonRow.key, TeamsConversationRow)
                .join(TeamsConversationRow, TeamsConversationRow.person_id == PersonRow.id)
                .where(PersonRow.key.in_(list(person_keys)))
            )
        ).all()
        return {key: _conversation(row) for key, row in rows}

    async def not_known(self) -> list[str]:
        """The keys of people who prefer Teams but whom Teams has not introduced to the bot
        (the app is not installed for them yet): they are asked by email."""
        known = select(TeamsConversationRow.person_id)
        return list(
            (
                await self.session.scalars(
                    select(PersonRow.key)
                    .where(
                        PersonRow.prefers == Channel.TEAMS.value,
                        PersonRow.erased_at.is_(None),
                        PersonRow.id.not_in(known),
                    )
                    .order_by(PersonRow.key)
                )
            ).all()
        )
