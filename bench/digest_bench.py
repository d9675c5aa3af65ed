"""Benchmark: every network's digest for a national-scale store, and again with the
update history doubled.

Builds a store of 50,000 milestones (10,000 actions), 2,000,000 updates (a third of the
achieved ones with evidence of impact) and 200 networks (one of them plan-wide), then times
`PlanPulse.digests` for all 200 networks on one day. It then adds another 2,000,000 older
updates and times it again: a digest reads one `milestone_state` row per milestone (kept by
the trigger on `updates`, which fires for the bulk load here as for any insert), so the
second time should match the first.

    .venv/bin/python bench/digest_bench.py [--milestones 50000] [--updates 2000000]
                                           [--networks 200] [--database-url URL | --postgres]
    .venv/bin/python bench/digest_bench.py --small   # 5,000 milestones, 200,000 updates

The store goes into a new SQLite file, or with `--database-url` into a new database made on
that PostgreSQL server (and dropped after); `--postgres` starts a throwaway server for the run
(tests/postgres.py).

Targets (issue 6): all digests under 2 s, and within 10% when the history doubles. The
store is written with the database's bulk path (not timed); a bare baseline — the same
statuses computed from the decisive updates already in memory, no database — is printed
beside it to show where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sqlite3
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sample_plans import (  # a sibling: benchmarks run as scripts
    bench_pulse,
    fresh_database,
    throwaway_postgres,
)
from sqlalchemy.engine import make_url

from bot.app import PlanPulse
from digests.content import plan_statuses

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
AS_OF = date(2026, 11, 20)
PER_ACTION = 5


def store_rows(
    milestones: int, networks: int, people: int = 1000
) -> dict[str, list[tuple[object, ...]]]:
    rng = random.Random(42)
    actions = milestones // PER_ACTION
    rows: dict[str, list[tuple[object, ...]]] = {
        "plans": [
            (
                1,
                "national",
                "National plan",
                None,
                "Europe/London",
                None,
                "{}",
                NOW,  # a datetime: asyncpg's COPY takes no text for a timestamp
                NOW,
            )
        ],
        "priorities": [(p, 1, p, f"Priority {p}") for p in range(1, 11)],
        "people": [
            (i, f"P{i}", f"Person {i}", f"p{i}@council.example", None, "email", None, None, None)
            for i in range(1, people + 1)
        ],
        "networks": [
            (n, f"n{n}", f"Network {n}", None, f"coord{n}@council.example", n == 1)
            for n in range(1, networks + 1)
        ],
        "plan_networks": [(1, n) for n in range(1, networks + 1)],
        "actions": [],
        "action_leads": [],
        "action_networks": [],
        "milestones": [],
    }
    mid = 0
    for a in range(1, actions + 1):
        rows["actions"].append(
            (a, 1, 1 + a % 10, f"{1 + a % 10}.{a}", f"Action {a}", None, a, False)
        )
        rows["action_leads"].append((a, 1 + a % people, 0))
        for n in {2 + a % (networks - 1), 2 + (a * 7) % (networks - 1)}:
            rows["action_networks"].append((a, n))
        for k in range(1, PER_ACTION + 1):
            mid += 1
            due = AS_OF + timedelta(days=rng.randrange(-120, 240))
            rows["milestones"].append(
                (
                    mid,
                    1,
                    a,
                    f"{1 + a % 10}.{a}-{k}",
                    f"Milestone {k}",
                    due.strftime("%d/%m/%Y"),
                    due,
                    None,
                    None,
                    False,
                    k,
                    False,
                )
            )
    return rows


def update_rows(
    milestones: int, count: int, *, start_id: int, newest: datetime, seed: int
) -> list[tuple[object, ...]]:
    rng = random.Random(seed)
    out: list[tuple[object, ...]] = []
    per = count // milestones
    for m in range(1, milestones + 1):
        for i in range(per):
            given = newest - timedelta(hours=(per - i) * 37 + rng.randrange(0, 30))
            rating = rng.choice((1, 2, 3, 3, 4, None))
            # A third of the achieved answers say what changed for children and families.
            evidence = EVIDENCE if rating == 1 and (m + i) % 3 == 0 else None
            out.append(
                (
                    start_id + len(out),
                    m,
                    1 + m % 1000,
                    rating,
                    "progress note",
                    None,
                    rng.random() < 0.05,
                    "cli",
                    None,
                    given,
                    given,
                    evidence,
                )
            )
    return out


EVIDENCE = "Fewer children wait for a plan: https://council.example/evidence/audit.pdf"


COLUMNS = {
    "plans": "id, key, title, organisation, timezone, start, settings, created_at, updated_at",
    "priorities": "id, plan_id, number, title",
    "people": "id, key, name, email, slack_user_id, prefers, timezone, delegate_id, away_until",
    "networks": "id, key, name, slack_channel, coordinators, all_actions",
    "plan_networks": "plan_id, network_id",
    "actions": "id, plan_id, priority_id, ref, title, aim, position, retired",
    "action_leads": "action_id, person_id, position",
    "action_networks": "action_id, network_id",
    "milestones": "id, plan_id, action_id, ref, title, timescale_text, due, start, recurrence, "
    "ongoing, position, retired",
    "updates": "id, milestone_id, person_id, rating, note, revised_due, needs_support, source, "
    "external_id, given_at, recorded_at, evidence",
}


def _sqlite_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    return value


def write_sqlite(path: Path, tables: dict[str, list[tuple[object, ...]]]) -> None:
    connection = sqlite3.connect(path)
    try:
        for table, rows in tables.items():
            columns = COLUMNS[table]
            marks = ", ".join("?" for _ in columns.split(","))
            connection.executemany(
                f"INSERT INTO {table} ({columns}) VALUES ({marks})",
                ([_sqlite_value(v) for v in row] for row in rows),
            )
        connection.commit()
        connection.execute("ANALYZE")
    finally:
        connection.close()


async def write_postgres(url: str, tables: dict[str, list[tuple[object, ...]]]) -> None:
    import asyncpg

    parts = make_url(url)
    connection = await asyncpg.connect(
        host=parts.host,
        port=parts.port,
        user=parts.username,
        password=parts.password,
        database=parts.database,
    )
    try:
        for table, rows in tables.items():
            columns = [c.strip() for c in COLUMNS[table].split(",")]
            await connection.copy_records_to_table(table, records=rows, columns=columns)
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


async def build_store(
    url: str, milestones: int, updates: int, networks: int
) -> dict[str, list[tuple[object, ...]]]:
    """The national-scale store written into the database at `url`: the plan's rows and
    `updates` answers, the newest a day before NOW. Returns the rows written."""
    print(
        f"building the store: {milestones:,} milestones, {updates:,} updates, "
        f"{networks} networks …",
        flush=True,
    )
    tables = store_rows(milestones, networks)
    tables["updates"] = update_rows(
        milestones, updates, start_id=1, newest=NOW - timedelta(days=1), seed=1
    )
    if url.startswith("sqlite"):
        await asyncio.to_thread(write_sqlite, Path(make_url(url).database or ""), tables)
    else:
        await write_postgres(url, tables)
    return tables


async def timed_digests(pulse: PlanPulse, rounds: int = 5) -> tuple[float, int, float]:
    """The best wall time of `rounds` runs of every digest, how many digests, and the best
    CPU time (all threads: steadier than wall time on a shared machine)."""
    best = cpu = float("inf")
    count = 0
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        digests = await pulse.digests("national", as_of=AS_OF)
        best = min(best, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
        count = len(digests)
    return best, count, cpu


async def bench(milestones: int, updates: int, networks: int, server_url: str | None) -> None:
    folder = Path(tempfile.mkdtemp(prefix="pulse-digest-bench-"))
    try:
        async with fresh_database(server_url, folder / "pulse.db") as url:
            await bench_in(url, folder, milestones, updates, networks)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def bench_in(url: str, folder: Path, milestones: int, updates: int, networks: int) -> None:
    """The bench in the empty database at `url`."""
    pulse = await bench_pulse(url, folder, NOW)
    t0 = time.perf_counter()
    await build_store(url, milestones, updates, networks)
    print(f"  written in {time.perf_counter() - t0:.0f} s")

    first, count, first_cpu = await timed_digests(pulse)

    tracked = await pulse.tracked("national")
    t0 = time.perf_counter()
    plan_statuses(tracked.plan, tracked.actions, tracked.updates, as_of=AS_OF)
    bare = time.perf_counter() - t0

    print(f"doubling the history with {updates:,} older updates …", flush=True)
    older = update_rows(
        milestones, updates, start_id=updates + 1, newest=NOW - timedelta(days=800), seed=2
    )
    if url.startswith("sqlite"):
        await asyncio.to_thread(
            write_sqlite, Path(make_url(url).database or ""), {"updates": older}
        )
    else:
        await write_postgres(url, {"updates": older})
    second, _, second_cpu = await timed_digests(pulse)
    await pulse.close()

    print(f"database                         {url.split(':', 1)[0]}")
    print(f"digests built                    {count}")
    print(
        f"all digests, {updates:>9,} updates  {first:6.2f} s   target < 2 s: "
        f"{'met' if first < 2 else 'NOT met'}   (CPU {first_cpu:.2f} s)"
    )
    print(f"all digests, {2 * updates:>9,} updates  {second:6.2f} s   (CPU {second_cpu:.2f} s)")
    change = (second - first) / first
    print(
        f"change when the history doubles  {change:+.1%}   target within 10%: "
        f"{'met' if abs(change) <= 0.10 else 'NOT met'}"
    )
    print(
        f"bare statuses in memory          {bare:6.2f} s   (digests / bare = {first / bare:.1f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--milestones", type=int, default=50_000)
    parser.add_argument("--updates", type=int, default=2_000_000)
    parser.add_argument("--networks", type=int, default=200)
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--database-url", default=None, help="a PostgreSQL server to make a new database on"
    )
    where.add_argument("--postgres", action="store_true", help="start a throwaway server")
    parser.add_argument(
        "--small", action="store_true", help="a tenth of the store, for a quick run"
    )
    args = parser.parse_args()
    if args.small:
        args.milestones, args.updates = args.milestones // 10, args.updates // 10
    if args.postgres:
        with throwaway_postgres() as server:
            url = server.url("postgres")
            asyncio.run(bench(args.milestones, args.updates, args.networks, url))
    else:
        asyncio.run(bench(args.milestones, args.updates, args.networks, args.database_url))


if __name__ == "__main__":
    main()
