"""Prompt tokens signed with PULSE_SECRET_KEY (issue 10.10), end to end in local mode on
SQLite and PostgreSQL: a prompt's reply is recorded; the same reply read by an installation
with another key is refused as not answering a current prompt; a prompt sent before signing
(an unsigned token) can still be answered until it expires."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import PlanPulse, Runner
from bot.messages.emails import find_tokens
from bot.services.prompting import Cycles
from bot.settings import Settings
from handlers.email.local_mail import write_local_reply
from storage.models import InboundRow, UpdateRow
from tests.conftest import Clock, import_small_plan
from tests.integration.test_delivery import count, outbox_files, prompt_for

MONDAY = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
LATER = MONDAY + timedelta(hours=2)
KEY = "Vq3xN8r2LmT7pZs1Kd6Wf0Hj4Yc9Ba5E"
OTHER_KEY = "p9Lr2Wq7Zx4Nc8Vb1Mt6Ks3Jd0Hf5GaR"


def app(db_url: str, data: Path, clock: Clock, key: str | None) -> PlanPulse:
    extra: dict[str, Any] = {"PULSE_SECRET_KEY": key} if key else {}
    settings = Settings(_env_file=None, DATABASE_URL=db_url, PULSE_DATA_DIR=data, **extra)
    return PlanPulse(settings, clock=clock)


@pytest.fixture
async def pulse(db_url: str, tmp_path: Path) -> AsyncIterator[PlanPulse]:
    clock = Clock(MONDAY)
    pulse = app(db_url, tmp_path / "var", clock, KEY)
    await pulse.migrate()
    await import_small_plan(pulse.sessions, now=clock())
    yield pulse
    await pulse.close()


async def answer(pulse: PlanPulse, runner: Runner, address: str) -> int:
    prompt = prompt_for(pulse, address)
    raw = prompt.as_bytes()
    write_local_reply(
        raw, "1.2-1 3 Analysis under way with HR", inbox=pulse.settings.mail_dir / "inbox"
    )
    pulse.clock.now = LATER  # type: ignore[attr-defined]
    return (await runner.run_once()).answers


async def test_a_reply_to_a_signed_prompt_is_recorded(pulse: PlanPulse) -> None:
    """The prompt carries a token this key signed, and the reply to it is recorded."""
    runner = Runner(pulse)
    await runner.run_once()
    prompt = prompt_for(pulse, "dana.cole")
    (token,) = find_tokens(str(prompt["Subject"]))
    assert len(token) == 26
    assert await answer(pulse, runner, "dana.cole") == 1


async def test_a_token_signed_by_another_key_answers_nothing(
    pulse: PlanPulse, db_url: str, tmp_path: Path
) -> None:
    """After the key changes, a reply to a prompt signed with the old key records nothing
    and is kept as rejected, for not answering a current prompt."""
    await Runner(pulse).run_once()
    rotated = app(db_url, tmp_path / "var", Clock(MONDAY), OTHER_KEY)
    try:
        assert await answer(rotated, Runner(rotated), "dana.cole") == 0
        assert await count(rotated, UpdateRow, UpdateRow.source == "email") == 0
        async with rotated.sessions() as session:
            outcomes = list((await session.scalars(select(InboundRow.outcome))).all())
    finally:
        await rotated.close()
    assert outcomes == ["unknown prompt token"]


async def test_a_prompt_sent_before_signing_can_still_be_answered(pulse: PlanPulse) -> None:
    """A prompt whose token was issued unsigned (before this version) is still answered
    through the signing installation."""
    await Cycles(pulse.sessions, mail_from=pulse.settings.mail_from, clock=pulse.clock).tick()
    runner = Runner(pulse)
    await runner.run_once()  # delivers the unsigned prompts; plans nothing new
    assert len(outbox_files(pulse)) > 0
    assert await answer(pulse, runner, "dana.cole") == 1
