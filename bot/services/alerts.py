"""Alerts for the admin, emailed to ADMIN_EMAIL through the outbox besides the log line:
a lead's address that reached the bounce limit, a Slack bot token Slack refused, and a
message whose delivery needs review. At most one email per kind of alert an hour (the log
keeps every occurrence); queued in the transaction of what raised it."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from enum import StrEnum

from bot.messages.alert_mail import alert_email
from storage.alerts import alert_since, queue_alert
from storage.db import Session

log = logging.getLogger(__name__)

EVERY = timedelta(hours=1)


class AlertKind(StrEnum):
    BOUNCE_LIMIT = "bounce_limit"
    SLACK_TOKEN = "slack_token"
    NEEDS_REVIEW = "needs_review"


SUBJECTS = {
    AlertKind.BOUNCE_LIMIT: "a lead's email address keeps bouncing",
    AlertKind.SLACK_TOKEN: "Slack refused the bot token",
    AlertKind.NEEDS_REVIEW: "a message needs review",
}


class AdminAlerts:
    """Emails alerts to `admin_email`; does nothing without one."""

    def __init__(self, admin_email: str | None, *, mail_from: str) -> None:
        self.admin_email = (admin_email or "").strip() or None
        self.mail_from = mail_from

    async def alert(self, session: Session, kind: AlertKind, text: str, *, now: datetime) -> bool:
        """Queue the alert email in `session`'s transaction, unless one of this kind was
        queued in the last hour; True when it was queued."""
        if self.admin_email is None or await alert_since(session, kind, since=now - EVERY):
            return False
        email = alert_email(
            to_address=self.admin_email,
            subject=SUBJECTS[kind],
            text=text,
            mail_from=self.mail_from,
            now=now,
        )
        queued = await queue_alert(
            session,
            kind=kind,
            recipient=self.admin_email,
            payload=email.payload(),
            message_id=email.message_id,
            now=now,
        )
        if queued:
            log.info("alert %s emailed to the admin", kind.value)
        return queued
