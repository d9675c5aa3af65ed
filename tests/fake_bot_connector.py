"""Microsoft's side of a Teams bot, on loopback (TESTING.md "Microsoft Teams without a tenant").

- `FakeIdentity`, over HTTPS with a `trustme` certificate authority (msal speaks nothing else):
  an Entra ID authority for the bot's client-credentials tokens
  (`/{tenant}/v2.0/.well-known/openid-configuration`, `/{tenant}/oauth2/v2.0/token`) and the
  Bot Framework's OpenID metadata and signing keys (`/v1/.well-known/openidconfiguration`,
  `/v1/keys`), whose RSA key `sign` uses for the JWTs of inbound activities.
- `FakeBotConnector`, over HTTP: the Bot Connector service of `serviceUrl`, recording every
  activity sent or updated and answering members by id; it refuses a call without the token
  the identity issued, answers 429 with Retry-After on demand, and with `enforce_limits`
  applies Teams' limits itself (per conversation 7 a second and 60 in 30 seconds; 30 a second
  for the whole app), answering 429 to whatever exceeds them.
"""

from __future__ import annotations

import json
import secrets
import ssl
import tempfile
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import trustme
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
KEY_ID = "test-signing-key"
TENANT = "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f"


async def _serve(app: web.Application, ssl_context: ssl.SSLContext | None) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context).start()
    return runner


def _port(runner: web.AppRunner) -> int:
    return int(runner.addresses[0][1])


