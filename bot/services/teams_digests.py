"""A network's digest for its Teams channel: one outbox row per post, in order.

Each post is a Workflows message with an Adaptive Card (`digests.teams`); the rows' dedupe
keys (`digest:<id>:teams:<part>`) make them once per (plan, network, period) with the digest
row they are enqueued beside (`bot.services.digests`). The transport
(`handlers.teams.workflows`) looks up the network's webhook when it sends each row.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.domain.mail_states import OutboxKind
from digests.content import Digest
from digests.teams import render_teams
from storage.outbox import NewMessage

CHANNEL = "teams"


def live_view_link(base_url: str, digest: Digest) -> str | None:
    """Where the card's "Open the live view" button leads, or None for no button.

    The live view of a network (issue "Answer in one click", item 4) is not served yet, and
    the web server's other pages (a lead's update page, behind a personal link) are not for
    a channel: no button until the view exists. It must then ask its reader to sign in,
    since everyone in the channel sees the post.
    """
    return None


def teams_messages(
    digest: Digest,
    digest_id: int,
    *,
    names: Mapping[str, str],
    live_view: str | None = None,
) -> list[NewMessage]:
    """The outbox rows that post `digest` to its network's Teams channel."""
    posts = render_teams(digest, names=names, live_view=live_view)
    return [
        NewMessage(
            dedupe_key=f"digest:{digest_id}:teams:{part}",
            kind=OutboxKind.DIGEST,
            channel=CHANNEL,
            recipient=digest.network,
            payload={"network": digest.network, "part": part, "parts": len(posts), "message": post},
        )
        for part, post in enumerate(posts, start=1)
    ]
