"""The email an admin gets when Plan Pulse needs a person to act (ADMIN_EMAIL): plain text,
marked auto-generated so auto-responders leave it alone."""

from __future__ import annotations

import secrets
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from bot.messages.emails import OutboundEmail, header_value, mail_domain


def alert_email(
    *, to_address: str, subject: str, text: str, mail_from: str, now: datetime
) -> OutboundEmail:
    message = EmailMessage(policy=SMTP)
    subject = header_value(f"Plan Pulse alert: {subject}")
    message["From"] = header_value(mail_from)
    message["To"] = header_value(to_address)
    message["Subject"] = subject
    message["Date"] = format_datetime(now)
    msg_id = f"<pp.alert.{secrets.token_hex(8)}@{mail_domain(mail_from)}>"
    message["Message-ID"] = msg_id
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message.set_content(
        f"{text}\n\nAlerts of this kind are emailed at most once an hour; the log has each "
        "occurrence, and `pulse outbox` lists messages that failed or need review.\n\n"
        "-- \nPlan Pulse\n"
    )
    return OutboundEmail(msg_id, subject, to_address, message.as_bytes())
