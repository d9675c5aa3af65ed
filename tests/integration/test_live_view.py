"""The coordinators' live view over plain HTTP (issue 14, item 4), on SQLite and PostgreSQL:
each coordinator's digest email carries their own link; it shows the network's digest
content for a chosen day, filtered by priority, lead and status; each milestone's history
with who answered through which channel; downloads that open as CSV and XLSX; an answer
recorded on a lead's behalf (source `coordinator`, who recorded it kept) and withdrawn
(history kept); revoked and expired links refused; the same security headers as the update
page."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.app import digest_poster
from bot.domain.model import Source
from bot.services.live_view import revoke_view_links
from storage.evidence import EvidenceRepository
from storage.models import AuditRow, UpdateRow
from tests.integration.test_delivery import outbox_files, read_eml
from tests.integration.test_web_links import answers, fetch, hidden
from tests.web import Site

VIEW_LINK = re.compile(r"http://127\.0\.0\.1:\d+/v/[A-Za-z0-9_-]{43}")
WORKFORCE = "wf.lead@council.example"
OVERSIGHT = "chair@council.example"


async def view_link(site: Site, address: str) -> str:
    """The live-view link in the latest digest email to `address` (the digest posted now)."""
    await digest_poster(site.pulse).post("small", now=site.clock())
    await site.runner.run_once()
    found = [
        m
        for m in map(read_eml, outbox_files(site.pulse))
        if address in str(m["To"]) and "digest" in str(m["Message-ID"])
    ]
    assert found, f"no digest email to {address}"
    text = found[-1].get_body(preferencelist=("plain",))
    html = found[-1].get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    match = VIEW_LINK.search(text.get_content())
    assert match is not None, "the digest email has no live-view link"
    assert match.group(0) in html.get_content()
    return match.group(0)


async def test_each_coordinator_gets_their_own_link_to_their_networks_view(site: Site) -> None:
    """The digest email to each coordinator carries a link of their own; it opens the
    network's digest content with the page's security headers, and a GET changes nothing."""
    chair = await view_link(site, OVERSIGHT)
    workforce = await view_link(site, WORKFORCE)
    assert chair != workforce
    status, page, headers = await fetch(workforce)
    assert status == 200
    assert "Workforce network" in page
    assert "2.3 Exit interview analysis" in page
    assert "1.1 Family hubs blueprint" not in page  # early help's, not workforce's
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>" not in page
    assert headers["Cache-Control"] == "no-store"
    assert "script-src" not in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"
    assert '<svg class="chart"' in page
    assert '<title id="mix-title">' in page
    assert "Rating mix per priority: the figures" in page


async def test_filters_by_lead_status_and_day_with_a_plain_get_form(site: Site) -> None:
    """Filtering by lead keeps that lead's milestones only, by status one section only, an
    earlier day shows the digest of that day, and a day that is not a date is one error."""
    link = await view_link(site, OVERSIGHT)
    _, everything, _ = await fetch(link)
    assert "2.3 Exit interview analysis" in everything
    assert "1.1 Family hubs" in everything
    _, priya, _ = await fetch(link + "?lead=PB")
    assert "2.4 Recruitment microsite" in priya
    assert "2.3 Exit interview analysis" not in priya
    _, overdue, _ = await fetch(link + "?status=overdue")
    assert "1.1 Family hubs blueprint" in overdue
    assert "2.3 Exit interview analysis" not in overdue
    _, earlier, _ = await fetch(link + "?as_of=01/10/2026")
    assert "1 October 2026" in earlier
    status, bad, _ = await fetch(link + "?as_of=someday")
    assert status == 400
    assert 'href="#as-of"' in bad


async def test_downloads_open_as_csv_and_xlsx_with_what_is_shown(site: Site) -> None:
    """The CSV and XLSX downloads hold the filtered milestones, open with the csv module and
    openpyxl, and a note a spreadsheet would run as a formula is quoted."""
    from openpyxl import load_workbook

    link = await view_link(site, OVERSIGHT)
    async with site.pulse.sessions() as session, session.begin():
        from bot.domain.replies import ReplyLine
        from bot.services.answers import OnBehalf, record_on_behalf

        done = await record_on_behalf(
            session,
            OnBehalf(
                "small",
                ReplyLine("2.3", 3, '=HYPERLINK("http://x")', None, False, 1),
                "AW",
                OVERSIGHT,
                site.clock(),
                "t1",
            ),
        )
        assert done.recorded
    status, body, headers = await fetch(link + "/download.csv?lead=AW")
    assert status == 200
    assert headers["Content-Type"].startswith("text/csv")
    assert "attachment" in headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert rows[0][:3] == ["Section", "Reference", "Milestone"]
    refs = {row[1] for row in rows[1:]}
    assert refs == {"1.1", "2.3"}
    note = next(row[8] for row in rows[1:] if row[1] == "2.3")
    assert note.startswith("'=HYPERLINK")
    import aiohttp

    async with (
        aiohttp.ClientSession() as http,
        http.get(link + "/download.xlsx?lead=AW") as response,
    ):
        assert response.status == 200
        data = await response.read()
    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet is not None
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[0][1] == "Reference"
    assert {row[1] for row in values[1:]} == {"1.1", "2.3"}


async def test_history_lists_every_answer_with_channel_and_who(site: Site) -> None:
    """A milestone's history shows the imported rating and the lead's answer on the update
    page: rating, note, channel and whom it is for."""
    update = site.link_for("alex.walker")
    _, page, _ = await fetch(update)
    await fetch(update, data=answers(page, m1_rating="3", m1_note="Two hubs open", m2_rating="1"))
    link = await view_link(site, OVERSIGHT)
    status, history, _ = await fetch(link + "/m/1.1")
    assert status == 200
    assert "History of 1.1 Family hubs blueprint" in history
    assert "Two hubs open" in history
    assert "Drafting with partners" in history
    assert "<dd>web</dd>" in history
    assert "<dd>import</dd>" in history
    assert "<dd>Alex Walker</dd>" in history
    status, _, _ = await fetch(link + "/m/9.9")
    assert status == 404


async def test_a_coordinator_records_on_a_leads_behalf_and_withdraws_it(site: Site) -> None:
    """From a milestone's history a coordinator records an answer for its lead (source
    `coordinator`, their address kept) and then withdraws it: the status goes back to the
    lead's own answer, and the history keeps both; without the CSRF token nothing happens."""
    link = await view_link(site, WORKFORCE)
    _, history, _ = await fetch(link + "/m/2.3")
    form = {
        "csrf": hidden(history, "csrf"),
        "form": "answer",
        "submission": hidden(history, "submission"),
        "lead": "AW",
        "rating": "1",
        "note": "Told me on the phone: report done",
    }
    status, _, _ = await fetch(link + "/m/2.3", data={**form, "csrf": "x" * 43})
    assert status == 403
    status, done, _ = await fetch(link + "/m/2.3", data=form)
    assert status == 200, done
    assert "Recorded for Alex Walker." in done
    assert "<dd>coordinator</dd>" in done
    assert f"<dd>{WORKFORCE}</dd>" in done
    async with site.pulse.sessions() as session:
        recorded = (
            await session.execute(
                select(UpdateRow.id, UpdateRow.recorded_by).where(
                    UpdateRow.source == Source.COORDINATOR.value
                )
            )
        ).all()
    assert [r.recorded_by for r in recorded] == [WORKFORCE]
    lines = await site.pulse.statuses("small")
    assert next(x.status for x in lines if x.milestone.ref == "2.3").rating == 1
    status, withdrawn, _ = await fetch(
        link + "/m/2.3",
        data={"csrf": form["csrf"], "form": "withdraw", "answer": str(recorded[0].id)},
    )
    assert status == 200, withdrawn
    assert "The answer was withdrawn." in withdrawn
    assert "a withdrawal" in withdrawn
    lines = await site.pulse.statuses("small")
    assert next(x.status for x in lines if x.milestone.ref == "2.3").rating == 2
    assert await _count_2_3(site) == 3  # the import, the coordinator's, the withdrawal


