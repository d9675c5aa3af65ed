"""Benchmark: signed Slack rating clicks against the real bolt app over HTTP on loopback.

Builds a plan of N people (one action each, three milestones), plans a cycle so every person
has a prompt and its DM (posted to the fake Slack), serves the Slack app (`build_http_app`) on
127.0.0.1 with its Web API pointed at the fake Slack, and fires CLICKS signed `block_actions`
rating clicks, CONCURRENCY at a time, spread over every prompt and milestone (each click is a
distinct action, so each records a row; each carries its DM, so each is followed by the
`chat.update` that marks it recorded). Timed per click in the load generator: from sending
the request to receiving the response, which comes only after the commit.

The load generator and the fake Slack each run in a process of their own, as Slack's servers
are not in ours: their work does not share the server's event loop. In the same run a bare
aiohttp handler in the server process that verifies the signature and inserts one update row
(same database) is timed the same way, as the baseline.

    .venv/bin/python bench/slack_bench.py [--clicks 2000] [--concurrency 50] [--people 200]
                                          [--database-url URL | --postgres] [--profile FILE]

`--postgres` starts a throwaway PostgreSQL server (tests/postgres.py) for the run; on
PostgreSQL the freshly imported tables are ANALYZEd first, as autovacuum would have done long
before leads answer. `--profile` writes cProfile stats of the server process during the Slack
run. "server CPU" is the server process's CPU time (all its threads) per click.

Targets: p99 under 100 ms, and throughput within 3x of the bare handler.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import aiohttp
from aiohttp import web
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sample_plans import throwaway_postgres, write_plan  # siblings: benchmarks run as scripts

from bot.messages import slack_blocks as kit
from bot.services.cycles import prompt_items
from bot.services.prompting import Cycles
from handlers.files.importing import import_plan
from handlers.slack.answers import Followups
from handlers.slack.app import build_slack_app
from handlers.slack.guard import build_http_app
from storage.db import create_engine, migrate, session_factory
from storage.models import MilestoneRow, PersonRow, PromptRow, UpdateRow
from storage.repositories import PlanRepository
from tests.fake_slack import FakeSlack, slack_signature
from tests.postgres import create_database

NOW = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
SECRET = "bench-signing-secret-0123456789"


def signed(body: str) -> dict[str, str]:
    stamp = str(int(time.time()))
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": slack_signature(SECRET, stamp, body),
    }


def click(
    user: str, prompt_id: int, ref: str, n: int, dm: tuple[str, str, list[dict[str, Any]]]
) -> str:
    channel, ts, blocks = dm
    payload = {
        "type": "block_actions",
        "team": {"id": "TPULSE"},
        "user": {"id": user, "team_id": "TPULSE"},
        "api_app_id": "APULSE",
        "trigger_id": f"trig-{n}",
        "container": {"type": "message", "message_ts": ts, "channel_id": channel},
        "channel": {"id": channel},
        "message": {"type": "message", "ts": ts, "blocks": blocks},
        "actions": [
            {
                "type": "static_select",
                "action_id": "rate",
                "block_id": f"m:{ref}",
                "selected_option": {"value": f"{prompt_id}:{ref}:1"},
                "action_ts": f"1795424700.{n:06d}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


async def fire(url: str, bodies: list[str], concurrency: int) -> tuple[list[float], float]:
    """Send every body, `concurrency` at a time: (latencies in seconds, wall time). Runs in
    the load generator's process (`fire_elsewhere`)."""
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(body: str) -> None:
            async with gate:
                headers = signed(body)
                t0 = time.perf_counter()
                async with http.post(url, data=body.encode(), headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"status {response.status}")
                latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies))
        return latencies, time.perf_counter() - t0


def _fire(url: str, bodies: list[str], concurrency: int) -> tuple[list[float], float]:
    return asyncio.run(fire(url, bodies, concurrency))


async def fire_elsewhere(
    pool: ProcessPoolExecutor, url: str, bodies: list[str], concurrency: int
) -> tuple[list[float], float]:
    """`fire` in the load generator's process, while this loop serves the requests."""
    return await asyncio.get_running_loop().run_in_executor(pool, _fire, url, bodies, concurrency)


