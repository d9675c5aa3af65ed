"""Links to a person's update page (handlers/web): issued with a prompt or reminder, found
by the keyed hash of their token. Never commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, exists, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.domain.model import Person
from storage.models import PersonRow, PromptRow, WebLinkRow
from storage.prompts import StoredPrompt, stored_prompt
from storage.repositories import PersonRecord, person_from_row, person_record, utc


@dataclass(frozen=True, slots=True)
class FoundLink:
    """A stored link: whose it is, the prompt it answers, and whether it still works at the
    moment it was looked up."""

    prompt: StoredPrompt
    person: PersonRecord
    expires_at: datetime
    superseded: bool  # the person has had a newer prompt of the plan since
    delegate_key: str | None = None  # the key of the person's delegate, if they have one
    answering: Person | None = None  # the person as answering needs them
    carries: bool = True  # whether the prompt's message carried other prompts (a mailbox's)

    def open_at(self, now: datetime) -> bool:
        return not self.superseded and now < self.expires_at and not self.person.erased


# Built once: an alias per call defeats the statement cache, and a statement built per call
# costs its construction and its cache key on every page.
_Delegate = aliased(PersonRow, name="delegate")
_Newer = aliased(PromptRow, name="newer")
_FIND = (
    select(
        WebLinkRow,
        PromptRow,
        PersonRow,
        _Delegate.key,
        exists()
        .where(
            _Newer.plan_id == PromptRow.plan_id,
            _Newer.person_id == WebLinkRow.person_id,
            _Newer.created_at > PromptRow.created_at,
        )
        .label("newer"),
        exists().where(_Newer.sent_with == PromptRow.id).label("carries"),
    )
    .join(PromptRow, PromptRow.id == WebLinkRow.prompt_id)
    .join(PersonRow, PersonRow.id == WebLinkRow.person_id)
    .outerjoin(_Delegate, _Delegate.id == PersonRow.delegate_id)
    .where(WebLinkRow.token_hash.in_(bindparam("hashes", expanding=True)))
)


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
        return (await self.find_many([token_hash])).get(token_hash)

    async def find_many(self, token_hashes: Sequence[str]) -> dict[str, FoundLink]:
        """The links with these token hashes, by hash (those found), in one query: each with
        its prompt, its person and their delegate's key, and whether a newer prompt of the
        plan has gone to the person since."""
        if not token_hashes:
            return {}
        rows = await self.session.execute(_FIND, {"hashes": list(dict.fromkeys(token_hashes))})
        return {
            link.token_hash: FoundLink(
                stored_prompt(prompt),
                person_record(person),
                utc(link.expires_at),
                bool(is_superseded),
                delegate_key,
                person_from_row(person, delegate_key),
                bool(carrying),
            )
            for link, prompt, person, delegate_key, is_superseded, carrying in rows.tuples()
        }

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
