"""Answering in Teams: a prompt's card submitted, recorded once through the answers service
and then shown as recorded; refusals shown field by field; commands in the 1:1 chat; and a
restart between a card's sending and its recording."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bot.app import Runner
from storage.models import AuditRow, OutboxRow, PersonRow, UpdateRow
from storage.outbox import OutboxRepository
from tests.adaptive_cards import card_contents, validate_message
from tests.fake_bot_connector import Member
from tests.teams import TeamsSite, teams_site


async def _prompted(site: TeamsSite) -> tuple[Member, str, dict[str, Any]]:
    """Dana installs the app and gets this week's card: (her, the card's activity id, the
    data its Submit carries)."""
    dana = site.member("dana", "Dana Cole", "dana.cole@council.example")
    assert await site.post(site.install(dana)) == 200
    await site.runner.cycles.start_cycle("small", now=site.clock())
    await site.runner.worker.drain()
    (activity,) = site.connector.sent
    card = card_contents(activity[1])[0]
    submit = next(a for a in card["actions"] if a["type"] == "Action.Submit")
    return dana, f"activity-{len(site.connector.sent)}", dict(submit["data"])


async def _teams_updates(site: TeamsSite) -> list[UpdateRow]:
    async with site.pulse.sessions() as session:
        return list(
            (await session.scalars(select(UpdateRow).where(UpdateRow.source == "teams"))).all()
        )


def _texts(card: Any) -> str:
    if isinstance(card, dict):
        own = str(card.get("text", "")) if card.get("type") == "TextRun" else ""
        return own + " ".join(_texts(v) for v in card.values())
    if isinstance(card, list):
        return " ".join(_texts(v) for v in card)
    return ""


async def test_a_submitted_card_is_recorded_once_and_shows_what_was_recorded(
    db_url: str, tmp_path: Path
) -> None:
    """Dana's card submission records her rating, note and support ask once, even when Teams
    delivers it twice, and her card then shows what was recorded."""
    async with teams_site(db_url, tmp_path) as site:
        dana, card_id, data = await _prompted(site)
        value = {
            **data,
            "rating:1.2-1": "2",
            "note:1.2-1": "Analysis signed off by the board",
            "date:1.2-1": "",
            "support:1.2-1": "true",
        }
        submission = site.activity(dana, "message", value=value, replyToId=card_id)
        assert await site.post(submission) == 200
        assert await site.post(submission) == 200, "Teams retrying the same activity"
        (update,) = await _teams_updates(site)
        assert (update.rating, update.note, update.needs_support) == (
            2,
            "Analysis signed off by the board",
            True,
        )
        assert site.connector.updated, "the card was replaced"
        _conversation, replaced, shown = site.connector.updated[-1]
        assert replaced == card_id
        assert validate_message(shown) == []
        text = _texts(card_contents(shown)[0])
        assert "Thank you: your update is recorded." in text
        assert "Rating: 2 – Largely achieved, some tasks outstanding" in text
        assert "Note: Analysis signed off by the board" in text


async def test_refusals_are_shown_beside_their_fields_and_nothing_is_recorded(
    db_url: str, tmp_path: Path
) -> None:
    """A revised date in the past and a rating no card offers are refused on the card, field
    by field, what was typed is kept, and nothing at all is recorded."""
    async with teams_site(db_url, tmp_path) as site:
        dana, card_id, data = await _prompted(site)
        value = {
            **data,
            "rating:1.2-1": "3",
            "note:1.2-1": "Slipping",
            "date:1.2-1": "2020-01-31",
            "rating:1.2-2": "9",
        }
        submission = site.activity(dana, "message", value=value, replyToId=card_id)
        assert await site.post(submission) == 200
        assert await _teams_updates(site) == []
        _, _, shown = site.connector.updated[-1]
        assert validate_message(shown) == []
        card = card_contents(shown)[0]
        text = _texts(card)
        assert "The revised date is in the past." in text
        assert "Choose a rating from the list." in text
        assert "Nothing was recorded" in text
        containers = [b for b in card["body"] if b.get("type") == "Container"]
        first = next(c for c in containers if "1.2-1" in _texts(c))
        ids = [i.get("id") for i in first["items"]]
        assert ids.index("date:1.2-1") + 1 < len(ids)
        assert "The revised date is in the past." in _texts(
            first["items"][ids.index("date:1.2-1") + 1]
        )
        note = next(i for i in first["items"] if i.get("id") == "note:1.2-1")
        assert note["value"] == "Slipping"


async def test_someone_teams_does_not_link_cannot_answer(db_url: str, tmp_path: Path) -> None:
    """A submission from a Teams account no person has records nothing."""
    async with teams_site(db_url, tmp_path) as site:
        _, _card_id, data = await _prompted(site)
        stranger = site.member("x", "Xavier Stranger", "x@elsewhere.example")
        value = {**data, "rating:1.2-1": "1", "note:1.2-1": "done"}
        assert await site.post(site.activity(stranger, "message", value=value)) == 200
        assert await _teams_updates(site) == []


async def test_commands_in_the_chat(db_url: str, tmp_path: Path) -> None:
    """status lists Dana's milestones, away and back set and clear her absence, delegate
    names who answers for her, and help lists the commands."""
    async with teams_site(db_url, tmp_path) as site:
        dana = site.member("dana", "Dana Cole", "dana.cole@council.example")
        await site.post(site.install(dana))
        conversation = f"a:1{dana.id[3:]}"

        async def say(text: str) -> str:
            assert await site.post(site.activity(dana, "message", text=text)) == 200
            return str(site.connector.sent_to(conversation)[-1]["text"])

        async def dana_row() -> PersonRow:
            async with site.pulse.sessions() as session:
                row = await session.scalar(select(PersonRow).where(PersonRow.key == "DC"))
                assert row is not None
                return row

        assert "1.2-1" in await say("status")
        assert "away 31/01/27" in await say("help")
        assert "until 31 Jan 2027" in await say("away 31/01/27")
        assert (await dana_row()).away_until == date(2027, 1, 31)
        assert "Welcome back" in await say("back")
        assert (await dana_row()).away_until is None
        assert "Sam Murray answers for you until 28 Feb 2027" in await say(
            "delegate sam murray until 28/02/27"
        )
        row = await dana_row()
        assert row.delegate_id is not None
        assert row.away_until == date(2027, 2, 28)
        assert "in the past" in await say("away 01/01/20")
        assert "Nobody in Plan Pulse has that name" in await say("delegate Nobody Atall")
        # Each change is in the audit log as Dana's own, made through Teams.
        async with site.pulse.sessions() as session:
            audited = (
                await session.execute(
                    select(AuditRow.action, AuditRow.actor, AuditRow.channel)
                    .where(AuditRow.person_id == row.id)
                    .order_by(AuditRow.id)
                )
            ).all()
        assert [a for a, _, _ in audited] == [
            "away_set",
            "away_cleared",
            "delegate_set",
            "away_set",
        ]
        assert {(actor, channel) for _, actor, channel in audited} == {
            (f"person:{row.id}", "teams")
        }


async def test_delegate_none_in_the_chat_clears_the_delegate(db_url: str, tmp_path: Path) -> None:
    """`delegate none` clears the delegate Dana named, keeps her day back, and is audited as
    her own change through Teams."""
    async with teams_site(db_url, tmp_path) as site:
        dana = site.member("dana", "Dana Cole", "dana.cole@council.example")
        await site.post(site.install(dana))
        conversation = f"a:1{dana.id[3:]}"

        async def say(text: str) -> str:
            assert await site.post(site.activity(dana, "message", text=text)) == 200
            return str(site.connector.sent_to(conversation)[-1]["text"])

        assert "delegate none" in await say("help")
        assert "You cannot be your own delegate." in await say("delegate Dana Cole")
        assert "Sam Murray answers for you until 28 Feb 2027" in await say(
            "delegate Sam Murray until 28/02/27"
        )
        assert "Nobody answers for you now" in await say("delegate none")
        async with site.pulse.sessions() as session:
            row = await session.scalar(select(PersonRow).where(PersonRow.key == "DC"))
            assert row is not None
            assert (row.delegate_id, row.away_until) == (None, date(2027, 2, 28))
            audited = (
                await session.scalars(
                    select(AuditRow.action)
                    .where(AuditRow.person_id == row.id, AuditRow.channel == "teams")
                    .order_by(AuditRow.id)
                )
            ).all()
        assert audited == ["delegate_set", "away_set", "delegate_cleared"]


async def test_a_restart_between_sent_and_recorded_leaves_the_card_for_review(
    db_url: str, tmp_path: Path
) -> None:
    """A worker that stopped after handing a card to Teams but before recording it leaves the
    row for a person to settle; the restarted bot never posts that card again."""
    async with teams_site(db_url, tmp_path) as site:
        dana = site.member("dana", "Dana Cole", "dana.cole@council.example")
        await site.post(site.install(dana))
        await site.runner.cycles.start_cycle("small", now=site.clock())
        lease = timedelta(minutes=5)
        async with site.pulse.sessions() as session, session.begin():
            repo = OutboxRepository(session)
            claimed = await repo.claim(owner="gone", now=site.clock(), lease=lease, limit=100)
            teams = [m.id for m in claimed if m.channel == "teams_chat"]
            assert await repo.mark_sending(teams, owner="gone", now=site.clock(), lease=lease)
        site.clock.now += lease + timedelta(minutes=1)
        restarted = Runner(site.pulse)
        try:
            await restarted.worker.drain()
        finally:
            if restarted.teams is not None:
                await restarted.teams.close()
        async with site.pulse.sessions() as session:
            states = (
                await session.execute(
                    select(OutboxRow.channel, OutboxRow.state, func.count()).group_by(
                        OutboxRow.channel, OutboxRow.state
                    )
                )
            ).all()
        assert ("teams_chat", "needs_review", 1) in states
        assert site.connector.sent == []


async def test_evidence_with_an_achieved_rating_is_recorded_and_shown_as_written(
    db_url: str, tmp_path: Path
) -> None:
    """Dana rates 1.2-1 achieved and says what changed for children and families, markup and
    all: it is stored as written and the recorded card shows it as plain text."""
    async with teams_site(db_url, tmp_path) as site:
        dana, card_id, data = await _prompted(site)
        card = card_contents(site.connector.sent[0][1])[0]
        evidence_input = next(
            item
            for block in card["body"]
            if block.get("type") == "Container"
            for item in block["items"]
            if item.get("id") == "evidence:1.2-1"
        )
        assert evidence_input["type"] == "Input.Text"
        assert evidence_input["isMultiline"] is True
        assert evidence_input["label"].startswith("What changed for children and families?")
        assert evidence_input["placeholder"] == "a sentence, or a link to the evidence"
        written = "**Fewer** repeat referrals <at>Priya</at> [report](https://evil.example)"
        value = {**data, "rating:1.2-1": "1", "evidence:1.2-1": f"  {written}\n"}
        submission = site.activity(dana, "message", value=value, replyToId=card_id)
        assert await site.post(submission) == 200
        (update,) = await _teams_updates(site)
        assert (update.rating, update.evidence) == (1, written)
        _, _, shown = site.connector.updated[-1]
        assert validate_message(shown) == []
        recorded = card_contents(shown)[0]
        assert f"What changed: {written}" in _texts(recorded)
        # Only ever a TextRun: never a TextBlock Teams would read as markdown.
        assert written not in str([b for b in recorded["body"] if b.get("type") == "TextBlock"])


async def test_evidence_refusals_are_shown_beside_the_evidence_field(
    db_url: str, tmp_path: Path
) -> None:
    """Evidence with a rating of 2, and evidence holding a child's NHS number beside a clean
    note, are each refused under their own evidence field, what was typed is kept, and
    nothing at all is recorded."""
    async with teams_site(db_url, tmp_path) as site:
        dana, card_id, data = await _prompted(site)
        value = {
            **data,
            "rating:1.2-1": "2",
            "evidence:1.2-1": "Families waiting less",
            "rating:1.2-2": "1",
            "note:1.2-2": "Signed off",
            "evidence:1.2-2": "Child 943 476 5919 now settled",
        }
        submission = site.activity(dana, "message", value=value, replyToId=card_id)
        assert await site.post(submission) == 200
        assert await _teams_updates(site) == []
        _, _, shown = site.connector.updated[-1]
        assert validate_message(shown) == []
        card = card_contents(shown)[0]
        assert "Nothing was recorded" in _texts(card)
        for ref, says in (
            ("1.2-1", "rating of 1 (achieved)"),
            ("1.2-2", "This evidence looks like it holds a child's"),
        ):
            container = next(
                b for b in card["body"] if b.get("type") == "Container" and ref in _texts(b)
            )
            ids = [i.get("id") for i in container["items"]]
            below = container["items"][ids.index(f"evidence:{ref}") + 1]
            assert says in _texts(below)
            note_at = ids.index(f"note:{ref}")
            assert ids[note_at + 1] == f"evidence:{ref}", "no error under the note"
            assert (
                container["items"][ids.index(f"evidence:{ref}")]["value"]
                == value[f"evidence:{ref}"]
            )
