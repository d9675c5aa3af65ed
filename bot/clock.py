"""The clock: what time it is, injected wherever it is asked, so that tests set it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The wall clock, in UTC: the default outside tests."""
    return datetime.now(UTC)
