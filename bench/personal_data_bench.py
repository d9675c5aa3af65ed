"""Benchmark: a subject-access export and a retention sweep on a store of realistic size.

Builds the national store of `digest_bench` (50,000 milestones, 2,000,000 updates, 200
networks, 1,000 people, each giving 2,000 of the answers) and a year of raw inbound mail
(50,000 messages of about 3 KB, all older than the 90-day retention window), then:

- times `pulse people export` for one busy person (2,000 answers given, 50 milestones
  led, 50 of the messages theirs), with and without the index on `updates.person_id`
  (dropped and made again in the same run: the ratio is the index's effect);
- times every digest alone and beside the retention sweep in turns (alone, beside, beside,
  alone, ...), the sweep running as the scheduler runs it (its batches and pauses, in the
  same process), and prints both medians and each round's ratio.

    .venv/bin/python bench/personal_data_bench.py [--milestones 50000] [--updates 2000000]
                                                  [--mail 50000] [--database-url URL]
                                                  [--rounds 6] [--batch 100] [--pause 0.05]

Targets (issue 15): the export under 5 s; digests within 10% of their time without the
sweep. The store is written with the database's bulk path (timed, not part of the targets;
on SQLite the updates are made inside SQLite: `write_updates_sqlite`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from importlib import import_module
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
from bot.services.records import SWEEP_BATCH, SWEEP_PAUSE, Records

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


def write_updates_sqlite(path: Path, milestones: int, count: int, *, newest: datetime) -> int:
    """Write `count` updates into the SQLite store at `path` inside SQLite itself, as
    `digest_bench.update_rows` lays them out (each milestone's history spread back from
    `newest` 37 hours apart, person 1 + milestone % 1000, ratings and support flags mixed
    by a fixed hash, not a seeded generator); returns how many person BUSY gave.

    Two million rows made in Python and inserted one by one, each firing the
    `milestone_state` trigger and updating six indexes, took over three minutes. Here the
    rows come from one `INSERT … SELECT` over a counting CTE with the indexes and the trigger
    set aside; the indexes are then built once and `milestone_state` filled from the history
    by the migration's own backfill, as if the trigger had fired for each row."""
    backfill = import_module("storage.migrations.versions.0005_milestone_state")._backfill
    per = count // milestones
    newest_text = newest.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    connection = sqlite3.connect(path)
    try:
        kept = connection.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'updates' "
            "AND type IN ('index', 'trigger') AND sql IS NOT NULL"
        ).fetchall()
        for kind, name, _ in kept:
            connection.execute(f"DROP {kind.upper()} {name}")
        # n counts the rows; m its milestone, i its place in the history (0 = oldest), h a
        # fixed hash of n for the choices update_rows makes at random.
        given = (
            f"strftime('%Y-%m-%d %H:%M:%S', '{newest_text}', "
            f"'-' || (({per} - i) * 37 + h % 30) || ' hours') || '.000000'"
        )
        connection.execute(
            f"""
            WITH RECURSIVE counter(n) AS (
                SELECT 0 UNION ALL SELECT n + 1 FROM counter WHERE n + 1 < {per * milestones}
            ), rows AS (
                SELECT n, 1 + n / {per} AS m, n % {per} AS i,
                       (n * 2654435761 + 12345) % 4294967291 AS h
                FROM counter
            )
            INSERT INTO updates ({COLUMNS["updates"]})
            SELECT n + 1, m, 1 + m % 1000,
                   CASE h % 6 WHEN 0 THEN 1 WHEN 1 THEN 2 WHEN 2 THEN 3 WHEN 3 THEN 3
                              WHEN 4 THEN 4 END,
                   'progress note', NULL, (h / 7) % 100 < 5, 'cli', NULL, {given}, {given}
            FROM rows
            """
        )
        for kind, _, sql in kept:
            if kind == "index":
                connection.execute(sql)
        connection.execute("DELETE FROM milestone_state")
        connection.execute(backfill())
        for kind, _, sql in kept:
            if kind == "trigger":
                connection.execute(sql)
        connection.commit()
        connection.execute("ANALYZE")
        (busy,) = connection.execute(
            "SELECT count(*) FROM updates WHERE person_id = ?", (BUSY,)
        ).fetchone()
        return int(busy)
    finally:
        connection.close()


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


