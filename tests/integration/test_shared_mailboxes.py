"""People who share an address, end to end in local mode on SQLite and PostgreSQL: an alias
(one person, two keys) and a shared mailbox (a team address for Alex Walker and Priya Bains)
imported, one combined prompt to the mailbox, replies from it recorded for each person,
one reminder for whoever is still silent, and the digest's awaiting list per person."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import PlanPulse, Runner
from bot.settings import Settings
from handlers.files.importing import import_plan
from storage.importer import ImportReport
from storage.models import PersonRow, PromptRow
from tests.conftest import PLANS, Clock
from tests.integration.test_delivery import outbox_files, read_eml, reply_to

MONDAY = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
TEAM = "Team.Mailbox@council.example"


def _people(folder: Path) -> Path:
    """The small plan's people, with Alex and Priya on one team address (Priya's in another
    case) and Morgan listed twice, the second time as `MCl`."""
    with (PLANS / "small-people.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    for row in rows[1:]:
        if row[0] == "AW":
            row[2] = TEAM
        if row[0] == "PB":
            row[2] = TEAM.lower()
    morgan = next(r for r in rows if r[0] == "MC")
    rows.append(["MCl", "Morgan  Clarke", morgan[2].upper(), "", "email", ""])
    path = folder / "people.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def _plan(folder: Path) -> Path:
    """The small plan with action 2.2 led by `MCl`, Morgan's second key."""
    text = (PLANS / "small-plan.csv").read_text()
    path = folder / "plan.csv"
    path.write_text(text.replace("Agency rate dashboard,MC,", "Agency rate dashboard,MCl,"))
    return path


@pytest.fixture
def clock() -> Clock:
    return Clock(MONDAY)


class Office:
    """The plan imported with the shared people, and what a user would look at."""

    def __init__(self, pulse: PlanPulse, clock: Clock, report: ImportReport, folder: Path) -> None:
        self.folder = folder
        self.pulse = pulse
        self.clock = clock
        self.report = report
        self.runner = Runner(pulse)

    def mail(self) -> list[EmailMessage]:
        return [read_eml(p) for p in outbox_files(self.pulse)]

    def to_team(self, kind: str) -> list[EmailMessage]:
        return [
            m
            for m in self.mail()
            if TEAM.lower() in str(m["To"]).lower() and f".{kind}@" in str(m["Message-ID"])
        ]

    async def reply(self, prompt: EmailMessage, body: str, *, at: datetime, n: int = 1) -> None:
        raw = reply_to(
            prompt, sender=f"Team <{TEAM}>", body=body, message_id=f"<team-{n}@council.example>"
        )
        (self.pulse.settings.mail_dir / "inbox" / f"team-{n}.eml").write_bytes(raw)
        await self.run(at)

    async def run(self, at: datetime) -> None:
        self.clock.now = at
        await self.runner.run_once()

    async def prompts(self) -> dict[str, PromptRow]:
        async with self.pulse.sessions() as session:
            rows = await session.execute(
                select(PersonRow.key, PromptRow).join(
                    PersonRow, PersonRow.id == PromptRow.person_id
                )
            )
            return {key: prompt for key, prompt in rows.tuples()}

    async def recorded(self) -> dict[str, str | None]:
        """Who each milestone's latest email answer was recorded for, by milestone."""
        tracked = await self.pulse.tracked("small")
        return {
            ref: updates[-1].person_key
            for ref, updates in tracked.updates.items()
            if updates[-1].source.value == "email"
        }


@pytest.fixture
async def office(db_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Office]:
    settings = Settings(_env_file=None, DATABASE_URL=db_url, PULSE_DATA_DIR=tmp_path / "var")
    app = PlanPulse(settings, clock=clock)
    await app.migrate()
    report = await import_plan(
        app.sessions,
        _plan(tmp_path),
        now=MONDAY,
        plan_key="small",
        people_path=_people(tmp_path),
        networks_path=PLANS / "small-networks.csv",
        ratings_as_of=date(2026, 11, 16),
    )
    yield Office(app, clock, report, tmp_path)
    await app.close()


async def test_import_reads_an_alias_as_one_person_and_reports_the_shared_mailbox(
    office: Office,
) -> None:
    """Morgan's second row (same name and address, another key) becomes an alias that lead
    cells resolve to, not a second person; Alex and Priya on one address stay two people;
    the import report says both."""
    notes = [str(w) for w in office.report.warnings]
    assert any("MCl" in n and "an alias of MC" in n for n in notes), notes
    assert any(
        TEAM.lower() in n and "AW (Alex Walker), PB (Priya Bains)" in n and "shared mailbox" in n
        for n in notes
    ), notes
    async with office.pulse.sessions() as session:
        keys = set((await session.scalars(select(PersonRow.key))).all())
        morgan = await session.scalar(select(PersonRow).where(PersonRow.key == "MC"))
    assert "MCl" not in keys
    assert {"AW", "PB", "MC"} <= keys
    assert morgan is not None
    assert morgan.aliases == "MCl"
    tracked = await office.pulse.tracked("small")
    assert next(a for a in tracked.actions if a.ref == "2.2").leads == ("MC",)
    again = await import_plan(
        office.pulse.sessions,
        office.folder / "plan.csv",
        now=MONDAY,
        plan_key="small",
        people_path=office.folder / "people.csv",
        dry_run=True,
    )
    assert again.people_added == again.people_changed == 0


