"""Teams channels in the running bot: the Workflows transport of the outbox, built from the
settings and the database, and what `pulse check` says of each network's webhook.

Webhook URLs are shown only redacted (`bot.domain.webhooks.redacted_webhook`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from bot.domain.webhooks import redacted_webhook, webhook_problem
from bot.services.transports import Result
from digests.teams import check_message
from handlers.teams.workflows import WorkflowsTransport
from storage.teams import teams_webhook, teams_webhooks

if TYPE_CHECKING:
    from bot.clock import Clock
    from bot.settings import Settings
    from storage.db import Sessions


class Application(Protocol):
    """What the Teams parts need of the running application (`bot.app.PlanPulse`): named
    by shape, so this module and the composition root do not import each other."""

    @property
    def settings(self) -> Settings: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def sessions(self) -> Sessions: ...


def workflows_transport(pulse: Application, **timing: Any) -> WorkflowsTransport:
    """The transport of the outbox's `teams` rows, finding each network's webhook in the
    database when it sends; `timing` may give it a `monotonic` clock and a `sleep`."""

    async def webhook_for(network: str) -> str | None:
        async with pulse.sessions() as session:
            return await teams_webhook(session, network)

    return WorkflowsTransport(webhook_for, interval=pulse.settings.teams_post_interval, **timing)


async def check_webhooks(pulse: Application, *, post: bool) -> list[tuple[bool, str]]:
    """One line per network with a Teams webhook: its form, and with `post` whether
    Workflows accepted a test card (which then appears in the channel)."""
    async with pulse.sessions() as session:
        found = await teams_webhooks(session)
    if not found:
        return [(True, "Teams: no network has a teams_webhook")] if post else []
    transport = workflows_transport(pulse)
    sent_at = f"{pulse.clock():%d %b %Y %H:%M} UTC"
    results: list[tuple[bool, str]] = []
    for key, name, url in found:
        shown = f"Teams {key}: {redacted_webhook(url)}"
        problem = webhook_problem(url)
        if problem is not None:
            results.append((False, f"{shown}: {problem}"))
        elif not post:
            results.append((True, f"{shown} (`pulse check --teams` posts a test card)"))
        else:
            result, error, _ = await transport.post(url, check_message(name, sent_at=sent_at))
            if result is Result.SENT:
                results.append((True, f"{shown}: test card accepted; look for it in the channel"))
            else:
                results.append((False, f"{shown}: {error}"))
    return results
