"""The states and kinds a message in or out can have (RELIABILITY.md, "Decisions"), named
once. The values are what the database stores (`outbox.state`, `outbox.kind`,
`inbound.state`), so they never change; a `StrEnum` compares equal to its stored string.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ANSWER_KINDS",
    "INBOX_PROBLEMS",
    "LEASED",
    "NEEDS_ADMIN",
    "InboundState",
    "OutboxKind",
    "OutboxState",
]


class OutboxState(StrEnum):
    """Where an outbox message is on its way out."""

    PENDING = "pending"  # waiting for its time, or to be tried again
    CLAIMED = "claimed"  # leased by a worker, not handed over: safe to send again
    SENDING = "sending"  # handed over: the far end may have it; reconciled, never resent
    SENT = "sent"
    FAILED = "failed"  # permanently refused: never retried
    NEEDS_REVIEW = "needs_review"  # it may or may not have gone: a person must look
    NOT_SENT = "not_sent"  # settled by an admin as never sent


# A worker holds these under a lease; an admin settles these (`pulse outbox`).
LEASED = (OutboxState.CLAIMED, OutboxState.SENDING)
NEEDS_ADMIN = (OutboxState.FAILED, OutboxState.NEEDS_REVIEW)


class OutboxKind(StrEnum):
    """What an outbox message is for."""

    PROMPT = "prompt"
    REMINDER = "reminder"
    CONFIRMATION = "confirmation"  # what an answer recorded
    REJECTION = "rejection"  # why nothing of an answer was recorded
    NOTICE = "notice"  # to a prompt's person: someone who may not answer it replied
    PAUSED = "paused"  # to a lead over the hourly limit of answers: they pause
    DIGEST = "digest"
    ALERT = "alert"  # to the admin


# Outbox kinds that answer a lead's message (counted for the hourly limit on answers).
ANSWER_KINDS = (OutboxKind.CONFIRMATION, OutboxKind.REJECTION)


class InboundState(StrEnum):
    """What became of an inbound message: `NEW` until it is decided, then its outcome."""

    NEW = "new"
    PROCESSED = "processed"  # an answer, some or all of it recorded
    REJECTED = "rejected"  # nothing recorded; the sender is told why when we may answer
    IGNORED = "ignored"  # our own mail, an out-of-office, a bounce: nothing to answer
    UNPROCESSABLE = "unprocessable"  # could not be read: kept for an admin
    QUARANTINED = "quarantined"  # failed DMARC at our own mail server: kept, not read
    DEFERRED = "deferred"  # its sender is over the hourly limit: decided later


# What `pulse outbox` lists from the inbox for an admin.
INBOX_PROBLEMS = (
    InboundState.UNPROCESSABLE,
    InboundState.QUARANTINED,
    InboundState.REJECTED,
    InboundState.IGNORED,
)
