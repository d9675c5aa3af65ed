"""A digest as Markdown: for previews, wikis and email clients that show plain text.

This module also holds the wording every digest renderer shares (Slack, HTML, plain text):
the counts line, the facts of an item, the rating-mix words and the arithmetic of the
"picture of progress" bars. The helpers return plain, unescaped text made only of our own
words and numbers; each renderer escapes user text for its own medium.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from bot.domain.ratings import label
from digests.content import (
    MIX_KEYS,
    SECTION_TITLES,
    Digest,
    DigestItem,
    DigestSection,
    week_title,
)

# The chat renderings' symbols (Slack and Teams): squares of the rating mix, 1 achieved …
# 4 not started and unrated, and each section's and the awaiting list's mark.
MIX_SQUARES = ("🟩", "🟦", "🟨", "🟥", "⬜")
SECTION_EMOJI: Mapping[DigestSection, str] = MappingProxyType(
    {
        DigestSection.OVERDUE: "🔴",
        DigestSection.AT_RISK: "🟠",
        DigestSection.NEEDS_SUPPORT: "🆘",
        DigestSection.DUE_SOON: "📅",
        DigestSection.ACHIEVED: "✅",
    }
)
AWAITING_EMOJI = "⏳"

# Characters that Markdown (CommonMark and GitHub's) reads as inline markup, raw HTML or an
# entity. User text never starts a line here (it follows a bullet or a quote marker), so the
# line-start markers (`#`, `-`, `1.`) need no escaping.
_MARKUP = re.compile(r"([\\`*_\[\]<>&|~])")


def escape(text: str) -> str:
    """User text made inert in Markdown: markup characters escaped, lines joined."""
    return _MARKUP.sub(r"\\\1", " ".join(text.split()))


# --- wording shared by the renderers ----------------------------------------------------------

AWAITING_TITLE = "Awaiting update"

# C0 and C1 control characters except tab and line breaks: invisible, and some (NUL, ESC)
# are trouble in JSON consumers, mail and terminals. The Slack and email renderers drop them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def without_controls(text: str) -> str:
    """`text` with its control characters (other than tab and line breaks) dropped."""
    return _CONTROL.sub("", text)


NOTHING_TO_REPORT = "Nothing overdue, at risk or due soon."


def digest_title(digest: Digest) -> str:
    """`: digest for the week of 10 May 2027`, the words after the network's name."""
    return f": digest for the {digest.period_title}"


def counts_line(digest: Digest) -> str:
    """Every section's count and the people awaiting, in the order of the sections."""
    counts = digest.counts()
    line = (
        " · ".join(f"{SECTION_TITLES[s]}: {counts[s.value]}" for s in DigestSection)
        + f" · {AWAITING_TITLE}: {counts['awaiting']}"
    )
    unevidenced = unevidenced_line(digest)
    return f"{line} · {unevidenced}" if unevidenced else line


def response_line(digest: Digest) -> str:
    rate = digest.response_rate
    return f"Response rate: {rate:.0%}" if rate is not None else "Response rate: no prompts yet"


NEEDS_SUPPORT_FACT = "needs support"
# An achieved milestone with no evidence of impact stored: the same words in every rendering
# (digests, the board pack, the live view).
NO_EVIDENCE_FACT = "achieved, no evidence"
EVIDENCE_LABEL = "Evidence:"
# Evidence is shown up to this many characters (a sentence or a link, as asked for); longer
# text is cut at a space and ends with "…". The export holds it whole.
EVIDENCE_SHOWN = 300


