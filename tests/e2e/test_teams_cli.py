"""`pulse networks`, `pulse check --teams` and `pulse digest --format teams` as an admin
runs them, against a fake Workflows endpoint on loopback: each network's webhook is listed
and checked without its signature, a test card reaches each channel, and the digest's posts
can be seen before they are sent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.adaptive_cards import validate_cards
from tests.conftest import FIXTURES
from tests.e2e.test_cli import PULSE, environment
from tests.fake_workflows import SIGNATURE, running_workflows

PLANS = FIXTURES / "plans"


async def pulse_async(tmp: Path, *args: str | Path) -> tuple[int, str, str]:
    """Run `pulse` while this test's loop keeps serving the fake endpoint."""
    process = await asyncio.create_subprocess_exec(
        str(PULSE),
        *map(str, args),
        cwd=tmp,
        env=environment(tmp, TEAMS_POST_INTERVAL="0"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode(), err.decode()


async def test_networks_and_check_teams_show_each_webhook_without_its_signature(
    tmp_path: Path,
) -> None:
    """After importing a networks file with a Teams webhook, `pulse networks` lists it
    redacted, `pulse check` says its form is right, and `pulse check --teams` posts one valid
    test card to the channel and says so; no output shows the signature. `pulse digest
    --format teams` shows the network's posts, valid cards, without posting them."""
    async with running_workflows() as fake:
        url = fake.url("early-help")
        networks = tmp_path / "networks.csv"
        networks.write_text(
            "key,name,teams_webhook,coordinators,all_actions\n"
            f"early-help,Early help network,{url},eh.lead@council.example,false\n"
            "workforce,Workforce network,,wf.lead@council.example,false\n",
            encoding="utf-8",
        )
        code, _, err = await pulse_async(
            tmp_path,
            "import",
            PLANS / "small-plan.csv",
            "--people",
            PLANS / "small-people.csv",
            "--networks",
            networks,
            "--plan",
            "small",
        )
        assert code == 0, err
        code, listing, err = await pulse_async(tmp_path, "networks")
        assert code == 0, err
        assert "/workflows/early-help/triggers/manual/paths/invoke?sig=…" in listing
        code, quiet, err = await pulse_async(tmp_path, "check")
        assert code == 0, err
        assert "ok   Teams early-help:" in quiet
        assert fake.requests == []
        code, checked, err = await pulse_async(tmp_path, "check", "--teams")
        assert code == 0, checked + err
        assert "ok   Teams early-help:" in checked
        assert "test card accepted" in checked
        assert len(fake.channel("early-help")) == 1
        assert fake.problems() == []
        for shown in (listing, quiet, checked, err):
            assert SIGNATURE not in shown
    # The digest's posts can be seen without posting them.
    code, preview, err = await pulse_async(
        tmp_path, "digest", "--plan", "small", "--network", "early-help", "--format", "teams"
    )
    assert code == 0, err
    posts = json.loads(preview)["posts"]
    assert validate_cards([a["content"] for p in posts for a in p["attachments"]]) == [[]]
    assert "Early help network" in preview
