"""Prompts in Teams: a cycle sends cards to the leads the bot knows in Teams and email to
everyone else, through the outbox, within Teams' limits, never twice."""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.domain.model import Source
from bot.messages.teams_cards import card_activity, notice_card, teams_payload
from bot.services.transports import Result
from handlers.files.importing import import_plan
from storage.models import MilestoneRow, OutboxRow, UpdateRow
from storage.outbox import OutboxMessage
from storage.repositories import UpdateRepository
from tests.adaptive_cards import MAX_MESSAGE_BYTES, card_contents, message_bytes, validate_message
from tests.conftest import PLANS
from tests.integration.test_delivery import outbox_files, read_eml
from tests.teams import TeamsSite, teams_people, teams_site


def _texts(card: Any) -> list[str]:
    """Every TextRun's text in a card, in order."""
    found: list[str] = []
    if isinstance(card, dict):
        if card.get("type") == "TextRun":
            found.append(str(card.get("text")))
        for value in card.values():
            found += _texts(value)
    elif isinstance(card, list):
        for value in card:
            found += _texts(value)
    return found


def _inputs(card: Any) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    if isinstance(card, dict):
        if str(card.get("type", "")).startswith("Input."):
            found[str(card["id"])] = card
        for value in card.values():
            found.update(_inputs(value))
    elif isinstance(card, list):
        for value in card:
            found.update(_inputs(value))
    return found


async def _install_dana(site: TeamsSite) -> str:
    dana = site.member("dana", "Dana Cole", "dana.cole@council.example")
    assert await site.post(site.install(dana)) == 200
    return f"a:1{dana.id[3:]}"


async def _outbox(site: TeamsSite) -> list[OutboxRow]:
    async with site.pulse.sessions() as session:
        return list((await session.scalars(select(OutboxRow).order_by(OutboxRow.id))).all())


async def test_a_cycle_sends_cards_in_teams_and_email_to_the_rest(
    db_url: str, tmp_path: Path
) -> None:
    """Dana, known in Teams, gets one valid card of her milestones with a link to her update
    page; Priya prefers Teams but has not installed the app, so she is asked by email and
    named in the report; the others are emailed as before."""
    async with teams_site(db_url, tmp_path) as site:
        conversation = await _install_dana(site)
        report = await site.runner.cycles.start_cycle("small", now=site.clock())
        assert report.not_in_teams == ["PB"]
        await site.runner.worker.drain()
        cards = site.connector.sent_to(conversation)
        assert len(cards) == 1
        assert len(site.connector.sent) == 1
        assert validate_message(cards[0]) == []
        card = card_contents(cards[0])[0]
        assert card["version"] == "1.5"
        inputs = _inputs(card)
        assert {"rating:1.2-1", "note:1.2-1", "date:1.2-1", "support:1.2-1"} <= set(inputs)
        assert inputs["rating:1.2-1"]["type"] == "Input.ChoiceSet"
        assert next(c["title"] for c in inputs["rating:1.2-1"]["choices"]) == "1 – Achieved"
        assert inputs["date:1.2-1"]["type"] == "Input.Date"
        assert inputs["support:1.2-1"]["title"] == "I need support"
        opened = [a for a in card["actions"] if a["type"] == "Action.OpenUrl"]
        assert opened
        assert opened[0]["url"].startswith(f"{site.base}/u/")
        assert [a["type"] for a in card["actions"]].count("Action.Submit") == 1
        emailed = {str(read_eml(p)["To"]) for p in outbox_files(site.pulse)}
        assert any("priya.bains" in to for to in emailed)
        assert not any("dana.cole" in to for to in emailed)
        rows = await _outbox(site)
        teams_rows = [r for r in rows if r.channel == "teams_chat"]
        assert [(r.recipient, r.state) for r in teams_rows] == [("DC", "sent")]
        assert conversation not in json.dumps([r.recipient for r in rows])


