"""Automatic mail that names facts we act on: when an out-of-office lead is back, and which
address a delivery report (DSN, RFC 3464) says failed, hard or soft.

Pure functions of text already taken out of the message (`bot.messages.inbound_mail` does the
MIME); "today" is the message's own Date, never the clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

# Month and weekday names in the languages councils' mail systems answer in most: English,
# and the basics of German, French, Dutch, Spanish and Italian.
_MONTHS: Mapping[str, int] = {
    name: number
    for number, names in enumerate(
        (
            "january jan januar janvier januari enero gennaio",
            "february feb februar février fevrier februari febrero febbraio",
            "march mar märz maerz mars maart marzo",
            "april apr avril abril aprile",
            "may mai mei mayo maggio",
            "june jun juni juin junio giugno",
            "july jul juli juillet julio luglio",
            "august aug août aout augustus agosto",
            "september sept sep septembre septiembre settembre",
            "october oct oktober octobre octubre ottobre okt",
            "november nov novembre noviembre",
            "december dec dezember décembre decembre diciembre dicembre dez",
        ),
        start=1,
    )
    for name in names.split()
}
_WEEKDAYS: Mapping[str, int] = {
    name: number
    for number, names in enumerate(
        (
            "monday mon montag lundi maandag lunes lunedì lunedi",
            "tuesday tue tues dienstag mardi dinsdag martes martedì martedi",
            "wednesday wed mittwoch mercredi woensdag miércoles miercoles mercoledì mercoledi",
            "thursday thu thurs donnerstag jeudi donderdag jueves giovedì giovedi",
            "friday fri freitag vendredi vrijdag viernes venerdì venerdi",
            "saturday sat samstag samedi zaterdag sábado sabado sabato",
            "sunday sun sonntag dimanche zondag domingo domenica",
        )
    )
    for name in names.split()
}


def _alternatives(names: Sequence[str]) -> str:
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


_MONTH = rf"(?:{_alternatives(list(_MONTHS))})\.?"
_WEEKDAY = rf"(?:{_alternatives(list(_WEEKDAYS))})\.?"
_ORDINAL = r"(?:st|nd|rd|th|er|e|\.)?"
_DATE = re.compile(
    r"(?:(?P<iy>\d{4})-(?P<im>\d{1,2})-(?P<id>\d{1,2})"
    r"|(?P<nd>\d{1,2})[/.](?P<nm>\d{1,2})(?:[/.](?P<ny>\d{4}|\d{2}))?(?![\d/.]*\d)"
    rf"|(?:(?P<wd1>{_WEEKDAY}),?\s+)?(?:the\s+)?(?P<dd>\d{{1,2}}){_ORDINAL}\s+(?:of\s+|de\s+)?"
    rf"(?P<mon>{_MONTH})(?:,?\s+(?:de\s+)?(?P<yy>\d{{4}}))?"
    rf"|(?:(?P<wd2>{_WEEKDAY}),?\s+)?(?P<mon2>{_MONTH})\s+(?P<dd2>\d{{1,2}}){_ORDINAL}"
    r"(?:,?\s+(?P<yy2>\d{4}))?"
    rf"|(?P<wd>{_WEEKDAY}))(?!\w)",
    re.IGNORECASE,
)
# "back on 15 June" names the first day back; "until 11 June" the last day away.
_BACK = (
    r"back(?:\s+in(?:\s+the)?\s+office)?|returning(?:\s+to\s+(?:the\s+)?office)?|"
    r"(?:will\s+)?return(?:\s+to\s+(?:the\s+)?office)?|in\s+the\s+office\s+(?:again\s+)?from|"
    r"zurück|wieder\s+(?:da|im\s+büro|erreichbar)|de\s+retour|retour|"
    r"terug|weer\s+(?:aanwezig|op\s+kantoor)|de\s+vuelta|regreso|rientro"
)
_UNTIL = (
    r"until|till|til|through|to|bis(?:\s+(?:zum|einschließlich))?|jusqu['’]au|"
    r"tot\s+en\s+met|tot|hasta(?:\s+el)?|fino\s+al"
)
_RETURN = re.compile(
    rf"\b(?:(?P<back>{_BACK})|(?P<until>{_UNTIL}))\b"
    r"(?:\s+(?:on|from|the|am|le|el|op|il|ab|dem|den)){0,2}[\s,:]*",
    re.IGNORECASE,
)
_LONGEST_ABSENCE = timedelta(days=366)


def return_date(text: str, *, today: date) -> date | None:
    """The last day an out-of-office says its writer is away, or None when it names none.

    "back on 15 June", "returning 15/06/2026" and "de retour le 15 juin" name the first
    day back (away until the day before); "until Monday 11 June" names the last day away.
    Dates are day first; a date without a year is its next occurrence from `today`; a bare
    weekday is the next one after `today`. Dates in the past or over a year away are ignored.
    """
    for match in _RETURN.finditer(text):
        written = _DATE.match(text, match.end())
        if written is None:
            continue
        day = _date_of(written, today=today)
        if day is None:
            continue
        last_away = day - timedelta(days=1) if match["back"] else day
        if today <= last_away <= today + _LONGEST_ABSENCE:
            return last_away
    return None


def _date_of(written: re.Match[str], *, today: date) -> date | None:
    if written["iy"]:
        return _safe(int(written["iy"]), int(written["im"]), int(written["id"]))
    if written["nd"]:
        year = written["ny"]
        return _dated(
            int(written["nd"]),
            int(written["nm"]),
            (int(year) + 2000 if len(year) == 2 else int(year)) if year else None,
            today=today,
        )
    if written["mon"] or written["mon2"]:
        month = _MONTHS[(written["mon"] or written["mon2"]).rstrip(".").casefold()]
        day_text = written["dd"] or written["dd2"]
        year = written["yy"] or written["yy2"]
        return _dated(int(day_text), month, int(year) if year else None, today=today)
    weekday = _WEEKDAYS[written["wd"].rstrip(".").casefold()]
    ahead = (weekday - today.weekday()) % 7 or 7
    return today + timedelta(days=ahead)


def _dated(day: int, month: int, year: int | None, *, today: date) -> date | None:
    if year is not None:
        return _safe(year, month, day)
    this_year = _safe(today.year, month, day)
    if this_year is not None and this_year >= today:
        return this_year
    return _safe(today.year + 1, month, day)


def _safe(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Bounce:
    """One address a delivery report says could not be reached."""

    address: str
    hard: bool  # 5.x.x: permanent; 4.x.x or "delayed": it may still arrive
    status: str


_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"\b([45])\d\d\b")
_ADDRESS = re.compile(r"[^\s<>;\"']+@[^\s<>;\"']+")


def classify_bounces(
    recipients: Sequence[Mapping[str, str]], *, sent_to: str | None = None
) -> tuple[Bounce, ...]:
    """The failed addresses of a DSN's per-recipient fields (lower-case field names).

    A recipient whose Action is delivered/relayed/expanded is no failure. The status comes
    from `Status`, else from the diagnostic code. The address is the one we sent to: the
    VERP-decoded or original message's recipient (`sent_to`) when the report has one failed
    recipient (its Final-Recipient may be a forwarding target), else Original-Recipient,
    else Final-Recipient.
    """
    found: list[Bounce] = []
    for fields in recipients:
        action = fields.get("action", "").strip().lower()
        if action in ("delivered", "relayed", "expanded"):
            continue
        status = _status(fields)
        if status is None:
            continue
        address = _address(fields.get("original-recipient", "")) or _address(
            fields.get("final-recipient", "")
        )
        hard = status.startswith("5") and action != "delayed"
        found.append(Bounce(address or "", hard, status))
    if sent_to and len(found) == 1:
        found = [Bounce(sent_to.lower(), found[0].hard, found[0].status)]
    return tuple(b for b in found if b.address)


def _status(fields: Mapping[str, str]) -> str | None:
    status = _STATUS.search(fields.get("status", ""))
    diagnostic = fields.get("diagnostic-code", "")
    if status is not None:
        code = status.group(0)
        detailed = _STATUS.search(diagnostic)
        # "5.0.0" says little; a diagnostic of the same class may say "5.1.1".
        if code.endswith(".0.0") and detailed and detailed.group(1) == status.group(1):
            return detailed.group(0)
        return code
    detailed = _STATUS.search(diagnostic)
    if detailed is not None:
        return detailed.group(0)
    smtp = _SMTP_CODE.search(diagnostic)
    return f"{smtp.group(1)}.0.0" if smtp else None


def _address(field: str) -> str | None:
    """The address of an `rfc822; someone@example.org` field."""
    found = _ADDRESS.search(field.partition(";")[2] or field)
    return found.group(0).strip(".").lower() if found else None


def verp_recipient(address: str, *, own_address: str) -> str | None:
    """The recipient a VERP return address encodes: `pulse+dana=council.example@ours`."""
    own_local, _, own_domain = own_address.lower().partition("@")
    local, _, domain = address.strip().strip("<>").lower().partition("@")
    if domain != own_domain or not local.startswith(own_local + "+"):
        return None
    encoded = local[len(own_local) + 1 :]
    user, sep, host = encoded.rpartition("=")
    return f"{user}@{host}" if sep and user and "." in host else None
