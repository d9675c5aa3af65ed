"""The coordinators' live view's pages (issue 14), at `/v/{token}`: the network's digest
content for a chosen day, filtered by priority, lead and status through a plain GET form;
each milestone's history with a form to record an answer on a lead's behalf and buttons to
withdraw a mis-recorded one (POSTs with the link's CSRF token); the rating mix per priority
and its trend as SVG charts drawn here, each with a data table beside it; and the filtered
content as CSV or XLSX. What it shows and may do is decided in `bot/services/live_view.py`.

Everything works without JavaScript, and the server's middleware adds the same security
headers as on the update page (no script at all, `no-store`). User text reaches the page
only through Jinja's autoescaping; in a CSV or XLSX download a cell that a spreadsheet would
take for a formula (`=`, `+`, `-`, `@`) is prefixed with an apostrophe.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from aiohttp import web

from bot.domain.ratings import DEFAULT_LABELS
from bot.domain.replies import EVIDENCE_QUESTION, NOTE_LIMIT, ReplyLine
from bot.domain.timescales import parse_day
from bot.messages.web_forms import DATE_HINT, EVIDENCE_HINT_SENTENCE
from bot.messages.web_links import csrf_token, csrf_valid, well_formed
from bot.services.live_view import Filters, LiveView, LiveViews, view_hash
from bot.signing import Signer
from digests.content import MIX_KEYS, SECTION_TITLES, DigestSection
from digests.html import MIX_COLOURS
from digests.markdown import NO_EVIDENCE_FACT, legend_label

Render = Callable[..., web.Response]
Refuse = Callable[[web.Request], web.Response]

COLUMNS = (
    "Section",
    "Reference",
    "Milestone",
    "Priority",
    "Leads",
    "Due",
    "Days overdue",
    "Rating",
    "Note",
    "Updated",
    "Revised date",
    "Needs support",
    "Reasons",
    "Evidence",
)
CHART_WIDTH = 640
LABEL_WIDTH = 200
BAR_HEIGHT = 24
GAP = 10


@dataclass(frozen=True, slots=True)
class Segment:
    x: float
    width: float
    colour: str
    label: str
    count: int


@dataclass(frozen=True, slots=True)
class Bar:
    y: int
    label: str
    total: int
    counts: tuple[int, ...]  # in `MIX_KEYS` order
    segments: tuple[Segment, ...]


def bars(rows: Sequence[tuple[str, Sequence[int]]]) -> tuple[list[Bar], int]:
    """Stacked horizontal bars, one per row, each the full width (shares of the row's
    milestones), with the chart's height."""
    span = CHART_WIDTH - LABEL_WIDTH
    drawn: list[Bar] = []
    for n, (label, counts) in enumerate(rows):
        total = sum(counts)
        x = float(LABEL_WIDTH)
        segments = []
        for key, count in zip(MIX_KEYS, counts, strict=True):
            if not count:
                continue
            width = span * count / total
            segments.append(Segment(x, width, MIX_COLOURS[key], legend_label(key), count))
            x += width
        y = GAP + n * (BAR_HEIGHT + GAP)
        drawn.append(Bar(y, label, total, tuple(counts), tuple(segments)))
    return drawn, GAP + len(rows) * (BAR_HEIGHT + GAP)


def read_filters(
    query: Mapping[str, str], view_priorities: Sequence[int] = ()
) -> tuple[Filters, dict[str, str]]:
    """The filters a GET form gives, and an error per field it could not read."""
    errors: dict[str, str] = {}
    as_of: date | None = None
    text = query.get("as_of", "").strip()
    if text:
        as_of = parse_day(text)
        if as_of is None:
            errors["as-of"] = f"Enter the day as a date. {DATE_HINT}"
    priority: int | None = None
    text = query.get("priority", "").strip()
    if text:
        if text.isdigit() and (not view_priorities or int(text) in view_priorities):
            priority = int(text)
        else:
            errors["priority"] = "Choose one of the priorities listed"
    status: DigestSection | None = None
    text = query.get("status", "").strip()
    if text:
        try:
            status = DigestSection(text)
        except ValueError:
            errors["status"] = "Choose one of the statuses listed"
    lead = query.get("lead", "").strip() or None
    return Filters(as_of, priority, lead, status), errors


