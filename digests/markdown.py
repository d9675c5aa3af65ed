"""A digest as Markdown: for previews, wikis and email clients that show plain text."""

from __future__ import annotations

import re

from bot.domain.ratings import label
from digests.content import SECTION_TITLES, Digest, DigestItem, DigestSection

# Characters that Markdown (CommonMark and GitHub's) reads as inline markup, raw HTML or an
# entity. User text never starts a line here (it follows a bullet or a quote marker), so the
# line-start markers (`#`, `-`, `1.`) need no escaping.
_MARKUP = re.compile(r"([\\`*_\[\]<>&|~])")


def escape(text: str) -> str:
    """User text made inert in Markdown: markup characters escaped, lines joined."""
    return _MARKUP.sub(r"\\\1", " ".join(text.split()))


def _item_line(item: DigestItem, section: DigestSection) -> str:
    parts = [f"**{escape(item.ref)}** {escape(item.title)}"]
    leads = ", ".join(escape(k) for k in item.leads) or "no lead"
    parts.append(f"lead: {leads}")
    if item.due is not None:
        parts.append(f"due {item.due:%d %b %Y}")
    else:
        parts.append("no date")
    if section is DigestSection.OVERDUE:
        days = item.days_overdue
        parts.append(f"{days} day{'s' if days != 1 else ''} overdue")
    if item.rating is not None:
        parts.append(f"rated {item.rating} ({escape(label(item.rating))})")
    if item.reasons:
        parts.append("why: " + ", ".join(r.replace("_", " ") for r in item.reasons))
    line = "- " + " · ".join(parts)
    if item.note:
        line += f"\n  > {escape(item.note)}"
    return line


def render_markdown(digest: Digest) -> str:
    counts = digest.counts()
    rate = digest.response_rate
    header = [
        f"# {escape(digest.network_name)}: digest for {digest.as_of:%d %B %Y} ({digest.period})",
        "",
        " · ".join(f"{SECTION_TITLES[s]}: {counts[s.value]}" for s in DigestSection)
        + f" · Awaiting update: {counts['awaiting']}",
        "",
        f"Response rate: {rate:.0%}" if rate is not None else "Response rate: no prompts yet",
    ]
    body: list[str] = []
    for section in DigestSection:
        items = digest.sections[section]
        if not items:
            continue
        body += ["", f"## {SECTION_TITLES[section]} ({len(items)})", ""]
        body += [_item_line(item, section) for item in items]
    if digest.awaiting:
        body += ["", f"## Awaiting update ({len(digest.awaiting)})", ""]
        body += [f"- {escape(key)}" for key in digest.awaiting]
    if not any(digest.sections.values()) and not digest.awaiting:
        body += ["", "Nothing overdue, at risk or due soon."]
    return "\n".join(header + body) + "\n"
