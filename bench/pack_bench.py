"""Benchmark: the board pack of a national-scale store, beside that network's digest.

Builds the store of `bench/digest_bench.py` (50,000 milestones, 2,000,000 updates, 200
networks, 1,000 people) plus six weekly cycles of prompts (a third of them unanswered),
then times, in the same run:

- the whole plan's pack since a board a month back: its content (`board_pack`: the plan
  read as of the pack's day, its decisive updates as of the last board's, the history
  aggregated in SQL, the pure build), and writing it as HTML and as DOCX;
- the pack of the largest network, content and writing, against building that network's
  digest (`PlanPulse.digests(network=...)`), the bare baseline: the same reads, fewer rules.

On PostgreSQL the store is VACUUMed and ANALYZEd once written, as autovacuum would have done
long before a board: the visibility map it sets lets the rating mix read each rating from
the index alone (an index-only scan), without visiting the table.

Each figure is the best of `--rounds`, in wall seconds and in this process's CPU seconds
(on PostgreSQL, without the server's). `--postgres` starts a throwaway PostgreSQL server
(tests/postgres.py) for the run.

    .venv/bin/python bench/pack_bench.py [--milestones 50000] [--updates 2000000]
                                         [--networks 200] [--database-url URL | --postgres]
    .venv/bin/python bench/pack_bench.py --small   # 5,000 milestones, 200,000 updates

Targets (issue 17): the whole plan's pack under 10 s, as HTML and as DOCX (content and
writing); the largest network's within 3x of its digest, each way.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from digest_bench import (  # siblings: benchmarks run as scripts
    AS_OF,
    NOW,
    build_store,
)
from sample_plans import bench_pulse, throwaway_postgres
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.postgres

from bot.app import PlanPulse
from bot.services.packs import board_pack
from digests.pack import Pack
from digests.pack_html import render_pack_html
from handlers.files.pack_docx import write_pack_docx
from storage.models import PersonRow, PlanRow, PromptRow
from storage.prompts import NewPrompt, PromptRepository
from tests.postgres import create_database

SINCE = AS_OF - timedelta(days=30)
CYCLES = 6
T = TypeVar("T")


async def add_prompts(pulse: PlanPulse) -> int:
    """Six weekly cycles of prompts to every person; every third one left unanswered."""
    async with pulse.sessions() as session, session.begin():
        plan_id = await session.scalar(select(PlanRow.id).where(PlanRow.key == "national"))
        assert plan_id is not None
        people = list((await session.scalars(select(PersonRow.id).order_by(PersonRow.id))).all())
        prompts = PromptRepository(session)
        for week in range(CYCLES):
            sent = NOW - timedelta(days=7 * (CYCLES - week))
            cycle = f"{sent.isocalendar()[0]}-W{sent.isocalendar()[1]:02d}"
            made = await prompts.create_many(
                [NewPrompt(plan_id, p, cycle, "email", ("1.1-1",), ()) for p in people], now=sent
            )
            answered = [i for n, (_, i) in enumerate(sorted(made.items())) if n % 3]
            silent = [i for n, (_, i) in enumerate(sorted(made.items())) if not n % 3]
            await session.execute(
                update(PromptRow)
                .where(PromptRow.id.in_(answered))
                .values(sent_at=sent, answered_at=sent + timedelta(hours=5))
            )
            await session.execute(
                update(PromptRow).where(PromptRow.id.in_(silent)).values(sent_at=sent)
            )
        return len(people) * CYCLES


async def vacuum(url: str) -> None:
    """On PostgreSQL, VACUUM ANALYZE the freshly written store (outside a transaction)."""
    if not url.startswith("postgresql"):
        return
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql("VACUUM ANALYZE")
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Timing:
    """The best of a few rounds: wall seconds, and this process's CPU seconds (the database's
    thread included for SQLite), which a machine shared with other work disturbs less."""

    wall: float
    cpu: float

    def __add__(self, other: Timing) -> Timing:
        return Timing(self.wall + other.wall, self.cpu + other.cpu)

    def __str__(self) -> str:
        return f"{self.wall:6.2f} s (CPU {self.cpu:5.2f} s)"


async def best_of(rounds: int, step: Callable[[], Awaitable[T]]) -> tuple[Timing, T]:
    wall = cpu = float("inf")
    result = None
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        result = await step()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    assert result is not None
    return Timing(wall, cpu), result


async def timed_pack(pulse: PlanPulse, network: str | None, rounds: int) -> tuple[Timing, Pack]:
    return await best_of(
        rounds,
        lambda: board_pack(
            pulse.sessions, "national", since=SINCE, as_of=AS_OF, now=NOW, network=network
        ),
    )


async def timed_digest(pulse: PlanPulse, network: str, rounds: int) -> Timing:
    timing, _ = await best_of(
        rounds, lambda: pulse.digests("national", network=network, as_of=AS_OF)
    )
    return timing


async def timed_writing(pack: Pack, folder: Path, rounds: int) -> tuple[Timing, Timing, int]:
    """Writing `pack` as HTML and as DOCX; and the HTML's size."""

    async def html() -> str:
        return render_pack_html(pack)

    async def docx() -> Path:
        write_pack_docx(pack, folder / "pack.docx")
        return folder / "pack.docx"

    as_html, page = await best_of(rounds, html)
    as_docx, _ = await best_of(rounds, docx)
    return as_html, as_docx, len(page)


