"""Evidence of impact (issue 17): given with a rating of 1, it is stored with the answer and
read back as the milestone's evidence; a withdrawn answer's evidence no longer counts, and
evidence with any other rating is refused with nothing recorded; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select

from bot.domain.replies import ReplyLine
from bot.services.answers import OnBehalf, record_on_behalf, withdraw
from storage.evidence import EvidenceRepository
from storage.models import UpdateRow
from tests.web import Site

OVERSIGHT = "chair@council.example"


async def _on_behalf(site: Site, line: ReplyLine, message_id: str, lead: str = "AW") -> str:
    async with site.pulse.sessions() as session, session.begin():
        done = await record_on_behalf(
            session, OnBehalf("small", line, lead, OVERSIGHT, site.clock(), message_id)
        )
    return "" if done.recorded else done.reason


async def test_evidence_given_with_an_achieved_rating_is_the_milestones_evidence(
    site: Site,
) -> None:
    """Rated 1 with evidence, the milestone's evidence is that text; a later answer with new
    evidence replaces it, and withdrawing that answer brings the earlier evidence back."""
    first = ReplyLine("2.3", 1, "Done", None, False, 1, evidence="Fewer children wait")
    assert await _on_behalf(site, first, "e1") == ""
    site.clock.now += timedelta(hours=1)
    later = ReplyLine("2.3", 1, "Done", None, False, 1, evidence="Audit shows less drift")
    assert await _on_behalf(site, later, "e2") == ""
    async with site.pulse.sessions() as session:
        found = await EvidenceRepository(session).of_plan("small")
        latest_id = await session.scalar(select(func.max(UpdateRow.id)))
    assert {ref: e.text for ref, e in found.items()} == {"2.3": "Audit shows less drift"}
    assert latest_id is not None
    site.clock.now += timedelta(hours=1)
    async with site.pulse.sessions() as session, session.begin():
        assert (
            await withdraw(
                session,
                plan_key="small",
                update_id=latest_id,
                recorded_by=OVERSIGHT,
                now=site.clock(),
            )
            is None
        )
    async with site.pulse.sessions() as session:
        found = await EvidenceRepository(session).of_plan("small")
    assert {ref: e.text for ref, e in found.items()} == {"2.3": "Fewer children wait"}


async def test_evidence_with_another_rating_records_nothing(site: Site) -> None:
    """Evidence with a rating of 2 is refused with a reason naming the rating of 1, and no
    update is written."""
    async with site.pulse.sessions() as session:
        before = await session.scalar(select(func.count()).select_from(UpdateRow))
    reason = await _on_behalf(
        site, ReplyLine("2.3", 2, "Nearly", None, False, 1, evidence="Some"), "e3"
    )
    assert "rating of 1" in reason
    async with site.pulse.sessions() as session:
        after = await session.scalar(select(func.count()).select_from(UpdateRow))
        found = await EvidenceRepository(session).of_plan("small")
    assert after == before
    assert found == {}


async def test_the_digest_flags_achieved_without_evidence_as_of_its_day(site: Site) -> None:
    """2.3 and 2.4 achieved on Monday, neither with evidence: Monday's workforce digest
    flags both; evidence given for 2.3 on Tuesday is in Tuesday's digest and not Monday's."""
    for ref, lead in (("2.3", "AW"), ("2.4", "PB")):
        line = ReplyLine(ref, 1, "Done", None, False, 1)
        assert await _on_behalf(site, line, f"d{ref}", lead) == ""
    site.clock.now += timedelta(days=1)
    line = ReplyLine("2.3", 1, None, None, False, 1, evidence="Leavers say why & we act")
    assert await _on_behalf(site, line, "d3") == ""

    async def achieved(day: date) -> dict[str, str | None]:
        [digest] = await site.pulse.digests("small", network="workforce", as_of=day)
        return {item["ref"]: item["evidence"] for item in digest.to_json()["achieved"]}

    assert await achieved(date(2026, 11, 23)) == {"2.3": None, "2.4": None}
    assert await achieved(date(2026, 11, 24)) == {"2.3": "Leavers say why & we act", "2.4": None}
    [tuesday] = await site.pulse.digests("small", network="workforce", as_of=date(2026, 11, 24))
    assert tuesday.unevidenced() == 1