async def test_a_note_with_markup_pings_nobody(db_url: str, tmp_path: Path) -> None:
    """A last note holding `<at>`, `**` and a link is shown as plain text runs, and the card
    mentions nobody."""
    async with teams_site(db_url, tmp_path) as site:
        conversation = await _install_dana(site)
        note = "<at>Everyone</at> **urgent** [click](https://evil.example)"
        async with site.pulse.sessions() as session, session.begin():
            milestone_id = await session.scalar(
                select(MilestoneRow.id).where(MilestoneRow.ref == "1.2-1")
            )
            assert milestone_id is not None
            await UpdateRepository(session).add(
                milestone_id=milestone_id,
                rating=3,
                note=note,
                source=Source.CLI,
                given_at=site.clock() - timedelta(days=3),
                recorded_at=site.clock() - timedelta(days=3),
            )
        await site.runner.cycles.start_cycle("small", now=site.clock())
        await site.runner.worker.drain()
        activity = site.connector.sent_to(conversation)[0]
        card = card_contents(activity)[0]
        assert f"Last note: {note}" in _texts(card)
        assert "entities" not in activity
        assert note not in json.dumps([b for b in card["body"] if b.get("type") == "TextBlock"])
        assert validate_message(activity) == []


async def test_a_429_storm_delays_cards_but_sends_each_once(db_url: str, tmp_path: Path) -> None:
    """Teams answering 429 puts the card off until Retry-After; it then goes exactly once."""
    async with teams_site(db_url, tmp_path) as site:
        conversation = await _install_dana(site)
        site.connector.fail_next = [429, 429, 429]
        site.connector.retry_after = "7"
        await site.runner.cycles.start_cycle("small", now=site.clock())
        for _ in range(3):
            await site.runner.worker.drain()
            assert site.connector.sent_to(conversation) == []
            site.clock.now += timedelta(seconds=8)
        await site.runner.worker.drain()
        assert len(site.connector.sent_to(conversation)) == 1
        assert site.connector.throttled == 3
        await site.runner.worker.drain()
        assert len(site.connector.sent_to(conversation)) == 1


async def test_an_unknown_outcome_waits_for_review_and_is_never_resent(
    db_url: str, tmp_path: Path
) -> None:
    """A 502 from Teams may or may not have delivered the card: the row needs review, and no
    later pass posts it again."""
    async with teams_site(db_url, tmp_path) as site:
        await _install_dana(site)
        site.connector.fail_next = [502]
        await site.runner.cycles.start_cycle("small", now=site.clock())
        await site.runner.worker.drain()
        site.clock.now += timedelta(hours=2)
        await site.runner.worker.drain()
        rows = [r for r in await _outbox(site) if r.channel == "teams_chat"]
        assert [r.state for r in rows] == ["needs_review"]
        assert site.connector.sent == []


async def test_a_chat_answered_429_is_not_asked_again_until_retry_after(
    db_url: str, tmp_path: Path
) -> None:
    """After a 429, a further card to the same chat waits out Retry-After without calling
    Teams; another chat is not held up, and once the time has passed the card goes."""
    async with teams_site(db_url, tmp_path) as site:
        assert site.runner.teams is not None
        transport = site.runner.teams.transport
        site.connector.fail_next = [429]
        site.connector.retry_after = "20"

        def row(n: int, conversation: str) -> OutboxMessage:
            activity = card_activity(notice_card(f"card {n}"), summary="s")
            payload = teams_payload(
                service_url=site.connector.url, conversation_id=conversation, activity=activity
            )
            return OutboxMessage(n, "prompt", "teams_chat", "DC", None, payload, None, 1, "sending")

        first = await transport.deliver(row(1, "a:1held"))
        second = await transport.deliver(row(2, "a:1held"))
        other = await transport.deliver(row(3, "a:1other"))
        assert (first.result, first.retry_after) == (Result.RETRY, 20.0)
        assert second.result is Result.RETRY
        assert second.retry_after is not None
        assert 0 < second.retry_after <= 20
        assert site.connector.throttled == 1
        assert other.result is Result.SENT
        site.clock.now += timedelta(seconds=21)
        assert (await transport.deliver(row(2, "a:1held"))).result is Result.SENT
        assert len(site.connector.sent_to("a:1held")) == 1


_HEADER = (
    "Priority",
    "Ref",
    "Key actions",
    "Lead(s)",
    "Timescales",
    "Milestones",
    "Progress 1 - 4",
    "Notes",
    "Network(s)",
)
_ACTIONS = [
    "Family hubs in every locality",
    "Edge of care service redesign",
    "Placement sufficiency strategy",
    "Quality assurance framework refresh",
    "Care leavers local offer",
]
_STEPS = [
    "Scope agreed with partners",
    "Baseline data collected and checked",
    "Draft proposal to the board",
    "Consultation with families and young people",
    "Final sign-off and launch",
]


