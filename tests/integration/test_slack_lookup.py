"""People who prefer Slack but were imported without a Slack id are found by their email
(`users.lookupByEmail`) when a cycle is planned; those Slack does not know are asked by
email and named in the report."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from bot.app import PlanPulse
from bot.services.prompting import Cycles
from handlers.slack.transport import lookup_user_by_email
from storage.models import OutboxRow, PersonRow
from tests.conftest import FIXTURES, import_small_plan, running_pulse
from tests.fake_slack import FakeSlack, simple_prompt

MONDAY = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)


@asynccontextmanager
async def planning(
    db_url: str, tmp_path: Path, fake: FakeSlack, people: Path | None = None
) -> AsyncIterator[tuple[PlanPulse, Cycles]]:
    """The small plan imported, and cycles that prompt by Slack and look ids up in `fake`."""
    client = fake.client()

    async def lookup(email: str) -> str | None:
        return await lookup_user_by_email(client, email)

    try:
        async with running_pulse(db_url, tmp_path, lambda: MONDAY) as app:
            await import_small_plan(app.sessions, now=MONDAY, people_path=people)
            yield (
                app,
                Cycles(
                    app.sessions,
                    mail_from="pulse@council.example",
                    clock=lambda: MONDAY,
                    slack_prompt=simple_prompt,
                    slack_lookup=lookup,
                ),
            )
    finally:
        if client.session is not None:
            await client.session.close()


async def outbox(app: PlanPulse) -> set[tuple[str, str]]:
    async with app.sessions() as session:
        rows = (await session.scalars(select(OutboxRow))).all()
        return {(row.channel, row.recipient) for row in rows}


async def test_slack_ids_are_found_by_email_and_the_unknown_are_asked_by_email(
    db_url: str,
    tmp_path: Path,
    fake_slack: FakeSlack,
) -> None:
    people = (FIXTURES / "plans" / "small-people.csv").read_text(encoding="utf-8")
    people = people.replace(
        "priya.bains@council.example,,email", "priya.bains@council.example,,slack"
    )
    (tmp_path / "people.csv").write_text(people, encoding="utf-8")
    fake_slack.users_by_email["dana.cole@council.example"] = "U0DANA"
    async with planning(db_url, tmp_path, fake_slack, tmp_path / "people.csv") as (app, cycles):
        report = await cycles.start_cycle("small", now=MONDAY)
        assert report.not_in_slack == ["PB"]
        sent = await outbox(app)
        assert ("slack", "U0DANA") in sent
        assert ("email", "priya.bains@council.example") in sent
        async with app.sessions() as session:
            dana = await session.scalar(select(PersonRow).where(PersonRow.key == "DC"))
        assert dana is not None
        assert dana.slack_user_id == "U0DANA"
        assert len(fake_slack.calls_to("users.lookupByEmail")) == 2

        # Next week Dana's id is known: only Priya is looked up again (she may have joined).
        await cycles.start_cycle("small", now=MONDAY + timedelta(days=7))
        assert len(fake_slack.calls_to("users.lookupByEmail")) == 3


async def test_a_slack_that_cannot_be_reached_leaves_people_to_email(
    db_url: str,
    tmp_path: Path,
    fake_slack: FakeSlack,
) -> None:
    fake_slack.fail_next("users.lookupByEmail", status=500)
    async with planning(db_url, tmp_path, fake_slack) as (app, cycles):
        report = await cycles.start_cycle("small", now=MONDAY)
        assert report.created == 4
        assert report.not_in_slack == ["DC"]
        assert {channel for channel, _ in await outbox(app)} == {"email"}
