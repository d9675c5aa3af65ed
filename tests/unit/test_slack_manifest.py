"""`pulse slack manifest`: the app Slack creates has what the code uses, and only that, in the
fields Slack's app-manifest reference documents."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from bot.cli import app
from handlers.slack.manifest import WEB_API_SCOPES, bot_scopes, manifest

ROOT = Path(__file__).resolve().parents[2]
# The Web API method families; `client.chat_postMessage(` is `chat.postMessage`.
_FAMILIES = "auth|bots|chat|conversations|files|pins|reactions|team|usergroups|users|views|apps"
_CALL = re.compile(rf"\bclient\.((?:{_FAMILIES})_[A-Za-z_]+)\(")
_API_CALL = re.compile(r"api_call\(\s*[\"']([a-z]+\.[A-Za-z.]+)[\"']")
# A listener registered as bolt's decorator or called as one: `app.event("x")(handler)`.
_LISTENER = re.compile(
    r"(?<![\w.])app\.(event|command|action|view|shortcut|message|options)\(\s*\"([^\"]+)\""
)


def _code(folders: tuple[str, ...] = ("handlers", "bot")) -> str:
    return "\n".join(p.read_text() for f in folders for p in sorted((ROOT / f).rglob("*.py")))


def _methods_called() -> set[str]:
    code = _code()
    methods = {name.replace("_", ".", 1) for name in _CALL.findall(code)}
    return methods | set(_API_CALL.findall(code))


def _listeners() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    # bolt listeners live in handlers/ (bot/cli.py's `@app.command` is Typer's).
    for kind, name in _LISTENER.findall(_code(("handlers",))):
        found.setdefault(kind, set()).add(name)
    return found


# The parts of Slack's published manifest schema (slackapi/manifest-schema, v1) that this
# manifest uses, with their documented limits; unknown keys are refused as Slack does.
_URL = {"type": "string", "pattern": r"^https?://", "maxLength": 3500}
_STRINGS = {"type": "array", "items": {"type": "string", "maxLength": 50}, "maxItems": 255}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["display_information"],
    "properties": {
        "_metadata": {
            "type": "object",
            "properties": {
                "major_version": {"type": "integer"},
                "minor_version": {"type": "integer"},
            },
        },
        "display_information": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 35},
                "description": {"type": "string", "minLength": 1, "maxLength": 140},
                "background_color": {
                    "type": "string",
                    "pattern": r"^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$",
                },
                "long_description": {"type": "string", "minLength": 175, "maxLength": 4000},
            },
        },
        "features": {
            "type": "object",
            "properties": {
                "app_home": {
                    "type": "object",
                    "properties": {
                        "home_tab_enabled": {"type": "boolean"},
                        "messages_tab_enabled": {"type": "boolean"},
                        "messages_tab_read_only_enabled": {"type": "boolean"},
                    },
                },
                "bot_user": {
                    "type": "object",
                    "required": ["display_name"],
                    "properties": {
                        "display_name": {"type": "string", "minLength": 1, "maxLength": 80},
                        "always_online": {"type": "boolean"},
                    },
                },
                "slash_commands": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 50,
                    "items": {
                        "type": "object",
                        "required": ["command", "description"],
                        "properties": {
                            "command": {
                                "type": "string",
                                "minLength": 2,
                                "maxLength": 32,
                                "pattern": r"^/",
                            },
                            "url": {**_URL, "maxLength": 3000},
                            "description": {"type": "string", "minLength": 1, "maxLength": 2000},
                            "usage_hint": {"type": "string", "minLength": 1, "maxLength": 1000},
                            "should_escape": {"type": "boolean"},
                        },
                    },
                },
            },
        },
        "oauth_config": {
            "type": "object",
            "properties": {
                "scopes": {"type": "object", "properties": {"bot": _STRINGS, "user": _STRINGS}}
            },
        },
        "settings": {
            "type": "object",
            "properties": {
                "event_subscriptions": {
                    "type": "object",
                    "properties": {
                        "request_url": _URL,
                        "bot_events": {**_STRINGS, "maxItems": 100, "uniqueItems": True},
                    },
                },
                "interactivity": {
                    "type": "object",
                    "required": ["is_enabled"],
                    "properties": {"is_enabled": {"type": "boolean"}, "request_url": _URL},
                },
                "org_deploy_enabled": {"type": "boolean"},
                "socket_mode_enabled": {"type": "boolean"},
                "token_rotation_enabled": {"type": "boolean"},
            },
        },
    },
}
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int}


def _problems(value: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """What in `value` breaks `schema` (the subset of JSON Schema used above)."""
    kind = _TYPES[schema["type"]]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        return [f"{where or '.'}: not {schema['type']}"]
    found = []
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        found += [f"{where}.{k}: not in Slack's manifest" for k in value if k not in properties]
        found += [f"{where}.{k}: missing" for k in schema.get("required", []) if k not in value]
        for key, sub in value.items():
            if key in properties:
                found += _problems(sub, properties[key], f"{where}.{key}")
    elif isinstance(value, list):
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", 10**6):
            found.append(f"{where}: {len(value)} items")
        if schema.get("uniqueItems") and len(set(map(str, value))) != len(value):
            found.append(f"{where}: repeated items")
        for i, sub in enumerate(value):
            found += _problems(sub, schema["items"], f"{where}[{i}]")
    elif isinstance(value, str):
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", 10**6):
            found.append(f"{where}: {len(value)} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            found.append(f"{where}: does not match {schema['pattern']}")
    return found


def test_every_web_api_method_the_code_calls_has_its_scopes_listed() -> None:
    """Each Slack method called anywhere in the bot is in the scope table, and nothing else is."""
    called = _methods_called()
    assert "chat.postMessage" in called  # the scan itself works
    assert called == set(WEB_API_SCOPES)


def test_manifest_scopes_are_exactly_those_the_methods_and_command_need() -> None:
    """The bot token gets the scopes of the methods called plus `commands`, and no more."""
    scopes = manifest()["oauth_config"]["scopes"]["bot"]
    assert scopes == bot_scopes()
    assert {"chat:write", "im:write", "users:read.email", "commands"} <= set(scopes)
    assert "chat:write.public" not in scopes  # the bot is invited to each network's channel


def test_manifest_declares_every_listener_and_only_those() -> None:
    """Events, the slash command and interactivity match what the bolt app listens to."""
    listeners = _listeners()
    m = manifest()
    assert set(m["settings"]["event_subscriptions"]["bot_events"]) == listeners["event"]
    assert {c["command"] for c in m["features"]["slash_commands"]} == listeners["command"]
    assert m["settings"]["interactivity"]["is_enabled"] is bool(
        listeners.get("action") or listeners.get("view")
    )
    # `/pulse delegate @someone` reads the mention as `<@U123>`: Slack escapes it only so.
    assert all(c["should_escape"] for c in m["features"]["slash_commands"])
    assert m["features"]["app_home"]["home_tab_enabled"] is (
        "app_home_opened" in listeners["event"]
    )


def test_manifest_has_only_fields_slack_documents_within_their_limits() -> None:
    """Both forms of the manifest validate against Slack's documented fields and limits."""
    for m in (manifest(), manifest(request_url="https://pulse.example.org/")):
        assert _problems(m, SCHEMA) == []


def test_socket_mode_by_default_and_http_mode_with_a_url() -> None:
    """Without a URL the app uses Socket Mode; with one, every request goes to /slack/events."""
    socket = manifest()
    assert socket["settings"]["socket_mode_enabled"] is True
    assert "request_url" not in socket["settings"]["interactivity"]
    http = manifest(request_url="https://pulse.example.org/")
    url = "https://pulse.example.org/slack/events"
    assert http["settings"]["socket_mode_enabled"] is False
    assert http["settings"]["interactivity"]["request_url"] == url
    assert http["settings"]["event_subscriptions"]["request_url"] == url
    assert http["features"]["slash_commands"][0]["url"] == url


def test_cli_prints_the_manifest_as_json_or_yaml() -> None:
    """`pulse slack manifest` prints JSON Slack accepts; `--format yaml` the same as YAML."""
    runner = CliRunner()
    as_json = runner.invoke(app, ["slack", "manifest"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == manifest()
    as_yaml = runner.invoke(
        app, ["slack", "manifest", "--format", "yaml", "--url", "https://pulse.example.org"]
    )
    assert as_yaml.exit_code == 0, as_yaml.output
    assert yaml.safe_load(as_yaml.stdout) == manifest(request_url="https://pulse.example.org")
