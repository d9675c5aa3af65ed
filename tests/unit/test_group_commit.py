"""Group commit (`bot/services/group_commit.py`) with a hand-written fake session: concurrent
requests share one transaction, each caller hears its own outcome only after the commit, and
a failed commit fails everyone in the batch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import Any, cast

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.group_commit import GroupCommit


class FakeDatabase:
    """Commits transactions as lists of what they wrote. A transaction writing an item
    starting "dup" with others clashes on a unique key; `commit_errors` fail commits."""

    def __init__(self) -> None:
        self.committed: list[list[str]] = []
        self.commit_errors: list[Exception] = []  # used up one per commit

    def session(self) -> AsyncSession:
        return cast(AsyncSession, FakeSession(self))


class FakeSession:
    def __init__(self, db: FakeDatabase) -> None:
        self.db = db
        self.written: list[str] = []

    async def __aenter__(self) -> FakeSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def begin(self) -> Transaction:
        return Transaction(self)

    def add(self, item: str) -> None:
        self.written.append(item)


class Transaction:
    def __init__(self, session: FakeSession) -> None:
        self.session = session

    async def __aenter__(self) -> Transaction:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is not None:
            return  # rolled back
        db, written = self.session.db, self.session.written
        if db.commit_errors:
            raise db.commit_errors.pop(0)
        if len(written) > 1 and any(item.startswith("dup") for item in written):
            raise IntegrityError("INSERT", {}, UniqueViolation("duplicate key"))
        db.committed.append(list(written))


class UniqueViolation(Exception):
    """What PostgreSQL's driver raises for a unique key (SQLSTATE 23505)."""

    sqlstate = "23505"


async def write_all(session: AsyncSession, items: Sequence[str]) -> list[str | Exception]:
    """Writes each item; an item starting "no" is refused (its caller alone is told)."""
    results: list[str | Exception] = []
    for item in items:
        if item.startswith("no"):
            results.append(ValueError(f"refused {item}"))
            continue
        cast(Any, session).add(item)
        results.append(f"saved {item}")
    return results


async def test_concurrent_requests_are_committed_together_and_each_gets_its_result() -> None:
    """Requests submitted at once are written in one transaction, and each caller gets its
    own result, or its own refusal, once it is committed."""
    db = FakeDatabase()
    writer = GroupCommit(db.session, write_all)
    results = await asyncio.gather(
        *(writer.submit(item) for item in ["a", "b", "no-c", "d"]), return_exceptions=True
    )
    assert results[:2] == ["saved a", "saved b"]
    assert isinstance(results[2], ValueError)
    assert results[3] == "saved d"
    assert db.committed == [["a", "b", "d"]]


async def test_a_failed_commit_fails_every_request_in_the_batch() -> None:
    """When the shared commit fails, every caller in the batch gets the failure: none is
    told its write was saved."""
    db = FakeDatabase()
    db.commit_errors.append(OperationalError("COMMIT", {}, Exception("disk I/O error")))
    writer = GroupCommit(db.session, write_all)
    results = await asyncio.gather(
        *(writer.submit(item) for item in ["a", "b", "c"]), return_exceptions=True
    )
    assert all(isinstance(r, OperationalError) for r in results)
    assert db.committed == []
    assert await writer.submit("e") == "saved e"  # and the writer carries on


async def test_a_duplicate_in_a_batch_records_the_others_one_by_one() -> None:
    """A unique-key clash (another process committed the same key) spoils only its own
    request: the batch is recorded again one request per transaction."""
    db = FakeDatabase()
    writer = GroupCommit(db.session, write_all)
    results = await asyncio.gather(
        *(writer.submit(item) for item in ["a", "dup", "b"]), return_exceptions=True
    )
    assert results[0] == "saved a"
    assert results[2] == "saved b"
    assert results[1] == "saved dup"  # alone, it is no clash in this fake
    assert db.committed == [["a"], ["dup"], ["b"]]


async def test_requests_arriving_during_a_commit_form_the_next_batch() -> None:
    """While one batch is being written, new requests wait and go together in the next."""
    db = FakeDatabase()
    gate = asyncio.Event()

    async def slow(session: AsyncSession, items: Sequence[str]) -> list[str | Exception]:
        if items == ["first"]:
            await gate.wait()
        return await write_all(session, items)

    writer = GroupCommit(db.session, slow)
    first = asyncio.ensure_future(writer.submit("first"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    later = [asyncio.ensure_future(writer.submit(item)) for item in ["x", "y"]]
    await asyncio.sleep(0)
    gate.set()
    assert await first == "saved first"
    assert await asyncio.gather(*later) == ["saved x", "saved y"]
    assert db.committed == [["first"], ["x", "y"]]


async def test_a_request_after_the_queue_drained_is_still_written() -> None:
    """A request submitted just as a drain finishes is not left waiting."""
    db = FakeDatabase()
    writer = GroupCommit(db.session, write_all)
    for n in range(5):
        assert await writer.submit(str(n)) == f"saved {n}"
    assert [item for batch in db.committed for item in batch] == ["0", "1", "2", "3", "4"]
