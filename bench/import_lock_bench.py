"""Benchmark: how long a large import keeps a rating click waiting, on SQLite.

Loads a small plan, then imports a plan of N people (one action each, three milestones: 3N
milestone rows) in a process of its own, as `pulse import` runs beside the bot. Meanwhile
this process records a rating the way a Slack click is committed (one write transaction
adding one update to a milestone of the small plan) every 50 ms, and times each from begin
to commit. Slack gives up on a click after 3 s; the import must never make one wait so long.
The same clicks are first timed with no import running, as the baseline.

    .venv/bin/python bench/import_lock_bench.py [--people 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sample_plans import bench_pulse, write_plan  # a sibling: benchmarks run as scripts
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bot.app import PlanPulse
from bot.domain.model import Source
from handlers.files.importing import import_plan
from storage.models import MilestoneRow
from storage.repositories import UpdateRepository

NOW = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
INTERVAL = 0.05


def _import_elsewhere(url: str, folder: str, plan: str, people: str, done: object) -> None:
    async def run() -> None:
        pulse = await bench_pulse(url, Path(folder), NOW)
        try:
            started = time.perf_counter()
            await import_plan(
                pulse.sessions, Path(plan), now=NOW, plan_key="big", people_path=Path(people)
            )
            done.value = time.perf_counter() - started  # type: ignore[attr-defined]
        finally:
            await pulse.close()

    asyncio.run(run())


async def clicks(
    pulse: PlanPulse, milestone_id: int, until: asyncio.Event
) -> tuple[list[float], int]:
    """Commit one rating every INTERVAL until `until` is set: each one's seconds (failed ones
    included, as long as they waited), and how many failed ("database is locked")."""
    timings: list[float] = []
    failed = 0
    while not until.is_set():
        started = time.perf_counter()
        try:
            async with pulse.sessions() as session, session.begin():
                await UpdateRepository(session).add(
                    milestone_id=milestone_id,
                    rating=3,
                    note=None,
                    source=Source.SLACK,
                    given_at=NOW,
                    recorded_at=NOW,
                )
        except OperationalError:
            failed += 1
        timings.append(time.perf_counter() - started)
        await asyncio.sleep(INTERVAL)
    return timings, failed


def report(name: str, result: tuple[list[float], int]) -> None:
    timings, failed = result
    ordered = sorted(timings)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    late = sum(1 for t in ordered if t > 3.0)
    print(
        f"{name}: {len(ordered)} clicks, p50 {statistics.median(ordered) * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms, over Slack's 3 s: {late}, "
        f"failed: {failed}"
    )


async def bench(people: int, folder: Path) -> None:
    url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    (folder / "small").mkdir()
    (folder / "big").mkdir()
    small_plan, small_people = write_plan(folder / "small", 5)
    big_plan, big_people = write_plan(folder / "big", people)
    pulse = await bench_pulse(url, folder, NOW)
    try:
        await import_plan(
            pulse.sessions, small_plan, now=NOW, plan_key="small", people_path=small_people
        )
        async with pulse.sessions() as session:
            milestone_id = await session.scalar(select(MilestoneRow.id).limit(1))
        assert milestone_id is not None

        stop = asyncio.Event()
        idle = asyncio.create_task(clicks(pulse, milestone_id, stop))
        await asyncio.sleep(3)
        stop.set()
        report("clicks, no import", await idle)

        done = multiprocessing.get_context("spawn").Value("d", 0.0)
        child = multiprocessing.get_context("spawn").Process(
            target=_import_elsewhere,
            args=(url, str(folder), str(big_plan), str(big_people), done),
        )
        stop = asyncio.Event()
        busy = asyncio.create_task(clicks(pulse, milestone_id, stop))
        started = time.perf_counter()
        child.start()
        await asyncio.to_thread(child.join)
        wall = time.perf_counter() - started
        stop.set()
        result = await busy
        print(
            f"import of {people} actions ({3 * people} milestones): {done.value:.1f} s "
            f"(process {wall:.1f} s with start-up)"
        )
        report("clicks during the import", result)
    finally:
        await pulse.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(bench(args.people, Path(folder)))


if __name__ == "__main__":
    main()
