"""Evidence of impact where coordinators and boards read it (issue 17, item 3), on SQLite and
PostgreSQL: the live view's milestones show an achieved one's evidence or "achieved, no
evidence", each answer in a history its evidence, and the downloads an Evidence column; the
board pack shows stored evidence and flags achieved milestones without."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from docx import Document
from openpyxl import load_workbook
from sqlalchemy import select

from bot.app import PlanPulse
from bot.domain.model import Source
from bot.domain.replies import ReplyLine
from bot.services.answers import OnBehalf, record_on_behalf
from digests.pack_html import render_pack_html
from handlers.files.pack_docx import write_pack_docx
from storage.models import MilestoneRow
from storage.repositories import UpdateRepository
from tests.conftest import Clock, import_small_plan, running_pulse
from tests.integration.test_board_pack import IMPORTED, NOW, _pack, _script, at
from tests.integration.test_live_view import OVERSIGHT, view_link
from tests.integration.test_web_links import fetch
from tests.web import Site

# Markup, an ampersand and a formula's opening: escaped on the page, quoted in a spreadsheet.
PACK_EVIDENCE = "40 staff trained <i>in person</i> & online"
EVIDENCE = "=Leavers <b>say</b> why & we act: https://council.example/exit-audit"


async def achieve(site: Site) -> None:
    """2.3 achieved with evidence (for AW), 2.4 achieved without (for PB)."""
    for ref, lead, evidence in (("2.3", "AW", EVIDENCE), ("2.4", "PB", None)):
        async with site.pulse.sessions() as session, session.begin():
            line = ReplyLine(ref, 1, "Done", None, False, 1, evidence=evidence)
            done = await record_on_behalf(
                session, OnBehalf("small", line, lead, OVERSIGHT, site.clock(), f"ev-{ref}")
            )
            assert done.recorded, done.reason


async def test_the_live_view_shows_evidence_or_flags_its_absence(site: Site) -> None:
    """The milestone list shows 2.3's evidence (escaped) and "Achieved, no evidence" for
    2.4, and counts the one without; 2.3's history shows the evidence with the answer."""
    link = await view_link(site, OVERSIGHT)
    await achieve(site)
    status, page, _ = await fetch(link)
    assert status == 200
    assert "1 achieved without evidence" in page
    shown = page.split("2.3 Exit interview analysis</a>")[1].split("</li>")[0]
    assert (
        "<dt>Evidence</dt><dd>=Leavers &lt;b&gt;say&lt;/b&gt; why &amp; we act: "
        "https://council.example/exit-audit</dd>"
    ) in shown
    flagged = page.split("2.4 Recruitment microsite</a>")[1].split("</li>")[0]
    assert '<dd class="flag">Achieved, no evidence</dd>' in flagged
    assert "<b>say</b>" not in page
    status, history, _ = await fetch(link + "/m/2.3")
    assert status == 200
    assert "<dt>Evidence</dt><dd>=Leavers &lt;b&gt;say&lt;/b&gt; why &amp; we act" in history


async def test_live_view_downloads_have_an_evidence_column(site: Site) -> None:
    """The CSV and XLSX downloads end with an Evidence column: 2.3's evidence (quoted, as
    it opens like a formula), nothing for 2.4."""
    link = await view_link(site, OVERSIGHT)
    await achieve(site)
    status, body, _ = await fetch(link + "/download.csv?status=achieved")
    assert status == 200
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert rows[0][-1] == "Evidence"
    evidence = {row[1]: row[-1] for row in rows[1:]}
    assert evidence == {"2.3": "'" + EVIDENCE, "2.4": ""}
    async with (
        aiohttp.ClientSession() as http,
        http.get(link + "/download.xlsx?status=achieved") as response,
    ):
        assert response.status == 200
        data = await response.read()
    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet is not None
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[0][-1] == "Evidence"
    assert {row[1]: row[-1] for row in values[1:]} == {"2.3": "'" + EVIDENCE, "2.4": None}


@pytest.fixture
async def board(db_url: str, tmp_path: Path) -> AsyncIterator[PlanPulse]:
    """The board pack's scripted fortnight of the small plan (1.2-1 achieved on 25
    November, without evidence)."""
    async with running_pulse(db_url, tmp_path / "var", Clock(NOW)) as app:
        await import_small_plan(app.sessions, now=IMPORTED)
        await _script(app)
        yield app


async def test_the_pack_shows_stored_evidence_and_flags_achieved_without(
    board: PlanPulse, tmp_path: Path
) -> None:
    """The pack reads stored evidence: 1.2-1, achieved without, is flagged and counted in
    the pack and its HTML and Word documents; once evidence is given before the pack's day,
    the achieved table shows it (escaped in HTML) and nothing is flagged."""
    pack = await _pack(board)
    assert [(line.ref, line.detail) for line in pack.achieved] == [
        ("1.2-1", "achieved, no evidence")
    ]
    assert "<p><strong>1 achieved without evidence.</strong></p>" in render_pack_html(pack)
    write_pack_docx(pack, tmp_path / "before.docx")
    paragraphs = [p.text for p in Document(str(tmp_path / "before.docx")).paragraphs]
    assert "1 achieved without evidence." in paragraphs
    async with board.sessions() as session, session.begin():
        milestone_id = await session.scalar(
            select(MilestoneRow.id).where(MilestoneRow.ref == "1.2-1")
        )
        assert milestone_id is not None
        await UpdateRepository(session).add(
            milestone_id=milestone_id,
            rating=1,
            note=None,
            source=Source.EMAIL,
            given_at=at(28),
            recorded_at=at(28),
            evidence=PACK_EVIDENCE,
        )
    pack = await _pack(board)
    assert [(line.ref, line.detail) for line in pack.achieved] == [("1.2-1", PACK_EVIDENCE)]
    assert pack.unevidenced_line() == ""
    html = render_pack_html(pack)
    assert "40 staff trained &lt;i&gt;in person&lt;/i&gt; &amp; online" in html
    assert "achieved without evidence" not in html
    write_pack_docx(pack, tmp_path / "after.docx")
    document = Document(str(tmp_path / "after.docx"))
    assert PACK_EVIDENCE in [c.text for t in document.tables for r in t.rows for c in r.cells]
