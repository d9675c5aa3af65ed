"""Signing coordinators in to the live view with OpenID Connect (`WEB_SIGN_IN=oidc`), as
Microsoft Entra ID does it: the authorization code flow with PKCE, a client secret, and the
ID token's signature checked against the issuer's published keys.

Who signed in is the token's `preferred_username` (lower-cased), and only from a token whose
tenant (`tid`) is OIDC_TENANT_ID: never the optional, unverified `email` claim. Their
address decides which networks they see (those whose coordinators include it); opening one
issues a live-view link of 8 hours (a POST with the session's CSRF token).

What is kept between requests is in two cookies signed with PULSE_SECRET_KEY, HttpOnly and
SameSite=Lax (Secure behind https): the sign-in's state, nonce and PKCE verifier for ten
minutes, then the session (who, until when) for eight hours. Token lifetimes are checked
against our own clock, not the machine's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp
import jwt
from aiohttp import web

from bot.clock import Clock
from bot.services.live_view import LiveViews
from bot.signing import Signer

log = logging.getLogger(__name__)

Render = Callable[..., web.Response]

CALLBACK_PATH = "/auth/callback"
SIGN_IN_PATH = "/live"
_FLOW_COOKIE = "pulse_sign_in"
_SESSION_COOKIE = "pulse_session"
_FLOW_LIFETIME = timedelta(minutes=10)
SESSION_LIFETIME = timedelta(hours=8)
_LEEWAY = timedelta(minutes=2)


class SignInFailed(Exception):
    """The sign-in could not be completed; the reason is for the log, not the page."""


@dataclass(frozen=True, slots=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str
    tenant_id: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _sealed(signer: Signer, purpose: str, value: dict[str, Any]) -> str:
    body = _b64(json.dumps(value, separators=(",", ":")).encode())
    return f"{body}.{signer.sign(purpose, body)}"


def _opened(signer: Signer, purpose: str, cookie: str | None) -> dict[str, Any] | None:
    if not cookie or "." not in cookie:
        return None
    body, signature = cookie.rsplit(".", 1)
    if not signer.verify(purpose, body, signature):
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class OidcClient:
    """The issuer's endpoints (from its discovery document) and the checks on its tokens."""

    def __init__(self, config: OidcConfig, *, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self._metadata: dict[str, Any] | None = None
        self._keys: dict[str, Any] = {}

    async def metadata(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        if self._metadata is None:
            url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
            async with http.get(url) as response:
                response.raise_for_status()
                found = await response.json()
            if found.get("issuer") != self.config.issuer:
                raise SignInFailed("the discovery document names another issuer")
            self._metadata = found
        return self._metadata

    async def authorize_url(
        self,
        http: aiohttp.ClientSession,
        *,
        redirect_uri: str,
        state: str,
        nonce: str,
        verifier: str,
    ) -> str:
        metadata = await self.metadata(http)
        challenge = _b64(hashlib.sha256(verifier.encode()).digest())
        query = urlencode(
            {
                "client_id": self.config.client_id,
                "response_type": "code",
                "redirect_uri": redirect_uri,
                "scope": "openid profile",
                "response_mode": "query",
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        return f"{metadata['authorization_endpoint']}?{query}"

    async def identify(
        self,
        http: aiohttp.ClientSession,
        *,
        code: str,
        redirect_uri: str,
        verifier: str,
        nonce: str,
    ) -> str:
        """Exchange the code for an ID token, check it, and say who signed in."""
        metadata = await self.metadata(http)
        async with http.post(
            metadata["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": self.config.client_id,
                "client_secret": self.config.client_secret,
                "code_verifier": verifier,
            },
        ) as response:
            if response.status != 200:
                raise SignInFailed(f"the token endpoint answered {response.status}")
            tokens = await response.json()
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise SignInFailed("no ID token")
        claims = await self._checked(http, id_token, metadata)
        if claims.get("nonce") != nonce:
            raise SignInFailed("the ID token's nonce is not this sign-in's")
        if claims.get("tid") != self.config.tenant_id:
            raise SignInFailed("the ID token is from another tenant")
        who = claims.get("preferred_username")
        if not isinstance(who, str) or "@" not in who:
            raise SignInFailed("the ID token names nobody")
        return who.strip().lower()

    async def _checked(
        self, http: aiohttp.ClientSession, token: str, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise SignInFailed("an unreadable ID token") from exc
        if header.get("alg") != "RS256":
            raise SignInFailed("an ID token not signed with RS256")
        key = await self._key(http, str(header.get("kid", "")), metadata)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=["RS256"],
                audience=self.config.client_id,
                issuer=self.config.issuer,
                # Lifetimes are checked below against our clock, not the machine's.
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["exp", "iat", "iss", "aud", "sub"],
                },
            )
        except jwt.PyJWTError as exc:
            raise SignInFailed(f"the ID token does not verify: {type(exc).__name__}") from exc
        now = self.clock()
        if datetime.fromtimestamp(int(claims["exp"]), UTC) + _LEEWAY <= now:
            raise SignInFailed("the ID token has expired")
        if datetime.fromtimestamp(int(claims["iat"]), UTC) - _LEEWAY > now:
            raise SignInFailed("the ID token is from the future")
        return claims

    async def _key(self, http: aiohttp.ClientSession, kid: str, metadata: dict[str, Any]) -> Any:
        if kid not in self._keys:  # keys roll over: fetch again for one we do not know
            async with http.get(metadata["jwks_uri"]) as response:
                response.raise_for_status()
                found = await response.json()
            self._keys = {
                str(k.get("kid", "")): jwt.PyJWK(k).key
                for k in found.get("keys", [])
                if k.get("kty") == "RSA"
            }
        if kid not in self._keys:
            raise SignInFailed("the ID token is signed with a key the issuer does not publish")
        return self._keys[kid]


def sign_in_routes(
    client: OidcClient,
    views: LiveViews,
    *,
    signer: Signer,
    base_url: str,
    render: Render,
) -> list[web.RouteDef]:
    """`/live`: sign in, then the networks this coordinator sees; `/auth/callback`."""
    secure = base_url.startswith("https://")
    redirect_uri = base_url.rstrip("/") + CALLBACK_PATH

    def set_cookie(response: web.StreamResponse, name: str, value: str, age: timedelta) -> None:
        response.set_cookie(
            name,
            value,
            max_age=int(age.total_seconds()),
            path="/",
            httponly=True,
            samesite="Lax",
            secure=secure,
        )

    def signed_in(request: web.Request) -> str | None:
        session = _opened(signer, "oidc-session", request.cookies.get(_SESSION_COOKIE))
        if session is None or float(session.get("until", 0)) <= views.clock().timestamp():
            return None
        who = session.get("who")
        return who if isinstance(who, str) else None

    def refused(status: int = 403) -> web.Response:
        return render(
            "refused.html.j2",
            status=status,
            title="You could not be signed in",
            root="",
        )

    async def live(request: web.Request) -> web.StreamResponse:
        who = signed_in(request)
        if who is None:
            state, nonce, verifier = (secrets.token_urlsafe(24) for _ in range(3))
            try:
                async with aiohttp.ClientSession() as http:
                    url = await client.authorize_url(
                        http, redirect_uri=redirect_uri, state=state, nonce=nonce, verifier=verifier
                    )
            except (SignInFailed, aiohttp.ClientError) as exc:
                log.warning("sign-in unavailable: the issuer did not answer as it should: %s", exc)
                return refused(502)
            response = web.Response(status=302, headers={"Location": url})
            until = (views.clock() + _FLOW_LIFETIME).timestamp()
            flow = {"state": state, "nonce": nonce, "verifier": verifier, "until": until}
            set_cookie(response, _FLOW_COOKIE, _sealed(signer, "oidc-flow", flow), _FLOW_LIFETIME)
            return response
        networks = await views.coordinated_by(who)
        return render(
            "signed_in.html.j2",
            title="Your networks",
            root="",
            who=who,
            networks=networks,
            csrf=signer.sign("oidc-csrf", who),
        )

    async def callback(request: web.Request) -> web.StreamResponse:
        flow = _opened(signer, "oidc-flow", request.cookies.get(_FLOW_COOKIE))
        state = request.query.get("state", "")
        code = request.query.get("code", "")
        if (
            flow is None
            or float(flow.get("until", 0)) <= views.clock().timestamp()
            or not secrets.compare_digest(str(flow.get("state", "")), state)
            or not code
        ):
            log.info("sign-in refused: no matching sign-in in progress")
            return refused()
        try:
            async with aiohttp.ClientSession() as http:
                who = await client.identify(
                    http,
                    code=code,
                    redirect_uri=redirect_uri,
                    verifier=str(flow["verifier"]),
                    nonce=str(flow["nonce"]),
                )
        except (SignInFailed, aiohttp.ClientError) as exc:
            log.info("sign-in refused: %s", exc)
            return refused()
        log.info("sign-in: a coordinator signed in")
        response = web.Response(status=303, headers={"Location": SIGN_IN_PATH})
        until = (views.clock() + SESSION_LIFETIME).timestamp()
        set_cookie(
            response,
            _SESSION_COOKIE,
            _sealed(signer, "oidc-session", {"who": who, "until": until}),
            SESSION_LIFETIME,
        )
        response.del_cookie(_FLOW_COOKIE, path="/")
        return response

    async def open_view(request: web.Request) -> web.StreamResponse:
        who = signed_in(request)
        try:
            form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        except ValueError:
            return refused()
        if who is None or not signer.verify("oidc-csrf", who, form.get("csrf", "")):
            return refused()
        url = await views.open_signed_in(
            who, form.get("plan", ""), form.get("network", ""), signer, base_url
        )
        if url is None:
            return refused()
        return web.Response(status=303, headers={"Location": url})

    return [
        web.get(SIGN_IN_PATH, live),
        web.post(SIGN_IN_PATH, open_view),
        web.get(CALLBACK_PATH, callback),
    ]
