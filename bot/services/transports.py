"""How an outbox row leaves the building, and how an unknown outcome is settled.

Every transport answers a delivery with one `Outcome`, and a row whose sender vanished
mid-send with a `Reconciled` verdict. A transport that knows the last moment before the far
end can have a message (SMTP: just before the final dot of DATA) `HandsOver`: it asks the
worker then whether the row is still its to send, so a crash or a lost lease before that
moment leaves a row that is simply sent again. Local mode's transport writes each message
as an `.eml` file named after its outbox id, by an atomic rename: writing the same row
twice leaves one file, and reconciling is looking for that file.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol, runtime_checkable

from storage.outbox import OutboxMessage


class Result(StrEnum):
    SENT = "sent"
    RETRY = "retry"  # temporary: try again later
    FAILED = "failed"  # permanent: never retry
    UNKNOWN = "unknown"  # the message may or may not have gone
    LOST = "lost"  # not sent: the row's lease was lost first, its new holder sends it


@dataclass(frozen=True, slots=True)
class Outcome:
    result: Result
    error: str | None = None
    external_id: str | None = None
    retry_after: float | None = None  # seconds, when the far end said so


class Reconciled(StrEnum):
    SENT = "sent"  # it went: record it, send nothing
    NOT_SENT = "not_sent"  # it did not go: send it again
    UNKNOWN = "unknown"  # cannot tell: a person must look (never resend blindly)


class Transport(Protocol):
    # How many deliveries may be recorded together. A transport whose outcomes can be
    # reconciled cheaply and surely (a file that exists or not) records in batches; one
    # whose unknown outcome needs a person (SMTP after DATA) records each at once.
    settle_every: int

    async def deliver(self, message: OutboxMessage) -> Outcome: ...

    async def reconcile(self, message: OutboxMessage) -> Reconciled: ...


# Called at the moment of handing over; True when the row is still ours to send. It
# records the row as handed over, so from then on a lost worker's row needs reconciling.
HandOver = Callable[[], Awaitable[bool]]


@runtime_checkable
class HandsOver(Protocol):
    """A transport that calls `hand_over` itself, at the last moment before the far end
    can have the message; refused, it sends nothing and answers `Result.LOST`."""

    async def deliver_handing_over(
        self, message: OutboxMessage, hand_over: HandOver
    ) -> Outcome: ...


class LocalMailTransport:
    """Local mode: each message becomes `<outbox>/<id>-<kind>.eml`."""

    settle_every = 100

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox

    def path_for(self, message: OutboxMessage) -> Path:
        return self.outbox / f"{message.id:08d}-{message.kind}.eml"

    def _write(self, message: OutboxMessage) -> Path:
        self.outbox.mkdir(parents=True, exist_ok=True)
        raw = str(message.payload["raw"]).encode("ascii", errors="surrogateescape")
        target = self.path_for(message)
        fd, tmp = tempfile.mkstemp(prefix=self._temp_prefix(message), dir=self.outbox)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(raw)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    async def deliver(self, message: OutboxMessage) -> Outcome:
        try:
            target = await asyncio.to_thread(self._write, message)
        except OSError as exc:
            return Outcome(Result.RETRY, f"could not write the message: {exc}")
        return Outcome(Result.SENT, external_id=target.name)

    def _temp_prefix(self, message: OutboxMessage) -> str:
        return f".sending-{message.id:08d}-"

    async def reconcile(self, message: OutboxMessage) -> Reconciled:
        # The rename is the commit point: a half-written temp file of a dead writer is
        # never a message, so it goes; the message itself is there or it is not.
        for leftover in self.outbox.glob(self._temp_prefix(message) + "*"):
            leftover.unlink(missing_ok=True)
        return Reconciled.SENT if self.path_for(message).exists() else Reconciled.NOT_SENT
