"""The pure rule of `/healthz`: which checks pass for what was measured."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.domain.health import health_checks

NOW = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
LIMITS = {"tick_limit": timedelta(minutes=5), "outbox_limit": timedelta(minutes=15)}


def verdicts(**measured: object) -> dict[str, bool]:
    values: dict[str, object] = {"database_error": None, "last_tick": NOW, "oldest_due": None}
    values |= measured
    checks = health_checks(now=NOW, **LIMITS, **values)  # type: ignore[arg-type]
    return {c.name: c.ok for c in checks}


def test_everything_recent_is_healthy() -> None:
    """A reachable database, a tick a minute ago and no message waiting pass every check."""
    assert verdicts(last_tick=NOW - timedelta(minutes=1)) == {
        "database": True,
        "scheduler": True,
        "outbox": True,
    }


def test_a_tick_at_the_limit_passes_and_one_past_it_fails() -> None:
    """The scheduler check fails only once the last tick is older than the limit."""
    assert verdicts(last_tick=NOW - timedelta(minutes=5))["scheduler"]
    assert not verdicts(last_tick=NOW - timedelta(minutes=5, seconds=1))["scheduler"]


def test_a_message_waiting_long_past_its_time_fails_the_outbox_check() -> None:
    """A due message that has waited longer than the limit fails the outbox check."""
    assert verdicts(oldest_due=NOW - timedelta(minutes=14))["outbox"]
    assert not verdicts(oldest_due=NOW - timedelta(minutes=16))["outbox"]


def test_an_unreachable_database_fails_the_database_and_outbox_checks() -> None:
    """With the database unreachable the outbox cannot be judged: both fail."""
    assert verdicts(database_error="OperationalError") == {
        "database": False,
        "scheduler": True,
        "outbox": False,
    }
