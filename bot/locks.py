"""The single-process guard for SQLite mode: one `pulse run` per database file.

SQLite has no `SKIP LOCKED`; its outbox claim is safe within one process, so a second
process is refused rather than allowed to race (RELIABILITY.md, "Decisions"). The lock is
a file beside the database (`pulse.db.lock`), found by the database's real path: two
processes on one database meet there whatever their data folders or the way they name it.
It is not the database file itself: closing any descriptor of that file would drop
SQLite's own POSIX locks.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from bot.domain.errors import PulseError


class AlreadyRunning(PulseError):
    def __init__(self, path: Path) -> None:
        super().__init__(
            f"another Plan Pulse process is running on this SQLite database (lock {path}); "
            "stop it first, or use PostgreSQL to run several"
        )


def database_lock(database: Path) -> ProcessLock:
    """The guard of one SQLite database file."""
    real = database.resolve()
    return ProcessLock(real.with_name(real.name + ".lock"))


class ProcessLock:
    """An exclusive, non-blocking `flock` held for the life of the process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(self.path) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ProcessLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