def _run_fake_slack(conn: Connection) -> None:
    """The fake Slack's process: serve until told to stop."""

    async def serve() -> None:
        fake = FakeSlack()
        await fake.start()
        conn.send(fake.port)
        await asyncio.to_thread(conn.recv)
        await fake.close()

    asyncio.run(serve())


@contextlib.contextmanager
def fake_slack_elsewhere() -> Iterator[FakeSlack]:
    """A FakeSlack served by a process of its own; the object here only builds clients."""
    here, there = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(target=_run_fake_slack, args=(there,))
    process.start()
    try:
        fake = FakeSlack()
        fake.port = int(here.recv())
        yield fake
    finally:
        here.send("stop")
        process.join(10)


def bare_app(sessions: async_sessionmaker[AsyncSession], milestone_id: int) -> web.Application:
    """The baseline: verify the signature, insert one row, answer 200."""
    verifier = SignatureVerifier(SECRET)
    bind = sessions.kw["bind"]
    # On SQLite the same one-writer queue the Slack app keeps; PostgreSQL takes concurrent
    # transactions, so there the baseline writes concurrently.
    writer: asyncio.Lock | contextlib.nullcontext[None] = (
        asyncio.Lock() if bind.dialect.name == "sqlite" else contextlib.nullcontext()
    )

    async def handle(request: web.Request) -> web.Response:
        body = await request.text()
        if not verifier.is_valid_request(body, dict(request.headers)):
            return web.Response(status=401)
        payload = json.loads(parse_qs(body)["payload"][0])
        action = payload["actions"][0]
        async with writer, sessions() as session, session.begin():
            session.add(
                UpdateRow(
                    milestone_id=milestone_id,
                    rating=1,
                    source="cli",
                    external_id=f"bare:{action['action_ts']}",
                    given_at=NOW,
                    recorded_at=NOW,
                )
            )
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/bare", handle)
    return app


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, int(runner.addresses[0][1])


def summary(name: str, latencies: list[float], wall: float, cpu: float) -> float:
    """Print a run's figures (`cpu`: the server process's CPU seconds); its clicks/s."""
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    rate = len(latencies) / wall
    print(
        f"{name:>6}: {len(latencies)} clicks in {wall:.2f} s = {rate:.0f}/s; "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms; server CPU {cpu / len(latencies) * 1000:.2f} ms/click"
    )
    return rate


