"""Benchmark: plan, enqueue and deliver one prompt cycle at scale.

Builds a plan with N people leading one action each, three milestones per action, then
times (1) planning and enqueueing the cycle (`Cycles.start_cycle`: status of every
milestone, one prompt and one outbox row per person, one transaction) and (2) delivering
it through the local-mail transport (`OutboxWorker.drain`). A bare loop that renders the
same messages and writes the same files, with no database, is timed in the same run as
the baseline for delivery.

    .venv/bin/python bench/cycle_bench.py [--people 5000] [--database-url URL]

Prints the figures and the ratios; targets (issue 3): plan + enqueue under 5 s on SQLite
for 5,000 people, and delivery within 2x of the bare loop.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from sample_plans import bench_pulse, write_plan  # a sibling: benchmarks run as scripts

from bot.domain.cycles import plan_prompts
from bot.messages.emails import new_token, prompt_email
from bot.services.delivery import OutboxWorker
from bot.services.prompting import Cycles
from handlers.email.local_transport import LocalMailTransport
from handlers.files.importing import import_plan
from storage.outbox import OutboxMessage

NOW = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)


async def bench(people: int, database_url: str | None) -> None:
    folder = Path(tempfile.mkdtemp(prefix="pulse-bench-"))
    try:
        url = database_url or f"sqlite+aiosqlite:///{folder / 'pulse.db'}"
        pulse = await bench_pulse(url, folder / "var", NOW)
        plan_file, people_file = write_plan(folder, people)
        t0 = time.perf_counter()
        await import_plan(
            pulse.sessions,
            plan_file,
            people_path=people_file,
            plan_key="bench",
            now=NOW,
            ratings_as_of=date(2026, 11, 2),
        )
        imported = time.perf_counter() - t0

        cycles = Cycles(pulse.sessions, mail_from="pulse@council.example", clock=lambda: NOW)
        t0 = time.perf_counter()
        report = await cycles.start_cycle("bench", now=NOW)
        planned = time.perf_counter() - t0
        assert report.created == people, report.created

        transport = LocalMailTransport(folder / "var" / "mail" / "outbox")
        worker = OutboxWorker(pulse.sessions, {"email": transport}, clock=lambda: NOW, batch=200)
        t0 = time.perf_counter()
        delivered = await worker.drain()
        delivering = time.perf_counter() - t0
        assert delivered == people, delivered

        # The bare loop: the same rendering and the same file writes, no database at all.
        tracked = await pulse.tracked("bench")
        bare = LocalMailTransport(folder / "bare")
        t0 = time.perf_counter()
        prompts = plan_prompts(
            tracked.plan, tracked.actions, tracked.updates, tracked.people, today=NOW.date()
        )
        by_key = {p.key: p for p in tracked.people}
        for n, prompt in enumerate(prompts, start=1):
            message = prompt_email(
                plan=tracked.plan,
                person=by_key[prompt.person_key],
                items=prompt.items,
                token=new_token(),
                mail_from="pulse@council.example",
                now=NOW,
            )
            await bare.deliver(
                OutboxMessage(n, "prompt", "email", "", None, message.payload(), None, 1, "sending")
            )
        baseline = time.perf_counter() - t0
        await pulse.close()

        milestones = sum(len(a.milestones) for a in tracked.actions)
        kind = url.split(":", 1)[0]
        print(f"database                  {kind}")
        print(f"people / milestones       {people} / {milestones}")
        print(f"import                    {imported:8.2f} s")
        print(
            f"plan + enqueue            {planned:8.2f} s   ({people / planned:,.0f} prompts/s)"
            f"   target < 5 s: {'met' if planned < 5 else 'NOT met'}"
        )
        print(f"deliver (outbox, files)   {delivering:8.2f} s   ({people / delivering:,.0f} msg/s)")
        print(f"bare loop (render+files)  {baseline:8.2f} s   ({people / baseline:,.0f} msg/s)")
        ratio = delivering / baseline
        print(
            f"delivery / bare loop      {ratio:8.2f}x    target <= 2x: "
            f"{'met' if ratio <= 2 else 'NOT met'}"
        )
        print(f"(plan + enqueue + deliver) / bare loop  {(planned + delivering) / baseline:.2f}x")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=5000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    asyncio.run(bench(args.people, args.database_url))


if __name__ == "__main__":
    main()
