"""Benchmark: digest posts to Teams channels through the Workflows transport, paced, against a
fake Workflows endpoint on loopback that enforces a rate limit.

The endpoint answers 429 (with `Retry-After`) to any post that comes sooner than `--limit`
seconds after the one before it, as Power Automate's throttling of one Teams connection
does; otherwise 202. POSTS posts (each a real Adaptive Card of a digest part, about 25 KB)
go through `WorkflowsTransport.post` with its pacing set to the limit. The minimum time the
limit allows is (POSTS - 1) x limit; the figure is the total time against that minimum, and
the number of 429s (target: none, and within 1.2x of the minimum).

The baseline, in the same run, is the same posts sent back to back with a bare aiohttp
session to an endpoint without a limit: what the posting itself costs.

    .venv/bin/python bench/workflows_bench.py [--posts 200] [--limit 0.05]

The real pace is one post a second (TEAMS_POST_INTERVAL); `--limit` scales it down so that a
run stays short, with the same arithmetic.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from digests.teams import post_body, render_teams
from handlers.teams.workflows import WorkflowsTransport
from tests.unit.test_digest_renderers import NAMES, big_digest


class LimitedEndpoint:
    """202 to a post at least `limit` seconds after the last accepted one, else 429."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.last: float | None = None
        self.accepted = 0
        self.throttled = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        now = time.monotonic()
        if self.limit and self.last is not None and now - self.last < self.limit:
            self.throttled += 1
            wait = self.limit - (now - self.last)
            return web.Response(status=429, headers={"Retry-After": f"{wait:.3f}"})
        self.last = now
        self.accepted += 1
        return web.Response(status=202)


async def serve(endpoint: LimitedEndpoint) -> tuple[web.AppRunner, str]:
    app = web.Application(client_max_size=1 << 20)
    app.router.add_post("/workflows/{flow}/triggers/manual/paths/invoke", endpoint.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    return runner, f"http://127.0.0.1:{port}/workflows/f/triggers/manual/paths/invoke?sig=s"


async def run(posts: int, limit: float) -> None:
    cards = render_teams(big_digest(), names=NAMES)
    messages = [cards[i % len(cards)] for i in range(posts)]
    size = sum(len(post_body(m)) for m in messages) / len(messages)

    bare = LimitedEndpoint(0)
    runner, url = await serve(bare)
    try:
        started = time.perf_counter()
        async with aiohttp.ClientSession() as session:
            for message in messages:
                async with session.post(url, data=post_body(message)) as response:
                    await response.read()
        baseline = time.perf_counter() - started
    finally:
        await runner.cleanup()

    limited = LimitedEndpoint(limit)
    runner, url = await serve(limited)

    async def webhook_for(_: str) -> str | None:
        return url

    transport = WorkflowsTransport(webhook_for, interval=limit)
    try:
        started = time.perf_counter()
        for message in messages:
            await transport.post(url, message)
        paced = time.perf_counter() - started
    finally:
        await runner.cleanup()

    minimum = (posts - 1) * limit
    print(f"{posts} posts of {size / 1024:.1f} KB on average, limit one per {limit:g} s")
    print(f"baseline, back to back, no limit: {baseline:.2f} s ({posts / baseline:.0f} posts/s)")
    print(
        f"paced transport: {paced:.2f} s, minimum the limit allows {minimum:.2f} s, "
        f"ratio {paced / minimum:.3f}; accepted {limited.accepted}, 429s {limited.throttled}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--limit", type=float, default=0.05)
    args = parser.parse_args()
    asyncio.run(run(args.posts, args.limit))


if __name__ == "__main__":
    main()
