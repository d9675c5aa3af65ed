"""How an outbox row leaves the building, and how an unknown outcome is settled.

Every transport answers a delivery with one `DeliveryOutcome`, and a row whose sender vanished
mid-send with a `Reconciled` verdict. A transport that knows the last moment before the far
end can have a message (SMTP: just before the final dot of DATA) `HandsOver`: it asks the
worker then whether the row is still its to send, so a crash or a lost lease before that
moment leaves a row that is simply sent again. The transports themselves are channels
(handlers/): SMTP, Slack, and local mode's `.eml` files.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from storage.outbox import OutboxMessage


class Result(StrEnum):
    SENT = "sent"
    RETRY = "retry"  # temporary: try again later
    FAILED = "failed"  # permanent: never retry
    UNKNOWN = "unknown"  # the message may or may not have gone
    LOST = "lost"  # not sent: the row's lease was lost first, its new holder sends it


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
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

    async def deliver(self, message: OutboxMessage) -> DeliveryOutcome: ...

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
    ) -> DeliveryOutcome: ...
