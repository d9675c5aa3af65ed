"""Benchmark: signed Slack rating clicks against the real bolt app over HTTP on loopback.

Builds a plan of N people (one action each, three milestones), plans a cycle so every person
has a prompt, serves the Slack app (`build_http_app`) on 127.0.0.1 with its Web API pointed at
the fake Slack, and fires CLICKS signed `block_actions` rating clicks, CONCURRENCY at a time,
spread over every prompt and milestone (each click is a distinct action, so each records a
row). Timed per click: from sending to the response, which comes only after the commit.

In the same run a bare aiohttp handler that verifies the signature and inserts one update
row (same database) is timed the same way, as the baseline.

    .venv/bin/python bench/slack_bench.py [--clicks 2000] [--concurrency 50] [--people 200]
                                          [--database-url URL]

Targets: p99 under 100 ms, and throughput within 3x of the bare handler.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import aiohttp
from aiohttp import web
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sample_plans import write_plan  # a sibling: benchmarks run as scripts

from bot.cycle import Cycles
from handlers.slack_app import build_http_app, build_slack_app
from storage.db import create_engine, migrate, session_factory
from storage.importer import import_plan
from storage.models import MilestoneRow, PersonRow, PromptRow, UpdateRow
from tests.fake_slack import FakeSlack

NOW = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
SECRET = "bench-signing-secret-0123456789"


def signed(body: str) -> dict[str, str]:
    stamp = str(int(time.time()))
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(
            timestamp=stamp, body=body
        ),
    }


def click(user: str, prompt_id: int, ref: str, n: int) -> str:
    payload = {
        "type": "block_actions",
        "team": {"id": "TPULSE"},
        "user": {"id": user, "team_id": "TPULSE"},
        "api_app_id": "APULSE",
        "trigger_id": f"trig-{n}",
        "container": {"type": "message", "message_ts": "1.0", "channel_id": "D1"},
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
    """Send every body, `concurrency` at a time: (latencies in seconds, wall time)."""
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


def bare_app(sessions: async_sessionmaker[AsyncSession], milestone_id: int) -> web.Application:
    """The baseline: verify the signature, insert one row, answer 200."""
    verifier = SignatureVerifier(SECRET)
    writer = asyncio.Lock()  # the same one-writer queue the Slack app uses on SQLite

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


def summary(name: str, latencies: list[float], wall: float) -> float:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    rate = len(latencies) / wall
    print(
        f"{name:>6}: {len(latencies)} clicks in {wall:.2f} s = {rate:.0f}/s; "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )
    return rate


async def bench(clicks: int, concurrency: int, people: int, database_url: str | None) -> None:
    folder = Path(tempfile.mkdtemp(prefix="pulse-slack-bench-"))
    fake = FakeSlack()
    runners: list[web.AppRunner] = []
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
        async with sessions() as session:
            prompts = (
                await session.execute(
                    select(PersonRow.slack_user_id, PromptRow.id, PromptRow.milestone_refs).join(
                        PersonRow, PersonRow.id == PromptRow.person_id
                    )
                )
            ).all()
            milestone_id = int(await session.scalar(select(func.min(MilestoneRow.id))) or 0)
        targets = [(str(u), int(p), ref) for u, p, refs in prompts for ref in refs]
        bodies = [click(*targets[n % len(targets)], n) for n in range(clicks)]

        await fake.start()
        client = fake.client()
        app = build_slack_app(
            sessions=sessions, client=client, signing_secret=SECRET, clock=lambda: NOW
        )
        runner, port = await serve(build_http_app(app, signing_secret=SECRET))
        runners.append(runner)
        await fire(f"http://127.0.0.1:{port}/slack/events", bodies[:20], 5)  # warm up
        async with sessions() as session:
            before = int(await session.scalar(select(func.count()).select_from(UpdateRow)) or 0)
        latencies, wall = await fire(f"http://127.0.0.1:{port}/slack/events", bodies, concurrency)
        async with sessions() as session:
            after = int(await session.scalar(select(func.count()).select_from(UpdateRow)) or 0)
        print(
            f"database: {engine.dialect.name}; {len(targets)} milestones in {len(prompts)} "
            f"prompts; {clicks} clicks, {concurrency} at a time; {after - before} rows recorded"
        )
        slack_rate = summary("slack", latencies, wall)
        p99 = sorted(latencies)[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000

        runner, port = await serve(bare_app(sessions, milestone_id))
        runners.append(runner)
        bare_bodies = [click("U0", 0, "x", clicks + n) for n in range(clicks)]
        await fire(f"http://127.0.0.1:{port}/bare", bare_bodies[:20], 5)
        latencies, wall = await fire(f"http://127.0.0.1:{port}/bare", bare_bodies[20:], concurrency)
        bare_rate = summary("bare", latencies, wall)
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
        await fake.close()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clicks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    asyncio.run(bench(args.clicks, args.concurrency, args.people, args.database_url))


if __name__ == "__main__":
    main()
