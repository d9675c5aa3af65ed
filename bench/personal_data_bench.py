"""Benchmark: a subject-access export and a retention sweep on a store of realistic size.

Builds the national store of `digest_bench` (50,000 milestones, 2,000,000 updates, 200
networks, 1,000 people, each giving 2,000 of the answers) and a year of raw inbound mail
(50,000 messages of about 3 KB, all older than the 90-day retention window), then:

- times `pulse people export` for one busy person (2,000 answers given, 50 milestones
  led, 50 of the messages theirs), with and without the index on `updates.person_id`
  (dropped and made again in the same run: the ratio is the index's effect);
- times every digest alone, then again while the retention sweep drops the raw bytes of
  all 50,000 messages in its small batches (as the scheduler runs it, in the same process),
  and prints the ratio.

    .venv/bin/python bench/personal_data_bench.py [--milestones 50000] [--updates 2000000]
                                                  [--mail 50000] [--database-url URL]

Targets (issue 15): the export under 5 s; digests within 10% of their time without the
sweep. The store is written with the database's bulk path (not timed).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from digest_bench import (  # siblings: benchmarks run as scripts
    AS_OF,
    COLUMNS,
    NOW,
    store_rows,
    update_rows,
    write_postgres,
    write_sqlite,
)
from sample_plans import bench_pulse
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.app import PlanPulse
from bot.services.records import Records

BUSY = 2  # the person whose export is timed: P2
COLUMNS["inbound"] = (
    "id, dedupe_key, source, raw, received_at, state, outcome, prompt_id, processed_at, "
    "sender, not_before, raw_sha256, raw_dropped_at"
)
BODY = ("Thanks, all on track this month; the partners meeting moved to next week. " * 30)[:2400]


def inbound_rows(count: int, people: int = 1000) -> list[tuple[object, ...]]:
    """A year of decided mail, each message a few KB, all past the retention window."""
    rng = random.Random(7)
    rows: list[tuple[object, ...]] = []
    for i in range(1, count + 1):
        sender = 1 + i % people
        received = NOW - timedelta(days=91 + rng.randrange(0, 365), minutes=rng.randrange(1440))
        raw = (
            f"From: Person {sender} <p{sender}@council.example>\r\n"
            f"To: pulse@council.example\r\n"
            f"Subject: Re: Progress update for National plan [PP-{i:026d}]\r\n"
            f"Message-ID: <m{i}@council.example>\r\n"
            f"Date: {received:%a, %d %b %Y %H:%M:%S +0000}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{1 + i % 10}.{i % 10_000}-1 3 {BODY}\r\n"
        ).encode()
        rows.append(
            (
                i,
                f"maildir:m{i}",
                "maildir",
                raw,
                received,
                "done",
                "recorded 1 answer",
                None,
                received,
                f"p{sender}@council.example",
                None,
                None,
                None,
            )
        )
    return rows


async def timed_export(pulse: PlanPulse, folder: Path, rounds: int = 3) -> tuple[float, int]:
    records = Records(pulse)
    best = float("inf")
    size = 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        paths = await records.export_person(f"P{BUSY}", output=folder, actor="bench")
        best = min(best, time.perf_counter() - t0)
        size = sum(p.stat().st_size for p in paths)
    return best, size


async def digest_times(pulse: PlanPulse, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        await pulse.digests("national", as_of=AS_OF)
        times.append(time.perf_counter() - t0)
    return times


async def sweep_all(pulse: PlanPulse) -> tuple[float, int, int]:
    """Sweeps as the scheduler runs them, one after another until nothing is due."""
    records = Records(pulse)
    t0 = time.perf_counter()
    dropped = sweeps = 0
    while True:
        swept = await records.sweep(NOW)
        dropped += swept.raw_mail
        sweeps += 1
        if swept.finished:
            return time.perf_counter() - t0, dropped, sweeps


async def execute(pulse: PlanPulse, statement: str) -> None:
    async with pulse.sessions() as session, session.begin():
        await session.execute(text(statement))


async def bench(
    milestones: int,
    updates: int,
    networks: int,
    mail: int,
    database_url: str | None,
    rounds: int = 5,
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="pulse-personal-bench-"))
    try:
        url = database_url or f"sqlite+aiosqlite:///{folder / 'pulse.db'}"
        pulse = await bench_pulse(url, folder, NOW)
        print(
            f"building the store: {milestones:,} milestones, {updates:,} updates, "
            f"{mail:,} raw messages …",
            flush=True,
        )
        t0 = time.perf_counter()
        tables = store_rows(milestones, networks)
        tables["updates"] = update_rows(
            milestones, updates, start_id=1, newest=NOW - timedelta(days=1), seed=1
        )
        tables["inbound"] = inbound_rows(mail)
        if url.startswith("sqlite"):
            await asyncio.to_thread(write_sqlite, Path(make_url(url).database or ""), tables)
        else:
            await write_postgres(url, tables)
        given = sum(1 for row in tables["updates"] if row[2] == BUSY)
        del tables
        print(f"  written in {time.perf_counter() - t0:.0f} s", flush=True)

        print(f"database                         {url.split(':', 1)[0]}", flush=True)
        out = folder / "exports"
        await execute(pulse, "DROP INDEX ix_updates_person_given")
        without_index, _ = await timed_export(pulse, out)
        await execute(
            pulse, "CREATE INDEX ix_updates_person_given ON updates (person_id, given_at, id)"
        )
        with_index, size = await timed_export(pulse, out)
        print(
            f"export of P{BUSY} ({given:,} answers given)  {with_index:6.2f} s   "
            f"target < 5 s: {'met' if with_index < 5 else 'NOT met'}   ({size / 1e6:.1f} MB)"
        )
        print(
            f"  without the person_id index    {without_index:6.2f} s   "
            f"(without / with = {without_index / with_index:.1f}x)",
            flush=True,
        )

        alone = await digest_times(pulse, rounds)
        base = statistics.median(alone)
        print(f"digests alone (median of {rounds})     {base:6.2f} s", flush=True)
        sweep = asyncio.create_task(sweep_all(pulse))
        during: list[float] = []
        while not sweep.done() and len(during) < rounds:
            during += await digest_times(pulse, 1)
        loaded = statistics.median(during)
        change = (loaded - base) / base
        print(
            f"digests during the sweep         {loaded:6.2f} s   (median of {len(during)}; "
            f"{change:+.1%})   target within 10%: {'met' if change <= 0.10 else 'NOT met'}",
            flush=True,
        )
        swept_in, dropped, sweeps = await sweep
        await pulse.close()
        print(
            f"sweep: {dropped:,} raw messages dropped in {sweeps} sweeps, {swept_in:.1f} s "
            f"({dropped / swept_in:,.0f} messages/s; the first {len(during)} digests beside it)"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--milestones", type=int, default=50_000)
    parser.add_argument("--updates", type=int, default=2_000_000)
    parser.add_argument("--networks", type=int, default=200)
    parser.add_argument("--mail", type=int, default=50_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    asyncio.run(bench(args.milestones, args.updates, args.networks, args.mail, args.database_url))


if __name__ == "__main__":
    main()
