"""A new "I need support" reaches the network's coordinators the same day (issue 14): one
email an hour at most per network, listing the asks recorded since its last one, through
the outbox; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage

from tests.integration.test_delivery import outbox_files, read_eml
from tests.integration.test_web_links import answers, fetch
from tests.web import Site

ALEX = "alex.walker"


def support_mail(site: Site) -> list[EmailMessage]:
    return [
        m for m in map(read_eml, outbox_files(site.pulse)) if "for support" in str(m["Subject"])
    ]


def to(mail: list[EmailMessage], address: str) -> list[str]:
    """The bodies of the support emails to `address`, oldest first."""
    return [
        body.get_content()
        for m in mail
        if address in str(m["To"])
        for body in [m.get_body(preferencelist=("plain",))]
        if body is not None
    ]


async def test_new_asks_reach_the_networks_coordinators_at_most_hourly(site: Site) -> None:
    """Alex asks for support on 2.3 (workforce): its coordinators and the oversight group
    hear within minutes, early help does not. A second ask, on 1.1 (early help), twenty
    minutes later reaches early help at once but the oversight group only once an hour has
    passed since its last email, listing only the new ask."""
    link = site.link_for(ALEX)
    _, page, _ = await fetch(link)
    await fetch(
        link,
        data=answers(
            page,
            m1_rating="3",
            m1_note="Drafting",
            m2_rating="3",
            m2_note="HR data late",
            m2_support="on",
        ),
    )
    site.clock.now += timedelta(minutes=5)
    await site.runner.run_once()
    mail = support_mail(site)
    assert len(to(mail, "wf.lead@council.example")) == 1
    assert len(to(mail, "chair@council.example")) == 1
    assert to(mail, "eh.lead@council.example") == []
    first = to(mail, "wf.lead@council.example")[0]
    assert "2.3 Exit interview analysis (Alex Walker" in first
    assert "HR data late" in first

    site.clock.now += timedelta(minutes=20)
    _, page, _ = await fetch(link)
    await fetch(
        link,
        data=answers(
            page,
            m1_rating="3",
            m1_note="Partners slow",
            m1_support="on",
            m2_rating="3",
            m2_note="HR data late",
            m2_support="on",
        ),
    )
    site.clock.now += timedelta(minutes=5)
    await site.runner.run_once()
    mail = support_mail(site)
    assert len(to(mail, "eh.lead@council.example")) == 1
    assert "1.1 Family hubs blueprint" in to(mail, "eh.lead@council.example")[0]
    assert len(to(mail, "chair@council.example")) == 1  # within the hour: not yet

    site.clock.now += timedelta(minutes=40)
    await site.runner.run_once()
    mail = support_mail(site)
    chair = to(mail, "chair@council.example")
    assert len(chair) == 2
    assert "1.1 Family hubs blueprint" in chair[1]
    assert "Partners slow" in chair[1]
    assert "2.3 Exit interview" not in chair[1]
    site.clock.now += timedelta(hours=2)
    await site.runner.run_once()
    assert len(to(support_mail(site), "chair@council.example")) == 2  # nothing new
