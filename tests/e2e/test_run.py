"""The running bot as a process: simulated days with `run --once --now`, a clean stop on
SIGTERM, a second SQLite process refused, and a SIGKILL mid-batch that loses nothing."""

from __future__ import annotations

import asyncio
import csv
import json
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from storage.models import OutboxRow
from tests.e2e.test_cli import PULSE, environment, import_small, pulse, pulse_env


def start_bot(tmp: Path, db_url: str | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(PULSE), "run"],
        cwd=tmp,
        env=environment(tmp, **({"DATABASE_URL": db_url} if db_url else {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.005)


def eml(path: Path) -> EmailMessage:
    message = message_from_bytes(path.read_bytes(), policy=default)
    assert isinstance(message, EmailMessage)
    return message


def test_simulated_days_prompt_record_remind_and_digest(tmp_path: Path) -> None:
    """Across simulated days the bot prompts on Monday, records a reply dropped in the inbox,
    reminds the silent on Wednesday and lists them as awaiting in Friday's digest."""
    assert import_small(tmp_path).returncode == 0
    monday = pulse(tmp_path, "run", "--once", "--now", "2026-11-23T09:05:00Z")
    assert monday.returncode == 0, monday.stderr
    assert "enqueued 4 prompts" in monday.stdout
    outbox = tmp_path / "var" / "mail" / "outbox"
    prompt = next(
        eml(p) for p in sorted(outbox.glob("*-prompt.eml")) if "priya" in str(eml(p)["To"])
    )
    reply = EmailMessage()
    reply["From"] = "Priya Bains <priya.bains@council.example>"
    reply["To"] = str(prompt["From"])
    reply["Subject"] = "Re: " + str(prompt["Subject"])
    reply["Message-ID"] = "<priya-1@council.example>"
    reply["In-Reply-To"] = str(prompt["Message-ID"])
    reply["Date"] = "Mon, 23 Nov 2026 14:00:00 +0000"
    reply.set_content("1.2-1 3 Needs analysis started\n2.4 2 Site drafted\n\nThanks, Priya\n")
    (tmp_path / "var" / "mail" / "inbox" / "reply.eml").write_bytes(reply.as_bytes())
    later = pulse(tmp_path, "run", "--once", "--now", "2026-11-23T15:00:00Z")
    assert "recorded 2 answers" in later.stdout, later.stdout + later.stderr
    wednesday = pulse(tmp_path, "run", "--once", "--now", "2026-11-25T09:30:00Z")
    assert "enqueued 0 prompts and 3 reminders" in wednesday.stdout
    again = pulse(tmp_path, "run", "--once", "--now", "2026-11-25T10:30:00Z")
    assert "enqueued 0 prompts and 0 reminders" in again.stdout
    digest = pulse(
        tmp_path, "digest", "--plan", "small", "--network", "oversight", "--as-of", "2026-11-27"
    )
    body = json.loads(digest.stdout)
    assert body["awaiting"] == ["AW", "DC", "MC"]
    assert sorted(p.name.split("-", 1)[1] for p in outbox.glob("*.eml")) == sorted(
        ["prompt.eml"] * 4 + ["confirmation.eml"] + ["reminder.eml"] * 3
    )


def test_sigterm_stops_cleanly_and_a_second_sqlite_process_is_refused(tmp_path: Path) -> None:
    """`pulse run` keeps running until SIGTERM, then exits 0; while it runs on SQLite, a second
    process on the same database is refused with a clear message."""
    assert import_small(tmp_path).returncode == 0
    bot = start_bot(tmp_path)
    try:
        wait_for(
            lambda: (
                (tmp_path / "var" / "pulse.db.lock").exists()
                and (tmp_path / "var" / "mail" / "outbox").exists()
            )
        )
        time.sleep(0.3)
        second = pulse(tmp_path, "run", "--once")
        assert second.returncode == 1
        assert "another Plan Pulse process is running" in second.stderr
        bot.send_signal(signal.SIGTERM)
        out, err = bot.communicate(timeout=30)
    finally:
        if bot.poll() is None:
            bot.kill()
            bot.communicate()
    assert bot.returncode == 0, err
    assert "stopped" in out
    assert "Traceback" not in err


def test_a_second_process_on_the_same_sqlite_file_is_refused_whatever_its_data_folder(
    tmp_path: Path,
) -> None:
    """Two `pulse run` on one SQLite database with different data folders, and the database
    named by another path, still meet at one guard: the second is refused."""
    assert import_small(tmp_path).returncode == 0
    bot = start_bot(tmp_path)
    try:
        wait_for(lambda: (tmp_path / "var" / "pulse.db.lock").exists())
        other = tmp_path / "elsewhere"
        other.mkdir()
        (other / "db").symlink_to(tmp_path / "var")
        second = pulse_env(
            other,
            {"DATABASE_URL": f"sqlite+aiosqlite:///{other / 'db' / 'pulse.db'}"},
            "run",
            "--once",
        )
        assert second.returncode == 1
        assert "another Plan Pulse process is running" in second.stderr
        assert not (other / "var" / "mail" / "outbox").exists()
    finally:
        bot.send_signal(signal.SIGTERM)
        bot.communicate(timeout=30)


def big_plan(tmp: Path, people: int) -> tuple[Path, Path]:
    plan, directory = tmp / "big-plan.csv", tmp / "big-people.csv"
    with plan.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Priority", "Ref", "Key actions", "Lead(s)", "Timescales"])
        for i in range(people):
            writer.writerow(["1 - Scale", f"1.{i + 1}", f"Action {i}", f"P{i}", "31/12/27"])
    with directory.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["key", "name", "email"])
        for i in range(people):
            writer.writerow([f"P{i}", f"Person {i}", f"p{i}@council.example"])
    return plan, directory


async def outbox_states(db_url: str) -> dict[str, int]:
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(OutboxRow.state, func.count()).group_by(OutboxRow.state)
            )
            return {state: int(n) for state, n in rows.all()}
    finally:
        await engine.dispose()


