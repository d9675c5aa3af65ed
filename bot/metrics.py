"""Health and metrics (README "Health and metrics"): `/healthz` and `/metrics` on a listener
of their own (`METRICS_HOST:METRICS_PORT`, loopback by default), apart from public pages.

Each application has its own `CollectorRegistry`, so tests and several applications in one
process never share a counter. Events are counted where they happen (prompts sent, answers
recorded by channel, digests posted), each once its transaction commits: the count rides on
the session (`storage.db.after_commit`) and is applied once it commits, so a rolled-back
transaction counts nothing. What the database holds (the outbox by state, inbound mail by
outcome) is read at scrape time through `MonitoringRepository`, under a short timeout: a
slow or unreachable database makes `/healthz` answer 503 and `/metrics` report
`pulse_database_up 0`, never hang the scrape.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter as Tally
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from bot.clock import Clock
from bot.domain.health import health_checks
from storage.db import Session, Sessions, after_commit, session_info
from storage.monitoring import DatabaseSnapshot, MonitoringRepository

log = logging.getLogger(__name__)

SESSION_KEY = "pulse.metrics"  # in `session_info`: the application's `Metrics`

TICK_LIMIT = timedelta(minutes=5)  # the scheduler ticks every minute
OUTBOX_LIMIT = timedelta(minutes=15)  # a due message is normally taken within seconds
READ_TIMEOUT = 2.0  # seconds a scrape waits for the database
# Always reported, at 0 when there are none, so an alert on them has a series to watch.
OUTBOX_STATES = ("pending", "failed", "needs_review")


class Metrics:
    """One application's registry, event counters and scheduler tick times."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.prompts_sent = Counter(
            "pulse_prompts_sent",
            "Prompts delivered to leads, by channel.",
            ["channel"],
            registry=self.registry,
        )
        self.answers_recorded = Counter(
            "pulse_answers_recorded",
            "Answers (one per milestone) recorded, by the channel they came through.",
            ["channel"],
            registry=self.registry,
        )
        self.digests_posted = Counter(
            "pulse_digests_posted",
            "Digests posted (one per network and period).",
            registry=self.registry,
        )
        self.started_at: datetime | None = None
        self.last_tick: datetime | None = None

    def tick_done(self, at: datetime) -> None:
        """The scheduler finished a tick at `at`."""
        self.last_tick = at

    def tick_reference(self, now: datetime) -> datetime:
        """When the scheduler last ticked; before the first tick, when the bot started."""
        if self.last_tick is not None:
            return self.last_tick
        if self.started_at is None:
            self.started_at = now
        return self.started_at


# -- counting events once their transaction commits ----------------------------------------


def _metrics(session: Session) -> Metrics | None:
    metrics = session_info(session).get(SESSION_KEY)
    return metrics if isinstance(metrics, Metrics) else None


def _on_commit(session: Session, bump: Callable[[], None]) -> None:
    after_commit(session, bump)


def count_prompts_sent(session: Session, channels: Iterable[str]) -> None:
    """Count a prompt sent per channel named, once `session` commits."""
    metrics = _metrics(session)
    if metrics is not None:
        for channel, n in Tally(channels).items():
            _on_commit(session, partial(metrics.prompts_sent.labels(channel).inc, n))


def count_answers(session: Session, channels: Iterable[str]) -> None:
    """Count an answer recorded per channel named, once `session` commits."""
    metrics = _metrics(session)
    if metrics is not None:
        for channel, n in Tally(channels).items():
            _on_commit(session, partial(metrics.answers_recorded.labels(channel).inc, n))


def count_digest_posted(session: Session) -> None:
    """Count one digest posted, once `session` commits."""
    metrics = _metrics(session)
    if metrics is not None:
        _on_commit(session, metrics.digests_posted.inc)


# -- the listener ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reading:
    """What one request measured: the database's counts, or why they could not be read."""

    now: datetime
    snapshot: DatabaseSnapshot | None
    error: str | None