def _cell(value: Any) -> Any:
    """A value as a spreadsheet cell; text a spreadsheet would run as a formula is quoted."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def table_rows(view: LiveView) -> list[list[Any]]:
    """The filtered content, one row per milestone shown, in `COLUMNS` order."""
    out: list[list[Any]] = []
    for section, item in view.rows:
        out.append(
            [
                _cell(value)
                for value in (
                    SECTION_TITLES[section],
                    item.ref,
                    item.title,
                    view.digest.priority_title(item.priority),
                    view.lead_names(item),
                    item.due,
                    item.days_overdue or None,
                    item.rating,
                    item.note or "",
                    item.updated,
                    item.revised_due,
                    "yes" if item.needs_support else "",
                    ", ".join(r.replace("_", " ") for r in item.reasons),
                    item.evidence or "",
                )
            ]
        )
    return out


def as_csv(view: LiveView) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in table_rows(view):
        writer.writerow(
            ["" if v is None else v.isoformat() if isinstance(v, date) else v for v in row]
        )
    return ("\ufeff" + out.getvalue()).encode("utf-8")  # a BOM: Excel reads it as UTF-8


def as_xlsx(view: LiveView) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Live view"
    sheet.append(list(COLUMNS))
    for row in table_rows(view):
        sheet.append(row)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for column in ("F", "J", "K"):
        for cell in sheet[column][1:]:
            cell.number_format = "dd/mm/yyyy"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _filename(view: LiveView, suffix: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in view.access.network_key)
    return f"{safe}-{view.digest.as_of.isoformat()}.{suffix}"


def live_routes(
    views: LiveViews, *, signer: Signer, render: Render, refuse: Refuse
) -> list[web.RouteDef]:
    """The live view's routes; `refuse` answers an unknown, expired or revoked link (and
    slows down a client that keeps trying)."""

    def digest_of(request: web.Request) -> str | None:
        token = request.match_info.get("token", "")
        return view_hash(token, signer) if well_formed(token) else None

    async def access_of(request: web.Request) -> Any:
        digest = digest_of(request)
        return await views.open(digest) if digest is not None else None

    def query_of(request: web.Request) -> dict[str, str]:
        return {k: v for k, v in request.query.items() if isinstance(v, str)}

    async def page(request: web.Request) -> web.StreamResponse:
        access = await access_of(request)
        if access is None:
            return refuse(request)
        query = query_of(request)
        filters, errors = read_filters(query)
        view = await views.view(access, Filters() if errors else filters)
        mix, mix_height = bars(view.mix_rows())
        trend, trend_height = bars(view.trend_rows())
        title = f"{view.digest.network_name}: {view.plan_title}"
        return render(
            "live.html.j2",
            status=400 if errors else 200,
            title=("Error: " if errors else "") + f"Live view – {title}",
            heading=title,
            root="../",
            token=request.match_info["token"],
            view=view,
            query=query,
            errors=errors,
            sections=SECTION_TITLES,
            labels=DEFAULT_LABELS,
            mix_keys=MIX_KEYS,
            legend=[(legend_label(k), MIX_COLOURS[k]) for k in MIX_KEYS],
            mix=mix,
            mix_height=mix_height,
            trend=trend,
            trend_height=trend_height,
            chart_width=CHART_WIDTH,
            label_width=LABEL_WIDTH,
            bar_height=BAR_HEIGHT,
            date_hint=DATE_HINT,
            no_evidence=NO_EVIDENCE_FACT,
        )

    async def download(request: web.Request) -> web.StreamResponse:
        access = await access_of(request)
        if access is None:
            return refuse(request)
        filters, errors = read_filters(query_of(request))
        if errors:
            return render("refused.html.j2", status=400, title="Those filters could not be read")
        view = await views.view(access, filters)
        kind = request.match_info["kind"]
        if kind == "csv":
            body, content_type = as_csv(view), "text/csv"
        else:
            body = as_xlsx(view)
            content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        return web.Response(
            body=body,
            content_type=content_type,
            headers={
                "Content-Disposition": f'attachment; filename="{_filename(view, kind)}"',
                "Cache-Control": "no-store",
            },
        )

    def history_page(
        request: web.Request,
        history: Any,
        access: Any,
        digest: str,
        *,
        status: int = 200,
        message: str = "",
        error: str = "",
        error_at: str = "",
        values: Mapping[str, str] | None = None,
    ) -> web.Response:
        return render(
            "history.html.j2",
            status=status,
            title=("Error: " if error else "") + f"History of {history.ref}",
            root="../../../",
            token=request.match_info["token"],
            submission_id=secrets.token_urlsafe(16),
            history=history,
            access=access,
            labels=DEFAULT_LABELS,
            csrf=csrf_token(digest, signer),
            message=message,
            error=error,
            error_at=error_at,
            values=values or {},
            date_hint=DATE_HINT,
            evidence_question=EVIDENCE_QUESTION,
            evidence_hint=EVIDENCE_HINT_SENTENCE,
        )

    async def history(request: web.Request) -> web.StreamResponse:
        access = await access_of(request)
        if access is None:
            return refuse(request)
        found = await views.history(access, request.match_info["ref"])
        if found is None:
            raise web.HTTPNotFound(text="No such milestone in this view")
        return history_page(request, found, access, digest_of(request) or "")

    async def answer(request: web.Request) -> web.StreamResponse:
        digest = digest_of(request)
        access = await views.open(digest) if digest is not None else None
        if access is None or digest is None:
            return refuse(request)
        try:
            form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        except ValueError:
            return render("refused.html.j2", status=400, title="This form could not be read")
        if not csrf_valid(digest, form.get("csrf", ""), signer):
            return render("refused.html.j2", status=403, title="This form could not be accepted")
        ref = request.match_info["ref"]
        found = await views.history(access, ref)
        if found is None:
            raise web.HTTPNotFound(text="No such milestone in this view")
        if form.get("form") == "withdraw":
            update_id = form.get("answer", "")
            why = (
                await views.withdraw(access, ref, int(update_id))
                if update_id.isdigit()
                else "choose an answer to withdraw"
            )
            found = await views.history(access, ref) or found
            if why is not None:
                return history_page(request, found, access, digest, status=400, error=why)
            return history_page(request, found, access, digest, message="The answer was withdrawn.")
        line, error = _read_answer(form, ref)
        lead = form.get("lead", "")
        if line is None:
            return history_page(
                request, found, access, digest, status=400, error=error, values=form
            )
        result = await views.record(
            access, line, for_person=lead, submission=form.get("submission", "")[:64]
        )
        found = await views.history(access, ref) or found
        if result.line is None:
            reason = result.reason[:1].upper() + result.reason[1:]
            at = "evidence" if result.about_evidence else ""
            return history_page(
                request, found, access, digest, status=400, error=reason, error_at=at, values=form
            )
        name = found.names.get(lead, lead)
        return history_page(
            request,
            found,
            access,
            digest,
            message=f"Recorded for {name}." if result.recorded else "Already recorded.",
        )

    return [
        web.get("/v/{token}", page),
        web.get("/v/{token}/download.{kind:csv|xlsx}", download),
        web.get("/v/{token}/m/{ref}", history),
        web.post("/v/{token}/m/{ref}", answer),
    ]


def _read_answer(form: Mapping[str, str], ref: str) -> tuple[ReplyLine | None, str]:
    """The answer the on-behalf form gives, or why it cannot be read."""
    rating_text = form.get("rating", "").strip()
    if rating_text not in ("1", "2", "3", "4"):
        return None, "Choose a rating from 1 to 4"
    revised = None
    revised_text = form.get("revised", "").strip()
    if revised_text:
        revised = parse_day(revised_text)
        if revised is None:
            return None, f"Enter the revised date as a date. {DATE_HINT}"
    if not form.get("lead", "").strip():
        return None, "Choose whom the answer is for"
    note = " ".join(form.get("note", "").split()) or None
    evidence = " ".join(form.get("evidence", "").split()) or None
    if evidence is not None and len(evidence) > NOTE_LIMIT:
        return None, (
            f"What changed for children and families must be {NOTE_LIMIT} characters or "
            "fewer: give a link to the evidence instead"
        )
    return (
        ReplyLine(
            ref=ref,
            rating=int(rating_text),
            note=note,
            revised_due=revised,
            needs_support=form.get("support") == "on",
            line_no=1,
            evidence=evidence,
        ),
        "",
    )


__all__ = ["as_csv", "as_xlsx", "bars", "live_routes", "read_filters", "table_rows"]
