"""The board pack (`pulse pack`, issue 17): what changed since the last board, the
exceptions, what was achieved, response rates and the rating mix with its trend, from a
scripted fortnight of the small plan on SQLite and PostgreSQL; and the Word and HTML
documents a board member opens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from docx import Document
from docx.oxml.ns import qn
from selenium.webdriver.chrome.webdriver import WebDriver
from sqlalchemy import select, update

from bot.app import PlanPulse
from bot.domain.model import Source
from bot.services.packs import PackPeriodInvalid, board_pack
from digests.pack import Change, Exception_, Pack, trend_days
from digests.pack_html import render_pack_html
from handlers.files.pack_docx import write_pack_docx
from storage.models import MilestoneRow, PersonRow, PlanRow, PromptRow
from storage.prompts import NewPrompt, PromptRepository
from storage.repositories import UpdateRepository
from tests.conftest import Clock, import_small_plan, running_pulse
from tests.integration.test_web_browser import fits, serious_violations

IMPORTED = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)
SINCE = date(2026, 11, 20)  # the last board
AS_OF = date(2026, 12, 4)
NOW = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)


def at(day: int, hour: int = 10) -> datetime:
    """A moment of November or December 2026 (days past 30 run into December)."""
    return datetime(2026, 11, 1, hour, tzinfo=UTC) + timedelta(days=day - 1)


async def _script(pulse: PlanPulse) -> None:
    """A fortnight after the last board: ratings up and down, an achievement, a revised
    date with a support ask, and prompts some leads answered and some did not."""
    async with pulse.sessions() as session, session.begin():
        ids = dict(
            (await session.execute(select(MilestoneRow.ref, MilestoneRow.id))).tuples().all()
        )
        people = dict((await session.execute(select(PersonRow.key, PersonRow.id))).tuples().all())
        plan_id = await session.scalar(select(PlanRow.id).where(PlanRow.key == "small"))
        assert plan_id is not None
        updates = UpdateRepository(session)

        async def rate(ref: str, when: datetime, rating: int, person: str, **extra: object) -> None:
            await updates.add(
                milestone_id=ids[ref],
                rating=rating,
                note="scripted",
                source=Source.EMAIL,
                given_at=when,
                recorded_at=when,
                person_id=people[person],
                **extra,  # type: ignore[arg-type]
            )

        await rate("1.2-2", at(23), 3, "DC")  # up from 4
        await rate("2.3", at(24), 3, "AW")  # down from 2, then overdue on 30 November
        await rate("1.2-1", at(25), 1, "PB")  # achieved
        await rate("2.4", at(26), 3, "PB", revised_due=date(2027, 1, 31), needs_support=True)
        await rate("1.2-3", at(27), 3, "DC")
        await rate("1.2-3", at(31), 4, "DC")  # worsening again: 4 after 3
        prompts = PromptRepository(session)
        # (person, cycle, sent, answered)
        script = [
            ("AW", "2026-W47", at(16, 9), at(16, 15)),
            ("AW", "2026-W48", at(23, 9), None),
            ("AW", "2026-W49", at(30, 9), None),
            ("DC", "2026-W48", at(23, 9), at(23, 10)),
            ("DC", "2026-W49", at(30, 9), at(31, 10)),
            ("PB", "2026-W48", at(23, 9), at(25, 10)),
            ("PB", "2026-W49", at(30, 9), None),
            ("GR", "2026-W49", at(30, 9), None),
        ]
        for person, cycle, sent, answered in script:
            made = await prompts.create_many(
                [NewPrompt(plan_id, people[person], cycle, "email", ("1.1",), ())], now=sent
            )
            await session.execute(
                update(PromptRow)
                .where(PromptRow.id == made[people[person]])
                .values(sent_at=sent, answered_at=answered)
            )


@pytest.fixture
async def pulse(db_url: str, tmp_path: Path) -> AsyncIterator[PlanPulse]:
    async with running_pulse(db_url, tmp_path / "var", Clock(NOW)) as app:
        await import_small_plan(app.sessions, now=IMPORTED)
        await _script(app)
        yield app


async def _pack(pulse: PlanPulse, network: str | None = None) -> Pack:
    return await board_pack(
        pulse.sessions, "small", since=SINCE, as_of=None, now=NOW, network=network
    )


def refs(pack: Pack, change: Change) -> list[tuple[str, str]]:
    return [(line.ref, line.detail) for line in pack.changes[change]]


async def test_the_pack_says_what_changed_since_the_last_board(pulse: PlanPulse) -> None:
    """Ratings up and down, newly overdue, achieved, revised dates and new support asks since
    the last board are listed, each with what changed in words and dates as people write
    them, and nothing from before the last board."""
    pack = await _pack(pulse)
    assert pack.as_of == AS_OF
    assert refs(pack, Change.BETTER) == [("1.2-2", "from 4 to 3")]
    assert refs(pack, Change.WORSE) == [("2.3", "from 2 to 3")]
    assert refs(pack, Change.ACHIEVED) == [("1.2-1", "on 25 November 2026")]
    # 1.1 was overdue before the last board already; 1.2-1 was achieved before it fell due.
    assert refs(pack, Change.NEWLY_OVERDUE) == [("2.3", "4 days overdue")]
    assert refs(pack, Change.REVISED) == [("2.4", "now aimed at 31 January 2027")]
    assert refs(pack, Change.SUPPORT) == [("2.4", "asked once")]


async def test_exceptions_and_achievements_use_names_and_the_plans_order(
    pulse: PlanPulse,
) -> None:
    """Milestones rated 3–4 past their timescale, worsening ones and leads silent two cycles
    running are the exceptions; achieved milestones say no evidence is recorded; leads are
    named, and lines keep the plan's order of priority, action and milestone."""
    pack = await _pack(pulse)
    late = pack.exceptions[Exception_.LATE]
    assert [(line.ref, line.detail) for line in late] == [
        ("1.1", "rated 3, 34 days past"),
        ("2.3", "rated 3, 4 days past"),
    ]
    assert late[0].leads == ("Alex Walker", "Morgan Clarke")
    assert [line.ref for line in pack.exceptions[Exception_.WORSENING]] == ["1.2-3"]
    assert [(s.name, s.cycles) for s in pack.silent] == [("Alex Walker", 2)]
    [achieved] = pack.achieved
    assert (achieved.ref, achieved.detail) == ("1.2-1", "achieved, no evidence")
    assert (achieved.priority, achieved.action_ref, achieved.action_title) == (
        1,
        "1.2",
        "Early help workforce training",
    )


