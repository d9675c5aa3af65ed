"""Header injection end to end (issue 11.6): a plan whose title, lead's name and network's
name carry line breaks (as an Alt+Enter in a spreadsheet cell leaves them) is imported and
run in local mode; every prompt, reminder, confirmation and digest in the outbox parses with
`email.policy.default` into exactly our own headers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from bot.app import PlanPulse, Runner, digest_poster
from handlers.email.local_mail import write_local_reply
from handlers.files.importing import import_plan
from tests.conftest import Clock, running_pulse

MONDAY = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
TITLE = "Small plan\r\nBcc: leak@evil.example\r\nReply-To: evil@evil.example"
LEAD = "Alex\nBcc: lead-leak@evil.example\nWalker"
NETWORK = "Oversight\r\nBcc: network-leak@evil.example"
KINDS = ("prompt", "reminder", "confirm", "digest")
OURS = {
    "from", "to", "subject", "date", "message-id", "x-auto-response-suppress",
    "auto-submitted", "in-reply-to", "references", "mime-version", "content-type",
}  # fmt: skip


def plan_yaml(path: Path) -> Path:
    def q(text: str) -> str:
        return '"' + text.replace("\r", "\\r").replace("\n", "\\n") + '"'

    path.write_text(
        f"""plan:
  key: small
  title: {q(TITLE)}
  timezone: Europe/London
people:
  - {{key: AW, name: {q(LEAD)}, email: alex.walker@council.example, prefers: email}}
  - {{key: MC, name: {q(LEAD)}, email: morgan.clarke@council.example, prefers: email}}
networks:
  - {{key: oversight, name: {q(NETWORK)}, coordinators: [chair@council.example], all_actions: true}}
priorities:
  - number: 1
    title: Early help
    actions:
      - ref: "1.1"
        title: Family hubs blueprint
        leads: [AW]
        milestones:
          - {{title: Blueprint agreed, timescale: 30/11/26}}
          - {{title: Hubs open, timescale: 31/03/27}}
      - ref: "1.2"
        title: Workforce training
        leads: [MC]
        milestones:
          - {{title: Needs analysis, timescale: 30/11/26}}
""",
        encoding="utf-8",
    )
    return path


def outbox(pulse: PlanPulse) -> list[EmailMessage]:
    found = []
    for path in sorted((pulse.settings.mail_dir / "outbox").glob("*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=default)
        assert isinstance(message, EmailMessage)
        assert message.defects == []
        found.append(message)
    return found


async def test_names_with_line_breaks_add_no_headers_to_any_message(
    db_url: str, tmp_path: Path
) -> None:
    """Prompt, reminder, confirmation and digest of a plan whose title, lead and network
    names hold CR/LF carry exactly our headers, the names folded onto one line."""
    clock = Clock(MONDAY)
    async with running_pulse(db_url, tmp_path / "var", clock) as pulse:
        await import_plan(
            pulse.sessions, plan_yaml(tmp_path / "plan.yaml"), now=clock(), plan_key="small"
        )
        runner = Runner(pulse)
        await runner.run_once()  # Monday: the prompt
        prompt = next(m for m in outbox(pulse) if "alex.walker" in str(m["To"]))
        clock.now = MONDAY + timedelta(hours=1)
        write_local_reply(
            prompt.as_bytes(),
            "1.1-1 3 Drafting with partners",
            inbox=pulse.settings.mail_dir / "inbox",
            sender="alex.walker@council.example",
        )
        await runner.run_once()  # the confirmation
        clock.now = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
        await runner.run_once()  # Wednesday: a reminder to Morgan, who is silent
        await digest_poster(pulse).post("small", now=clock(), as_of=date(2026, 11, 27))
        await runner.run_once()
        messages = outbox(pulse)
    kinds = {next(k for k in KINDS if f".{k}" in str(m["Message-ID"])) for m in messages}
    assert kinds == set(KINDS)
    for message in messages:
        names = {name.lower() for name in message}
        assert names <= OURS, names - OURS
        for name in message:
            assert "\n" not in str(message[name])
        assert len(message["To"].addresses) == 1
    subjects = [str(m["Subject"]) for m in messages]
    assert all(" ".join(TITLE.split()) in s for s in subjects)
    assert any(" ".join(NETWORK.split()) in s for s in subjects)
    prompt_to = next(m for m in messages if ".prompt@" in str(m["Message-ID"]))["To"]
    assert prompt_to.addresses[0].display_name == " ".join(LEAD.split())
