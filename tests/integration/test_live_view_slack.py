"""A digest posted to a network's Slack channel links to the live view only when opening it
needs a sign-in (`WEB_SIGN_IN=oidc`): everyone in the channel sees the post, so it never
carries a link that opens the view by itself (issue 14); on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import PlanPulse, digest_poster
from bot.services.delivery import OutboxWorker
from handlers.email.local_transport import LocalMailTransport
from handlers.slack.transport import SlackTransport
from tests.conftest import Clock, import_small_plan
from tests.fake_slack import FakeSlack
from tests.integration.test_digest_posting import FRIDAY, settings_for

SIGN_IN = {
    "WEB_SIGN_IN": "oidc",
    "OIDC_ISSUER": "https://login.microsoftonline.com/t/v2.0",
    "OIDC_CLIENT_ID": "c",
    "OIDC_CLIENT_SECRET": "s",
    "OIDC_TENANT_ID": "t",
}


@pytest.mark.parametrize("sign_in", [True, False], ids=["oidc", "links only"])
async def test_a_channel_post_links_to_the_view_only_behind_sign_in(
    db_url: str,
    tmp_path: Path,
    fake_slack: FakeSlack,
    sign_in: bool,
) -> None:
    """With OIDC sign-in the channel's digest ends with a link to /live (no token); with
    links only, it has no link to the view at all."""
    settings = settings_for(
        db_url,
        tmp_path / "var",
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET="s" * 32,
        SLACK_API_URL=fake_slack.base_url,
        PULSE_SECRET_KEY="Vq3xN8r2LmT7pZs1Kd6Wf0Hj4Yc9Ba5E",
        PULSE_BASE_URL="https://pulse.council.example",
        **(SIGN_IN if sign_in else {}),
    )
    app = PlanPulse(settings, clock=Clock(FRIDAY))
    try:
        await app.migrate()
        await import_small_plan(app.sessions, now=FRIDAY)
        await digest_poster(app).post("small", now=FRIDAY, network="oversight")

        async def no_wait(_: float) -> None:
            return None

        worker = OutboxWorker(
            app.sessions,
            {
                "slack": SlackTransport(client=fake_slack.client(), sleep=no_wait),
                "email": LocalMailTransport(tmp_path / "outbox"),
            },
            clock=Clock(FRIDAY),
        )
        await worker.drain()
    finally:
        await app.close()
    text = "\n".join(
        str(p.get("blocks")) + str(p.get("text")) for p in fake_slack.messages("#oversight")
    )
    assert "Exit interview analysis" in text
    assert "/v/" not in text
    if sign_in:
        assert "https://pulse.council.example/live" in text
    else:
        assert "/live" not in text