async def test_a_coordinator_records_evidence_for_a_lead_and_fixes_a_refusal(site: Site) -> None:
    """Evidence given on the lead's behalf with a rating of 2, or naming a child, is refused
    beside the evidence field, recording nothing; with a rating of 1 it is recorded as the
    milestone's evidence."""
    link = await view_link(site, WORKFORCE)
    _, history, _ = await fetch(link + "/m/2.3")
    assert '<label for="evidence">What changed for children and families?' in history
    form = {
        "csrf": hidden(history, "csrf"),
        "form": "answer",
        "submission": hidden(history, "submission"),
        "lead": "AW",
        "rating": "2",
        "note": "Report nearly done",
        "evidence": "Staff turnover <down> by a third",
    }
    status, back, _ = await fetch(link + "/m/2.3", data=form)
    assert status == 400
    assert 'href="#evidence"' in back
    assert 'id="evidence-error"' in back
    assert "Staff turnover &lt;down&gt; by a third</textarea>" in back
    child = {**form, "rating": "1", "evidence": "943 476 5919 now settled"}
    status, back, _ = await fetch(link + "/m/2.3", data=child)
    assert status == 400
    assert 'href="#evidence"' in back
    assert "this evidence looks like it holds a child" in back.lower()
    async with site.pulse.sessions() as session:
        assert await EvidenceRepository(session).of_plan("small") == {}
    status, done, _ = await fetch(link + "/m/2.3", data={**form, "rating": "1"})
    assert status == 200, done
    async with site.pulse.sessions() as session:
        found = await EvidenceRepository(session).of_plan("small")
    assert {ref: e.text for ref, e in found.items()} == {"2.3": "Staff turnover <down> by a third"}


