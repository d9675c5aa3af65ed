"""One cycle for a plan whose leads are reached three ways: Slack, Teams and email, each
through its real transport against its service faked on loopback (Slack's Web API, the Bot
Connector, local mail files), and each lead asked once, in their own channel only."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import select

from storage.models import OutboxRow
from tests.adaptive_cards import card_contents, validate_message
from tests.fake_slack import TOKEN, FakeSlack
from tests.integration.test_delivery import outbox_files, read_eml
from tests.teams import teams_people, teams_site

SIGNING_SECRET = "8f2c4e6a0b1d3f5a7c9e1b3d5f7a9c0e"

# Who leads what in the small plan this week (tests/fixtures/plans/small-plan.csv).
ALEX = ["1.1", "2.3"]
MORGAN = ["1.1"]
DANA = ["1.2-1", "1.2-2", "1.2-3"]
PRIYA = ["1.2-1", "1.2-2", "2.4", "1.2-3"]


def _mixed_people(folder: Path) -> Path:
    """Dana and Priya prefer Teams (tests/teams.py), Morgan Slack, Alex email."""
    text = teams_people(folder).read_text(encoding="utf-8")
    text = text.replace(
        "morgan.clarke@council.example,,email", "morgan.clarke@council.example,,slack"
    )
    path = folder / "people-mixed.csv"
    path.write_text(text, encoding="utf-8")
    return path


def _card_refs(card: Any) -> list[str]:
    """The milestones a prompt card asks about, by its rating inputs, in order."""
    found: list[str] = []
    if isinstance(card, dict):
        if card.get("type") == "Input.ChoiceSet" and str(card.get("id")).startswith("rating:"):
            found.append(str(card["id"]).partition(":")[2])
        for value in card.values():
            found += _card_refs(value)
    elif isinstance(card, list):
        for value in card:
            found += _card_refs(value)
    return found


def _mail_text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


async def test_slack_teams_and_email_leads_each_get_one_prompt_in_their_own_channel(
    db_url: str, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """Morgan is asked by one Slack DM, Dana by one Teams card, Alex by one email, and
    Priya, who prefers Teams but has not installed the app, by one email and is named in
    the report; each sees their own milestones and nobody is asked anywhere else."""
    fake_slack.users_by_email["morgan.clarke@council.example"] = "U0MORGAN"
    slack = {
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.base_url,
    }
    async with teams_site(db_url, tmp_path, extra=slack, people=_mixed_people(tmp_path)) as site:
        dana = site.member("dana", "Dana Cole", "dana.cole@council.example")
        assert await site.post(site.install(dana)) == 200
        report = await site.runner.cycles.start_cycle("small", now=site.clock())
        assert report.created == 4
        assert report.not_in_teams == ["PB"]
        assert report.not_in_slack == []
        await site.runner.worker.drain()
        await site.runner.worker.drain()  # a second pass sends nothing again

        async with site.pulse.sessions() as session:
            rows = (await session.scalars(select(OutboxRow).order_by(OutboxRow.id))).all()
        assert sorted((r.channel, r.state) for r in rows if r.kind == "prompt") == [
            ("email", "sent"),
            ("email", "sent"),
            ("slack", "sent"),
            ("teams_chat", "sent"),
        ]

        # Teams: one card, to Dana's chat only, of her milestones.
        assert [conversation for conversation, _ in site.connector.sent] == [f"a:1{dana.id[3:]}"]
        activity = site.connector.sent[0][1]
        assert validate_message(activity) == []
        assert _card_refs(card_contents(activity)[0]) == DANA

        # Slack: one DM, to Morgan only, of her milestones.
        assert [m["channel"] for m in fake_slack.calls_to("chat.postMessage")] == ["D0MORGAN"]
        (dm,) = fake_slack.posted
        refs = [b["block_id"][2:] for b in dm["blocks"] if b.get("block_id", "")[:2] == "m:"]
        assert refs == MORGAN
        assert "Morgan Clarke" in str(dm["blocks"])

        # Email: one message each to Alex and to Priya, and to nobody else.
        mails = [read_eml(path) for path in outbox_files(site.pulse)]
        by_address = {str(m["To"]).rsplit("<", 1)[-1].rstrip(">"): m for m in mails}
        assert len(mails) == 2
        assert sorted(by_address) == [
            "alex.walker@council.example",
            "priya.bains@council.example",
        ]
        for address, refs in (
            ("alex.walker@council.example", ALEX),
            ("priya.bains@council.example", PRIYA),
        ):
            text = _mail_text(by_address[address])
            for ref in refs:
                assert ref in text, (address, ref)
        assert "1.2-1" not in _mail_text(by_address["alex.walker@council.example"])
        assert "2.3" not in _mail_text(by_address["priya.bains@council.example"])