async def bench(
    clicks: int,
    concurrency: int,
    people: int,
    database_url: str | None,
    profile: str | None,
    pool: ProcessPoolExecutor,
    fake: FakeSlack,
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="pulse-slack-bench-"))
    runners: list[web.AppRunner] = []
    client = fake.client()
    try:
        url = database_url or f"sqlite+aiosqlite:///{folder / 'pulse.db'}"
        await migrate(url)
        engine = create_engine(url)
        sessions = session_factory(engine)
        plan_file, people_file = write_plan(folder, people, rating="3", slack_ids=True)
        await import_plan(
            sessions, plan_file, people_path=people_file, plan_key="bench", now=NOW,
            ratings_as_of=date(2026, 11, 2),
        )  # fmt: skip
        await Cycles(sessions, mail_from="pulse@council.example", clock=lambda: NOW).start_cycle(
            "bench", now=NOW
        )
        if engine.dialect.name == "postgresql":
            # A plan is imported days before its leads answer, and autovacuum has gathered
            # statistics by then; without them the planner guesses one row per table.
            async with engine.begin() as connection:
                await connection.exec_driver_sql("ANALYZE")
        async with sessions() as session:
            prompts = (
                await session.execute(
                    select(
                        PersonRow.slack_user_id,
                        PersonRow.name,
                        PromptRow.id,
                        PromptRow.milestone_refs,
                    ).join(PersonRow, PersonRow.id == PromptRow.person_id)
                )
            ).all()
            milestone_id = int(await session.scalar(select(func.min(MilestoneRow.id))) or 0)
            tracked = await PlanRepository(session).tracked("bench")
        # Each prompt's DM, posted to the fake as the transport would.
        dms: dict[int, tuple[str, str, list[dict[str, Any]]]] = {}
        for user, name, prompt_id, refs in prompts:
            items = prompt_items(tracked, refs, NOW.date(), "")
            blocks = kit.prompt_blocks(tracked.plan.title, name, items, prompt_id)[0]
            posted = await client.chat_postMessage(
                channel=str(user), text="Progress update", blocks=blocks
            )
            dms[prompt_id] = (str(posted["channel"]), str(posted["ts"]), blocks)
        targets = [(str(u), int(p), ref) for u, _, p, refs in prompts for ref in refs]
        bodies = [
            click(*targets[n % len(targets)], n, dms[targets[n % len(targets)][1]])
            for n in range(clicks + 20)
        ]

        followups = Followups()
        app = build_slack_app(
            sessions=sessions,
            client=client,
            signing_secret=SECRET,
            clock=lambda: NOW,
            followups=followups,
        )
        runner, port = await serve(build_http_app(app, signing_secret=SECRET))
        runners.append(runner)
        endpoint = f"http://127.0.0.1:{port}/slack/events"
        await fire_elsewhere(pool, endpoint, bodies[:20], 5)  # warm up
        await followups.wait()
        async with sessions() as session:
            before = int(await session.scalar(select(func.count()).select_from(UpdateRow)) or 0)
        profiler = cProfile.Profile() if profile is not None else None
        if profiler is not None:
            profiler.enable()
        cpu = time.process_time()
        latencies, wall = await fire_elsewhere(pool, endpoint, bodies[20:], concurrency)
        await followups.wait()
        cpu = time.process_time() - cpu
        if profiler is not None and profile is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        async with sessions() as session:
            after = int(await session.scalar(select(func.count()).select_from(UpdateRow)) or 0)
        print(
            f"database: {engine.dialect.name}; {len(targets)} milestones in {len(prompts)} "
            f"prompts; {clicks} clicks, {concurrency} at a time; {after - before} rows recorded"
        )
        slack_rate = summary("slack", latencies, wall, cpu)
        p99 = sorted(latencies)[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000

        runner, port = await serve(bare_app(sessions, milestone_id))
        runners.append(runner)
        endpoint = f"http://127.0.0.1:{port}/bare"
        bare_bodies = [click("U0", 0, "x", clicks + n, ("D1", "1.0", [])) for n in range(clicks)]
        await fire_elsewhere(pool, endpoint, bare_bodies[:20], 5)
        cpu = time.process_time()
        latencies, wall = await fire_elsewhere(pool, endpoint, bare_bodies[20:], concurrency)
        cpu = time.process_time() - cpu
        bare_rate = summary("bare", latencies, wall, cpu)
        ratio = bare_rate / slack_rate
        print(f"p99 {p99:.1f} ms (target < 100 ms): {'met' if p99 < 100 else 'NOT met'}")
        print(
            f"bare/slack throughput {ratio:.2f}x (target <= 3x): "
            f"{'met' if ratio <= 3 else 'NOT met'}"
        )
        await engine.dispose()
    finally:
        for r in runners:
            await r.cleanup()
        if client.session is not None:
            await client.session.close()
        shutil.rmtree(folder, ignore_errors=True)


async def bench_on_postgres(
    clicks: int,
    concurrency: int,
    people: int,
    profile: str | None,
    pool: ProcessPoolExecutor,
    fake: FakeSlack,
) -> None:
    with throwaway_postgres() as server:
        url = server.url(await create_database(server))
        await bench(clicks, concurrency, people, url, profile, pool, fake)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clicks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--people", type=int, default=200)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--database-url")
    where.add_argument("--postgres", action="store_true", help="start a throwaway server")
    parser.add_argument("--profile", help="write cProfile stats of the Slack run here")
    args = parser.parse_args()
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as pool, fake_slack_elsewhere() as fake:
        if args.postgres:
            asyncio.run(
                bench_on_postgres(
                    args.clicks, args.concurrency, args.people, args.profile, pool, fake
                )
            )
        else:
            asyncio.run(
                bench(
                    args.clicks,
                    args.concurrency,
                    args.people,
                    args.database_url,
                    args.profile,
                    pool,
                    fake,
                )
            )


if __name__ == "__main__":
    main()
