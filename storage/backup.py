"""`pulse backup`: a consistent copy of the SQLite database while the bot runs.

SQLite's online backup API copies the pages under its own locking, so writers carry on
and the copy is of one moment. The copy is written beside the target and renamed over it
only when complete: a backup interrupted halfway never leaves a file that looks whole.
PostgreSQL is backed up with its own tools (`pg_dump`), not by us."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path

from bot.domain.errors import BackupError


def backup_sqlite(database: Path, target: Path, *, pages_per_step: int = 1024) -> int:
    """Copy `database` to `target` consistently; the copy's size in bytes."""
    if not database.exists():
        raise BackupError(f"no database at {database}")
    if target.exists() and target.resolve() == database.resolve():
        raise BackupError("the backup file is the database itself; choose another file")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    try:
        source = sqlite3.connect(database)
        try:
            copy = sqlite3.connect(temporary)
            try:
                source.backup(copy, pages=pages_per_step)
                # A plain file, whole in itself: no -wal beside it is needed to restore it.
                copy.execute("PRAGMA journal_mode=DELETE")
            finally:
                copy.close()
        finally:
            source.close()
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, target)
    except sqlite3.Error as exc:
        raise BackupError(f"backup failed: {exc}") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target.stat().st_size
