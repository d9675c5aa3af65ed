"""Whether the running bot is healthy (`/healthz`): a pure function of what was measured.

The bot is healthy when its database answers, its scheduler ticked recently, and no
message has waited long past its time in the outbox (a stuck worker or transport).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Check:
    """One check of `/healthz`: its name, whether it passed, and what was found."""

    name: str
    ok: bool
    detail: str
    seconds: float | None = None  # the age measured, for the database check none


def health_checks(
    *,
    now: datetime,
    database_error: str | None,
    last_tick: datetime,
    tick_limit: timedelta,
    oldest_due: datetime | None,
    outbox_limit: timedelta,
) -> list[Check]:
    """The database, scheduler and outbox checks. `last_tick` is when the scheduler last
    finished a tick (or when the bot started, before its first); `oldest_due` when the
    pending message due longest became due. With the database unreachable the outbox
    cannot be read, so its check fails too."""
    checks = [
        Check("database", False, f"unreachable: {database_error}")
        if database_error is not None
        else Check("database", True, "reachable")
    ]
    tick_age = max(0.0, (now - last_tick).total_seconds())
    if tick_age > tick_limit.total_seconds():
        detail = f"last tick {tick_age:.0f}s ago, over {tick_limit.total_seconds():.0f}s"
        checks.append(Check("scheduler", False, detail, tick_age))
    else:
        checks.append(Check("scheduler", True, f"last tick {tick_age:.0f}s ago", tick_age))
    if database_error is not None:
        checks.append(Check("outbox", False, "unknown: the database is unreachable"))
        return checks
    waited = max(0.0, (now - oldest_due).total_seconds()) if oldest_due is not None else 0.0
    if waited > outbox_limit.total_seconds():
        detail = (
            f"a message has waited {waited:.0f}s past its time, "
            f"over {outbox_limit.total_seconds():.0f}s"
        )
        checks.append(Check("outbox", False, detail, waited))
    else:
        checks.append(Check("outbox", True, f"oldest due message waited {waited:.0f}s", waited))
    return checks
