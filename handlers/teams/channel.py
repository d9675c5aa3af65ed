"""The Teams channel put together from settings: the bot's tokens and Bot Connector calls,
the check of inbound tokens, and the endpoint's sub-application (README "Microsoft Teams")."""

from __future__ import annotations

import ssl
from pathlib import Path

from aiohttp import web

from bot.clock import Clock
from handlers.teams.answers import TeamsAnswers
from handlers.teams.auth import InboundAuth, SigningKeys
from handlers.teams.bot import TeamsBot, build_teams_app
from handlers.teams.connector import BotTokens, Connector, quiet_sdk_logs
from handlers.teams.transport import TeamsTransport
from storage.db import Sessions


def ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """The system's trust, or only `ca_file`'s when given."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


class TeamsChannel:
    def __init__(
        self,
        sessions: Sessions,
        *,
        app_id: str,
        password: str,
        tenant_id: str | None,
        authority: str,
        metadata_url: str,
        clock: Clock,
        ca_file: Path | None = None,
        web_base_url: str | None = None,
    ) -> None:
        quiet_sdk_logs()
        context = ssl_context(ca_file)
        self.tokens = BotTokens(
            app_id=app_id,
            password=password,
            authority=authority,
            ca_file=str(ca_file) if ca_file else None,
        )
        self.connector = Connector(self.tokens, ssl_context=context)
        self.transport = TeamsTransport(self.connector, clock=clock)
        self.auth = InboundAuth(
            SigningKeys(metadata_url, clock=clock, ssl_context=context),
            app_id=app_id,
            tenant_id=tenant_id,
            clock=clock,
        )
        self.answers = TeamsAnswers(
            sessions, self.connector, clock=clock, web_base_url=web_base_url
        )
        self.bot = TeamsBot(sessions, self.connector, clock=clock, on_message=self.answers)

    def http_app(self) -> web.Application:
        return build_teams_app(self.bot, self.auth)

    async def check(self) -> str:
        """The bot's credentials work (a token is issued for them) and the signing keys of
        inbound activities can be fetched; raises with what failed."""
        await self.tokens.token()
        keys = await self.auth.keys.refresh()
        return (
            f"Teams: a token issued for bot {self.tokens.app_id} by {self.tokens.authority}; "
            f"{keys} signing keys for inbound activities"
        )

    async def close(self) -> None:
        await self.connector.close()
