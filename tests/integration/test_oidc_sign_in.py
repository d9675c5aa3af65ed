"""Signing coordinators in to the live view with OpenID Connect (`WEB_SIGN_IN=oidc`, issue
14) against a small fake issuer on loopback that signs its ID tokens with a key of its own:
the real checks run (signature from the issuer's keys, issuer, audience, nonce, lifetime,
tenant), and the coordinator is known by `preferred_username`, never by the `email` claim;
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.postgres import free_port
from tests.web import Site, running_site, stop_site

TENANT = "7f1c6a52-0000-4000-8000-00000000c0de"
CLIENT = "pulse-live-view"


@dataclass
class FakeIssuer:
    """An OpenID provider on loopback that signs in whoever the test says, as Entra does."""

    base: str = ""
    key: Any = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    claims: dict[str, Any] = field(default_factory=dict)  # what the next token says
    now: float = 0.0  # the issuer's clock (the site's)
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(f"/{TENANT}/v2.0/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/authorize", self.authorize)
        app.router.add_post("/token", self.token)
        app.router.add_get("/keys", self.keys)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.base = f"http://127.0.0.1:{port}/{TENANT}/v2.0"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def discovery(self, request: web.Request) -> web.Response:
        root = self.base.rsplit(f"/{TENANT}", 1)[0]
        return web.json_response(
            {
                "issuer": self.base,
                "authorization_endpoint": f"{root}/authorize",
                "token_endpoint": f"{root}/token",
                "jwks_uri": f"{root}/keys",
            }
        )

    async def authorize(self, request: web.Request) -> web.Response:
        """The user signs in at once: back to the client with a code."""
        query = request.query
        assert query["code_challenge_method"] == "S256"
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"nonce": query["nonce"], "redirect_uri": query["redirect_uri"]}
        back = query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
        return web.Response(status=302, headers={"Location": back})

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        given = self.codes.pop(str(form["code"]), None)
        if given is None or form["client_secret"] != "s3cret-for-tests":
            return web.json_response({"error": "invalid_grant"}, status=400)
        claims = {
            "iss": self.base,
            "aud": CLIENT,
            "sub": "abc",
            "tid": TENANT,
            "nonce": given["nonce"],
            "iat": int(self.now),
            "exp": int(self.now) + 3600,
            **self.claims,
        }
        token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "k1"})
        return web.json_response({"id_token": token, "token_type": "Bearer"})

    async def keys(self, request: web.Request) -> web.Response:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return web.json_response({"keys": [{**jwk, "kid": "k1", "use": "sig"}]})


@pytest.fixture
async def issuer() -> AsyncIterator[FakeIssuer]:
    fake = FakeIssuer()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def oidc_site(db_url: str, tmp_path: Path, issuer: FakeIssuer) -> AsyncIterator[Site]:
    site = await running_site(
        db_url,
        tmp_path / "var",
        extra={
            "WEB_SIGN_IN": "oidc",
            "OIDC_ISSUER": issuer.base,
            "OIDC_CLIENT_ID": CLIENT,
            "OIDC_CLIENT_SECRET": "s3cret-for-tests",
            "OIDC_TENANT_ID": TENANT,
        },
    )
    issuer.now = site.clock().timestamp()
    yield site
    await stop_site(site)


async def sign_in(site: Site) -> tuple[int, str, aiohttp.ClientSession]:
    """Open /live in a fresh browser-like client (cookies kept, redirects followed)."""
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.get(site.base + "/live") as response:
        return response.status, await response.text(), http


async def test_a_coordinator_signs_in_and_opens_their_networks_view(
    oidc_site: Site, issuer: FakeIssuer
) -> None:
    """Signed in as the oversight group's chair (by preferred_username), /live lists that
    network only, and opening it shows its live view."""
    issuer.claims = {"preferred_username": "Chair@Council.example"}
    status, page, http = await sign_in(oidc_site)
    try:
        assert status == 200, page
        assert "Signed in as chair@council.example" in page
        assert "Plan oversight group" in page
        assert "Workforce network" not in page
        csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        form = {"csrf": csrf, "plan": "small", "network": "oversight"}
        async with http.post(oidc_site.base + "/live", data=form) as response:
            assert response.status == 200
            assert urlparse(str(response.url)).path.startswith("/v/")
            view = await response.text()
        assert "Plan oversight group" in view
        assert "2.3 Exit interview analysis" in view
        forged = {**form, "network": "workforce"}
        async with http.post(oidc_site.base + "/live", data=forged) as response:
            assert response.status == 403
    finally:
        await http.close()


@pytest.mark.parametrize(
    "claims",
    [
        {"preferred_username": "chair@council.example", "tid": "another-tenant"},
        {"preferred_username": "chair@council.example", "aud": "someone-else"},
        {"preferred_username": "chair@council.example", "exp": 1_000_000},
        {"email": "chair@council.example"},
    ],
    ids=["other tenant", "other audience", "expired", "email claim only"],
)
async def test_tokens_that_do_not_check_out_sign_nobody_in(
    oidc_site: Site, issuer: FakeIssuer, claims: dict[str, Any]
) -> None:
    """A token of another tenant, for another client, expired by our clock, or naming the
    coordinator only in its unverified `email` claim signs nobody in."""
    issuer.claims = claims
    status, page, http = await sign_in(oidc_site)
    await http.close()
    assert status == 403
    assert "You could not be signed in" in page
    assert "Plan oversight group" not in page


async def test_the_email_claim_never_decides_who_signed_in(
    oidc_site: Site, issuer: FakeIssuer
) -> None:
    """Someone whose preferred_username is not a coordinator's sees no network, whatever
    address their token's `email` claim gives."""
    issuer.claims = {
        "preferred_username": "someone@elsewhere.example",
        "email": "chair@council.example",
    }
    status, page, http = await sign_in(oidc_site)
    await http.close()
    assert status == 200
    assert "Signed in as someone@elsewhere.example" in page
    assert "Plan oversight group" not in page


async def test_a_callback_without_its_sign_in_is_refused(oidc_site: Site) -> None:
    """A callback with a state this browser did not start (a forged or replayed one) is
    refused, and sets no session."""
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
        http.get(
            oidc_site.base + "/auth/callback?" + urlencode({"code": "x", "state": "y"})
        ) as response,
    ):
        assert response.status == 403
        assert not [c for c in http.cookie_jar if c.key == "pulse_session"]
