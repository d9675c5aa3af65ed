"""Engines and sessions: SQLite (WAL, foreign keys on) by default, PostgreSQL via asyncpg,
and the Alembic upgrade that `pulse init` runs."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    AsyncSessionTransaction,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session as SyncSession
from sqlalchemy.orm import SessionTransaction

MIGRATIONS = Path(__file__).with_name("migrations")
# Values per IN (...) list: well under SQLite's and PostgreSQL's limits on parameters.
IN_CHUNK = 500


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL; None for PostgreSQL or an in-memory database."""
    return _sqlite_path(url) if is_sqlite(url) else None


def _sqlite_path(url: str) -> Path | None:
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database)


def is_database_url(url: str) -> bool:
    """Whether the engine can read `url` as a database URL."""
    try:
        make_url(url)
    except (ArgumentError, ValueError):
        return False
    return True


def database_name(url: str) -> str | None:
    """The database `url` names: a file for SQLite, a database on the server otherwise."""
    return make_url(url).database


def redacted_url(url: str) -> str:
    """`url` with its password hidden, for the log and `pulse check`."""
    return make_url(url).render_as_string(hide_password=True)


def sqlite_url_under(url: str, home: Path) -> str:
    """A SQLite `url` whose file is a relative path, with the file under `home`; any other
    URL as it is."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        if not Path(parsed.database).is_absolute():
            database = str(home / parsed.database)
            return parsed.set(database=database).render_as_string(hide_password=False)
    return url


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, begin transactions (see `_begin_immediate`).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Deleted and overwritten content is zeroed, so erased or expired personal data does
    # not linger in free pages of the file.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


_READS_ONLY = "pulse_reads_only"


async def reads_only(session: Any) -> None:
    """Mark `session`, before its first statement, as one that only reads: on SQLite its
    transaction then begins deferred, reading the last committed state (WAL) without taking
    the write lock, so it neither waits for writers nor makes them wait. A statement that
    writes in such a session may fail with "database is locked": only for pure reads."""
    await session.connection(execution_options={_READS_ONLY: True})


def _begin_immediate(connection: Any) -> None:
    if connection.get_execution_options().get(_READS_ONLY):
        connection.exec_driver_sql("BEGIN")
        return
    # A deferred transaction that reads and then writes fails at once with "database is
    # locked" when another connection wrote in between; taking the write lock up front makes
    # writers queue (up to busy_timeout) instead. SQLite mode is one process, so the cost of
    # serialising its transactions is small.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An async engine for `url`; for SQLite the folder is created and pragmas set per
    connection, so WAL and foreign keys hold for every session.

    Statement parameters are never put into error messages (`hide_parameters`): they carry
    raw email and notes, and an error's text goes to the log."""
    if is_sqlite(url):
        path = _sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
        event.listen(engine.sync_engine, "begin", _begin_immediate)
        return engine
    # No JIT compiling: it is for long analytic scans, and its planner guesses the index
    # probes of a status read (one correlated subquery a milestone) to be one, so that a
    # board pack's look back spent a second compiling a query that then ran in two.
    return create_async_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args={"server_settings": {"jit": "off"}},
    )


def session_factory(
    engine: AsyncEngine, *, info: dict[str, Any] | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions on `engine`; each starts with a copy of `info` in its `Session.info`."""
    return async_sessionmaker(engine, expire_on_commit=False, info=info)


@dataclass(frozen=True, slots=True)
class Database:
    """An open database: its engine (for the few jobs that need the connection itself, such
    as a SQLite backup) and the sessions every unit of work begins with."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    async def close(self) -> None:
        await self.engine.dispose()


def open_database(url: str, *, info: dict[str, Any] | None = None) -> Database:
    """The one way the application opens its database: an engine for `url`
    (`create_engine`) and its sessions (`session_factory`, each with a copy of `info`)."""
    engine = create_engine(url)
    return Database(engine, session_factory(engine, info=info))


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _upgrade(url: str) -> None:
    command.upgrade(alembic_config(url), "head")


async def migrate(url: str) -> None:
    """Bring the schema at `url` to the latest migration (safe to run again)."""
    if is_sqlite(url):
        path = _sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    # Alembic's env.py runs its own event loop for the async driver: keep it off ours.
    await asyncio.to_thread(_upgrade, url)


# What the layers above name a unit of work by, without importing SQLAlchemy themselves.
Session = AsyncSession
Sessions = async_sessionmaker[AsyncSession]
Engine = AsyncEngine
# A database that is down or refuses the transaction; connection errors of asyncpg are
# OSErrors. Anything else is a bug.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, OSError)


_AFTER_COMMIT = "pulse.after_commit"  # in `Session.info`: callbacks waiting for the commit


def session_info(session: AsyncSession) -> dict[Any, Any]:
    """What the session carries besides its rows: a copy of `session_factory`'s `info`."""
    return session.info


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Call `callback` once `session`'s transaction commits; never if it is rolled back."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


@event.listens_for(SyncSession, "after_commit")
def _run_after_commit(session: SyncSession) -> None:
    for callback in session.info.pop(_AFTER_COMMIT, ()):
        callback()


@event.listens_for(SyncSession, "after_transaction_end")
def _drop_after_commit(session: SyncSession, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the whole transaction ended without a commit
        session.info.pop(_AFTER_COMMIT, None)


def savepoint(session: AsyncSession) -> AsyncSessionTransaction:
    """A savepoint in `session`'s transaction (`async with savepoint(s):`): what fails inside
    is rolled back alone, and the transaction goes on."""
    return session.begin_nested()


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT that can say ON CONFLICT DO NOTHING (or DO UPDATE) on either database."""
    if session.bind.dialect.name == "postgresql":
        return pg_insert(table)
    return sqlite_insert(table)


_UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE
_SQLITE_UNIQUE = frozenset({sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY})


def is_duplicate(error: BaseException) -> bool:
    """Whether `error` is a unique key refusing a row another transaction committed first.

    Only a unique key: any other constraint (a check, a foreign key, a trigger) refusing a
    row is a failure to report, never an answer to count as already recorded."""
    if not isinstance(error, IntegrityError):
        return False
    original = error.orig
    if isinstance(original, sqlite3.Error):
        return getattr(original, "sqlite_errorcode", None) in _SQLITE_UNIQUE
    return getattr(original, "sqlstate", None) == _UNIQUE_VIOLATION
