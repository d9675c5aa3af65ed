"""Setting up Teams from the command line: `pulse teams package` writes the app package an
admin uploads, and `pulse check` proves the bot's credentials against the token endpoint."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import zipfile
from pathlib import Path

from tests.e2e.test_cli import PLANS, PULSE, environment, pulse_env
from tests.fake_bot_connector import FakeIdentity
from tests.teams import APP_ID, teams_people

KEY = "Vq3xN8r2LmT7pZs1Kd6Wf0Hj4Yc9Ba5E"


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_package_names_the_bot_and_carries_its_icons(tmp_path: Path) -> None:
    """The zip holds a 1.17 manifest with the bot's id in personal scope and its commands,
    a 192 px colour icon and a 32 px outline; the endpoint to register is printed."""
    out = tmp_path / "teams.zip"
    env = {"TEAMS_APP_ID": APP_ID, "PULSE_BASE_URL": "https://pulse.council.example"}
    done = pulse_env(tmp_path, env, "teams", "package", "--output", out)
    assert done.returncode == 0, done.stderr
    assert "https://pulse.council.example/api/messages" in done.stdout
    with zipfile.ZipFile(io.BytesIO(out.read_bytes())) as package:
        assert sorted(package.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(package.read("manifest.json"))
        assert _png_size(package.read("color.png")) == (192, 192)
        assert _png_size(package.read("outline.png")) == (32, 32)
    assert manifest["manifestVersion"] == "1.17"
    assert manifest["id"] == APP_ID
    (bot,) = manifest["bots"]
    assert bot["botId"] == APP_ID
    assert bot["scopes"] == ["personal"]
    titles = [c["title"] for c in bot["commandLists"][0]["commands"]]
    assert titles == ["status", "away", "back", "delegate", "help"]
    assert manifest["validDomains"] == ["pulse.council.example"]


def test_the_package_needs_the_app_id_and_an_https_address(tmp_path: Path) -> None:
    """Without TEAMS_APP_ID, or with a plain http address, it says what to set, one line,
    and writes nothing."""
    out = tmp_path / "teams.zip"
    missing = pulse_env(tmp_path, {}, "teams", "package", "--output", out)
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0
    assert "TEAMS_APP_ID" in missing.stderr
    plain = {"TEAMS_APP_ID": APP_ID, "PULSE_BASE_URL": "http://pulse.council.example"}
    insecure = pulse_env(tmp_path, plain, "teams", "package", "--output", out)
    assert insecure.returncode == 2
    assert "https" in insecure.stderr
    assert not out.exists()


async def _check(tmp_path: Path, identity: FakeIdentity, secret: str) -> tuple[int, str]:
    env = environment(
        tmp_path,
        PULSE_SECRET_KEY=KEY,
        TEAMS_APP_ID=APP_ID,
        TEAMS_APP_PASSWORD=secret,
        TEAMS_AUTHORITY=identity.authority,
        TEAMS_OPENID_METADATA_URL=identity.metadata_url,
        TEAMS_CA_FILE=identity.ca_file,
    )
    process = await asyncio.create_subprocess_exec(
        str(PULSE),
        "check",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, output.decode()


async def test_check_proves_the_bot_credentials(tmp_path: Path) -> None:
    """`pulse check` reports a token issued for the bot and the signing keys; a wrong
    secret is a FAIL naming the settings to look at, and never shows the secret."""
    identity = FakeIdentity()
    await identity.start()
    try:
        good_code, good = await _check(tmp_path, identity, identity.secret)
        bad_code, bad = await _check(tmp_path, identity, "a-wrong-secret-for-the-bot")
    finally:
        await identity.stop()
    assert good_code == 0, good
    assert f"ok   Teams: a token issued for bot {APP_ID}" in good
    assert "1 signing keys" in good
    assert bad_code == 1
    assert "FAIL Teams:" in bad
    assert "TEAMS_APP_PASSWORD" in bad
    assert "a-wrong-secret-for-the-bot" not in bad


def test_pulse_prompt_names_who_prefers_teams_but_is_not_known_there(tmp_path: Path) -> None:
    """With Teams on, the leads who prefer Teams but have not had the app installed are
    named in `pulse prompt`'s report and asked by email."""
    env = {"TEAMS_APP_ID": APP_ID, "TEAMS_APP_PASSWORD": "secret", "PULSE_SECRET_KEY": KEY}
    imported = pulse_env(
        tmp_path,
        env,
        "import",
        PLANS / "small-plan.csv",
        "--people",
        teams_people(tmp_path),
        "--networks",
        PLANS / "small-networks.csv",
        "--plan",
        "small",
        "--ratings-as-of",
        "2026-11-16",
    )
    assert imported.returncode == 0, imported.stderr
    done = pulse_env(tmp_path, env, "prompt", "--plan", "small", "--now", "2026-11-23T09:05")
    assert done.returncode == 0, done.stderr
    assert "the Teams app is not installed for them yet, asked by email instead: DC, PB" in (
        done.stdout
    )
