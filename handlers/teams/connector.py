"""The bot's outbound side: its own tokens (client credentials, msal) and the Bot Connector
calls it makes through the Agents SDK's `ConnectorClient`, at the `serviceUrl` Teams gave.

msal's calls block, so they run in a thread; msal keeps the token in its own cache until
shortly before it expires. The SDK logs conversation and member ids, at INFO and in its
error lines too; those are personal data here, so its loggers are silenced
(`quiet_sdk_logs`) and our own callers log each failure by its kind, without ids.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any, Protocol, cast

import aiohttp
from microsoft_agents.activity import Activity, ChannelAccount, ResourceResponse
from microsoft_agents.hosting.core.connector.client import ConnectorClient

log = logging.getLogger(__name__)

BOT_SCOPE = "https://api.botframework.com/.default"
_SDK_LOGGERS = ("microsoft_agents",)


def quiet_sdk_logs() -> None:
    """The SDK's log lines carry conversation and member ids: none of them is written."""
    for name in _SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


class TokenUnavailable(Exception):
    """The token endpoint gave the bot no token (wrong credentials, or it is down)."""


class ClientCredentialsApp(Protocol):
    def acquire_token_for_client(self, scopes: list[str]) -> dict[str, Any]: ...


class BotTokens:
    """The bot's access tokens for the Bot Connector, from its Entra ID app registration."""

    def __init__(
        self,
        *,
        app_id: str,
        password: str,
        authority: str,
        ca_file: str | None = None,
    ) -> None:
        self.app_id = app_id
        self._password = password
        self.authority = authority
        self.ca_file = ca_file
        self._app: ClientCredentialsApp | None = None
        self._http: Any = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:  # never the secret, never a token
        return f"BotTokens(app_id={self.app_id!r}, authority={self.authority!r})"

    async def token(self) -> str:
        async with self._lock:
            result = await asyncio.to_thread(self._acquire)
        token = result.get("access_token")
        if not isinstance(token, str) or not token:
            error = str(result.get("error") or "no access_token")
            raise TokenUnavailable(
                f"no Bot Framework token for app {self.app_id} from {self.authority}: {error}; "
                "check TEAMS_APP_ID, TEAMS_APP_PASSWORD and TEAMS_TENANT_ID"
            )
        return token

    def close(self) -> None:
        """Drop msal's connections (its token cache goes with it)."""
        if self._http is not None:
            self._http.close()
        self._http = None
        self._app = None

    def _acquire(self) -> dict[str, Any]:
        if self._app is None:
            self._app = self._build()
        return self._app.acquire_token_for_client(scopes=[BOT_SCOPE])

    def _build(self) -> ClientCredentialsApp:
        # Imported here: msal's constructor fetches the authority's metadata over HTTP.
        import msal  # type: ignore[import-untyped]
        import requests

        http = _TrustingSession(self.ca_file) if self.ca_file else requests.Session()
        self._http = http
        return cast(
            ClientCredentialsApp,
            msal.ConfidentialClientApplication(
                self.app_id,
                authority=self.authority,
                client_credential=self._password,
                http_client=http,
                # Microsoft's authorities are known to msal; another (a national cloud's
                # proxy, or tests) is the admin's choice, not Microsoft's list's.
                instance_discovery=not _custom(self.authority),
            ),
        )


def _trusting_session_class() -> type[Any]:
    import requests

    class TrustingSession(requests.Session):
        """Verifies with TEAMS_CA_FILE on every call: a `verify` set on the session would
        lose to REQUESTS_CA_BUNDLE in the environment, a request's own does not."""

        def __init__(self, ca_file: str) -> None:
            super().__init__()
            self.ca_file = ca_file

        def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
            kwargs["verify"] = self.ca_file
            return super().request(method, url, *args, **kwargs)

    return TrustingSession


def _TrustingSession(ca_file: str) -> Any:
    return _trusting_session_class()(ca_file)


def _custom(authority: str) -> bool:
    return not authority.lower().startswith("https://login.microsoftonline.com/")


class Connector:
    """Bot Connector calls for one bot: each at the service URL of its conversation."""

    def __init__(
        self,
        tokens: BotTokens,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.tokens = tokens
        self.ssl_context = ssl_context
        self.timeout = timeout
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    async def _client(self, service_url: str) -> ConnectorClient:
        base = service_url if service_url.endswith("/") else service_url + "/"
        session = self._sessions.get(base)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                base_url=base,
                headers={"Accept": "application/json", "Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(
                    ssl=self.ssl_context if self.ssl_context is not None else True
                ),
            )
            self._sessions[base] = session
        # The token goes on the shared session's headers: refreshed on each call.
        return ConnectorClient(base, await self.tokens.token(), session=session)

    async def send(self, service_url: str, conversation_id: str, activity: Activity) -> str:
        """Post an activity; the id Teams gave it."""
        client = await self._client(service_url)
        response: ResourceResponse = await client.conversations.send_to_conversation(
            conversation_id, activity
        )
        return str(response.id or "")

    async def update(
        self, service_url: str, conversation_id: str, activity_id: str, activity: Activity
    ) -> None:
        client = await self._client(service_url)
        await client.conversations.update_activity(conversation_id, activity_id, activity)

    async def member(
        self, service_url: str, conversation_id: str, member_id: str
    ) -> ChannelAccount:
        """Who a member of a conversation is (Teams adds their email and UPN)."""
        client = await self._client(service_url)
        return await client.conversations.get_conversation_member(conversation_id, member_id)

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
        self.tokens.close()
