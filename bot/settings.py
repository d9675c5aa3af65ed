"""Settings from the environment (or `.env`), DESIGN.md §12. Only `bot.cli` reads them from
the environment; tests build `Settings(...)` directly."""

from __future__ import annotations

import contextlib
import os
import secrets
from email.utils import formataddr, parseaddr
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.domain.errors import ConfigError
from bot.signing import Signer
from storage.db import is_database_url, redacted_url, sqlite_url_under

MIN_SECRET_LENGTH = 32
SECRET_FILE = "secret.key"  # in PULSE_DATA_DIR, local mode only
DATABASE_FORMS = (
    "postgresql://, postgres:// or postgresql+asyncpg:// (PostgreSQL); "
    "sqlite:///PATH or sqlite+aiosqlite:///PATH (SQLite)"
)


def _given(secret: SecretStr | None) -> bool:
    return secret is not None and bool(secret.get_secret_value().strip())


def weak_secret(key: str) -> str | None:
    """Why `key` is too weak to sign with, or None when it will do."""
    if len(key) < MIN_SECRET_LENGTH:
        return f"it has {len(key)} characters; give at least {MIN_SECRET_LENGTH} random ones"
    if len(set(key)) == 1:
        return "it is one character repeated; give random characters"
    return None


def database_url(value: str) -> str:
    """`DATABASE_URL` in the form the engine needs: `postgresql://` and `postgres://` use
    asyncpg, `sqlite:///` uses aiosqlite. Anything else is a ValueError naming the forms."""
    text = value.strip()
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    url: str | None = None
    if sep and rest:
        if scheme in ("postgresql", "postgres", "postgresql+asyncpg"):
            url = f"postgresql+asyncpg://{rest}"
        elif scheme in ("sqlite", "sqlite+aiosqlite") and rest not in ("/", "/:memory:"):
            url = f"sqlite+aiosqlite://{rest}" if rest.startswith("/") else None
    if url is not None and not is_database_url(url):
        url = None
    if url is None:
        raise ValueError(f"not a database URL Plan Pulse can use; give {DATABASE_FORMS}")
    return url