class FakeIdentity:
    """Entra ID's token endpoint and the Bot Framework's signing keys, over HTTPS."""

    def __init__(self) -> None:
        self.ca = trustme.CA()
        self._cert = self.ca.issue_cert("127.0.0.1")
        self._folder = Path(tempfile.mkdtemp(prefix="fake-identity-"))
        self.ca_file = str(self._folder / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.issued: set[str] = set()
        self.token_requests: list[dict[str, str]] = []
        self.secret = "test-client-secret-" + secrets.token_hex(8)
        self.endorsements = ["msteams"]
        self._runner: web.AppRunner | None = None
        self.base = ""

    def client_ssl(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    async def start(self) -> None:
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(server)
        app = web.Application()
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._authority)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_get("/v1/.well-known/openidconfiguration", self._metadata)
        app.router.add_get("/v1/keys", self._keys)
        self._runner = await _serve(app, server)
        self.base = f"https://127.0.0.1:{_port(self._runner)}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def authority(self) -> str:
        return f"{self.base}/{TENANT}"

    @property
    def metadata_url(self) -> str:
        return f"{self.base}/v1/.well-known/openidconfiguration"

    async def _authority(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        root = f"{self.base}/{tenant}"
        return web.json_response(
            {
                "issuer": f"{root}/v2.0",
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "token_endpoint": f"{root}/oauth2/v2.0/token",
            }
        )

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_requests.append(form)
        if form.get("client_secret") != self.secret:
            return web.json_response(
                {"error": "invalid_client", "error_description": "AADSTS7000215: bad secret"},
                status=401,
            )
        token = "bot-token-" + secrets.token_hex(16)
        self.issued.add(token)
        return web.json_response(
            {"token_type": "Bearer", "expires_in": 3600, "access_token": token}
        )

    async def _metadata(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": BOT_FRAMEWORK_ISSUER,
                "jwks_uri": f"{self.base}/v1/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    async def _keys(self, request: web.Request) -> web.Response:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        public.update({"kid": KEY_ID, "use": "sig", "endorsements": self.endorsements})
        return web.json_response({"keys": [public]})

    def sign(
        self,
        *,
        audience: str,
        service_url: str | None,
        now: datetime,
        lifetime: timedelta = timedelta(hours=1),
        issuer: str = BOT_FRAMEWORK_ISSUER,
        forged: bool = False,
    ) -> str:
        """A Bot Framework JWT for an activity; `forged` signs it with a key nobody published."""
        claims: dict[str, Any] = {
            "iss": issuer,
            "aud": audience,
            "nbf": int(now.timestamp()) - 60,
            "iat": int(now.timestamp()) - 60,
            "exp": int((now + lifetime).timestamp()),
        }
        if service_url is not None:
            claims["serviceurl"] = service_url
        key = self.other_key if forged else self.key
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return jwt.encode(claims, pem, algorithm="RS256", headers={"kid": KEY_ID})


@dataclass
class Member:
    id: str
    name: str
    email: str
    aad_object_id: str = field(default_factory=lambda: secrets.token_hex(8))


class FakeBotConnector:
    """The Bot Connector service a conversation's `serviceUrl` points at."""

    def __init__(self, identity: FakeIdentity, *, enforce_limits: bool = False) -> None:
        self.identity = identity
        self.enforce_limits = enforce_limits
        self.members: dict[str, Member] = {}
        self.sent: list[tuple[str, dict[str, Any]]] = []  # (conversation, activity)
        self.updated: list[tuple[str, str, dict[str, Any]]] = []  # (conversation, id, activity)
        self.refused_unauthorized = 0
        self.throttled = 0  # 429s answered
        self.fail_next: list[int] = []  # statuses to answer the next sends with
        self.retry_after = "1"
        self._recent: dict[str, deque[float]] = {}
        self._recent_all: deque[float] = deque()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/teams/v3/conversations/{conversation}/members/{member}", self._member)
        app.router.add_post("/teams/v3/conversations/{conversation}/activities", self._send)
        app.router.add_put(
            "/teams/v3/conversations/{conversation}/activities/{activity}", self._update
        )
        self._runner = await _serve(app, None)
        self.url = f"http://127.0.0.1:{_port(self._runner)}/teams/"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        ok = scheme == "Bearer" and token in self.identity.issued
        if not ok:
            self.refused_unauthorized += 1
        return ok

    def _over_limits(self, conversation: str) -> float | None:
        """Seconds until this call would be within Teams' limits; None when it is now."""
        now = time.monotonic()
        recent = self._recent.setdefault(conversation, deque())
        while recent and now - recent[0] >= 30:
            recent.popleft()
        while self._recent_all and now - self._recent_all[0] >= 1:
            self._recent_all.popleft()
        last_second = [t for t in recent if now - t < 1]
        if len(last_second) >= 7:
            return 1 - (now - last_second[0])
        if len(recent) >= 60:
            return 30 - (now - recent[0])
        if len(self._recent_all) >= 30:
            return 1 - (now - self._recent_all[0])
        recent.append(now)
        self._recent_all.append(now)
        return None

    def _throttle(self, wait: str) -> web.Response:
        self.throttled += 1
        return web.json_response(
            {"error": {"code": "Throttled"}}, status=429, headers={"Retry-After": wait}
        )

    async def _member(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": {"code": "Unauthorized"}}, status=401)
        member = self.members.get(request.match_info["member"])
        if member is None:
            return web.json_response({"error": {"code": "MemberNotFound"}}, status=404)
        return web.json_response(
            {
                "id": member.id,
                "name": member.name,
                "aadObjectId": member.aad_object_id,
                "email": member.email,
                "userPrincipalName": member.email,
            }
        )

    async def _send(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": {"code": "Unauthorized"}}, status=401)
        conversation = request.match_info["conversation"]
        if self.fail_next:
            status = self.fail_next.pop(0)
            if status == 429:
                return self._throttle(self.retry_after)
            return web.json_response({"error": {"code": "ServiceError"}}, status=status)
        if self.enforce_limits:
            wait = self._over_limits(conversation)
            if wait is not None:
                return self._throttle(str(max(1, round(wait))))
        body = await request.json()
        self.sent.append((conversation, body))
        return web.json_response({"id": f"activity-{len(self.sent)}"}, status=201)

    async def _update(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": {"code": "Unauthorized"}}, status=401)
        body = await request.json()
        self.updated.append(
            (request.match_info["conversation"], request.match_info["activity"], body)
        )
        return web.json_response({"id": request.match_info["activity"]})

    def sent_to(self, conversation: str) -> list[Mapping[str, Any]]:
        return [activity for c, activity in self.sent if c == conversation]
