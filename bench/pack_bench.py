"""Benchmark: the board pack of a national-scale store, beside that network's digest.

Builds the store of `bench/digest_bench.py` (50,000 milestones, 2,000,000 updates, 200
networks, 1,000 people) plus six weekly cycles of prompts (a third of them unanswered),
then times, in the same run:

- the whole plan's pack since a board a month back: its content (`board_pack`: two reads of
  the plan, the history aggregated in SQL, the pure build), and writing it as HTML and DOCX;
- the pack of the largest network, against building that network's digest
  (`PlanPulse.digests(network=...)`), the bare baseline: the same reads, fewer rules.

    .venv/bin/python bench/pack_bench.py [--milestones 50000] [--updates 2000000]
                                         [--networks 200] [--database-url URL]
    .venv/bin/python bench/pack_bench.py --small   # 5,000 milestones, 200,000 updates

Targets (issue 17): the whole plan's pack under 10 s; the largest network's within 3x of its
digest.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from digest_bench import (  # siblings: benchmarks run as scripts
    AS_OF,
    NOW,
    build_store,
)
from sample_plans import bench_pulse
from sqlalchemy import select, update

from bot.app import PlanPulse
from bot.services.packs import board_pack
from digests.pack import Pack
from digests.pack_html import render_pack_html
from handlers.files.pack_docx import write_pack_docx
from storage.models import PersonRow, PlanRow, PromptRow
from storage.prompts import NewPrompt, PromptRepository

SINCE = AS_OF - timedelta(days=30)
CYCLES = 6


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


async def timed_pack(pulse: PlanPulse, network: str | None, rounds: int) -> tuple[float, Pack]:
    best = float("inf")
    pack = None
    for _ in range(rounds):
        t0 = time.perf_counter()
        pack = await board_pack(
            pulse.sessions, "national", since=SINCE, as_of=AS_OF, now=NOW, network=network
        )
        best = min(best, time.perf_counter() - t0)
    assert pack is not None
    return best, pack


async def timed_digest(pulse: PlanPulse, network: str, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        await pulse.digests("national", network=network, as_of=AS_OF)
        best = min(best, time.perf_counter() - t0)
    return best


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
        print(f"  written in {time.perf_counter() - t0:.0f} s ({prompts:,} prompts)")
        followed = Counter(network_id for _, network_id in tables["action_networks"])
        largest = f"n{followed.most_common(1)[0][0]}"

        whole, pack = await timed_pack(pulse, None, rounds)
        t0 = time.perf_counter()
        html = render_pack_html(pack)
        as_html = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_pack_docx(pack, folder / "pack.docx")
        as_docx = time.perf_counter() - t0
        one, small = await timed_pack(pulse, largest, rounds)
        digest = await timed_digest(pulse, largest, rounds)
        await pulse.close()

        total = whole + as_docx
        print(f"database                            {url.split(':', 1)[0]}")
        print(f"pack period                         {SINCE} to {AS_OF}")
        print(f"whole plan: content                 {whole:6.2f} s  ({lines(pack):,} lines)")
        print(f"whole plan: HTML written            {as_html:6.2f} s  ({len(html) >> 10:,} KB)")
        print(f"whole plan: DOCX written            {as_docx:6.2f} s")
        print(
            f"whole plan: content + DOCX          {total:6.2f} s   target < 10 s: "
            f"{'met' if total < 10 else 'NOT met'}"
        )
        print(f"largest network {largest:<6} pack content {one:6.2f} s  ({lines(small):,} lines)")
        print(f"largest network {largest:<6} digest       {digest:6.2f} s  (bare baseline)")
        print(
            f"pack / digest                       {one / digest:6.2f}x   target within 3x: "
            f"{'met' if one <= 3 * digest else 'NOT met'}"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--milestones", type=int, default=50_000)
    parser.add_argument("--updates", type=int, default=2_000_000)
    parser.add_argument("--networks", type=int, default=200)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--small", action="store_true", help="a tenth of the store, for a quick run"
    )
    args = parser.parse_args()
    if args.small:
        args.milestones, args.updates = args.milestones // 10, args.updates // 10
    asyncio.run(bench(args.milestones, args.updates, args.networks, args.database_url, args.rounds))


if __name__ == "__main__":
    main()
