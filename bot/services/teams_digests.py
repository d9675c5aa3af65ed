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


def live_view_link(base_url: str, *, sign_in: str) -> str | None:
    """Where a channel post's "Open the live view" leads, or None for no link.

    Everyone in a channel sees its posts, so they link to the live view only where opening
    it needs a sign-in (`WEB_SIGN_IN=oidc`), and never with a token of their own: with links
    only, each coordinator's own link is in their digest email instead.
    """
    return f"{base_url}/live" if sign_in == "oidc" else None


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
