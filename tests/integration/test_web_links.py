"""The update page's links over plain HTTP (issue 14, item 3), on SQLite and PostgreSQL: a
GET never records anything, a POST needs its link's CSRF token, forged, expired and
superseded links get one plain page, unknown tokens from one client are slowed down and a
valid link never is, every response carries the security headers, and no log line holds a
token."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import timedelta
from html import unescape
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select, update

from bot.domain.model import Source
from bot.services.records import Records
from storage.models import OutboxRow, PersonRow, UpdateRow
from tests.integration.test_delivery import count
from tests.web import Site

ALEX = "alex.walker"
PRIYA = "priya.bains"


async def fetch(
    url: str, *, data: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str, dict[str, str]]:
    async with aiohttp.ClientSession() as http:
        method = http.post if data is not None else http.get
        async with method(url, data=data, headers=headers or {}) as response:
            return response.status, await response.text(), dict(response.headers)


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found is not None, name
    return found.group(1)


def answers(page: str, **fields: str) -> dict[str, str]:
    """The update form of `page` with `fields` filled in."""
    return {
        "csrf": hidden(page, "csrf"),
        "form": "update",
        "submission": hidden(page, "submission"),
        **{k.replace("_", "-"): v for k, v in fields.items()},
    }


async def web_updates(site: Site) -> int:
    return await count(site.pulse, UpdateRow, UpdateRow.source == Source.WEB.value)


async def test_opening_a_link_twice_records_and_sends_nothing(site: Site) -> None:
    """A GET, as a mail scanner makes before the lead, changes nothing however often."""
    link = site.link_for(ALEX)
    before = await count(site.pulse, OutboxRow)
    for _ in range(2):
        status, page, _ = await fetch(link)
        assert status == 200
        assert "Alex Walker" in page
    assert await web_updates(site) == 0
    assert await count(site.pulse, OutboxRow) == before


async def test_a_page_opens_while_another_writer_holds_the_database(site: Site) -> None:
    """Opening a link reads only, so it does not wait for a write in progress elsewhere
    (on SQLite: it does not queue for the one write lock)."""
    link = site.link_for(ALEX)
    async with site.pulse.sessions() as session, session.begin():
        await session.execute(update(OutboxRow).values(attempts=OutboxRow.attempts))
        status, page, _ = await fetch(link)
        assert status == 200
        assert "Alex Walker" in page
        await session.rollback()


async def test_a_submission_records_in_one_go_and_a_replay_records_nothing_more(
    site: Site,
) -> None:
    """Submitting records each answered milestone with source web and enqueues one
    confirmation; the same POST sent again records nothing more."""
    link = site.link_for(ALEX)
    _, page, _ = await fetch(link)
    form = answers(page, m1_rating="2", m1_note="Blueprint signed off", m2_rating="1")
    status, done, _ = await fetch(link, data=form)
    assert status == 200
    assert "your update is recorded" in done
    assert await web_updates(site) == 2
    confirmations = await count(site.pulse, OutboxRow, OutboxRow.kind == "confirmation")
    assert confirmations == 1
    status, again, _ = await fetch(link, data=form)
    assert status == 200
    assert "already recorded" in again
    assert await web_updates(site) == 2
    assert await count(site.pulse, OutboxRow, OutboxRow.kind == "confirmation") == 1


async def test_leads_submitting_at_once_are_each_recorded_and_each_confirmed(site: Site) -> None:
    """Two leads submitting at the same moment each see their update recorded and each get
    their own confirmation; the same form sent twice at once is recorded once."""
    alex, priya = site.link_for(ALEX), site.link_for(PRIYA)
    (_, alex_page, _), (_, priya_page, _) = await asyncio.gather(fetch(alex), fetch(priya))
    alex_form = answers(alex_page, m1_rating="2", m1_note="Blueprint signed off")
    priya_form = answers(priya_page, m1_rating="3")
    done = await asyncio.gather(
        fetch(alex, data=alex_form), fetch(priya, data=priya_form), fetch(alex, data=alex_form)
    )
    assert [status for status, _, _ in done] == [200, 200, 200]
    told = sorted(
        "recorded" if "your update is recorded" in page else "already"
        for _, page, _ in (done[0], done[2])
        if "your update is recorded" in page or "already recorded" in page
    )
    assert told == ["already", "recorded"]
    assert "your update is recorded" in done[1][1]
    assert await web_updates(site) == 2
    async with site.pulse.sessions() as session:
        confirmed = (
            await session.execute(
                select(OutboxRow.recipient, OutboxRow.message_id).where(
                    OutboxRow.kind == "confirmation"
                )
            )
        ).all()
    assert len(confirmed) == 2
    assert len({recipient for recipient, _ in confirmed}) == 2
    assert len({message_id for _, message_id in confirmed}) == 2


async def test_the_note_rule_refuses_the_whole_form(site: Site) -> None:
    """A rating of 4 on an overdue milestone without a note sends the form back with the
    error beside the note and in the summary, and records none of its milestones."""
    link = site.link_for(ALEX)
    _, page, _ = await fetch(link)
    status, back, _ = await fetch(link, data=answers(page, m1_rating="4", m2_rating="1"))
    assert status == 400
    assert 'href="#m1-note"' in back
    assert 'id="m1-note-error"' in back
    assert "overdue" in back
    assert await web_updates(site) == 0


async def test_evidence_naming_a_child_is_refused_beside_the_evidence_field(site: Site) -> None:
    """Evidence holding a child's NHS number is sent back beside the evidence field, not the
    note, without repeating the number, and nothing of the form is recorded."""
    link = site.link_for(ALEX)
    _, page, _ = await fetch(link)
    form = answers(
        page, m1_rating="1", m1_note="Done", m1_evidence="943 476 5919 now settled", m2_rating="2"
    )
    status, back, _ = await fetch(link, data=form)
    assert status == 400
    assert 'href="#m1-evidence"' in back
    assert 'id="m1-evidence-error"' in back
    assert 'id="m1-note-error"' not in back
    assert back.count("5919") == 1  # in the field as written, not in the reason
    assert await web_updates(site) == 0


async def test_a_post_without_its_links_csrf_token_is_refused(site: Site) -> None:
    """A POST with no CSRF token, a forged one, or the one of another person's link records
    nothing."""
    alex, priya = site.link_for(ALEX), site.link_for(PRIYA)
    _, alex_page, _ = await fetch(alex)
    _, priya_page, _ = await fetch(priya)
    for csrf in ("", "x" * 43, hidden(alex_page, "csrf")):
        form = {**answers(priya_page, m1_rating="3", m1_note="n"), "csrf": csrf}
        status, page, _ = await fetch(priya, data=form)
        assert status == 403
        assert "Nothing was recorded" in page
    assert await web_updates(site) == 0


async def test_forged_expired_and_superseded_links_get_the_same_plain_page(site: Site) -> None:
    """A made-up token, a link past 14 days and a link after its person's next prompt each
    get one page saying what to do, and a POST to them records nothing."""
    link = site.link_for(ALEX)
    forged = link[:-43] + "A" * 43
    status, page, _ = await fetch(forged)
    assert status == 404
    assert "This link no longer works" in page
    site.clock.now += timedelta(days=14, minutes=1)
    status, expired, _ = await fetch(link)
    assert (status, expired) == (404, page)
    site.clock.now -= timedelta(days=14, minutes=1)
    _, fresh, _ = await fetch(link)
    site.clock.now += timedelta(days=7)  # next Monday: a new prompt
    await site.runner.run_once()
    status, superseded, _ = await fetch(link)
    assert (status, superseded) == (404, page)
    status, _, _ = await fetch(link, data=answers(fresh, m2_rating="1"))
    assert status == 404
    assert await web_updates(site) == 0
    new_link = site.link_for(ALEX)
    assert new_link != link
    assert (await fetch(new_link))[0] == 200


async def test_unknown_tokens_are_slowed_down_and_valid_links_are_not(site: Site) -> None:
    """After ten unknown tokens a client is answered 429 with Retry-After; its valid link
    still opens, and another client is not slowed."""
    base = site.base + "/u/"
    statuses = [(await fetch(base + f"{n:043d}"))[0] for n in range(12)]
    assert statuses[:10] == [404] * 10
    status, _, headers = await fetch(base + "B" * 43)
    assert status == 429
    assert int(headers["Retry-After"]) > 0
    assert (await fetch(site.link_for(ALEX)))[0] == 200


async def test_forwarded_for_counts_only_from_a_trusted_proxy(db_url: str, tmp_path: Path) -> None:
    """Behind a trusted proxy each X-Forwarded-For client is slowed on its own; from an
    untrusted peer the header is ignored."""
    from tests.web import running_site, stop_site

    site = await running_site(db_url, tmp_path / "var", extra={"TRUSTED_PROXIES": "127.0.0.1"})
    try:
        unknown = site.base + "/u/" + "C" * 43
        for _ in range(10):
            await fetch(unknown, headers={"X-Forwarded-For": "203.0.113.9"})
        slowed = await fetch(unknown, headers={"X-Forwarded-For": "203.0.113.9"})
        other = await fetch(unknown, headers={"X-Forwarded-For": "198.51.100.7"})
        assert slowed[0] == 429
        assert other[0] == 404
    finally:
        await stop_site(site)


async def test_every_response_sends_the_security_headers(site: Site) -> None:
    """Pages, errors and the stylesheet send no-referrer, a CSP without inline script or
    style, and DENY framing; link pages are not cached."""
    link = site.link_for(ALEX)
    for url in (link, link[:-43] + "D" * 43, site.base + "/static/pulse.css", site.base + "/"):
        _, _, headers = await fetch(url)
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Frame-Options"] == "DENY"
        csp = headers["Content-Security-Policy"]
        assert "unsafe-inline" not in csp
        assert "script-src" not in csp  # default-src 'none': no script at all
        assert "default-src 'none'" in csp
    _, page, headers = await fetch(link)
    assert headers["Cache-Control"] == "no-store"
    assert "style=" not in page
    assert "<script" not in page


async def test_no_log_line_holds_a_link_token(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    """Opening, submitting and refusing links logs no token."""
    link = site.link_for(ALEX)
    token = link[-43:]
    with caplog.at_level(logging.DEBUG):
        _, page, _ = await fetch(link)
        await fetch(link, data=answers(page, m2_rating="1"))
        await fetch(link[:-43] + "E" * 43)
    assert caplog.records
    assert not [r for r in caplog.records if token in r.getMessage() or "E" * 43 in r.getMessage()]


async def test_an_absence_set_on_the_page_is_audited_as_the_leads_own_by_web(site: Site) -> None:
    """Away-until and a delegate set on the update page show in the audit log as the lead's
    own changes made through the web, not through Slack."""
    link = site.link_for(ALEX)
    _, page, _ = await fetch(link)
    away = {"csrf": hidden(page, "csrf"), "form": "absence", "away": "31/12/2026", "delegate": "PB"}
    status, _, _ = await fetch(link, data=away)
    assert status == 200
    entries, keys = await Records(site.pulse).audit_entries(since=None, person_key="AW")
    assert [(e.action, keys.get(int(e.actor[7:])), e.channel) for e in entries] == [
        ("delegate_set", "AW", "web"),
        ("away_set", "AW", "web"),
    ]


async def test_the_delegate_list_shows_names_as_written_with_the_chosen_one_selected(
    site: Site,
) -> None:
    """The delegate list offers everyone but the lead, a name with markup in it shown as
    written, and once the lead has chosen a delegate the page shows them selected, also when
    an update form comes back with an error."""
    async with site.pulse.sessions() as session, session.begin():
        await session.execute(
            update(PersonRow).where(PersonRow.key == "PB").values(name='Priya <b>"Bains"</b> & Co')
        )
    link = site.link_for(ALEX)
    _, page, _ = await fetch(link)
    chosen = {"csrf": hidden(page, "csrf"), "form": "absence", "away": "", "delegate": "PB"}
    status, _, _ = await fetch(link, data=chosen)
    assert status == 200
    _, again, _ = await fetch(link)
    options = re.findall(r'<option value="([^"]*)"( selected)?>([^<]*)</option>', again)
    assert ("PB", " selected", 'Priya <b>"Bains"</b> & Co') in [
        (key, marked, unescape(name)) for key, marked, name in options
    ]
    assert [key for key, marked, _ in options if marked] == ["PB"]
    assert "AW" not in [key for key, _, _ in options]
    assert options[0] == ("", "", "Nobody")
    status, back, _ = await fetch(link, data=answers(again, m1_rating="4", m2_rating="1"))
    assert status == 400
    assert re.findall(r'<option value="([^"]*)"( selected)?>([^<]*)</option>', back) == options


async def test_a_delegate_answers_for_the_lead_who_is_away(site: Site) -> None:
    """A lead sets away-until and a delegate on the page; at the next prompt the delegate's
    link shows the lead's milestones, for the lead, and its answer is recorded."""
    link = site.link_for(ALEX)
    _, page, _ = await fetch(link)
    away = {"csrf": hidden(page, "csrf"), "form": "absence", "away": "31/12/2026", "delegate": "PB"}
    status, saved, _ = await fetch(link, data=away)
    assert status == 200
    assert "You are away until 31 December 2026; Priya Bains answers for you" in saved
    site.clock.now += timedelta(days=7)
    await site.runner.run_once()
    delegate_link = site.link_for(PRIYA)
    _, delegate_page, _ = await fetch(delegate_link)
    assert "For</dt><dd>Alex Walker" in delegate_page
    numbered = dict(
        (ref, n) for n, ref in re.findall(r'id="m(\d+)-milestone">\s*<legend>(\S+) ', delegate_page)
    )
    n = numbered["2.3"]
    status, _, _ = await fetch(delegate_link, data=answers(delegate_page, **{f"m{n}_rating": "1"}))
    assert status == 200
    async with site.pulse.sessions() as session:
        given = (
            await session.execute(
                select(UpdateRow.rating, UpdateRow.person_id).where(
                    UpdateRow.source == Source.WEB.value
                )
            )
        ).all()
    assert len(given) == 1
    assert given[0][0] == 1
