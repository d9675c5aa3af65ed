"""A lead who changes an answer on the update page within the same prompt (issue 14): the
change replaces the earlier answer for the milestone's status, "worse" is judged against the
answer before this prompt (the note rule and the `worsening` reason alike), and the history
keeps both answers; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from bot.domain.model import Source
from bot.domain.status import Reason, Status
from storage.models import MilestoneRow, UpdateRow
from storage.repositories import UpdateRepository
from tests.integration.test_web_links import answers, fetch
from tests.web import Site

ALEX = "alex.walker"


async def status_of(site: Site, ref: str, *, as_of: date | None = None) -> Status:
    lines = await site.pulse.statuses("small", as_of=as_of)
    return next(line.status for line in lines if line.milestone.ref == ref)


async def test_changing_back_to_the_rating_before_the_prompt_is_not_worsening(
    site: Site,
) -> None:
    """Rated 2 before the prompt, answered 1 on the page and then changed back to 2: no note
    is asked for, the milestone is not "worsening", its rating is 2, and both answers stay in
    its history."""
    link = site.link_for(ALEX)
    _, page, _ = await fetch(link)
    # 2.3 (due 30 November, rated 2 before the prompt) is the page's second milestone.
    status, done, _ = await fetch(
        link, data=answers(page, m1_rating="3", m1_note="Drafting", m2_rating="1")
    )
    assert status == 200, done
    site.clock.now += timedelta(hours=2)
    _, page, _ = await fetch(link)
    status, done, _ = await fetch(
        link, data=answers(page, m1_rating="3", m1_note="Drafting", m2_rating="2")
    )
    assert status == 200, done
    assert "your update is recorded" in done
    now = await status_of(site, "2.3")
    assert now.rating == 2
    assert Reason.WORSENING not in now.reasons
    async with site.pulse.sessions() as session:
        given = (
            await session.scalars(
                select(UpdateRow.rating)
                .where(UpdateRow.source == Source.WEB.value, UpdateRow.note.is_(None))
                .order_by(UpdateRow.id)
            )
        ).all()
    assert given == [1, 2]
    # Once a later answer is given, Monday is looked back at from the history: the same.
    async with site.pulse.sessions() as session, session.begin():
        milestone = await session.scalar(select(MilestoneRow.id).where(MilestoneRow.ref == "2.3"))
        assert milestone is not None
        await UpdateRepository(session).add(
            milestone_id=milestone,
            rating=None,
            note="Tuesday's word",
            source=Source.CLI,
            given_at=site.clock.now + timedelta(days=1),
            recorded_at=site.clock.now + timedelta(days=1),
        )
    again = await status_of(site, "2.3", as_of=site.clock.now.date())
    assert again.rating == 2
    assert Reason.WORSENING not in again.reasons


async def test_a_change_worse_than_before_the_prompt_needs_its_note_and_is_worsening(
    site: Site,
) -> None:
    """Rated 2 before the prompt, answered 1, then changed to 3: worse than before the prompt,
    so the page asks for a note, and once given the milestone is "worsening"."""
    link = site.link_for(ALEX)
    _, page, _ = await fetch(link)
    await fetch(link, data=answers(page, m1_rating="3", m1_note="Drafting", m2_rating="1"))
    site.clock.now += timedelta(hours=2)
    _, page, _ = await fetch(link)
    status, back, _ = await fetch(
        link, data=answers(page, m1_rating="3", m1_note="Drafting", m2_rating="3")
    )
    assert status == 400
    assert 'id="m2-note-error"' in back
    status, done, _ = await fetch(
        link,
        data=answers(
            page, m1_rating="3", m1_note="Drafting", m2_rating="3", m2_note="Analyst left"
        ),
    )
    assert status == 200, done
    now = await status_of(site, "2.3")
    assert now.rating == 3
    assert Reason.WORSENING in now.reasons
