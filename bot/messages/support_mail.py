"""The email telling a network's coordinators of new support asks, the same day (issue 14):
plain text, one line per ask, marked auto-generated so auto-responders leave it alone."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import TYPE_CHECKING

from bot.messages.emails import OutboundEmail, header_value, mail_domain

if TYPE_CHECKING:
    from storage.support_asks import SupportAsk

_CONTROL = dict.fromkeys([*range(0, 9), 11, 12, *range(14, 32), 127])


def _flat(text: str) -> str:
    """One line of what a lead wrote: no control characters, no line breaks."""
    return " ".join(text.translate(_CONTROL).split())


def support_asks_email(
    *,
    to_address: str,
    network_name: str,
    plan_title: str,
    asks: Sequence[SupportAsk],
    mail_from: str,
    now: datetime,
) -> OutboundEmail:
    message = EmailMessage(policy=SMTP)
    many = "s" if len(asks) != 1 else ""
    subject = header_value(f"{network_name}: {len(asks)} new request{many} for support")
    message["From"] = header_value(mail_from)
    message["To"] = header_value(to_address)
    message["Subject"] = subject
    message["Date"] = format_datetime(now)
    msg_id = f"<pp.support.{secrets.token_hex(8)}@{mail_domain(mail_from)}>"
    message["Message-ID"] = msg_id
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    lines = [
        f"New requests for support in {_flat(plan_title)}, for {_flat(network_name)}:",
        "",
    ]
    for ask in asks:
        who = _flat(ask.person) if ask.person else "no lead named"
        when = f"{ask.given_at:%d/%m/%Y %H:%M} UTC"
        lines.append(f"- {_flat(ask.ref)} {_flat(ask.title)} ({who}, {when})")
        if ask.note:
            lines.append(f"  {_flat(ask.note)}")
        if ask.revised_due:
            lines.append(f"  revised date {ask.revised_due:%d/%m/%Y}")
    lines += [
        "",
        "These are sent at most once an hour, as leads ask; the weekly digest lists every "
        "milestone that needs support, and your digest email links to the live view.",
        "",
        "-- ",
        "Plan Pulse",
    ]
    message.set_content("\n".join(lines) + "\n")
    return OutboundEmail(msg_id, subject, to_address, message.as_bytes())
