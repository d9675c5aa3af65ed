"""Evidence of impact by email (issue 17 item 3), end to end in local mode on SQLite and
PostgreSQL: the prompt says how to give it, a reply's `evidence:` lines are recorded with a
rating of 1 and sent back with any other, and the confirmation says which."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from bot.app import PlanPulse, Runner
from bot.settings import Settings
from storage.evidence import EvidenceRepository
from tests.conftest import Clock, import_small_plan
from tests.integration.test_delivery import outbox_files, prompt_for, read_eml, reply_to

MONDAY = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
DANA = "dana.cole@council.example"


@pytest.fixture
async def pulse(db_url: str, tmp_path: Path) -> AsyncIterator[PlanPulse]:
    clock = Clock(MONDAY)
    settings = Settings(_env_file=None, DATABASE_URL=db_url, PULSE_DATA_DIR=tmp_path / "var")
    app = PlanPulse(settings, clock=clock)
    await app.migrate()
    await import_small_plan(app.sessions, now=clock())
    await Runner(app).run_once()  # Monday's prompts
    clock.now = MONDAY + timedelta(hours=2)
    yield app
    await app.close()


def plain(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


async def test_a_reply_records_evidence_with_a_rating_of_1_and_sends_back_the_rest(
    pulse: PlanPulse,
) -> None:
    """Dana's prompt says evidence may go with a rating of 1; her reply gives evidence with
    a 1 and with a 2: the first is recorded with it, the second comes back with the reason,
    and the confirmation shows both."""
    prompt = prompt_for(pulse, DANA)
    assert 'you may add a line "evidence: what changed for children and families"' in plain(prompt)
    body = (
        "Hi,\n\n"
        "1.2-1 1 Analysis signed off\n"
        "  evidence: 40 staff trained, waits down from 12 to 6 weeks\n\n"
        "1.2-2 2 Halfway\n"
        "evidence: fewer repeat referrals\n\n"
        "Thanks, Dana"
    )
    raw = reply_to(prompt, sender=f"Dana Cole <{DANA}>", body=body, message_id="<r-1@x.example>")
    (pulse.settings.mail_dir / "inbox" / "reply-1.eml").write_bytes(raw)
    await Runner(pulse).run_once()

    async with pulse.sessions() as session:
        found = await EvidenceRepository(session).of_plan("small")
    assert {ref: e.text for ref, e in found.items()} == {
        "1.2-1": "40 staff trained, waits down from 12 to 6 weeks"
    }
    tracked = await pulse.tracked("small")
    assert tracked.updates["1.2-1"][-1].rating == 1
    assert tracked.updates["1.2-2"][-1].note != "Halfway"
    [confirmation] = [
        m for m in map(read_eml, outbox_files(pulse)) if "confirm" in str(m["Message-ID"])
    ]
    text = plain(confirmation)
    assert "      evidence: 40 staff trained, waits down from 12 to 6 weeks" in text
    assert "Not recorded:" in text
    assert "evidence of impact goes with a rating of 1 (achieved)" in text
