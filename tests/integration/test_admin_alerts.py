"""Admin alerts emailed to ADMIN_EMAIL through the outbox, on SQLite and PostgreSQL: an
address that reached the bounce limit, a Slack token Slack refused, messages that need
review; at most one email per kind an hour, none without ADMIN_EMAIL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.app import PlanPulse, Runner
from bot.services.alerts import AdminAlerts
from bot.services.delivery import OutboxWorker
from bot.settings import Settings
from handlers.slack.transport import SlackPayload, SlackPost
from storage.models import OutboxRow
from storage.outbox import OutboxRepository
from tests.conftest import Clock, import_small_plan
from tests.fake_slack import FakeSlack
from tests.integration.test_delivery import outbox_files, read_eml
from tests.integration.test_email_scenarios import MONDAY, Mailroom
from tests.integration.test_outbox_leases import smtp_transport
from tests.integration.test_slack_transport import FakeTime, transport_for

ADMIN = "it-admin@council.example"


@pytest.fixture
def clock() -> Clock:
    return Clock(MONDAY)


async def _pulse(db_url: str, tmp_path: Path, clock: Clock, **extra: Any) -> PlanPulse:
    settings = Settings(
        _env_file=None, DATABASE_URL=db_url, PULSE_DATA_DIR=tmp_path / "var", **extra
    )
    app = PlanPulse(settings, clock=clock)
    await app.migrate()
    await import_small_plan(app.sessions, now=clock())
    return app


@pytest.fixture
async def pulse(db_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[PlanPulse]:
    app = await _pulse(db_url, tmp_path, clock, ADMIN_EMAIL=ADMIN, BOUNCE_LIMIT=2)
    yield app
    await app.close()


async def _alerts(pulse: PlanPulse) -> list[tuple[str, str]]:
    async with pulse.sessions() as session:
        rows = await session.execute(
            select(OutboxRow.dedupe_key, OutboxRow.recipient)
            .where(OutboxRow.kind == "alert")
            .order_by(OutboxRow.id)
        )
        return [(key.split(":")[1], to) for key, to in rows.tuples()]


async def test_the_bounce_limit_emails_the_admin_once(pulse: PlanPulse, clock: Clock) -> None:
    """Dana's address bouncing hard twice stops mail to her and emails the admin one alert
    naming her key and how to correct the address; a third bounce adds no second email."""
    mail = Mailroom(pulse, clock)
    await mail.start()
    await mail.deliver(mail.render("bounce_hard.eml"), mail.render("bounce_verp.eml"))
    await mail.deliver(mail.render("bounce_multiple_status.eml"), at=clock.now)
    assert await _alerts(pulse) == [("bounce_limit", ADMIN)]
    sent = [read_eml(p) for p in outbox_files(pulse)]
    alert = next(m for m in sent if str(m["To"]) == ADMIN)
    assert "bouncing" in str(alert["Subject"])
    assert alert["Auto-Submitted"] == "auto-generated"
    body = alert.get_content()
    assert "DC" in body
    assert "pulse people set DC --email" in body


async def test_messages_needing_review_email_one_alert_an_hour(
    pulse: PlanPulse, clock: Clock
) -> None:
    """Two prompts cut off mid-send need review: the admin gets one alert email, queued
    with the review; another an hour later gets a second."""
    await Runner(pulse).cycles.tick()
    lease = timedelta(minutes=5)
    alerts = AdminAlerts(ADMIN, mail_from=pulse.settings.sender)

    async def cut_off(limit: int) -> None:
        async with pulse.sessions() as session, session.begin():
            repo = OutboxRepository(session)
            claimed = await repo.claim(owner="dead", now=clock(), lease=lease, limit=limit)
            await repo.mark_sending([m.id for m in claimed], owner="dead", now=clock(), lease=lease)
        clock.now += timedelta(minutes=6)
        worker = OutboxWorker(
            pulse.sessions, {"email": smtp_transport(1)}, clock=clock, alerts=alerts
        )
        await worker.reconcile_expired()

    await cut_off(2)
    assert await _alerts(pulse) == [("needs_review", ADMIN)]
    await cut_off(1)
    assert len(await _alerts(pulse)) == 1
    clock.now += timedelta(hours=1)
    await cut_off(1)
    assert await _alerts(pulse) == [("needs_review", ADMIN)] * 2


async def test_a_refused_slack_token_emails_the_admin(
    pulse: PlanPulse, clock: Clock, fake_slack: FakeSlack
) -> None:
    """Slack answering invalid_auth to a digest post fails it and emails the admin that
    the token was refused, never the token itself."""
    fake_time = FakeTime()
    fake_slack.clock = fake_time.clock
    fake_slack.fail_next("chat.postMessage", error="invalid_auth")
    payload = SlackPayload("C0NET", (SlackPost("digest", []),)).as_outbox()
    async with pulse.sessions() as session, session.begin():
        await OutboxRepository(session).enqueue(
            dedupe_key="digest:1",
            kind="digest",
            channel="slack",
            recipient="C0NET",
            payload=payload,
            now=clock(),
        )
    worker = OutboxWorker(
        pulse.sessions,
        {"slack": transport_for(fake_slack, fake_time)},
        clock=clock,
        alerts=AdminAlerts(ADMIN, mail_from=pulse.settings.sender),
    )
    async with pulse.sessions() as session, session.begin():
        await session.execute(
            update(OutboxRow)
            .where(OutboxRow.channel == "email")
            .values(state="sent")  # only the digest is due
        )
    await worker.run_once()
    assert await _alerts(pulse) == [("slack_token", ADMIN)]
    async with pulse.sessions() as session:
        payload_text = str(
            await session.scalar(select(OutboxRow.payload).where(OutboxRow.kind == "alert"))
        )
    assert "invalid_auth" in payload_text
    assert "xoxb" not in payload_text


async def test_without_admin_email_alerts_stay_in_the_log(
    db_url: str, tmp_path: Path, clock: Clock
) -> None:
    """With no ADMIN_EMAIL set, the bounce limit still stops mail but emails nobody."""
    app = await _pulse(db_url, tmp_path, clock, BOUNCE_LIMIT=2)
    try:
        mail = Mailroom(app, clock)
        await mail.start()
        await mail.deliver(mail.render("bounce_hard.eml"), mail.render("bounce_verp.eml"))
        assert (await mail.person("DC")).email_bounced_at is not None
        assert await _alerts(app) == []
    finally:
        await app.close()
