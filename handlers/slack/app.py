"""The Slack app: `build_slack_app` makes the bolt `AsyncApp` with Plan Pulse's listeners
(`handlers.slack.listeners`), and `SlackChannel` runs it, in Socket Mode when an app token
is given (no public URL), else over HTTP at `/slack/events` behind the guard of
`handlers.slack.guard`.
"""

from __future__ import annotations

import logging

from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.clock import Clock
from handlers.slack import listeners
from handlers.slack.answers import Followups, Sessions, SlackAnswers
from handlers.slack.guard import DEFAULT_MAX_BODY, build_http_app

log = logging.getLogger(__name__)

__all__ = ["SlackChannel", "build_slack_app"]


def build_slack_app(
    *,
    sessions: Sessions,
    client: AsyncWebClient,
    signing_secret: str,
    clock: Clock,
    followups: Followups | None = None,
) -> AsyncApp:
    """The bolt app with Plan Pulse's listeners. Web API calls (`auth.test` included) go
    through `client`; requests are verified with `signing_secret`."""
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret,
        process_before_response=True,
        request_verification_enabled=True,
        logger=logging.getLogger("handlers.slack.bolt"),
    )
    listeners.register(app, SlackAnswers(sessions, client, clock, followups or Followups()))
    return app


class SlackChannel:
    """The Slack app running: Socket Mode when `app_token` is given, else HTTP, whose route
    (`http_app`, mounted at `/slack` so Slack posts to `/slack/events`) the one web server
    of `pulse run` serves (handlers/web/server.py)."""

    def __init__(
        self,
        app: AsyncApp,
        *,
        signing_secret: str,
        app_token: str | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        followups: Followups | None = None,
    ) -> None:
        self.app = app
        self.signing_secret = signing_secret
        self.app_token = app_token
        self.max_body = max_body
        self.followups = followups
        self._socket: AsyncSocketModeHandler | None = None

    def http_app(self) -> web.Application | None:
        """The events route to mount at `/slack` in HTTP mode; None in Socket Mode."""
        if self.app_token:
            return None
        return build_http_app(
            self.app, signing_secret=self.signing_secret, path="/events", max_body=self.max_body
        )

    async def start(self) -> None:
        if self.app_token:
            self._socket = AsyncSocketModeHandler(self.app, self.app_token)
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
            log.info("slack: connected in Socket Mode")

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None
        if self.followups is not None:
            await self.followups.close()
