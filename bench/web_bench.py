"""Benchmark: leads load their update page and submit it, over HTTP on loopback (issue 14).

Builds a plan of LEADS people with five milestones each (all rated 4), starts a cycle so each
has a prompt, and gives each prompt an update-page link. Then every lead opens their page
(GET) and submits it (POST, with the page's CSRF token and submission id), rating all five
milestones 3: CONCURRENCY leads at a time, from a load generator in a process of its own.
Timed there per request: the page, and the submit (its answer comes after the commit). A
second round at the second concurrency changes every answer to 2 (changes within the same
prompt: each replaces the lead's first answer).

The baseline, in the same run and server process: a bare aiohttp handler that renders the
same template with the same page and, on POST, inserts the same five rows in one
transaction; timed the same way.

    .venv/bin/python bench/web_bench.py [--leads 500] [--concurrency 10 50]
                                        [--database-url URL | --postgres]

Every lead's submit must come back as the "recorded" page listing their five milestones, and
each round must add exactly LEADS x 5 web answers; the run says what the leads were told
and exits 1 otherwise. The bare handler writes on a plan of its own that nobody is
prompted about, so its rows never become a lead's "answers already given".

Targets: at 10 in flight, page p99 < 150 ms and submit p99 < 250 ms; at 50 in flight,
throughput and p99 within 3x of the bare handler.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import multiprocessing
import re
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sample_plans import throwaway_postgres  # a sibling: benchmarks run as scripts

from bot.messages.web_links import csrf_token, link_hash, new_link_token
from bot.services.prompting import Cycles
from bot.services.web_answers import UpdatePages, new_submission_id
from bot.signing import Signer
from handlers.files.importing import import_plan
from handlers.web.server import _environment, build_web_app
from storage.db import create_engine, migrate, session_factory
from storage.models import ActionRow, MilestoneRow, PlanRow, PromptRow, UpdateRow
from storage.web_links import WebLinks
from tests.postgres import create_database

NOW = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
KEY = "Vq3xN8r2LmT7pZs1Kd6Wf0Hj4Yc9Ba5E-bench"
_HIDDEN = re.compile(r'name="(csrf|submission)" value="([^"]*)"')
_RECORDED_REF = re.compile(r"<li><strong>([^<]+)</strong>")
_ERROR = re.compile(
    r'<p class="error" id="[^"]+"><span class="visually-hidden">Error:</span> ([^<]*)'
)


def write_plan(folder: Path, leads: int) -> tuple[Path, Path]:
    """LEADS people, each leading one action with five milestones due in 2027, rated 4."""
    plan, people = folder / "plan.csv", folder / "people.csv"
    with plan.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["Priority", "Ref", "Key actions", "Lead(s)", "Milestones", "Progress 1 - 4"])
        for i in range(leads):
            milestones = "\n".join(
                f"- Milestone {n} of action {i} {10 + n}/0{n + 2}/27" for n in range(1, 6)
            )
            out.writerow(
                [f"{1 + i % 5} - Priority", f"{1 + i % 5}.{i + 1}", f"Action {i}", f"P{i}",
                 milestones, "4"]
            )  # fmt: skip
    with people.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["key", "name", "email"])
        for i in range(leads):
            out.writerow([f"P{i}", f"Person {i}", f"person{i}@council.example"])
    return plan, people


def write_baseline_plan(folder: Path) -> Path:
    """One action of five milestones in a plan of its own, for the bare handler's rows."""
    plan = folder / "baseline.csv"
    with plan.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["Priority", "Ref", "Key actions", "Lead(s)", "Milestones", "Progress 1 - 4"])
        milestones = "\n".join(
            f"- Baseline milestone {n} {10 + n}/0{n + 2}/27" for n in range(1, 6)
        )
        out.writerow(["1 - Priority", "1.1", "Baseline action", "P0", milestones, "4"])
    return plan


def outcome(done: str) -> str:
    """What a submit's answer told the lead: "recorded N" or why not."""
    if "Thank you: your update is recorded" in done:
        return f"recorded {len(_RECORDED_REF.findall(done))}"
    if "Nothing changed" in done:
        return "nothing changed"
    if "was already recorded" in done:
        return "already recorded"
    if "There is a problem" in done:
        errors = _ERROR.findall(done)
        return f"error: {errors[0] if errors else '?'}"
    return "unexpected page"


def form_of(page: str, rating: str) -> dict[str, str]:
    hidden = dict(_HIDDEN.findall(page))
    form = {"form": "update", **hidden}
    for n in range(1, 6):
        form[f"m{n}-rating"] = rating
    return form


