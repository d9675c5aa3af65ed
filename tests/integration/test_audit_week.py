"""A scripted week read back from `pulse audit`, on SQLite and PostgreSQL: the plan imported
as `pulse import` records it, prompts answered by email and in Slack, an absence and a
delegate set in Slack and the absence cleared, a subject-access export, a retention sweep and an
erasure, each entry with who made it and through which channel, in order, and nothing in
the log naming the person forgotten."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.app import PlanPulse, Runner
from bot.records_cli import audit_import
from bot.services.records import Records
from bot.settings import Settings
from handlers.files.importing import import_plan
from tests.conftest import FIXTURES, Clock
from tests.fake_slack import FakeSlack
from tests.integration.test_delivery import prompt_for, reply_to
from tests.integration.test_slack_app import MONDAY, Slack, _harness, _people_csv, rate_payload

PLANS = FIXTURES / "plans"
PULSE = Path(sys.executable).parent / "pulse"
ALEX = ("Alex Walker", "alex.walker@council.example")


@pytest.fixture
async def slack_week(
    db_url: str, tmp_path: Path, fake_slack: FakeSlack
) -> AsyncIterator[tuple[Slack, PlanPulse, Clock]]:
    """The Slack app on a store with the small plan and its first cycle, and the bot beside
    it on the same store, its clock at Monday morning; raw mail is kept one day."""
    async for slack in _harness(db_url, tmp_path, fake_slack):
        clock = Clock(MONDAY)
        settings = Settings(
            _env_file=None,
            DATABASE_URL=db_url,
            PULSE_DATA_DIR=tmp_path / "var",
            RETAIN_RAW_MAIL_DAYS=1,
        )
        pulse = PlanPulse(settings, clock=clock)
        try:
            yield slack, pulse, clock
        finally:
            await pulse.close()


def pulse_audit(db_url: str, tmp_path: Path, *args: str) -> list[list[str]]:
    """`pulse audit ARGS` run as an admin would, its rows split into columns."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SMTP_", "IMAP_"))}
    env.update(DATABASE_URL=db_url, PULSE_DATA_DIR=str(tmp_path / "var"), METRICS_PORT="0")
    done = subprocess.run(
        [str(PULSE), "audit", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = lines[0]
    starts = [header.index(name) for name in header.split()]
    return [
        [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        for line in lines[1:]
    ]


async def test_a_scripted_weeks_audit_log_lists_each_change_with_who_and_channel_in_order(
    slack_week: tuple[Slack, PlanPulse, Clock], db_url: str, tmp_path: Path
) -> None:
    """Import, absences and delegates in Slack, an export, a retention sweep and an erasure
    each show once in `pulse audit`, in the order they happened, with who and which
    channel; answers by email and Slack do not; `--since` and `--person` narrow the list;
    no line names the person forgotten."""
    slack, pulse, clock = slack_week
    records = Records(pulse)
    # Monday: the plan is (re-)imported as `pulse import` records it; prompts go out.
    people = _people_csv(tmp_path / "people.csv")
    plan, networks = PLANS / "small-plan.csv", PLANS / "small-networks.csv"
    report = await import_plan(
        pulse.sessions,
        plan,
        now=clock(),
        plan_key="small",
        people_path=people,
        networks_path=networks,
    )
    await audit_import(pulse, report, {"plan": plan, "people": people, "networks": networks})
    await Runner(pulse).run_once()
    # Alex answers by email; Dana in Slack, then sets an absence and a delegate and comes
    # back (the Slack app's clock stays at Monday morning).
    clock.now = MONDAY + timedelta(hours=2)
    prompt = prompt_for(pulse, ALEX[1])
    raw = reply_to(prompt, sender=f"Alex <{ALEX[1]}>", body="2.3 2", message_id="<r1@example.org>")
    (pulse.settings.mail_dir / "inbox" / "r1.eml").write_bytes(raw)
    await Runner(pulse).run_once()
    channel, ts, blocks = await slack.dm("DC")
    ref = next(b["block_id"][2:] for b in blocks if b.get("block_id", "").startswith("m:"))
    click = f"{await slack.prompt_id('DC')}:{ref}:3"
    status, _ = await slack.interact(
        rate_payload("UDC00001", click, channel=channel, ts=ts, blocks=blocks)
    )
    assert status == 200
    assert len(await slack.updates()) == 1  # answers are recorded, never audited
    for text in ("away 31/12/26", "delegate <@UMC00001|morgan>", "back"):
        status, _ = await slack.command("UDC00001", text)
        assert status == 200
    # Wednesday: Dana's subject-access export. Thursday: the sweep drops Alex's reply.
    clock.now = MONDAY + timedelta(days=2)
    await records.export_person("DC", output=tmp_path / "exports", actor="os:dpo")
    clock.now = MONDAY + timedelta(days=3)
    swept = await records.sweep(clock())
    assert swept.raw_mail == 1
    # Friday: Alex leaves and is forgotten.
    clock.now = MONDAY + timedelta(days=4)
    erasure = await records.forget_person("AW", reassign_to="GR", actor="os:dpo")

    rows = pulse_audit(db_url, tmp_path)
    seen = [(r[1], r[2].split()[-1] if r[2].startswith("#") else r[2], r[3]) for r in rows]
    assert seen == [
        ("import", f"os:{getpass.getuser()}", "cli"),
        ("away_set", "DC", "slack"),
        ("delegate_set", "DC", "slack"),
        ("away_cleared", "DC", "slack"),
        ("subject_access_export", "os:dpo", "cli"),
        ("retention", "scheduler", "scheduler"),
        ("erasure", "os:dpo", "cli"),
    ]
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    text = "\n".join("  ".join(r) for r in rows).lower()
    assert ALEX[0].lower() not in text
    assert ALEX[1] not in text
    assert not [r for r in rows if "AW" in (r[2] + " " + r[4]).split()]
    assert rows[-1][4].startswith(f"#{erasure.person_id}")

    since = pulse_audit(db_url, tmp_path, "--since", "25/11/2026")
    assert [r[1] for r in since] == ["subject_access_export", "retention", "erasure"]
    dana = pulse_audit(db_url, tmp_path, "--person", "DC")
    assert [r[1] for r in dana] == [
        "away_set",
        "delegate_set",
        "away_cleared",
        "subject_access_export",
    ]