class Settings(BaseSettings):
    """Every setting Plan Pulse reads; `.env.example` lists each with a comment."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        # `.env.example` copied as it is leaves settings empty: empty means "not set".
        env_ignore_empty=True,
    )

    database_url: str = Field(default="sqlite+aiosqlite:///./var/pulse.db", alias="DATABASE_URL")
    data_dir: Path = Field(default=Path("./var"), alias="PULSE_DATA_DIR")
    secret_key: SecretStr = Field(default=SecretStr(""), alias="PULSE_SECRET_KEY")
    log_level: str = Field(default="INFO", alias="PULSE_LOG_LEVEL")

    slack_bot_token: SecretStr | None = Field(default=None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(default=None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(default=None, alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(default="https://slack.com/api/", alias="SLACK_API_URL")
    # Seconds between two posts to Teams channels through Workflows webhooks (a site's flows
    # usually share one account's Teams connection, which Power Automate throttles).
    teams_post_interval: float = Field(default=1.0, ge=0, le=60, alias="TEAMS_POST_INTERVAL")
    # Microsoft Teams prompts (handlers/teams): the bot's Entra ID app registration. On when
    # the app id and its client secret are set; TEAMS_TENANT_ID makes it single-tenant.
    teams_app_id: str | None = Field(default=None, alias="TEAMS_APP_ID")
    teams_app_password: SecretStr | None = Field(default=None, alias="TEAMS_APP_PASSWORD")
    teams_tenant_id: str | None = Field(default=None, alias="TEAMS_TENANT_ID")
    # Where the signing keys of inbound activities are published, and where the bot gets its
    # own tokens: Microsoft's unless pointed elsewhere (a national cloud, or tests).
    teams_openid_metadata_url: str = Field(
        default="https://login.botframework.com/v1/.well-known/openidconfiguration",
        alias="TEAMS_OPENID_METADATA_URL",
    )
    teams_authority: str | None = Field(default=None, alias="TEAMS_AUTHORITY")
    # A CA bundle to trust, instead of the system's, for those two (a TLS-inspecting proxy).
    teams_ca_file: Path | None = Field(default=None, alias="TEAMS_CA_FILE")
    http_host: str = Field(default="127.0.0.1", alias="HTTP_HOST")
    http_port: int = Field(default=3000, alias="HTTP_PORT")
    # `/healthz` and `/metrics` (README "Health and metrics"): loopback unless opened up.
    metrics_host: str = Field(default="127.0.0.1", alias="METRICS_HOST")
    metrics_port: int = Field(default=9464, ge=0, le=65535, alias="METRICS_PORT")
    # The web pages (handlers/web): the address their links start with, and the proxies
    # whose X-Forwarded-For is believed (comma-separated addresses or networks).
    base_url: str | None = Field(default=None, alias="PULSE_BASE_URL")
    trusted_proxies: str = Field(default="", alias="TRUSTED_PROXIES")
    # The coordinators' live view: reached by the links in digest emails (`link`), or also
    # by signing in with OpenID Connect (`oidc`; Microsoft Entra ID or any issuer).
    web_sign_in: Literal["link", "oidc"] = Field(default="link", alias="WEB_SIGN_IN")
    oidc_issuer: str | None = Field(default=None, alias="OIDC_ISSUER")
    oidc_client_id: str | None = Field(default=None, alias="OIDC_CLIENT_ID")
    oidc_client_secret: SecretStr | None = Field(default=None, alias="OIDC_CLIENT_SECRET")
    oidc_tenant_id: str | None = Field(default=None, alias="OIDC_TENANT_ID")

    smtp_host: str | None = Field(default=None, alias="SMTP_HOST")
    smtp_port: int = Field(default=587, alias="SMTP_PORT")
    smtp_username: str | None = Field(default=None, alias="SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(default=None, alias="SMTP_PASSWORD")
    smtp_tls: Literal["starttls", "tls", "none"] = Field(default="starttls", alias="SMTP_TLS")
    mail_from: str = Field(default="plan-pulse@localhost", alias="MAIL_FROM")

    imap_host: str | None = Field(default=None, alias="IMAP_HOST")
    imap_port: int = Field(default=993, alias="IMAP_PORT")
    imap_username: str | None = Field(default=None, alias="IMAP_USERNAME")
    imap_password: SecretStr | None = Field(default=None, alias="IMAP_PASSWORD")
    imap_folder: str = Field(default="INBOX", alias="IMAP_FOLDER")

    ms365_tenant_id: str | None = Field(default=None, alias="MS365_TENANT_ID")
    ms365_client_id: str | None = Field(default=None, alias="MS365_CLIENT_ID")
    ms365_client_secret: SecretStr | None = Field(default=None, alias="MS365_CLIENT_SECRET")

    # The inbound SMTP listener (handlers/email/listener.py): off unless a port is given.
    smtp_listen_host: str = Field(default="127.0.0.1", alias="SMTP_LISTEN_HOST")
    smtp_listen_port: int | None = Field(default=None, alias="SMTP_LISTEN_PORT")
    smtp_listen_max_bytes: int = Field(
        default=10 * 1024 * 1024, gt=0, alias="SMTP_LISTEN_MAX_BYTES"
    )

    # Inbound mail deciding (RELIABILITY.md "Decisions"): larger messages are kept unread.
    max_inbound_bytes: int = Field(default=10 * 1024 * 1024, alias="MAX_INBOUND_BYTES")
    bounce_limit: int = Field(default=3, alias="BOUNCE_LIMIT")
    trusted_authserv_id: str | None = Field(default=None, alias="TRUSTED_AUTHSERV_ID")

    # Retention (README "Personal data"): days before raw inbound mail and the bodies of
    # delivered messages are dropped; 0 keeps them.
    retain_raw_mail_days: int = Field(default=90, ge=0, alias="RETAIN_RAW_MAIL_DAYS")
    retain_sent_days: int = Field(default=90, ge=0, alias="RETAIN_SENT_DAYS")

    # Running it (README "Deploying", "Operating it").
    # Not `home`: the shell's own HOME would be read for it.
    pulse_home: Path = Field(default=Path("."), alias="PULSE_HOME")
    log_format: Literal["text", "json"] | None = Field(default=None, alias="LOG_FORMAT")
    mail_from_name: str | None = Field(default=None, alias="MAIL_FROM_NAME")
    # Bounce-limit, Slack-token and needs-review alerts are emailed here too (bot/services/alerts).
    admin_email: str | None = Field(default=None, alias="ADMIN_EMAIL")

    @property
    def sender(self) -> str:
        """The From of every message we send: MAIL_FROM with MAIL_FROM_NAME, when given."""
        name, address = parseaddr(self.mail_from)
        return formataddr(((self.mail_from_name or "").strip() or name, address or self.mail_from))

    @model_validator(mode="after")
    def _relative_to_home(self) -> Settings:
        """Relative folders and SQLite files are under PULSE_HOME, so that a command run
        from any folder finds the same data (with no PULSE_HOME: the current folder)."""
        if self.pulse_home == Path("."):
            return self
        if not self.data_dir.is_absolute():
            self.data_dir = self.pulse_home / self.data_dir
        self.database_url = sqlite_url_under(self.database_url, self.pulse_home)
        return self

    @property
    def slack_enabled(self) -> bool:
        return _given(self.slack_bot_token) and _given(self.slack_signing_secret)

    @property
    def teams_enabled(self) -> bool:
        return bool((self.teams_app_id or "").strip()) and _given(self.teams_app_password)

    @property
    def teams_token_authority(self) -> str:
        """Where the bot's client-credentials tokens come from: TEAMS_AUTHORITY, else
        Microsoft's, for the tenant when single-tenant and Bot Framework's otherwise."""
        if self.teams_authority and self.teams_authority.strip():
            return self.teams_authority.strip().rstrip("/")
        tenant = (self.teams_tenant_id or "").strip() or "botframework.com"
        return f"https://login.microsoftonline.com/{tenant}"

    @property
    def local_mode(self) -> bool:
        """No Slack and no SMTP: mail goes to files under the data folder."""
        return not self.slack_enabled and not self.smtp_host

    @property
    def web_base_url(self) -> str:
        """Where the web pages are reached: PULSE_BASE_URL, else the server's own address."""
        if self.base_url and self.base_url.strip():
            return self.base_url.strip().rstrip("/")
        host = f"[{self.http_host}]" if ":" in self.http_host else self.http_host
        return f"http://{host}:{self.http_port}"

    @property
    def mail_dir(self) -> Path:
        return self.data_dir / "mail"

    @field_validator("database_url", mode="before")
    @classmethod
    def _usable_database_url(cls, value: object) -> str:
        return database_url(str(value))

    @field_validator("base_url")
    @classmethod
    def _usable_base_url(cls, value: str | None) -> str | None:
        if value and not value.strip().lower().startswith(("http://", "https://")):
            raise ValueError("PULSE_BASE_URL must start with https:// (or http://)")
        return value

    @field_validator("teams_openid_metadata_url", "teams_authority")
    @classmethod
    def _https_only(cls, value: str | None) -> str | None:
        if value and not value.strip().lower().startswith("https://"):
            raise ValueError("Teams' OpenID metadata and token authority must be https:// URLs")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _usable_proxies(cls, value: str) -> str:
        import ipaddress

        for part in value.split(","):
            if part.strip():
                try:
                    ipaddress.ip_network(part.strip(), strict=False)
                except ValueError:
                    raise ValueError(
                        f"TRUSTED_PROXIES: {part.strip()!r} is not an address or network"
                    ) from None
        return value

    @model_validator(mode="after")
    def _strong_secret(self) -> Settings:
        key = self.secret_key.get_secret_value()
        if not key.strip():
            if not self.local_mode:
                raise ValueError(
                    "PULSE_SECRET_KEY must be set when Slack or SMTP is configured (it signs "
                    f"prompt tokens): give at least {MIN_SECRET_LENGTH} random characters"
                )
            return self
        weak = weak_secret(key)
        if weak is not None:
            raise ValueError(f"PULSE_SECRET_KEY is too weak to sign with: {weak}")
        return self

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        if self.web_sign_in != "oidc":
            return self
        missing = [
            name
            for name, value in (
                ("OIDC_ISSUER", self.oidc_issuer),
                ("OIDC_CLIENT_ID", self.oidc_client_id),
                ("OIDC_CLIENT_SECRET", self.oidc_client_secret),
                ("OIDC_TENANT_ID", self.oidc_tenant_id),
            )
            if not (
                value.get_secret_value() if isinstance(value, SecretStr) else value or ""
            ).strip()
        ]
        if missing:
            raise ValueError(f"WEB_SIGN_IN=oidc needs {', '.join(missing)}")
        if not (self.oidc_issuer or "").startswith(("https://", "http://127.", "http://localhost")):
            raise ValueError("OIDC_ISSUER must be an https:// address")
        return self

    def signer(self) -> Signer:
        """The signer of what we hand out, keyed by `PULSE_SECRET_KEY`; in local mode
        without one, by a key generated once and kept in the data folder (mode 0600)."""
        key = self.secret_key.get_secret_value()
        if key.strip():
            return Signer(key)
        return Signer(self._local_secret())

    def _local_secret(self) -> str:
        path = self.data_dir / SECRET_FILE
        if not path.exists():
            _create_secret_file(path)
        key = path.read_text(encoding="utf-8").strip()
        weak = weak_secret(key)
        if weak is not None:
            raise ConfigError(f"the secret key in {path} is too weak to sign with: {weak}")
        return key

    def redacted_database_url(self) -> str:
        return redacted_url(self.database_url)


def _create_secret_file(path: Path) -> None:
    """A new random key at `path`, readable by its owner only (0600). Written aside and
    linked into place, so a process starting at the same moment reads a whole key: one of
    the two wins and both use it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(secrets.token_urlsafe(48) + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    finally:
        aside.unlink(missing_ok=True)
