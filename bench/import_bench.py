"""Benchmark: importing a national plan kept as XLSX and as a Word document.

Builds a plan with N people leading one action each, three dated milestones per action
(5,000 people: 15,000 milestones), as an XLSX workbook (title rows above the header) and as
a Word document (one table per priority, the aim merged down over its actions). Times, for
each: (1) merely reading and parsing the file into a draft (`read_plan`), (2) a first
import into an empty store, (3) re-importing it unchanged.

    .venv/bin/python bench/import_bench.py [--people 5000] [--database-url URL | --postgres]

Each file is imported into a database of its own: a new SQLite file, or with `--database-url`
a new database made on that PostgreSQL server (and dropped after); `--postgres` starts a
throwaway server for the run (tests/postgres.py).

Targets (issue 13): the import under 3 s on SQLite and within 3x of reading and parsing the
same file; the unchanged re-import under 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from openpyxl import Workbook
from sample_plans import (  # a sibling: benchmarks run as scripts
    bench_pulse,
    fresh_database,
    throwaway_postgres,
    write_plan,
)

from handlers.files.importing import import_plan
from handlers.files.plan_files import read_plan

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from build_docx import new_document, plan_table  # the examples' table builder

NOW = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
PRIORITIES = 5


def _rows(people: int) -> list[tuple[int, list[str]]]:
    """(priority, [aim, action, lead, milestones, rating]) per action."""
    out = []
    for i in range(people):
        milestones = "\n".join(
            f"Milestone {n} of action {i} {day}/0{n + 1}/27"
            for n, day in ((1, 10 + i % 18), (2, 11 + i % 17), (3, 12 + i % 16))
        )
        priority = 1 + i % PRIORITIES
        aim = f"{priority}.{1 + (i // PRIORITIES) // 50} Aim"
        out.append((priority, [aim, f"Action {i}", f"P{i}", milestones, str(2 + i % 3)]))
    out.sort(key=lambda r: r[0])
    return out


HEADER = ["Aims", "Key actions", "Lead(s)", "Milestones", "Progress 1 - 4"]


def write_xlsx(path: Path, people: int) -> Path:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Action plan")
    sheet.append(["National improvement plan"])
    sheet.append([])
    sheet.append(["Priority", *HEADER])
    for priority, row in _rows(people):
        sheet.append([f"{priority} Priority {priority}", *row])
    book.save(path)
    return path


def write_docx(path: Path, people: int) -> Path:
    document = new_document()
    rows = _rows(people)
    for priority in range(1, PRIORITIES + 1):
        table = [[f"Priority {priority}", f"Priority {priority}", "<", "<", "<"], HEADER]
        previous_aim = None
        for p, row in rows:
            if p != priority:
                continue
            aim = "^" if row[0] == previous_aim else row[0]
            previous_aim = row[0]
            table.append([aim, *row[1:]])
        plan_table(document, table)
    document.save(str(path))
    return path


def _timed(label: str, seconds: float, cpu: float, baseline: float | None = None) -> None:
    """Wall and CPU seconds (the CPU ones hold on a machine shared with other work)."""
    ratio = f"  ({seconds / baseline:.2f}x reading and parsing)" if baseline else ""
    print(f"  {label:<36} {seconds:6.2f} s (CPU {cpu:5.2f} s){ratio}")


async def bench(people: int, server_url: str | None) -> None:
    folder = Path(tempfile.mkdtemp(prefix="pulse-bench-"))
    try:
        _, directory = write_plan(folder, people)
        started = time.perf_counter()
        files = {
            "XLSX": write_xlsx(folder / "plan.xlsx", people),
            "DOCX": write_docx(folder / "plan.docx", people),
        }
        print(f"{people} people, {3 * people} milestones (files built in "
              f"{time.perf_counter() - started:.1f} s), "
              f"{'PostgreSQL' if server_url else 'SQLite'}")  # fmt: skip
        for kind, path in files.items():
            print(kind)
            started, cpu = time.perf_counter(), time.process_time()
            draft = read_plan(path, plan_key="national")
            parse = time.perf_counter() - started
            assert len(draft.actions) == people, [str(p) for p in draft.problems[:5]]
            _timed("reading and parsing", parse, time.process_time() - cpu)
            async with fresh_database(server_url, folder / f"{kind}.db") as url:
                pulse = await bench_pulse(url, folder / kind, NOW)
                try:
                    for label in ("first import", "re-import unchanged"):
                        started, cpu = time.perf_counter(), time.process_time()
                        await import_plan(
                            pulse.sessions,
                            path,
                            now=NOW,
                            plan_key="national",
                            people_path=directory,
                        )
                        seconds = time.perf_counter() - started
                        _timed(label, seconds, time.process_time() - cpu, parse)
                finally:
                    await pulse.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=5000)
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--database-url", default=None, help="a PostgreSQL server to make the databases on"
    )
    where.add_argument("--postgres", action="store_true", help="start a throwaway server")
    args = parser.parse_args()
    if args.postgres:
        with throwaway_postgres() as server:
            asyncio.run(bench(args.people, server.url("postgres")))
    else:
        asyncio.run(bench(args.people, args.database_url))


if __name__ == "__main__":
    main()
