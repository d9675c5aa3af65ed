"""The contact line of prompts and reminders as sent: the lead's network coordinators, or
the plan's `contact` setting when it is given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from bot.services.delivery import OutboxWorker
from bot.services.prompting import Cycles
from handlers.email.local_transport import LocalMailTransport
from handlers.files.importing import import_plan
from tests.conftest import FIXTURES, import_small_plan, running_pulse

PLANS = FIXTURES / "plans"
MONDAY = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)


def _sent_to(outbox: Path, address: str, kind: str) -> tuple[str, str]:
    """The text and HTML of the one `kind` message sent to `address`."""
    found = []
    for path in sorted(outbox.glob(f"*-{kind}.eml")):
        message = message_from_bytes(path.read_bytes(), policy=default)
        assert isinstance(message, EmailMessage)
        if address in str(message["To"]):
            text, html = (p.get_content() for p in message.iter_parts())
            found.append((text, html))
    assert len(found) == 1, (address, kind, len(found))
    return found[0]


async def _send(app_sessions: object, outbox: Path, cycles: Cycles, now: datetime) -> None:
    worker = OutboxWorker(
        app_sessions,  # type: ignore[arg-type]
        {"email": LocalMailTransport(outbox)},
        clock=lambda: now,
    )
    await worker.drain()


async def test_prompt_and_reminder_name_the_coordinators_of_the_leads_networks(
    db_url: str, tmp_path: Path
) -> None:
    """Priya leads one early help and two workforce actions: her prompt and its reminder
    name the workforce coordinator (by the name the people list gives) and then early help's,
    in both parts, before the board that follows every action."""
    people = (PLANS / "small-people.csv").read_text(encoding="utf-8")
    people += "WL,Wes Lane & Co,wf.lead@council.example,,email,Europe/London\n"
    (tmp_path / "people.csv").write_text(people, encoding="utf-8")
    async with running_pulse(db_url, tmp_path, lambda: MONDAY) as app:
        await import_small_plan(app.sessions, now=MONDAY, people_path=tmp_path / "people.csv")
        cycles = Cycles(app.sessions, mail_from="pulse@council.example", clock=lambda: MONDAY)
        await cycles.start_cycle("small", now=MONDAY)
        outbox = tmp_path / "outbox"
        await _send(app.sessions, outbox, cycles, MONDAY)
        later = MONDAY + timedelta(days=7)
        assert await cycles.send_reminders("small", later) > 0
        await _send(app.sessions, outbox, cycles, later)

    line = (
        "Questions about this plan? Contact Wes Lane & Co <wf.lead@council.example> "
        "or eh.lead@council.example"
    )
    for kind in ("prompt", "reminder"):
        text, html = _sent_to(outbox, "priya.bains@council.example", kind)
        assert line in text
        assert (
            "Contact Wes Lane &amp; Co &lt;wf.lead@council.example&gt; or eh.lead@council.example"
            in html
        )
    # Morgan is asked about 1.1 alone: early help's coordinator, then the whole-plan board.
    text, _ = _sent_to(outbox, "morgan.clarke@council.example", "prompt")
    assert (
        "Questions about this plan? Contact eh.lead@council.example or chair@council.example"
    ) in text


async def test_the_plans_contact_setting_overrides_the_coordinators(
    db_url: str, tmp_path: Path
) -> None:
    """A `contact` given with `--settings` replaces the coordinators in every prompt."""
    settings = tmp_path / "settings.yaml"
    settings.write_text("plan:\n  contact: Plan Office <plans@council.example>\n", encoding="utf-8")
    async with running_pulse(db_url, tmp_path, lambda: MONDAY) as app:
        await import_small_plan(app.sessions, now=MONDAY)
        report = await import_plan(
            app.sessions,
            PLANS / "small-plan.csv",
            now=MONDAY,
            plan_key="small",
            settings_path=settings,
        )
        assert not [w for w in report.warnings if "contact" in str(w.column)]
        cycles = Cycles(app.sessions, mail_from="pulse@council.example", clock=lambda: MONDAY)
        await cycles.start_cycle("small", now=MONDAY)
        outbox = tmp_path / "outbox"
        await _send(app.sessions, outbox, cycles, MONDAY)

    for address in ("priya.bains@council.example", "alex.walker@council.example"):
        text, html = _sent_to(outbox, address, "prompt")
        assert "Questions about this plan? Contact Plan Office <plans@council.example>" in text
        assert "wf.lead@" not in text
        assert "eh.lead@" not in text
        assert "Plan Office &lt;plans@council.example&gt;" in html
