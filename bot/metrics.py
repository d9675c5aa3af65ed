"""The application's counters (README "Health and metrics"); handlers/web/metrics.py serves
them with `/healthz` on a listener of their own.

Each application has its own `CollectorRegistry`, so tests and several applications in one
process never share a counter. Events are counted where they happen (prompts sent, answers
recorded by channel, digests posted), each once its transaction commits: the count rides on
the session (`storage.db.after_commit`) and is applied once it commits, so a rolled-back
transaction counts nothing.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from functools import partial

from prometheus_client import CollectorRegistry, Counter

from storage.db import Session, after_commit, session_info

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
