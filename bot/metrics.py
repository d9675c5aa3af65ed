"""Metrics (README "Health and metrics"), counted: served by handlers/web/metrics.py.

Each application has its own `CollectorRegistry`, so tests and several applications in one
process never share a counter. Events are counted where they happen (prompts sent, answers
recorded by channel, digests posted), each once its transaction commits: the count rides on
the session (`Session.info`) and is applied by an `after_commit` listener, so a rolled-back
transaction counts nothing. What the database holds (the outbox by state, inbound mail by
outcome) is read at scrape time through `MonitoringRepository`, under a short timeout: a
slow or unreachable database makes `/healthz` answer 503 and `/metrics` report
`pulse_database_up 0`, never hang the scrape.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

SESSION_KEY = "pulse.metrics"  # in `Session.info`: the application's `Metrics`
_PENDING = "pulse.metrics.pending"  # in `Session.info`: counts waiting for the commit


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


def _metrics(session: AsyncSession) -> Metrics | None:
    metrics = session.info.get(SESSION_KEY)
    return metrics if isinstance(metrics, Metrics) else None


def _on_commit(session: AsyncSession, bump: Callable[[], None]) -> None:
    session.info.setdefault(_PENDING, []).append(bump)


def count_prompts_sent(session: AsyncSession, channels: Iterable[str]) -> None:
    """Count a prompt sent per channel named, once `session` commits."""
    metrics = _metrics(session)
    if metrics is not None:
        for channel, n in Tally(channels).items():
            _on_commit(session, partial(metrics.prompts_sent.labels(channel).inc, n))


def count_answers(session: AsyncSession, channels: Iterable[str]) -> None:
    """Count an answer recorded per channel named, once `session` commits."""
    metrics = _metrics(session)
    if metrics is not None:
        for channel, n in Tally(channels).items():
            _on_commit(session, partial(metrics.answers_recorded.labels(channel).inc, n))


def count_digest_posted(session: AsyncSession) -> None:
    """Count one digest posted, once `session` commits."""
    metrics = _metrics(session)
    if metrics is not None:
        _on_commit(session, metrics.digests_posted.inc)


@event.listens_for(Session, "after_commit")
def _apply_counts(session: Session) -> None:
    for bump in session.info.pop(_PENDING, ()):
        bump()


@event.listens_for(Session, "after_transaction_end")
def _drop_counts(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the whole transaction ended without a commit
        session.info.pop(_PENDING, None)


# -- the listener ------------------------------------------------------------------------
