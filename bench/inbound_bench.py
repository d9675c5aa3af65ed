"""Benchmark: take in and decide N email replies through the local inbox folder.

Builds a plan with N people leading one action each (three milestones per action), runs one
cycle (`Cycles.start_cycle` + `OutboxWorker.drain` on the local-mail transport), then writes
one real reply per prompt into the inbox folder with local mode's mail client (`pulse reply`:
every milestone it asked about answered, the whole prompt quoted), and times the whole
inbound path: `Inbound.sweep_inbox` (read the files, store the raw bytes, commit, move the
files: a batch per transaction) then `Inbound.process_pending` (parse, authenticate, record
the answers, enqueue a confirmation: a batch of 500 per transaction).

The bare baseline, timed in the same run on the same replies: read each file, parse its MIME
with the stdlib (`email.message_from_bytes(..., policy=default)`), take the plain body, and
insert one row per reply with plain sqlite3 (WAL, synchronous=NORMAL, as the bot's engine),
committing each, since the bot must commit each message before acknowledging it. No deciding.

    .venv/bin/python bench/inbound_bench.py [--replies 5000] [--database-url URL] [--profile]

Prints replies/s and the ratio; targets: >= 500 replies/s on SQLite, within 3x of the bare
baseline. `--profile` runs the inbound path under cProfile and prints the hot spots.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import shutil
import sqlite3
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from sample_plans import bench_pulse, write_plan  # a sibling: benchmarks run as scripts
from sqlalchemy import func, select

from bot.app import PlanPulse
from bot.services.delivery import OutboxWorker
from bot.services.inbound import Inbound
from bot.services.prompting import Cycles
from handlers.email.local_mail import write_local_reply
from handlers.email.local_transport import LocalMailTransport
from handlers.files.importing import import_plan
from storage.models import InboundRow, PersonRow, PromptRow, UpdateRow

NOW = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
REPLIED = NOW + timedelta(hours=2)
MAIL_FROM = "pulse@council.example"


def answer(refs: list[str]) -> str:
    """What the lead types: every milestone the prompt asked about answered, then a sign-off."""
    lines = [f"{ref} 2 On track; reviewed with the team on Friday" for ref in refs]
    return "\n".join(lines) + "\n\nThanks\nPerson"


async def asked(pulse: PlanPulse) -> dict[str, list[str]]:
    """Each prompted address and the milestone references its prompt asked about."""
    async with pulse.sessions() as session:
        rows = await session.execute(
            select(func.lower(PersonRow.email), PromptRow.milestone_refs).join(
                PersonRow, PersonRow.id == PromptRow.person_id
            )
        )
        return {address: list(refs) for address, refs in rows.tuples().all()}


def write_replies(refs_of: dict[str, list[str]], outbox: Path, folders: list[Path]) -> int:
    """One reply per prompt in the outbox, written by local mode's mail client (`pulse reply`:
    threaded, the whole prompt quoted below the answer) into the first of `folders`, and
    copied byte for byte into the others; the number written."""
    for target in folders:
        target.mkdir(parents=True, exist_ok=True)
    written = 0
    for path in sorted(outbox.glob("*.eml")):
        raw = path.read_bytes()
        prompt = message_from_bytes(raw, policy=default)
        assert isinstance(prompt, EmailMessage)
        address = prompt["To"].addresses[0].addr_spec.lower()
        reply = write_local_reply(raw, answer(refs_of[address]), inbox=folders[0], now=REPLIED)
        for folder in folders[1:]:
            shutil.copyfile(reply, folder / reply.name)
        written += 1
    return written


def bare_baseline(folder: Path, database: Path) -> float:
    """Read, parse and store each reply, committing each; seconds taken."""
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(
        "CREATE TABLE replies (id INTEGER PRIMARY KEY, message_id TEXT UNIQUE, sender TEXT,"
        " subject TEXT, body TEXT, raw BLOB)"
    )
    t0 = time.perf_counter()
    for path in sorted(folder.iterdir()):
        raw = path.read_bytes()
        message = message_from_bytes(raw, policy=default)
        assert isinstance(message, EmailMessage)
        part = message.get_body(preferencelist=("plain",))
        text = part.get_content() if part is not None else ""
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            "INSERT INTO replies (message_id, sender, subject, body, raw) VALUES (?,?,?,?,?)",
            (str(message["Message-ID"]), str(message["From"]), str(message["Subject"]), text, raw),
        )
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    connection.close()
    return elapsed


async def inbound_path(inbound: Inbound, total: int) -> tuple[float, float, int]:
    """Sweep the inbox, then process everything; (sweep s, process s, messages decided)."""
    t0 = time.perf_counter()
    taken = await inbound.sweep_inbox()
    swept = time.perf_counter() - t0
    assert taken == total, taken
    decided = 0
    t0 = time.perf_counter()
    while batch := await inbound.process_pending(limit=500):
        decided += len(batch)
    processed = time.perf_counter() - t0
    return swept, processed, decided


async def bench(replies: int, database_url: str | None, profile: bool) -> None:
    folder = Path(tempfile.mkdtemp(prefix="pulse-inbound-bench-"))
    try:
        url = database_url or f"sqlite+aiosqlite:///{folder / 'pulse.db'}"
        pulse = await bench_pulse(url, folder / "var", NOW)
        plan_file, people_file = write_plan(folder, replies, rating="2")
        await import_plan(
            pulse.sessions,
            plan_file,
            people_path=people_file,
            plan_key="bench",
            now=NOW,
            ratings_as_of=date(2026, 11, 2),
        )
        cycles = Cycles(pulse.sessions, mail_from=MAIL_FROM, clock=lambda: NOW)
        report = await cycles.start_cycle("bench", now=NOW)
        assert report.created == replies, report.created
        outbox = folder / "var" / "mail" / "outbox"
        worker = OutboxWorker(
            pulse.sessions, {"email": LocalMailTransport(outbox)}, clock=lambda: NOW, batch=200
        )
        assert await worker.drain() == replies

        inbox, bare = folder / "var" / "mail" / "inbox", folder / "bare"
        written = write_replies(await asked(pulse), outbox, [inbox, bare])
        assert written == replies, written
        size = sum(p.stat().st_size for p in bare.iterdir()) / written

        inbound = Inbound(pulse.sessions, mail_from=MAIL_FROM, clock=lambda: REPLIED, inbox=inbox)
        profiler = cProfile.Profile() if profile else None
        if profiler is not None:
            profiler.enable()
        swept, processed, decided = await inbound_path(inbound, replies)
        if profiler is not None:
            profiler.disable()
        async with pulse.sessions() as session:
            answers = await session.scalar(
                select(func.count()).select_from(UpdateRow).where(UpdateRow.source == "email")
            )
            states = dict(
                (
                    await session.execute(
                        select(InboundRow.state, func.count()).group_by(InboundRow.state)
                    )
                )
                .tuples()
                .all()
            )
        await pulse.close()
        baseline = bare_baseline(bare, folder / "bare.db")

        total = swept + processed
        rate = replies / total
        kind = url.split(":", 1)[0]
        print(f"database                      {kind}")
        print(f"replies (avg size)            {replies} ({size:,.0f} bytes)")
        print(f"outcomes                      {states}; {answers} answers recorded")
        print(f"sweep (read, store, commit)   {swept:8.2f} s   ({replies / swept:,.0f} msg/s)")
        print(
            f"process (decide, record)      {processed:8.2f} s   ({replies / processed:,.0f} msg/s)"
        )
        print(
            f"inbound path, total           {total:8.2f} s   ({rate:,.0f} replies/s)"
            f"   target >= 500/s: {'met' if rate >= 500 else 'NOT met'}"
        )
        print(f"bare (parse + insert/commit)  {baseline:8.2f} s   ({replies / baseline:,.0f}/s)")
        ratio = total / baseline
        print(
            f"inbound path / bare           {ratio:8.2f}x    target <= 3x: "
            f"{'met' if ratio <= 3 else 'NOT met'}"
        )
        assert decided == replies, decided
        if profiler is not None:
            print("\nhot spots (cumulative time, inbound path only):")
            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative").print_stats(40)
            print("hot spots (own time):")
            stats.sort_stats("tottime").print_stats(25)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replies", type=int, default=5000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--profile", action="store_true", help="cProfile the inbound path")
    args = parser.parse_args()
    asyncio.run(bench(args.replies, args.database_url, args.profile))


if __name__ == "__main__":
    main()
