"""New "I need support" asks reach the network's coordinators the same day (issue 14), not
only in Friday's digest: a scheduled job, run with each tick, that emails each coordinator
of a network the asks recorded since the network's last such email — at most one email an
hour per network, through the outbox, in the transaction that moves the network's
watermark (`support:<network id>` per plan), so replicas and restarts send each once."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.messages.support_mail import support_asks_email
from storage.db import Sessions
from storage.outbox import NewMessage, OutboxRepository
from storage.support_asks import notice_targets, support_asks
from storage.watermarks import WatermarkRepository

log = logging.getLogger(__name__)

EVERY = timedelta(hours=1)
# With no email sent yet to a network, asks of the last day are new.
FIRST_LOOK_BACK = timedelta(days=1)


def job_name(network_id: int) -> str:
    return f"support:{network_id}"


@dataclass(frozen=True, slots=True)
class Noticed:
    plan_id: int
    network_id: int
    asks: int
    emails: int


class SupportNotices:
    def __init__(self, sessions: Sessions, *, mail_from: str) -> None:
        self.sessions = sessions
        self.mail_from = mail_from

    async def tick(self, now: datetime) -> list[Noticed]:
        """Email each network's coordinators its new asks, where an hour has passed since
        the network's last such email."""
        async with self.sessions() as session:
            targets = await notice_targets(session)
        sent: list[Noticed] = []
        for target in targets:
            async with self.sessions() as session, session.begin():
                marks = WatermarkRepository(session)
                last = await marks.get(target.plan_id, job_name(target.network_id))
                if last is not None and now - last < EVERY:
                    continue
                after = last if last is not None else now - FIRST_LOOK_BACK
                asks = await support_asks(session, target, after=after, until=now)
                if not asks:
                    continue
                messages = []
                for address in target.coordinators:
                    email = support_asks_email(
                        to_address=address,
                        network_name=target.network_name,
                        plan_title=target.plan_title,
                        asks=asks,
                        mail_from=self.mail_from,
                        now=now,
                    )
                    messages.append(
                        NewMessage(
                            dedupe_key=(
                                f"support:{target.plan_id}:{target.network_id}:"
                                f"{now:%Y%m%d%H}:{address.lower()}"
                            )[:200],
                            kind="support",
                            channel="email",
                            recipient=address,
                            payload=email.payload(),
                            message_id=email.message_id,
                        )
                    )
                await OutboxRepository(session).enqueue_many(messages, now=now)
                await marks.advance(target.plan_id, job_name(target.network_id), now)
            log.info(
                "support asks: %d new for network %d of plan %d, %d emails",
                len(asks),
                target.network_id,
                target.plan_id,
                len(messages),
            )
            sent.append(Noticed(target.plan_id, target.network_id, len(asks), len(messages)))
        return sent