def lines(pack: Pack) -> int:
    return sum(len(v) for v in pack.changes.values()) + sum(
        len(v) for v in pack.exceptions.values()
    )


async def bench(
    milestones: int, updates: int, networks: int, database_url: str | None, rounds: int
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="pulse-pack-bench-"))
    try:
        url = database_url or f"sqlite+aiosqlite:///{folder / 'pulse.db'}"
        pulse = await bench_pulse(url, folder, NOW)
        t0 = time.perf_counter()
        tables = await build_store(url, milestones, updates, networks)
        prompts = await add_prompts(pulse)
        await vacuum(url)
        print(f"  written in {time.perf_counter() - t0:.0f} s ({prompts:,} prompts)")
        followed = Counter(network_id for _, network_id in tables["action_networks"])
        largest = f"n{followed.most_common(1)[0][0]}"

        whole, pack = await timed_pack(pulse, None, rounds)
        as_html, as_docx, size = await timed_writing(pack, folder, rounds)
        one, small = await timed_pack(pulse, largest, rounds)
        one_html, one_docx, _ = await timed_writing(small, folder, rounds)
        digest = await timed_digest(pulse, largest, rounds)
        await pulse.close()

        print(f"database                            {url.split(':', 1)[0]}")
        print(f"pack period                         {SINCE} to {AS_OF}")
        print(f"whole plan: content                 {whole}  ({lines(pack):,} lines)")
        print(f"whole plan: HTML written            {as_html}  ({size >> 10:,} KB)")
        print(f"whole plan: DOCX written            {as_docx}")
        for name, written in (("HTML", as_html), ("DOCX", as_docx)):
            total = whole + written
            print(
                f"whole plan: content + {name}          {total}   target < 10 s: "
                f"{'met' if total.wall < 10 else 'NOT met'}"
            )
        print(f"largest network {largest:<6} content  {one}  ({lines(small):,} lines)")
        print(f"largest network {largest:<6} digest   {digest}  (bare baseline)")
        for name, written in (("HTML", one_html), ("DOCX", one_docx)):
            total = one + written
            print(
                f"network pack + {name} / digest        {total.wall / digest.wall:6.2f}x "
                f"(CPU {total.cpu / digest.cpu:4.2f}x)   target within 3x: "
                f"{'met' if total.wall <= 3 * digest.wall else 'NOT met'}"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def bench_on_postgres(milestones: int, updates: int, networks: int, rounds: int) -> None:
    with throwaway_postgres() as server:
        url = server.url(await create_database(server))
        await bench(milestones, updates, networks, url, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--milestones", type=int, default=50_000)
    parser.add_argument("--updates", type=int, default=2_000_000)
    parser.add_argument("--networks", type=int, default=200)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--database-url", default=None)
    where.add_argument("--postgres", action="store_true", help="start a throwaway server")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--small", action="store_true", help="a tenth of the store, for a quick run"
    )
    args = parser.parse_args()
    if args.small:
        args.milestones, args.updates = args.milestones // 10, args.updates // 10
    if args.postgres:
        asyncio.run(bench_on_postgres(args.milestones, args.updates, args.networks, args.rounds))
    else:
        asyncio.run(
            bench(args.milestones, args.updates, args.networks, args.database_url, args.rounds)
        )


if __name__ == "__main__":
    main()