async def test_response_rates_per_lead_and_network(pulse: PlanPulse) -> None:
    """Each lead's share of this period's prompts answered, and each network's over its
    leads, count only prompts sent after the last board."""
    pack = await _pack(pulse)
    leads = {r.name: (r.answered, r.prompted) for r in pack.lead_responses}
    assert leads == {
        "Alex Walker": (0, 2),
        "Dana Cole": (2, 2),
        "Priya Bains": (1, 2),
        "Gwen Roberts": (0, 1),
    }
    networks = {r.name: (r.answered, r.prompted) for r in pack.network_responses}
    assert networks == {
        "Early help network": (3, 6),
        "Plan oversight group": (3, 7),
        "Workforce network": (3, 7),
    }


async def test_the_rating_mix_per_priority_and_its_trend_are_counted(pulse: PlanPulse) -> None:
    """The rating mix per priority is counted at each trend day, from the last board's day
    to the pack's, so the board sees it move."""
    pack = await _pack(pulse)
    assert pack.trend_days == trend_days(SINCE, AS_OF)
    assert pack.trend_days[0] == SINCE
    assert pack.trend_days[-1] == AS_OF
    first, last = pack.mix[1][0], pack.mix[1][-1]
    assert first == {"1": 0, "2": 0, "3": 1, "4": 3, "unrated": 0}
    assert last == {"1": 1, "2": 0, "3": 2, "4": 1, "unrated": 0}
    assert pack.mix[2][0] == {"1": 1, "2": 1, "3": 0, "4": 0, "unrated": 2}
    assert pack.mix[2][-1] == {"1": 1, "2": 0, "3": 2, "4": 0, "unrated": 1}


