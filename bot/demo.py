"""`pulse demo`: one whole cycle of the sample plan in local mode, on a simulated week.

Monday the prompts go out; leads answer by email (some on time, one with a reference the
prompt did not ask about, one out-of-office auto-reply); Wednesday the silent get their
one reminder; one lead answers late, on Thursday; Friday the digests are posted. Everything
happens in its own folder and database, through the same code paths as the running bot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from bot.app import PlanPulse, Runner
from bot.settings import Settings
from digests.html import render_html
from digests.markdown import render_markdown
from handlers.email.local_mail import write_local_reply
from handlers.files.importing import import_plan

MONDAY = datetime(2018, 6, 4, 9, 5, tzinfo=UTC)  # 10:05 in London (BST)


@dataclass
class DemoClock:
    now: datetime = MONDAY

    def __call__(self) -> datetime:
        return self.now


@dataclass
class DemoReport:
    folder: Path
    steps: list[str] = field(default_factory=list)
    digest_markdown: str = ""
    digest_html: Path | None = None


def _prompt_to(outbox: Path, address: str) -> bytes:
    for path in sorted(outbox.glob("*-prompt.eml")):
        raw = path.read_bytes()
        if address in str(message_from_bytes(raw, policy=default)["To"]):
            return raw
    raise LookupError(f"no prompt to {address}")


def _out_of_office(prompt: bytes, inbox: Path, now: datetime) -> None:
    original = message_from_bytes(prompt, policy=default)
    reply = EmailMessage()
    reply["From"] = str(original["To"])
    reply["To"] = str(original["From"])
    reply["Subject"] = "Automatic reply: " + str(original["Subject"])
    reply["Auto-Submitted"] = "auto-replied"
    reply["In-Reply-To"] = str(original["Message-ID"])
    reply["Message-ID"] = "<ooo.demo@reply.invalid>"
    reply["Date"] = now.strftime("%a, %d %b %Y %H:%M:%S +0000")
    reply.set_content("I am out of the office until 11 June with limited access to email.")
    (inbox / "out-of-office.eml").write_bytes(reply.as_bytes())


async def run_demo(
    folder: Path, plan_file: Path, *, say: Callable[[str], None] = print
) -> DemoReport:
    """Run the scripted week in `folder` (its own SQLite database and mail folders)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("pulse.db", "pulse.db-wal", "pulse.db-shm"):
        (folder / stale).unlink(missing_ok=True)
    clock = DemoClock()
    settings = Settings(
        _env_file=None,
        DATABASE_URL=f"sqlite+aiosqlite:///{folder / 'pulse.db'}",
        PULSE_DATA_DIR=folder,
        MAIL_FROM="Plan Pulse <plan-pulse@wirral.example>",
    )
    report = DemoReport(folder)
    pulse = PlanPulse(settings, clock=clock)
    try:
        await pulse.migrate()
        runner = Runner(pulse)
        for kind in ("inbox", "outbox"):
            for old in (settings.mail_dir / kind).rglob("*.eml"):
                old.unlink()
        outbox, inbox = settings.mail_dir / "outbox", settings.mail_dir / "inbox"

        def step(text: str) -> None:
            report.steps.append(text)
            say(text)

        imported = await import_plan(
            pulse.sessions, plan_file, now=clock(), ratings_as_of=datetime(2018, 4, 16).date()
        )
        step(
            f"Imported {imported.plan_key}: {imported.actions_added} actions, "
            f"{imported.milestones_added} milestones, {imported.ratings_recorded} ratings."
        )

        done = await runner.run_once()
        step(f"Mon 4 Jun 10:05  {done.prompts} prompts sent to {outbox}")

        clock.now = MONDAY.replace(hour=13)
        write_local_reply(
            _prompt_to(outbox, "joe.bannham"),
            "1.1-1 1 Next phase agreed at the Improvement Board\n"
            "1.1-2 3 Roll-out started in two localities",
            inbox=inbox,
            now=clock(),
        )
        write_local_reply(
            _prompt_to(outbox, "ian.godfrey"),
            "1.3-1 3 28 discharges so far, on course\n"
            "1.3-3 4 Sufficiency strategy delayed by data gaps - revised date "
            "31/07/18 - need support",
            inbox=inbox,
            now=clock(),
        )
        write_local_reply(
            _prompt_to(outbox, "kerry.mehta"),
            "1.2-3 2 Practice Lead interviews held\n9.9 1 this is not one of mine",
            inbox=inbox,
            now=clock(),
        )
        _out_of_office(_prompt_to(outbox, "sue.talbot"), inbox, clock())
        done = await runner.run_once()
        step(
            f"Mon 4 Jun 14:00  {done.taken_in} replies taken in, {done.answers} answers "
            "recorded; an out-of-office was kept and not answered; the line about 9.9 was "
            "refused in Kerry's confirmation"
        )

        clock.now = datetime(2018, 6, 6, 8, 30, tzinfo=UTC)
        done = await runner.run_once()
        step(f"Wed 6 Jun 09:30  {done.reminders} reminders to leads still silent")

        clock.now = datetime(2018, 6, 7, 15, 0, tzinfo=UTC)
        write_local_reply(
            _prompt_to(outbox, "carly.brown"),
            "3.2-1 2 Programme scoped; resource agreed at DMT\n5.1-2 3 Phase 2 kit ordered",
            inbox=inbox,
            now=clock(),
        )
        done = await runner.run_once()
        step(f"Thu 7 Jun 16:00  a late reply: {done.answers} answers recorded")

        clock.now = datetime(2018, 6, 8, 11, 5, tzinfo=UTC)
        done = await runner.run_once()
        step(
            f"Fri 8 Jun 12:05  digests posted: {done.digests} networks, "
            f"{done.delivered} messages delivered to the outbox"
        )

        digest = (await pulse.digests("wirral", network="board", as_of=clock().date()))[0]
        names = {p.key: p.name for p in (await pulse.tracked("wirral")).people}
        report.digest_markdown = render_markdown(digest)
        report.digest_html = folder / f"digest-board-{digest.period}.html"
        report.digest_html.write_text(render_html(digest, names=names), encoding="utf-8")
        return report
    finally:
        await pulse.close()
