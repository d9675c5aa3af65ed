"""Links to a person's update page (handlers/web): issued with a prompt or reminder, found
by the keyed hash of their token. Never commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import PersonRow, PromptRow, WebLinkRow
from storage.prompts import StoredPrompt, stored_prompt
from storage.repositories import PersonRecord, person_record, utc


@dataclass(frozen=True, slots=True)
class FoundLink:
    """A stored link: whose it is, the prompt it answers, and whether it still works at the
    moment it was looked up."""

    prompt: StoredPrompt
    person: PersonRecord
    expires_at: datetime
    superseded: bool  # the person has had a newer prompt of the plan since

    def open_at(self, now: datetime) -> bool:
        return not self.superseded and now < self.expires_at and not self.person.erased


class WebLinks:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self, links: list[tuple[int, int, str]], *, now: datetime, expires_at: datetime
    ) -> None:
        """Store (prompt id, person id, token hash) triples."""
        if links:
            await self.session.execute(
                insert(WebLinkRow),
                [
                    {
                        "prompt_id": prompt_id,
                        "person_id": person_id,
                        "token_hash": digest,
                        "created_at": utc(now),
                        "expires_at": utc(expires_at),
                    }
                    for prompt_id, person_id, digest in links
                ],
            )

    async def find(self, token_hash: str) -> FoundLink | None:
        """The link with this token hash, or None."""
        found = (
            await self.session.execute(
                select(WebLinkRow, PromptRow, PersonRow)
                .join(PromptRow, PromptRow.id == WebLinkRow.prompt_id)
                .join(PersonRow, PersonRow.id == WebLinkRow.person_id)
                .where(WebLinkRow.token_hash == token_hash)
            )
        ).first()
        if found is None:
            return None
        link, prompt, person = found[0], found[1], found[2]
        newer = await self.session.scalar(
            select(PromptRow.id)
            .where(
                PromptRow.plan_id == prompt.plan_id,
                PromptRow.person_id == link.person_id,
                PromptRow.created_at > prompt.created_at,
            )
            .limit(1)
        )
        return FoundLink(
            stored_prompt(prompt), person_record(person), utc(link.expires_at), newer is not None
        )

    async def open_prompt(self) -> tuple[StoredPrompt, PersonRecord] | None:
        """One prompt still waiting for its answer that was sent, the latest first: the
        one whose link `pulse run` shows in local mode."""
        found = (
            await self.session.execute(
                select(PromptRow, PersonRow)
                .join(PersonRow, PersonRow.id == PromptRow.person_id)
                .where(
                    PromptRow.answered_at.is_(None),
                    PromptRow.sent_with.is_(None),
                    PersonRow.erased_at.is_(None),
                )
                .order_by(PromptRow.created_at.desc(), PersonRow.key)
                .limit(1)
            )
        ).first()
        if found is None:
            return None
        return stored_prompt(found[0]), person_record(found[1])
