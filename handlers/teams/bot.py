"""The Teams bot's endpoint, `POST /api/messages` on the web server: activities from the Bot
Framework, authenticated by `handlers.teams.auth` before anything is read.

What it does with them:
- the app installed for someone (`installationUpdate` add, or `conversationUpdate` in a 1:1
  chat): asks the Bot Connector who they are, finds the person with that email address, and
  stores their conversation, where their prompts will go;
- the app removed (`installationUpdate` remove): forgets that conversation;
- a message (a card submitted, or a command) goes to `on_message`
  (handlers/teams/answers.py);
- anything else is acknowledged and left alone.

Ids, conversations and message texts are personal data: no log line carries one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web
from microsoft_agents.activity import Activity
from pydantic import ValidationError

from bot.clock import Clock
from bot.domain.teams import TeamsConversation
from handlers.teams.auth import (
    TOKEN_KEY,
    InboundAuth,
    TeamsAuthError,
    VerifiedToken,
    auth_middleware,
)
from handlers.teams.connector import Connector, TokenUnavailable
from storage.db import Sessions
from storage.teams_chats import TeamsConversations

log = logging.getLogger(__name__)

MAX_ACTIVITY = 256 * 1024

# A further kind of activity (a card submission, a command), handled elsewhere; None: ignored.
ActivityHandler = Callable[[Activity], Awaitable[web.StreamResponse | None]]


class TeamsBot:
    """What the bot does with an authenticated activity."""

    def __init__(
        self,
        sessions: Sessions,
        connector: Connector,
        *,
        clock: Clock,
        on_message: ActivityHandler | None = None,
    ) -> None:
        self.sessions = sessions
        self.connector = connector
        self.clock = clock
        self.on_message = on_message

    async def handle(self, activity: Activity) -> web.StreamResponse:
        kind = activity.type
        if kind == "installationUpdate":
            if (activity.action or "").startswith("remove"):
                await self.forget(activity)
            elif (activity.action or "").startswith("add"):
                await self.learn(activity)
        elif kind == "conversationUpdate" and activity.members_added:
            await self.learn(activity)
        elif kind in ("message", "invoke") and self.on_message is not None:
            answered = await self.on_message(activity)
            if answered is not None:
                return answered
        return web.Response(status=200)

    async def learn(self, activity: Activity) -> None:
        """Store the conversation of the person the app was installed for."""
        if not _personal(activity) or activity.from_property is None:
            return
        user_id = activity.from_property.id
        conversation_id = activity.conversation.id if activity.conversation else None
        service_url = activity.service_url
        if not user_id or not conversation_id or not service_url:
            return
        try:
            member = await self.connector.member(service_url, conversation_id, user_id)
        except (aiohttp.ClientError, TimeoutError, TokenUnavailable) as failed:
            log.warning("teams: cannot ask who installed the app: %s", type(failed).__name__)
            return
        extra: Mapping[str, Any] = member.model_extra or {}
        addresses = [
            str(extra[name])
            for name in ("email", "userPrincipalName")
            if isinstance(extra.get(name), str)
        ]
        conversation = TeamsConversation(
            teams_user_id=user_id,
            conversation_id=conversation_id,
            service_url=service_url,
            tenant_id=_tenant(activity),
            aad_object_id=activity.from_property.aad_object_id,
        )
        async with self.sessions() as session, session.begin():
            repo = TeamsConversations(session)
            for address in addresses:
                key = await repo.person_by_email(address)
                if key is not None:
                    await repo.remember(key, conversation, now=self.clock())
                    log.info("teams: the app is installed for %s", key)
                    return
        log.warning("teams: the app was installed by someone no plan names (no email match)")

    async def forget(self, activity: Activity) -> None:
        if activity.from_property is None or not activity.from_property.id:
            return
        async with self.sessions() as session, session.begin():
            repo = TeamsConversations(session)
            key = await repo.person_for_user(activity.from_property.id)
            if await repo.forget_user(activity.from_property.id):
                log.info("teams: the app was removed by %s", key or "a former lead")


def _personal(activity: Activity) -> bool:
    conversation = activity.conversation
    return (
        conversation is not None
        and (getattr(conversation, "conversation_type", None) in (None, "personal"))
        and not getattr(conversation, "is_group", False)
    )


def _tenant(activity: Activity) -> str | None:
    conversation = activity.conversation
    tenant = getattr(conversation, "tenant_id", None) if conversation is not None else None
    return str(tenant) if tenant else None


def build_teams_app(bot: TeamsBot, auth: InboundAuth) -> web.Application:
    """The bot's endpoint as a sub-application: mount it at `/api` for `/api/messages`."""

    async def messages(request: web.Request) -> web.StreamResponse:
        token: VerifiedToken = request[TOKEN_KEY]
        if request.content_length is not None and request.content_length > MAX_ACTIVITY:
            return web.Response(status=413, text="too large")
        try:
            raw = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return web.Response(status=400, text="not JSON")
        if not isinstance(raw, dict):
            return web.Response(status=400, text="not an activity")
        try:
            token.check_activity(raw, tenant_id=auth.tenant_id)
        except TeamsAuthError as refused:
            log.warning("teams: activity refused: %s", refused)
            return web.Response(status=401, text="unauthorized")
        try:
            activity = Activity.model_validate(raw)
        except ValidationError:
            return web.Response(status=400, text="not an activity")
        return await bot.handle(activity)

    app = web.Application(middlewares=[auth_middleware(auth)], client_max_size=MAX_ACTIVITY)
    app.router.add_post("/messages", messages)
    return app