def test_sigkill_mid_batch_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path, db_url: str
) -> None:
    """A bot killed with SIGKILL in the middle of delivering a cycle leaves work that the next
    run finishes: every prompt delivered exactly once."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'pulse.db'}" if "sqlite" in db_url else db_url
    people = 400
    plan, directory = big_plan(tmp_path, people)
    imported = pulse(tmp_path, "import", plan, "--people", directory, "--plan", "big", db_url=url)
    assert imported.returncode == 0, imported.stderr
    enqueued = pulse(tmp_path, "prompt", "--plan", "big", db_url=url)
    assert f"{people} prompts enqueued" in enqueued.stdout, enqueued.stderr
    outbox = tmp_path / "var" / "mail" / "outbox"
    bot = start_bot(tmp_path, url)
    try:
        # Past the first batch of 50, so some rows are sent, some leased, some pending.
        wait_for(lambda: outbox.exists() and len(list(outbox.glob("*.eml"))) >= 60)
    finally:
        bot.send_signal(signal.SIGKILL)
        bot.communicate(timeout=30)
    delivered_before = len(list(outbox.glob("*.eml")))
    states = asyncio.run(outbox_states(url))
    assert sum(states.values()) == people
    assert delivered_before < people, "the kill came after the whole batch"
    # After the lease has run out, the next run reconciles and finishes the batch.
    later = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    resumed = pulse(tmp_path, "run", "--once", "--now", later, db_url=url)
    assert resumed.returncode == 0, resumed.stderr
    files = sorted(outbox.glob("*.eml"))
    assert len(files) == people, (delivered_before, len(files))
    assert len({str(eml(p)["To"]) for p in files}) == people
    assert asyncio.run(outbox_states(url)) == {"sent": people}
    assert not list(outbox.glob(".sending-*"))