async def test_a_shared_mailbox_gets_one_prompt_grouped_by_person(office: Office) -> None:
    """The cycle sends the team address one prompt listing Alex's and Priya's milestones
    under each name; each still has their own prompt, both marked sent."""
    await office.run(MONDAY)
    [prompt] = office.to_team("prompt")
    assert "Alex Walker" in str(prompt["To"])
    assert "Priya Bains" in str(prompt["To"])
    body = prompt.get_body(preferencelist=("plain",))
    assert body is not None
    text = str(body.get_content())
    assert text.startswith("Hello Alex Walker and Priya Bains,")
    alex, priya = text.split("For Alex Walker (AW):")[1].split("For Priya Bains (PB):")
    priya = priya.split("UPDATE IN YOUR BROWSER")[0]
    assert "2.3  Exit interview analysis" in alex
    assert "1.1  Family hubs blueprint" in alex
    assert "1.2-1  Training needs analysis" in priya
    assert "2.4  Recruitment microsite" in priya
    assert "2.3 " not in priya
    assert "1.1 " not in priya
    prompts = await office.prompts()
    assert prompts["PB"].sent_with == prompts["AW"].id
    assert prompts["AW"].sent_with is None
    assert prompts["AW"].sent_at is not None
    assert prompts["PB"].sent_at is not None
    # Four people asked (AW, PB, MC and DC), in three messages.
    assert len([m for m in office.mail() if ".prompt@" in str(m["Message-ID"])]) == 3
    assert len(prompts) == 4


async def test_a_reply_from_the_shared_mailbox_is_recorded_for_each_person(
    office: Office,
) -> None:
    """A reply from the team address answers Alex's and Priya's milestones alike; each update
    is recorded for the person whose milestone it is, both prompts count as answered, and the
    confirmation goes to the mailbox."""
    await office.run(MONDAY)
    [prompt] = office.to_team("prompt")
    await office.reply(
        prompt,
        "2.3 2 Analysis drafted\n2.4 3 Microsite specification agreed",
        at=MONDAY + timedelta(hours=2),
    )
    assert await office.recorded() == {"2.3": "AW", "2.4": "PB"}
    prompts = await office.prompts()
    assert prompts["AW"].answered_at is not None
    assert prompts["PB"].answered_at is not None
    confirmations = [m for m in office.mail() if str(m["Subject"]).startswith("Recorded:")]
    assert len(confirmations) == 1
    assert TEAM.lower() in str(confirmations[0]["To"]).lower()


async def test_the_silent_person_of_a_shared_mailbox_is_reminded_and_awaiting(
    office: Office,
) -> None:
    """When the team address answers only Alex's milestones, Wednesday's one reminder to it
    lists Priya's alone, and Friday's digest lists Priya, not Alex, as awaiting."""
    await office.run(MONDAY)
    [prompt] = office.to_team("prompt")
    await office.reply(prompt, "2.3 2 Analysis drafted", at=MONDAY + timedelta(hours=2))
    await office.run(MONDAY + timedelta(days=2, hours=1))
    [reminder] = office.to_team("reminder")
    assert reminder["In-Reply-To"] == prompt["Message-ID"]
    body = reminder.get_body(preferencelist=("plain",))
    assert body is not None
    text = str(body.get_content())
    assert "2.4  Recruitment microsite" in text
    assert "2.3  Exit interview analysis" not in text
    assert "Hello Priya Bains," in text
    await office.run(MONDAY + timedelta(days=2, hours=2))
    assert len(office.to_team("reminder")) == 1
    digests = {d.network: d for d in await office.pulse.digests("small", as_of=date(2026, 11, 27))}
    assert "PB" in digests["workforce"].awaiting
    assert "AW" not in digests["workforce"].awaiting
    # A reply to the reminder answers Priya's milestone, recorded for her.
    await office.reply(
        reminder,
        "2.4 3 Microsite specification agreed",
        at=MONDAY + timedelta(days=2, hours=3),
        n=2,
    )
    assert (await office.recorded())["2.4"] == "PB"


async def test_an_out_of_office_from_a_shared_mailbox_marks_nobody_away(office: Office) -> None:
    """An auto-reply from the team address naming a return date cannot say whose absence it
    is: nobody is marked away, and it is kept, unanswered."""
    await office.run(MONDAY)
    [prompt] = office.to_team("prompt")
    auto = EmailMessage()
    auto["From"] = TEAM
    auto["To"] = str(prompt["From"])
    auto["Subject"] = "Automatic reply: " + str(prompt["Subject"])
    auto["Message-ID"] = "<ooo-1@council.example>"
    auto["Auto-Submitted"] = "auto-replied"
    auto.set_content("I am out of the office until 7 December 2026.")
    sent = len(office.mail())
    (office.pulse.settings.mail_dir / "inbox" / "ooo.eml").write_bytes(auto.as_bytes())
    await office.run(MONDAY + timedelta(hours=1))
    async with office.pulse.sessions() as session:
        away = (
            await session.scalars(select(PersonRow.key).where(PersonRow.away_until.is_not(None)))
        ).all()
    assert away == []
    assert len(office.mail()) == sent