class _Scrape:
    """The registry's counters and, read for this scrape, the database's gauges."""

    def __init__(self, metrics: Metrics, reading: Reading) -> None:
        self.metrics = metrics
        self.reading = reading

    def collect(self) -> Iterable[Metric]:
        yield from self.metrics.registry.collect()
        reading = self.reading
        age = (reading.now - self.metrics.tick_reference(reading.now)).total_seconds()
        yield GaugeMetricFamily(
            "pulse_scheduler_tick_age_seconds",
            "Seconds since the scheduler last finished a tick (its lag).",
            value=max(0.0, age),
        )
        yield GaugeMetricFamily(
            "pulse_database_up",
            "1 when the database answered this scrape in time, else 0.",
            value=1 if reading.snapshot is not None else 0,
        )
        snapshot = reading.snapshot
        if snapshot is None:
            return
        outbox = GaugeMetricFamily(
            "pulse_outbox_messages", "Outbox messages by state.", labels=["state"]
        )
        for state in sorted(set(OUTBOX_STATES) | set(snapshot.outbox)):
            outbox.add_metric([state], snapshot.outbox.get(state, 0))
        yield outbox
        inbound = GaugeMetricFamily(
            "pulse_inbound_messages", "Inbound mail by outcome.", labels=["outcome"]
        )
        for outcome, n in sorted(snapshot.inbound.items()):
            inbound.add_metric([outcome], n)
        yield inbound
        waited = (reading.now - snapshot.oldest_due).total_seconds() if snapshot.oldest_due else 0.0
        yield GaugeMetricFamily(
            "pulse_outbox_oldest_due_seconds",
            "Seconds the longest-waiting due outbox message has waited past its time.",
            value=max(0.0, waited),
        )


class MetricsServer:
    """`/healthz` and `/metrics` over HTTP, an aiohttp `AppRunner` of its own."""

    def __init__(
        self,
        metrics: Metrics,
        sessions: Sessions,
        *,
        clock: Clock,
        tick_limit: timedelta = TICK_LIMIT,
        outbox_limit: timedelta = OUTBOX_LIMIT,
        timeout: float = READ_TIMEOUT,
    ) -> None:
        self.metrics = metrics
        self.sessions = sessions
        self.clock = clock
        self.tick_limit = tick_limit
        self.outbox_limit = outbox_limit
        self.timeout = timeout
        self.host: str | None = None  # where it listens, once started
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.scrape)
        return app

    async def start(self, host: str, port: int) -> None:
        """Listen on `host:port` (port 0: any free one, then in `self.port`)."""
        self.metrics.tick_reference(self.clock())  # tick age counts from now until a tick
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.host, self.port = str(runner.addresses[0][0]), int(runner.addresses[0][1])
        log.info("health and metrics on http://%s:%s/ (/healthz, /metrics)", host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def read(self) -> Reading:
        """The database's counts, or the reason they could not be read within the timeout."""
        now = self.clock()

        async def snapshot() -> DatabaseSnapshot:
            async with self.sessions() as session:
                return await MonitoringRepository(session).snapshot(now=now)

        try:
            return Reading(now, await asyncio.wait_for(snapshot(), self.timeout), None)
        except TimeoutError:
            error = f"no answer within {self.timeout:g}s"
        except Exception as exc:  # any failure to read is the check failing, not a crash
            error = type(exc).__name__
        log.warning("health: database unreachable (%s)", error)
        return Reading(now, None, error)

    async def healthz(self, request: web.Request) -> web.Response:
        reading = await self.read()
        checks = health_checks(
            now=reading.now,
            database_error=reading.error,
            last_tick=self.metrics.tick_reference(reading.now),
            tick_limit=self.tick_limit,
            oldest_due=reading.snapshot.oldest_due if reading.snapshot else None,
            outbox_limit=self.outbox_limit,
        )
        ok = all(c.ok for c in checks)
        body: dict[str, Any] = {"status": "ok" if ok else "failing", "checks": {}}
        for check in checks:
            body["checks"][check.name] = {"ok": check.ok, "detail": check.detail}
            if check.seconds is not None:
                body["checks"][check.name]["seconds"] = round(check.seconds, 3)
        if reading.snapshot is not None:
            body["checks"]["outbox"]["states"] = reading.snapshot.outbox
        return web.Response(
            text=json.dumps(body), content_type="application/json", status=200 if ok else 503
        )

    async def scrape(self, request: web.Request) -> web.Response:
        reading = await self.read()
        body = generate_latest(_Scrape(self.metrics, reading))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