class Sweeper:
    """Retention sweeps as the scheduler runs them, one after another while switched on."""

    def __init__(self, pulse: PlanPulse, batch: int, pause: float) -> None:
        self.records = Records(pulse)
        self.batch, self.pause = batch, pause
        self.on = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.dropped = self.sweeps = 0
        self.busy = 0.0
        self.finished = False

    async def run(self) -> None:
        while not self.finished:
            await self.on.wait()
            self.idle.clear()
            t0 = time.perf_counter()
            swept = await self.records.sweep(NOW, batch=self.batch, pause=self.pause)
            self.busy += time.perf_counter() - t0
            self.dropped += swept.raw_mail
            self.sweeps += 1
            self.finished = swept.finished
            self.idle.set()

    async def stop(self) -> None:
        """Switch off and wait for the sweep under way to end."""
        self.on.clear()
        await self.idle.wait()


async def execute(pulse: PlanPulse, statement: str) -> None:
    async with pulse.sessions() as session, session.begin():
        await session.execute(text(statement))


async def bench(
    milestones: int,
    updates: int,
    networks: int,
    mail: int,
    database_url: str | None,
    rounds: int = 6,
    batch: int = SWEEP_BATCH,
    pause: float = SWEEP_PAUSE,
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
        tables["inbound"] = inbound_rows(mail)
        newest = NOW - timedelta(days=1)
        if url.startswith("sqlite"):
            path = Path(make_url(url).database or "")
            await asyncio.to_thread(write_sqlite, path, tables)
            given = await asyncio.to_thread(
                write_updates_sqlite, path, milestones, updates, newest=newest
            )
        else:
            tables["updates"] = update_rows(milestones, updates, start_id=1, newest=newest, seed=1)
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

        # Digests alone and beside the sweep, in turns (ABBA), so that the machine's load
        # drifting over the run weighs on both alike.
        await digest_times(pulse, 1)  # warm the caches
        sweeper = Sweeper(pulse, batch, pause)
        task = asyncio.create_task(sweeper.run())
        alone: list[float] = []
        during: list[float] = []
        for r in range(rounds):
            for beside in (False, True) if r % 2 == 0 else (True, False):
                if beside and not sweeper.finished:
                    sweeper.on.set()
                    during += await digest_times(pulse, 1)
                    await sweeper.stop()
                elif not beside:
                    alone += await digest_times(pulse, 1)
        base, loaded = statistics.median(alone), statistics.median(during)
        change = (loaded - base) / base
        print(f"digests alone (median of {len(alone)})     {base:6.2f} s", flush=True)
        print(
            f"digests beside the sweep         {loaded:6.2f} s   (median of {len(during)}; "
            f"{change:+.1%})   target within 10%: {'met' if change <= 0.10 else 'NOT met'}",
            flush=True,
        )
        pairs = ", ".join(f"{b / a:.2f}" for a, b in zip(alone, during, strict=False))
        print(f"  each round, beside / alone     {pairs}")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pulse.close()
        print(
            f"sweep: {sweeper.dropped:,} raw messages dropped in {sweeper.sweeps} sweeps, "
            f"{sweeper.busy:.1f} s ({sweeper.dropped / max(sweeper.busy, 1e-9):,.0f} "
            "messages/s while sweeping)"
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
    parser.add_argument("--rounds", type=int, default=6, help="digests alone and beside, each")
    parser.add_argument("--batch", type=int, default=SWEEP_BATCH, help="messages per batch")
    parser.add_argument("--pause", type=float, default=SWEEP_PAUSE, help="seconds between")
    args = parser.parse_args()
    asyncio.run(
        bench(
            args.milestones,
            args.updates,
            args.networks,
            args.mail,
            args.database_url,
            rounds=args.rounds,
            batch=args.batch,
            pause=args.pause,
        )
    )


if __name__ == "__main__":
    main()
