"""Who may post to the bot's endpoint: the Bot Framework, proved by the JWT in each request's
Authorization header, checked before a byte of the body is read.

The checks (Bot Framework "Authenticate requests from the Bot Connector service"):
- signed with RS256 by a key published at the `jwks_uri` of the OpenID metadata
  (TEAMS_OPENID_METADATA_URL, Microsoft's by default; keys refetched daily, and at once
  when a token names a key we do not have, at most every five minutes);
- issued by the Bot Framework (or, for a single-tenant bot, by that tenant's Entra ID);
- for us: audience TEAMS_APP_ID;
- in date by the injected clock (five minutes' leeway, as Microsoft's own SDKs allow);
- and once the activity is read: its `serviceUrl` is the token's `serviceurl` claim, its
  channel is one the signing key is endorsed for, and with TEAMS_TENANT_ID its tenant is ours.

Anything else is a 401 with nothing read and nothing changed. The SDK has its own validator,
but it fetches Microsoft's key URLs whatever it is told; this one takes the metadata URL as
a setting, so production and the tests run the same code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import jwt
from aiohttp import web

from bot.clock import Clock

log = logging.getLogger(__name__)

BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
LEEWAY = timedelta(minutes=5)
KEYS_LIFETIME = timedelta(hours=24)
REFETCH_AT_MOST_EVERY = timedelta(minutes=5)


class TeamsAuthError(Exception):
    """The request does not prove it comes from the Bot Framework, for us."""


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    claims: Mapping[str, Any]
    endorsements: frozenset[str]  # the channels the signing key may sign for; empty: any

    def check_activity(self, activity: Mapping[str, Any], *, tenant_id: str | None) -> None:
        """The checks that need the activity; TeamsAuthError when one fails."""
        # The bot posts its own token to this address: only the one the token names will do.
        service_url = self.claims.get("serviceurl")
        if not isinstance(service_url, str) or service_url != activity.get("serviceUrl"):
            raise TeamsAuthError("the activity's serviceUrl is not the token's")
        channel = activity.get("channelId")
        if self.endorsements and channel not in self.endorsements:
            raise TeamsAuthError("the signing key is not endorsed for this channel")
        if tenant_id:
            if activity_tenant(activity) != tenant_id:
                raise TeamsAuthError("the activity comes from another tenant")
            if "tid" in self.claims and self.claims["tid"] != tenant_id:
                raise TeamsAuthError("the token was issued for another tenant")


def activity_tenant(activity: Mapping[str, Any]) -> str | None:
    """The tenant an activity comes from, as Teams gives it."""
    conversation = activity.get("conversation")
    if isinstance(conversation, dict) and isinstance(conversation.get("tenantId"), str):
        return str(conversation["tenantId"])
    channel_data = activity.get("channelData")
    if isinstance(channel_data, dict):
        tenant = channel_data.get("tenant")
        if isinstance(tenant, dict) and isinstance(tenant.get("id"), str):
            return str(tenant["id"])
    return None


class SigningKeys:
    """The Bot Framework's signing keys, from the OpenID metadata's `jwks_uri`."""

    def __init__(
        self, metadata_url: str, *, clock: Clock, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.metadata_url = metadata_url
        self.clock = clock
        self.ssl_context = ssl_context
        self._keys: dict[str, tuple[jwt.PyJWK, frozenset[str]]] = {}
        self._fetched_at: datetime | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> tuple[jwt.PyJWK, frozenset[str]]:
        now = self.clock()
        stale = self._fetched_at is None or now - self._fetched_at >= KEYS_LIFETIME
        if stale or (
            kid not in self._keys
            and self._fetched_at is not None
            and now - self._fetched_at >= REFETCH_AT_MOST_EVERY
        ):
            async with self._lock:
                await self._fetch()
        found = self._keys.get(kid)
        if found is None:
            raise TeamsAuthError("the token is signed by a key we do not know")
        return found

    async def refresh(self) -> int:
        """Fetch the keys now (`pulse check`); how many there are."""
        async with self._lock:
            await self._fetch()
        if not self._keys:
            raise TeamsAuthError("the OpenID metadata's jwks_uri lists no usable key")
        return len(self._keys)

    async def _fetch(self) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                async with http.get(self.metadata_url, ssl=self._ssl()) as response:
                    response.raise_for_status()
                    metadata = await response.json(content_type=None)
                jwks_uri = metadata.get("jwks_uri") if isinstance(metadata, dict) else None
                if not isinstance(jwks_uri, str) or not jwks_uri.lower().startswith("https://"):
                    raise TeamsAuthError("the OpenID metadata names no https jwks_uri")
                async with http.get(jwks_uri, ssl=self._ssl()) as response:
                    response.raise_for_status()
                    jwks = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as failed:
            # Keep the keys we have: a blip at Microsoft must not lock every lead out.
            log.warning("teams: cannot fetch the signing keys: %s", type(failed).__name__)
            if not self._keys:
                raise TeamsAuthError("the signing keys cannot be fetched") from None
            return
        keys: dict[str, tuple[jwt.PyJWK, frozenset[str]]] = {}
        for raw in jwks.get("keys", []) if isinstance(jwks, dict) else []:
            if not isinstance(raw, dict) or not isinstance(raw.get("kid"), str):
                continue
            try:
                key = jwt.PyJWK(raw, algorithm="RS256")
            except jwt.PyJWTError:
                continue
            endorsements = raw.get("endorsements")
            keys[raw["kid"]] = (
                key,
                frozenset(e for e in endorsements if isinstance(e, str))
                if isinstance(endorsements, list)
                else frozenset(),
            )
        self._keys = keys
        self._fetched_at = self.clock()
        log.info("teams: %d signing keys fetched", len(keys))

    def _ssl(self) -> ssl.SSLContext | bool:
        return self.ssl_context if self.ssl_context is not None else True


class InboundAuth:
    """Verifies the Bearer token of a request to the bot's endpoint."""

    def __init__(
        self,
        keys: SigningKeys,
        *,
        app_id: str,
        tenant_id: str | None,
        clock: Clock,
    ) -> None:
        self.keys = keys
        self.app_id = app_id
        self.tenant_id = (tenant_id or "").strip() or None
        self.clock = clock

    def issuers(self) -> set[str]:
        accepted = {BOT_FRAMEWORK_ISSUER}
        if self.tenant_id:
            accepted |= {
                f"https://sts.windows.net/{self.tenant_id}/",
                f"https://login.microsoftonline.com/{self.tenant_id}/v2.0",
            }
        return accepted

    async def verify(self, authorization: str | None) -> VerifiedToken:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TeamsAuthError("no bearer token")
        token = token.strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TeamsAuthError("not a JWT") from None
        if header.get("alg") != "RS256" or not isinstance(header.get("kid"), str):
            raise TeamsAuthError("not an RS256 token with a key id")
        key, endorsements = await self.keys.key(header["kid"])
        try:
            # Dates are checked below against our clock, not the wall's.
            claims = jwt.decode(
                token,
                key=key,
                algorithms=["RS256"],
                audience=self.app_id,
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.PyJWTError as refused:
            raise TeamsAuthError(f"token refused: {type(refused).__name__}") from None
        if claims.get("iss") not in self.issuers():
            raise TeamsAuthError("token from an issuer we do not accept")
        now = self.clock().timestamp()
        leeway = LEEWAY.total_seconds()
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or now > expires + leeway:
            raise TeamsAuthError("token expired")
        not_before = claims.get("nbf")
        if isinstance(not_before, int | float) and now < not_before - leeway:
            raise TeamsAuthError("token not yet valid")
        return VerifiedToken(claims, endorsements)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Where the verified token waits for the handler, on the request.
TOKEN_KEY = web.RequestKey("teams_token", VerifiedToken)


def auth_middleware(auth: InboundAuth) -> Any:
    """Refuses with 401, before the body is read, any request without a valid token."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            request[TOKEN_KEY] = await auth.verify(request.headers.get("Authorization"))
        except TeamsAuthError as refused:
            log.warning("teams: request refused: %s", refused)
            return web.Response(status=401, text="unauthorized")
        return await handler(request)

    return authenticate
