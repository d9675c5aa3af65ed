"""Settings that mean what they say (issue 10.10): PULSE_SECRET_KEY signs what we hand out
and refuses weak values, local mode keeps a generated key in the data folder, and
DATABASE_URL takes the forms people paste or says in one line which ones it takes."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bot.messages.emails import find_tokens, new_token, token_hash
from bot.settings import Settings
from bot.signing import Signer

STRONG = "Vq3xN8r2LmT7pZs1Kd6Wf0Hj4Yc9Ba5E"


def settings(**env: Any) -> Settings:
    return Settings(_env_file=None, **env)


def errors(**env: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        settings(**env)
    return [e["msg"] for e in caught.value.errors()]


SLACK = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s" * 20}
SMTP = {"SMTP_HOST": "smtp.council.example"}


@pytest.mark.parametrize("mode", [{}, SLACK, SMTP], ids=["local", "slack", "smtp"])
@pytest.mark.parametrize("key", ["k" * 32, "x" * 64, "0123456789abcdef", STRONG[:31], "change-me"])
def test_a_weak_secret_key_is_refused_in_every_mode(mode: dict[str, str], key: str) -> None:
    """A key under 32 characters, or one character repeated, is refused with one message
    that says why, and never shows the key."""
    messages = errors(PULSE_SECRET_KEY=key, **mode)
    assert len(messages) == 1
    assert "PULSE_SECRET_KEY is too weak" in messages[0]
    assert key not in messages[0]


@pytest.mark.parametrize("mode", [SLACK, SMTP], ids=["slack", "smtp"])
def test_outside_local_mode_a_secret_key_is_required(mode: dict[str, str]) -> None:
    """With Slack or SMTP configured and no key, the settings are refused, naming it."""
    assert any("PULSE_SECRET_KEY must be set" in m for m in errors(**mode))
    assert settings(PULSE_SECRET_KEY=STRONG, **mode).signer().sign("x", "y")


def test_local_mode_generates_a_key_once_and_keeps_it_private(tmp_path: Path) -> None:
    """Local mode without a key makes one in the data folder, readable by its owner only,
    and every later start signs with the same key."""
    data = tmp_path / "var"
    first = settings(PULSE_DATA_DIR=data).signer()
    key_file = data / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_text().strip()) >= 32
    again = settings(PULSE_DATA_DIR=data).signer()
    assert again.sign("prompt", "42") == first.sign("prompt", "42")
    other = settings(PULSE_DATA_DIR=tmp_path / "elsewhere").signer()
    assert other.sign("prompt", "42") != first.sign("prompt", "42")


def test_a_given_key_is_used_and_no_key_file_is_made(tmp_path: Path) -> None:
    """A key from the environment signs, and nothing is written to the data folder."""
    signer = settings(PULSE_DATA_DIR=tmp_path, PULSE_SECRET_KEY=STRONG).signer()
    assert signer.verify("prompt", "42", Signer(STRONG).sign("prompt", "42"))
    assert not (tmp_path / "secret.key").exists()


def test_signatures_are_bound_to_key_purpose_and_message() -> None:
    """A signature checks only with its own key, purpose and message."""
    signer = Signer(STRONG)
    signature = signer.sign("link", "prompt=7")
    assert signer.verify("link", "prompt=7", signature)
    assert not signer.verify("link", "prompt=8", signature)
    assert not signer.verify("token", "prompt=7", signature)
    assert not Signer(STRONG[::-1]).verify("link", "prompt=7", signature)
    assert not signer.verify("link", "prompt=7", "é" + signature[1:])
    assert STRONG not in repr(signer)


def test_prompt_tokens_are_signed_and_a_foreign_token_never_meets_a_signed_one() -> None:
    """A signed token keeps the subject form `[PP-…]`, and is stored under a keyed hash;
    the same token read with another key (or none) hashes into the unsigned space, so it
    can only ever match a token issued before signing."""
    signer = Signer(STRONG)
    token = new_token(signer)
    assert find_tokens(f"Progress update [PP-{token}]") == [token]
    assert token_hash(token, signer) == token_hash(token.lower(), signer)
    assert token_hash(token, signer).startswith("k")
    assert not token_hash(token, Signer(STRONG[::-1])).startswith("k")
    assert not token_hash(token).startswith("k")
    assert token_hash(token, Signer(STRONG[::-1])) == token_hash(token)
    unsigned = new_token()
    assert token_hash(unsigned, signer) == token_hash(unsigned)


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://pulse:pw@db.council.example/pulse", "postgresql+asyncpg://pulse:pw@"),
        ("postgres://pulse:pw@db.council.example:5433/pulse", "postgresql+asyncpg://pulse:pw@"),
        ("postgresql+asyncpg://pulse@localhost/pulse", "postgresql+asyncpg://pulse@"),
        ("sqlite:///./var/pulse.db", "sqlite+aiosqlite:///./var/pulse.db"),
        ("sqlite:////srv/pulse/pulse.db", "sqlite+aiosqlite:////srv/pulse/pulse.db"),
        ("sqlite+aiosqlite:///./var/pulse.db", "sqlite+aiosqlite:///./var/pulse.db"),
    ],
)
def test_database_urls_as_people_paste_them_are_accepted(given: str, used: str) -> None:
    """The URL forms people copy from a host's dashboard or the SQLAlchemy docs work."""
    assert settings(DATABASE_URL=given).database_url.startswith(used)


@pytest.mark.parametrize(
    "given",
    [
        "mysql://pulse@db/pulse",
        "postgresql+psycopg2://pulse@db/pulse",
        "sqlite://",
        "sqlite:///:memory:",
        "./var/pulse.db",
        "postgresql://db:notaport/pulse",
        "https://db.council.example",
    ],
)
def test_any_other_database_url_is_one_line_naming_the_forms(given: str) -> None:
    """Anything else is refused with one line that names every accepted form."""
    messages = errors(DATABASE_URL=given)
    assert len(messages) == 1
    assert "\n" not in messages[0]
    for form in ("postgresql://", "postgres://", "sqlite:///"):
        assert form in messages[0]


def test_teams_is_on_with_its_app_id_and_secret_and_gets_tokens_from_its_tenant() -> None:
    """Teams is on only with both TEAMS_APP_ID and TEAMS_APP_PASSWORD; the bot's tokens come
    from its tenant when single-tenant, from Bot Framework's otherwise."""
    assert not settings(TEAMS_APP_ID="app").teams_enabled
    on = settings(TEAMS_APP_ID="app", TEAMS_APP_PASSWORD="secret", TEAMS_TENANT_ID="t-1")
    assert on.teams_enabled
    assert on.teams_token_authority == "https://login.microsoftonline.com/t-1"
    multi = settings(TEAMS_APP_ID="app", TEAMS_APP_PASSWORD="secret")
    assert multi.teams_token_authority == "https://login.microsoftonline.com/botframework.com"


def test_teams_key_and_token_addresses_must_be_https() -> None:
    """Signing keys or tokens fetched over plain HTTP could be swapped on the way: refused."""
    (message,) = errors(TEAMS_OPENID_METADATA_URL="http://login.example/openid")
    assert "https://" in message
    (message,) = errors(TEAMS_AUTHORITY="http://login.example/tenant")
    assert "https://" in message