async def test_a_networks_pack_has_only_its_actions(pulse: PlanPulse) -> None:
    """With a network, the pack lists only the milestones of that network's actions and its
    rating mix counts only them."""
    pack = await _pack(pulse, network="early-help")
    assert pack.network_name == "Early help network"
    assert {line.priority for c in Change for line in pack.changes[c]} == {1}
    assert set(pack.mix) == {1}
    assert sum(pack.mix[1][-1].values()) == 4
    assert [r.name for r in pack.network_responses] == ["Early help network"]


async def test_since_must_come_before_the_packs_day(pulse: PlanPulse) -> None:
    """A period that ends before it starts is refused with a message naming both days."""
    with pytest.raises(PackPeriodInvalid, match="2026-12-04"):
        await board_pack(pulse.sessions, "small", since=AS_OF, as_of=AS_OF, now=NOW)


async def test_the_word_pack_has_headings_repeated_headers_and_alt_text(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """The DOCX opens in python-docx with Heading 1 parts, tables whose header row repeats
    on each page, and every chart carrying alt text that says what it shows."""
    path = tmp_path / "pack.docx"
    write_pack_docx(await _pack(pulse), path)
    document = Document(str(path))
    headings = [(p.style.name, p.text) for p in document.paragraphs if p.style is not None]
    level_one = [text for style, text in headings if style == "Heading 1"]
    assert level_one == [
        "What changed",
        "Exceptions",
        "Achieved",
        "Response rate",
        "Rating mix per priority",
    ]
    assert ("Heading 2", "Rating down") in headings
    assert ("Heading 3", "2 Workforce") in headings
    assert document.tables
    for table in document.tables:
        header = table.rows[0]._tr.trPr
        assert header is not None
        assert header.find(qn("w:tblHeader")) is not None
    texts = [c.text for t in document.tables for r in t.rows for c in r.cells]
    assert "Alex Walker, Morgan Clarke" in texts
    assert "achieved, no evidence" in texts
    pictures = document.inline_shapes
    assert len(pictures) == 2
    for shape in pictures:
        alt = shape._inline.docPr.get("descr")
        assert alt.startswith("Rating mix of ")
        assert "20 November 2026" in alt


async def test_the_word_pack_keeps_markup_tabs_and_line_breaks_of_a_plan_pasted_from_word(
    pulse: PlanPulse, tmp_path: Path
) -> None:
    """A milestone title with markup characters, a tab, Word's own line break (a vertical
    tab) and a stray control character is written into the Word pack's tables as the text
    it is, line break included, instead of failing the whole pack."""
    async with pulse.sessions() as session, session.begin():
        await session.execute(
            update(MilestoneRow)
            .where(MilestoneRow.ref == "1.2-1")
            .values(title="Train <all> staff & managers\tin May\x0bthen June\x01")
        )
    path = tmp_path / "pack.docx"
    write_pack_docx(await _pack(pulse), path)
    document = Document(str(path))
    texts = {c.text for t in document.tables for r in t.rows for c in r.cells}
    assert "1.2-1 Train <all> staff & managers\tin May\nthen June" in texts


async def test_the_html_pack_reflows_and_passes_axe(
    pulse: PlanPulse, tmp_path: Path, browser: WebDriver, axe_source: str
) -> None:
    """The HTML pack fits a 375 px phone and a 1280 px screen without horizontal scrolling
    and has no serious or critical axe-core violation; user text is escaped."""
    html = render_pack_html(await _pack(pulse))
    assert "<script>" not in html
    path = tmp_path / "pack.html"
    path.write_text(html, encoding="utf-8")
    browser.get(path.as_uri())
    assert fits(browser, 375)
    assert fits(browser, 1280)
    assert serious_violations(browser, axe_source) == []
