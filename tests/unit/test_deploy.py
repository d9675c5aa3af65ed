"""The deployment files in `deploy/`: checked statically, since no container engine runs here."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "deploy" / "Containerfile"
UNIT = ROOT / "deploy" / "plan-pulse.service"
SHIPPED_PULSE = "/opt/plan-pulse/.venv/bin/pulse"


def _instructions(text: str) -> list[tuple[str, str]]:
    """The Containerfile's instructions, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_container_runs_as_a_numeric_non_root_user() -> None:
    """The image's last USER is a numeric uid other than 0, so `--read-only` and rootless work."""
    users = [
        rest for keyword, rest in _instructions(CONTAINERFILE.read_text()) if keyword == "USER"
    ]
    assert users, "no USER instruction"
    uid = users[-1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0


def test_container_keeps_its_data_on_a_volume() -> None:
    """The database and mail folders live under the declared volume, not in the image."""
    instructions = _instructions(CONTAINERFILE.read_text())
    volumes = [rest for keyword, rest in instructions if keyword == "VOLUME"]
    assert volumes == ['["/data"]']
    env = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
    assert "PULSE_DATA_DIR=/data" in env
    assert "DATABASE_URL=sqlite+aiosqlite:////data/pulse.db" in env


def test_container_bakes_in_no_secret() -> None:
    """No token, password or key is set in the image: settings come from the environment."""
    env = " ".join(
        rest for keyword, rest in _instructions(CONTAINERFILE.read_text()) if keyword == "ENV"
    )
    for name in ("SECRET", "TOKEN", "PASSWORD", "CLIENT_SECRET"):
        assert name not in env


def test_container_copies_every_package_the_project_installs() -> None:
    """Each COPY source exists, and every package pyproject installs is copied into the image."""
    copied = []
    for keyword, rest in _instructions(CONTAINERFILE.read_text()):
        if keyword == "COPY":
            *sources, _target = rest.split()
            copied += [s for s in sources if not s.startswith("--")]
    for source in copied:
        assert (ROOT / source).exists(), source
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in packages:
        assert pattern.rstrip("*") in copied, pattern


def test_container_starts_the_bot() -> None:
    """The image's command is `pulse run`."""
    instructions = dict(_instructions(CONTAINERFILE.read_text()))
    assert instructions["ENTRYPOINT"] == '["pulse"]'
    assert instructions["CMD"] == '["run"]'


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """The unit as shipped verifies, with its install path pointed at this checkout's `pulse`."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing: scripts/setup installs systemd")
    text = UNIT.read_text()
    assert f"ExecStart={SHIPPED_PULSE} run" in text
    pulse = Path(sys.executable).parent / "pulse"
    assert pulse.exists()
    unit = tmp_path / "plan-pulse.service"
    unit.write_text(text.replace(SHIPPED_PULSE, str(pulse)))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_systemd_unit_runs_unprivileged_and_hardened() -> None:
    """The service runs as its own user, writes only its state folder, and stops gracefully."""
    settings = dict(
        line.split("=", 1)
        for line in UNIT.read_text().splitlines()
        if "=" in line and line[0] != "#"
    )
    assert settings["User"] == "plan-pulse"
    assert settings["ProtectSystem"] == "strict"
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["StateDirectory"] == "plan-pulse"
    assert settings["KillSignal"] == "SIGTERM"
