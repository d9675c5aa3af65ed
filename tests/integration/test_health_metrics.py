"""`/healthz` and `/metrics` over real HTTP on loopback: checks that pass and fail (the
database gone, a stale scheduler tick), and Prometheus values that follow a real cycle."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import PlanPulse, Runner, check
from bot.metrics import count_answers
from bot.settings import Settings
from handlers.web.metrics import MetricsServer
from tests.conftest import Clock, import_small_plan, running_pulse
from tests.integration.test_outbox_leases import Cable
from tests.postgres import PostgresServer, create_database, free_port

MONDAY = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
FRIDAY_DIGEST = datetime(2026, 11, 27, 12, 5, tzinfo=UTC)
LEAD = "dana.cole@council.example"


@contextlib.asynccontextmanager
async def serving(pulse: PlanPulse, **options: Any) -> AsyncIterator[str]:
    """The health and metrics listener of `pulse` on a free loopback port; its base URL."""
    server = MetricsServer(pulse.metrics, pulse.sessions, clock=pulse.clock, **options)
    await server.start("127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.stop()


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as client, client.get(url) as answer:
        return answer.status, await answer.text()


async def health(base: str) -> tuple[int, dict[str, Any]]:
    status, text = await get(f"{base}/healthz")
    return status, json.loads(text)


async def samples(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of `/metrics`, parsed as Prometheus parses it: (name, labels) → value."""
    status, text = await get(f"{base}/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def reply_to_dana(pulse: PlanPulse) -> None:
    """Dana's email reply to her prompt, dropped into the local inbox."""
    prompt = next(
        message
        for path in sorted((pulse.settings.mail_dir / "outbox").glob("*-prompt.eml"))
        if LEAD in str((message := message_from_bytes(path.read_bytes(), policy=default))["To"])
    )
    reply = EmailMessage()
    reply["From"] = f"Dana Cole <{LEAD}>"
    reply["To"] = str(prompt["From"])
    reply["Subject"] = "RE: " + str(prompt["Subject"])
    reply["Message-ID"] = "<dana-metrics-1@council.example>"
    reply["In-Reply-To"] = str(prompt["Message-ID"])
    reply["Date"] = "Mon, 23 Nov 2026 10:15:00 +0000"
    reply.set_content("1.2-1 3 Analysis under way with HR\n1.2-2 in progress - need support\n")
    (pulse.settings.mail_dir / "inbox" / "dana.eml").write_bytes(reply.as_bytes())


async def test_metrics_follow_a_real_cycle_of_prompts_answers_and_a_digest(
    db_url: str, tmp_path: Path
) -> None:
    """After Monday's prompts, an email reply and Friday's digest, `/metrics` counts the
    prompts sent, the answers by channel, the digests, the outbox and inbound mail."""
    clock = Clock(MONDAY)
    async with running_pulse(db_url, tmp_path / "var", clock) as pulse, serving(pulse) as base:
        await import_small_plan(pulse.sessions, now=clock())
        before = await samples(base)
        assert before[("pulse_outbox_messages", (("state", "pending"),))] == 0
        assert before[("pulse_database_up", ())] == 1
        assert ("pulse_answers_recorded_total", (("channel", "email"),)) not in before

        runner = Runner(pulse)
        report = await runner.run_once()
        assert report.delivered > 0
        monday = await samples(base)
        prompts = monday[("pulse_prompts_sent_total", (("channel", "email"),))]
        assert prompts == report.prompts > 0
        assert monday[("pulse_outbox_messages", (("state", "sent"),))] == report.delivered

        reply_to_dana(pulse)
        clock.now = MONDAY + timedelta(hours=2)
        replied = await runner.run_once()
        assert replied.answers == 2
        after = await samples(base)
        assert after[("pulse_answers_recorded_total", (("channel", "email"),))] == 2
        assert after[("pulse_inbound_messages", (("outcome", "processed"),))] == 1
        # Dana's confirmation, and the coordinators' notice of the support she asked for.
        assert replied.delivered == 1 + 4
        assert after[("pulse_outbox_messages", (("state", "sent"),))] == report.delivered + 5
        assert after[("pulse_prompts_sent_total", (("channel", "email"),))] == prompts

        clock.now = FRIDAY_DIGEST
        friday = await runner.run_once()
        assert friday.digests > 0
        end = await samples(base)
        assert end[("pulse_digests_posted_total", ())] == friday.digests
        assert end[("pulse_outbox_messages", (("state", "pending"),))] == 0


async def test_a_stale_scheduler_tick_makes_healthz_fail_until_the_next_tick(
    db_url: str, tmp_path: Path
) -> None:
    """`/healthz` is 200 with its checks after a tick, 503 naming the scheduler when no
    tick has finished for longer than the limit, and 200 again after the next one."""
    clock = Clock(MONDAY)
    async with (
        running_pulse(db_url, tmp_path / "var", clock) as pulse,
        serving(pulse, tick_limit=timedelta(minutes=5)) as base,
    ):
        runner = Runner(pulse)
        await runner._tick()  # what the scheduler calls
        status, body = await health(base)
        assert status == 200
        assert body["status"] == "ok"
        assert {name: check["ok"] for name, check in body["checks"].items()} == {
            "database": True,
            "scheduler": True,
            "outbox": True,
        }
        clock.now += timedelta(minutes=6)
        status, body = await health(base)
        assert status == 503
        assert not body["checks"]["scheduler"]["ok"]
        assert body["checks"]["scheduler"]["seconds"] == 360
        assert body["checks"]["database"]["ok"]
        lag = await samples(base)
        assert lag[("pulse_scheduler_tick_age_seconds", ())] == 360
        await runner._tick()
        assert (await health(base))[0] == 200


async def test_healthz_fails_when_the_sqlite_file_cannot_be_opened(tmp_path: Path) -> None:
    """With the SQLite file gone and a folder in its place, `/healthz` answers 503 naming
    the database, and `/metrics` still answers, with `pulse_database_up 0`."""
    data = tmp_path / "var"
    clock = Clock(MONDAY)
    async with running_pulse(f"sqlite+aiosqlite:///{data / 'pulse.db'}", data, clock) as pulse:
        pulse.metrics.tick_done(clock())
        async with serving(pulse) as base:
            assert (await health(base))[0] == 200
            (data / "pulse.db").rename(data / "moved.db")
            (data / "pulse.db").mkdir()
            await pulse.engine.dispose()  # connections open already keep the old file
            status, body = await health(base)
            assert status == 503
            assert body["status"] == "failing"
            assert not body["checks"]["database"]["ok"]
            assert "unreachable" in body["checks"]["database"]["detail"]
            assert not body["checks"]["outbox"]["ok"]
            down = await samples(base)
            assert down[("pulse_database_up", ())] == 0
            assert ("pulse_outbox_messages", (("state", "pending"),)) not in down


class StallingCable(Cable):
    """A `Cable` that can also stall: new connections are held open and never answered."""

    stalled = False

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.stalled:
            with contextlib.suppress(OSError, ConnectionError):
                await reader.read()  # until the client gives up
            writer.close()
            return
        await super()._connect(reader, writer)


async def test_healthz_fails_fast_when_postgresql_is_cut_off_or_stalls(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """PostgreSQL cut off: `/healthz` answers 503 at once; PostgreSQL accepting but never
    answering: 503 within the read timeout, never a hung scrape; mended: 200 again."""
    name = await create_database(postgres_server)
    cable = StallingCable(postgres_server.port)
    port = await cable.start()
    url = f"postgresql+asyncpg://{postgres_server.user}@127.0.0.1:{port}/{name}"
    clock = Clock(MONDAY)
    try:
        async with running_pulse(url, tmp_path, clock) as pulse:
            pulse.metrics.tick_done(clock())
            async with serving(pulse, timeout=0.5) as base:
                assert (await health(base))[0] == 200
                cable.cut()
                status, body = await health(base)
                assert status == 503
                assert not body["checks"]["database"]["ok"]

                cable.stalled = True
                cable.mend()
                loop = asyncio.get_running_loop()
                started = loop.time()
                status, body = await asyncio.wait_for(health(base), timeout=10)
                assert status == 503
                assert "no answer within 0.5s" in body["checks"]["database"]["detail"]
                assert loop.time() - started < 5
                down = await asyncio.wait_for(samples(base), timeout=10)
                assert down[("pulse_database_up", ())] == 0

                cable.stalled = False
                cable.cut()  # the stalled connections go
                cable.mend()
                assert (await health(base))[0] == 200
    finally:
        await cable.stop()


async def test_pulse_run_serves_health_on_loopback_and_stops_listening_when_stopped(
    tmp_path: Path,
) -> None:
    """The running bot listens for `/healthz` and `/metrics` on 127.0.0.1 by default and
    closes the port when stopped (as SIGTERM stops `pulse run`)."""
    defaults = Settings(_env_file=None)
    assert (defaults.metrics_host, defaults.metrics_port) == ("127.0.0.1", 9464)
    data = tmp_path / "var"
    settings = Settings(
        _env_file=None,
        DATABASE_URL=f"sqlite+aiosqlite:///{data / 'pulse.db'}",
        PULSE_DATA_DIR=data,
        METRICS_PORT=0,
    )
    pulse = PlanPulse(settings, clock=Clock(MONDAY))
    await pulse.migrate()
    try:
        runner = Runner(pulse)
        stop = asyncio.Event()
        running = asyncio.create_task(runner.run_forever(stop, tick_every=3600, inbox_every=3600))
        for _ in range(500):
            if runner.health.port or running.done():
                break
            await asyncio.sleep(0.01)
        assert runner.health.host == "127.0.0.1"
        base = f"http://127.0.0.1:{runner.health.port}"
        status, text = await get(f"{base}/metrics")
        assert status == 200
        assert "pulse_database_up 1.0" in text
        assert (await health(base))[1]["checks"]["database"]["ok"]
        stop.set()
        await asyncio.wait_for(running, timeout=30)
        with pytest.raises(aiohttp.ClientConnectionError):
            await get(f"{base}/healthz")
    finally:
        await pulse.close()


async def test_an_answer_counts_only_once_its_transaction_commits(
    db_url: str, tmp_path: Path
) -> None:
    """Answers recorded in a transaction that rolls back are not counted; committed ones
    are, in their own application's registry only."""
    clock = Clock(MONDAY)
    async with (
        running_pulse(db_url, tmp_path / "a", clock) as pulse,
        running_pulse(db_url, tmp_path / "b", clock) as other,
    ):
        with contextlib.suppress(RuntimeError):
            async with pulse.sessions() as session, session.begin():
                count_answers(session, ["email", "slack"])
                raise RuntimeError("rolled back")
        async with pulse.sessions() as session, session.begin():
            count_answers(session, ["email", "email"])
        async with serving(pulse) as base:
            counted = await samples(base)
        assert counted[("pulse_answers_recorded_total", (("channel", "email"),))] == 2
        assert counted.get(("pulse_answers_recorded_total", (("channel", "slack"),)), 0) == 0
        async with serving(other) as base:
            elsewhere = await samples(base)
        assert ("pulse_answers_recorded_total", (("channel", "email"),)) not in elsewhere


async def test_check_reports_the_web_and_metrics_addresses_and_what_answers_there(
    tmp_path: Path,
) -> None:
    """`pulse check` names the web server's URL and the metrics and health URLs, saying
    whether a running bot answers there."""
    port = free_port()
    data = tmp_path / "var"
    settings = Settings(
        _env_file=None,
        DATABASE_URL=f"sqlite+aiosqlite:///{data / 'pulse.db'}",
        PULSE_DATA_DIR=data,
        HTTP_PORT=8080,
        METRICS_PORT=port,
    )
    pulse = PlanPulse(settings, clock=Clock(MONDAY))
    await pulse.migrate()
    try:
        idle = [line for _, line in await check(pulse)]
        pulse.metrics.tick_done(MONDAY)
        server = MetricsServer(pulse.metrics, pulse.sessions, clock=pulse.clock)
        await server.start("127.0.0.1", port)
        try:
            running = [line for _, line in await check(pulse)]
        finally:
            await server.stop()
    finally:
        await pulse.close()
    url = f"http://127.0.0.1:{port}"
    assert "web server: http://127.0.0.1:8080" in idle
    assert f"metrics: {url}/metrics, health: {url}/healthz (nothing answering now)" in idle
    assert f"metrics: {url}/metrics, health: {url}/healthz (healthy)" in running
    behind_proxy = settings.model_copy(update={"base_url": "https://pulse.example.gov.uk/"})
    proxied = PlanPulse(behind_proxy, clock=Clock(MONDAY))
    try:
        lines = [line for _, line in await check(proxied)]
    finally:
        await proxied.close()
    assert "web server: http://127.0.0.1:8080 (links use https://pulse.example.gov.uk)" in lines
