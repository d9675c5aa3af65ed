"""SASL XOAUTH2 and the Microsoft 365 tokens it carries, for both ends of email: SMTP
sending (`handlers.email.smtp`) and IMAP receiving (`handlers.email.imap`) log in with
`AUTH`/`AUTHENTICATE XOAUTH2` and a token from a `TokenProvider` — usually
`Ms365TokenProvider`, client-credentials tokens from Entra ID (RELIABILITY.md, "Decisions").

A token the server refuses is forgotten (`forget_token`) and fetched once more. Neither the
client secret, a token nor the XOAUTH2 string is ever logged or put into an error.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from bot.domain.errors import PulseError

if TYPE_CHECKING:
    from bot.settings import Settings

__all__ = [
    "MS365_SCOPES",
    "ClientCredentialsApp",
    "Ms365TokenProvider",
    "RefreshableTokenProvider",
    "TokenProvider",
    "TokenUnavailable",
    "forget_token",
    "xoauth2_string",
]

TokenProvider = Callable[[], Awaitable[str]]

MS365_SCOPES = ("https://outlook.office365.com/.default",)
# msal answers these when Entra ID itself is briefly unwell; anything else is a
# configuration problem (a wrong tenant, client id or secret, a missing consent).
_TEMPORARY_TOKEN_ERRORS = frozenset({"temporarily_unavailable", "server_error"})


class TokenUnavailable(PulseError):
    """No OAuth2 token could be had for SMTP or IMAP; `temporary` when asking again may help."""

    def __init__(self, message: str, *, temporary: bool = False) -> None:
        super().__init__(message)
        self.temporary = temporary


@runtime_checkable
class RefreshableTokenProvider(Protocol):
    """A token provider that can forget its cached token, so the next call fetches anew.
    A provider without `invalidate` is simply called again after a rejected token."""

    async def __call__(self) -> str: ...

    def invalidate(self) -> None: ...


def xoauth2_string(user: str, token: str) -> str:
    """The base64 argument of `AUTH XOAUTH2` (Google's and Microsoft's SASL XOAUTH2)."""
    raw = f"user={user}\x01auth=Bearer {token}\x01\x01"
    return base64.b64encode(raw.encode("utf-8")).decode("ascii")


def forget_token(provider: TokenProvider | None) -> None:
    """After the server refused a token: make `provider` fetch a new one next time, when
    it caches (a provider without `invalidate` is simply called again)."""
    if isinstance(provider, RefreshableTokenProvider):
        provider.invalidate()


class ClientCredentialsApp(Protocol):
    """The part of `msal.ConfidentialClientApplication` we use (a fake in tests)."""

    def acquire_token_for_client(self, scopes: list[str]) -> dict[str, Any]: ...

    def remove_tokens_for_client(self) -> None: ...


class Ms365TokenProvider:
    """Client-credentials tokens for Exchange Online SMTP and IMAP, cached until shortly
    before they expire. msal's blocking HTTP calls run in a thread."""

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        app: ClientCredentialsApp | None = None,
        clock: Callable[[], float] = time.monotonic,
        refresh_margin: float = 300.0,
    ) -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._client_secret = client_secret
        self._app = app
        self._clock = clock
        self._refresh_margin = refresh_margin
        self._token: str | None = None
        self._good_until = 0.0
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Ms365TokenProvider | None:
        """The provider MS365_TENANT_ID, MS365_CLIENT_ID and MS365_CLIENT_SECRET describe;
        None unless all three are set."""
        secret = settings.ms365_client_secret
        if not (settings.ms365_tenant_id and settings.ms365_client_id and secret is not None):
            return None
        if not secret.get_secret_value():
            return None
        return cls(
            tenant_id=settings.ms365_tenant_id,
            client_id=settings.ms365_client_id,
            client_secret=secret.get_secret_value(),
        )

    def __repr__(self) -> str:  # never show the secret or the token
        return f"Ms365TokenProvider(tenant_id={self.tenant_id!r}, client_id={self.client_id!r})"

    async def __call__(self) -> str:
        async with self._lock:
            if self._token is not None and self._clock() < self._good_until:
                return self._token
            result = await asyncio.to_thread(self._acquire)
            token = result.get("access_token")
            if not isinstance(token, str) or not token:
                error = str(result.get("error") or "no access_token")
                description = str(result.get("error_description") or "").strip()
                first_line = description.splitlines()[0] if description else ""
                raise TokenUnavailable(
                    "Microsoft 365 gave no mail token for client "
                    f"{self.client_id} in tenant {self.tenant_id}: {error}"
                    + (f" ({first_line})" if first_line else "")
                    + "; check MS365_TENANT_ID, MS365_CLIENT_ID and MS365_CLIENT_SECRET",
                    temporary=error in _TEMPORARY_TOKEN_ERRORS,
                )
            try:
                lifetime = float(result.get("expires_in") or 0)
            except (TypeError, ValueError):
                lifetime = 0.0
            # Refresh a while before the end, so a token never expires mid-connection
            # setup; short-lived tokens keep at least half their life.
            self._token = token
            self._good_until = self._clock() + max(
                0.0, lifetime - min(self._refresh_margin, lifetime / 2)
            )
            return token

    def invalidate(self) -> None:
        """Forget the cached token (the server refused it): the next call fetches anew."""
        self._token = None
        self._good_until = 0.0
        if self._app is not None:
            # msal (1.23+) serves client tokens from its own cache too.
            self._app.remove_tokens_for_client()

    def _acquire(self) -> dict[str, Any]:
        if self._app is None:
            self._app = self._build_app()
        return self._app.acquire_token_for_client(scopes=list(MS365_SCOPES))

    def _build_app(self) -> ClientCredentialsApp:
        # Imported here: msal pulls in requests, and its constructor fetches the tenant's
        # metadata over HTTP, which must not happen at import time or on the event loop.
        import msal  # type: ignore[import-untyped]

        return cast(
            ClientCredentialsApp,
            msal.ConfidentialClientApplication(
                self.client_id,
                authority=f"https://login.microsoftonline.com/{self.tenant_id}",
                client_credential=self._client_secret,
            ),
        )
