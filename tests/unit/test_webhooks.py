"""Teams Workflows webhook URLs: the form an import accepts, and how one is shown (never with
its signature)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.domain.webhooks import redacted_webhook, webhook_problem
from handlers.files.plan_files import read_plan

POWER_PLATFORM = (
    "https://default0a1b2c3d.4e.environment.api.powerplatform.com:443/powerautomate/automations"
    "/direct/workflows/5f6a7b8c/triggers/manual/paths/invoke?api-version=1"
    "&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=AbCdEf-123_secret"
)
LOGIC_APPS = (
    "https://prod-27.uksouth.logic.azure.com:443/workflows/9a8b7c6d/triggers/manual/paths/invoke"
    "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=ZyXw-987_secret"
)


@pytest.mark.parametrize("url", [POWER_PLATFORM, LOGIC_APPS, f"  {LOGIC_APPS}  "])
def test_workflows_urls_of_both_generations_are_accepted(url: str) -> None:
    """A Power Automate and an older Logic Apps trigger URL both have the right form."""
    assert webhook_problem(url) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "empty"),
        (LOGIC_APPS.replace("https://", "http://"), "must start with https://"),
        ("https://outlook.office.com/webhook/abc/IncomingWebhook/def?sig=x", "host is not one"),
        ("https://evil.example/workflows/x?sig=abc", "host is not one"),
        ("https://logic.azure.com.evil.example/x?sig=abc", "host is not one"),
        (LOGIC_APPS.split("&sig=")[0], "no signature"),
        (LOGIC_APPS.replace("&sv", " &sv"), "spaces"),
        ("https://[::1/x", "not a URL"),
    ],
)
def test_a_url_of_another_form_is_refused_with_a_reason(url: str, reason: str) -> None:
    """A retired connector URL, another host, plain HTTP, or a URL without its signature is
    refused with one line that never repeats the URL."""
    problem = webhook_problem(url)
    assert problem is not None
    assert reason in problem
    assert "secret" not in problem
    assert "\n" not in problem


def test_a_loopback_endpoint_may_be_plain_http() -> None:
    """A test endpoint on this machine may use http; another host may not."""
    assert webhook_problem("http://127.0.0.1:8080/workflows/a/x?sig=s") is None
    assert webhook_problem("http://localhost:8080/workflows/a/x?sig=s") is None
    assert webhook_problem("http://10.0.0.1/workflows/a/x?sig=s") is not None


def test_a_url_is_shown_without_its_query() -> None:
    """The host and path are shown; the signature and the rest of the query are not."""
    assert redacted_webhook(LOGIC_APPS) == (
        "https://prod-27.uksouth.logic.azure.com/workflows/9a8b7c6d/triggers/manual/paths/invoke"
        "?sig=…"
    )
    assert "secret" not in redacted_webhook(POWER_PLATFORM)
    assert redacted_webhook("") == "(none)"
    assert redacted_webhook("not a url?sig=secret") == "(not a URL)"


def test_a_yaml_plan_names_a_networks_webhook(tmp_path: Path) -> None:
    """The YAML form takes `teams_webhook` per network, and checks its form like a file."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "plan: {key: p, title: P}\n"
        "networks:\n"
        f"  - {{key: good, name: Good, teams_webhook: '{LOGIC_APPS}'}}\n"
        "  - {key: bad, name: Bad, teams_webhook: 'https://evil.example/x?sig=secret'}\n"
        "priorities: []\n",
        encoding="utf-8",
    )
    draft = read_plan(plan, plan_key=None)
    webhooks = {n.key: n.teams_webhook for n in draft.networks.items}
    assert webhooks["good"] == LOGIC_APPS
    [problem] = [p for p in draft.problems if p.column == "teams_webhook"]
    assert "host is not one" in str(problem)
    assert "secret" not in str(problem)
    assert "secret" not in repr(draft.networks.items)  # kept out of the repr, so of logs
