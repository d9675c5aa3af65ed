"""Group commit: concurrent units of work recorded together in one transaction.

A burst of Slack clicks is many tiny transactions, each paying for its own reads, its own
commit and (on SQLite) its turn at the single write lock. `GroupCommit` queues them instead:
one task at a time takes every request waiting, runs them as one batch in one transaction
(`run_batch` reads what all of them need at once and writes them together), commits, and only
then answers each request. So each caller still learns of its outcome only after the commit
that holds its write, and a burst costs a few transactions instead of one per click.

Outcomes, per request:
- `run_batch` gives each request its result, or an exception of its own (a refusal), which
  that caller alone gets raised;
- a batch that fails (the database is down, the commit is refused) fails every request in
  it with the same exception: nobody is told their answer was saved when it was not;
- a duplicate (`is_duplicate`: another process committed the same external id meanwhile) fails
  only the batch's attempt: each request is then run again alone, so one duplicate does not
  spoil the others, and the duplicate itself gets the IntegrityError as before batching.

No task outlives the queue: the first request finding no batch under way starts a task that
drains the queue and ends when it is empty. One writer at a time suits SQLite, which has one
write lock anyway; on PostgreSQL two or more measured no faster (each batch's reads are
mostly our own CPU), and one keeps a burst's clicks in fewer, larger batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from storage.db import Session, is_duplicate

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Res = TypeVar("Res")

Sessions = Callable[[], Session]
# The batch's work: one result or exception per request, in order, in the given session's
# transaction (never committed by it).
RunBatch = Callable[[Session, Sequence[Req]], Awaitable[Sequence[Res | Exception]]]


class GroupCommit(Generic[Req, Res]):
    """Requests submitted concurrently, run and committed together; see the module."""

    def __init__(
        self,
        sessions: Sessions,
        run_batch: RunBatch[Req, Res],
        *,
        lock: contextlib.AbstractAsyncContextManager[object] | None = None,
        max_batch: int = 200,
    ) -> None:
        self._sessions = sessions
        self._run_batch = run_batch
        self._lock = lock if lock is not None else contextlib.nullcontext()
        self._max_batch = max_batch
        self._queue: list[tuple[Req, asyncio.Future[Res]]] = []
        self._draining = False  # cleared by `_drain` itself: a done callback would come late
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, request: Req) -> Res:
        """Run `request` in the next batch; its result once that batch is committed."""
        future: asyncio.Future[Res] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        if not self._draining:
            self._draining = True
            drainer = asyncio.get_running_loop().create_task(self._drain())
            self._tasks.add(drainer)
            drainer.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[Req, asyncio.Future[Res]]] = []
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._commit(batch)
        except BaseException:
            # Cancelled (the loop is closing): nobody waits for an answer that cannot come.
            _fail(batch + self._queue, RuntimeError("the writer stopped"))
            self._queue.clear()
            raise
        finally:
            # No await between finding the queue empty and this: a request queued after it
            # starts a drain of its own.
            self._draining = False

    async def _commit(self, batch: list[tuple[Req, asyncio.Future[Res]]]) -> None:
        try:
            results = await self._transaction([request for request, _ in batch])
        except Exception as failed:
            if not is_duplicate(failed):  # every request in the batch shares the failure
                log.warning("group commit of %d failed: %r", len(batch), failed)
                _fail(batch, failed)
                return
            duplicate = failed
            if len(batch) == 1:
                _fail(batch, duplicate)
                return
            log.info("group commit of %d met a duplicate: recording each alone", len(batch))
            for one in batch:
                await self._commit([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # its caller went away; the write stands
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _transaction(self, requests: list[Req]) -> Sequence[Res | Exception]:
        async with self._lock, self._sessions() as session, session.begin():
            results = await self._run_batch(session, requests)
        if len(results) != len(requests):
            raise RuntimeError("a batch must give one result per request")
        return results


def _fail(batch: Sequence[tuple[Req, asyncio.Future[Res]]], failure: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(failure)
