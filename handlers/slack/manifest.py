"""The Slack app manifest (`pulse slack manifest`): the app an admin creates in Slack, with
exactly the scopes, command, events and interactivity the handlers use.

The scopes are derived from the Web API methods the code calls (`WEB_API_SCOPES`); a test
reads `handlers/` and `bot/` for every method called and every listener registered and
checks this table and the manifest against them, so neither can drift."""

from __future__ import annotations

from typing import Any

APP_NAME = "Plan Pulse"
COMMAND = "/pulse"
HTTP_PATH = "/slack/events"

# Every Web API method the code calls, with the bot scopes Slack requires for it.
WEB_API_SCOPES: dict[str, tuple[str, ...]] = {
    "auth.test": (),
    # Prompts as DMs and digests to channels; a DM updated after an answer.
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    # A DM to one person (not a group DM).
    "conversations.open": ("im:write",),
    # Looking for a post whose outcome was unknown, in a channel (public or private) or a DM.
    "conversations.history": ("channels:history", "groups:history", "im:history"),
    "conversations.replies": ("channels:history", "groups:history", "im:history"),
    # Someone imported without a Slack id; Slack asks for users:read beside users:read.email.
    "users.lookupByEmail": ("users:read", "users:read.email"),
    "views.open": (),
    "views.publish": (),
}
# Events the app listens to (`@app.event`).
BOT_EVENTS: tuple[str, ...] = ("app_home_opened",)
# A slash command is a scope of its own.
COMMAND_SCOPES: tuple[str, ...] = ("commands",)


def bot_scopes() -> list[str]:
    """The bot token scopes: those of the methods called, and of the slash command."""
    scopes = {s for needed in WEB_API_SCOPES.values() for s in needed}
    return sorted(scopes | set(COMMAND_SCOPES))


def manifest(*, request_url: str | None = None, name: str = APP_NAME) -> dict[str, Any]:
    """The manifest as Slack's app-manifest reference lays it out. Socket Mode (no public
    URL) unless `request_url` (e.g. `https://pulse.example.org`) is given: then HTTP mode,
    with every request sent to its `/slack/events`."""
    url = request_url.rstrip("/") + HTTP_PATH if request_url else None
    command: dict[str, Any] = {
        "command": COMMAND,
        "description": "Update your milestones, see their status, or set who answers for you",
        "usage_hint": (
            "[status | away DATE | back | delegate @someone [until DATE] | delegate none | help]"
        ),
        "should_escape": True,
    }
    events: dict[str, Any] = {"bot_events": list(BOT_EVENTS)}
    interactivity: dict[str, Any] = {"is_enabled": True}
    if url:
        command["url"] = url
        events["request_url"] = url
        interactivity["request_url"] = url
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": name,
            "description": "Asks plan leads for progress and posts weekly digests",
            "background_color": "#1d4f91",
        },
        "features": {
            "bot_user": {"display_name": name, "always_online": True},
            # Prompts arrive as DMs; answers come through their buttons, not typed messages.
            "app_home": {
                "home_tab_enabled": True,
                "messages_tab_enabled": True,
                "messages_tab_read_only_enabled": True,
            },
            "slash_commands": [command],
        },
        "oauth_config": {"scopes": {"bot": bot_scopes()}},
        "settings": {
            "event_subscriptions": events,
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": url is None,
            "token_rotation_enabled": False,
        },
    }