async def _import_dana_heavy_plan(site: TeamsSite, folder: Path) -> list[str]:
    """A second plan, "big", whose five actions of five milestones each Dana leads: the
    milestones' references in plan order."""
    path = folder / "big-plan.csv"
    refs: list[str] = []
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(_HEADER)
        for number, title in enumerate(_ACTIONS, start=1):
            steps = "\n".join(
                f"- {step} {5 * n:02d}/{number:02d}/27" for n, step in enumerate(_STEPS, start=1)
            )
            writer.writerow(
                ["3 - Children in care", f"3.{number}", title, "DC", "", steps, "", "", "workforce"]
            )
            refs += [f"3.{number}-{n}" for n in range(1, len(_STEPS) + 1)]
    await import_plan(
        site.pulse.sessions,
        path,
        now=site.clock(),
        plan_key="big",
        people_path=teams_people(folder),
        networks_path=PLANS / "small-networks.csv",
    )
    return refs


async def test_a_long_prompt_is_split_into_cards_and_the_second_one_answers(
    db_url: str, tmp_path: Path
) -> None:
    """Dana's 25 milestones come as several valid cards under Teams' size limit, each
    milestone on exactly one with its evidence field; answering two on the second card (one
    achieved, with evidence) records them through the answers service and turns that card,
    and only that one, into what was recorded."""
    async with teams_site(db_url, tmp_path) as site:
        refs = await _import_dana_heavy_plan(site, tmp_path)
        assert len(refs) == 25
        dana = site.member("dana", "Dana Cole", "dana.cole@council.example")
        assert await site.post(site.install(dana)) == 200
        conversation = f"a:1{dana.id[3:]}"
        report = await site.runner.cycles.start_cycle("big", now=site.clock())
        assert report.created == 1
        await site.runner.worker.drain()
        activities = site.connector.sent_to(conversation)
        assert len(site.connector.sent) == len(activities) >= 2
        on_cards: list[str] = []
        for activity in activities:
            assert message_bytes(activity) < MAX_MESSAGE_BYTES
            assert validate_message(activity) == []
            (card,) = card_contents(activity)
            on_cards += [ref for ref in _inputs(card) if ref.startswith(("rating:", "evidence:"))]
        assert on_cards == [f"{kind}:{ref}" for ref in refs for kind in ("rating", "evidence")]

        second = card_contents(activities[1])[0]
        second_refs = [
            key.partition(":")[2] for key in _inputs(second) if key.startswith("rating:")
        ]
        submit = next(a for a in second["actions"] if a["type"] == "Action.Submit")
        ref = second_refs[0]
        value = {
            **{key: "" for key in _inputs(second)},
            **submit["data"],
            f"rating:{ref}": "3",
            f"note:{ref}": "Consultation slipped to February",
            f"rating:{second_refs[1]}": "1",
            f"evidence:{second_refs[1]}": "Care leavers now keep their personal adviser",
        }
        card_id = "activity-2"  # every activity went to Dana; the connector numbers them
        submission = site.activity(dana, "message", value=value, replyToId=card_id)
        assert await site.post(submission) == 200

        async with site.pulse.sessions() as session:
            updates = (
                await session.execute(
                    select(MilestoneRow.ref, UpdateRow.rating, UpdateRow.note, UpdateRow.evidence)
                    .join(MilestoneRow, MilestoneRow.id == UpdateRow.milestone_id)
                    .where(UpdateRow.source == "teams")
                    .order_by(UpdateRow.id)
                )
            ).all()
        assert [tuple(u) for u in updates] == [
            (ref, 3, "Consultation slipped to February", None),
            (second_refs[1], 1, None, "Care leavers now keep their personal adviser"),
        ]
        assert [(c, replaced) for c, replaced, _ in site.connector.updated] == [
            (conversation, card_id)
        ]
        shown = site.connector.updated[0][2]
        assert validate_message(shown) == []
        texts = _texts(card_contents(shown)[0])
        assert "Thank you: your update is recorded." in texts
        assert "What changed: Care leavers now keep their personal adviser" in texts
        assert set(second_refs) <= set(texts)
        assert not (set(refs) - set(second_refs)) & set(texts), "the first card's milestones"
