"""Settings for running it: PULSE_HOME, MAIL_FROM_NAME, LOG_FORMAT."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import Settings


def test_the_shells_home_does_not_move_the_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """HOME (always set in a shell) is not PULSE_HOME: the defaults stay in the current folder."""
    monkeypatch.setenv("HOME", "/root")
    monkeypatch.delenv("PULSE_HOME", raising=False)
    settings = Settings(_env_file=None)
    assert settings.database_url == "sqlite+aiosqlite:///./var/pulse.db"
    assert settings.data_dir == Path("var")


def test_pulse_home_anchors_relative_folders_and_sqlite_files(tmp_path: Path) -> None:
    """Relative data folders and SQLite files are under PULSE_HOME; absolute ones and
    PostgreSQL are left as given."""
    home = Settings(_env_file=None, PULSE_HOME=tmp_path)
    assert home.data_dir == tmp_path / "var"
    assert home.database_url == f"sqlite+aiosqlite:///{tmp_path}/var/pulse.db"
    fixed = Settings(
        _env_file=None,
        PULSE_HOME=tmp_path,
        PULSE_DATA_DIR="/srv/pulse",
        DATABASE_URL="postgresql+asyncpg://u:p@db/pulse",
    )
    assert fixed.data_dir == Path("/srv/pulse")
    assert fixed.database_url == "postgresql+asyncpg://u:p@db/pulse"


def test_sender_carries_the_display_name() -> None:
    """MAIL_FROM_NAME is the display name on MAIL_FROM's address, encoded when not ASCII."""
    plain = Settings(_env_file=None, MAIL_FROM="pp@council.example")
    assert plain.sender == "pp@council.example"
    named = Settings(
        _env_file=None, MAIL_FROM="pp@council.example", MAIL_FROM_NAME="Wirral, Plan Pulse"
    )
    assert named.sender == '"Wirral, Plan Pulse" <pp@council.example>'


def test_log_format_is_text_or_json() -> None:
    """LOG_FORMAT takes text or json; anything else is refused."""
    assert Settings(_env_file=None, LOG_FORMAT="json").log_format == "json"
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        Settings(_env_file=None, LOG_FORMAT="xml")
