"""Benchmark: one cycle's prompts delivered as Teams cards within Teams' limits.

N people who prefer Teams, each with a stored 1:1 conversation, are prompted in one cycle;
the outbox worker then delivers every card through the Agents SDK's connector client to the
fake Bot Connector of tests/fake_bot_connector.py, which enforces Teams' limits itself (per
conversation 7 a second and 60 in 30 seconds; 30 a second for the whole app) and answers 429
to whatever exceeds them. The bot's tokens come from the fake identity over HTTPS (msal).

Figures: the delivery time, the 429s Teams answered, and two ratios: against the least time
the limits allow for N posts (the n-th post no earlier than n // 30 seconds in), and against
a bare loop posting the same cards with the same connector and pacing, no database.

    .venv/bin/python bench/teams_bench.py [--prompts 1000] [--database-url URL]

Targets (issue 16): no 429 after warm-up, and delivery within 1.2x of the least time.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from microsoft_agents.activity import Activity
from sample_plans import write_plan  # a sibling: benchmarks run as scripts

from bot.app import PlanPulse, teams_channel, teams_prompt_cards
from bot.domain.teams import TeamsConversation
from bot.services.delivery import OutboxWorker
from bot.services.prompting import Cycles
from bot.settings import Settings
from handlers.files.importing import import_plan
from handlers.teams.transport import Pacer
from storage.bulk import tune_collector
from storage.teams_chats import TeamsConversations
from tests.fake_bot_connector import TENANT, FakeBotConnector, FakeIdentity

NOW = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
APP_ID = "3d5e7f90-1a2b-4c3d-9e8f-0a1b2c3d4e5f"
PER_SECOND = 30  # the whole app's limit


def least_time(posts: int) -> float:
    """The least time Teams' app-wide limit allows for `posts` posts to distinct chats."""
    return float((posts - 1) // PER_SECOND)


def prefer_teams(people_file: Path) -> None:
    rows = list(csv.reader(people_file.open(encoding="utf-8")))
    with people_file.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([*rows[0], "prefers"])
        for row in rows[1:]:
            writer.writerow([*row, "teams"])


async def bench(prompts: int, database_url: str | None) -> None:
    folder = Path(tempfile.mkdtemp(prefix="pulse-teams-bench-"))
    identity = FakeIdentity()
    await identity.start()
    connector = FakeBotConnector(identity, enforce_limits=True)
    await connector.start()
    try:
        tune_collector()
        url = database_url or f"sqlite+aiosqlite:///{folder / 'pulse.db'}"
        settings = Settings(
            _env_file=None,
            DATABASE_URL=url,
            PULSE_DATA_DIR=folder / "var",
            PULSE_SECRET_KEY="Vq3xN8r2LmT7pZs1Kd6Wf0Hj4Yc9Ba5E",
            PULSE_BASE_URL="https://pulse.council.example",
            TEAMS_APP_ID=APP_ID,
            TEAMS_APP_PASSWORD=identity.secret,
            TEAMS_TENANT_ID=TENANT,
            TEAMS_AUTHORITY=identity.authority,
            TEAMS_OPENID_METADATA_URL=identity.metadata_url,
            TEAMS_CA_FILE=identity.ca_file,
        )
        pulse = PlanPulse(settings, clock=lambda: NOW)
        await pulse.migrate()
        plan_file, people_file = write_plan(folder, prompts)
        prefer_teams(people_file)
        await import_plan(
            pulse.sessions,
            plan_file,
            people_path=people_file,
            plan_key="bench",
            now=NOW,
            ratings_as_of=date(2026, 11, 2),
        )
        async with pulse.sessions() as session, session.begin():
            repo = TeamsConversations(session)
            for i in range(prompts):
                await repo.remember(
                    f"P{i}",
                    TeamsConversation(f"29:p{i}", f"a:1p{i}", connector.url, TENANT),
                    now=NOW,
                )
        channel = teams_channel(pulse)
        assert channel is not None
        cycles = Cycles(
            pulse.sessions,
            mail_from="pulse@council.example",
            clock=lambda: NOW,
            signer=settings.signer(),
            web_base_url=settings.web_base_url,
            teams_prompt=teams_prompt_cards,
        )
        report = await cycles.start_cycle("bench", now=NOW)
        assert report.created == prompts, report.created
        await channel.tokens.token()  # warm-up: the first token, outside the timing

        worker = OutboxWorker(pulse.sessions, {"teams_chat": channel.transport}, clock=lambda: NOW)
        t0 = time.perf_counter()
        delivered = await worker.drain()
        delivering = time.perf_counter() - t0
        throttled = connector.throttled
        assert delivered == prompts, delivered
        assert len(connector.sent) == prompts, len(connector.sent)
        cards = [activity for _, activity in connector.sent]

        # The bare loop: the same cards, the same connector and pacing, no database; other
        # conversations and a second's pause, so the first run's windows do not slow it.
        await asyncio.sleep(1.1)
        connector.throttled = 0
        pacer = Pacer()
        t0 = time.perf_counter()
        for i, card in enumerate(cards):
            conversation = f"a:1p{i}-bare"
            async with pacer.slot(conversation):
                await channel.connector.send(
                    connector.url, conversation, Activity.model_validate(card)
                )
        baseline = time.perf_counter() - t0
        bare_throttled = connector.throttled
        await channel.close()
        await pulse.close()

        least = least_time(prompts)
        kind = url.split(":", 1)[0]
        print(f"database                    {kind}")
        print(f"Teams prompts               {prompts}")
        print(f"least time the limits allow {least:8.2f} s   (30 posts a second for the app)")
        print(
            f"deliver (outbox, paced)     {delivering:8.2f} s   ({prompts / delivering:,.1f} "
            f"cards/s), 429s: {throttled}"
        )
        print(
            f"bare loop (paced, no db)    {baseline:8.2f} s   ({prompts / baseline:,.1f} "
            f"cards/s), 429s: {bare_throttled}"
        )
        ratio = delivering / least if least else float("inf")
        print(
            f"delivery / least time       {ratio:8.2f}x    target <= 1.2x: "
            f"{'met' if ratio <= 1.2 else 'NOT met'}"
        )
        print(f"delivery / bare loop        {delivering / baseline:8.2f}x")
        print(f"no 429 after warm-up        {'met' if throttled == 0 else 'NOT met'}")
    finally:
        await connector.stop()
        await identity.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    asyncio.run(bench(args.prompts, args.database_url))


if __name__ == "__main__":
    main()