async def fire(urls: list[str], rating: str, concurrency: int) -> dict[str, Any]:
    """Each URL: GET, then POST its form; CONCURRENCY at a time. Latencies, wall time, and
    how many submits told their lead what (`outcome`)."""
    pages: list[float] = []
    submits: list[float] = []
    outcomes: dict[str, int] = {}
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(url: str) -> None:
            async with gate:
                t0 = time.perf_counter()
                async with http.get(url) as response:
                    page = await response.text()
                    if response.status != 200:
                        raise RuntimeError(f"page: status {response.status}")
                t1 = time.perf_counter()
                async with http.post(url, data=form_of(page, rating)) as response:
                    done = await response.text()
                    if response.status != 200:
                        raise RuntimeError(f"submit: status {response.status}: {done[:200]}")
                pages.append(t1 - t0)
                submits.append(time.perf_counter() - t1)
                told = outcome(done)
                outcomes[told] = outcomes.get(told, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(one(u) for u in urls))
        return {
            "pages": pages,
            "submits": submits,
            "outcomes": outcomes,
            "wall": time.perf_counter() - t0,
        }


def _fire(urls: list[str], rating: str, concurrency: int) -> dict[str, Any]:
    return asyncio.run(fire(urls, rating, concurrency))


async def fire_elsewhere(
    pool: ProcessPoolExecutor, urls: list[str], rating: str, concurrency: int
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(pool, _fire, urls, rating, concurrency)


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def summary(name: str, run: dict[str, Any]) -> tuple[float, float, float]:
    """Print a run's figures; (leads/s, page p99 ms, submit p99 ms)."""
    rate = len(run["pages"]) / run["wall"]
    page99, submit99 = p(run["pages"], 0.99), p(run["submits"], 0.99)
    print(
        f"{name:>12}: {len(run['pages'])} leads in {run['wall']:.2f} s = {rate:.0f}/s; "
        f"page p50 {statistics.median(run['pages']) * 1000:.1f} ms, p99 {page99:.1f} ms; "
        f"submit p50 {statistics.median(run['submits']) * 1000:.1f} ms, p99 {submit99:.1f} ms"
    )
    return rate, page99, submit99


def bare_app(
    sessions: async_sessionmaker[AsyncSession], page: Any, milestone_ids: list[int]
) -> web.Application:
    """The baseline: render the same template with the same page; on POST insert the same
    five rows in one transaction."""
    env = _environment()
    signer = Signer(KEY)
    bind = sessions.kw["bind"]
    writer: asyncio.Lock | contextlib.nullcontext[None] = (
        asyncio.Lock() if bind.dialect.name == "sqlite" else contextlib.nullcontext()
    )
    counter = iter(range(10**9))

    def render() -> str:
        return env.get_template("update.html.j2").render(
            title="Update", heading="Update", page=page, values=page.values(), errors={},
            absence_errors={}, problems={}, message="", csrf=csrf_token("x" * 64, signer),
            submission=new_submission_id(),
        )  # fmt: skip

    async def show(request: web.Request) -> web.Response:
        return web.Response(text=render(), content_type="text/html")

    async def submit(request: web.Request) -> web.Response:
        await request.post()
        n = next(counter)
        async with writer, sessions() as session, session.begin():
            await session.execute(
                insert(UpdateRow),
                [
                    {"milestone_id": m, "person_id": None, "rating": 3, "note": None,
                     "revised_due": None, "needs_support": False, "source": "cli",
                     "external_id": f"bare:{n}:{m}", "given_at": NOW, "recorded_at": NOW}
                    for m in milestone_ids
                ],
            )  # fmt: skip
        return web.Response(text=render(), content_type="text/html")

    app = web.Application()
    app.router.add_get("/bare/{n}", show)
    app.router.add_post("/bare/{n}", submit)
    return app


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, int(runner.addresses[0][1])


async def bench(
    leads: int, concurrency: list[int], database_url: str | None, pool: ProcessPoolExecutor
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="pulse-web-bench-"))
    runners: list[web.AppRunner] = []
    try:
        url = database_url or f"sqlite+aiosqlite:///{folder / 'pulse.db'}"
        await migrate(url)
        engine = create_engine(url)
        sessions = session_factory(engine)
        plan_file, people_file = write_plan(folder, leads)
        await import_plan(
            sessions, plan_file, people_path=people_file, plan_key="bench", now=NOW,
            ratings_as_of=date(2026, 11, 2),
        )  # fmt: skip
        await import_plan(
            sessions, write_baseline_plan(folder), plan_key="baseline", now=NOW,
            ratings_as_of=date(2026, 11, 2),
        )  # fmt: skip
        signer = Signer(KEY)
        await Cycles(sessions, mail_from="pulse@council.example", clock=lambda: NOW).start_cycle(
            "bench", now=NOW
        )
        tokens: list[str] = []
        async with sessions() as session, session.begin():
            prompts = (await session.execute(select(PromptRow.id, PromptRow.person_id))).all()
            links = []
            for prompt_id, person_id in prompts:
                token = new_link_token()
                tokens.append(token)
                links.append((prompt_id, person_id, link_hash(token, signer)))
            await WebLinks(session).add(links, now=NOW, expires_at=NOW + timedelta(days=14))
            milestone_ids = list(
                (
                    await session.scalars(
                        select(MilestoneRow.id)
                        .join(ActionRow, ActionRow.id == MilestoneRow.action_id)
                        .join(PlanRow, PlanRow.id == ActionRow.plan_id)
                        .where(PlanRow.key == "baseline")
                    )
                ).all()
            )
        if engine.dialect.name == "postgresql":
            async with engine.begin() as connection:
                await connection.exec_driver_sql("ANALYZE")
        clock_now = [NOW + timedelta(minutes=5)]
        pages = UpdatePages(
            sessions, clock=lambda: clock_now[0], signer=signer, mail_from="pulse@council.example"
        )
        runner, port = await serve(build_web_app(pages, signer=signer, clock=lambda: NOW))
        runners.append(runner)
        urls = [f"http://127.0.0.1:{port}/u/{t}" for t in tokens]
        page = await pages.page(link_hash(tokens[0], signer))
        runner, bare_port = await serve(bare_app(sessions, page, milestone_ids))
        runners.append(runner)
        bare_urls = [f"http://127.0.0.1:{bare_port}/bare/{n}" for n in range(leads)]
        print(
            f"database: {engine.dialect.name}; {leads} leads x 5 milestones; "
            f"{len(prompts)} prompts with links"
        )
        await fire_elsewhere(pool, bare_urls[:10], "3", 5)  # warm up
        web_rows = select(func.count()).select_from(UpdateRow).where(UpdateRow.source == "web")
        wrong = False
        for round_, (n, rating) in enumerate(zip(concurrency, ("3", "2", "3", "2"), strict=False)):
            async with sessions() as session:
                before = int(await session.scalar(web_rows) or 0)
            clock_now[0] = NOW + timedelta(minutes=5 + 10 * round_)
            run = await fire_elsewhere(pool, urls, rating, n)
            async with sessions() as session:
                after = int(await session.scalar(web_rows) or 0)
            told = ", ".join(f"{k}: {v}" for k, v in sorted(run["outcomes"].items()))
            ok = after - before == leads * 5 and run["outcomes"] == {"recorded 5": leads}
            wrong = wrong or not ok
            print(
                f"{n} in flight, rating {rating}: {after - before} of {leads * 5} answers "
                f"recorded; leads told {told} {'(as expected)' if ok else '(NOT as expected)'}"
            )
            rate, page99, submit99 = summary("update page", run)
            bare = await fire_elsewhere(pool, bare_urls, rating, n)
            bare_rate, bare_page99, bare_submit99 = summary("bare", bare)
            if n <= 10:
                print(
                    f"  page p99 {page99:.0f} ms (target < 150): "
                    f"{'met' if page99 < 150 else 'NOT met'}; submit p99 {submit99:.0f} ms "
                    f"(target < 250): {'met' if submit99 < 250 else 'NOT met'}"
                )
            ratio = bare_rate / rate
            p99_ratio = max(page99 / bare_page99, submit99 / bare_submit99)
            print(
                f"  bare/page throughput {ratio:.2f}x, p99 {p99_ratio:.2f}x (target <= 3x): "
                f"{'met' if ratio <= 3 and p99_ratio <= 3 else 'NOT met'}"
            )
        await engine.dispose()
        if wrong:
            raise SystemExit(1)
    finally:
        for r in runners:
            await r.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


async def bench_on_postgres(leads: int, concurrency: list[int], pool: ProcessPoolExecutor) -> None:
    with throwaway_postgres() as server:
        url = server.url(await create_database(server))
        await bench(leads, concurrency, url, pool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leads", type=int, default=500)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[10, 50])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--database-url")
    where.add_argument("--postgres", action="store_true", help="start a throwaway server")
    args = parser.parse_args()
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as pool:
        if args.postgres:
            asyncio.run(bench_on_postgres(args.leads, args.concurrency, pool))
        else:
            asyncio.run(bench(args.leads, args.concurrency, args.database_url, pool))


if __name__ == "__main__":
    main()
