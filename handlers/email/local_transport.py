"""Local mode's transport: each outbox message becomes an `.eml` file named after its outbox
id, written by an atomic rename, so writing the same row twice leaves one file, and
reconciling is looking for that file."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from bot.services.transports import DeliveryOutcome, Reconciled, Result
from storage.outbox import OutboxMessage


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

    async def deliver(self, message: OutboxMessage) -> DeliveryOutcome:
        try:
            target = await asyncio.to_thread(self._write, message)
        except OSError as exc:
            return DeliveryOutcome(Result.RETRY, f"could not write the message: {exc}")
        return DeliveryOutcome(Result.SENT, external_id=target.name)

    def _temp_prefix(self, message: OutboxMessage) -> str:
        return f".sending-{message.id:08d}-"

    async def reconcile(self, message: OutboxMessage) -> Reconciled:
        # The rename is the commit point: a half-written temp file of a dead writer is
        # never a message, so it goes; the message itself is there or it is not.
        for leftover in self.outbox.glob(self._temp_prefix(message) + "*"):
            leftover.unlink(missing_ok=True)
        return Reconciled.SENT if self.path_for(message).exists() else Reconciled.NOT_SENT