async def _count_2_3(site: Site) -> int:
    lines = await site.pulse.digests("small", network="workforce")
    assert lines
    async with site.pulse.sessions() as session:
        from storage.live_view import LiveViewRepository

        return len(await LiveViewRepository(session).history("small", "2.3"))


async def test_an_answer_the_note_rule_refuses_records_nothing(site: Site) -> None:
    """Recording a worse rating for a lead without a note is refused with the reason, and
    nothing is recorded."""
    link = await view_link(site, WORKFORCE)
    _, history, _ = await fetch(link + "/m/2.3")
    status, back, _ = await fetch(
        link + "/m/2.3",
        data={
            "csrf": hidden(history, "csrf"),
            "form": "answer",
            "submission": hidden(history, "submission"),
            "lead": "AW",
            "rating": "4",
        },
    )
    assert status == 400
    assert "note" in back.lower()
    async with site.pulse.sessions() as session:
        found = await session.scalar(
            select(UpdateRow.id).where(UpdateRow.source == Source.COORDINATOR.value)
        )
    assert found is None


@pytest.mark.parametrize("how", ["revoked", "expired", "forged"])
async def test_revoked_expired_and_forged_links_are_refused(site: Site, how: str) -> None:
    """A link revoked with `pulse web revoke`'s service (audited), one past 30 days and a
    made-up one each get the plain page, and show nothing of the plan."""
    link = await view_link(site, WORKFORCE)
    if how == "revoked":
        async with site.pulse.sessions() as session, session.begin():
            n = await revoke_view_links(
                session, WORKFORCE, network_key=None, now=site.clock(), actor="os:test"
            )
        assert n == 1
        async with site.pulse.sessions() as session:
            audited = await session.scalar(
                select(AuditRow.details).where(AuditRow.action == "view_links_revoked")
            )
        assert audited == {"network": None, "links": 1}
    elif how == "expired":
        site.clock.now += timedelta(days=30, seconds=1)
    else:
        link = link[:-43] + "B" * 43
    for url in (link, link + "/m/2.3", link + "/download.csv"):
        status, page, _ = await fetch(url)
        assert status == 404
        assert "Exit interview" not in page
