"""A board pack as a web page (`pulse pack --format html`): one self-contained HTML
document that reflows down to a phone's width, prints cleanly on A4, and reads in a screen
reader in the plan's order (headings for each part and priority, tables with headers).

Every piece of user text goes through Jinja's autoescaping; the only markup is the
template's own (`digests/templates/pack.html.j2`).
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from digests.content import MIX_KEYS
from digests.html import MIX_COLOURS
from digests.markdown import legend_label
from digests.pack import CHANGE_TITLES, Change, Exception_, Pack, PackLine, long_date

_ENVIRONMENT = Environment(
    loader=PackageLoader("digests", "templates"),
    autoescape=select_autoescape(["html.j2"]),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)

EXCEPTION_TITLES = {
    Exception_.LATE: "Rated 3 or 4 and past their timescale",
    Exception_.WORSENING: "Worsening",
}


def pack_title(pack: Pack) -> str:
    scope = f" — {pack.network_name}" if pack.network_name else ""
    return f"{pack.plan_title}{scope}: board pack"


def period_line(pack: Pack) -> str:
    return f"Since {long_date(pack.since)}, as of {long_date(pack.as_of)}"


def rate_text(answered: int, prompted: int) -> str:
    if not prompted:
        return "not asked"
    return f"{round(100 * answered / prompted)}% ({answered} of {prompted})"


def mix_summary(mix: dict[str, int] | Any) -> str:
    """The mix in words, for a chart's text alternative."""
    parts = [f"{mix.get(k, 0)} {legend_label(k)}" for k in MIX_KEYS if mix.get(k, 0)]
    return ", ".join(parts) or "no milestones"


def trend_alt(pack: Pack, number: int) -> str:
    """What the trend chart of one priority shows, in words."""
    points = pack.mix.get(number) or ()
    if not points:
        return f"{pack.priority_title(number)}: no milestones."
    first, last = points[0], points[-1]
    return (
        f"Rating mix of {pack.priority_title(number)} on {len(points)} days: on "
        f"{long_date(pack.trend_days[0])}, {mix_summary(first)}; on "
        f"{long_date(pack.trend_days[-1])}, {mix_summary(last)}."
    )


def _lines(lines: tuple[PackLine, ...]) -> list[dict[str, Any]]:
    return [
        {
            "ref": line.ref,
            "title": line.title,
            "action": f"{line.action_ref} {line.action_title}",
            "aim": line.aim or "",
            "leads": ", ".join(line.leads) or "no lead",
            "due": long_date(line.due) if line.due else "no date",
            "detail": line.detail,
        }
        for line in lines
    ]


def _grouped(pack: Pack, lines: tuple[PackLine, ...]) -> list[dict[str, Any]]:
    return [
        {"title": f"{n} {pack.priority_title(n)}", "lines": _lines(group)}
        for n, group in pack.by_priority(lines)
    ]


def render_pack_html(pack: Pack) -> str:
    changes = [
        {"title": CHANGE_TITLES[c], "groups": _grouped(pack, pack.changes[c])}
        for c in Change
        if pack.changes[c]
    ]
    exceptions = [
        {"title": EXCEPTION_TITLES[e], "groups": _grouped(pack, pack.exceptions[e])}
        for e in Exception_
        if pack.exceptions[e]
    ]
    priorities = []
    for number in sorted(pack.mix):
        points = pack.mix[number]
        bars = []
        for day, mix in zip(pack.trend_days, points, strict=True):
            total = sum(mix.values()) or 1
            bars.append(
                {
                    "day": long_date(day),
                    "segments": [
                        {"colour": MIX_COLOURS[k], "percent": round(100 * mix[k] / total, 2)}
                        for k in MIX_KEYS
                        if mix[k]
                    ],
                }
            )
        now = pack.mix_now(number)
        priorities.append(
            {
                "title": f"{number} {pack.priority_title(number)}",
                "counts": [now[k] for k in MIX_KEYS],
                "bars": bars,
                "alt": trend_alt(pack, number),
            }
        )
    return _ENVIRONMENT.get_template("pack.html.j2").render(
        title=pack_title(pack),
        period=period_line(pack),
        milestones=pack.milestones,
        changes=changes,
        exceptions=exceptions,
        silent=pack.silent,
        achieved=_grouped(pack, pack.achieved),
        unevidenced=pack.unevidenced_line(),
        leads=[
            {"name": r.name, "rate": rate_text(r.answered, r.prompted)} for r in pack.lead_responses
        ],
        networks=[
            {"name": r.name, "rate": rate_text(r.answered, r.prompted)}
            for r in pack.network_responses
        ],
        legend=[{"label": legend_label(k), "colour": MIX_COLOURS[k]} for k in MIX_KEYS],
        priorities=priorities,
    )
