"""Operating `pulse` as an admin does: where it keeps its data (PULSE_HOME),
what it logs and in which form, and the name on the mail it sends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from email import message_from_bytes
from email.policy import default
from email.utils import parseaddr
from pathlib import Path

from tests.conftest import EXAMPLES
from tests.e2e.test_cli import PULSE, environment, import_small, pulse, pulse_env
from tests.e2e.test_run import wait_for


def test_pulse_home_holds_the_env_file_and_the_data_wherever_commands_run(
    tmp_path: Path,
) -> None:
    """With PULSE_HOME set, `.env` is read from it and the data lives in its `var/`, whichever
    folder a command is run from."""
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    (home / ".env").write_text("MAIL_FROM=pulse@wirral.example\n", encoding="utf-8")
    env = {
        k: v
        for k, v in environment(tmp_path).items()
        if k not in ("PULSE_DATA_DIR", "DATABASE_URL", "MAIL_FROM")
    }
    env["PULSE_HOME"] = str(home)
    run = [str(PULSE), "import", str(EXAMPLES / "wirral" / "plan.yaml")]
    done = subprocess.run(run, cwd=elsewhere, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert (home / "var" / "pulse.db").exists()
    assert not (elsewhere / "var").exists()
    once = [str(PULSE), "run", "--once", "--now", "2026-11-23T09:05"]
    done = subprocess.run(once, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    prompts = sorted((home / "var" / "mail" / "outbox").glob("*-prompt.eml"))
    assert prompts
    sent = message_from_bytes(prompts[0].read_bytes(), policy=default)
    assert parseaddr(str(sent["From"]))[1] == "pulse@wirral.example"


def test_mail_from_name_is_the_display_name_on_what_we_send(tmp_path: Path) -> None:
    """MAIL_FROM_NAME puts a display name on prompts; the address is still MAIL_FROM's."""
    assert import_small(tmp_path).returncode == 0
    extra = {"MAIL_FROM": "pulse@council.example", "MAIL_FROM_NAME": "Wirral Plan Pulse"}
    done = pulse_env(tmp_path, extra, "run", "--once", "--now", "2026-11-23T09:05")
    assert done.returncode == 0, done.stderr
    outbox = tmp_path / "var" / "mail" / "outbox"
    for path in outbox.glob("*.eml"):
        sent = message_from_bytes(path.read_bytes(), policy=default)
        assert parseaddr(str(sent["From"])) == ("Wirral Plan Pulse", "pulse@council.example")


def _run_until_sent(tmp: Path, log_format: str) -> str:
    """Start `pulse run`, wait for the first prompts to be written, stop it; its stderr."""
    env = environment(tmp, LOG_FORMAT=log_format)
    bot = subprocess.Popen(
        [str(PULSE), "run"], cwd=tmp, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        outbox = tmp / "var" / "mail" / "outbox"
        wait_for(lambda: outbox.exists() and any(outbox.glob("*-prompt.eml")))
        bot.send_signal(signal.SIGINT)
        _, err = bot.communicate(timeout=30)
    finally:
        if bot.poll() is None:
            bot.kill()
            bot.communicate()
    assert bot.returncode == 0, err
    return err.decode()


def test_run_logs_text_without_scheduler_chatter(tmp_path: Path) -> None:
    """As text, `pulse run` says once what runs and how to stop it, and the scheduler's own
    job lines are gone; what the bot did is still there."""
    assert import_small(tmp_path).returncode == 0
    assert pulse(tmp_path, "prompt", "--plan", "small").returncode == 0
    err = _run_until_sent(tmp_path, "text")
    lines = err.splitlines()
    assert sum("Ctrl-C to stop" in line for line in lines) == 1
    assert "local mode" in next(line for line in lines if "Ctrl-C to stop" in line)
    assert "apscheduler" not in err
    assert "sent prompt email" in err


def test_run_logs_json_for_collectors(tmp_path: Path) -> None:
    """With LOG_FORMAT=json every line on stderr is one JSON object with level and message."""
    assert import_small(tmp_path).returncode == 0
    assert pulse(tmp_path, "prompt", "--plan", "small").returncode == 0
    err = _run_until_sent(tmp_path, "json")
    entries = [json.loads(line) for line in err.splitlines()]
    assert any("Ctrl-C to stop" in e["message"] for e in entries)
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)