def evidence_shown(text: str, limit: int = EVIDENCE_SHOWN) -> str:
    """Evidence on one line as a digest shows it: control characters dropped, whitespace
    runs made one space, and cut at a space near `limit` characters with "…" (unescaped)."""
    flat = " ".join(without_controls(text).split())
    if len(flat) <= limit:
        return flat
    cut = flat.rfind(" ", limit // 2, limit)
    return flat[: cut if cut > 0 else limit - 1].rstrip() + "…"


def unevidenced_line(digest: Digest) -> str:
    """`3 achieved without evidence`, or "" when every achieved milestone has some."""
    n = digest.unevidenced()
    return f"{n} achieved without evidence" if n else ""


def item_facts(item: DigestItem, section: DigestSection) -> list[str]:
    """The facts after an item's leads: due date, the lead's revised date, days overdue,
    rating, the lead's support ask, reasons (the support ask is not repeated among them),
    and, among the achieved, "achieved, no evidence" for one without evidence of impact.

    Plain text of our own (dates, numbers, the rating scale's labels, reason words).
    """
    facts = [f"due {item.due:%d %b %Y}" if item.due is not None else "no date"]
    if item.revised_due is not None:
        facts.append(f"revised date {item.revised_due:%d %b %Y}")
    if section is DigestSection.OVERDUE:
        days = item.days_overdue
        facts.append(f"{days} day{'s' if days != 1 else ''} overdue")
    if item.rating is not None:
        facts.append(f"rated {item.rating} ({label(item.rating)})")
    if item.needs_support:
        facts.append(NEEDS_SUPPORT_FACT)
    reasons = [r for r in item.reasons if not (item.needs_support and r == "needs_support")]
    if reasons:
        facts.append("why: " + ", ".join(r.replace("_", " ") for r in reasons))
    if section is DigestSection.ACHIEVED and item.unevidenced:
        facts.append(NO_EVIDENCE_FACT)
    return facts


# The rating mix, in the order of the scale: short words for a count ("3 in progress") and
# the scale's own labels for the legend.
MIX_WORDS: Mapping[str, str] = {
    "1": "achieved",
    "2": "largely achieved",
    "3": "in progress",
    "4": "not started",
    "unrated": "not rated",
}


def legend_label(key: str) -> str:
    """`1 Achieved` ... `4 Not achieved / not started`, and `not rated`."""
    return f"{key} {label(int(key))}" if key != "unrated" else "not rated"


def mix_counts(mix: Mapping[str, int]) -> list[int]:
    """The mix's counts in the order of `MIX_KEYS` (a missing key counts 0)."""
    return [int(mix.get(key, 0)) for key in MIX_KEYS]


def mix_summary(mix: Mapping[str, int]) -> str:
    """`3 achieved · 4 in progress · 1 not rated`: the non-zero counts, in scale order."""
    parts = [f"{n} {MIX_WORDS[key]}" for key, n in zip(MIX_KEYS, mix_counts(mix), strict=True) if n]
    return " · ".join(parts) if parts else "no milestones"


def scaled(counts: Sequence[int], width: int, *, minimum: int = 1) -> list[int]:
    """`counts` shared out over `width` units (squares, pixels) for a 100% stacked bar.

    Largest remainder, so the shares always add up to `width` when there is anything to
    show; every non-zero count gets at least `minimum` units so that a single milestone
    never disappears from the picture.
    """
    total = sum(counts)
    if total <= 0:
        return [0] * len(counts)
    shares = [c * width // total for c in counts]
    remainders = [c * width % total for c in counts]
    shares = [max(s, minimum) if c > 0 else 0 for s, c in zip(shares, counts, strict=True)]
    by_remainder = sorted(
        (i for i, c in enumerate(counts) if c > 0), key=lambda i: (-remainders[i], i)
    )
    step = 0
    while sum(shares) < width:
        shares[by_remainder[step % len(by_remainder)]] += 1
        step += 1
    while sum(shares) > width:  # only after the minimum was applied: take from the largest
        largest = max(range(len(shares)), key=lambda i: (shares[i], -i))
        if shares[largest] <= minimum:
            break
        shares[largest] -= 1
    return shares


def group_heading(digest: Digest, number: int) -> str:
    """`Priority 2 · Workforce`, over a section's items of one priority (unescaped)."""
    title = digest.priorities.get(number)
    return f"Priority {number} · {title}" if title else f"Priority {number}"


def priority_rows(digest: Digest) -> list[tuple[int, str, Mapping[str, int]]]:
    """(number, title, mix) per priority, in priority order; untitled ones are "Priority n"."""
    return [
        (number, digest.priority_title(number), digest.mix[number]) for number in sorted(digest.mix)
    ]


def network_mix(digest: Digest) -> dict[str, int]:
    """The rating mix of the whole network now: the priorities' mixes added up."""
    total = dict.fromkeys(MIX_KEYS, 0)
    for mix in digest.mix.values():
        for key, n in zip(MIX_KEYS, mix_counts(mix), strict=True):
            total[key] += n
    return total


def trend_rows(digest: Digest) -> list[tuple[str, Mapping[str, int]]]:
    """(period, mix) for each earlier digest, oldest first, then "now"; empty without history.
    Periods as people read them: `week of 3 May 2027`, `week of 10 May 2027 (now)`.

    An earlier digest of this very period (a re-run) gives way to the mix of now.
    """
    earlier = [(week_title(period), mix) for period, mix in digest.trend if period != digest.period]
    if not earlier:
        return []
    return [*earlier, (f"{digest.period_title} (now)", network_mix(digest))]


# --- Markdown ---------------------------------------------------------------------------------


def _item_line(item: DigestItem, section: DigestSection, names: Mapping[str, str]) -> str:
    parts = [f"**{escape(item.ref)}** {escape(item.title)}"]
    leads = ", ".join(escape(names.get(k) or k) for k in item.leads) or "no lead"
    parts.append(f"lead: {leads}")
    parts += [escape(fact) for fact in item_facts(item, section)]
    line = "- " + " · ".join(parts)
    if item.note:
        line += f"\n  > {escape(item.note)}"
    if section is DigestSection.ACHIEVED and item.evidence:
        line += "\n  >" if item.note else ""  # a paragraph of its own in the quote
        line += f"\n  > {EVIDENCE_LABEL} {escape(evidence_shown(item.evidence))}"
    return line


def render_markdown(digest: Digest, *, names: Mapping[str, str] | None = None) -> str:
    """The digest as Markdown, people by name (`names`, else the digest's own)."""
    names = digest.names if names is None else names
    header = [
        f"# {escape(digest.network_name)}{digest_title(digest)}",
        "",
        counts_line(digest),
        "",
        response_line(digest),
    ]
    body: list[str] = []
    for section in DigestSection:
        items = digest.sections[section]
        if not items:
            continue
        body += ["", f"## {SECTION_TITLES[section]} ({len(items)})", ""]
        for number, group in digest.groups(section):
            if number is not None:
                body += [f"### {escape(group_heading(digest, number))}", ""]
            body += [_item_line(item, section, names) for item in group]
            if number is not None:
                body.append("")
        if body[-1] == "":
            body.pop()
    if digest.awaiting:
        body += ["", f"## {AWAITING_TITLE} ({len(digest.awaiting)})", ""]
        body += [f"- {escape(names.get(key) or key)}" for key in digest.awaiting]
    if not any(digest.sections.values()) and not digest.awaiting:
        body += ["", NOTHING_TO_REPORT]
    return "\n".join(header + body) + "\n"
