"""Settings from the environment (or `.env`), DESIGN.md §12. Only `bot.cli` reads them from
the environment; tests build `Settings(...)` directly."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_PLACEHOLDERS = {"", "change-me", "changeme", "secret", "xxx", "todo", "replace-me"}


def _given(secret: SecretStr | None) -> bool:
    return secret is not None and bool(secret.get_secret_value().strip())


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
    http_host: str = Field(default="127.0.0.1", alias="HTTP_HOST")
    http_port: int = Field(default=3000, alias="HTTP_PORT")

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

    # The inbound SMTP listener (handlers/smtp_listener.py): off unless a port is given.
    smtp_listen_host: str = Field(default="127.0.0.1", alias="SMTP_LISTEN_HOST")
    smtp_listen_port: int | None = Field(default=None, alias="SMTP_LISTEN_PORT")
    smtp_listen_max_bytes: int = Field(
        default=10 * 1024 * 1024, gt=0, alias="SMTP_LISTEN_MAX_BYTES"
    )

    # Inbound mail deciding (RELIABILITY.md "Decisions"): larger messages are kept unread.
    max_inbound_bytes: int = Field(default=10 * 1024 * 1024, alias="MAX_INBOUND_BYTES")
    bounce_limit: int = Field(default=3, alias="BOUNCE_LIMIT")
    trusted_authserv_id: str | None = Field(default=None, alias="TRUSTED_AUTHSERV_ID")

    @property
    def slack_enabled(self) -> bool:
        return _given(self.slack_bot_token) and _given(self.slack_signing_secret)

    @property
    def local_mode(self) -> bool:
        """No Slack and no SMTP: mail goes to files under the data folder."""
        return not self.slack_enabled and not self.smtp_host

    @property
    def mail_dir(self) -> Path:
        return self.data_dir / "mail"

    @model_validator(mode="after")
    def _secrets_outside_local_mode(self) -> Settings:
        if not self.local_mode:
            key = self.secret_key.get_secret_value()
            if key.strip().casefold() in _PLACEHOLDERS or len(key) < 16:
                raise ValueError(
                    "PULSE_SECRET_KEY must be set to a random value of at least 16 characters "
                    "when Slack or SMTP is configured (it signs prompt tokens)"
                )
        return self

    def redacted_database_url(self) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.database_url).render_as_string(hide_password=True)