def test_a_command_prints_its_summary_once_on_a_terminal(tmp_path: Path) -> None:
    """In text form a command's summary is printed on stdout and not logged again."""
    done = pulse_env(
        tmp_path,
        {"LOG_FORMAT": "text"},
        "import",
        EXAMPLES / "wirral" / "plan.yaml",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("imported new plan wirral") == 1
    assert "imported new plan wirral" not in done.stderr


def test_log_format_is_checked() -> None:
    """An unknown LOG_FORMAT is a one-line configuration error, exit code 2."""
    env = {**os.environ, "LOG_FORMAT": "xml"}
    done = subprocess.run(
        [str(PULSE), "init"], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "LOG_FORMAT" in done.stderr


def test_usage_errors_are_one_line_each(tmp_path: Path) -> None:
    """A bad option value, a missing file or an unknown command is one line on stderr,
    naming the problem and where help is, with exit code 2."""
    for args in (
        ("prompt", "--plan", "small", "--now", "someday"),
        ("digest", "--plan", "small", "--format", "pdf"),
        ("import", tmp_path / "missing.csv"),
        ("frobnicate",),
    ):
        done = pulse(tmp_path, *args)
        assert done.returncode == 2, args
        assert done.stderr.startswith("error: "), done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
        assert "--help" in done.stderr
        assert "╭" not in done.stderr


def test_dry_run_is_a_plain_flag_in_help(tmp_path: Path) -> None:
    """Help lists `--dry-run` as a flag, without a value placeholder."""
    for command in ("prompt", "import", "retention"):
        shown = pulse(tmp_path, command, "--help").stdout
        line = next(line for line in shown.splitlines() if "--dry-run" in line)
        assert line.split()[0] == "--dry-run"
        assert "<bool>" not in line


def test_unknown_person_and_network_keys_list_the_valid_ones(tmp_path: Path) -> None:
    """`--person` or `--network` with a key the plan lacks is an error listing its keys."""
    assert import_small(tmp_path).returncode == 0
    person = pulse(tmp_path, "prompt", "--plan", "small", "--person", "ZZ", "--dry-run")
    assert person.returncode == 1
    assert person.stderr.strip() == (
        "error: plan 'small' has no person 'ZZ'; known: AW, DC, GR, MC, PB, SMu"
    )
    network = pulse(tmp_path, "digest", "--plan", "small", "--network", "zz")
    assert network.returncode == 1
    assert "has no network 'zz'; known: " in network.stderr
    assert "oversight" in network.stderr


def test_now_takes_the_day_forms_of_as_of(tmp_path: Path) -> None:
    """`--now 23/11/2026 09:05` acts as `--now 2026-11-23T09:05` does."""
    assert import_small(tmp_path).returncode == 0
    uk = pulse(tmp_path, "prompt", "--plan", "small", "--dry-run", "--now", "23/11/2026 09:05")
    iso = pulse(tmp_path, "prompt", "--plan", "small", "--dry-run", "--now", "2026-11-23T09:05")
    assert uk.returncode == 0, uk.stderr
    assert "cycle 2026-W48" in uk.stdout
    assert uk.stdout == iso.stdout
    bad = pulse(tmp_path, "prompt", "--plan", "small", "--now", "31/09/2026 09:05")
    assert bad.returncode == 2
    assert "not a date-time: '31/09/2026 09:05'" in bad.stderr


def test_backup_then_restore_brings_back_the_state_backed_up(tmp_path: Path) -> None:
    """`pulse backup FILE` while the bot runs, a change, then the README's restore (stop,
    copy the file over the database, remove its -wal and -shm): the change is gone."""
    assert import_small(tmp_path).returncode == 0
    before = pulse(tmp_path, "status", "--plan", "small", "--as-of", "2026-11-20").stdout
    bot = subprocess.Popen(
        [str(PULSE), "run"],
        cwd=tmp_path,
        env=environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: (tmp_path / "var" / "pulse.db.lock").exists())
        saved = tmp_path / "backups" / "pulse-2026-11-20.db"
        done = pulse(tmp_path, "backup", saved)
        assert done.returncode == 0, done.stderr
        assert f"to {saved}" in done.stdout
    finally:
        bot.send_signal(signal.SIGTERM)
        bot.communicate(timeout=30)
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]  # no temporary left

    changed = pulse(tmp_path, "import", EXAMPLES / "wirral" / "plan.yaml")
    assert changed.returncode == 0, changed.stderr

    database = tmp_path / "var" / "pulse.db"
    database.write_bytes(saved.read_bytes())
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)

    assert pulse(tmp_path, "status", "--plan", "small", "--as-of", "2026-11-20").stdout == before
    gone = pulse(tmp_path, "status", "--plan", "wirral")
    assert gone.returncode == 1
    assert "no plan with key 'wirral'" in gone.stderr


def test_backup_of_postgresql_points_to_pg_dump(tmp_path: Path) -> None:
    """On PostgreSQL `pulse backup` writes nothing and says, in one line, to use pg_dump."""
    target = tmp_path / "backup.db"
    done = pulse(tmp_path, "backup", target, db_url="postgresql+asyncpg://pulse@db.invalid/pulse")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "pg_dump" in done.stderr
    assert not target.exists()
