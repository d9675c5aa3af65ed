"""Settings and the database as an admin meets them through the `pulse` binary (issue
10.10): a command that reads plans where there is no database says where it looked and
creates nothing; commands that need no database never make one; a bad DATABASE_URL or a
weak PULSE_SECRET_KEY is one line, never a traceback; `postgres://` URLs just work."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.e2e.test_cli import import_small, pulse, pulse_env

READERS = [
    ("status", "--plan", "small"),
    ("status", "--inbox"),
    ("digest", "--plan", "small"),
    ("export", "--plan", "small", "--format", "csv"),
    ("prompt", "--plan", "small"),
    ("run", "--once"),
]


def database(tmp: Path) -> Path:
    return tmp / "var" / "pulse.db"


@pytest.mark.parametrize("args", READERS, ids=lambda a: " ".join(a[:2]))
def test_a_command_that_reads_plans_says_where_it_looked(tmp_path: Path, args: tuple[str]) -> None:
    """Where no database exists, a reading command exits 1 naming the file it looked for,
    and leaves no empty database behind to report "no plan" next time."""
    out = pulse(tmp_path, *args)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stderr.count("\n") == 1
    assert f"no database at {database(tmp_path)}" in out.stderr
    assert "pulse init" in out.stderr
    assert not database(tmp_path).exists()


def test_init_and_import_create_the_database_and_readers_then_work(tmp_path: Path) -> None:
    """`import` makes the database where `status` looked, and `status` then reads it."""
    assert import_small(tmp_path).returncode == 0
    assert database(tmp_path).exists()
    out = pulse(tmp_path, "status", "--plan", "small")
    assert out.returncode == 0, out.stderr
    other = tmp_path / "other"
    other.mkdir()
    assert pulse(other, "init").returncode == 0
    assert database(other).exists()


def test_commands_that_need_no_database_never_create_one(tmp_path: Path) -> None:
    """`--version`, `reply` and `demo` (in its own folder) leave no database in the data
    folder; `check` reports that there is none yet and creates none either."""
    version = pulse(tmp_path, "--version")
    assert version.returncode == 0
    assert version.stdout.startswith("pulse ")
    prompt = EmailMessage()
    prompt["From"] = "Plan Pulse <plan-pulse@localhost>"
    prompt["To"] = "Dana Cole <dana.cole@council.example>"
    prompt["Subject"] = "Progress update for Small plan [PP-AAAAAAAAAAAAAAAAAAAAAAAAAA]"
    prompt["Message-ID"] = "<pp.a.prompt@localhost>"
    prompt.set_content("1.2-1 ...")
    eml = tmp_path / "prompt.eml"
    eml.write_bytes(prompt.as_bytes())
    assert pulse(tmp_path, "reply", eml, "1.2-1 3 under way").returncode == 0
    demo = pulse(tmp_path, "demo")
    assert demo.returncode == 0, demo.stderr
    check = pulse(tmp_path, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"ok   database: none yet at {database(tmp_path)}" in check.stdout
    assert not database(tmp_path).exists()
    assert (tmp_path / "var" / "demo" / "pulse.db").exists()


@pytest.mark.parametrize(
    "url", ["mysql://pulse@db/pulse", "sqlite://", "./var/pulse.db", "postgresql://db:x/p"]
)
def test_a_bad_database_url_is_one_line_naming_the_forms(tmp_path: Path, url: str) -> None:
    """An unusable DATABASE_URL exits 2 with one line naming the accepted forms, no
    traceback, whatever the command."""
    for args in (("init",), ("status", "--plan", "small")):
        out = pulse(tmp_path, *args, db_url=url)
        assert out.returncode == 2
        assert out.stderr.count("\n") == 1, out.stderr
        assert "Traceback" not in out.stderr
        assert "postgresql://" in out.stderr
        assert "sqlite:///" in out.stderr


def test_a_sqlite_url_as_pasted_is_used(tmp_path: Path) -> None:
    """`sqlite:///path` (no driver) works as `sqlite+aiosqlite:///path`."""
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    assert pulse(tmp_path, "init", db_url=url).returncode == 0
    assert (tmp_path / "plain.db").exists()


@pytest.mark.parametrize("key", ["k" * 40, "too-short-for-a-key"])
def test_a_weak_secret_key_is_one_line_and_not_echoed(tmp_path: Path, key: str) -> None:
    """A weak PULSE_SECRET_KEY stops every command with one line that never shows it."""
    out = pulse_env(tmp_path, {"PULSE_SECRET_KEY": key}, "status", "--plan", "small")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1, out.stderr
    assert "PULSE_SECRET_KEY is too weak" in out.stderr
    assert key not in out.stderr + out.stdout


def test_local_mode_keeps_a_private_key_in_the_data_folder(tmp_path: Path) -> None:
    """Running a cycle in local mode without a key makes `var/secret.key`, mode 0600."""
    assert import_small(tmp_path).returncode == 0
    out = pulse(tmp_path, "run", "--once", "--now", "2026-11-23T09:05")
    assert out.returncode == 0, out.stderr
    key = tmp_path / "var" / "secret.key"
    assert key.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgres_urls_as_pasted_work_and_a_missing_database_is_named(
    tmp_path: Path, db_url: str
) -> None:
    """`postgres://` and `postgresql://` URLs reach PostgreSQL through asyncpg; a database
    that does not exist on the server is one line naming it."""
    rest = db_url.split("://", 1)[1]
    pasted = f"postgres://{rest}"
    assert (
        pulse(tmp_path, "import", EXAMPLES / "wirral" / "plan.yaml", db_url=pasted).returncode == 0
    )
    out = pulse(tmp_path, "status", "--plan", "wirral", db_url=f"postgresql://{rest}")
    assert out.returncode == 0, out.stderr
    missing = f"postgresql://{rest.rsplit('/', 1)[0]}/no_such_db"
    out = pulse(tmp_path, "status", "--plan", "wirral", db_url=missing)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1, out.stderr
    assert "no database 'no_such_db'" in out.stderr
